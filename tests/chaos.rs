//! Chaos (issue 20): seeded trials of random uploads, overwrites and
//! deletes whose notifications are duplicated, reordered, delayed and
//! partly dropped, applied by 2 to 16 concurrent appliers (the Lambda
//! path, `apply_messages`, with SQS's redelivery of what failed), then
//! one reconcile for what was dropped. Every trial must end with each
//! published summary equal, byte for byte, to the records of what the
//! bucket lists, and no apply may fail but by contention.
//!
//! A seed fixes a trial's operations, the fate of each notification and
//! the number of appliers (16 for every tenth); the interleaving of the appliers is the
//! runtime's. A failure prints its seed: `PKGSUM_CHAOS_SEED=N` runs that
//! trial alone. `PKGSUM_CHAOS_TRIALS` and `PKGSUM_CHAOS_S3_TRIALS` change
//! how many run (1,000 on the memory store, 50 on LocalStack).

use crate::common;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use pkgsum::compression::Compression;
use pkgsum::config::Config;
use pkgsum::create::PackageBuilder;
use pkgsum::dispatch::apply_messages;
use pkgsum::event;
use pkgsum::reconcile::rebuild;
use pkgsum::repo::{Repo, output_key};
use pkgsum::store::memory::MemoryStore;
use pkgsum::store::{PutOptions, Store};
use tokio::sync::Mutex;

use crate::harness::trials;

trials! {
    tokio chaos_on_the_memory_store,
    s3 chaos_on_localstack,
}

const PREFIX: &str = "All/";
const BUCKET: &str = "chaos";

/// What one trial did, for the totals.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    ops: usize,
    deliveries: usize,
    dropped: usize,
    redelivered: usize,
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// The seeds to run: one (`PKGSUM_CHAOS_SEED`), or `count` from 1.
fn seeds(count_var: &str, default: u64) -> Vec<u64> {
    match env_number("PKGSUM_CHAOS_SEED") {
        Some(seed) => vec![seed],
        None => (1..=env_number(count_var).unwrap_or(default)).collect(),
    }
}

/// Runs `trial` for every seed, `parallel` at a time, and fails with the
/// seed and reason of every trial that failed.
async fn run_all<F, Fut>(seeds: Vec<u64>, parallel: usize, trial: F)
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<Tally, String>>,
{
    let count = seeds.len();
    let results: Vec<(u64, Result<Tally, String>)> = futures::stream::iter(seeds)
        .map(|seed| {
            let run = trial(seed);
            async move { (seed, run.await) }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    let mut total = Tally::default();
    let mut failed = Vec::new();
    for (seed, result) in results {
        match result {
            Ok(t) => {
                total.ops += t.ops;
                total.deliveries += t.deliveries;
                total.dropped += t.dropped;
                total.redelivered += t.redelivered;
            }
            Err(why) => failed.push(format!(
                "seed {seed}: {why} (rerun with PKGSUM_CHAOS_SEED={seed})"
            )),
        }
    }
    eprintln!(
        "chaos: {count} trials, {} operations, {} deliveries, {} dropped, {} redelivered after contention",
        total.ops, total.deliveries, total.dropped, total.redelivered
    );
    assert!(
        failed.is_empty(),
        "{} trials failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

async fn chaos_on_the_memory_store() {
    let seeds = seeds("PKGSUM_CHAOS_TRIALS", 1000);
    run_all(seeds, 4, |seed| async move {
        let store = Arc::new(MemoryStore::setting_modified());
        // One format keeps a thousand trials quick; every format is
        // written from the same records, and LocalStack's trials write all.
        trial(store, seed, vec![Compression::Gzip], 30).await
    })
    .await;
}

async fn chaos_on_localstack() {
    let seeds = seeds("PKGSUM_CHAOS_S3_TRIALS", 50);
    run_all(seeds, 8, |seed| async move {
        let store = Arc::new(pkgsum::testing::s3_bucket().await);
        trial(store, seed, Config::default().formats, 12).await
    })
    .await;
}

/// A notification waiting to be delivered, and how often it was.
type Delivery = (serde_json::Value, u32);

/// Deliveries of one notification before it counts as lost (SQS's
/// maxReceiveCount in the templates is 5; contention retries within a
/// pass first).
const DELIVERIES: u32 = 5;

/// The queue the appliers take deliveries from, as SQS holds them.
#[derive(Default)]
struct Queue {
    waiting: Mutex<VecDeque<Delivery>>,
    /// Deliveries taken and not yet settled.
    in_flight: AtomicUsize,
}

/// One trial: operations and their notifications' fates from `seed`,
/// applied concurrently, then a reconcile, then the check.
async fn trial<S: Store + 'static>(
    store: Arc<S>,
    seed: u64,
    formats: Vec<Compression>,
    most_ops: usize,
) -> Result<Tally, String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    // Every tenth trial runs the most appliers: the races finding had 16.
    let appliers = match seed % 10 {
        0 => 16,
        _ => rng.usize(2..=16),
    };
    let ops = rng.usize(5..=most_ops);
    let config = Arc::new(Config {
        max_attempts: 50,
        formats,
        ..Config::default()
    });
    let queue = Arc::new(Queue::default());
    let uploading = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut tally = Tally {
        ops,
        ..Tally::default()
    };
    let handles: Vec<_> = (0..appliers)
        .map(|_| {
            let (store, queue, config, uploading) = (
                Arc::clone(&store),
                Arc::clone(&queue),
                Arc::clone(&config),
                Arc::clone(&uploading),
            );
            tokio::spawn(apply_until_done(store, queue, config, uploading))
        })
        .collect();
    // Few keys, so overwrites and deletes race with each other's events.
    let keys: Vec<String> = (0..6).map(|i| format!("{PREFIX}p{i}-1.0.tgz")).collect();
    let mut held: Vec<Delivery> = Vec::new();
    for op in 0..ops {
        let key = &keys[rng.usize(..keys.len())];
        let event = if rng.u8(..4) == 0 {
            store.delete(key).await.map_err(|e| e.to_string())?;
            common::s3_event(BUCKET, "ObjectRemoved:Delete", &[key])
        } else {
            let comment = format!("version {op} of seed {seed}\n");
            let pkgname = key.trim_start_matches(PREFIX).trim_end_matches(".tgz");
            let body = PackageBuilder::new(pkgname)
                .member("+COMMENT", comment)
                .build()
                .map_err(|e| e.to_string())?;
            let put = store.put(key, Bytes::from(body), PutOptions::default());
            put.await.map_err(|e| e.to_string())?;
            common::s3_event(BUCKET, "ObjectCreated:Put", &[key])
        };
        let mut waiting = queue.waiting.lock().await;
        match rng.u8(..20) {
            // Dropped: only the reconcile sees this change.
            0 | 1 => tally.dropped += 1,
            // Duplicated.
            2..=4 => {
                waiting.push_back((event.clone(), 0));
                waiting.push_back((event, 0));
            }
            // Delayed: delivered after later operations.
            5..=8 => held.push((event, 0)),
            _ => waiting.push_back((event, 0)),
        }
        // Reordered: what waits is shuffled now and then, and some of
        // what was held is let go.
        if rng.u8(..3) == 0 {
            rng.shuffle(waiting.make_contiguous());
        }
        if !held.is_empty() && rng.bool() {
            waiting.push_back(held.swap_remove(rng.usize(..held.len())));
        }
        drop(waiting);
        if rng.bool() {
            tokio::time::sleep(Duration::from_millis(rng.u64(0..5))).await;
        }
    }
    queue.waiting.lock().await.extend(held.drain(..));
    uploading.store(false, Ordering::SeqCst);
    for handle in handles {
        let (delivered, redelivered, failures) = handle.await.map_err(|e| e.to_string())?;
        tally.deliveries += delivered;
        tally.redelivered += redelivered;
        if let Some(failure) = failures.first() {
            return Err(format!(
                "an apply failed other than by contention: {failure}"
            ));
        }
    }
    // The scheduled reconcile: repairs what was dropped. The operations
    // may have deleted every package, which is then what to publish.
    let reconcile = Config {
        allow_empty: true,
        ..(*config).clone()
    };
    let repo = Repo::new(store.as_ref(), PREFIX, &reconcile);
    rebuild(&repo, &())
        .await
        .map_err(|e| format!("the reconcile failed: {e}"))?;
    let want = common::truth(store.as_ref(), PREFIX, ".tgz").await;
    for &format in &config.formats {
        let got = common::published(store.as_ref(), &output_key(PREFIX, format)).await;
        if got != want {
            // The first lines that differ, so a failure says what.
            let (g, w) = (
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want),
            );
            let differ: Vec<String> = g
                .lines()
                .zip(w.lines())
                .filter(|(a, b)| a != b)
                .take(3)
                .map(|(a, b)| format!("{a:?} for {b:?}"))
                .collect();
            return Err(format!(
                "{format:?} summary differs from the listing ({} bytes against {}, {appliers} appliers, {ops} operations; {})",
                got.len(),
                want.len(),
                differ.join(", ")
            ));
        }
    }
    Ok(tally)
}

/// Whether an apply failed only by contention: other passes kept winning
/// the commit, or the uploader kept replacing a package while it was read
/// (then the notification is delivered again). A failure to read
/// pkgsum's own files under `.pkgsum/` is never contention: a pass must
/// read the manifest again instead (the races finding).
fn is_contention(error: &str) -> bool {
    let package_moved_on = !error.contains("/.pkgsum/")
        && [
            "(the object changed)",
            "cut short",
            "kept changing while read",
        ]
        .iter()
        .any(|said| error.contains(said));
    error.contains("still contended") || package_moved_on
}

/// One applier: takes one to three deliveries at a time (an SQS batch),
/// applies them, and puts back what failed by contention (SQS delivers it
/// again). Returns how many it delivered, how many went back, and every
/// failure that was not contention.
async fn apply_until_done<S: Store>(
    store: Arc<S>,
    queue: Arc<Queue>,
    config: Arc<Config>,
    uploading: Arc<std::sync::atomic::AtomicBool>,
) -> (usize, usize, Vec<String>) {
    let (mut delivered, mut redelivered, mut failures) = (0, 0, Vec::new());
    loop {
        let batch: Vec<Delivery> = {
            let mut waiting = queue.waiting.lock().await;
            let take = waiting.len().min(1 + fastrand::usize(..3));
            queue.in_flight.fetch_add(take, Ordering::SeqCst);
            waiting.drain(..take).collect()
        };
        if batch.is_empty() {
            let idle = queue.in_flight.load(Ordering::SeqCst) == 0;
            if !uploading.load(Ordering::SeqCst) && idle {
                return (delivered, redelivered, failures);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        }
        for (body, delivery) in &batch {
            let messages = event::decode(body);
            let outcome = apply_messages(&messages, |_| Arc::clone(&store), &config).await;
            delivered += 1;
            for error in &outcome.errors {
                if !is_contention(error) {
                    failures.push(error.clone());
                }
            }
            if outcome.is_success() {
                continue;
            }
            if *delivery + 1 >= DELIVERIES {
                failures.push(format!("a notification failed {DELIVERIES} deliveries"));
                continue;
            }
            redelivered += 1;
            let again = (body.clone(), delivery + 1);
            queue.waiting.lock().await.push_back(again);
        }
        queue.in_flight.fetch_sub(batch.len(), Ordering::SeqCst);
    }
}
