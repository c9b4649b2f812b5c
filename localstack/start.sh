#!/usr/bin/env bash
# Starts LocalStack on 127.0.0.1 only, without Docker, and waits until it
# is ready. Prints nothing if already running. The services are those the
# tests and the deployed stack use (LOCALSTACK_SERVICES in env.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/env.sh"
"$here/install.sh"

mkdir -p "$LOCALSTACK_RUN"
pidfile="$LOCALSTACK_RUN/pid"
log="$LOCALSTACK_RUN/log"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  exit 0
fi

# It believes it runs in a container and keeps state in these.
rm -rf /var/lib/localstack /tmp/localstack-s3-storage 2>/dev/null || true

GATEWAY_SERVER=hypercorn \
GATEWAY_LISTEN="127.0.0.1:$LOCALSTACK_PORT" \
LOCALSTACK_HOST="127.0.0.1:$LOCALSTACK_PORT" \
SERVICES="$LOCALSTACK_SERVICES" \
PERSISTENCE=0 DNS_ADDRESS=0 SKIP_SSL_CERT_DOWNLOAD=1 DISABLE_EVENTS=1 \
SQS_ENDPOINT_STRATEGY=path \
LAMBDA_RUNTIME_EXECUTOR=pkgsum-process \
  setsid "$LOCALSTACK_VENV/bin/python" -m localstack.runtime.main >"$log" 2>&1 < /dev/null &
echo $! > "$pidfile"

for _ in $(seq 1 600); do
  if grep -q '^Ready\.' "$log" 2>/dev/null; then
    exit 0
  fi
  if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "localstack/start.sh: LocalStack exited; its log:" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
  sleep 0.1
done
echo "localstack/start.sh: not ready after 60 s; its log:" >&2
tail -n 40 "$log" >&2
exit 1
