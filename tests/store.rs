//! The store conformance suite ([`pkgsum::store::conformance`]) run on
//! every backend, and what only the local store must do.

use crate::common;

use std::sync::Arc;

use bytes::Bytes;
use pkgsum::store::conformance::check;
use pkgsum::store::local::LocalStore;
use pkgsum::store::memory::MemoryStore;
use pkgsum::store::s3::{ConditionalWrites, IfMatch};
use pkgsum::store::{PutMode, PutOptions, Store};

async fn memory_store_conforms() {
    check(Arc::new(MemoryStore::new()), "").await;
}

async fn local_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    check(Arc::new(LocalStore::new(dir.path())), "").await;
}

async fn local_store_refuses_escaping_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    for key in [
        "../x",
        "/etc/passwd",
        "a/../../b",
        "",
        ".pkgsum-meta/x.json",
    ] {
        assert!(store.head(key).await.is_err(), "{key:?}");
    }
}

/// A rewrite in place that keeps the size and puts the mtime back (as
/// some copy tools do) is still a new version: its ETag changes.
async fn local_store_sees_a_rewrite_that_keeps_size_and_mtime() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let path = dir.path().join("a-1.tgz");
    std::fs::write(&path, b"first").unwrap();
    let before = store.head("a-1.tgz").await.unwrap().unwrap();
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&path, b"other").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let after = store.head("a-1.tgz").await.unwrap().unwrap();
    assert_eq!(
        (after.size, after.last_modified),
        (before.size, before.last_modified)
    );
    assert_ne!(after.etag, before.etag);
}

async fn s3_store_conforms() {
    check(Arc::new(common::s3_bucket().await), "repo/").await;
}

/// Ceph RGW 16: the probe finds its If-Match dialect (the ETag without
/// quotes) and that it ignores x-amz-copy-source-if-match, and with both
/// the store passes the whole suite (a stale part copy is refused by the
/// HEAD of its source); with the standard quoted form, every update is
/// refused.
async fn rgw_store_conforms_once_probed() {
    let store = pkgsum::testing::rgw_bucket().await;
    let found = store.probe("").await.unwrap();
    assert_eq!(
        found,
        ConditionalWrites {
            create: true,
            update: Some(IfMatch::Bare),
            copy_pinned: false,
        },
        "{found}"
    );
    // The probe cleans up after itself.
    assert!(store.list("").await.unwrap().is_empty());
    let quoted = store.clone();
    quoted
        .put("k", Bytes::from_static(b"x"), PutOptions::default())
        .await
        .unwrap();
    let etag = quoted.head("k").await.unwrap().unwrap().etag;
    let update = PutOptions {
        mode: PutMode::Update(etag),
        ..PutOptions::default()
    };
    let err = quoted
        .put("k", Bytes::from_static(b"y"), update)
        .await
        .unwrap_err();
    assert!(err.is_precondition(), "{err}");
    quoted.delete("k").await.unwrap();
    check(Arc::new(store.with_probed(found)), "repo/").await;
}

/// SeaweedFS honours the standard forms and pins part copies to their
/// source's ETag; the whole suite passes (its assemblies check no source
/// by HEAD).
async fn seaweedfs_store_conforms() {
    let store = pkgsum::testing::seaweedfs_bucket().await;
    let found = store.probe("").await.unwrap();
    assert!(
        found.honoured() && found.update == Some(IfMatch::Quoted),
        "{found}"
    );
    assert!(
        found.copy_pinned,
        "SeaweedFS pins part copies to their source's ETag"
    );
    check(Arc::new(store), "repo/").await;
}

/// LocalStack follows AWS: the standard forms, and part copies pinned to
/// their source's ETag (the suite's refused stale copy runs on it with no
/// HEAD of the source).
async fn s3_store_probe_finds_the_standard_forms() {
    let store = common::s3_bucket().await;
    let found = store.probe("").await.unwrap();
    assert!(
        found.honoured() && found.update == Some(IfMatch::Quoted),
        "{found}"
    );
    assert!(
        found.copy_pinned,
        "LocalStack pins part copies to their source's ETag"
    );
}

/// A reference to a store and an `Arc` of one delete conditionally as the
/// store itself does (not by the trait's HEAD-then-DELETE default).
async fn references_delete_conditionally_as_their_store_does() {
    use pkgsum::store::counting::Counting;
    async fn delete_if<S: Store>(store: S, key: &str, etag: &str) {
        store.delete_if(key, etag).await.unwrap();
    }
    let store = Arc::new(Counting::new(MemoryStore::new()));
    for key in ["a", "b"] {
        store
            .put(key, Bytes::from_static(b"x"), PutOptions::default())
            .await
            .unwrap();
    }
    let etag = store.head("a").await.unwrap().unwrap().etag;
    store.take();
    delete_if(&*store, "a", &etag).await;
    delete_if(store.clone(), "b", &etag).await;
    let counts = store.take();
    assert_eq!((counts.heads, counts.deletes), (0, 2), "{counts:?}");
}

/// An object made mostly of another is copied inside an S3 server: the
/// long range crosses no wire, of the short bytes before it only enough
/// to make a 5 MiB part is read and sent, and a short range last is
/// copied too.
async fn assembled_inside<S: Store>(store: S) {
    use pkgsum::store::Segment;
    let bytes: Vec<u8> = (0..12u32 << 20).map(|i| (i % 241) as u8).collect();
    let etag = store
        .put("from", Bytes::from(bytes.clone()), PutOptions::default())
        .await
        .unwrap();
    let whole = Segment::Copy {
        key: "from".to_owned(),
        etag: etag.clone(),
        range: 0..12 << 20,
    };
    let tail = vec![whole.clone(), Segment::Bytes(Bytes::from_static(b"x"))];
    let made = store
        .assemble("to", tail, PutOptions::default())
        .await
        .unwrap();
    assert_eq!((made.sent, made.received, made.copied), (1, 0, 12 << 20));
    let head = vec![Segment::Bytes(Bytes::from_static(b"head")), whole.clone()];
    let made = store
        .assemble("to", head, PutOptions::default())
        .await
        .unwrap();
    let filled = (5 << 20) - 4;
    assert_eq!(
        (made.sent, made.received, made.copied),
        (5 << 20, filled, (12 << 20) - filled)
    );
    let (stored, _) = store.get("to").await.unwrap().unwrap();
    assert!(stored == [&b"head"[..], &bytes].concat());
    // A short range last is copied as the last part: nothing crosses.
    let short = Segment::Copy {
        key: "from".to_owned(),
        etag: etag.clone(),
        range: 100..200,
    };
    let made = store
        .assemble("to", vec![whole, short], PutOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (made.sent, made.received, made.copied),
        (0, 0, (12 << 20) + 100)
    );
    let (stored, _) = store.get("to").await.unwrap().unwrap();
    assert!(stored == [&bytes[..], &bytes[100..200]].concat());
}

async fn s3_assembles_inside_the_store() {
    assembled_inside(common::s3_bucket().await).await;
}

async fn rgw_assembles_inside_the_store() {
    let store = pkgsum::testing::rgw_bucket().await;
    let found = store.probe("").await.unwrap();
    assembled_inside(store.with_probed(found)).await;
}

async fn seaweedfs_assembles_inside_the_store() {
    assembled_inside(pkgsum::testing::seaweedfs_bucket().await).await;
}

crate::harness::trials![
    s3 s3_assembles_inside_the_store,
    rgw rgw_assembles_inside_the_store,
    seaweedfs seaweedfs_assembles_inside_the_store,
    tokio references_delete_conditionally_as_their_store_does,
    rgw rgw_store_conforms_once_probed,
    seaweedfs seaweedfs_store_conforms,
    s3 s3_store_probe_finds_the_standard_forms,
    tokio memory_store_conforms,
    tokio local_store_conforms,
    tokio local_store_refuses_escaping_keys,
    tokio local_store_sees_a_rewrite_that_keeps_size_and_mtime,
    s3 s3_store_conforms,
];
