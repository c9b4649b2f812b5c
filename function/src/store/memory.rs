//! An in-memory store: the reference semantics of the trait, for tests of
//! the indexing pass that need many fast, deterministic runs.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::{
    Assembly, ErrorKind, ObjectMeta, Op, PutOptions, Segment, Store, StoreError, StoreResult,
    check_put_mode,
};

/// Objects in a map behind a mutex; conditional writes are atomic.
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<Objects>,
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Objects> {
        // A panic while holding the lock leaves a consistent map: every
        // mutation is a single insert or remove.
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }
}

type Objects = BTreeMap<String, (Body, ObjectMeta)>;

/// Most pieces an assembled body is kept in before it is joined into one.
const MAX_PIECES: usize = 256;

/// An object's bytes, kept as the pieces it was put or assembled from:
/// an assembly shares the ranges it copies, as S3 does on its side of a
/// part copy, so a splice costs this process what it costs a client of
/// S3 (joining 20 MiB for every splice was 40% of a benchmark's CPU).
#[derive(Debug, Clone, Default)]
struct Body(Arc<[Bytes]>);

impl Body {
    fn whole(bytes: Bytes) -> Body {
        Body(Arc::from([bytes]))
    }

    fn len(&self) -> u64 {
        self.0.iter().map(|b| b.len() as u64).sum()
    }

    /// The bytes as one buffer: shared when the body is one piece.
    fn bytes(&self) -> Bytes {
        joined(&self.0)
    }

    /// The pieces that hold `range`, or `None` if the body is shorter.
    fn pieces(&self, range: &Range<u64>) -> Option<Vec<Bytes>> {
        if range.start > range.end || range.end > self.len() {
            return None;
        }
        let mut out = Vec::new();
        let mut at = 0u64;
        for piece in self.0.iter() {
            let end = at + piece.len() as u64;
            let (from, to) = (range.start.max(at), range.end.min(end));
            if from < to {
                out.push(piece.slice((from - at) as usize..(to - at) as usize));
            }
            at = end;
        }
        Some(out)
    }
}

/// `pieces` as one buffer: shared when there is one piece.
fn joined(pieces: &[Bytes]) -> Bytes {
    match pieces {
        [one] => one.clone(),
        pieces => Bytes::from(pieces.concat()),
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
    objects: &'a Objects,
    op: Op,
    key: &str,
    etag: &str,
) -> StoreResult<&'a (Body, ObjectMeta)> {
    let object = objects
        .get(key)
        .ok_or_else(|| StoreError::new(op, key, ErrorKind::NotFound))?;
    if object.1.etag != etag {
        return Err(StoreError::new(op, key, ErrorKind::Precondition));
    }
    Ok(object)
}

/// Bytes `range` of `key` in `objects`, all of them, while it has `etag`.
fn copied(objects: &Objects, key: &str, etag: &str, range: &Range<u64>) -> StoreResult<Vec<Bytes>> {
    let (body, _) = pinned(objects, Op::Copy, key, etag)?;
    // An object shorter than the range is not the one named.
    body.pieces(range)
        .ok_or_else(|| StoreError::new(Op::Copy, key, ErrorKind::Precondition))
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
        let object = self.lock().get(key).cloned();
        Ok(object.map(|(body, meta)| (body.bytes(), meta)))
    }

    async fn get_range(&self, key: &str, range: Range<u64>, etag: &str) -> StoreResult<Bytes> {
        let body = pinned(&self.lock(), Op::GetRange, key, etag)?.0.clone();
        let end = range.end.min(body.len());
        let start = range.start.min(end);
        Ok(joined(&body.pieces(&(start..end)).unwrap_or_default()))
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
        objects.insert(key.to_owned(), (Body::whole(body), meta));
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
        let mut pieces: Vec<Bytes> = Vec::new();
        for segment in &segments {
            match segment {
                Segment::Bytes(bytes) => {
                    moved.sent += bytes.len() as u64;
                    pieces.push(bytes.clone());
                }
                Segment::Copy { key, etag, range } => {
                    let shared = copied(&objects, key, etag, range)?;
                    moved.copied += range.end - range.start;
                    pieces.extend(shared);
                }
            }
        }
        pieces.retain(|piece| !piece.is_empty());
        let body = if pieces.len() > MAX_PIECES {
            Body::whole(joined(&pieces))
        } else {
            Body(Arc::from(pieces))
        };
        moved.etag = assembled_etag(segments.len());
        let meta = ObjectMeta {
            key: key.to_owned(),
            size: body.len(),
            etag: moved.etag.clone(),
            last_modified: Some(match options.modified {
                Some(modified) if self.sets_modified => modified,
                _ => now_seconds(),
            }),
            metadata: options.metadata,
        };
        objects.insert(key.to_owned(), (body, meta));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every range of a body kept in pieces reads as the same range of
    /// the flat bytes, and a range past the end is refused.
    #[test]
    fn a_body_in_pieces_reads_as_its_flat_bytes() {
        let flat: Vec<u8> = (0..40u8).collect();
        let cuts = [0, 1, 7, 7, 20, 33, 40];
        let pieces: Vec<Bytes> = cuts
            .windows(2)
            .map(|w| Bytes::copy_from_slice(&flat[w[0]..w[1]]))
            .collect();
        let body = Body(Arc::from(pieces));
        assert_eq!(body.len(), 40);
        assert_eq!(body.bytes(), flat);
        for start in 0..=40u64 {
            for end in start..=40u64 {
                let read = body.pieces(&(start..end)).unwrap().concat();
                assert_eq!(read, &flat[start as usize..end as usize], "{start}..{end}");
            }
            assert!(body.pieces(&(start..41)).is_none());
        }
    }
}
