# pkgsum: a pkgsrc binary package repository in an S3 bucket. Uploads and
# deletes of packages reach an SQS queue; a Lambda function reads each new
# package's header and rewrites the repository's pkg_summary files.
# The same resources as infra/sam/template.yaml.

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  create_bucket = var.existing_bucket_name == ""
  bucket        = local.create_bucket ? aws_s3_bucket.repository[0].id : var.existing_bucket_name
  bucket_arn    = "arn:${data.aws_partition.current.partition}:s3:::${local.bucket}"
  prefix        = var.repository_prefix == "" ? "" : "${var.repository_prefix}/"
  public        = local.create_bucket && var.access == "public"
  private       = local.create_bucket && var.access == "private"
  by_cidr       = local.create_bucket && var.access == "source-ip" && length(var.allowed_cidrs) > 0
  by_endpoint   = local.create_bucket && var.access == "source-ip" && length(var.allowed_vpc_endpoints) > 0
  read_objects  = "${local.bucket_arn}/${local.prefix}*"
  # What a pass writes: the summaries, and under .pkgsum/ its state
  # (manifest and pieces), layouts, status report and history; it deletes
  # summary variants no longer configured, pieces a commit replaced and
  # generations past PKGSUM_HISTORY.
  summaries = [for ext in ["gz", "bz2", "xz", "zst"] : "${local.bucket_arn}/${local.prefix}*pkg_summary.${ext}"]
  own_files = ["${local.bucket_arn}/${local.prefix}*.pkgsum/*"]
  # The browsable site: its page, its data for tools, its runs' files.
  site_files = [
    "${local.bucket_arn}/${local.prefix}*index.html",
    "${local.bucket_arn}/${local.prefix}*packages.json",
    "${local.bucket_arn}/${local.prefix}*site/*",
  ]
  pieces    = ["${local.bucket_arn}/${local.prefix}*.pkgsum/pieces/*"]
  history   = ["${local.bucket_arn}/${local.prefix}*.pkgsum/history/*"]
  # Objects a summary is spliced through, removed once it is written.
  splice = ["${local.bucket_arn}/${local.prefix}*.pkgsum/splice/*"]
  s3_url = join("/", compact([
    "https://${local.bucket}.s3.${data.aws_region.current.name}.${data.aws_partition.current.dns_suffix}",
    var.repository_prefix,
  ]))
}

# ---- where packages and summaries live ------------------------------------

resource "aws_s3_bucket" "repository" {
  #checkov:skip=CKV_AWS_18:Access logging needs a second bucket the user chooses; S3 server access logs are not the index's concern.
  #checkov:skip=CKV_AWS_21:Versioning keeps a copy of every summary rewrite (one per upload); the index is rebuilt from the packages anyway.
  #checkov:skip=CKV_AWS_144:Cross-region replication is a user decision with its own bucket and role.
  #checkov:skip=CKV_AWS_145:SSE-S3 keeps public pkgin downloads possible; SSE-KMS objects cannot be read anonymously.
  #checkov:skip=CKV2_AWS_61:Packages must stay until their owner deletes them; no lifecycle rule applies.
  #checkov:skip=CKV2_AWS_62:Event notifications are configured by aws_s3_bucket_notification.package_events below.
  #checkov:skip=CKV2_AWS_6:The public access block below blocks all ACLs; it allows bucket policies only with access = "public", for the read-only repository policy.
  count         = local.create_bucket ? 1 : 0
  bucket        = var.new_bucket_name != "" ? var.new_bucket_name : null
  bucket_prefix = var.new_bucket_name == "" ? "pkgsum-" : null
}

resource "aws_s3_bucket_server_side_encryption_configuration" "repository" {
  count  = local.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.repository[0].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_ownership_controls" "repository" {
  count  = local.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.repository[0].id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "repository" {
  #checkov:skip=CKV_AWS_54:Public policies are allowed only with access = "public", for the read-only policy on the repository prefix.
  #checkov:skip=CKV_AWS_56:As above: pkgin reads a public repository anonymously with access = "public".
  count                   = local.create_bucket ? 1 : 0
  bucket                  = aws_s3_bucket.repository[0].id
  block_public_acls       = true
  ignore_public_acls      = true
  block_public_policy     = !local.public
  restrict_public_buckets = !local.public
}

# Read access to the repository prefix, as var.access says: anyone; the
# CloudFront distribution alone (origin access control); or anyone from
# the listed address ranges or VPC endpoints. Never writes, never a list.
resource "aws_s3_bucket_policy" "repository_read" {
  count  = local.public || local.private || local.by_cidr || local.by_endpoint ? 1 : 0
  bucket = aws_s3_bucket.repository[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      local.public ? [{
        Sid       = "PkgsrcRepositoryIsPublic"
        Effect    = "Allow"
        Principal = "*"
        Action    = "s3:GetObject"
        Resource  = local.read_objects
      }] : [],
      local.private ? [{
        Sid       = "PkgsrcRepositoryThroughCloudFront"
        Effect    = "Allow"
        Principal = { Service = "cloudfront.amazonaws.com" }
        Action    = "s3:GetObject"
        Resource  = local.read_objects
        Condition = { StringEquals = { "AWS:SourceArn" = aws_cloudfront_distribution.private[0].arn } }
      }] : [],
      local.by_cidr ? [{
        Sid       = "PkgsrcRepositoryFromAddresses"
        Effect    = "Allow"
        Principal = "*"
        Action    = "s3:GetObject"
        Resource  = local.read_objects
        Condition = { IpAddress = { "aws:SourceIp" = var.allowed_cidrs } }
      }] : [],
      local.by_endpoint ? [{
        Sid       = "PkgsrcRepositoryFromVpcEndpoints"
        Effect    = "Allow"
        Principal = "*"
        Action    = "s3:GetObject"
        Resource  = local.read_objects
        Condition = { StringEquals = { "aws:SourceVpce" = var.allowed_vpc_endpoints } }
      }] : [],
    )
  })
  depends_on = [aws_s3_bucket_public_access_block.repository]
}

# ---- access = "private": CloudFront with HTTP Basic ------------------------

# Users and the hex SHA-256 of their passwords, put with
# `aws cloudfront-keyvaluestore put-key` (see docs/private.md).
resource "aws_cloudfront_key_value_store" "credentials" {
  count   = local.private ? 1 : 0
  name    = "${var.name}-credentials"
  comment = "pkgin users of the private repository and the SHA-256 of their passwords"
}

# The same code as the SAM template's, from one file, tested under Node.
resource "aws_cloudfront_function" "basic_auth" {
  count                        = local.private ? 1 : 0
  name                         = "${var.name}-basic-auth"
  runtime                      = "cloudfront-js-2.0"
  comment                      = "HTTP Basic for pkgin, one file at the repository root"
  publish                      = true
  code                         = file("${path.module}/../cloudfront/basic-auth.js")
  key_value_store_associations = [aws_cloudfront_key_value_store.credentials[0].arn]
}

resource "aws_cloudfront_origin_access_control" "repository" {
  count                             = local.private ? 1 : 0
  name                              = var.name
  origin_access_control_origin_type = "s3"
  signing_behavior                  = "always"
  signing_protocol                  = "sigv4"
}

# Summaries are revalidated with S3 at least every minute (they carry
# Cache-Control: no-cache), so pkgin sees each new Last-Modified.
resource "aws_cloudfront_cache_policy" "summaries" {
  count       = local.private ? 1 : 0
  name        = "${var.name}-summaries"
  min_ttl     = 0
  default_ttl = 30
  max_ttl     = 60
  parameters_in_cache_key_and_forwarded_to_origin {
    enable_accept_encoding_gzip   = false
    enable_accept_encoding_brotli = false
    headers_config {
      header_behavior = "none"
    }
    cookies_config {
      cookie_behavior = "none"
    }
    query_strings_config {
      query_string_behavior = "none"
    }
  }
}

resource "aws_cloudfront_distribution" "private" {
  #checkov:skip=CKV_AWS_68:A WAF is a user decision with its own cost; every request already needs a password.
  #checkov:skip=CKV_AWS_86:Access logging needs a log bucket the user chooses.
  #checkov:skip=CKV_AWS_174:The default *.cloudfront.net certificate fixes the TLS policy; a custom domain with its own certificate can raise it.
  #checkov:skip=CKV_AWS_305:A repository has no root object: pkgin asks for files by name.
  #checkov:skip=CKV_AWS_310:One origin: the bucket.
  #checkov:skip=CKV_AWS_374:pkgin users may be anywhere; access = "source-ip" is the option for address limits.
  #checkov:skip=CKV2_AWS_32:The origin sets the headers pkgin needs; no response headers policy applies.
  #checkov:skip=CKV2_AWS_42:The default *.cloudfront.net certificate; a custom domain is the user's choice.
  #checkov:skip=CKV2_AWS_47:No WAF (see CKV_AWS_68).
  count        = local.private ? 1 : 0
  enabled      = true
  comment      = "pkgsum private repository of ${var.name}"
  http_version = "http2"
  origin {
    origin_id                = "repository"
    domain_name              = aws_s3_bucket.repository[0].bucket_regional_domain_name
    origin_path              = var.repository_prefix == "" ? "" : "/${var.repository_prefix}"
    origin_access_control_id = aws_cloudfront_origin_access_control.repository[0].id
  }
  # https-only: no redirect, which libfetch would follow with the
  # credentials it was given.
  default_cache_behavior {
    target_origin_id       = "repository"
    viewer_protocol_policy = "https-only"
    allowed_methods        = ["GET", "HEAD"]
    cached_methods         = ["GET", "HEAD"]
    compress               = false
    # Managed-CachingOptimized: packages never change under a name.
    cache_policy_id = "658327ea-f89d-4fab-a63d-7e88639e58f6"
    function_association {
      event_type   = "viewer-request"
      function_arn = aws_cloudfront_function.basic_auth[0].arn
    }
  }
  ordered_cache_behavior {
    path_pattern           = "pkg_summary.*"
    target_origin_id       = "repository"
    viewer_protocol_policy = "https-only"
    allowed_methods        = ["GET", "HEAD"]
    cached_methods         = ["GET", "HEAD"]
    compress               = false
    cache_policy_id        = aws_cloudfront_cache_policy.summaries[0].id
    function_association {
      event_type   = "viewer-request"
      function_arn = aws_cloudfront_function.basic_auth[0].arn
    }
  }
  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }
  viewer_certificate {
    cloudfront_default_certificate = true
  }
}

resource "aws_s3_bucket_notification" "package_events" {
  count  = local.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.repository[0].id
  queue {
    queue_arn     = aws_sqs_queue.events.arn
    events        = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
    filter_prefix = local.prefix
    filter_suffix = var.package_suffix
  }
  # S3 checks that it may send to the queue when the notification is set.
  depends_on = [aws_sqs_queue_policy.events]
}

# ---- events ---------------------------------------------------------------

resource "aws_sqs_queue" "events" {
  name                    = "${var.name}-events"
  sqs_managed_sse_enabled = true
  # At least six times the function timeout plus the batching window.
  visibility_timeout_seconds = 2100
  message_retention_seconds  = 345600
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letters.arn
    maxReceiveCount     = 5
  })
}

resource "aws_sqs_queue" "dead_letters" {
  name                      = "${var.name}-events-dlq"
  sqs_managed_sse_enabled   = true
  message_retention_seconds = 1209600
}

resource "aws_sqs_queue_policy" "events" {
  queue_url = aws_sqs_queue.events.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "PackageEvents"
      Effect    = "Allow"
      Principal = { Service = local.create_bucket ? "s3.amazonaws.com" : "events.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = aws_sqs_queue.events.arn
      Condition = {
        ArnEquals    = { "aws:SourceArn" = local.create_bucket ? local.bucket_arn : aws_cloudwatch_event_rule.package_events[0].arn }
        StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id }
      }
    }]
  })
}

# An existing bucket keeps its notification settings: its events come
# through EventBridge instead, filtered the same way.
resource "aws_cloudwatch_event_rule" "package_events" {
  count       = local.create_bucket ? 0 : 1
  name        = "${var.name}-package-events"
  description = "Package uploads and deletes in the repository, to the pkgsum queue."
  event_pattern = jsonencode({
    source        = ["aws.s3"]
    "detail-type" = ["Object Created", "Object Deleted"]
    detail = {
      bucket = { name = [var.existing_bucket_name] }
      object = { key = [{ wildcard = "${local.prefix}*${var.package_suffix}" }] }
    }
  })
}

resource "aws_cloudwatch_event_target" "package_events" {
  count     = local.create_bucket ? 0 : 1
  rule      = aws_cloudwatch_event_rule.package_events[0].name
  target_id = "pkgsum-queue"
  arn       = aws_sqs_queue.events.arn
}

# ---- the function ---------------------------------------------------------

resource "aws_cloudwatch_log_group" "function" {
  #checkov:skip=CKV_AWS_158:The logs hold package names and errors only; AWS-managed encryption applies.
  #checkov:skip=CKV_AWS_338:Retention is the user's choice (log_retention_days, default 30 days).
  name              = "/aws/lambda/${var.name}"
  retention_in_days = var.log_retention_days
}

resource "aws_lambda_function" "index" {
  #checkov:skip=CKV_AWS_116:Failed events go to the queue's dead-letter queue (redrive policy); the schedule's failures are retried by the next run.
  #checkov:skip=CKV_AWS_117:The function reaches only S3 and SQS public endpoints; a VPC would add NAT or endpoints for nothing.
  #checkov:skip=CKV_AWS_115:Concurrency is bounded where it matters, by the event source mapping's maximum_concurrency.
  #checkov:skip=CKV_AWS_173:The environment holds settings, no secrets.
  #checkov:skip=CKV_AWS_272:Code signing needs a signing profile the user owns; the zip is built from source.
  function_name    = var.name
  description      = "Indexes pkgsrc packages into pkg_summary on upload and delete."
  filename         = var.lambda_zip
  source_code_hash = filebase64sha256(var.lambda_zip)
  handler          = "bootstrap"
  runtime          = "provided.al2023"
  architectures    = [var.architecture]
  memory_size      = var.memory_size
  timeout          = 300
  role             = aws_iam_role.function.arn
  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.function.name
  }
  tracing_config {
    mode = "PassThrough"
  }
  environment {
    variables = {
      PKGSUM_SUFFIXES         = var.package_suffix
      PKGSUM_FORMATS          = join(",", var.summary_formats)
      PKGSUM_SIGNATURES       = var.signature_policy
      PKGSUM_GPG_KEYRING      = var.gpg_keyring
      PKGSUM_X509_ANCHORS     = var.x509_anchors
      PKGSUM_VERIFY_PAYLOAD   = tostring(var.verify_payload)
      PKGSUM_SELECT           = var.select_versions
      PKGSUM_MAX_SHRINK       = tostring(var.max_shrink)
      PKGSUM_REQUIRED         = var.required_packages
      PKGSUM_UNRESOLVED       = var.unresolved_depends
      PKGSUM_HISTORY          = tostring(var.history_generations)
      PKGSUM_RELEASE_TIMEOUT  = var.release_timeout
      PKGSUM_PRUNE_KEEP       = tostring(var.prune_keep)
      PKGSUM_PRUNE_OLDER_THAN = var.prune_older_than
      PKGSUM_PRUNE_GRACE      = var.prune_grace
      PKGSUM_REPOSITORIES     = "s3://${local.bucket}/${local.prefix}"
      RUST_LOG                = "info"
    }
  }
}

resource "aws_lambda_event_source_mapping" "events" {
  event_source_arn                   = aws_sqs_queue.events.arn
  function_name                      = aws_lambda_function.index.arn
  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = var.batching_window
  function_response_types            = ["ReportBatchItemFailures"]
  scaling_config {
    maximum_concurrency = var.maximum_concurrency
  }
}

resource "aws_cloudwatch_event_rule" "reconcile" {
  name                = "${var.name}-reconcile"
  description         = "Reconciles pkg_summary with a listing of the repository."
  schedule_expression = var.reconcile_schedule
}

resource "aws_cloudwatch_event_target" "reconcile" {
  rule      = aws_cloudwatch_event_rule.reconcile.name
  target_id = "pkgsum-reconcile"
  arn       = aws_lambda_function.index.arn
  input     = jsonencode({ pkgsum = "reconcile" })
}

resource "aws_lambda_permission" "reconcile" {
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.index.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.reconcile.arn
}

# Only what a pass does: read packages (and its own files) under the
# prefix, write and delete only the summaries, the site and its state, list the
# bucket (for the reconcile, and so a missing key is 404, not 403),
# consume the queue, and write its own logs.
resource "aws_iam_role" "function" {
  name = "${var.name}-function"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "lambda.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy" "function" {
  name = "pkgsum-index"
  role = aws_iam_role.function.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Sid = "ReadRepository", Effect = "Allow", Action = "s3:GetObject", Resource = "${local.bucket_arn}/${local.prefix}*" },
      { Sid = "WriteIndex", Effect = "Allow", Action = "s3:PutObject", Resource = concat(local.summaries, local.own_files, local.site_files) },
      { Sid = "RemoveStaleFiles", Effect = "Allow", Action = "s3:DeleteObject", Resource = concat(local.summaries, local.pieces, local.history, local.splice, ["${local.bucket_arn}/${local.prefix}*site/*"]) },
      # A summary spliced in a multipart upload that fails is aborted.
      { Sid = "AbortUploads", Effect = "Allow", Action = "s3:AbortMultipartUpload", Resource = concat(local.summaries, local.own_files) },
      { Sid = "ListBucket", Effect = "Allow", Action = "s3:ListBucket", Resource = local.bucket_arn },
      { Sid = "ConsumeEvents", Effect = "Allow", Action = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"], Resource = aws_sqs_queue.events.arn },
      { Sid = "WriteLogs", Effect = "Allow", Action = ["logs:CreateLogStream", "logs:PutLogEvents"], Resource = "${aws_cloudwatch_log_group.function.arn}:*" },
    ]
  })
}

# The scheduled prune deletes package files: granted only while a
# retention rule is set.
resource "aws_iam_role_policy" "prune" {
  count = var.prune_keep > 0 || var.prune_older_than != "" ? 1 : 0
  name  = "pkgsum-prune"
  role  = aws_iam_role.function.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Sid = "PrunePackages", Effect = "Allow", Action = "s3:DeleteObject", Resource = "${local.bucket_arn}/${local.prefix}*${var.package_suffix}" },
    ]
  })
}

# ---- who uploads -----------------------------------------------------------
# Least privilege for the CI that uploads packages: PutObject on package
# keys under the prefix and nothing else, so it can neither overwrite the
# summaries or the state nor read or delete anything. The denials hold
# whatever the suffix: no summary (pkg_summary.*, but not a package such as
# pkg_summary-utils-1.0.tgz), nothing under .pkgsum/, and no object
# encrypted with a customer's key (SSE-C), which pkgsum could not read.

resource "aws_iam_policy" "uploader" {
  name        = "${var.name}-uploader"
  description = "Upload pkgsrc packages to the repository, nothing else."
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Sid = "UploadPackages", Effect = "Allow", Action = "s3:PutObject", Resource = "${local.bucket_arn}/${local.prefix}*${var.package_suffix}" },
      # What `pkgsum push` reads: what is at a package's key already, the
      # summaries (the platform, DEPENDS, when a push is live) and the
      # status (what the indexer found). Nothing else.
      { Sid = "ReadForPush", Effect = "Allow", Action = "s3:GetObject", Resource = ["${local.bucket_arn}/${local.prefix}*${var.package_suffix}", "${local.bucket_arn}/${local.prefix}*pkg_summary.*", "${local.bucket_arn}/${local.prefix}*.pkgsum/status.json"] },
      { Sid = "DenyOwnFiles", Effect = "Deny", Action = "s3:PutObject", Resource = ["${local.bucket_arn}/${local.prefix}*pkg_summary.*", "${local.bucket_arn}/${local.prefix}*.pkgsum/*"] },
      { Sid = "DenyCustomerKeys", Effect = "Deny", Action = "s3:PutObject", Resource = "${local.bucket_arn}/${local.prefix}*", Condition = { Null = { "s3:x-amz-server-side-encryption-customer-algorithm" = "false" } } },
    ]
  })
}

resource "aws_iam_role" "uploader" {
  count = var.uploader_principal_arn == "" ? 0 : 1
  name  = "${var.name}-uploader"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { AWS = var.uploader_principal_arn }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "uploader" {
  count      = length(aws_iam_role.uploader)
  role       = aws_iam_role.uploader[0].name
  policy_arn = aws_iam_policy.uploader.arn
}

resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  alarm_name          = "${var.name}-dead-letters"
  alarm_description   = "pkgsum could not apply some package events after 5 deliveries; they wait in the dead-letter queue. Fix the cause, then redrive them or run the reconcile."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.dead_letters.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_topic_arn == "" ? [] : [var.alarm_topic_arn]
}
