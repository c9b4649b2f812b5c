#!/usr/bin/env bash
# Creates a bucket, a queue (with a dead-letter queue) and the S3 -> SQS
# notification for package keys on the running LocalStack.
#   localstack/bootstrap.sh [BUCKET] [SUFFIX]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/env.sh"
exec "$LOCALSTACK_VENV/bin/python" "$here/bootstrap.py" "$@"
