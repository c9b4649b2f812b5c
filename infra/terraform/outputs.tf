output "repository_url" {
  description = "The line for pkgin's repositories.conf (with access = \"private\", add USER:PASSWORD@ after https://)."
  value       = local.private ? "https://${aws_cloudfront_distribution.private[0].domain_name}" : local.s3_url
}

output "credential_store_arn" {
  description = "With access = \"private\", the KeyValueStore that holds the users (aws cloudfront-keyvaluestore put-key --kvs-arn <this>)."
  value       = local.private ? aws_cloudfront_key_value_store.credentials[0].arn : ""
}

output "repository_s3_url" {
  description = "Where to upload packages, and the argument of pkgsum rebuild and verify."
  value       = "s3://${local.bucket}/${local.prefix}"
}

output "bucket_name" {
  value = local.bucket
}

output "event_queue_url" {
  value = aws_sqs_queue.events.id
}

output "dead_letter_queue_url" {
  value = aws_sqs_queue.dead_letters.id
}

output "function_name" {
  value = aws_lambda_function.index.function_name
}

output "function_role_arn" {
  value = aws_iam_role.function.arn
}

output "uploader_policy_arn" {
  description = "The policy to attach to whatever uploads packages (PutObject on package keys only)."
  value       = aws_iam_policy.uploader.arn
}

output "uploader_role_arn" {
  description = "The role uploader_principal_arn may assume to upload packages (empty without one)."
  value       = length(aws_iam_role.uploader) > 0 ? aws_iam_role.uploader[0].arn : ""
}
