output "repository_url" {
  description = "The line for pkgin's repositories.conf."
  value       = local.repository_url
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
