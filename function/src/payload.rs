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
//!   (the scheduled repair) rebuilds each repository from its listing;
//!   without `repositories`, those of `PKGSUM_REPOSITORIES`; then, if a
//!   retention rule is set (`PKGSUM_PRUNE_KEEP`, `PKGSUM_PRUNE_OLDER_THAN`),
//!   prunes each as `pkgsum prune --apply` does; and where a
//!   `pkg-vulnerabilities` file is published, audits the packages again
//!   for the site.
//!
//! Every answer that is not an error carries `"verdict"`: `indexed`, or
//! `unreadable` when a repository holds packages that cannot be read (as
//! the CLI's exit status 1; the packages are in the status object).

use std::time::SystemTime;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse};
use serde_json::{Value, json};

use crate::config::Config;
use crate::dispatch::apply_messages;
use crate::event;
use crate::prune;
use crate::reconcile::{UrlError, parse_s3_url, rebuild};
use crate::repo::{Applied, PassError, Repo};
use crate::store::Store;
use crate::verdict::Verdict;

/// Why an invocation failed; Lambda reports it (and retries the event).
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error(
        "reconcile: no repositories given (the payload's \"repositories\", or PKGSUM_REPOSITORIES)"
    )]
    NoRepositories,
    #[error("reconcile: {0}")]
    BadRepository(#[from] UrlError),
    /// Keys or repositories that could not be applied, one line each.
    #[error("{}", .0.join("; "))]
    NotApplied(Vec<String>),
    #[error("encoding the answer: {0}")]
    Answer(#[from] serde_json::Error),
}

impl PayloadError {
    /// A short name for the error, as Lambda's `errorType`.
    pub fn kind(&self) -> &'static str {
        match self {
            PayloadError::NoRepositories => "NoRepositories",
            PayloadError::BadRepository(_) => "BadRepository",
            PayloadError::NotApplied(_) => "NotApplied",
            PayloadError::Answer(_) => "Answer",
        }
    }
}

/// Handles one payload.
pub async fn apply_payload<S, F>(
    payload: &Value,
    store_for: F,
    config: &Config,
) -> Result<Value, PayloadError>
where
    S: Store,
    F: Fn(&str) -> S,
{
    if payload.get("pkgsum").and_then(Value::as_str) == Some("reconcile") {
        return reconcile(payload, store_for, config).await;
    }
    let messages = event::decode(payload);
    let from_sqs = messages.iter().any(|m| m.id.is_some());
    let outcome = apply_messages(&messages, store_for, config).await;
    // A few lines per invocation, however much of the event was ignored.
    for reason in outcome.ignored.iter().take(10) {
        tracing::info!(reason = %crate::excerpt::Bare(reason), "ignored");
    }
    if outcome.ignored.len() > 10 {
        tracing::info!(more = outcome.ignored.len() - 10, "more parts ignored");
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
        return Ok(serde_json::to_value(response)?);
    }
    if !outcome.is_success() {
        return Err(PayloadError::NotApplied(outcome.errors));
    }
    Ok(json!({
        "verdict": outcome.verdict().as_str(),
        "repositories": outcome.reports.len(),
        "read": outcome.reports.iter().map(|r| r.read.len()).sum::<usize>(),
        "removed": outcome.reports.iter().map(|r| r.removed.len()).sum::<usize>(),
        "unreadable": outcome.reports.iter().map(|r| r.failures.len()).sum::<usize>(),
        "held": outcome.reports.iter().flat_map(|r| r.held.iter()).collect::<Vec<_>>(),
        "ignored": outcome.ignored.len(),
    }))
}

/// The scheduled audit, when a `pkg-vulnerabilities` file is published
/// beside the repository: its findings kept for the site, which is
/// published again. How many packages it names.
async fn scheduled_audit<S: Store>(repo: &Repo<'_, S>) -> Result<Option<usize>, String> {
    let Some(checked) = crate::advisories::published(repo)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let mut state = repo.read_state().await.map_err(|e| e.to_string())?;
    let audit = crate::advisories::audit(&state, &checked.file);
    crate::advisories::keep(repo, &mut state, &audit)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Some(audit.findings.len()))
}

/// The scheduled prune, when a retention rule is set
/// (`PKGSUM_PRUNE_KEEP`, `PKGSUM_PRUNE_OLDER_THAN`): what it deleted.
async fn scheduled_prune<S: Store>(repo: &Repo<'_, S>) -> Result<Option<Value>, PassError> {
    let options = repo.config().prune;
    if !options.is_set() {
        return Ok(None);
    }
    let plan = prune::judge(repo, options, SystemTime::now()).await?;
    let pruned = prune::apply(repo, &plan, &()).await?;
    tracing::info!(
        repository = %plan.repository,
        deleted = pruned.deleted.len(),
        bytes = pruned.bytes,
        "pruned"
    );
    Ok(Some(json!({
        "deleted": pruned.deleted,
        "bytes": pruned.bytes,
        "kept": plan.shielded().count() + pruned.kept.len(),
    })))
}

async fn reconcile<S, F>(
    payload: &Value,
    store_for: F,
    config: &Config,
) -> Result<Value, PayloadError>
where
    S: Store,
    F: Fn(&str) -> S,
{
    let urls: Vec<String> = match payload.get("repositories").and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        None => config.repositories.clone(),
    };
    if urls.is_empty() {
        return Err(PayloadError::NoRepositories);
    }
    let mut results = Vec::new();
    let mut errors = Vec::new();
    let mut verdict = Verdict::Indexed;
    for url in urls {
        let (bucket, prefix) = parse_s3_url(&url)?;
        let store = store_for(&bucket);
        let repo = Repo::new(&store, &prefix, config);
        match rebuild(&repo, &()).await {
            Ok(Applied { report, unsure }) => {
                errors.extend(unsure.iter().map(|unsure| unsure.error.to_string()));
                verdict = verdict.max(report.verdict());
                let pruned = match scheduled_prune(&repo).await {
                    Ok(pruned) => pruned,
                    Err(error) => {
                        errors.push(error.to_string());
                        None
                    }
                };
                let audited = match Box::pin(scheduled_audit(&repo)).await {
                    Ok(audited) => audited,
                    Err(error) => {
                        errors.push(error);
                        None
                    }
                };
                results.push(json!({
                    "repository": url,
                    "read": report.read.len(),
                    "removed": report.removed.len(),
                    "unchanged": report.unchanged,
                    "unreadable": report.failures.len(),
                    "generation": report.generation,
                    "published": report.published,
                    "held": report.held,
                    "state_lost": report.state_lost.map(|loss| loss.to_string()),
                    "pruned": pruned,
                    "vulnerable": audited,
                }));
            }
            Err(error) => errors.push(error.to_string()),
        }
    }
    if !errors.is_empty() {
        return Err(PayloadError::NotApplied(errors));
    }
    Ok(json!({ "verdict": verdict.as_str(), "reconciled": results }))
}
