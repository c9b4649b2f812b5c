#!/usr/bin/env bash
# Stops the test cluster ceph/start.sh started (gateway, OSD, monitor) and
# waits until they are gone, so a new one can take the same ports. Daemons
# are found by the configuration they were started with, so one whose pid
# file is gone (a start that failed half-way) is stopped too.
set -uo pipefail
dir="${PKGSUM_CEPH_DIR:-$HOME/.cache/pkgsum/ceph-run}"
daemons="-c $dir/ceph.conf"
gone() {
  for _ in $(seq 1 25); do
    pgrep -f -- "$daemons" >/dev/null || return 0
    sleep 0.2
  done
  return 1
}
pkill -f -- "$daemons" 2>/dev/null
gone || { pkill -9 -f -- "$daemons" 2>/dev/null; gone; }
rm -f "$dir"/run/*.pid "$dir/env.sh"
exit 0
