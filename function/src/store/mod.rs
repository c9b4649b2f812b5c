//! The object-store edge: one narrow trait, backends behind it (`local`,
//! `memory`, `s3`), and behaviour added by wrapping (`counting`,
//! `faulty`, test-only) rather than by flags inside backends. With the
//! `testing` feature, `conformance` is the suite every backend passes.
//!
//! The operations are the ones the indexer needs and nothing more: HEAD
//! to learn what a key holds now, a peek (what it holds and its first
//! bytes, unless it still has a known ETag: one request on S3), ranged GET
//! pinned to an ETag for the rest of a header, whole GET for the state, conditional PUT for compare-and-swap
//! commits, DELETE for stale variants, a listing for `rebuild`, and a
//! copy pinned to an ETag for the history of published summaries.

#[cfg(feature = "testing")]
pub mod conformance;
#[cfg(feature = "testing")]
pub mod counting;
#[cfg(feature = "testing")]
pub mod faulty;
pub mod local;
pub mod memory;
pub mod open;
pub mod s3;

use std::collections::BTreeMap;
use std::future::Future;
use std::ops::Range;
use std::time::SystemTime;

use bytes::Bytes;

/// What a key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    /// The entity tag, without quotes.
    pub etag: String,
    pub last_modified: Option<SystemTime>,
    /// User metadata (`x-amz-meta-*`), names in lower case.
    pub metadata: BTreeMap<String, String>,
}

/// What [`Store::get_bounded`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bounded {
    /// The whole object.
    Whole(Bytes, ObjectMeta),
    /// An object larger than the bound: nothing of it was kept.
    TooLarge(ObjectMeta),
}

/// What [`Store::peek`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peeked {
    /// No object at the key.
    Gone,
    /// The object still has the ETag the caller named.
    Unchanged,
    /// What the key holds now, and its first bytes (the whole object if it
    /// is shorter than asked; more may follow with [`Store::get_range`]).
    Found(ObjectMeta, Bytes),
}

/// The precondition of a PUT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PutMode {
    /// Write whatever is there.
    #[default]
    Overwrite,
    /// Only if the key does not exist (`If-None-Match: *`).
    Create,
    /// Only if the key still holds this ETag (`If-Match`).
    Update(String),
}

/// How to write an object.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    pub mode: PutMode,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// The modification time to give the object, on stores that can set
    /// one ([`Store::sets_modified`]); others stamp their own clock.
    pub modified: Option<SystemTime>,
    /// Digests of the body for the store to check what it received
    /// against (S3: `x-amz-checksum-sha256` and `Content-MD5`); a body
    /// that does not match is refused, never stored.
    pub checksum: Option<Checksum>,
}

/// A body's digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checksum {
    pub sha256: [u8; 32],
    pub md5: [u8; 16],
}

impl Checksum {
    pub fn of(body: &[u8]) -> Checksum {
        let mut digests = Digests::default();
        digests.update(body);
        digests.finish()
    }

    /// The MD5 as an S3 ETag of a single PUT is written: lower-case hex.
    pub fn md5_hex(&self) -> String {
        pkgsum_core::hex(&self.md5)
    }

    pub fn sha256_hex(&self) -> String {
        pkgsum_core::hex(&self.sha256)
    }
}

/// A [`Checksum`] of a body read in pieces (a file sent in parts).
#[derive(Default)]
pub struct Digests {
    sha256: sha2::Sha256,
    md5: md5::Md5,
}

impl Digests {
    pub fn update(&mut self, bytes: &[u8]) {
        use md5::Digest as _;
        self.sha256.update(bytes);
        self.md5.update(bytes);
    }

    pub fn finish(self) -> Checksum {
        use md5::Digest as _;
        Checksum {
            sha256: self.sha256.finalize().into(),
            md5: self.md5.finalize().into(),
        }
    }
}

/// Refuses `body` if `options` names digests it does not have, as S3
/// does (`BadDigest`): for the stores that check in process.
pub(crate) fn check_checksum(
    location: impl FnOnce() -> String,
    body: &[u8],
    options: &PutOptions,
) -> StoreResult<()> {
    match options.checksum {
        Some(checksum) if Checksum::of(body) != checksum => Err(StoreError::other(
            Op::Put,
            location(),
            "the body does not match its checksum (it was damaged on its way)",
        )),
        _ => Ok(()),
    }
}

/// An operation of the [`Store`] trait, as errors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Head,
    Get,
    GetRange,
    Put,
    Delete,
    List,
    Copy,
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Op::Head => "HEAD",
            Op::Get => "GET",
            Op::GetRange => "ranged GET",
            Op::Put => "PUT",
            Op::Delete => "DELETE",
            Op::List => "LIST",
            Op::Copy => "COPY",
        })
    }
}

/// Why a store operation failed, in one line: the operation, the object
/// (as the store names it, e.g. `s3://bucket/key`) and the cause. The
/// line says all there is to say, so it ends the error chain: the
/// backend's own error, layers of SDK wrappers, is kept aside
/// ([`StoreError::backend`]) rather than printed after it.
#[derive(Debug, thiserror::Error)]
#[error("{op} {object}: {kind}")]
pub struct StoreError {
    pub op: Op,
    pub object: String,
    pub kind: ErrorKind,
    backend: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// The causes callers act on or people must be told apart. Preconditions
/// are named so callers can retry exactly those.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("not found")]
    NotFound,
    /// 412: the key changed (or exists, for `Create`).
    #[error("precondition failed (the object changed)")]
    Precondition,
    /// 409: a concurrent conditional write won the race; retry.
    #[error("conflicting concurrent write")]
    Conflict,
    #[error("the bucket {0:?} does not exist")]
    NoSuchBucket(String),
    #[error("access denied ({0})")]
    Denied(String),
    /// 400: the store will not serve this object to this request (an
    /// object encrypted with a customer key, a key it cannot take).
    #[error("the store refuses the request ({0})")]
    Refused(String),
    #[error(
        "no credentials: {0} (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
    )]
    NoCredentials(String),
    #[error("the credentials were refused ({0})")]
    BadCredentials(String),
    #[error("cannot reach the store: {0}")]
    Unreachable(String),
    #[error("timed out: {0}")]
    TimedOut(String),
    /// The answer's body ended before its length: on S3, what an object
    /// replaced or deleted while it is read looks like.
    #[error("the answer was cut short ({0})")]
    CutShort(String),
    #[error("{0}")]
    Other(String),
}

impl StoreError {
    pub fn new(op: Op, object: impl Into<String>, kind: ErrorKind) -> StoreError {
        StoreError {
            op,
            object: object.into(),
            kind,
            backend: None,
        }
    }

    /// Keeps what the backend reported, for a closer look.
    pub fn with_backend(
        mut self,
        error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> StoreError {
        self.backend = Some(error.into());
        self
    }

    /// What the backend reported, when it reported an error.
    pub fn backend(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.backend.as_deref()
    }

    /// Any other failure, described by `cause`.
    pub fn other(op: Op, object: impl Into<String>, cause: impl std::fmt::Display) -> StoreError {
        StoreError::new(op, object, ErrorKind::Other(cause.to_string()))
    }

    /// True for 412 and 409: the caller lost a race and should re-read.
    pub fn is_precondition(&self) -> bool {
        matches!(self.kind, ErrorKind::Precondition | ErrorKind::Conflict)
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    /// Whether a read failed because the object moved on under it: a
    /// precondition (another ETag), gone, or a body cut short. Reading it
    /// again sees what the key holds now.
    pub fn is_moved_on(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Precondition | ErrorKind::NotFound | ErrorKind::CutShort(_)
        )
    }

    /// Whether reading this one object failed in a way no retry mends:
    /// the store refuses the request (400) while it answered the
    /// repository's own reads. Such an object is recorded as unreadable,
    /// like a bad package, instead of being retried for ever. (A 403 is
    /// not: a role that may not read packages would empty the summary.)
    pub fn is_refused_object(&self) -> bool {
        matches!(self.kind, ErrorKind::Refused(_))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// S3's answer to a conditional PUT on `key`, which holds `current` (its
/// ETag) or nothing: the semantics every local backend must copy.
pub fn check_put_mode(key: &str, mode: &PutMode, current: Option<&str>) -> StoreResult<()> {
    let kind = match (mode, current) {
        (PutMode::Create, Some(_)) => ErrorKind::Precondition,
        (PutMode::Update(_), None) => ErrorKind::NotFound,
        (PutMode::Update(want), Some(have)) if want != have => ErrorKind::Precondition,
        _ => return Ok(()),
    };
    Err(StoreError::new(Op::Put, key, kind))
}

/// An object store.
pub trait Store: Send + Sync {
    /// What `key` holds now, or `None`.
    fn head(&self, key: &str) -> impl Future<Output = StoreResult<Option<ObjectMeta>>> + Send;

    /// The whole object, or `None`.
    fn get(
        &self,
        key: &str,
    ) -> impl Future<Output = StoreResult<Option<(Bytes, ObjectMeta)>>> + Send;

    /// Bytes `range` of `key`, only if it still has `etag`
    /// (a precondition error, [`ErrorKind::Precondition`], otherwise). The range is clipped to the
    /// object's end.
    fn get_range(
        &self,
        key: &str,
        range: Range<u64>,
        etag: &str,
    ) -> impl Future<Output = StoreResult<Bytes>> + Send;

    /// What `key` holds and its first `len` bytes, or [`Peeked::Unchanged`]
    /// if it still has the ETag `unless` (so nothing need be read). S3 does
    /// this in one request (a ranged GET with `If-None-Match`), where a HEAD
    /// then a GET take two; this default does the two.
    fn peek(
        &self,
        key: &str,
        len: u64,
        unless: Option<&str>,
    ) -> impl Future<Output = StoreResult<Peeked>> + Send {
        peek_by_head(self, key, len, unless)
    }

    /// The whole object if it holds at most `limit` bytes; what pkgsum
    /// reads of its own files (the state, its pieces, the layouts) is
    /// bounded so, as a forged one may be any size. This default makes a
    /// HEAD then a GET; S3 makes one ranged GET.
    fn get_bounded(
        &self,
        key: &str,
        limit: u64,
    ) -> impl Future<Output = StoreResult<Option<Bounded>>> + Send {
        get_bounded_by_head(self, key, limit)
    }

    /// Writes `body`; returns the new ETag.
    fn put(
        &self,
        key: &str,
        body: Bytes,
        options: PutOptions,
    ) -> impl Future<Output = StoreResult<String>> + Send;

    /// Writes the body given as `parts`, each with its digests, as one
    /// object; returns the new ETag. S3 sends a multipart upload, every
    /// part checked by the store against its digests, and completes it
    /// under `options.mode`; this default joins the parts into one
    /// [`Store::put`] (checked against `options.checksum`).
    fn put_parts(
        &self,
        key: &str,
        parts: Parts<'_>,
        options: PutOptions,
    ) -> impl Future<Output = StoreResult<String>> + Send {
        put_parts_joined(self, key, parts, options)
    }

    /// Writes `key` as the concatenation of `segments` under
    /// `options.mode`: bytes sent, and ranges of objects in this store,
    /// each only while it has the ETag named (a precondition error
    /// otherwise). S3 copies a range of 5 MiB or more inside the store
    /// (UploadPartCopy in a multipart upload), so an object made mostly of
    /// an earlier one costs only what changed; this default reads every
    /// range and writes the whole. Returns the new ETag and the bytes each
    /// way.
    fn assemble(
        &self,
        key: &str,
        segments: Vec<Segment>,
        options: PutOptions,
    ) -> impl Future<Output = StoreResult<Assembly>> + Send {
        assemble_by_get(self, key, segments, options)
    }

    /// The shortest range [`Store::assemble`] copies inside the store
    /// when it is not the last segment, if it copies any: S3's 5 MiB (every
    /// part of a multipart upload but the last is at least that long),
    /// where the last segment may be a copy of any length. `None` for a
    /// store that reads and writes every byte.
    fn copies_at_least(&self) -> Option<u64> {
        None
    }

    /// Removes `key`; a missing key is not an error.
    fn delete(&self, key: &str) -> impl Future<Output = StoreResult<()>> + Send;

    /// Removes `key` only if it still holds `etag`: a precondition error
    /// if it holds another, a not-found error if it is gone. S3 sends
    /// `If-Match` (after a HEAD, which refuses the same on a store that
    /// ignores the header); this default is the HEAD and a DELETE, which
    /// leaves a window for a write between the two.
    fn delete_if(&self, key: &str, etag: &str) -> impl Future<Output = StoreResult<()>> + Send {
        delete_if_by_head(self, key, etag)
    }

    /// Copies `from` to `to` with its metadata, only if `from` still has
    /// `etag` (a precondition error otherwise, a not-found error if it is
    /// gone; `to` then holds what it held, or nothing); returns the copy's
    /// ETag. S3 copies inside the store
    /// (CopyObject): no byte passes through pkgsum. This default reads
    /// then writes.
    fn copy(
        &self,
        from: &str,
        to: &str,
        etag: &str,
    ) -> impl Future<Output = StoreResult<String>> + Send {
        copy_by_get(self, from, to, etag)
    }

    /// Every object whose key starts with `prefix`, sorted by key; as in
    /// S3's listing, without user metadata.
    fn list(&self, prefix: &str) -> impl Future<Output = StoreResult<Vec<ObjectMeta>>> + Send;

    /// How people should read the object `key` names, e.g. `s3://b/key`.
    fn location(&self, key: &str) -> String {
        crate::excerpt::Escaped(key).to_string()
    }

    /// Whether a PUT honours [`PutOptions::modified`] (a local directory
    /// does; S3 sets Last-Modified itself).
    fn sets_modified(&self) -> bool {
        false
    }
}

/// One part of an object [`Store::assemble`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Bytes sent.
    Bytes(Bytes),
    /// The bytes `range` of the object `key` in the same store, only while
    /// it has `etag`.
    Copy {
        key: String,
        etag: String,
        range: Range<u64>,
    },
}

impl Segment {
    /// How many bytes it adds.
    pub fn len(&self) -> u64 {
        match self {
            Segment::Bytes(bytes) => bytes.len() as u64,
            Segment::Copy { range, .. } => range.end.saturating_sub(range.start),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What [`Store::assemble`] wrote and moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assembly {
    /// The object's new ETag.
    pub etag: String,
    /// Bytes sent to the store.
    pub sent: u64,
    /// Bytes read from it.
    pub received: u64,
    /// Bytes the store copied itself.
    pub copied: u64,
}

/// [`Store::assemble`] by reading every range and writing the whole.
pub(crate) async fn assemble_by_get<S: Store + ?Sized>(
    store: &S,
    key: &str,
    segments: Vec<Segment>,
    options: PutOptions,
) -> StoreResult<Assembly> {
    let total = segments.iter().map(Segment::len).sum::<u64>();
    let mut body = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    let mut received = 0;
    for segment in segments {
        match segment {
            Segment::Bytes(bytes) => body.extend_from_slice(&bytes),
            Segment::Copy {
                key: from,
                etag,
                range,
            } => {
                let bytes = read_range(store, &from, range, &etag).await?;
                received += bytes.len() as u64;
                body.extend_from_slice(&bytes);
            }
        }
    }
    let sent = body.len() as u64;
    let etag = store.put(key, Bytes::from(body), options).await?;
    Ok(Assembly {
        etag,
        sent,
        received,
        copied: 0,
    })
}

/// The bytes `range` of `key` pinned to `etag`, all of them: an object
/// shorter than the range is not the one named.
pub(crate) async fn read_range<S: Store + ?Sized>(
    store: &S,
    key: &str,
    range: Range<u64>,
    etag: &str,
) -> StoreResult<Bytes> {
    let wanted = range.end.saturating_sub(range.start);
    if wanted == 0 {
        return Ok(Bytes::new());
    }
    let bytes = store.get_range(key, range, etag).await?;
    if bytes.len() as u64 != wanted {
        return Err(StoreError::new(
            Op::GetRange,
            store.location(key),
            ErrorKind::Precondition,
        ));
    }
    Ok(bytes)
}

/// [`Store::delete_if`] as a HEAD, then a DELETE if the ETag is the one
/// named.
pub(crate) async fn delete_if_by_head<S: Store + ?Sized>(
    store: &S,
    key: &str,
    etag: &str,
) -> StoreResult<()> {
    let refused = |kind| StoreError::new(Op::Delete, store.location(key), kind);
    match store.head(key).await? {
        None => Err(refused(ErrorKind::NotFound)),
        Some(meta) if meta.etag != etag => Err(refused(ErrorKind::Precondition)),
        Some(_) => store.delete(key).await,
    }
}

/// [`Store::peek`] in two requests, a HEAD then a ranged GET: the default,
/// and what S3 falls back to for an object with no byte to range over.
pub(crate) async fn peek_by_head<S: Store + ?Sized>(
    store: &S,
    key: &str,
    len: u64,
    unless: Option<&str>,
) -> StoreResult<Peeked> {
    let Some(meta) = store.head(key).await? else {
        return Ok(Peeked::Gone);
    };
    if unless == Some(meta.etag.as_str()) {
        return Ok(Peeked::Unchanged);
    }
    let first = store
        .get_range(key, 0..len.min(meta.size), &meta.etag)
        .await?;
    Ok(Peeked::Found(meta, first))
}

/// [`Store::copy`] by a GET, then a PUT of what it read.
/// The parts of one object's body, in order, each with its digests; a
/// part that could not be made says why.
pub type Parts<'a> = futures::stream::BoxStream<'a, Result<(Bytes, Checksum), String>>;

/// [`Store::put_parts`] as one PUT of the parts joined.
pub(crate) async fn put_parts_joined<S: Store + ?Sized>(
    store: &S,
    key: &str,
    mut parts: Parts<'_>,
    options: PutOptions,
) -> StoreResult<String> {
    use futures::StreamExt as _;
    let mut body = Vec::new();
    let refused =
        |why: String| StoreError::new(Op::Put, store.location(key), ErrorKind::Other(why));
    while let Some(part) = parts.next().await {
        let (bytes, checksum) = part.map_err(refused)?;
        // As S3 checks each part against its digests.
        if Checksum::of(&bytes) != checksum {
            return Err(refused("a part does not match its checksum".to_owned()));
        }
        body.extend_from_slice(&bytes);
    }
    store.put(key, Bytes::from(body), options).await
}

pub(crate) async fn copy_by_get<S: Store + ?Sized>(
    store: &S,
    from: &str,
    to: &str,
    etag: &str,
) -> StoreResult<String> {
    let Some((body, meta)) = store.get(from).await? else {
        return Err(StoreError::new(
            Op::Copy,
            store.location(from),
            ErrorKind::NotFound,
        ));
    };
    if meta.etag != etag {
        return Err(StoreError::new(
            Op::Copy,
            store.location(from),
            ErrorKind::Precondition,
        ));
    }
    let options = PutOptions {
        metadata: meta.metadata,
        ..PutOptions::default()
    };
    store.put(to, body, options).await
}

/// [`Store::get_bounded`] by a HEAD, then a GET (whose answer is checked
/// again: the object may have been replaced in between).
pub(crate) async fn get_bounded_by_head<S: Store + ?Sized>(
    store: &S,
    key: &str,
    limit: u64,
) -> StoreResult<Option<Bounded>> {
    let Some(meta) = store.head(key).await? else {
        return Ok(None);
    };
    if meta.size > limit {
        return Ok(Some(Bounded::TooLarge(meta)));
    }
    Ok(store.get(key).await?.map(|(body, meta)| {
        if body.len() as u64 > limit {
            Bounded::TooLarge(meta)
        } else {
            Bounded::Whole(body, meta)
        }
    }))
}

/// Implements [`Store`] for a pointer type by delegating to its target:
/// a shared (`Arc`) or borrowed (`&`) store is a store.
macro_rules! delegate_store {
    ($($pointer:ty),*) => {$(
        impl<T: Store + ?Sized> Store for $pointer {
            fn head(&self, key: &str) -> impl Future<Output = StoreResult<Option<ObjectMeta>>> + Send {
                (**self).head(key)
            }

            fn get(
                &self,
                key: &str,
            ) -> impl Future<Output = StoreResult<Option<(Bytes, ObjectMeta)>>> + Send {
                (**self).get(key)
            }

            fn get_range(
                &self,
                key: &str,
                range: Range<u64>,
                etag: &str,
            ) -> impl Future<Output = StoreResult<Bytes>> + Send {
                (**self).get_range(key, range, etag)
            }

            fn peek(
                &self,
                key: &str,
                len: u64,
                unless: Option<&str>,
            ) -> impl Future<Output = StoreResult<Peeked>> + Send {
                (**self).peek(key, len, unless)
            }

            fn get_bounded(
                &self,
                key: &str,
                limit: u64,
            ) -> impl Future<Output = StoreResult<Option<Bounded>>> + Send {
                (**self).get_bounded(key, limit)
            }

            fn put(
                &self,
                key: &str,
                body: Bytes,
                options: PutOptions,
            ) -> impl Future<Output = StoreResult<String>> + Send {
                (**self).put(key, body, options)
            }

            fn put_parts(
                &self,
                key: &str,
                parts: Parts<'_>,
                options: PutOptions,
            ) -> impl Future<Output = StoreResult<String>> + Send {
                (**self).put_parts(key, parts, options)
            }

            fn delete(&self, key: &str) -> impl Future<Output = StoreResult<()>> + Send {
                (**self).delete(key)
            }

            fn assemble(
                &self,
                key: &str,
                segments: Vec<Segment>,
                options: PutOptions,
            ) -> impl Future<Output = StoreResult<Assembly>> + Send {
                (**self).assemble(key, segments, options)
            }

            fn delete_if(
                &self,
                key: &str,
                etag: &str,
            ) -> impl Future<Output = StoreResult<()>> + Send {
                (**self).delete_if(key, etag)
            }

            fn list(&self, prefix: &str) -> impl Future<Output = StoreResult<Vec<ObjectMeta>>> + Send {
                (**self).list(prefix)
            }

            fn copy(
                &self,
                from: &str,
                to: &str,
                etag: &str,
            ) -> impl Future<Output = StoreResult<String>> + Send {
                (**self).copy(from, to, etag)
            }

            fn location(&self, key: &str) -> String {
                (**self).location(key)
            }

            fn sets_modified(&self) -> bool {
                (**self).sets_modified()
            }

            fn copies_at_least(&self) -> Option<u64> {
                (**self).copies_at_least()
            }
        }
    )*};
}

delegate_store!(std::sync::Arc<T>, &T);
