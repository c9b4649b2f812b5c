#!/usr/bin/env bash
# Stops the SeaweedFS that seaweedfs/start.sh started. `weed server` may
# ignore SIGTERM, so it gets SIGKILL after 5 s.
set -uo pipefail
dir="${PKGSUM_SEAWEEDFS_DIR:-$HOME/.cache/pkgsum/seaweedfs-run}"
pid="$(cat "$dir/weed.pid" 2>/dev/null || true)"
if [ -n "$pid" ]; then
  kill "$pid" 2>/dev/null
  for _ in $(seq 1 25); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  kill -9 "$pid" 2>/dev/null
fi
rm -f "$dir/weed.pid" "$dir/env.sh"
exit 0
