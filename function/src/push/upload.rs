//! Uploading the checked files: to a store, in parallel, each with its
//! checksum and the release tag, each written only if its key is still
//! as checked; to a directory, each by an atomic link or rename.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use futures::stream::{self, StreamExt};

use super::Checked;
use crate::progress::Progress;
use crate::release::{self, Tag};
use crate::store::{Checksum, Digests, Parts, PutMode, PutOptions, Store, StoreError};
use tokio::io::AsyncReadExt as _;

/// Object metadata name carrying a pushed file's SHA-256 (hex): a later
/// push of the same bytes is then known as such whatever the ETag.
pub const SHA256: &str = "pkgsum-sha256";

/// The smallest part of a multipart upload but the last (S3's limit).
pub const MIN_PART: u64 = 5 << 20;

/// The largest part, and the largest file sent in one PUT (S3's limit).
pub const MAX_PART: u64 = 5 << 30;

/// The most parts of one upload (S3's limit): a file that would need more
/// is sent in larger parts.
pub const MAX_PARTS: u64 = 10_000;

/// The part size a push uses by default: the most of one file held in
/// memory at once, per upload in flight.
pub const DEFAULT_PART: u64 = 16 << 20;

/// The largest object S3 stores.
const MAX_OBJECT: u64 = 5 << 40;

/// What became of one file.
#[derive(Debug)]
pub enum Sent {
    /// Uploaded, with the ETag the store gave it.
    Uploaded(String),
    /// The same bytes were there: nothing sent.
    Present,
    /// Not uploaded; the error says why (a racing pusher, the store).
    Failed(String),
}

/// A release ID nobody else will pick: what made it (`push`,
/// `promote`), the time and 64 random bits.
pub fn release_id(by: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{by}-{now}-{:016x}", fastrand::u64(..))
}

/// The release the files to send make, if any: COUNT is the files sent,
/// since only those produce a notification.
pub fn release_of(checked: &[Checked]) -> Option<Tag> {
    let count = checked.iter().filter(|c| !c.present).count();
    (count > 0).then(|| Tag {
        id: release_id("push"),
        count: u32::try_from(count).unwrap_or(u32::MAX),
    })
}

/// How to upload.
#[derive(Debug, Clone, Copy)]
pub struct Sending<'a> {
    /// The release the files make, if any.
    pub release: Option<&'a Tag>,
    /// Uploads in flight.
    pub concurrency: usize,
    /// A file larger than this goes in parts of this size (clamped to
    /// [`MIN_PART`]..=[`MAX_PART`], larger if it would need more than
    /// [`MAX_PARTS`]).
    pub part_size: u64,
}

/// Uploads every file not already there to `prefix` in `store`,
/// `concurrency` at a time; in the order of `checked`.
pub async fn upload<S: Store>(
    store: &S,
    prefix: &str,
    checked: &[Checked],
    sending: Sending<'_>,
    progress: &dyn Progress,
) -> Vec<Sent> {
    progress.begin(checked.len() as u64);
    let concurrency = sending.concurrency;
    let sends = checked.iter().map(|c| async move {
        let sent = match c.present {
            true => Sent::Present,
            false => match send(store, prefix, c, sending).await {
                Ok(etag) => Sent::Uploaded(etag),
                Err(err) => Sent::Failed(err),
            },
        };
        progress.advance();
        sent
    });
    let sent = stream::iter(sends)
        .buffered(concurrency.max(1))
        .collect()
        .await;
    progress.end();
    sent
}

/// One file, only if its key still holds what was checked: one PUT with
/// its checksum, or, above the part size, a multipart upload whose every
/// part carries its own.
async fn send<S: Store>(
    store: &S,
    prefix: &str,
    checked: &Checked,
    sending: Sending<'_>,
) -> Result<String, String> {
    if checked.size > MAX_OBJECT {
        return Err(format!(
            "{} bytes, more than S3 stores ({MAX_OBJECT})",
            checked.size
        ));
    }
    let part_size = sending
        .part_size
        .clamp(MIN_PART, MAX_PART)
        .max(checked.size.div_ceil(MAX_PARTS));
    let key = format!("{prefix}{}", checked.name);
    let sent = if checked.size > part_size {
        // The whole file's SHA-256 goes in the metadata, given before the
        // first part: one read to digest it, one to send it (each part
        // checked against it as it goes).
        let whole = digest_file(&checked.path, checked.size).await?;
        let options = put_options(checked, sending.release, whole);
        let parts = file_parts(&checked.path, checked.size, part_size, whole).await?;
        store.put_parts(&key, parts, options).await
    } else {
        let bytes = std::fs::read(&checked.path).map_err(|e| format!("reading it: {e}"))?;
        if bytes.len() as u64 != checked.size {
            return Err(CHANGED.to_owned());
        }
        let options = put_options(checked, sending.release, Checksum::of(&bytes));
        store.put(&key, Bytes::from(bytes), options).await
    };
    sent.map_err(|err| refusal(store, &key, &err))
}

/// Why a file is not sent when it is not what was checked.
const CHANGED: &str = "it changed after it was checked";

/// A pushed file's PUT options: its SHA-256 and release in its metadata,
/// written only where the key holds what was checked.
fn put_options(checked: &Checked, release: Option<&Tag>, checksum: Checksum) -> PutOptions {
    let mut metadata = BTreeMap::from([(SHA256.to_owned(), checksum.sha256_hex())]);
    if let Some(tag) = release {
        metadata.insert(release::METADATA.to_owned(), tag.to_string());
    }
    let mode = match &checked.replaces {
        Some(etag) => PutMode::Update(etag.clone()),
        None => PutMode::Create,
    };
    PutOptions {
        mode,
        content_type: Some("application/octet-stream".to_owned()),
        metadata,
        checksum: Some(checksum),
        ..PutOptions::default()
    }
}

/// Bytes read from a file at a time while it is digested.
const READ: usize = 1 << 20;

/// The digests of the file at `path`, which must be `size` bytes, read a
/// megabyte at a time.
pub(super) async fn digest_file(path: &Path, size: u64) -> Result<Checksum, String> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("reading it: {e}"))?;
    let mut digests = Digests::default();
    let mut buf = vec![0; READ];
    let mut read = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .await
            .map_err(|e| format!("reading it: {e}"))?;
        if n == 0 {
            break;
        }
        read += n as u64;
        if read > size {
            return Err(CHANGED.to_owned());
        }
        digests.update(&buf[..n]);
    }
    match read == size {
        true => Ok(digests.finish()),
        false => Err(CHANGED.to_owned()),
    }
}

/// The file at `path` as parts of `part_size` bytes, each with its
/// digests. The stream ends in an error (and the upload is aborted) if
/// the file is not `size` bytes or its bytes are not those of `whole`.
async fn file_parts(
    path: &Path,
    size: u64,
    part_size: u64,
    whole: Checksum,
) -> Result<Parts<'static>, String> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("reading it: {e}"))?;
    let start = (file, size, Digests::default());
    let parts = stream::try_unfold(start, move |(mut file, left, mut digests)| async move {
        if left == 0 {
            let mut more = [0u8; 1];
            let grown = file.read(&mut more).await.map_err(|e| e.to_string())? > 0;
            if grown || digests.finish() != whole {
                return Err(CHANGED.to_owned());
            }
            return Ok(None);
        }
        let len = part_size.min(left);
        let mut part = vec![0; usize::try_from(len).map_err(|e| e.to_string())?];
        file.read_exact(&mut part)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => CHANGED.to_owned(),
                _ => format!("reading it: {e}"),
            })?;
        digests.update(&part);
        let checksum = Checksum::of(&part);
        Ok(Some((
            (Bytes::from(part), checksum),
            (file, left - len, digests),
        )))
    });
    Ok(parts.boxed())
}

/// Why a PUT was refused, in a person's words for the preconditions.
fn refusal<S: Store>(store: &S, key: &str, err: &StoreError) -> String {
    if err.is_precondition() {
        format!(
            "{} changed since it was checked (another push?): not overwritten",
            store.location(key)
        )
    } else {
        err.to_string()
    }
}

/// Copies every file not already there into `dir` under its name: to a
/// temporary file first, then linked in (refused if the name exists) or,
/// with `--replace`, renamed over it, so a reader never sees half a file.
pub fn copy_into(dir: &Path, checked: &[Checked]) -> Vec<Sent> {
    checked
        .iter()
        .map(|c| {
            if c.present {
                return Sent::Present;
            }
            match copy_one(dir, c) {
                Ok(()) => Sent::Uploaded(String::new()),
                Err(err) => Sent::Failed(err),
            }
        })
        .collect()
}

fn copy_one(dir: &Path, checked: &Checked) -> Result<(), String> {
    let temp = dir.join(format!(".pkgsum-push-{:016x}.tmp", fastrand::u64(..)));
    let target = dir.join(&checked.name);
    std::fs::copy(&checked.path, &temp)
        .map_err(|e| format!("copying to {}: {e}", temp.display()))?;
    let placed = match checked.replaces {
        Some(_) => std::fs::rename(&temp, &target),
        None => std::fs::hard_link(&temp, &target),
    };
    // After a rename there is nothing left to remove.
    std::fs::remove_file(&temp).ok();
    match placed {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(format!(
            "{} appeared since it was checked (another push?): not overwritten",
            target.display()
        )),
        Err(e) => Err(format!("placing {}: {e}", target.display())),
    }
}
