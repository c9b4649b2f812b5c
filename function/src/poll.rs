//! `pkgsum poll`: a long-running consumer of an SQS queue of S3 bucket
//! notifications, for running pkgsum on a VM, ECS or Kubernetes instead of
//! Lambda. It keeps the semantics of Lambda's SQS event source mapping:
//!
//! - messages are gathered into a batch of up to `batch_size`, waiting at
//!   most `window` after the first one arrives; the next batch is gathered
//!   while one is handled, as the event source's pollers do;
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
    let mut gathered = None;
    loop {
        let messages = match gathered.take() {
            Some(messages) => messages,
            None if *stop.borrow() => break,
            None => gather(sqs, queue, options, &mut stop).await,
        };
        let messages = match messages {
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
        // The next batch is gathered while this one is handled (it ends
        // early, with what it has, when a stop is asked for).
        let next = async {
            let stopped = *stop.borrow();
            match stopped {
                true => None,
                false => Some(gather(sqs, queue, options, &mut stop).await),
            }
        };
        let (batch, next) = tokio::join!(apply_batch(sqs, queue, &messages, buckets, config), next);
        gathered = next;
        verdict = verdict.max(batch.outcome.verdict());
        on_batch(&batch);
    }
    Ok(verdict)
}

/// Receives until the batch is full, the window after its first message
/// has passed, or (empty) a long poll found nothing. Once a receive came
/// back full the queue has a backlog, and the next round asks with
/// several short receives at once: one receive gives at most ten
/// messages, and its round trip, not the queue, limits a burst.
async fn gather(
    sqs: &Client,
    queue: &str,
    options: &PollOptions,
    stop: &mut watch::Receiver<bool>,
) -> Result<Vec<Message>, PollError> {
    let mut batch: Vec<Message> = Vec::new();
    let mut deadline: Option<Instant> = None;
    let mut backlog = false;
    let batch_size = options.batch_size.max(1);
    loop {
        let wait = match deadline {
            None => options.wait.min(Duration::from_secs(20)),
            Some(_) if backlog => Duration::ZERO,
            Some(deadline) => deadline.saturating_duration_since(Instant::now()),
        };
        let wanted = batch_size - batch.len();
        let rounds = match backlog {
            true => wanted.div_ceil(10).min(RECEIVES),
            false => 1,
        };
        let receives = (0..rounds).map(|i| {
            let asked = (wanted - i * 10).min(10);
            receive(sqs, queue, asked, wait, options.visibility_timeout)
        });
        let received = tokio::select! {
            received = futures::future::join_all(receives) => received,
            _ = stop.changed() => return Ok(batch),
        };
        let mut got = 0;
        let mut full = true;
        for messages in received {
            let messages = messages?;
            full &= messages.len() == 10;
            got += messages.len();
            batch.extend(messages);
        }
        if got > 0 && deadline.is_none() {
            deadline = Some(Instant::now() + options.window);
        }
        backlog = full && got > 0;
        let window_over = deadline.is_some_and(|d| Instant::now() >= d);
        if batch.len() >= batch_size || window_over || (got == 0 && deadline.is_none()) {
            return Ok(batch);
        }
    }
}

/// Most receives in flight at once while a backlog is drained.
const RECEIVES: usize = 5;

/// One ReceiveMessage of at most `asked` (1 to 10) messages.
async fn receive(
    sqs: &Client,
    queue: &str,
    asked: usize,
    wait: Duration,
    visibility_timeout: Option<Duration>,
) -> Result<Vec<Message>, PollError> {
    let received = sqs
        .receive_message()
        .queue_url(queue)
        .max_number_of_messages(asked.clamp(1, 10) as i32)
        .wait_time_seconds(wait.as_secs() as i32)
        .set_visibility_timeout(visibility_timeout.map(|v| v.as_secs() as i32))
        .send()
        .await
        .map_err(|e| PollError::Receive {
            queue: queue.to_owned(),
            cause: crate::store::s3::error_line(&e),
            source: Box::new(e),
        })?;
    Ok(received.messages.unwrap_or_default())
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

/// Deletes messages ten to a request, the requests at once; returns how
/// many went. A message that could not be deleted is only delivered
/// again, which is harmless: the handler is idempotent.
async fn delete(sqs: &Client, queue: &str, messages: &[&Message]) -> usize {
    let requests = messages.chunks(10).map(|ten| delete_ten(sqs, queue, ten));
    futures::future::join_all(requests).await.into_iter().sum()
}

/// One DeleteMessageBatch of at most ten messages; returns how many went.
async fn delete_ten(sqs: &Client, queue: &str, ten: &[&Message]) -> usize {
    let entries: Vec<DeleteMessageBatchRequestEntry> = ten
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
            for failed in out.failed() {
                tracing::warn!(
                    queue,
                    id = failed.id(),
                    code = failed.code(),
                    "message not deleted; it will be delivered again"
                );
            }
            out.successful().len()
        }
        Err(error) => {
            tracing::warn!(queue, error = %crate::store::s3::error_line(&error), "messages not deleted; they will be delivered again");
            0
        }
    }
}
