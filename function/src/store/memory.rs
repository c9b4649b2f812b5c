//! An in-memory store: the reference semantics of the trait, for tests of
//! the indexing pass that need many fast, deterministic runs.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::{
    Assembly, ErrorKind, ObjectMeta, Op, PutOptions, Segment, Store, StoreError, StoreResult,
    check_put_mode,
};

/// Objects in a map behind a mutex; conditional writes are atomic.
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<String, (Bytes, ObjectMeta)>>,
    /// Whether a PUT takes the modification time it is given, as a local
    /// directory does (S3 sets its own).
    sets_modified: bool,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that takes the modification times PUTs give, as a local
    /// directory does: publishing never waits for the next second.
    pub fn setting_modified() -> Self {
        MemoryStore {
            sets_modified: true,
            ..Self::default()
        }
    }

    /// A copy of every object, as a new store of the same kind.
    pub fn snapshot(&self) -> Self {
        MemoryStore {
            objects: Mutex::new(self.lock().clone()),
            sets_modified: self.sets_modified,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (Bytes, ObjectMeta)>> {
        // A panic while holding the lock leaves a consistent map: every
        // mutation is a single insert or remove.
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A content-derived tag, as S3's MD5 ETag is for single-part uploads.
fn etag_of(body: &[u8]) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut hasher);
    format!("{:016x}{:08x}", hasher.finish(), body.len())
}

/// The object `key` in `objects` while it has `etag`: a not-found or
/// precondition error of `op` otherwise.
fn pinned<'a>(
    objects: &'a BTreeMap<String, (Bytes, ObjectMeta)>,
    op: Op,
    key: &str,
    etag: &str,
) -> StoreResult<&'a (Bytes, ObjectMeta)> {
    let object = objects
        .get(key)
        .ok_or_else(|| StoreError::new(op, key, ErrorKind::NotFound))?;
    if object.1.etag != etag {
        return Err(StoreError::new(op, key, ErrorKind::Precondition));
    }
    Ok(object)
}

/// Bytes `range` of `key` in `objects`, all of them, while it has `etag`.
fn copied<'a>(
    objects: &'a BTreeMap<String, (Bytes, ObjectMeta)>,
    key: &str,
    etag: &str,
    range: &Range<u64>,
) -> StoreResult<&'a [u8]> {
    let (body, _) = pinned(objects, Op::Copy, key, etag)?;
    let bytes = usize::try_from(range.start)
        .ok()
        .zip(usize::try_from(range.end).ok())
        .and_then(|(start, end)| body.get(start..end));
    // An object shorter than the range is not the one named.
    bytes.ok_or_else(|| StoreError::new(Op::Copy, key, ErrorKind::Precondition))
}

/// A multipart upload's kind of ETag: not a digest of the body (hashing
/// what was only copied would cost what copying saves), new on every
/// write.
fn assembled_etag(parts: usize) -> String {
    format!(
        "{:016x}{:016x}-{parts}",
        fastrand::u64(..),
        fastrand::u64(..)
    )
}

/// S3 keeps Last-Modified in whole seconds.
fn now_seconds() -> SystemTime {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

impl Store for MemoryStore {
    async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>> {
        Ok(self.lock().get(key).map(|(_, meta)| meta.clone()))
    }

    async fn get(&self, key: &str) -> StoreResult<Option<(Bytes, ObjectMeta)>> {
        Ok(self.lock().get(key).cloned())
    }

    async fn get_range(&self, key: &str, range: Range<u64>, etag: &str) -> StoreResult<Bytes> {
        let objects = self.lock();
        let (body, _) = pinned(&objects, Op::GetRange, key, etag)?;
        let end = range.end.min(body.len() as u64) as usize;
        let start = (range.start as usize).min(end);
        Ok(body.slice(start..end))
    }

    async fn put(&self, key: &str, body: Bytes, options: PutOptions) -> StoreResult<String> {
        super::check_checksum(|| self.location(key), &body, &options)?;
        let mut objects = self.lock();
        let current = objects.get(key).map(|(_, m)| m.etag.as_str());
        check_put_mode(key, &options.mode, current)?;
        let etag = etag_of(&body);
        let meta = ObjectMeta {
            key: key.to_owned(),
            size: body.len() as u64,
            etag: etag.clone(),
            last_modified: Some(match options.modified {
                Some(modified) if self.sets_modified => modified,
                _ => now_seconds(),
            }),
            metadata: options.metadata,
        };
        objects.insert(key.to_owned(), (body, meta));
        Ok(etag)
    }

    /// Joined under one lock, every range checked against its ETag: no
    /// byte crosses a wire, as in S3's part copies.
    async fn assemble(
        &self,
        key: &str,
        segments: Vec<Segment>,
        options: PutOptions,
    ) -> StoreResult<Assembly> {
        let mut objects = self.lock();
        let current = objects.get(key).map(|(_, m)| m.etag.as_str());
        check_put_mode(key, &options.mode, current)?;
        let mut moved = Assembly::default();
        let total = segments.iter().map(Segment::len).sum::<u64>();
        let mut body = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
        for segment in &segments {
            match segment {
                Segment::Bytes(bytes) => {
                    moved.sent += bytes.len() as u64;
                    body.extend_from_slice(bytes);
                }
                Segment::Copy { key, etag, range } => {
                    let bytes = copied(&objects, key, etag, range)?;
                    moved.copied += bytes.len() as u64;
                    body.extend_from_slice(bytes);
                }
            }
        }
        moved.etag = assembled_etag(segments.len());
        let meta = ObjectMeta {
            key: key.to_owned(),
            size: body.len() as u64,
            etag: moved.etag.clone(),
            last_modified: Some(match options.modified {
                Some(modified) if self.sets_modified => modified,
                _ => now_seconds(),
            }),
            metadata: options.metadata,
        };
        objects.insert(key.to_owned(), (Bytes::from(body), meta));
        Ok(moved)
    }

    /// Shares the bytes and keeps the ETag, as S3's CopyObject keeps a
    /// single-part object's: nothing is hashed or copied again.
    async fn copy(&self, from: &str, to: &str, etag: &str) -> StoreResult<String> {
        let mut objects = self.lock();
        let (body, meta) = pinned(&objects, Op::Copy, from, etag)?;
        let meta = ObjectMeta {
            key: to.to_owned(),
            last_modified: Some(now_seconds()),
            ..meta.clone()
        };
        let copied = (body.clone(), meta);
        objects.insert(to.to_owned(), copied);
        Ok(etag.to_owned())
    }

    /// As S3's: UploadPartCopy's least part.
    fn copies_at_least(&self) -> Option<u64> {
        Some(5 << 20)
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.lock().remove(key);
        Ok(())
    }

    async fn delete_if(&self, key: &str, etag: &str) -> StoreResult<()> {
        let mut objects = self.lock();
        let kind = match objects.get(key) {
            None => ErrorKind::NotFound,
            Some((_, meta)) if meta.etag != etag => ErrorKind::Precondition,
            Some(_) => {
                objects.remove(key);
                return Ok(());
            }
        };
        Err(StoreError::new(Op::Delete, key, kind))
    }

    async fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>> {
        Ok(self
            .lock()
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, (_, meta))| ObjectMeta {
                metadata: BTreeMap::new(),
                ..meta.clone()
            })
            .collect())
    }

    fn sets_modified(&self) -> bool {
        self.sets_modified
    }
}
