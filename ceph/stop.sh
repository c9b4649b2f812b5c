#!/usr/bin/env bash
# Stops the test cluster ceph/start.sh started (gateway, OSD, monitor) and
# waits until they are gone, so a new one can take the same ports.
set -uo pipefail
dir="${PKGSUM_CEPH_DIR:-$HOME/.cache/pkgsum/ceph-run}"
pids=""
for file in "$dir"/run/*.pid; do
  [ -f "$file" ] && pids="$pids $(cat "$file")"
done
[ -n "$pids" ] && kill $pids 2>/dev/null
for _ in $(seq 1 50); do
  alive=""
  for pid in $pids; do
    # A zombie (state Z) is gone in all but name.
    state="$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)"
    [ -n "$state" ] && [ "$state" != Z ] && alive="$alive $pid"
  done
  [ -z "$alive" ] && break
  sleep 0.2
done
[ -n "${alive:-}" ] && kill -9 $alive 2>/dev/null
# Daemons whose pid file is gone (a start that failed half-way) are found
# by the configuration they were started with.
pkill -9 -f -- "-c $dir/ceph.conf" 2>/dev/null
for _ in $(seq 1 25); do
  pgrep -f -- "-c $dir/ceph.conf" >/dev/null || break
  sleep 0.2
done
rm -f "$dir"/run/*.pid "$dir/env.sh"
exit 0
