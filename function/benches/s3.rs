//! `cargo bench --bench s3`: what one upload costs a large repository, and
//! how a burst of uploads is absorbed. Figures for docs/benchmarks.md.
//!
//! 1. A single-package event applied to repositories of 200, 1,000, 20,000
//!    and 100,000 packages (`PKGSUM_BENCH_RECORDS`, comma-separated): wall
//!    time, CPU time, bytes read and written, requests (the mean of
//!    `PKGSUM_BENCH_UPDATES`, 20 by default, each adding a package next to
//!    a different one of the repository's, spread evenly), on the in-memory
//!    store (`PKGSUM_BENCH_MEMORY=0` leaves it out) and, under
//!    `localstack/run-with`, on LocalStack, then on Ceph RGW and SeaweedFS
//!    where `PKGSUM_RGW_ENDPOINT` and `PKGSUM_SEAWEEDFS_ENDPOINT` are set.
//! 2. Under `localstack/run-with` only: 1,000 uploads at once
//!    (`PKGSUM_BENCH_BURST`), their real S3 -> SQS notifications taken as
//!    the deployed stack's defaults take them (2 concurrent invocations,
//!    batches of up to 1,000 gathered for up to 1 s): when all are in the
//!    summary, and how many versions of it were written. With
//!    `PKGSUM_RGW_ENDPOINT` set (`ceph/start.sh`), once more with Ceph RGW
//!    as the S3.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use pkgsum::config::Config;
use pkgsum::create::PackageBuilder;
use pkgsum::dispatch::apply_messages;
use pkgsum::record::{self, FileInfo, Metadata};
use pkgsum::repo::Repo;
use pkgsum::sample;
use pkgsum::store::counting::Counting;
use pkgsum::store::memory::MemoryStore;
use pkgsum::store::s3::{S3Store, client_from_env};
use pkgsum::store::{ObjectMeta, Peeked, PutOptions, Store, StoreResult};
use pkgsum::testing::{Child, invoke_lambda, lambda_emulator};
use serde_json::json;

/// Most messages a handler takes at once: the stack's BatchSize, or
/// `PKGSUM_BENCH_BATCH`.
fn batch_size() -> usize {
    env_count("PKGSUM_BENCH_BATCH", 1000)
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// User + system CPU time of this process, from /proc.
fn cpu_time() -> Duration {
    Duration::from_millis(ticks_in("/proc/self/stat") * 10)
}

/// User + system clock ticks (10 ms) in the `/proc` stat file at `path`.
fn ticks_in(path: impl AsRef<std::path::Path>) -> u64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum()
}

/// CPU ticks of each live thread, by name (`PKGSUM_BENCH_TRACE`).
fn thread_ticks() -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        *out.entry(name.trim().to_owned()).or_default() += ticks_in(path.join("stat"));
    }
    out
}

/// Counts PUTs of `pkg_summary.gz`: one per summary rewrite.
struct Rewrites<S> {
    inner: S,
    count: AtomicU64,
}

impl<S: Store> Store for Rewrites<S> {
    async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>> {
        self.inner.head(key).await
    }
    async fn get(&self, key: &str) -> StoreResult<Option<(Bytes, ObjectMeta)>> {
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &str, range: Range<u64>, etag: &str) -> StoreResult<Bytes> {
        self.inner.get_range(key, range, etag).await
    }
    async fn peek(&self, key: &str, len: u64, unless: Option<&str>) -> StoreResult<Peeked> {
        self.inner.peek(key, len, unless).await
    }

    async fn put(&self, key: &str, body: Bytes, options: PutOptions) -> StoreResult<String> {
        let out = self.inner.put(key, body, options).await;
        if out.is_ok() && key.ends_with("pkg_summary.gz") {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        out
    }
    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>> {
        self.inner.list(prefix).await
    }
}

/// The records this benchmark used before `sample` (about 410 bytes, all
/// alike): `PKGSUM_BENCH_SHAPE=small` measures with them again, to compare
/// with figures taken before.
fn small_record(i: usize) -> (String, Vec<u8>) {
    let name = format!("pkg{i:05}-1.{}", i % 9);
    let meta = Metadata {
        contents: format!("@name {name}\n@pkgdep dep{}>=1.0\n", i % 997).into_bytes(),
        comment: format!("Synthetic package {i}\n").into_bytes(),
        desc: format!("Package {i} for the single-event benchmark.\nIt has a few lines.\n\nHomepage:\nhttps://example.org/{name}/\n").into_bytes(),
        build_info: Some(
            format!(
                "BUILD_DATE=2026-11-25 10:00:00 +0000\nCATEGORIES=misc\nHOMEPAGE=https://example.org/{name}/\n\
                 LICENSE=modified-bsd\nMACHINE_ARCH=x86_64\nOPSYS=NetBSD\nOS_VERSION=10.1\nPKGPATH=misc/pkg{i:05}\n\
                 PKGTOOLS_VERSION=20250417\n"
            )
            .into_bytes(),
        ),
        size_pkg: Some(b"12345\n".to_vec()),
    };
    let file = format!("{name}.tgz");
    let record = record::render(
        &meta,
        Some(FileInfo {
            name: file.as_bytes(),
            size: 4096 + i as u64,
        }),
    );
    (file, record)
}

/// Record `i` of the shape `PKGSUM_BENCH_SHAPE` names: `sample` (like
/// pkgsrc's) unless it says `small`.
fn bench_record(i: usize) -> (String, Vec<u8>) {
    match std::env::var("PKGSUM_BENCH_SHAPE").as_deref() {
        Ok("small") => small_record(i),
        _ => sample::record(i),
    }
}

/// Seeds a repository with `records` packages: the state and its
/// summaries, as earlier events would have left them.
async fn seed<S: Store>(store: &S, prefix: &str, records: usize, config: &Config) {
    pkgsum::testing::seed(store, prefix, records, bench_record, config).await;
}

/// Deletes `store`'s bucket and everything in it. At 100,000 packages
/// each update keeps a copy of the 64 MiB of summaries in the history:
/// Ceph RGW's test cluster holds 2 GiB in memory and SeaweedFS's a few
/// volumes per bucket, and either stops taking writes when full.
async fn remove_bucket(store: &S3Store) {
    let listed = store.list("").await.expect("list the bench's bucket");
    futures::stream::iter(listed)
        .for_each_concurrent(16, |meta| async move {
            store.delete(&meta.key).await.expect("delete");
        })
        .await;
    let bucket = store.client().delete_bucket().bucket(store.bucket());
    bucket.send().await.expect("delete the bench's bucket");
}

/// The package update `u` of `updates` adds: named after a seeded
/// package spread evenly over the repository, so that it lands in that
/// package's run. Updates that all landed in one place would measure that
/// one run's size (runs vary from half to twice their target) and not
/// what an update costs on average.
fn newcomer(records: usize, u: usize, updates: usize) -> String {
    let near = (2 * u + 1) * records / (2 * updates.max(1));
    let (file, _) = bench_record(near);
    let stem = file.strip_suffix(".tgz").unwrap_or(&file);
    let base = stem.rsplit_once('-').map_or(stem, |(base, _)| base);
    format!("{base}x{u}-1.0")
}

/// What `updates` single-package events cost a repository of `records`
/// packages, one after the other: the mean per update.
async fn single_event<S: Store>(label: &str, store: &Counting<S>, records: usize, updates: usize) {
    // PKGSUM_SITE=0 measures without the browsable site.
    let config = Config {
        site: std::env::var("PKGSUM_SITE").as_deref() != Ok("0"),
        ..Config::default()
    };
    seed(store, "All/", records, &config).await;
    let (mut wall, mut cpu, mut fetched, mut size) = (Duration::ZERO, Duration::ZERO, 0, 0);
    let mut counts = Vec::new();
    for u in 0..updates {
        let pkgname = newcomer(records, u, updates);
        let package = PackageBuilder::new(&pkgname).build().expect("package");
        size = package.len();
        let key = format!("All/{pkgname}.tgz");
        store
            .put(&key, Bytes::from(package), PutOptions::default())
            .await
            .expect("upload");
        // pkgin's one-second rule makes a publish wait for the next second
        // if the last one was published in this one: start on a fresh one.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        store.take();
        let event = json!({"Records": [{
            "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "bench"}, "object": {"key": key}}
        }]});
        let messages = pkgsum::event::decode(&event);
        let threads_before = thread_ticks();
        let (cpu_before, start) = (cpu_time(), Instant::now());
        let outcome = apply_messages(&messages, |_| store, &config).await;
        wall += start.elapsed();
        cpu += cpu_time().saturating_sub(cpu_before);
        assert!(outcome.is_success(), "{:?}", outcome.errors);
        assert_eq!(outcome.reports[0].packages, records + u + 1);
        if std::env::var_os("PKGSUM_BENCH_TRACE").is_some() {
            let report = &outcome.reports[0];
            eprintln!(
                "{label} {records} update {u}: {} runs compressed, {} copied",
                report.runs_compressed, report.runs_copied
            );
            for (name, ticks) in thread_ticks() {
                let before = threads_before.get(&name).copied().unwrap_or(0);
                if ticks > before {
                    eprintln!("  {name}: {} ms", (ticks - before) * 10);
                }
            }
        }
        fetched += outcome.reports[0].bytes_fetched;
        counts.push(store.take());
    }
    let n = updates.max(1) as f64;
    let mean = |f: &dyn Fn(&pkgsum::store::counting::Counts) -> u64| {
        counts.iter().map(f).sum::<u64>() as f64 / n
    };
    println!(
        "| {label} | {records} | {:.0} ms | {:.0} ms | {:.1} KiB (package {:.1} KiB) | {:.2} MiB | {:.2} MiB | {:.0} / {:.0} / {:.0} / {:.0} |",
        wall.as_secs_f64() * 1000.0 / n,
        cpu.as_secs_f64() * 1000.0 / n,
        fetched as f64 / 1024.0 / n,
        size as f64 / 1024.0,
        mean(&|c| c.bytes_read) / 1048576.0,
        mean(&|c| c.bytes_written) / 1048576.0,
        mean(&|c| c.heads),
        mean(&|c| c.gets + c.range_gets),
        mean(&|c| c.puts),
        mean(&|c| c.deletes),
    );
}

/// The peak resident set of a process, from /proc (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The Lambda function itself (the release build, behind cargo-lambda's
/// emulation of the runtime API) applying one upload to the repository
/// `All/` of `store`: its peak resident set, and the process's before it
/// handled anything.
async fn lambda_rss(store: &S3Store) -> (u64, u64) {
    let package = PackageBuilder::new("lambda-1.0").build().expect("package");
    store
        .put(
            "All/lambda-1.0.tgz",
            Bytes::from(package),
            PutOptions::default(),
        )
        .await
        .expect("upload");
    let port = 9600 + (std::process::id() % 300) as u16;
    let _emulator = tokio::task::spawn_blocking(move || lambda_emulator(port))
        .await
        .expect("emulator");
    let function = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_pkgsum-lambda"))
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("the Lambda function"),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = peak_rss(function.0.id());
    let event = json!({"Records": [{
        "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": store.bucket()}, "object": {"key": "All/lambda-1.0.tgz"}}
    }]});
    let payload = json!({"Records": [{"messageId": "1", "eventSource": "aws:sqs", "body": event.to_string()}]});
    let out = tokio::task::spawn_blocking(move || invoke_lambda(port, &payload))
        .await
        .expect("invoke");
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert!(
        out.status.success() && answer["batchItemFailures"] == json!([]),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    (peak_rss(function.0.id()), idle)
}

/// One Lambda invocation's batch, gathered as the SQS event source does:
/// up to `batch` messages, or whatever came within `window` of the first.
async fn gather(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    batch: usize,
    window: Duration,
) -> Vec<aws_sdk_sqs::types::Message> {
    let mut messages = Vec::new();
    let mut first = None;
    while messages.len() < batch {
        if first.is_some_and(|f: Instant| f.elapsed() >= window) {
            break;
        }
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages((batch - messages.len()).min(10) as i32)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        if out.messages().is_empty() && first.is_none() {
            return messages;
        }
        first.get_or_insert_with(Instant::now);
        messages.extend(out.messages().iter().cloned());
    }
    messages
}

/// 1,000 uploads at once, taken as the deployed stack's defaults take them
/// (infra/sam: 2 concurrent invocations, batches of up to 1,000 messages
/// gathered for up to 1 s): when every package is in `pkg_summary.gz`,
/// counted from the last upload, and how many versions of it were written.
///
/// `direct` sends each upload's notification to the queue itself, as soon
/// as the upload is done, instead of LocalStack's S3 -> SQS wiring, which
/// delivers a few dozen per second here: that measures pkgsum's part
/// alone.
async fn burst(store: Arc<Rewrites<S3Store>>, uploads: usize, direct: bool) -> Vec<String> {
    const CONCURRENCY: usize = 2;
    let batch = batch_size();
    const WINDOW: Duration = Duration::from_secs(1);
    const EXISTING: usize = 1000;
    // An existing repository: the burst is incremental, as it is for a
    // repository in use (a fresh one is read whole by its first pass).
    seed(&store.inner, "All/", EXISTING, &Config::default()).await;
    let (sqs, url) = if direct {
        let config = pkgsum::store::s3::sdk_config().await;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let name = format!("{}-direct", store.inner.bucket());
        let url = sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .expect("queue");
        (sqs, url.queue_url.expect("queue url"))
    } else {
        pkgsum::testing::subscribe(&store.inner).await
    };

    let start = Instant::now();
    let remaining = Arc::new(AtomicU64::new(uploads as u64));
    let config = Arc::new(Config::from_env().expect("configuration"));
    // The event source polls while the function runs: batches gathered by
    // pollers wait in a channel for the next free handler.
    let (batches, ready) = tokio::sync::mpsc::channel::<Vec<aws_sdk_sqs::types::Message>>(1);
    let ready = Arc::new(tokio::sync::Mutex::new(ready));
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut pollers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (sqs, url, remaining, batches) = (
            sqs.clone(),
            url.clone(),
            Arc::clone(&remaining),
            batches.clone(),
        );
        pollers.push(tokio::spawn(async move {
            while remaining.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
                let batch = gather(&sqs, &url, batch, WINDOW).await;
                if !batch.is_empty() && batches.send(batch).await.is_err() {
                    break;
                }
            }
        }));
    }
    drop(batches);
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (store, sqs, url, remaining, config, ready) = (
            Arc::clone(&store),
            sqs.clone(),
            url.clone(),
            Arc::clone(&remaining),
            Arc::clone(&config),
            Arc::clone(&ready),
        );
        workers.push(tokio::spawn(async move {
            while remaining.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
                let next = tokio::time::timeout(Duration::from_secs(1), async {
                    ready.lock().await.recv().await
                });
                let batch = match next.await {
                    Ok(Some(batch)) => batch,
                    Ok(None) => break,
                    Err(_) => continue,
                };
                let records: Vec<serde_json::Value> = batch
                    .iter()
                    .map(|m| json!({"messageId": m.message_id(), "eventSource": "aws:sqs", "body": m.body()}))
                    .collect();
                let keys: usize = batch
                    .iter()
                    .filter_map(|m| serde_json::from_str::<serde_json::Value>(m.body().unwrap_or("{}")).ok())
                    .map(|b| b["Records"].as_array().map_or(0, Vec::len))
                    .sum();
                let messages = pkgsum::event::decode(&json!({ "Records": records }));
                let gathered = start.elapsed();
                let outcome = apply_messages(&messages, |_| Arc::clone(&store), &config).await;
                assert!(outcome.failed_messages.is_empty(), "{:?}", outcome.errors);
                if std::env::var_os("PKGSUM_BENCH_TRACE").is_some() {
                    for report in &outcome.reports {
                        eprintln!(
                            "{:.2}-{:.2} s: {} messages, {} read, generation {}, attempts {}, published {}",
                            gathered.as_secs_f64(),
                            start.elapsed().as_secs_f64(),
                            batch.len(),
                            report.read.len(),
                            report.generation,
                            report.attempts,
                            report.published
                        );
                    }
                }
                for chunk in batch.chunks(10) {
                    let entries: Vec<_> = chunk
                        .iter()
                        .enumerate()
                        .map(|(i, m)| {
                            aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                                .id(i.to_string())
                                .receipt_handle(m.receipt_handle().unwrap_or_default())
                                .build()
                                .expect("entry")
                        })
                        .collect();
                    sqs.delete_message_batch()
                        .queue_url(&url)
                        .set_entries(Some(entries))
                        .send()
                        .await
                        .expect("delete");
                }
                remaining.fetch_sub(keys as u64, Ordering::Relaxed);
            }
        }));
    }
    let mut uploading = Vec::new();
    for i in 0..uploads {
        let (store, sqs, url) = (Arc::clone(&store), sqs.clone(), url.clone());
        uploading.push(tokio::spawn(async move {
            let body = PackageBuilder::new(&format!("burst{i:04}-1.0"))
                .build()
                .expect("package");
            let key = format!("All/burst{i:04}-1.0.tgz");
            store
                .put(&key, Bytes::from(body), PutOptions::default())
                .await
                .expect("upload");
            if direct {
                let event = json!({"Records": [{
                    "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": store.inner.bucket()}, "object": {"key": key}}
                }]});
                sqs.send_message()
                    .queue_url(&url)
                    .message_body(event.to_string())
                    .send()
                    .await
                    .expect("notify");
            }
        }));
    }
    for task in uploading {
        task.await.expect("upload task");
    }
    let uploaded = start.elapsed();
    // When the published summary first holds every package.
    let summary = "All/pkg_summary.gz";
    let live = loop {
        if let Ok(Some((body, _))) = store.inner.get(summary).await {
            let mut text = Vec::new();
            let decoded = pkgsum::compression::Compression::Gzip
                .decoder(&body[..])
                .and_then(|mut d| std::io::Read::read_to_end(&mut d, &mut text));
            let count = text.windows(13).filter(|w| *w == b"PKGNAME=burst").count();
            if decoded.is_ok() && count == uploads {
                break start.elapsed();
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "never all published"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for worker in workers {
        worker.await.expect("worker");
    }
    for poller in pollers {
        poller.abort();
    }
    let config = Config::default();
    let state = Repo::new(store.as_ref(), "All/", &config)
        .read_state()
        .await
        .expect("state");
    vec![
        format!("{:.1} s", uploaded.as_secs_f64()),
        format!("{:.1} s", (live - uploaded).as_secs_f64()),
        format!("{} ({EXISTING} before)", state.len()),
        format!("{}", store.count.load(Ordering::Relaxed)),
    ]
}

#[tokio::main]
async fn main() {
    // Repository sizes, comma-separated: what one update costs at each.
    let sizes: Vec<usize> = std::env::var("PKGSUM_BENCH_RECORDS")
        .unwrap_or_else(|_| "200,1000,20000,100000".to_owned())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let on_localstack = std::env::var("PKGSUM_LOCALSTACK").as_deref() == Ok("1");
    let updates = env_count("PKGSUM_BENCH_UPDATES", 20);
    println!(
        "| store | packages | wall | CPU | header fetched | read | written | HEAD / GET / PUT / DELETE |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    // PKGSUM_BENCH_MEMORY=0 leaves the memory store out (to profile the
    // LocalStack rows alone).
    let on_memory = env_count("PKGSUM_BENCH_MEMORY", 1) > 0;
    for &records in sizes.iter().filter(|_| on_memory) {
        single_event(
            "memory",
            &Counting::new(MemoryStore::new()),
            records,
            updates,
        )
        .await;
    }
    if !on_localstack {
        println!("\n(LocalStack figures: run under localstack/run-with)");
        return;
    }
    let client = client_from_env().await;
    let make_bucket = |name: String| {
        let client = client.clone();
        async move {
            client
                .create_bucket()
                .bucket(&name)
                .send()
                .await
                .expect("bucket");
            S3Store::new(client, name)
        }
    };
    let mut rss = Vec::new();
    for &records in &sizes {
        let store = make_bucket(format!("pkgsum-bench-{:08x}", fastrand::u32(..))).await;
        let store = Counting::new(store);
        single_event("LocalStack", &store, records, updates).await;
        // PKGSUM_BENCH_LAMBDA=0 leaves the function out.
        if env_count("PKGSUM_BENCH_LAMBDA", 1) > 0 {
            rss.push((records, lambda_rss(store.inner()).await));
        }
        remove_bucket(store.inner()).await;
    }
    // The same on the S3-compatible servers `scripts/test` runs, where
    // their endpoints are set (`ceph/start.sh`, `seaweedfs/start.sh`).
    for (label, endpoint) in [
        ("Ceph RGW", "PKGSUM_RGW_ENDPOINT"),
        ("SeaweedFS", "PKGSUM_SEAWEEDFS_ENDPOINT"),
    ] {
        if std::env::var_os(endpoint).is_none() {
            continue;
        }
        for &records in &sizes {
            let store = match label {
                "Ceph RGW" => pkgsum::testing::rgw_bucket().await,
                _ => pkgsum::testing::seaweedfs_bucket().await,
            };
            let found = store.probe("").await.expect("probe");
            let store = Counting::new(store.with_probed(found));
            single_event(label, &store, records, updates).await;
            remove_bucket(store.inner()).await;
        }
    }
    if !rss.is_empty() {
        println!();
        println!("| packages | the Lambda function's peak RSS, one update | idle |");
        println!("|---|---|---|");
        for (records, (peak, idle)) in rss {
            println!(
                "| {records} | {:.0} MiB | {:.0} MiB |",
                peak as f64 / 1048576.0,
                idle as f64 / 1048576.0
            );
        }
    }
    // PKGSUM_BENCH_BURST=0 measures single events only.
    let uploads = env_count("PKGSUM_BENCH_BURST", 1000);
    if uploads == 0 {
        return;
    }
    let mut columns = Vec::new();
    for direct in [false, true] {
        let store = make_bucket(format!("pkgsum-burst-{:08x}", fastrand::u32(..))).await;
        let store = Arc::new(Rewrites {
            inner: store,
            count: AtomicU64::new(0),
        });
        columns.push(burst(store, uploads, direct).await);
    }
    let mut headings = vec![
        "S3 -> SQS notifications (LocalStack)",
        "notifications sent at each upload",
    ];
    // The same with Ceph RGW as the S3 (the queue stays on LocalStack),
    // where `ceph/start.sh` runs one: a server whose requests cost what a
    // production store's do, not an emulator's.
    if std::env::var_os("PKGSUM_RGW_ENDPOINT").is_some() {
        let store = pkgsum::testing::rgw_bucket().await;
        let found = store.probe("").await.expect("probe RGW");
        let store = store.with_probed(found);
        let store = Arc::new(Rewrites {
            inner: store,
            count: AtomicU64::new(0),
        });
        columns.push(burst(store, uploads, true).await);
        headings.push("notifications sent at each upload, S3 on Ceph RGW");
    }
    println!();
    println!(
        "| {uploads} uploads at once, 2 handlers, batches of up to {} gathered for up to 1 s | {} |",
        batch_size(),
        headings.join(" | ")
    );
    println!("|---|{}", "---|".repeat(headings.len()));
    let rows = [
        "uploads finished after",
        "every package in pkg_summary.gz, after the last upload",
        "packages in the final state",
        "pkg_summary.gz versions written",
    ];
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<&str> = columns.iter().map(|c| c[i].as_str()).collect();
        println!("| {row} | {} |", cells.join(" | "));
    }
}
