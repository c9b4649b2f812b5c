//! The repository pass and the event handler on in-memory and LocalStack
//! stores: byte-exact summaries, deletes and overwrites, duplicated and
//! shuffled events, many concurrent handlers, crashes between steps.

use crate::common;

use std::collections::BTreeSet;
use std::fs;
use std::sync::Arc;

use bytes::Bytes;
use pkgsum::compression::Compression;
use pkgsum::config::Config;
use pkgsum::create::{self, PackageBuilder};
use pkgsum::dispatch::apply_messages;
use pkgsum::event;
use pkgsum::repo::{self, Repo, output_key, state_key};
use pkgsum::store::counting::Counting;
use pkgsum::store::faulty::{Fault, Faulty, Op};
use pkgsum::store::memory::MemoryStore;
use pkgsum::store::{ErrorKind, PutOptions, Store};

const BUCKET: &str = "repo-bucket";

async fn upload(store: &impl Store, key: &str, body: Vec<u8>) {
    store
        .put(key, Bytes::from(body), PutOptions::default())
        .await
        .unwrap();
}

async fn deliver<S: Store>(
    store: &S,
    event: serde_json::Value,
    config: &Config,
) -> pkgsum::dispatch::Outcome {
    let messages = event::decode(&event);
    apply_messages(&messages, |_| store, config).await
}

fn oracle_packages() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(common::oracle())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tgz"))
        .map(|p| {
            (
                p.file_name().unwrap().to_str().unwrap().to_owned(),
                fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

async fn assert_all_formats<S: Store>(store: &S, prefix: &str, want: &[u8]) {
    for format in [Compression::Gzip, Compression::Bzip2, Compression::Xz] {
        let got = common::published(store, &output_key(prefix, format)).await;
        assert!(
            got == want,
            "{prefix}{format:?} differs from the expected summary"
        );
    }
}

async fn oracle_upload_delete_overwrite<S: Store>(store: &S, prefix: &str) {
    let config = Config::default();
    let packages = oracle_packages();
    for (name, body) in &packages {
        upload(store, &format!("{prefix}{name}"), body.clone()).await;
    }
    let keys: Vec<String> = packages
        .iter()
        .map(|(n, _)| format!("{prefix}{n}"))
        .collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let outcome = deliver(
        store,
        common::s3_event(BUCKET, "ObjectCreated:Put", &refs),
        &config,
    )
    .await;
    assert!(outcome.is_success(), "{:?}", outcome.errors);
    assert_eq!(outcome.reports.len(), 1);
    assert_eq!(outcome.reports[0].read.len(), 16);
    let all = fs::read(common::oracle().join("all.expected")).unwrap();
    assert_all_formats(store, prefix, &all).await;
    assert!(
        store
            .head(&repo::status_key(prefix))
            .await
            .unwrap()
            .is_some()
    );

    // Delete one, overwrite another.
    let deleted = format!("{prefix}scripts-3.1.tgz");
    store.delete(&deleted).await.unwrap();
    let outcome = deliver(
        store,
        common::s3_event(BUCKET, "ObjectRemoved:Delete", &[&deleted]),
        &config,
    )
    .await;
    assert_eq!(outcome.reports[0].removed, vec!["scripts-3.1.tgz"]);
    let overwritten = format!("{prefix}minimal-1.0.tgz");
    let replacement = PackageBuilder::new("minimal-1.0")
        .member("+COMMENT", "Overwritten\n")
        .build()
        .unwrap();
    upload(store, &overwritten, replacement).await;
    let outcome = deliver(
        store,
        common::s3_event(BUCKET, "ObjectCreated:Put", &[&overwritten]),
        &config,
    )
    .await;
    assert_eq!(outcome.reports[0].read, vec!["minimal-1.0.tgz"]);
    let want = common::truth(store, prefix, ".tgz").await;
    assert_all_formats(store, prefix, &want).await;
    assert!(want.windows(20).any(|w| w == b"COMMENT=Overwritten\n"));
    assert!(!want.windows(19).any(|w| w == b"PKGNAME=scripts-3.1"));
}

async fn memory_oracle_upload_delete_overwrite() {
    oracle_upload_delete_overwrite(&MemoryStore::new(), "pkgsrc/All/").await;
}

async fn s3_oracle_upload_delete_overwrite() {
    let store = common::s3_bucket().await;
    oracle_upload_delete_overwrite(&store, "pkgsrc/All/").await;
}

/// Ceph RGW, once its If-Match dialect is probed: the same upload,
/// delete and overwrite sequence, and concurrent handlers losing nothing
/// (before the probe, every commit to RGW was refused).
async fn rgw_oracle_upload_delete_overwrite() {
    let store = pkgsum::testing::rgw_bucket().await;
    let found = store.probe("").await.unwrap();
    let store = store.with_probed(found);
    oracle_upload_delete_overwrite(&store, "pkgsrc/All/").await;
    concurrent_handlers(Arc::new(store), "All/", 40, 4).await;
}

/// SeaweedFS: the same sequence and concurrent handlers.
async fn seaweedfs_oracle_upload_delete_overwrite() {
    let store = pkgsum::testing::seaweedfs_bucket().await;
    oracle_upload_delete_overwrite(&store, "pkgsrc/All/").await;
    concurrent_handlers(Arc::new(store), "All/", 40, 4).await;
}

/// Random uploads, overwrites and deletes on `names` keys, each followed
/// by its event on a channel that `workers` handlers drain concurrently.
async fn concurrent_handlers<S: Store + 'static>(
    store: Arc<S>,
    prefix: &str,
    ops: usize,
    workers: usize,
) {
    let config = Arc::new(Config {
        max_attempts: 50,
        ..Config::default()
    });
    // Like SQS: an event whose handling failed is delivered again, up to
    // a bound; only an event that exhausts it is lost.
    const DELIVERIES: u32 = 5;
    let (tx, rx) = async_channel();
    let outstanding = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (store, rx, tx, config, outstanding, done) = (
            Arc::clone(&store),
            rx.clone(),
            tx.clone(),
            Arc::clone(&config),
            Arc::clone(&outstanding),
            Arc::clone(&done),
        );
        handles.push(tokio::spawn(async move {
            let (mut lost, mut retried) = (Vec::new(), Vec::new());
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let wait = std::time::Duration::from_millis(100);
                let Ok(Ok((event, delivery))) = tokio::time::timeout(wait, rx.recv()).await else {
                    continue;
                };
                let messages = event::decode(&event);
                let outcome = apply_messages(&messages, |_| Arc::clone(&store), &config).await;
                if outcome.is_success() {
                    outstanding.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                } else if delivery + 1 < DELIVERIES {
                    retried.extend(outcome.errors);
                    tx.send((event, delivery + 1)).await.unwrap();
                } else {
                    lost.extend(outcome.errors);
                    outstanding.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
            (lost, retried)
        }));
    }
    let mut rng = fastrand::Rng::with_seed(42);
    let names: Vec<String> = (0..30)
        .map(|i| format!("{prefix}p{i:02} x+y-1.{i}.tgz"))
        .collect();
    for op in 0..ops {
        let key = &names[rng.usize(..names.len())];
        let event = if rng.u8(..4) == 0 {
            store.delete(key).await.unwrap();
            common::s3_event(BUCKET, "ObjectRemoved:Delete", &[key])
        } else {
            let pkgname = format!("p-{op}");
            let body = PackageBuilder::new(&pkgname).build().unwrap();
            upload(store.as_ref(), key, body).await;
            common::s3_event(BUCKET, "ObjectCreated:Put", &[key])
        };
        outstanding.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tx.send((event, 0)).await.unwrap();
    }
    while outstanding.load(std::sync::atomic::Ordering::SeqCst) > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    drop(tx);
    for handle in handles {
        let (lost, retried) = handle.await.unwrap();
        if !retried.is_empty() {
            eprintln!("delivered again after: {retried:?}");
        }
        assert!(
            lost.is_empty(),
            "events failed {DELIVERIES} times: {lost:?}"
        );
    }
    let want = common::truth(store.as_ref(), prefix, ".tgz").await;
    let got = common::published(store.as_ref(), &output_key(prefix, Compression::Gzip)).await;
    if got != want {
        let status = store.get(&repo::status_key(prefix)).await.unwrap();
        let status = status.map(|(body, _)| String::from_utf8_lossy(&body).into_owned());
        panic!("the summary is not the bucket's; status: {status:?}");
    }
    assert_all_formats(store.as_ref(), prefix, &want).await;
    let state = Repo::new(store.as_ref(), prefix, &config)
        .read_state()
        .await
        .unwrap();
    assert_eq!(state.summary(), want, "state differs from the bucket");
}

type Delivery = (serde_json::Value, u32);

/// A tiny multi-consumer channel over tokio's mpsc.
fn async_channel() -> (tokio::sync::mpsc::Sender<Delivery>, Receiver) {
    let (tx, rx) = tokio::sync::mpsc::channel(4096);
    (tx, Receiver(Arc::new(tokio::sync::Mutex::new(rx))))
}

#[derive(Clone)]
struct Receiver(Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Delivery>>>);

impl Receiver {
    async fn recv(&self) -> Result<Delivery, ()> {
        self.0.lock().await.recv().await.ok_or(())
    }
}

async fn memory_eight_handlers_during_200_changes_lose_nothing() {
    concurrent_handlers(Arc::new(MemoryStore::new()), "All/", 200, 8).await;
}

async fn s3_eight_handlers_during_200_changes_lose_nothing() {
    let store = common::s3_bucket().await;
    concurrent_handlers(Arc::new(store), "All/", 200, 8).await;
}

async fn duplicated_delayed_and_shuffled_events_converge() {
    let store = MemoryStore::new();
    let config = Config::default();
    let mut rng = fastrand::Rng::with_seed(7);
    let mut events = Vec::new();
    for op in 0..120 {
        let key = format!("r/k{}.tgz", rng.u8(..12));
        if rng.u8(..3) == 0 {
            store.delete(&key).await.unwrap();
            events.push(common::s3_event(BUCKET, "ObjectRemoved:Delete", &[&key]));
        } else {
            upload(
                &store,
                &key,
                PackageBuilder::new(&format!("k-{op}")).build().unwrap(),
            )
            .await;
            events.push(common::s3_event(BUCKET, "ObjectCreated:Put", &[&key]));
        }
        // Some events are handled early, while later changes are still to come.
        if rng.u8(..5) == 0 {
            let early = events[rng.usize(..events.len())].clone();
            deliver(&store, early, &config).await;
        }
    }
    let mut all: Vec<_> = events.iter().chain(events.iter()).cloned().collect();
    rng.shuffle(&mut all);
    for event in all {
        assert!(deliver(&store, event, &config).await.is_success());
    }
    let want = common::truth(&store, "r/", ".tgz").await;
    assert_all_formats(&store, "r/", &want).await;
}

async fn own_outputs_and_other_suffixes_never_start_work() {
    let store = Counting::new(MemoryStore::new());
    let config = Config::default();
    let keys = [
        "All/pkg_summary.gz",
        "All/.pkgsum/state",
        "All/.pkgsum/status.json",
        "All/README.txt",
    ];
    let outcome = deliver(
        &store,
        common::s3_event(BUCKET, "ObjectCreated:Put", &keys),
        &config,
    )
    .await;
    assert!(outcome.reports.is_empty());
    assert_eq!(outcome.ignored.len(), 4);
    assert_eq!(store.counts(), Default::default());
    let test_event = serde_json::json!({"Service": "Amazon S3", "Event": "s3:TestEvent"});
    let outcome = deliver(&store, test_event, &config).await;
    assert_eq!(outcome.ignored, ["s3:TestEvent"]);
}

async fn a_bad_package_is_reported_and_costs_only_itself() {
    let store = MemoryStore::new();
    let config = Config::default();
    upload(
        &store,
        "All/good-1.0.tgz",
        PackageBuilder::new("good-1.0").build().unwrap(),
    )
    .await;
    upload(
        &store,
        "All/bad-1.0.tgz",
        b"\x1f\x8bjunk that is long enough for a gzip header".to_vec(),
    )
    .await;
    let outcome = deliver(
        &store,
        common::s3_event(
            BUCKET,
            "ObjectCreated:Put",
            &["All/good-1.0.tgz", "All/bad-1.0.tgz"],
        ),
        &config,
    )
    .await;
    // A bad package is the bucket's truth, not a retryable failure.
    assert!(outcome.is_success());
    assert_eq!(outcome.reports[0].failures.len(), 1);
    assert!(outcome.reports[0].failures[0].1.contains("corrupt gzip"));
    let (status, _) = store.get(&repo::status_key("All/")).await.unwrap().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status).unwrap();
    assert_eq!(status["failures"][0]["file"], "bad-1.0.tgz");
    let want = common::truth(&store, "All/", ".tgz").await;
    assert_all_formats(&store, "All/", &want).await;
    assert_eq!(common::split_records(&want).len(), 1);
}

async fn a_crash_between_commit_and_publish_is_repaired_by_the_next_event() {
    let store = Faulty::new(MemoryStore::new());
    let config = Config::default();
    upload(
        &store,
        "All/a-1.tgz",
        PackageBuilder::new("a-1").build().unwrap(),
    )
    .await;
    store.inject(Fault {
        op: Op::Put,
        key_contains: "pkg_summary".to_owned(),
        skip: 0,
        times: 1,
        kind: ErrorKind::Other("injected fault".to_owned()),
    });
    let outcome = deliver(
        &store,
        common::s3_event(BUCKET, "ObjectCreated:Put", &["All/a-1.tgz"]),
        &config,
    )
    .await;
    assert!(!outcome.is_success());
    assert!(
        store.head(&state_key("All/")).await.unwrap().is_some(),
        "state was committed"
    );

    // Any later event for the repository, even a duplicate, publishes.
    let outcome = deliver(
        &store,
        common::s3_event(BUCKET, "ObjectCreated:Put", &["All/a-1.tgz"]),
        &config,
    )
    .await;
    assert!(outcome.is_success(), "{:?}", outcome.errors);
    assert!(outcome.reports[0].read.is_empty() && outcome.reports[0].published);
    let want = common::truth(&store, "All/", ".tgz").await;
    assert_all_formats(&store, "All/", &want).await;
}

async fn sqs_failures_name_only_the_failed_messages() {
    let store = Faulty::new(MemoryStore::new());
    let config = Config::default();
    upload(
        &store,
        "One/a-1.tgz",
        PackageBuilder::new("a-1").build().unwrap(),
    )
    .await;
    upload(
        &store,
        "Two/b-1.tgz",
        PackageBuilder::new("b-1").build().unwrap(),
    )
    .await;
    // Reading b-1's header fails (a fresh repository is listed, not
    // HEADed key by key, so the fault is on the ranged GET).
    store.inject(Fault {
        op: Op::GetRange,
        key_contains: "Two/b-1".to_owned(),
        skip: 0,
        times: 100,
        kind: ErrorKind::Other("injected fault".to_owned()),
    });
    let body = |k: &str| common::s3_event(BUCKET, "ObjectCreated:Put", &[k]).to_string();
    let batch = serde_json::json!({"Records": [
        {"messageId": "ok", "eventSource": "aws:sqs", "body": body("One/a-1.tgz")},
        {"messageId": "bad", "eventSource": "aws:sqs", "body": body("Two/b-1.tgz")},
    ]});
    let outcome = deliver(&store, batch, &config).await;
    assert_eq!(outcome.failed_messages, vec!["bad".to_owned()]);
    assert_eq!(
        common::split_records(&common::published(&store, "One/pkg_summary.gz").await).len(),
        1
    );
}

async fn outputs_never_go_backwards() {
    let store = MemoryStore::new();
    let config = Config::default();
    upload(
        &store,
        "All/a-1.tgz",
        PackageBuilder::new("a-1").build().unwrap(),
    )
    .await;
    deliver(
        &store,
        common::s3_event(BUCKET, "ObjectCreated:Put", &["All/a-1.tgz"]),
        &config,
    )
    .await;
    let repo = Repo::new(&store, "All/", &config);
    let mut old = repo.read_state().await.unwrap();

    upload(
        &store,
        "All/b-1.tgz",
        PackageBuilder::new("b-1").build().unwrap(),
    )
    .await;
    deliver(
        &store,
        common::s3_event(BUCKET, "ObjectCreated:Put", &["All/b-1.tgz"]),
        &config,
    )
    .await;
    let newer = common::published(&store, "All/pkg_summary.xz").await;
    assert_eq!(common::split_records(&newer).len(), 2);

    // A slow writer still holding the old state publishes: nothing changes.
    let wrote = repo.publish(&mut old).await.unwrap();
    assert!(!wrote.wrote);
    assert!(common::published(&store, "All/pkg_summary.xz").await == newer);
}

async fn each_publication_is_a_later_second() {
    let store = MemoryStore::new();
    let config = Config::default();
    let mut last = None;
    for i in 0..3 {
        let key = format!("All/p{i}-1.tgz");
        upload(
            &store,
            &key,
            PackageBuilder::new(&format!("p{i}-1")).build().unwrap(),
        )
        .await;
        deliver(
            &store,
            common::s3_event(BUCKET, "ObjectCreated:Put", &[&key]),
            &config,
        )
        .await;
        let modified = store
            .head("All/pkg_summary.gz")
            .await
            .unwrap()
            .unwrap()
            .last_modified
            .unwrap();
        if let Some(last) = last {
            assert!(modified > last, "two publications in the same second");
        }
        last = Some(modified);
    }
}

async fn a_large_package_costs_its_header_only() {
    let store = Counting::new(MemoryStore::new());
    // The site reads pkgsum's own small files (its layout, the history's
    // entries): counted here are the package's bytes alone.
    let config = Config {
        site: false,
        ..Config::default()
    };
    let body = fs::read(common::oracle().join("bigpayload-1.0.tgz")).unwrap();
    upload(&store, "All/bigpayload-1.0.tgz", body).await;
    store.take();
    let outcome = deliver(
        &store,
        common::s3_event(BUCKET, "ObjectCreated:Put", &["All/bigpayload-1.0.tgz"]),
        &config,
    )
    .await;
    assert_eq!(outcome.reports[0].bytes_fetched, store.counts().bytes_read);
    assert!(outcome.reports[0].bytes_fetched < 128 * 1024);
    let names: BTreeSet<String> = outcome.reports[0].read.iter().cloned().collect();
    assert!(names.contains("bigpayload-1.0.tgz"));
}

/// On S3, an event costs one ranged GET per package and no HEAD: an
/// `If-None-Match` with the state's ETag answers 304 for a package already
/// indexed, so a duplicate event reads none of it; an overwrite is read.
async fn an_event_reads_each_package_in_one_request() {
    let store = Faulty::new(Counting::new(common::s3_bucket().await));
    let config = Config::default();
    store.inject(Fault {
        op: Op::Head,
        key_contains: ".tgz".to_owned(),
        skip: 0,
        times: u32::MAX,
        kind: ErrorKind::Other("injected fault".to_owned()),
    });
    let key = "All/bigpayload-1.0.tgz";
    upload_and_deliver(&store, "a-1", &config).await;
    let event = |k: &str| common::s3_event(BUCKET, "ObjectCreated:Put", &[k]);
    upload(
        &store,
        key,
        fs::read(common::oracle().join("bigpayload-1.0.tgz")).unwrap(),
    )
    .await;
    for (round, want_read) in [(1, true), (2, false)] {
        store.inner().take();
        let outcome = deliver(&store, event(key), &config).await;
        assert!(outcome.is_success(), "round {round}: {:?}", outcome.errors);
        let report = &outcome.reports[0];
        assert_eq!(report.read.is_empty(), !want_read, "round {round}");
        let read = store.inner().counts().bytes_read;
        if want_read {
            assert!(
                report.bytes_fetched >= 64 * 1024,
                "{}",
                report.bytes_fetched
            );
        } else {
            // The manifest and its one piece only.
            assert_eq!((report.unchanged, report.bytes_fetched), (1, 0));
            assert!(read < 16 * 1024, "round {round}: {read} bytes read");
        }
    }
    upload(
        &store,
        key,
        PackageBuilder::new("bigpayload-2.0").build().unwrap(),
    )
    .await;
    let outcome = deliver(&store, event(key), &config).await;
    assert_eq!(outcome.reports[0].read, [key.trim_start_matches("All/")]);
    let records = common::split_records(&common::published(&store, "All/pkg_summary.gz").await);
    assert!(
        records
            .iter()
            .any(|r| r.windows(22).any(|w| w == b"PKGNAME=bigpayload-2.0"))
    );
}

/// Uploads `name` (a package of that PKGNAME) under `All/` and delivers
/// its created event.
async fn upload_and_deliver<S: Store>(
    store: &S,
    name: &str,
    config: &Config,
) -> pkgsum::dispatch::Outcome {
    let key = format!("All/{name}.tgz");
    upload(store, &key, PackageBuilder::new(name).build().unwrap()).await;
    let outcome = deliver(
        store,
        common::s3_event(BUCKET, "ObjectCreated:Put", &[&key]),
        config,
    )
    .await;
    assert!(outcome.is_success(), "{:?}", outcome.errors);
    outcome
}

async fn published_records<S: Store>(store: &S) -> usize {
    common::split_records(&common::published(store, "All/pkg_summary.gz").await).len()
}

/// The repository's state is lost (deleted, or replaced by garbage) while
/// its published summaries say generation 3: rebuild repairs it, and
/// every later upload still reaches the summaries.
async fn lost_state_keeps_publishing(
    lose: impl Fn(&MemoryStore) -> futures::future::BoxFuture<'_, ()>,
) {
    let store = MemoryStore::new();
    let config = Config::default();
    for name in ["a-1", "b-1", "c-1"] {
        upload_and_deliver(&store, name, &config).await;
    }
    assert_eq!(published_records(&store).await, 3);

    lose(&store).await;
    let drift = pkgsum::reconcile::verify(&Repo::new(&store, "All/", &config))
        .await
        .unwrap();
    assert!(
        drift
            .lines
            .iter()
            .any(|l| l.starts_with("All/.pkgsum/state: ")),
        "{:?}",
        drift.lines
    );
    let pkgsum::repo::Applied { report, unsure } =
        pkgsum::reconcile::rebuild(&Repo::new(&store, "All/", &config), &())
            .await
            .unwrap();
    assert!(unsure.is_empty());
    assert!(report.published, "rebuild did not publish");
    assert!(report.generation > 3, "generation {}", report.generation);
    assert!(report.state_lost.is_some());
    let drift = pkgsum::reconcile::verify(&Repo::new(&store, "All/", &config))
        .await
        .unwrap();
    assert!(drift.is_clean(), "{:?}", drift.lines);

    upload_and_deliver(&store, "d-1", &config).await;
    assert_eq!(published_records(&store).await, 4);

    // Lost again, with no rebuild: the next event alone brings it back
    // whole, from a listing, and publishes.
    lose(&store).await;
    upload_and_deliver(&store, "e-1", &config).await;
    assert_eq!(published_records(&store).await, 5);
    let want = common::truth(&store, "All/", ".tgz").await;
    assert_all_formats(&store, "All/", &want).await;
    let drift = pkgsum::reconcile::verify(&Repo::new(&store, "All/", &config))
        .await
        .unwrap();
    assert!(drift.is_clean(), "{:?}", drift.lines);
}

async fn a_deleted_state_never_stops_publishing() {
    lost_state_keeps_publishing(|store| {
        Box::pin(async move { store.delete(&state_key("All/")).await.unwrap() })
    })
    .await;
}

async fn a_corrupt_state_never_stops_publishing() {
    lost_state_keeps_publishing(|store| {
        Box::pin(async move {
            upload(
                store,
                &state_key("All/"),
                b"pkgsum-state\n\x02garbage".to_vec(),
            )
            .await
        })
    })
    .await;
}

/// pkg_info's warnings reach the report, the status object and the CLI
/// on the bucket path as on the directory path.
async fn pkg_info_warnings_reach_the_status_object() {
    let store = MemoryStore::new();
    let config = Config::default();
    common::upload_oracle(&store, "All/", &["minimal-1.0.tgz", "scripts-3.1.tgz"]).await;
    let outcome = deliver(
        &store,
        common::s3_event(
            BUCKET,
            "ObjectCreated:Put",
            &["All/minimal-1.0.tgz", "All/scripts-3.1.tgz"],
        ),
        &config,
    )
    .await;
    assert_eq!(
        outcome.reports[0].warnings,
        [(
            "minimal-1.0.tgz".to_owned(),
            "build information missing".to_owned()
        )]
    );
    let (status, _) = store.get(&repo::status_key("All/")).await.unwrap().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status).unwrap();
    assert_eq!(
        status["warnings"],
        serde_json::json!([{"file": "minimal-1.0.tgz", "warning": "build information missing"}])
    );
}

/// What would fail only later is a warning, in the report and the status
/// object, and the packages stay indexed: a file pkgin would never
/// download (it fetches PKGNAME.tgz), and a signature over `+PKG_HASH`
/// made for another pkgname.
async fn packages_pkgin_or_pkg_add_would_trip_on_are_warned_of() {
    let store = MemoryStore::new();
    let config = Config::default();
    let inner = PackageBuilder::new("foo-1.0").build().unwrap();
    let signed = create::sign(&inner, "foo-1.0.tgz", "bar-2.0", create::Signature::Gpg).unwrap();
    upload(&store, "All/foo-1.0.tgz", signed).await;
    let other = PackageBuilder::new("baz-3.0").build().unwrap();
    upload(&store, "All/baz-latest.tgz", other).await;
    let keys = ["All/foo-1.0.tgz", "All/baz-latest.tgz"];
    let outcome = deliver(
        &store,
        common::s3_event(BUCKET, "ObjectCreated:Put", &keys),
        &config,
    )
    .await;
    let report = &outcome.reports[0];
    assert_eq!(report.read, ["baz-latest.tgz", "foo-1.0.tgz"]);
    let named = "pkgin downloads \"baz-3.0.tgz\" for PKGNAME=baz-3.0, not this file: \
                 the package is listed but cannot be installed (rename it to \"baz-3.0.tgz\")";
    let signed_for = "+PKG_HASH is signed for pkgname \"bar-2.0\", but PKGNAME is \"foo-1.0\" \
                      (pkg_add does not compare them)";
    let want = [("baz-latest.tgz", named), ("foo-1.0.tgz", signed_for)];
    let got: Vec<(&str, &str)> = report
        .warnings
        .iter()
        .map(|(k, w)| (k.as_str(), w.as_str()))
        .collect();
    assert_eq!(got, want);
    let (status, _) = store.get(&repo::status_key("All/")).await.unwrap().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status).unwrap();
    assert_eq!(
        status["warnings"],
        serde_json::json!([
            {"file": "baz-latest.tgz", "warning": named},
            {"file": "foo-1.0.tgz", "warning": signed_for},
        ])
    );
    assert_eq!(status["packages"], 2);
}

/// Keys that are not there (another reading of an encoded key, a late
/// delete) never create a repository: no state, no summary.
async fn a_key_that_is_not_there_creates_nothing() {
    let store = MemoryStore::new();
    let config = Config::default();
    let outcome = deliver(
        &store,
        common::s3_event(BUCKET, "ObjectRemoved:Delete", &["All/ghost-1.tgz"]),
        &config,
    )
    .await;
    assert!(outcome.is_success(), "{:?}", outcome.errors);
    assert!(store.list("").await.unwrap().is_empty());

    // MinIO encodes the slash: the literal reading "All%2Fx-1.tgz" names
    // the bucket's root, which must not become a repository.
    upload(
        &store,
        "All/x-1.tgz",
        PackageBuilder::new("x-1").build().unwrap(),
    )
    .await;
    let minio = serde_json::json!({
        "EventName": "s3:ObjectCreated:Put", "Key": "b/All/x-1.tgz",
        "Records": [{"eventSource": "minio:s3", "eventName": "s3:ObjectCreated:Put",
                     "s3": {"bucket": {"name": BUCKET}, "object": {"key": "All%2Fx-1.tgz"}}}]
    });
    let outcome = deliver(&store, minio, &config).await;
    assert!(outcome.is_success(), "{:?}", outcome.errors);
    let keys: Vec<String> = store
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert!(keys.contains(&"All/pkg_summary.gz".to_owned()), "{keys:?}");
    assert!(!keys.iter().any(|k| !k.starts_with("All/")), "{keys:?}");
}

/// The layout of the published `suffix` file (`.pkgsum/layout.gz.json`).
async fn layout(store: &MemoryStore, suffix: &str) -> (u64, Vec<serde_json::Value>) {
    let (body, _) = store
        .get(&format!("All/.pkgsum/layout{suffix}.json"))
        .await
        .unwrap()
        .unwrap();
    let saved: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let runs = saved["layout"]["runs"].as_array().unwrap().clone();
    (saved["generation"].as_u64().unwrap(), runs)
}

/// Uploads `count` packages `All/STEM000-1.0.tgz` ... whose descriptions
/// run to `lines` lines, as real ones do (so the summary spans several
/// runs and pieces), and indexes them with one event.
async fn index_described<S: Store>(
    store: &S,
    stem: &str,
    count: usize,
    lines: usize,
    config: &Config,
) {
    let description = "A package with a long description, as real ones have.\n".repeat(lines);
    let mut keys = Vec::new();
    for i in 0..count {
        let package = PackageBuilder::new(&format!("{stem}{i:03}-1.0"))
            .member("+DESC", format!("{i}\n{description}"))
            .build()
            .unwrap();
        keys.push(format!("All/{stem}{i:03}-1.0.tgz"));
        upload(store, &keys[i], package).await;
    }
    let names: Vec<&str> = keys.iter().map(String::as_str).collect();
    let event = common::s3_event(BUCKET, "ObjectCreated:Put", &names);
    let outcome = deliver(store, event, config).await;
    assert!(outcome.is_success(), "{:?}", outcome.errors);
}

/// One package added to a repository of 300: every format is assembled
/// from the file published before, its unchanged runs copied (the layout
/// keeps all but one or two), and the files still hold exactly the records.
async fn an_update_copies_the_unchanged_runs() {
    let store = MemoryStore::new();
    let config = Config::default();
    index_described(&store, "runs", 300, 100, &config).await;
    let before = [".gz", ".bz2", ".xz"];
    let mut runs_before = Vec::new();
    for suffix in before {
        runs_before.push(layout(&store, suffix).await.1);
    }
    let outcome = upload_and_deliver(&store, "runs150a-1.0", &config).await;
    let report = &outcome.reports[0];
    // One or two runs per format recompressed, every other one copied.
    assert!(report.runs_compressed <= 6, "{report:?}");
    assert!(
        report.runs_copied >= 3 * report.runs_compressed,
        "{report:?}"
    );
    for (suffix, old) in before.iter().zip(runs_before) {
        let (generation, new) = layout(&store, suffix).await;
        assert_eq!(generation, 2, "{suffix}");
        assert!(old.len() >= 3, "{suffix}: {} runs", old.len());
        let kept = new.iter().filter(|run| old.contains(run)).count();
        assert!(
            kept + 2 >= new.len(),
            "{suffix}: {kept} of {} runs kept",
            new.len()
        );
    }
    let truth = common::truth(&store, "All/", ".tgz").await;
    assert_all_formats(&store, "All/", &truth).await;

    // Another writer's file of the same generation and length (one byte
    // changed in the middle): its ETag is not the one the layout was
    // written for, so every run is checked, and the changed one is
    // compressed again instead of copied.
    let key = output_key("All/", Compression::Gzip);
    let (body, meta) = store.get(&key).await.unwrap().unwrap();
    let mut altered = body.to_vec();
    let middle = altered.len() / 2;
    altered[middle] ^= 0x55;
    let options = PutOptions {
        metadata: meta.metadata.clone(),
        ..PutOptions::default()
    };
    store
        .put(&key, Bytes::from(altered), options)
        .await
        .unwrap();
    upload_and_deliver(&store, "runs200a-1.0", &config).await;
    let truth = common::truth(&store, "All/", ".tgz").await;
    assert_all_formats(&store, "All/", &truth).await;
}

/// A summary this process wrote whole (under S3's 5 MiB part, so never
/// spliced) is not read back by the next update while it has the ETag it
/// was written with: its unchanged runs are copied from memory. One that
/// another writer replaced is read again, and every format still lists
/// exactly the packages.
async fn a_summary_this_process_wrote_is_not_read_back() {
    // A prefix of its own: what the process keeps is keyed by location,
    // and other tests write `All/` in the same process.
    const PREFIX: &str = "written-here/All/";
    let config = Config {
        site: false,
        ..Config::default()
    };
    let store = Counting::new(MemoryStore::new());
    pkgsum::testing::seed(&store, PREFIX, 3_000, pkgsum::sample::record, &config).await;
    let mut sizes = 0;
    for format in [Compression::Gzip, Compression::Bzip2, Compression::Xz] {
        sizes += store
            .head(&output_key(PREFIX, format))
            .await
            .unwrap()
            .unwrap()
            .size;
    }
    let update = async |name: &str| {
        let key = format!("{PREFIX}{name}.tgz");
        upload(&store, &key, PackageBuilder::new(name).build().unwrap()).await;
        store.take();
        let event = common::s3_event(BUCKET, "ObjectCreated:Put", &[&key]);
        let outcome = deliver(&store, event, &config).await;
        assert!(outcome.is_success(), "{:?}", outcome.errors);
        store.take().bytes_read
    };
    let read = update("zz-written-1.0").await;
    assert!(
        read * 4 < sizes,
        "an update read {read} bytes where the summaries hold {sizes}"
    );

    // Another writer's gzip file, the same records in one more member:
    // not the bytes this process wrote, so it is read.
    let key = output_key(PREFIX, Compression::Gzip);
    let (body, meta) = store.get(&key).await.unwrap().unwrap();
    let grown = [&body[..], &Compression::Gzip.compress(b"").unwrap()].concat();
    let options = PutOptions {
        metadata: meta.metadata,
        ..PutOptions::default()
    };
    store
        .put(&key, Bytes::from(grown.clone()), options)
        .await
        .unwrap();
    let read = update("zz-replaced-1.0").await;
    assert!(
        read >= grown.len() as u64,
        "the replaced file was not read: {read} bytes read, the file holds {}",
        grown.len()
    );
    for format in [Compression::Gzip, Compression::Bzip2, Compression::Xz] {
        let summary = common::published(&store, &output_key(PREFIX, format)).await;
        let records = common::split_records(&summary);
        assert_eq!(records.len(), 3_002, "{format:?}");
        for name in ["zz-written-1.0", "zz-replaced-1.0"] {
            let line = format!("PKGNAME={name}\n");
            let found = records
                .iter()
                .any(|r| r.windows(line.len()).any(|w| w == line.as_bytes()));
            assert!(found, "{format:?}: {name} is not listed");
        }
    }
}

/// The history's entries, which the site shows the newest of after every
/// update, are not read back by the process that wrote them: with every
/// read of them failing, an update still publishes the page's list of
/// changes. An entry another writer replaced (so with another ETag) is
/// read again, and the page shows what it holds now.
async fn history_entries_this_process_wrote_are_not_read_back() {
    // A prefix of its own: what the process keeps is keyed by location.
    const PREFIX: &str = "entries-here/All/";
    const HISTORY: &str = "entries-here/All/.pkgsum/history/";
    let config = Config::default();
    let store = Faulty::new(MemoryStore::new());
    let update = async |name: &str| {
        let key = format!("{PREFIX}{name}.tgz");
        upload(&store, &key, PackageBuilder::new(name).build().unwrap()).await;
        let event = common::s3_event(BUCKET, "ObjectCreated:Put", &[&key]);
        let outcome = deliver(&store, event, &config).await;
        assert!(outcome.is_success(), "{name}: {:?}", outcome.errors);
    };
    // The names the page lists as added, newest change first.
    let shown = async || -> Vec<String> {
        let key = format!("{PREFIX}{}", pkgsum::web::PACKAGES);
        let (body, _) = store.get(&key).await.unwrap().unwrap();
        let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let changes = page["meta"]["changes"]
            .as_array()
            .expect("a list of changes");
        changes
            .iter()
            .flat_map(|c| c["added"].as_array().cloned().unwrap_or_default())
            .map(|n| n.as_str().unwrap().to_owned())
            .collect()
    };
    update("a-1.0").await;
    update("b-1.0").await;
    for op in [Op::Head, Op::Get, Op::GetRange] {
        store.inject(Fault {
            op,
            key_contains: HISTORY.to_owned(),
            skip: 0,
            times: u32::MAX,
            kind: ErrorKind::Other("injected fault".to_owned()),
        });
    }
    update("c-1.0").await;
    let names = shown().await;
    for name in ["a-1.0", "b-1.0"] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} not shown: {names:?}"
        );
    }
    store.clear();

    // Another writer rewrites a's entry: it is read, not recalled.
    let listed = store.list(HISTORY).await.unwrap();
    let mut rewritten = false;
    for meta in listed.iter().filter(|m| m.key.ends_with(".json")) {
        let (body, _) = store.get(&meta.key).await.unwrap().unwrap();
        let mut entry: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if entry["changes"]["added"] == serde_json::json!(["a-1.0"]) {
            entry["changes"]["added"] = serde_json::json!(["a-rewritten"]);
            let body = serde_json::to_vec(&entry).unwrap();
            upload(&store, &meta.key, body).await;
            rewritten = true;
        }
    }
    assert!(rewritten, "no entry added a-1.0");
    update("d-1.0").await;
    let names = shown().await;
    assert!(names.iter().any(|n| n == "a-rewritten"), "{names:?}");
    assert!(!names.iter().any(|n| n == "a-1.0"), "{names:?}");

    // Hostile entries in their place: b's is not JSON, c's is over the
    // 1 MiB an entry may hold. Neither is shown nor kept; the update
    // still publishes the rest.
    for meta in store.list(HISTORY).await.unwrap() {
        if !meta.key.ends_with(".json") {
            continue;
        }
        let (body, _) = store.get(&meta.key).await.unwrap().unwrap();
        let entry: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let added = &entry["changes"]["added"];
        if *added == serde_json::json!(["b-1.0"]) {
            upload(&store, &meta.key, b"{\"generation\": [".to_vec()).await;
        } else if *added == serde_json::json!(["c-1.0"]) {
            let mut huge = serde_json::to_vec(&entry).unwrap();
            huge.extend(std::iter::repeat_n(b' ', 2 << 20));
            upload(&store, &meta.key, huge).await;
        }
    }
    update("e-1.0").await;
    let names = shown().await;
    for name in ["a-rewritten", "d-1.0"] {
        assert!(names.iter().any(|n| n == name), "{name}: {names:?}");
    }
    for name in ["b-1.0", "c-1.0"] {
        assert!(!names.iter().any(|n| n == name), "{name}: {names:?}");
    }
}

/// The generation `key` was published with (0 if it is not there).
async fn generation_at<S: Store>(store: &S, key: &str) -> u64 {
    store
        .head(key)
        .await
        .unwrap()
        .and_then(|m| m.metadata.get(repo::GENERATION)?.parse().ok())
        .unwrap_or(0)
}

/// An update of a repository stored in several pieces (one package added,
/// one replaced, one deleted) crashes after each of its store operations
/// in turn: every later operation fails, as if the process died there.
/// Whatever it left, no published file went back a generation, and the
/// next event (or, every third time, `rebuild`) brings every format to
/// the bucket's truth, above every committed state, with a manifest whose
/// pieces are all there.
async fn a_crash_at_any_step_of_an_update_is_repaired() {
    let seed = MemoryStore::setting_modified();
    let config = Config::default();
    index_described(&seed, "crash", 200, 40, &config).await;
    let pieces = Repo::new(&seed, "All/", &config)
        .read_state()
        .await
        .unwrap();
    assert!(
        pieces.pieces().len() >= 4,
        "{} pieces",
        pieces.pieces().len()
    );

    let changed = [
        "All/crash050a-1.0.tgz",
        "All/crash120-1.0.tgz",
        "All/crash170-1.0.tgz",
    ];
    async fn change(store: &MemoryStore, changed: [&str; 3]) {
        let added = PackageBuilder::new("crash050a-1.0").build().unwrap();
        let replaced = PackageBuilder::new("crash120-1.0")
            .member("+COMMENT", "Replaced\n")
            .build()
            .unwrap();
        upload(store, changed[0], added).await;
        upload(store, changed[1], replaced).await;
        store.delete(changed[2]).await.unwrap();
    }
    let event = common::s3_event(BUCKET, "ObjectCreated:Put", &changed);
    // How many store operations the whole update takes.
    let whole = Faulty::new(seed.snapshot());
    change(whole.inner(), changed).await;
    assert!(deliver(&whole, event.clone(), &config).await.is_success());
    let operations = whole.operations();
    assert!(operations > 20, "{operations} operations");

    for crash_at in 0..operations {
        let store = Faulty::new(seed.snapshot());
        change(store.inner(), changed).await;
        let gz = output_key("All/", Compression::Gzip);
        let before = generation_at(store.inner(), &gz).await;
        store.crash_after(crash_at);
        let crashed = deliver(&store, event.clone(), &config).await;
        // What this process keeps in memory (`repo/recent.rs`: history
        // entries, summaries, shared by every test in it) can spare a read
        // the counted run made: an update that ended before the crash
        // point succeeds; one that reached it fails.
        let reached = store.operations() > crash_at;
        assert_eq!(
            crashed.is_success(),
            !reached,
            "crash after {crash_at}: {} operations",
            store.operations()
        );
        store.recover();
        assert!(generation_at(store.inner(), &gz).await >= before);

        // A crash never costs the state: a manifest never names a piece
        // that is not there.
        if crash_at % 3 == 2 {
            let repo = Repo::new(&store, "All/", &config);
            let report = repo.apply(repo::Scope::Listing, &()).await.unwrap().report;
            assert_eq!(report.state_lost, None, "after {crash_at}");
        } else {
            let outcome = deliver(&store, event.clone(), &config).await;
            assert!(
                outcome.is_success(),
                "after {crash_at}: {:?}",
                outcome.errors
            );
            assert_eq!(outcome.reports[0].state_lost, None, "after {crash_at}");
        }
        let truth = common::truth(store.inner(), "All/", ".tgz").await;
        assert_all_formats(store.inner(), "All/", &truth).await;
        let state = Repo::new(&store, "All/", &config)
            .read_state()
            .await
            .unwrap();
        assert!(state.summary() == truth, "after {crash_at}: state differs");
        for format in [Compression::Gzip, Compression::Bzip2, Compression::Xz] {
            let published = generation_at(store.inner(), &output_key("All/", format)).await;
            assert!(published >= state.records_generation(), "after {crash_at}");
        }
    }
}

/// Pieces no manifest names are deleted by a listing pass once they are
/// an hour old and no newer than the manifest; a young one (a commit may
/// be on its way to naming it) and the named ones stay.
async fn a_listing_pass_collects_pieces_nothing_names() {
    let store = MemoryStore::setting_modified();
    let config = Config::default();
    upload_and_deliver(&store, "a-1", &config).await;
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    let orphan = |generation: u64, age: Option<std::time::SystemTime>| {
        let key = format!("All/.pkgsum/pieces/{generation}-{}", "ab".repeat(32));
        let options = PutOptions {
            modified: age,
            ..PutOptions::default()
        };
        (key, options)
    };
    let (old, old_options) = orphan(1, Some(two_hours_ago));
    let (young, young_options) = orphan(0, None);
    let (ahead, ahead_options) = orphan(99, Some(two_hours_ago));
    for (key, options) in [
        (&old, old_options),
        (&young, young_options),
        (&ahead, ahead_options),
    ] {
        store
            .put(key, Bytes::from_static(b"x"), options)
            .await
            .unwrap();
    }
    let repo = Repo::new(&store, "All/", &config);
    let report = repo.apply(repo::Scope::Listing, &()).await.unwrap().report;
    assert_eq!(report.pieces_collected, 1);
    assert!(store.head(&old).await.unwrap().is_none());
    assert!(store.head(&young).await.unwrap().is_some());
    assert!(store.head(&ahead).await.unwrap().is_some());
    // The state's own pieces are all still there.
    let state = repo.read_state().await.unwrap();
    assert_eq!(state.len(), 1);
}

/// A listing pass that loses the race for the manifest tries again, but
/// looks again only at the names that change the state: the new package,
/// not the 20 it found unchanged (the state still holds what it did).
async fn a_retried_pass_looks_again_only_at_what_it_changes() {
    let store = Faulty::new(Counting::new(MemoryStore::new()));
    let config = Config::default();
    for i in 0..20 {
        let name = format!("p{i:02}-1.0");
        let body = PackageBuilder::new(&name).build().unwrap();
        upload(&store, &format!("All/{name}.tgz"), body).await;
    }
    let repo = Repo::new(&store, "All/", &config);
    repo.apply(repo::Scope::Listing, &()).await.unwrap();
    let body = PackageBuilder::new("new-1.0").build().unwrap();
    upload(&store, "All/new-1.0.tgz", body).await;
    store.inject(Fault {
        op: Op::Put,
        key_contains: state_key("All/"),
        skip: 0,
        times: 1,
        kind: ErrorKind::Precondition,
    });
    store.inner().take();
    let report = repo.apply(repo::Scope::Listing, &()).await.unwrap().report;
    assert_eq!((report.attempts, report.unchanged), (2, 20));
    assert_eq!(report.read, ["new-1.0.tgz"]);
    // The first attempt took the listing for every HEAD and read the new
    // header; the second looked at the new package alone (one peek).
    assert_eq!(store.inner().counts().range_gets, 2);
    assert_eq!(repo.read_state().await.unwrap().len(), 21);
}

crate::harness::trials![
    tokio a_retried_pass_looks_again_only_at_what_it_changes,
    tokio a_listing_pass_collects_pieces_nothing_names,
    tokio a_crash_at_any_step_of_an_update_is_repaired,
    tokio a_key_that_is_not_there_creates_nothing,
    tokio an_update_copies_the_unchanged_runs,
    tokio a_summary_this_process_wrote_is_not_read_back,
    tokio history_entries_this_process_wrote_are_not_read_back,
    tokio memory_oracle_upload_delete_overwrite,
    s3 s3_oracle_upload_delete_overwrite,
    rgw rgw_oracle_upload_delete_overwrite,
    seaweedfs seaweedfs_oracle_upload_delete_overwrite,
    tokio memory_eight_handlers_during_200_changes_lose_nothing,
    s3 s3_eight_handlers_during_200_changes_lose_nothing,
    tokio duplicated_delayed_and_shuffled_events_converge,
    tokio own_outputs_and_other_suffixes_never_start_work,
    tokio a_bad_package_is_reported_and_costs_only_itself,
    tokio a_crash_between_commit_and_publish_is_repaired_by_the_next_event,
    tokio sqs_failures_name_only_the_failed_messages,
    tokio outputs_never_go_backwards,
    tokio each_publication_is_a_later_second,
    tokio a_large_package_costs_its_header_only,
    s3 an_event_reads_each_package_in_one_request,
    tokio a_deleted_state_never_stops_publishing,
    tokio a_corrupt_state_never_stops_publishing,
    tokio pkg_info_warnings_reach_the_status_object,
    tokio packages_pkgin_or_pkg_add_would_trip_on_are_warned_of,
];
