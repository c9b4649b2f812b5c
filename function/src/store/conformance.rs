//! The store conformance suite: the semantics the indexer relies on
//! (conditional writes above all), checked against any backend. Each
//! backend's tests call [`check`] (as object_store's `integration.rs` is
//! used); the suite lives here, beside the trait it specifies.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::{Peeked, PutMode, PutOptions, Store};

/// Runs the whole suite on `store`, under keys starting with `base`.
pub async fn check<S: Store + 'static>(store: Arc<S>, base: &str) {
    basic_semantics(store.as_ref(), base).await;
    peek(store.as_ref(), base).await;
    modification_time(store.as_ref(), base).await;
    copy(store.as_ref(), base).await;
    checksums(store.as_ref(), base).await;
    parts(store.as_ref(), base).await;
    assembly(store.as_ref(), base).await;
    conditional_delete(store.as_ref(), base).await;
    one_winner(store, base).await;
}

/// A body sent in parts (S3's smallest part but the last is 5 MiB) is
/// stored whole with its metadata; one with a part that does not match
/// its checksum is refused and not stored.
async fn parts<S: Store>(store: &S, base: &str) {
    use futures::StreamExt as _;
    let key = format!("{base}dir/in parts-1.0.tgz");
    let first: Vec<u8> = (0..5u32 << 20).map(|i| (i % 251) as u8).collect();
    let body = [&first[..], b"and the rest"].concat();
    let split = |damaged: bool| {
        let last = Bytes::from_static(b"and the rest");
        let stated = match damaged {
            true => super::Checksum::of(b"other bytes"),
            false => super::Checksum::of(&last),
        };
        let first = Bytes::from(first.clone());
        let parts = vec![
            Ok((first.clone(), super::Checksum::of(&first))),
            Ok((last, stated)),
        ];
        futures::stream::iter(parts).boxed()
    };
    let options = || PutOptions {
        metadata: BTreeMap::from([("pkgsum-sha256".to_owned(), "abc".to_owned())]),
        checksum: Some(super::Checksum::of(&body)),
        ..put_opts(PutMode::Create)
    };
    store
        .put_parts(&key, split(false), options())
        .await
        .unwrap();
    let (stored, meta) = store.get(&key).await.unwrap().unwrap();
    assert!(stored == body, "the parts were not stored whole");
    assert_eq!(
        meta.metadata.get("pkgsum-sha256").map(String::as_str),
        Some("abc")
    );
    store.delete(&key).await.unwrap();
    assert!(store.put_parts(&key, split(true), options()).await.is_err());
    assert!(
        store.head(&key).await.unwrap().is_none(),
        "a damaged part was stored"
    );
}

/// An object assembled from bytes and ranges of others (long ones that a
/// store may copy itself, short ones it must read, one of them the object
/// itself) holds exactly their concatenation, and every byte is either
/// sent or copied; a range pinned to an ETag the object no longer has is
/// refused and nothing is written.
async fn assembly<S: Store>(store: &S, base: &str) {
    use super::Segment;
    let (source, key) = (
        format!("{base}dir/assembled from"),
        format!("{base}dir/assembled"),
    );
    let bytes: Vec<u8> = (0..12u32 << 20).map(|i| (i % 253) as u8).collect();
    let etag = store
        .put(
            &source,
            Bytes::from(bytes.clone()),
            put_opts(PutMode::Overwrite),
        )
        .await
        .unwrap();
    let copy = |range: std::ops::Range<u64>| Segment::Copy {
        key: source.clone(),
        etag: etag.clone(),
        range,
    };
    let segments = vec![
        Segment::Bytes(Bytes::from_static(b"head")),
        copy(0..6 << 20),
        Segment::Bytes(Bytes::from_static(b"middle")),
        copy(6 << 20..12 << 20),
        copy(100..200),
        Segment::Bytes(Bytes::from_static(b"tail")),
    ];
    let expected = [
        &b"head"[..],
        &bytes[..6 << 20],
        b"middle",
        &bytes[6 << 20..],
        &bytes[100..200],
        b"tail",
    ]
    .concat();
    let made = store
        .assemble(&key, segments, put_opts(PutMode::Create))
        .await
        .unwrap();
    let (stored, meta) = store.get(&key).await.unwrap().unwrap();
    assert!(
        stored == expected,
        "the assembly is not the segments joined"
    );
    assert_eq!(meta.etag, made.etag);
    assert_eq!(made.sent + made.copied, expected.len() as u64, "{made:?}");
    assert!(made.received <= made.sent, "{made:?}");

    // The object itself, longer by a few bytes: what a summary's update
    // does.
    let again = vec![
        Segment::Copy {
            key: key.clone(),
            etag: made.etag.clone(),
            range: 0..expected.len() as u64,
        },
        Segment::Bytes(Bytes::from_static(b"more")),
    ];
    let grown = store
        .assemble(&key, again, put_opts(PutMode::Update(made.etag.clone())))
        .await
        .unwrap();
    let (stored, _) = store.get(&key).await.unwrap().unwrap();
    assert!(stored == [&expected[..], b"more"].concat(), "not grown");
    assert_eq!(grown.sent + grown.copied, expected.len() as u64 + 4);

    // A range of a version that is gone (replaced by as many other
    // bytes): refused, nothing written.
    let other: Vec<u8> = bytes.iter().map(|b| b ^ 0x5a).collect();
    store
        .put(&source, Bytes::from(other), put_opts(PutMode::Overwrite))
        .await
        .unwrap();
    for range in [0..6 << 20, 0..10] {
        let stale = vec![copy(range), Segment::Bytes(Bytes::from_static(b"x"))];
        let refused = store
            .assemble(&key, stale, put_opts(PutMode::Overwrite))
            .await
            .unwrap_err();
        assert!(refused.is_precondition(), "{refused}");
    }
    let (stored, _) = store.get(&key).await.unwrap().unwrap();
    assert!(stored.ends_with(b"more"), "a refused assembly was written");
    store.delete(&key).await.unwrap();
    store.delete(&source).await.unwrap();
}

/// A delete conditional on an ETag removes the object only while it
/// holds that ETag: one written again in between stays.
async fn conditional_delete<S: Store>(store: &S, base: &str) {
    let key = format!("{base}dir/pruned-1.0.tgz");
    let first = store
        .put(
            &key,
            Bytes::from_static(b"first"),
            put_opts(PutMode::Overwrite),
        )
        .await
        .unwrap();
    let second = store
        .put(
            &key,
            Bytes::from_static(b"second!"),
            put_opts(PutMode::Overwrite),
        )
        .await
        .unwrap();
    let stale = store.delete_if(&key, &first).await.unwrap_err();
    assert!(stale.is_precondition(), "{stale}");
    assert!(
        store.head(&key).await.unwrap().is_some(),
        "a changed object was deleted"
    );
    store.delete_if(&key, &second).await.unwrap();
    assert!(store.head(&key).await.unwrap().is_none());
    let gone = store.delete_if(&key, &second).await.unwrap_err();
    assert!(gone.is_not_found(), "{gone}");
}

/// A copy holds the source's bytes and metadata, and happens only while
/// the source has the ETag named; a missing source is not found.
async fn copy<S: Store>(store: &S, base: &str) {
    let (from, to) = (
        format!("{base}dir/copied from"),
        format!("{base}dir/copy+1"),
    );
    let options = PutOptions {
        metadata: BTreeMap::from([("pkgsum-generation".to_owned(), "7".to_owned())]),
        ..put_opts(PutMode::Overwrite)
    };
    let etag = store
        .put(&from, Bytes::from_static(b"summary bytes"), options)
        .await
        .unwrap();
    let copied = store.copy(&from, &to, &etag).await.unwrap();
    let (body, meta) = store.get(&to).await.unwrap().unwrap();
    assert_eq!(&body[..], b"summary bytes");
    assert_eq!(meta.etag, copied);
    assert_eq!(
        meta.metadata.get("pkgsum-generation").map(String::as_str),
        Some("7")
    );
    let replaced = store
        .put(
            &from,
            Bytes::from_static(b"newer"),
            put_opts(PutMode::Overwrite),
        )
        .await
        .unwrap();
    let stale = store.copy(&from, &to, &etag).await.unwrap_err();
    assert!(stale.is_precondition(), "{stale}");
    let left = store.get(&to).await.unwrap().map(|(body, _)| body);
    assert!(
        left.as_deref() != Some(&b"newer"[..]),
        "a refused copy copied"
    );
    store.delete(&from).await.unwrap();
    let gone = store.copy(&from, &to, &replaced).await.unwrap_err();
    assert!(gone.is_not_found() || gone.is_precondition(), "{gone}");
    store.delete(&to).await.unwrap();
}

/// A store that says it sets modification times sets the one asked for.
async fn modification_time<S: Store>(store: &S, base: &str) {
    let key = format!("{base}dir/stamped");
    let wanted = SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000);
    let options = PutOptions {
        modified: Some(wanted),
        ..put_opts(PutMode::Overwrite)
    };
    store
        .put(&key, Bytes::from_static(b"x"), options)
        .await
        .unwrap();
    let got = store.head(&key).await.unwrap().unwrap().last_modified;
    if store.sets_modified() {
        assert_eq!(got, Some(wanted));
    } else {
        assert_ne!(got, Some(wanted));
    }
    store.delete(&key).await.unwrap();
}

/// A peek says what HEAD says, with the first bytes, in one go; nothing
/// but "unchanged" for the ETag the caller names.
async fn peek<S: Store>(store: &S, base: &str) {
    let key = format!("{base}dir/peeked 1.0.tgz");
    assert_eq!(store.peek(&key, 4, None).await.unwrap(), Peeked::Gone);
    let etag = store
        .put(
            &key,
            Bytes::from_static(b"0123456789"),
            put_opts(PutMode::Overwrite),
        )
        .await
        .unwrap();
    let head = store.head(&key).await.unwrap().unwrap();
    for (len, first) in [(4, &b"0123"[..]), (10, b"0123456789"), (64, b"0123456789")] {
        let Peeked::Found(meta, got) = store.peek(&key, len, None).await.unwrap() else {
            panic!("no object found by a peek of {len} bytes");
        };
        assert_eq!((&got[..], meta.size, &meta.etag), (first, 10, &etag));
        assert_eq!(meta.last_modified, head.last_modified);
    }
    assert_eq!(
        store.peek(&key, 4, Some(&etag)).await.unwrap(),
        Peeked::Unchanged
    );
    let Peeked::Found(meta, got) = store.peek(&key, 4, Some("0000")).await.unwrap() else {
        panic!("another ETag named, but no object found");
    };
    assert_eq!((&got[..], &meta.etag), (&b"0123"[..], &etag));
    // An empty object has no first byte to range over (S3 answers 416).
    let empty = store
        .put(&key, Bytes::new(), put_opts(PutMode::Overwrite))
        .await
        .unwrap();
    let Peeked::Found(meta, got) = store.peek(&key, 4, None).await.unwrap() else {
        panic!("an empty object not found");
    };
    assert_eq!((got.len(), meta.size, meta.etag), (0, 0, empty.clone()));
    assert_eq!(
        store.peek(&key, 4, Some(&empty)).await.unwrap(),
        Peeked::Unchanged
    );
    store.delete(&key).await.unwrap();
    assert_eq!(
        store.peek(&key, 4, Some(&etag)).await.unwrap(),
        Peeked::Gone
    );
}

fn put_opts(mode: PutMode) -> PutOptions {
    PutOptions {
        mode,
        content_type: Some("application/gzip".to_owned()),
        cache_control: Some("no-cache".to_owned()),
        metadata: BTreeMap::from([("pkgsum-generation".to_owned(), "7".to_owned())]),
        modified: None,
        checksum: None,
    }
}

/// A body with its checksum is stored; one whose bytes do not match the
/// checksum sent is refused and not stored.
async fn checksums<S: Store>(store: &S, base: &str) {
    let key = format!("{base}dir/checked-1.0.tgz");
    let options = |checksum| PutOptions {
        checksum: Some(checksum),
        ..put_opts(PutMode::Overwrite)
    };
    let body = Bytes::from_static(b"package bytes");
    let right = super::Checksum::of(&body);
    store.put(&key, body.clone(), options(right)).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap().unwrap().0, body);
    store.delete(&key).await.unwrap();
    let wrong = super::Checksum::of(b"other bytes");
    assert!(store.put(&key, body, options(wrong)).await.is_err());
    assert!(
        store.head(&key).await.unwrap().is_none(),
        "a damaged body was stored"
    );
}

async fn basic_semantics<S: Store>(store: &S, base: &str) {
    let key = format!("{base}dir/a b+c ü-1.0.tgz");
    assert!(store.head(&key).await.unwrap().is_none());
    assert!(store.get(&key).await.unwrap().is_none());

    let body = Bytes::from_static(b"0123456789");
    let etag = store
        .put(&key, body.clone(), put_opts(PutMode::Create))
        .await
        .unwrap();
    let meta = store.head(&key).await.unwrap().unwrap();
    assert_eq!((meta.size, meta.etag.as_str()), (10, etag.as_str()));
    assert_eq!(
        meta.metadata.get("pkgsum-generation").map(String::as_str),
        Some("7")
    );
    assert!(meta.last_modified.is_some());
    let (got, got_meta) = store.get(&key).await.unwrap().unwrap();
    assert_eq!(got, body);
    assert_eq!(got_meta.etag, etag);

    // Ranges are clipped to the end and pinned to the ETag.
    assert_eq!(
        &store.get_range(&key, 2..5, &etag).await.unwrap()[..],
        b"234"
    );
    assert_eq!(
        &store.get_range(&key, 8..100, &etag).await.unwrap()[..],
        b"89"
    );
    assert!(
        store
            .get_range(&key, 10..20, &etag)
            .await
            .unwrap()
            .is_empty()
    );
    let stale = store
        .get_range(&key, 0..4, "not-the-etag")
        .await
        .unwrap_err();
    assert!(stale.is_precondition(), "{stale}");

    // Create on an existing key, Update with a wrong ETag: 412.
    let err = store
        .put(&key, body.clone(), put_opts(PutMode::Create))
        .await
        .unwrap_err();
    assert!(err.is_precondition(), "{err}");
    let err = store
        .put(
            &key,
            body.clone(),
            put_opts(PutMode::Update("wrong".to_owned())),
        )
        .await
        .unwrap_err();
    assert!(err.is_precondition(), "{err}");
    let new_etag = store
        .put(
            &key,
            Bytes::from_static(b"new"),
            put_opts(PutMode::Update(etag.clone())),
        )
        .await
        .unwrap();
    assert_ne!(new_etag, etag);
    assert_eq!(
        store.get(&key).await.unwrap().unwrap().0,
        Bytes::from_static(b"new")
    );

    // Update on a missing key fails (404 on AWS and LocalStack).
    let missing = format!("{base}dir/missing");
    let err = store
        .put(&missing, body.clone(), put_opts(PutMode::Update(etag)))
        .await
        .unwrap_err();
    assert!(err.is_precondition() || err.is_not_found(), "{err}");

    // Listing: sorted, prefix-bounded.
    store
        .put(
            &format!("{base}dir/0.tgz"),
            body.clone(),
            PutOptions::default(),
        )
        .await
        .unwrap();
    store
        .put(
            &format!("{base}other/x.tgz"),
            body.clone(),
            PutOptions::default(),
        )
        .await
        .unwrap();
    let listed = store.list(&format!("{base}dir/")).await.unwrap();
    let keys: Vec<&str> = listed.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![format!("{base}dir/0.tgz").as_str(), key.as_str()]
    );
    // A listing carries what a HEAD does, but for user metadata (S3's
    // ListObjectsV2 has none).
    let head = store.head(&key).await.unwrap().unwrap();
    assert_eq!(listed[1].etag, head.etag);
    assert_eq!(listed[1].size, head.size);
    assert!(listed.iter().all(|m| m.metadata.is_empty()));

    store.delete(&key).await.unwrap();
    store.delete(&key).await.unwrap();
    assert!(store.head(&key).await.unwrap().is_none());
}

/// Sixteen concurrent PUTs of `key` with the mode `mode` gives each
/// writer; returns how many succeeded (the others must get 412/409).
/// Bodies are labelled per round: the memory store's ETags come from the
/// content, so a repeated body would bring an old ETag back.
async fn race<S: Store + 'static>(
    store: &Arc<S>,
    key: &str,
    label: &'static str,
    mode: impl Fn() -> PutMode,
) -> usize {
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (store, key, mode) = (Arc::clone(store), key.to_owned(), mode());
            tokio::spawn(async move {
                store
                    .put(&key, Bytes::from(format!("{label} {i}")), put_opts(mode))
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => wins += 1,
            Err(err) => assert!(err.is_precondition(), "{err}"),
        }
    }
    wins
}

/// Many writers, one winner: the compare-and-swap the state relies on.
async fn one_winner<S: Store + 'static>(store: Arc<S>, base: &str) {
    let key = format!("{base}race/state");
    let wins = race(&store, &key, "writer", || PutMode::Create).await;
    assert_eq!(wins, 1, "If-None-Match: * let {wins} writers win");

    let etag = store.head(&key).await.unwrap().unwrap().etag;
    let wins = race(&store, &key, "update", || PutMode::Update(etag.clone())).await;
    assert_eq!(wins, 1, "If-Match let {wins} writers win");
}
