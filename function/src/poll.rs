//! `pkgsum poll`: a long-running consumer of an SQS queue of S3 bucket
//! notifications, for running pkgsum on a VM, ECS or Kubernetes instead of
//! Lambda. It keeps the semantics of Lambda's SQS event source mapping:
//!
//! - messages are gathered into a batch of up to `batch_size`, waiting at
//!   most `window` after the first one arrives;
//! - the batch goes through the same handler as the function
//!   ([`crate::dispatch::apply_messages`]): one pass per repository;
//! - the messages that were applied (or named nothing to do) are deleted;
//!   those that failed are left alone, so SQS delivers them again once
//!   their visibility timeout ends, and moves them to the queue's
//!   dead-letter queue after its `maxReceiveCount`;
//! - a stop request is honoured between batches, never inside one.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::config::Config;
use crate::dispatch::{Outcome, apply_messages};
use crate::event;
use crate::store::open::Buckets;
use crate::store::s3::ConditionalWrites;
use crate::verdict::Verdict;

/// How to poll.
#[derive(Debug, Clone)]
pub struct PollOptions {
    /// Most messages handled as one batch (Lambda's BatchSize).
    pub batch_size: usize,
    /// How long to keep gathering after the first message of a batch
    /// (Lambda's MaximumBatchingWindowInSeconds).
    pub window: Duration,
    /// Long-poll time of one receive, at most 20 s (SQS's limit).
    pub wait: Duration,
    /// The visibility timeout to ask for; the queue's own when `None`.
    pub visibility_timeout: Option<Duration>,
    /// Stop when a receive finds the queue empty, instead of waiting for
    /// more: for a one-off drain and for tests.
    pub until_empty: bool,
}

impl Default for PollOptions {
    fn default() -> Self {
        PollOptions {
            batch_size: 10,
            window: Duration::ZERO,
            wait: Duration::from_secs(20),
            visibility_timeout: None,
            until_empty: false,
        }
    }
}

/// What one batch did.
#[derive(Debug)]
pub struct Batch {
    pub outcome: Outcome,
    /// What the first opening of each bucket new to this batch found.
    pub found: Vec<(String, ConditionalWrites)>,
    pub received: usize,
    /// Messages deleted from the queue: applied, or nothing to do.
    pub deleted: usize,
}

/// Why polling stopped before it was asked to.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// `cause` is the SDK error in one line; `source` keeps it whole.
    #[error("receiving from {queue}: {cause}")]
    Receive {
        queue: String,
        cause: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Polls `queue` until `stop` says so (or, with `until_empty`, until the
/// queue is empty), calling `on_batch` after each batch. Returns the worst
/// verdict of all batches. Receive errors are retried with a growing
/// delay, except with `until_empty`, where the first one ends the poll.
pub async fn poll(
    sqs: &Client,
    queue: &str,
    buckets: &Buckets,
    config: &Config,
    options: &PollOptions,
    mut stop: watch::Receiver<bool>,
    mut on_batch: impl FnMut(&Batch),
) -> Result<Verdict, PollError> {
    let mut verdict = Verdict::Indexed;
    let mut failures = 0u32;
    while !*stop.borrow() {
        let messages = match gather(sqs, queue, options, &mut stop).await {
            Ok(messages) => {
                failures = 0;
                messages
            }
            Err(err) if options.until_empty => return Err(err),
            Err(err) => {
                failures += 1;
                let delay = Duration::from_secs(1 << failures.min(5));
                tracing::warn!(queue, error = %err, retry_in = ?delay, "receive failed");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
        };
        if messages.is_empty() {
            if options.until_empty {
                break;
            }
            continue;
        }
        let batch = apply_batch(sqs, queue, &messages, buckets, config).await;
        verdict = verdict.max(batch.outcome.verdict());
        on_batch(&batch);
    }
    Ok(verdict)
}

/// Receives until the batch is full, the window after its first message
/// has passed, or (empty) a long poll found nothing.
async fn gather(
    sqs: &Client,
    queue: &str,
    options: &PollOptions,
    stop: &mut watch::Receiver<bool>,
) -> Result<Vec<Message>, PollError> {
    let mut batch: Vec<Message> = Vec::new();
    let mut deadline: Option<Instant> = None;
    let batch_size = options.batch_size.max(1);
    loop {
        let wait = match deadline {
            None => options.wait.min(Duration::from_secs(20)),
            Some(deadline) => deadline.saturating_duration_since(Instant::now()),
        };
        let request = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages((batch_size - batch.len()).min(10) as i32)
            .wait_time_seconds(wait.as_secs() as i32)
            .set_visibility_timeout(options.visibility_timeout.map(|v| v.as_secs() as i32));
        let received = tokio::select! {
            received = request.send() => received,
            _ = stop.changed() => return Ok(batch),
        };
        let received = received.map_err(|e| PollError::Receive {
            queue: queue.to_owned(),
            cause: crate::store::s3::error_line(&e),
            source: Box::new(e),
        })?;
        let got = received.messages.unwrap_or_default();
        if !got.is_empty() && deadline.is_none() {
            deadline = Some(Instant::now() + options.window);
        }
        let nothing_more = got.is_empty();
        batch.extend(got);
        let window_over = deadline.is_some_and(|d| Instant::now() >= d);
        if batch.len() >= batch_size || window_over || (nothing_more && deadline.is_none()) {
            return Ok(batch);
        }
    }
}

/// Handles one batch as the function would (each bucket opened once per
/// process), then deletes every message that is not to be delivered again.
async fn apply_batch(
    sqs: &Client,
    queue: &str,
    messages: &[Message],
    buckets: &Buckets,
    config: &Config,
) -> Batch {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({
                "messageId": m.message_id(),
                "eventSource": "aws:sqs",
                "body": m.body(),
            })
        })
        .collect();
    let decoded = event::decode(&json!({ "Records": records }));
    let stores = buckets.for_messages(&decoded, config).await;
    let outcome = apply_messages(&decoded, |bucket: &str| stores.get(bucket), config).await;
    let failed: BTreeSet<&str> = outcome.failed_messages.iter().map(String::as_str).collect();
    let done: Vec<&Message> = messages
        .iter()
        .filter(|m| !failed.contains(m.message_id().unwrap_or_default()))
        .collect();
    let deleted = delete(sqs, queue, &done).await;
    Batch {
        received: messages.len(),
        deleted,
        outcome,
        found: stores.found,
    }
}

/// Deletes messages ten at a time; returns how many went. A message that
/// could not be deleted is only delivered again, which is harmless: the
/// handler is idempotent.
async fn delete(sqs: &Client, queue: &str, messages: &[&Message]) -> usize {
    let mut deleted = 0;
    for chunk in messages.chunks(10) {
        let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .set_receipt_handle(m.receipt_handle().map(str::to_owned))
                    .build()
                    .ok()
            })
            .collect();
        let result = sqs
            .delete_message_batch()
            .queue_url(queue)
            .set_entries(Some(entries))
            .send()
            .await;
        match result {
            Ok(out) => {
                deleted += out.successful().len();
                for failed in out.failed() {
                    tracing::warn!(
                        queue,
                        id = failed.id(),
                        code = failed.code(),
                        "message not deleted; it will be delivered again"
                    );
                }
            }
            Err(error) => {
                tracing::warn!(queue, error = %crate::store::s3::error_line(&error), "messages not deleted; they will be delivered again");
            }
        }
    }
    deleted
}
