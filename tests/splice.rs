//! Summaries spliced inside the store: a repository whose summaries are
//! larger than S3's 5 MiB part, changed by random uploads, replacements
//! and deletions through the event path, still publishes exactly its
//! records in every format, while each update sends and reads only a
//! small part of what the summaries hold. On the memory store (which
//! splices as S3 does), LocalStack, Ceph RGW and SeaweedFS.

use crate::common;

use std::collections::BTreeMap;
use std::ops::Range;

use bytes::Bytes;
use pkgsum::compression::Compression;
use pkgsum::config::Config;
use pkgsum::dispatch::apply_messages;
use pkgsum::event;
use pkgsum::repo::output_key;
use pkgsum::store::counting::Counting;
use pkgsum::store::memory::MemoryStore;
use pkgsum::store::{Assembly, ObjectMeta, PutOptions, Segment, Store, StoreResult};

const PREFIX: &str = "All/";

/// Seeded packages: with records of about 7.5 KiB of random text, each
/// format's summary is about 12 MiB, two parts and more. Over 10 MiB, so
/// that a deletion anywhere leaves a stretch of at least 5 MiB to copy: a
/// spliced file keeps what it kept together, so there is one such
/// stretch at every step. (At 9 MiB, a deletion in the middle left none,
/// and the file was sent whole.)
const SEEDED: usize = 2_200;

/// A record of about 7.5 KiB that no codec shrinks much, so a few
/// thousand make summaries of several parts.
fn big_record(i: usize) -> (String, Vec<u8>) {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = fastrand::Rng::with_seed(i as u64);
    let name = format!("big{i:05}-1.0.tgz");
    let mut record = format!("PKGNAME=big{i:05}-1.0\nCOMMENT=Big package {i}\n").into_bytes();
    for _ in 0..100 {
        record.extend_from_slice(b"DESCRIPTION=");
        record.extend((0..64).map(|_| ALPHABET[rng.usize(..64)]));
        record.push(b'\n');
    }
    record.extend(format!("FILE_NAME={name}\nFILE_SIZE={}\n\n", 4096 + i).into_bytes());
    (name, record)
}

/// The record pkgsum makes of a package: `pkg_info -X` of its header.
fn record_of(name: &str, body: &[u8]) -> Vec<u8> {
    let header =
        pkgsum::header::read_header(body, &pkgsum::limit::Limits::default()).expect("a header");
    let info = pkgsum::record::FileInfo {
        name: name.as_bytes(),
        size: body.len() as u64,
    };
    pkgsum::record::render(&header.metadata, Some(info))
}

/// Delivers one notification of `event` for `key`; returns how many
/// summary runs were copied.
async fn deliver<S: Store>(store: &S, event: &str, key: &str, config: &Config) -> usize {
    let messages = event::decode(&common::s3_event("bucket", event, &[key]));
    let outcome = apply_messages(&messages, |_| store, config).await;
    assert!(outcome.is_success(), "{:?}", outcome.errors);
    outcome.reports.iter().map(|r| r.runs_copied).sum()
}

/// What `format`'s published summary lists, sorted (a spliced summary
/// keeps its records in no particular order).
async fn listed<S: Store>(store: &S, format: Compression) -> Vec<Vec<u8>> {
    let summary = common::published(store, &output_key(PREFIX, format)).await;
    let mut records = common::split_records(&summary);
    records.sort();
    records
}

/// `steps` random uploads, replacements and deletions of a repository
/// seeded with [`SEEDED`] packages; after each the gzip summary, and at
/// the end every format, lists exactly the records; an update moves at
/// most 8 MiB each way on average (a summary rewritten whole would move
/// 48 MiB each way).
async fn spliced_summaries_hold_the_records<S: Store>(store: S, steps: usize) {
    let config = Config {
        site: false,
        formats: pkgsum::summary::PKGIN_ORDER.to_vec(),
        // A store copies the summaries into the history at every step:
        // in the memory of the tests' Ceph RGW (2 GiB), 50 generations of
        // 4 summaries of 12 MiB would not fit.
        history: 1,
        ..Config::default()
    };
    let store = Counting::new(store);
    pkgsum::testing::seed(&store, PREFIX, SEEDED, big_record, &config).await;
    for format in pkgsum::summary::PKGIN_ORDER {
        let key = output_key(PREFIX, format);
        let size = store.head(&key).await.unwrap().expect("a summary").size;
        assert!(size > 10 << 20, "{key} is only {size} bytes");
    }
    let mut model: BTreeMap<String, Vec<u8>> = (0..SEEDED).map(big_record).collect();
    let mut added: Vec<String> = Vec::new();
    let mut rng = fastrand::Rng::new();
    let (mut written, mut read, mut copied) = (0, 0, 0);
    for step in 0..steps {
        store.take();
        let choice = rng.u8(..3);
        if choice == 0 || (choice == 1 && added.is_empty()) {
            let name = format!("new{step:03}-1.{}.tgz", rng.u8(..9));
            let body = common::package_for(name.trim_end_matches(".tgz"), "NetBSD", "added");
            store_put(&store, &name, &body).await;
            model.insert(name.clone(), record_of(&name, &body));
            added.push(name.clone());
            copied += deliver(&store, "ObjectCreated:Put", &key(&name), &config).await;
        } else if choice == 1 {
            let name = added[rng.usize(..added.len())].clone();
            let comment = format!("replaced at step {step}");
            let body = common::package_for(name.trim_end_matches(".tgz"), "NetBSD", &comment);
            store_put(&store, &name, &body).await;
            model.insert(name.clone(), record_of(&name, &body));
            copied += deliver(&store, "ObjectCreated:Put", &key(&name), &config).await;
        } else {
            let names: Vec<&String> = model.keys().collect();
            let name = names[rng.usize(..names.len())].clone();
            store.delete(&key(&name)).await.unwrap();
            model.remove(&name);
            added.retain(|n| n != &name);
            copied += deliver(&store, "ObjectRemoved:Delete", &key(&name), &config).await;
        }
        let counts = store.take();
        written += counts.bytes_written;
        read += counts.bytes_read;
        let mut want: Vec<Vec<u8>> = model.values().cloned().collect();
        want.sort();
        assert!(
            listed(&store, Compression::Gzip).await == want,
            "step {step}: the gzip summary does not list exactly the records"
        );
    }
    let mut want: Vec<Vec<u8>> = model.values().cloned().collect();
    want.sort();
    for format in [Compression::Bzip2, Compression::Xz, Compression::Zstd] {
        assert!(
            listed(&store, format).await == want,
            "{format:?}: the summary does not list exactly the records"
        );
    }
    let mib = |bytes: u64| bytes as f64 / steps as f64 / 1048576.0;
    assert!(copied > steps, "hardly any run was copied: {copied}");
    assert!(
        mib(written) < 8.0 && mib(read) < 8.0,
        "an update sent {:.1} MiB and read {:.1} MiB",
        mib(written),
        mib(read)
    );
}

fn key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

async fn store_put<S: Store>(store: &S, name: &str, body: &[u8]) {
    let body = Bytes::copy_from_slice(body);
    store
        .put(&key(name), body, PutOptions::default())
        .await
        .unwrap();
}

async fn memory_spliced_summaries_hold_the_records() {
    spliced_summaries_hold_the_records(MemoryStore::setting_modified(), 40).await;
}

async fn s3_spliced_summaries_hold_the_records() {
    spliced_summaries_hold_the_records(common::s3_bucket().await, 40).await;
}

async fn rgw_spliced_summaries_hold_the_records() {
    let store = pkgsum::testing::rgw_bucket().await;
    let found = store.probe("").await.unwrap();
    let store = store.with_probed(found);
    spliced_summaries_hold_the_records(store, 8).await;
}

async fn seaweedfs_spliced_summaries_hold_the_records() {
    spliced_summaries_hold_the_records(pkgsum::testing::seaweedfs_bucket().await, 8).await;
}

/// Replaces the gzip summary (same records, one more empty gzip member)
/// just before pkgsum's first splice of it completes: another writer.
struct Interfering {
    inner: MemoryStore,
    done: std::sync::atomic::AtomicBool,
}

impl Store for Interfering {
    async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>> {
        self.inner.head(key).await
    }
    async fn get(&self, key: &str) -> StoreResult<Option<(Bytes, ObjectMeta)>> {
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &str, range: Range<u64>, etag: &str) -> StoreResult<Bytes> {
        self.inner.get_range(key, range, etag).await
    }
    async fn put(&self, key: &str, body: Bytes, options: PutOptions) -> StoreResult<String> {
        self.inner.put(key, body, options).await
    }
    async fn assemble(
        &self,
        key: &str,
        segments: Vec<Segment>,
        options: PutOptions,
    ) -> StoreResult<Assembly> {
        use std::sync::atomic::Ordering;
        if key == output_key(PREFIX, Compression::Gzip) && !self.done.swap(true, Ordering::SeqCst) {
            let (body, meta) = self.inner.get(key).await?.expect("a summary");
            let grown = [&body[..], &Compression::Gzip.compress(b"").unwrap()].concat();
            let options = PutOptions {
                metadata: meta.metadata,
                ..PutOptions::default()
            };
            self.inner.put(key, Bytes::from(grown), options).await?;
        }
        self.inner.assemble(key, segments, options).await
    }
    fn copies_at_least(&self) -> Option<u64> {
        self.inner.copies_at_least()
    }
    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>> {
        self.inner.list(prefix).await
    }
    fn sets_modified(&self) -> bool {
        true
    }
}

/// A splice refused because the file it copies from was replaced makes
/// the summary whole instead: it still lists exactly the records.
async fn a_refused_splice_is_made_whole() {
    let config = Config {
        site: false,
        ..Config::default()
    };
    let store = Interfering {
        inner: MemoryStore::setting_modified(),
        done: Default::default(),
    };
    pkgsum::testing::seed(&store, PREFIX, SEEDED, big_record, &config).await;
    let mut model: BTreeMap<String, Vec<u8>> = (0..SEEDED).map(big_record).collect();
    let body = common::package_for("racer-1.0", "NetBSD", "racing");
    store_put(&store, "racer-1.0.tgz", &body).await;
    model.insert(
        "racer-1.0.tgz".to_owned(),
        record_of("racer-1.0.tgz", &body),
    );
    deliver(&store, "ObjectCreated:Put", &key("racer-1.0.tgz"), &config).await;
    assert!(store.done.load(std::sync::atomic::Ordering::SeqCst));
    let mut want: Vec<Vec<u8>> = model.into_values().collect();
    want.sort();
    for format in pkgsum::summary::DEFAULT_FORMATS {
        assert!(listed(&store, format).await == want, "{format:?}");
    }
}

crate::harness::trials![
    tokio a_refused_splice_is_made_whole,
    tokio memory_spliced_summaries_hold_the_records,
    s3 s3_spliced_summaries_hold_the_records,
    rgw rgw_spliced_summaries_hold_the_records,
    seaweedfs seaweedfs_spliced_summaries_hold_the_records,
];
