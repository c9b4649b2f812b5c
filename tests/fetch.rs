//! Header-only fetches through the store: same records as reading the
//! whole file, a fraction of the bytes.

use crate::common;

use std::fs;

use bytes::Bytes;
use pkgsum::compression::Compression;
use pkgsum::create::{PackageBuilder, noise};
use pkgsum::fetch::{FetchError, FetchOptions, fetch_header};
use pkgsum::limit::Limits;
use pkgsum::record;
use pkgsum::store::counting::Counting;
use pkgsum::store::memory::MemoryStore;
use pkgsum::store::{PutOptions, Store};

async fn upload(store: &impl Store, key: &str, body: Vec<u8>) {
    store
        .put(key, Bytes::from(body), PutOptions::default())
        .await
        .unwrap();
}

async fn every_oracle_package_gives_the_same_metadata_as_a_whole_read() {
    let store = Counting::new(MemoryStore::new());
    let oracle = common::oracle();
    let mut names: Vec<String> = fs::read_dir(&oracle)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tgz") || n.ends_with(".tbz"))
        .collect();
    names.extend([
        "signed/signed-gpg-1.0.tgz".to_owned(),
        "signed/signed-x509-1.0.tgz".to_owned(),
    ]);
    for name in &names {
        let path = oracle.join(name);
        upload(&store, name, fs::read(&path).unwrap()).await;
        let meta = store.head(name).await.unwrap().unwrap();
        let fetched = fetch_header(&store, &meta, &FetchOptions::default())
            .await
            .unwrap();
        let whole = pkgsum::header::read_header(fs::File::open(&path).unwrap(), &Limits::default())
            .unwrap();
        assert_eq!(fetched.header.metadata, whole.metadata, "{name}");
        assert!(fetched.fetched <= meta.size, "{name}");
    }
}

async fn a_large_package_is_never_downloaded_whole() {
    let store = Counting::new(MemoryStore::new());
    let path = common::oracle().join("bigpayload-1.0.tgz");
    let body = fs::read(&path).unwrap();
    let size = body.len() as u64;
    upload(&store, "All/bigpayload-1.0.tgz", body).await;
    store.take();
    let meta = store.head("All/bigpayload-1.0.tgz").await.unwrap().unwrap();
    let fetched = fetch_header(&store, &meta, &FetchOptions::default())
        .await
        .unwrap();
    let counts = store.take();
    eprintln!(
        "bigpayload: fetched {} of {size} bytes in {} request(s)",
        fetched.fetched, fetched.requests
    );
    assert!(
        counts.bytes_read < 128 * 1024,
        "{} bytes",
        counts.bytes_read
    );
    assert_eq!(counts.bytes_read, fetched.fetched);
    assert_eq!(fetched.requests, 1);
}

async fn ranges_grow_only_while_the_metadata_continues() {
    let store = MemoryStore::new();
    // manyfiles: a 765,117-byte +CONTENTS in a 250 KB package.
    let path = common::oracle().join("manyfiles-1.0.tgz");
    upload(&store, "manyfiles-1.0.tgz", fs::read(&path).unwrap()).await;
    let meta = store.head("manyfiles-1.0.tgz").await.unwrap().unwrap();
    let fetched = fetch_header(&store, &meta, &FetchOptions::default())
        .await
        .unwrap();
    let (want, _) = pkgsum::record_file(&path, &Limits::default()).unwrap();
    let got = record::render(
        &fetched.header.metadata,
        Some(record::FileInfo {
            name: b"manyfiles-1.0.tgz",
            size: meta.size,
        }),
    );
    assert!(got == want);
    assert!(fetched.requests > 1);

    // Starting from one byte still converges, by doubling.
    let tiny = FetchOptions {
        initial: 1,
        ..FetchOptions::default()
    };
    let again = fetch_header(&store, &meta, &tiny).await.unwrap();
    assert_eq!(again.header.metadata, fetched.header.metadata);
}

async fn a_bzip2_package_fits_under_the_fetch_bound_and_bad_ones_fail_clearly() {
    let store = MemoryStore::new();
    let bz = PackageBuilder::new("bz-1.0")
        .file("share/bz/blob", noise(5, 3 << 20))
        .compression(Compression::Bzip2)
        .build()
        .unwrap();
    upload(&store, "bz-1.0.tgz", bz).await;
    let meta = store.head("bz-1.0.tgz").await.unwrap().unwrap();
    let fetched = fetch_header(&store, &meta, &FetchOptions::default())
        .await
        .unwrap();
    assert!(
        fetched.fetched < meta.size,
        "{} of {}",
        fetched.fetched,
        meta.size
    );

    let small = FetchOptions {
        max: 100_000,
        ..FetchOptions::default()
    };
    let err = fetch_header(&store, &meta, &small).await.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::Package(pkgsum::Error::FetchLimit { limit: 100_000 })
        ),
        "{err}"
    );
    // M1: the message says what ran out: the bytes fetched.
    assert_eq!(
        err.to_string(),
        "its header needs more than the first 100000 bytes of the file (the fetch limit)"
    );

    let whole = PackageBuilder::new("cut-1.0").build().unwrap();
    upload(&store, "cut-1.0.tgz", whole[..whole.len() / 2].to_vec()).await;
    let meta = store.head("cut-1.0.tgz").await.unwrap().unwrap();
    let err = fetch_header(&store, &meta, &FetchOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
}

async fn an_overwrite_between_head_and_get_is_a_store_error() {
    let store = MemoryStore::new();
    upload(
        &store,
        "a-1.tgz",
        PackageBuilder::new("a-1").build().unwrap(),
    )
    .await;
    let meta = store.head("a-1.tgz").await.unwrap().unwrap();
    upload(
        &store,
        "a-1.tgz",
        PackageBuilder::new("a-2").build().unwrap(),
    )
    .await;
    let err = fetch_header(&store, &meta, &FetchOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::Store(ref e) if e.is_precondition()),
        "{err}"
    );
}

crate::harness::trials![
    tokio every_oracle_package_gives_the_same_metadata_as_a_whole_read,
    tokio a_large_package_is_never_downloaded_whole,
    tokio ranges_grow_only_while_the_metadata_continues,
    tokio a_bzip2_package_fits_under_the_fetch_bound_and_bad_ones_fail_clearly,
    tokio an_overwrite_between_head_and_get_is_a_store_error,
];
