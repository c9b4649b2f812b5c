//! `pkgsum poll QUEUE_URL`: an SQS consumer with the semantics of
//! Lambda's event source mapping.

use std::time::Duration;

use pkgsum::config::Config;
use pkgsum::poll::PollOptions;
use pkgsum::store::open::Buckets;
use pkgsum::verdict::Verdict;

use super::report::{count, print_found, print_outcome};

pub const ABOUT: &str = "Consume QUEUE_URL, an SQS queue receiving a bucket's S3 notifications: \
    messages are taken in batches, each applied as the Lambda function would, and deleted once \
    applied; a message that could not be applied stays, so SQS delivers it again after its \
    visibility timeout (and to the dead-letter queue in the end). Runs until SIGTERM or Ctrl-C, \
    which finish the batch at hand first.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The queue's URL (`aws sqs get-queue-url`).
    queue_url: String,
    /// Most messages in one batch.
    #[arg(long, default_value_t = 10)]
    batch_size: usize,
    /// Seconds to keep gathering a batch after its first message.
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    batching_window: u64,
    /// Long-poll time of one receive, 1 to 20 seconds.
    #[arg(long, default_value_t = 20, value_name = "SECONDS")]
    wait: u64,
    /// Visibility timeout to ask for (default: the queue's).
    #[arg(long, value_name = "SECONDS")]
    visibility_timeout: Option<u64>,
    /// Stop once the queue is empty instead of waiting for more.
    #[arg(long)]
    until_empty: bool,
}

impl Args {
    fn options(&self) -> PollOptions {
        PollOptions {
            batch_size: self.batch_size.clamp(1, 10_000),
            window: Duration::from_secs(self.batching_window.min(300)),
            wait: Duration::from_secs(self.wait.clamp(1, 20)),
            visibility_timeout: self.visibility_timeout.map(Duration::from_secs),
            until_empty: self.until_empty,
        }
    }
}

pub async fn run(args: Args) -> anyhow::Result<Verdict> {
    let options = args.options();
    let config = Config::from_env()?;
    let sdk = pkgsum::store::s3::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let buckets = Buckets::new(pkgsum::store::s3::client_from_config(&sdk));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        super::stop_signal().await;
        eprintln!("pkgsum: stopping after the batch at hand");
        let _ = stop_tx.send(true);
    });
    let queue = &args.queue_url;
    eprintln!("pkgsum: polling {queue}");
    let verdict = pkgsum::poll::poll(&sqs, queue, &buckets, &config, &options, stop_rx, |batch| {
        for (bucket, found) in &batch.found {
            print_found(bucket, Some(found));
        }
        print_outcome(&batch.outcome);
        eprintln!(
            "pkgsum: {}: {} deleted, {} left for redelivery",
            count(batch.received, "message"),
            batch.deleted,
            batch.received - batch.deleted
        );
    })
    .await?;
    // A service that was told to stop ended well; a drain reports what
    // its batches found.
    Ok(if options.until_empty {
        verdict
    } else {
        Verdict::Indexed
    })
}
