#!/usr/bin/env bash
# Starts a one-node Ceph cluster (a monitor, one memstore OSD) with the
# RADOS Gateway on 127.0.0.1, for the tests: an S3-compatible store that
# behaves as Ceph RGW does in production (its If-Match dialect, its
# notifications). Everything lives under $PKGSUM_CEPH_DIR; nothing listens
# beyond loopback. Idempotent: a running gateway is left as it is.
#
# Needs Debian's radosgw, ceph-mon, ceph-osd and ceph-common (ceph/install.sh).
# Prints the environment to use it, for eval (also in $PKGSUM_CEPH_DIR/env.sh);
# the daemons' own output goes to $PKGSUM_CEPH_DIR/log/.
set -euo pipefail
trap 'echo "ceph: failed to start; the daemons said:" >&2; tail -n 20 "$dir/log/daemons.out" >&2 2>/dev/null' ERR
dir="${PKGSUM_CEPH_DIR:-$HOME/.cache/pkgsum/ceph-run}"
port="${PKGSUM_RGW_PORT:-7480}"
mon_port="${PKGSUM_CEPH_MON_PORT:-6789}"
endpoint="http://127.0.0.1:$port"

if curl -fsS -o /dev/null "$endpoint/" 2>/dev/null && [ -f "$dir/env.sh" ]; then
  cat "$dir/env.sh"
  exit 0
fi
# One start in a few fails with the OSD refused by the monitor ("wrong
# fsid": it asks with a zero fsid); a fresh cluster then starts. So the
# start below runs up to three times, each in a child of this script.
if [ -z "${PKGSUM_CEPH_ATTEMPT:-}" ]; then
  trap - ERR
  for attempt in 1 2 3; do
    PKGSUM_CEPH_ATTEMPT=$attempt "$0" && exit 0
    echo "ceph: start attempt $attempt failed; starting a fresh cluster" >&2
    # Seen: three attempts within two seconds of the last cluster's stop
    # all failed; give the old monitor's port time to clear.
    sleep $((attempt * 3))
  done
  exit 1
fi
"$(dirname "$0")/stop.sh" >/dev/null 2>&1 || true
# A daemon that is still exiting may write a last file meanwhile.
for _ in $(seq 1 20); do
  rm -rf "$dir" 2>/dev/null && break
  sleep 0.5
done
mkdir -p "$dir"/{mon,osd,run,log}
conf="$dir/ceph.conf"
fsid="$(python3 -c 'import uuid; print(uuid.uuid4())')"
cat > "$conf" <<CONF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$mon_port
public network = 127.0.0.0/8
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon allow pool delete = true
osd crush chooseleaf type = 0
# The OSD's own start-up commands to the monitor (placing itself in the
# CRUSH map, setting its device class) sometimes go out before it has the
# monitor map, with a zero fsid, and are refused ("wrong fsid"), which
# ends the OSD. This script places it instead, with the ceph CLI.
osd crush update on start = false
osd class update on start = false
run dir = $dir/run
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
pid file = $dir/run/\$name.pid
keyring = $dir/keyring
mon data = $dir/mon/\$id
osd data = $dir/osd/\$id
osd objectstore = memstore
memstore device bytes = 2147483648
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$port
rgw dns name = 127.0.0.1
# The OSD keeps everything in memory (up to 2 GiB, taken as used). The
# gateway frees what was deleted or replaced only by garbage collection,
# two hours after by default: the splice tests replace 48 MiB of
# summaries at every step, and at 97% the OSD stops taking writes (the
# gateway then hangs). So collect two seconds after, every two seconds:
# a run of the splice test then peaks near 0.5 GiB.
rgw gc obj min wait = 2
rgw gc processor period = 2
CONF
ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$dir/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
monmaptool --create --addv a "v1:127.0.0.1:$mon_port" --fsid "$fsid" "$dir/monmap" >/dev/null
out="$dir/log/daemons.out"
ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/keyring" >>"$out" 2>&1
ceph-mon -c "$conf" -i a >>"$out" 2>&1
uuid="$(python3 -c 'import uuid; print(uuid.uuid4())')"
id="$(ceph -c "$conf" osd new "$uuid" 2>>"$out")"
ceph -c "$conf" osd crush add "osd.$id" 1.0 root=default >>"$out" 2>&1
mkdir -p "$dir/osd/$id"
ceph-osd -c "$conf" -i "$id" --mkfs --osd-uuid "$uuid" >>"$out" 2>&1
ceph-osd -c "$conf" -i "$id" >>"$out" 2>&1
radosgw -c "$conf" -n client.rgw.a >>"$out" 2>&1
for _ in $(seq 1 120); do
  curl -fsS -o /dev/null "$endpoint/" 2>/dev/null && break
  sleep 0.5
done
curl -fsS -o /dev/null "$endpoint/" || { echo "ceph: the gateway did not start; see $dir/log" >&2; exit 1; }
radosgw-admin -c "$conf" user create --uid=pkgsum --display-name=pkgsum \
  --access-key=pkgsum-test --secret=pkgsum-test-secret >/dev/null
cat > "$dir/env.sh" <<ENV
export PKGSUM_RGW_ENDPOINT=$endpoint
export PKGSUM_RGW_ACCESS_KEY=pkgsum-test
export PKGSUM_RGW_SECRET_KEY=pkgsum-test-secret
ENV
cat "$dir/env.sh"
