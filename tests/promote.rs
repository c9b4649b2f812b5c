//! `pkgsum promote`: packages moved between repositories inside the
//! store, judged against DEST as `push` judges files, as one release. On
//! LocalStack (two buckets, DEST indexed by `pkgsum poll` from its real
//! notifications) and between directories through the binary.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pkgsum::config::Config;
use pkgsum::create::PackageBuilder;
use pkgsum::dispatch::apply_messages;
use pkgsum::event;
use pkgsum::promote::{self, Chosen, PromoteOptions};
use pkgsum::repo::Repo;
use pkgsum::store::open::AnyStore;
use pkgsum::store::s3::{Copying, S3Store};
use pkgsum::store::{PutOptions, Store};

const PREFIX: &str = "All/";

use common::package_for as package;

/// Uploads `files` (name, body, release tag) to `store` and indexes them
/// as their notifications would.
async fn publish(store: &S3Store, files: Vec<(String, Vec<u8>, Option<String>)>) {
    let mut keys = Vec::new();
    for (name, body, tag) in files {
        let key = format!("{PREFIX}{name}");
        let options = PutOptions {
            metadata: tag
                .map(|t| [("pkgsum-release".to_owned(), t)].into())
                .unwrap_or_default(),
            ..PutOptions::default()
        };
        store.put(&key, Bytes::from(body), options).await.unwrap();
        keys.push(key);
    }
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let payload = common::s3_event(store.bucket(), "ObjectCreated:Put", &refs);
    let outcome = apply_messages(&event::decode(&payload), |_| store, &Config::default()).await;
    assert!(outcome.is_success(), "{:?}", outcome.errors);
}

fn pkgsum(args: &[&str]) -> (i32, String, String) {
    common::pkgsum(args, &[])
}

/// `pkgsum poll` on a queue, stopped when dropped.
struct Poller(std::process::Child);

impl Drop for Poller {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// A 20-package release pushed to testing is promoted to stable: copied
/// inside the store, live in stable in one generation whose history says
/// where it came from; promoting it again copies nothing.
async fn s3_a_release_is_promoted_whole() {
    let (testing, stable) = (common::s3_bucket().await, common::s3_bucket().await);
    let members: Vec<String> = (0..20).map(|i| format!("m{i:02}-1.0")).collect();
    let mut files: Vec<_> = members
        .iter()
        .map(|m| {
            let body = package(m, "NetBSD", "a member");
            (format!("{m}.tgz"), body, Some("testing-7/20".to_owned()))
        })
        .collect();
    files.push((
        "other-1.0.tgz".into(),
        package("other-1.0", "NetBSD", "x"),
        None,
    ));
    publish(&testing, files).await;
    publish(
        &stable,
        vec![(
            "base-1.0.tgz".into(),
            package("base-1.0", "NetBSD", "x"),
            None,
        )],
    )
    .await;
    let (_sqs, queue) = pkgsum::testing::subscribe(&stable).await;
    let _poller = Poller(
        Command::new(env!("CARGO_BIN_EXE_pkgsum"))
            .args(["poll", "--wait", "1", &queue])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let src = format!("s3://{}/{PREFIX}", testing.bucket());
    let dest = format!("s3://{}/{PREFIX}", stable.bucket());
    let run = |extra: &'static [&'static str]| {
        let (src, dest) = (src.clone(), dest.clone());
        tokio::task::spawn_blocking(move || {
            let mut args = vec!["promote", &src, &dest, "--json", "--timeout", "60s"];
            args.extend(extra);
            pkgsum(&args)
        })
    };
    let (code, out, err) = run(&["--release", "testing-7"]).await.unwrap();
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let live: BTreeSet<&str> = report["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["state"] == "live")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(live.len(), 20, "{report}");
    eprintln!(
        "promote: 20 packages live in DEST {:.1} s after promote began",
        report["seconds"].as_f64().unwrap()
    );
    assert!(report["release"].as_str().unwrap().ends_with("/20"));
    // Copied inside the store: the same bytes, the same ETag.
    let key = format!("{PREFIX}m00-1.0.tgz");
    let (a, b) = (
        testing.head(&key).await.unwrap(),
        stable.head(&key).await.unwrap(),
    );
    assert_eq!(a.unwrap().etag, b.unwrap().etag);
    assert!(
        stable
            .head(&format!("{PREFIX}other-1.0.tgz"))
            .await
            .unwrap()
            .is_none()
    );

    // One generation added all 20, and says where they came from.
    // The history entry is written after the summaries: promote may have
    // seen them live a moment before it.
    let config = Config::default();
    let mut history = Vec::new();
    for _ in 0..300 {
        history = Repo::new(&stable, PREFIX, &config).history().await.unwrap();
        if history.len() == 2 && history[1].note.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sizes: Vec<usize> = history.iter().map(|e| e.changes.added.len()).collect();
    assert_eq!(sizes, [1, 20], "{history:?}");
    let note = history[1].note.as_deref().unwrap_or_default();
    assert!(
        note.starts_with(&format!(
            "promoted from s3://{}/All/ generation ",
            testing.bucket()
        )) && note.ends_with(": 20 packages"),
        "{note}"
    );

    let (code, _, err) = run(&["--release", "testing-7"]).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        err.matches("the same bytes are there already").count(),
        20,
        "{err}"
    );
    let (code, _, err) = run(&["--release", "nope"]).await.unwrap();
    assert_eq!(code, 2);
    assert!(err.contains("no package of release nope is there"), "{err}");
}

/// Above the copy's part size a package is copied in parts
/// (UploadPartCopy), whole.
async fn s3_a_large_package_is_copied_in_parts() {
    let (testing, stable) = (common::s3_bucket().await, common::s3_bucket().await);
    let mut rng = fastrand::Rng::with_seed(5);
    let payload: Vec<u8> = (0..11 << 20).map(|_| rng.u8(..)).collect();
    let body = PackageBuilder::new("large-1.0")
        .file("share/large/blob", payload)
        .build()
        .unwrap();
    publish(&testing, vec![("large-1.0.tgz".into(), body.clone(), None)]).await;
    let config = Config::default();
    let (src_store, dest_store) = (AnyStore::S3(testing), AnyStore::S3(stable.clone()));
    let src = Repo::new(&src_store, PREFIX, &config);
    let dest = Repo::new(&dest_store, PREFIX, &config);
    let options = PromoteOptions {
        replace: false,
        copying: Copying {
            parts_above: 5 << 20,
            part_size: 5 << 20,
        },
    };
    let names = ["large-1.0".to_owned()];
    let promoted = promote::promote(&src, &dest, Chosen::Names(&names), options)
        .await
        .unwrap();
    assert!(!promoted.refused(), "{:?}", promoted.found.refused);
    assert_eq!(promoted.copied, [Ok(true)]);
    let (stored, meta) = stable
        .get(&format!("{PREFIX}large-1.0.tgz"))
        .await
        .unwrap()
        .unwrap();
    assert!(stored == body, "not copied whole");
    assert!(meta.etag.ends_with("-3"), "not three parts: {}", meta.etag);
    assert!(meta.metadata["pkgsum-release"].ends_with("/1"), "{meta:?}");
}

fn write(dir: &Path, name: &str, body: Vec<u8>) {
    std::fs::write(dir.join(name), body).unwrap();
}

/// Between directories, through the binary: a missing name, a changed
/// file, another platform and another file at DEST's key are refused
/// (nothing copied); then the packages are copied, indexed and live.
fn directories_are_promoted_through_the_binary() {
    let (testing, stable) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (src, dest) = (
        testing.path().to_str().unwrap(),
        stable.path().to_str().unwrap(),
    );
    for name in ["a-1.0", "b-1.0", "c-1.0"] {
        write(
            testing.path(),
            &format!("{name}.tgz"),
            package(name, "NetBSD", "tested"),
        );
    }
    write(
        testing.path(),
        "linux-1.0.tgz",
        package("linux-1.0", "Linux", "x"),
    );
    write(
        stable.path(),
        "base-1.0.tgz",
        package("base-1.0", "NetBSD", "x"),
    );
    write(
        stable.path(),
        "c-1.0.tgz",
        package("c-1.0", "NetBSD", "another c"),
    );
    for dir in [src, dest] {
        assert_eq!(pkgsum(&["index", dir]).0, 0);
    }

    let (code, _, err) = pkgsum(&["promote", src, dest, "a-1.0", "nope-1.0"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("1 package not indexed there: nope-1.0"),
        "{err}"
    );
    let (code, _, err) = pkgsum(&["promote", src, dest, "a-1.0", "linux-1.0"]);
    assert_eq!(code, 2);
    assert!(err.contains("built for OPSYS=Linux"), "{err}");
    let (code, _, err) = pkgsum(&["promote", src, dest, "a-1.0", "c-1.0"]);
    assert_eq!(code, 2);
    assert!(err.contains("holds another file"), "{err}");
    assert!(
        !stable.path().join("a-1.0.tgz").exists(),
        "copied by halves"
    );

    let started = Instant::now();
    let (code, out, err) = pkgsum(&["promote", src, dest, "a-1.0", "b-1.0.tgz", "--json"]);
    assert_eq!(code, 0, "{err}");
    let elapsed = started.elapsed();
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["verdict"], "indexed", "{report}");
    for name in ["a-1.0.tgz", "b-1.0.tgz"] {
        let (from, to) = (testing.path().join(name), stable.path().join(name));
        assert_eq!(std::fs::read(from).unwrap(), std::fs::read(to).unwrap());
    }
    let summary = common::decompress(&std::fs::read(stable.path().join("pkg_summary.gz")).unwrap());
    let text = String::from_utf8(summary).unwrap();
    assert!(text.contains("PKGNAME=a-1.0\n") && text.contains("PKGNAME=b-1.0\n"));
    let (code, out, _) = pkgsum(&["history", dest, "--json"]);
    assert_eq!(code, 0);
    let history: serde_json::Value = serde_json::from_str(&out).unwrap();
    let last = history.as_array().unwrap().last().unwrap();
    assert!(
        last["note"].as_str().unwrap().ends_with(": 2 packages"),
        "{last}"
    );
    assert!(elapsed < Duration::from_secs(60));

    // A file changed since SRC indexed it is not promoted.
    write(
        testing.path(),
        "b-1.0.tgz",
        package("b-1.0", "NetBSD", "rebuilt"),
    );
    let (code, _, err) = pkgsum(&["promote", src, dest, "b-1.0", "--replace"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("b-1.0.tgz changed since it was indexed"),
        "{err}"
    );
    // Another file at DEST's key is replaced when asked.
    let (code, _, err) = pkgsum(&["promote", src, dest, "c-1.0", "--replace"]);
    assert_eq!(code, 0, "{err}");
}

crate::harness::trials!(
    s3 s3_a_release_is_promoted_whole,
    s3 s3_a_large_package_is_copied_in_parts,
    test directories_are_promoted_through_the_binary,
);
