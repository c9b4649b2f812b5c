//! Hostile input and races through the repository pass (issue 20): what
//! one uploader or one racing writer can do must cost only itself.
//! Crafted inputs are made here; large ones are generated, never stored.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use pkgsum::config::Config;
use pkgsum::create::PackageBuilder;
use pkgsum::directory::index_directory;
use pkgsum::repo::{Repo, Scope};
use pkgsum::store::memory::MemoryStore;
use pkgsum::store::{ObjectMeta, Op, Peeked, PutOptions, Store, StoreError, StoreResult};

use crate::harness::trials;

trials! {
    tokio a_piece_dropped_while_read_means_read_the_manifest_again,
    tokio links_and_fifos_in_a_directory_are_not_packages,
    tokio names_no_summary_can_carry_are_reported_on_every_index,
    tokio events_outside_the_repositories_create_nothing,
    tokio a_package_named_like_a_summary_is_indexed,
    tokio hostile_uploads_cost_only_themselves,
    tokio forged_files_under_pkgsum_cost_a_rebuild_at_most,
}

async fn upload(store: &impl Store, key: &str, body: Vec<u8>) {
    store
        .put(key, Bytes::from(body), PutOptions::default())
        .await
        .unwrap();
}

/// A report's unreadable files, as (name, reason).
fn failures(report: &pkgsum::repo::Report) -> Vec<(&str, &str)> {
    report
        .failures
        .iter()
        .map(|(n, r)| (n.as_str(), r.as_str()))
        .collect()
}

async fn apply(store: &impl Store, names: &[&str]) -> pkgsum::repo::Report {
    let config = Config::default();
    let names: BTreeSet<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let repo = Repo::new(store, "All/", &config);
    let pkgsum::repo::Applied { report, unsure } =
        repo.apply(Scope::Names(&names), &()).await.unwrap();
    assert!(unsure.is_empty(), "{unsure:?}");
    report
}

/// A memory store where, the first time a piece is read, another writer
/// commits first (dropping that piece) and the read then fails as S3 does
/// when an object goes away under a GET: its body cut short.
struct Racing {
    inner: MemoryStore,
    armed: AtomicBool,
}

impl Store for Racing {
    async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>> {
        self.inner.head(key).await
    }

    async fn get(&self, key: &str) -> StoreResult<Option<(Bytes, ObjectMeta)>> {
        if key.contains("/.pkgsum/pieces/") && self.armed.swap(false, Ordering::SeqCst) {
            let other = PackageBuilder::new("other-1.0").build().unwrap();
            upload(&self.inner, "All/other-1.0.tgz", other).await;
            apply(&self.inner, &["other-1.0.tgz"]).await;
            assert!(self.inner.head(key).await.unwrap().is_none());
            let cut = "end of file before message length reached";
            return Err(StoreError::other(Op::Get, self.location(key), cut));
        }
        self.inner.get(key).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>, etag: &str) -> StoreResult<Bytes> {
        self.inner.get_range(key, range, etag).await
    }

    async fn peek(&self, key: &str, len: u64, unless: Option<&str>) -> StoreResult<Peeked> {
        self.inner.peek(key, len, unless).await
    }

    async fn put(&self, key: &str, body: Bytes, options: PutOptions) -> StoreResult<String> {
        self.inner.put(key, body, options).await
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.inner.delete(key).await
    }

    async fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>> {
        self.inner.list(prefix).await
    }

    fn location(&self, key: &str) -> String {
        self.inner.location(key)
    }

    fn sets_modified(&self) -> bool {
        self.inner.sets_modified()
    }
}

/// The races finding: a pass read a piece that a newer commit had just
/// dropped, got a truncated body, and failed; it must read the manifest
/// again and finish.
async fn a_piece_dropped_while_read_means_read_the_manifest_again() {
    let store = Racing {
        inner: MemoryStore::new(),
        armed: AtomicBool::new(false),
    };
    for name in ["a-1.0", "b-1.0"] {
        let body = PackageBuilder::new(name).build().unwrap();
        upload(&store, &format!("All/{name}.tgz"), body).await;
    }
    apply(&store, &["a-1.0.tgz", "b-1.0.tgz"]).await;
    let c = PackageBuilder::new("c-1.0").build().unwrap();
    upload(&store, "All/c-1.0.tgz", c).await;
    store.armed.store(true, Ordering::SeqCst);
    let report = apply(&store, &["c-1.0.tgz"]).await;
    assert!(!store.armed.load(Ordering::SeqCst), "the race never ran");
    assert!(report.attempts >= 2, "{}", report.attempts);
    // Both writers' packages are in the state the last commit made.
    assert_eq!(report.packages, 4);
}

/// L8: `index DIR` followed symbolic links and opened FIFOs: a link to a
/// secret had its size and first bytes land in the status.
async fn links_and_fifos_in_a_directory_are_not_packages() {
    let dir = tempfile::tempdir().unwrap();
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "root:SECRET-HASH:19000::::::\n".repeat(7)).unwrap();
    let good = PackageBuilder::new("good-1.0").build().unwrap();
    std::fs::write(dir.path().join("good-1.0.tgz"), good).unwrap();
    std::os::unix::fs::symlink(secret.path(), dir.path().join("shadow-1.0.tgz")).unwrap();
    // L3: a newline in a name would forge a log line and break the
    // summary's FILE_NAME line.
    let forged = PackageBuilder::new("forged-1.0").build().unwrap();
    std::fs::write(dir.path().join("x\nINFO forged-1.0.tgz"), forged).unwrap();
    let fifo = dir.path().join("fifo-1.0.tgz");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // Run in a thread of its own, so a read blocked on the FIFO fails the
    // test instead of hanging it.
    let path = dir.path().to_owned();
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tokio::spawn(async move { index_directory(&path, &Config::default(), &()).await }),
    )
    .await
    .expect("index returned")
    .unwrap()
    .unwrap();
    assert_eq!(report.packages, 1, "{report:?}");
    let failures = failures(&report);
    assert_eq!(
        failures,
        [(
            "x\nINFO forged-1.0.tgz",
            "file name holds a control character, which no summary line can carry"
        )]
    );
    let status = std::fs::read_to_string(dir.path().join(".pkgsum/status.json")).unwrap();
    assert!(
        !status.contains("shadow") && !status.contains("fifo"),
        "{status}"
    );
    // The lock is never written through a link either.
    let lock = dir.path().join(".pkgsum/lock");
    std::fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink(secret.path(), &lock).unwrap();
    let before = std::fs::read(secret.path()).unwrap();
    assert!(
        index_directory(dir.path(), &Config::default(), &())
            .await
            .is_err()
    );
    assert_eq!(std::fs::read(secret.path()).unwrap(), before);
}

/// Names no key can carry are reported by every `index`, not only the
/// first: after it they come from the pass's own listing.
async fn names_no_summary_can_carry_are_reported_on_every_index() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let good = PackageBuilder::new("good-1.0").build().unwrap();
    std::fs::write(dir.path().join("good-1.0.tgz"), &good).unwrap();
    let first = index_directory(dir.path(), &Config::default(), &())
        .await
        .unwrap();
    assert!(first.failures.is_empty(), "{:?}", first.failures);
    std::fs::write(dir.path().join("x\nINFO forged-1.0.tgz"), &good).unwrap();
    let latin1 = std::ffi::OsStr::from_bytes(b"caf\xe9-1.0.tgz");
    std::fs::write(dir.path().join(latin1), &good).unwrap();
    for _ in 0..2 {
        let report = index_directory(dir.path(), &Config::default(), &())
            .await
            .unwrap();
        let failures = failures(&report);
        assert_eq!(
            failures,
            [
                ("caf\u{fffd}-1.0.tgz", "file name is not valid UTF-8"),
                (
                    "x\nINFO forged-1.0.tgz",
                    "file name holds a control character, which no summary line can carry"
                ),
            ]
        );
        assert_eq!(report.packages, 1);
    }
}

/// L5: the event path made a repository of any sub-prefix, and took keys
/// with `..` segments or control characters.
async fn events_outside_the_repositories_create_nothing() {
    let store = MemoryStore::new();
    let body = PackageBuilder::new("x-1.0").build().unwrap();
    for key in ["All/sub/x-1.0.tgz", "Other/x-1.0.tgz", "All/x-1.0.tgz"] {
        upload(&store, key, body.clone()).await;
    }
    let vars = |name: &str| (name == "PKGSUM_REPOSITORIES").then(|| "s3://b/All/".to_owned());
    let config = Config::from_vars(vars).unwrap();
    let keys = [
        "All/sub/x-1.0.tgz",
        "Other/x-1.0.tgz",
        "All/../../.pkgsum/x.tgz",
        "All/x\n-1.0.tgz",
        "All/x-1.0.tgz",
    ];
    let records: Vec<serde_json::Value> = keys
        .iter()
        .map(|key| {
            serde_json::json!({"eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "b"}, "object": {"key": key}}})
        })
        .collect();
    let messages = pkgsum::event::decode(&serde_json::json!({ "Records": records }));
    let outcome = pkgsum::dispatch::apply_messages(&messages, |_| &store, &config).await;
    assert!(outcome.is_success(), "{:?}", outcome.errors);
    let prefixes: Vec<&str> = outcome.reports.iter().map(|r| r.prefix.as_str()).collect();
    assert_eq!(prefixes, ["All/"]);
    assert_eq!(outcome.reports[0].packages, 1);
    assert_eq!(outcome.ignored.len(), 4, "{:?}", outcome.ignored);
    for reason in &outcome.ignored {
        assert!(!reason.contains('\n'), "{reason:?}");
    }
    for key in ["All/sub/.pkgsum/state", "Other/.pkgsum/state"] {
        assert!(store.head(key).await.unwrap().is_none(), "{key}");
    }
}

/// L4: `pkg_summary-utils-*.tgz`, a real pkgsrc package, was taken for
/// one of pkgsum's own files and never indexed.
async fn a_package_named_like_a_summary_is_indexed() {
    let store = MemoryStore::new();
    let body = PackageBuilder::new("pkg_summary-utils-0.8")
        .build()
        .unwrap();
    upload(&store, "All/pkg_summary-utils-0.8.tgz", body).await;
    let report = apply(&store, &["pkg_summary-utils-0.8.tgz"]).await;
    assert_eq!(report.packages, 1);
}

/// One hostile upload each, applied among good packages: each is a
/// failure or a warning of its own, every good package is published, and
/// each bounded message stays short. (Their cost is measured by the
/// `hostile` benchmark, not asserted here.)
async fn hostile_uploads_cost_only_themselves() {
    let store = MemoryStore::new();
    let mut names = Vec::new();
    for i in 0..3 {
        let name = format!("good{i}-1.0");
        upload(
            &store,
            &format!("All/{name}.tgz"),
            PackageBuilder::new(&name).build().unwrap(),
        )
        .await;
        names.push(format!("{name}.tgz"));
    }
    for (name, body) in pkgsum::testing::hostile::uploads() {
        upload(&store, &format!("All/{name}"), body).await;
        names.push(name);
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let report = apply(&store, &names).await;
    assert!(report.packages >= 3, "{report:?}");
    for (name, error) in &report.failures {
        assert!(error.len() <= 1100, "{name}: {} bytes", error.len());
    }
    for (name, warning) in &report.warnings {
        assert!(warning.len() <= 1100, "{name}: {} bytes", warning.len());
    }
    let status = store
        .get("All/.pkgsum/status.json")
        .await
        .unwrap()
        .unwrap()
        .0;
    assert!(status.len() < 200_000, "{} bytes", status.len());
    let summary = store.get("All/pkg_summary.gz").await.unwrap();
    assert!(summary.is_some());
}

/// M5: files under `.pkgsum/` were trusted: a forged layout (overflowing
/// offsets) panicked the pass, and a small zstd state decoded to a
/// gigabyte. Now a forged layout is ignored, and a state too large or
/// too rich to decode within its bounds is a lost state, rebuilt.
async fn forged_files_under_pkgsum_cost_a_rebuild_at_most() {
    let store = MemoryStore::new();
    for name in ["a-1.0", "b-1.0"] {
        let body = PackageBuilder::new(name).build().unwrap();
        upload(&store, &format!("All/{name}.tgz"), body).await;
    }
    let first = apply(&store, &["a-1.0.tgz", "b-1.0.tgz"]).await;
    // A layout naming the published file's generation, with runs whose
    // lengths overflow when added up.
    let (zeros, ones) = (vec![0u8; 32], vec![1u8; 32]);
    let forged = serde_json::json!({
        "generation": first.generation,
        "layout": {"format": "gzip", "runs": [
            {"digest": zeros, "stored": zeros, "len": u64::MAX},
            {"digest": ones, "stored": zeros, "len": 2},
        ]},
    });
    upload(
        &store,
        "All/.pkgsum/layout.gz.json",
        forged.to_string().into_bytes(),
    )
    .await;
    let c = PackageBuilder::new("c-1.0").build().unwrap();
    upload(&store, "All/c-1.0.tgz", c).await;
    let report = apply(&store, &["c-1.0.tgz"]).await;
    assert_eq!(report.packages, 3);

    // A state of 65 MiB: larger than any pkgsum writes.
    let mut big = b"pkgsum-state\n\x06".to_vec();
    big.resize(65 << 20, 0);
    upload(&store, "All/.pkgsum/state", big).await;
    let report = apply(&store, &["c-1.0.tgz"]).await;
    assert!(report.state_lost.is_some(), "{report:?}");
    assert_eq!(report.packages, 3);

    // A small state that decodes to millions of empty strings.
    let mut body = vec![0u8, 0, 0, 0];
    body.extend_from_slice(&[0x80, 0x80, 0x80, 0x04]);
    body.resize(body.len() + (8 << 20), 0);
    let packed = zstd_frame(&body);
    assert!(packed.len() < 64 << 10, "{}", packed.len());
    upload(
        &store,
        "All/.pkgsum/state",
        [&b"pkgsum-state\n\x06"[..], &packed].concat(),
    )
    .await;
    let report = apply(&store, &["c-1.0.tgz"]).await;
    assert!(report.state_lost.is_some(), "{report:?}");
    assert_eq!(report.packages, 3);
}

/// `body` as one zstd frame.
fn zstd_frame(body: &[u8]) -> Vec<u8> {
    pkgsum::compression::Compression::Zstd
        .compress(body)
        .unwrap()
}
