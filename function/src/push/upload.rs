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
use crate::store::{Checksum, PutMode, PutOptions, Store, StoreError};

/// Object metadata name carrying a pushed file's SHA-256 (hex): a later
/// push of the same bytes is then known as such whatever the ETag.
pub const SHA256: &str = "pkgsum-sha256";

/// The largest file uploaded in one PUT (S3's limit for one).
pub const MAX_SINGLE_PUT: u64 = 5 << 30;

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

/// A release ID nobody else will pick: the time and 64 random bits.
pub fn release_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("push-{now}-{:016x}", fastrand::u64(..))
}

/// The release the files to send make, if any: COUNT is the files sent,
/// since only those produce a notification.
pub fn release_of(checked: &[Checked]) -> Option<Tag> {
    let count = checked.iter().filter(|c| !c.present).count();
    (count > 0).then(|| Tag {
        id: release_id(),
        count: u32::try_from(count).unwrap_or(u32::MAX),
    })
}

/// Uploads every file not already there to `prefix` in `store`,
/// `concurrency` at a time; in the order of `checked`.
pub async fn upload<S: Store>(
    store: &S,
    prefix: &str,
    checked: &[Checked],
    release: Option<&Tag>,
    concurrency: usize,
    progress: &dyn Progress,
) -> Vec<Sent> {
    progress.begin(checked.len() as u64);
    let sends = checked.iter().map(|c| async move {
        let sent = match c.present {
            true => Sent::Present,
            false => match send(store, prefix, c, release).await {
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

/// One file: read, then PUT with its checksum, only if its key still
/// holds what was checked.
async fn send<S: Store>(
    store: &S,
    prefix: &str,
    checked: &Checked,
    release: Option<&Tag>,
) -> Result<String, String> {
    if checked.size > MAX_SINGLE_PUT {
        return Err(format!(
            "{} bytes, more than one PUT takes ({MAX_SINGLE_PUT}); multipart pushes are not done yet",
            checked.size
        ));
    }
    let bytes = std::fs::read(&checked.path).map_err(|e| format!("reading it: {e}"))?;
    if bytes.len() as u64 != checked.size {
        return Err("it changed after it was checked".to_owned());
    }
    let checksum = Checksum::of(&bytes);
    let mut metadata = BTreeMap::from([(SHA256.to_owned(), checksum.sha256_hex())]);
    if let Some(tag) = release {
        metadata.insert(release::METADATA.to_owned(), tag.to_string());
    }
    let mode = match &checked.replaces {
        Some(etag) => PutMode::Update(etag.clone()),
        None => PutMode::Create,
    };
    let options = PutOptions {
        mode,
        content_type: Some("application/octet-stream".to_owned()),
        metadata,
        checksum: Some(checksum),
        ..PutOptions::default()
    };
    let key = format!("{prefix}{}", checked.name);
    store
        .put(&key, Bytes::from(bytes), options)
        .await
        .map_err(|err| refusal(store, &key, &err))
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
