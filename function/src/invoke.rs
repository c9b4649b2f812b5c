//! What one invocation of the Lambda function does, apart from the
//! runtime: decode the payload, apply it, and shape the answer the
//! trigger expects.
//!
//! - SQS batches answer `{"batchItemFailures": [...]}` naming only the
//!   messages to deliver again (the event source mapping must enable
//!   `ReportBatchItemFailures`).
//! - Direct S3 or EventBridge invocations fail as a whole, so Lambda's
//!   asynchronous retries apply.
//! - `{"pkgsum": "reconcile", "repositories": ["s3://bucket/prefix/"]}`
//!   (the scheduled repair) rebuilds each repository from its listing.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse};
use serde_json::{Value, json};

use crate::event;
use crate::handler::handle;
use crate::reconcile::{parse_s3_url, rebuild};
use crate::repo::Config;
use crate::store::Store;

/// Handles one payload. `Err` carries the message Lambda reports.
pub async fn invoke<S, F>(payload: &Value, store_for: F, config: &Config) -> Result<Value, String>
where
    S: Store,
    F: Fn(&str) -> S,
{
    if payload.get("pkgsum").and_then(Value::as_str) == Some("reconcile") {
        return reconcile(payload, store_for, config).await;
    }
    let messages = event::decode(payload);
    let from_sqs = messages.iter().any(|m| m.id.is_some());
    let outcome = handle(&messages, store_for, config).await;
    for reason in &outcome.ignored {
        tracing::info!(%reason, "ignored");
    }
    if from_sqs {
        // Both types are non-exhaustive: fill defaults, then set fields.
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = outcome
            .failed_messages
            .iter()
            .map(|id| {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id.clone();
                failure
            })
            .collect();
        return serde_json::to_value(response).map_err(|e| e.to_string());
    }
    if !outcome.is_success() {
        return Err(outcome.errors.join("; "));
    }
    Ok(json!({
        "repositories": outcome.reports.len(),
        "read": outcome.reports.iter().map(|r| r.read.len()).sum::<usize>(),
        "removed": outcome.reports.iter().map(|r| r.removed.len()).sum::<usize>(),
        "ignored": outcome.ignored.len(),
    }))
}

async fn reconcile<S, F>(payload: &Value, store_for: F, config: &Config) -> Result<Value, String>
where
    S: Store,
    F: Fn(&str) -> S,
{
    let from_env = std::env::var("PKGSUM_REPOSITORIES").unwrap_or_default();
    let urls: Vec<String> = match payload.get("repositories").and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        None => from_env
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    if urls.is_empty() {
        return Err(
            "reconcile: no repositories given (payload \"repositories\" or PKGSUM_REPOSITORIES)"
                .to_owned(),
        );
    }
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for url in urls {
        let (bucket, prefix) = parse_s3_url(&url)?;
        let store = store_for(&bucket);
        match rebuild(&store, &prefix, config, &()).await {
            Ok((report, unsure)) => {
                for (name, error) in unsure {
                    errors.push(format!("{url}{name}: {error}"));
                }
                results.push(json!({
                    "repository": url,
                    "read": report.read.len(),
                    "removed": report.removed.len(),
                    "unchanged": report.unchanged,
                    "failures": report.failures.len(),
                    "generation": report.generation,
                    "published": report.published,
                }));
            }
            Err(error) => errors.push(format!("{url}: {error}")),
        }
    }
    if errors.is_empty() {
        Ok(json!({ "reconciled": results }))
    } else {
        Err(errors.join("; "))
    }
}
