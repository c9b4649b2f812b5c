# Shared settings for the LocalStack scripts; sourced, not run.
# Everything lives outside the clone so repeated runs reuse the install.
PKGSUM_CACHE="${PKGSUM_CACHE:-$HOME/.cache/pkgsum}"
LOCALSTACK_VENV="${LOCALSTACK_VENV:-$PKGSUM_CACHE/localstack-venv}"
LOCALSTACK_RUN="${LOCALSTACK_RUN:-$PKGSUM_CACHE/localstack-run}"
LOCALSTACK_PORT="${LOCALSTACK_PORT:-4566}"
# S3 and SQS for the indexer; the rest for deploying infra/sam on
# CloudFormation. Lambda functions run as host processes (executor/).
LOCALSTACK_SERVICES="${LOCALSTACK_SERVICES:-s3,sqs,sts,cloudformation,iam,lambda,logs,cloudwatch,events}"
# Pins measured to work together on Python 3.13 (../shared/docs/localstack-notes.md).
LOCALSTACK_PINS=(
  'localstack-core[runtime]==2026.3.0'
  'cbor2<6'
  'pyopenssl==25.3.0'
  'cryptography>=45.0.7,<47'
  'service_identity'
  'boto3'
)

export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_DEFAULT_REGION="$AWS_REGION"
export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://127.0.0.1:$LOCALSTACK_PORT}"
