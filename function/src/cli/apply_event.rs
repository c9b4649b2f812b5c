//! `pkgsum apply-event FILE`: one event, applied as the Lambda function
//! applies it.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use pkgsum::config::Config;
use pkgsum::store::open::Buckets;
use pkgsum::verdict::Verdict;

use super::report::{print_found, print_outcome};

pub const ABOUT: &str = "Apply an event (S3 notification, SQS batch, `aws sqs receive-message` \
    output, SNS envelope or EventBridge event) from FILE, or - for standard input, exactly as \
    the Lambda function does.";

/// Bytes of an event read at most: an SQS batch of ten 256 KiB messages
/// fits many times over.
const MAX_EVENT: u64 = 16 << 20;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The event JSON file, or - for standard input.
    file: PathBuf,
}

pub async fn run(args: Args) -> anyhow::Result<Verdict> {
    let (shown, text) = read_event(&args.file)?;
    let messages =
        pkgsum::event::decode_str(&text).with_context(|| format!("{shown}: not JSON"))?;
    let unrecognized = messages.iter().all(|m| {
        m.targets.is_empty() && m.ignored.iter().all(|i| i == pkgsum::event::UNRECOGNIZED)
    });
    if unrecognized {
        bail!("{shown}: not an S3, SQS, SNS or EventBridge event; nothing applied");
    }
    let config = Config::from_env()?;
    let stores = Buckets::from_env().for_messages(&messages, &config).await;
    for (bucket, found) in &stores.found {
        print_found(bucket, Some(found));
    }
    let store_for = |bucket: &str| stores.get(bucket);
    let outcome = pkgsum::dispatch::apply_messages(&messages, store_for, &config).await;
    print_outcome(&outcome);
    Ok(outcome.verdict())
}

/// The event's text and how to name where it came from; bounded, as a
/// file named by mistake may be anything.
fn read_event(file: &Path) -> anyhow::Result<(String, String)> {
    let (shown, reader): (String, Box<dyn Read>) = if file.as_os_str() == "-" {
        ("(stdin)".to_owned(), Box::new(io::stdin()))
    } else {
        let opened = fs::File::open(file).with_context(|| format!("reading {}", file.display()))?;
        (file.display().to_string(), Box::new(opened))
    };
    let mut text = String::new();
    reader
        .take(MAX_EVENT + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("reading {shown}"))?;
    if text.len() as u64 > MAX_EVENT {
        bail!("{shown}: larger than {MAX_EVENT} bytes; not an event");
    }
    Ok((shown, text))
}
