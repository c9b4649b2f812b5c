//! The history of published generations, under
//! `<prefix>.pkgsum/history/`: after each publication the summaries just
//! written are copied inside the store (CopyObject on S3, pinned to the
//! ETags just written) to `history/<generation>/`, and
//! `history/<generation>.json` says when, how many packages, and what
//! changed since the generation published before (from the state's
//! change log). The newest `PKGSUM_HISTORY` generations are kept.
//!
//! `pkgsum history` reads it; `pkgsum rollback` republishes a generation's
//! summaries as a new generation, after checking that every file they
//! list is still there, and holds publication so the next upload does not
//! undo it.

use std::collections::BTreeSet;
use std::time::SystemTime;

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use super::hold::HoldError;
use super::publish::{Stamp, put_output, whole_seconds};
use super::recent;
use super::{PassError, Repo};
use crate::changelog::Changes;
use crate::compression::Compression;
use crate::excerpt::{Escaped, count};
use crate::keys::{generation_of, output_key};
use crate::record;
use crate::select::Select;
use crate::state::Hold;
use crate::store::{Bounded, ObjectMeta, PutMode, PutOptions, Store, StoreError};
use crate::summary;

/// What one published generation was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub generation: u64,
    /// When it was published, in seconds since the epoch.
    pub time: u64,
    /// Packages its summary lists.
    pub packages: usize,
    /// `all` or `newest`.
    pub select: String,
    /// The generation published before it (0: none).
    pub previous: u64,
    /// What changed since `previous`.
    pub changes: Changes,
    /// What published it other than the indexer: a rollback.
    #[serde(default)]
    pub note: Option<String>,
}

/// The largest history entry read (each list of names is bounded).
const ENTRY_LIMIT: u64 = 1 << 20;

/// The largest kept summary read back by a rollback.
const SUMMARY_LIMIT: u64 = 256 << 20;

/// Most missing files a refused rollback names; the rest are counted.
const MISSING_NAMED: usize = 20;

/// Where the history of the repository at `prefix` is kept.
pub fn history_prefix(prefix: &str) -> String {
    format!("{prefix}.pkgsum/history/")
}

/// The entry of `generation`.
fn entry_key(prefix: &str, generation: u64) -> String {
    format!("{}{generation:020}.json", history_prefix(prefix))
}

/// The kept `format` summary of `generation`.
fn kept_key(prefix: &str, generation: u64, format: Compression) -> String {
    format!(
        "{}{generation:020}/{}",
        history_prefix(prefix),
        crate::summary::file_name(format)
    )
}

/// `body` read as the entry of `generation`: `None` if it is not one.
fn entry_of(body: &[u8], generation: u64) -> Option<Entry> {
    serde_json::from_slice::<Entry>(body)
        .ok()
        .filter(|e| e.generation == generation)
}

/// The generation a history key belongs to.
fn generation_of_key(prefix: &str, key: &str) -> Option<u64> {
    let rest = key.strip_prefix(&history_prefix(prefix))?;
    let digits = rest.split(['/', '.']).next()?;
    (digits.len() == 20).then(|| digits.parse().ok()).flatten()
}

/// Why a rollback was refused.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error(transparent)]
    Pass(#[from] PassError),
    #[error(transparent)]
    Hold(#[from] HoldError),
    #[error(
        "{repository}: generation {generation} is not in the history (`pkgsum history` lists it)"
    )]
    NotKept { repository: String, generation: u64 },
    #[error("{repository}: the history of generation {generation} has no {file}")]
    Incomplete {
        repository: String,
        generation: u64,
        file: String,
    },
    #[error(
        "{repository}: generation {generation} lists {} gone from the bucket, so clients could not install them: {}{}",
        count(*.missing, "file"),
        .named.join(", "),
        if *.missing > .named.len() { format!(" and {} more", .missing - .named.len()) } else { String::new() }
    )]
    Missing {
        repository: String,
        generation: u64,
        missing: usize,
        named: Vec<String>,
    },
    #[error("{repository}: the kept summary of generation {generation}: {error}")]
    Unreadable {
        repository: String,
        generation: u64,
        error: std::io::Error,
    },
}

/// What a rollback did.
#[derive(Debug, Clone)]
pub struct RolledBack {
    /// The generation it published.
    pub generation: u64,
    /// The files the summary lists, each found in the bucket.
    pub files: usize,
    pub packages: usize,
}

/// Now, in whole seconds since the epoch.
fn now_seconds() -> u64 {
    whole_seconds(SystemTime::now())
}

impl<S: Store> Repo<'_, S> {
    /// Keeps the summaries just published as `generation`'s history, if
    /// every configured format was written (`written`: format, ETag), and
    /// drops generations past `PKGSUM_HISTORY`. A copy refused because a
    /// newer pass has replaced the file already leaves no entry: that
    /// generation was never wholly out there.
    pub(super) async fn record_history(
        &self,
        entry: Entry,
        written: &[(Compression, String)],
    ) -> Result<(), PassError> {
        let keep = self.config.history;
        let all = self
            .config
            .formats
            .iter()
            .all(|f| written.iter().any(|(w, _)| w == f));
        if keep == 0 || !all {
            return Ok(());
        }
        let generation = entry.generation;
        for (format, etag) in written {
            let from = output_key(self.prefix, *format);
            let to = kept_key(self.prefix, generation, *format);
            match self.store.copy(&from, &to, etag).await {
                Ok(_) => {}
                Err(err) if err.is_precondition() || err.is_not_found() => {
                    tracing::debug!(generation, "replaced before it was kept: no history");
                    return Ok(());
                }
                Err(err) => return Err(err.into()),
            }
        }
        let body = serde_json::to_vec_pretty(&entry).map_err(|e| PassError::Render {
            repository: self.location(),
            error: std::io::Error::other(e),
        })?;
        let options = PutOptions {
            mode: PutMode::Overwrite,
            content_type: Some("application/json".to_owned()),
            ..PutOptions::default()
        };
        let key = entry_key(self.prefix, generation);
        self.put_entry(&key, body, options).await?;
        self.prune_history(keep).await?;
        Ok(())
    }

    /// Deletes the generations older than the newest `keep`.
    async fn prune_history(&self, keep: usize) -> Result<(), StoreError> {
        let listed = self.store.list(&history_prefix(self.prefix)).await?;
        let generations: BTreeSet<u64> = listed
            .iter()
            .filter(|m| m.key.ends_with(".json"))
            .filter_map(|m| generation_of_key(self.prefix, &m.key))
            .collect();
        let Some(&oldest_kept) = generations.iter().rev().nth(keep.saturating_sub(1)) else {
            return Ok(());
        };
        // The entry goes first: a generation without one is not listed.
        let mut doomed: Vec<&ObjectMeta> = listed
            .iter()
            .filter(|m| generation_of_key(self.prefix, &m.key).is_some_and(|g| g < oldest_kept))
            .collect();
        doomed.sort_by_key(|m| !m.key.ends_with(".json"));
        for meta in doomed {
            self.store.delete(&meta.key).await?;
        }
        Ok(())
    }

    /// The history, oldest first: every entry that reads.
    pub async fn history(&self) -> Result<Vec<Entry>, PassError> {
        let listed = self.store.list(&history_prefix(self.prefix)).await?;
        let mut entries = Vec::new();
        for meta in listed.iter().filter(|m| m.key.ends_with(".json")) {
            let Some(generation) = generation_of_key(self.prefix, &meta.key) else {
                continue;
            };
            match self.listed_entry(generation, meta).await? {
                Some(entry) => entries.push(entry),
                None => tracing::warn!(key = %Escaped(&meta.key), "unreadable history entry"),
            }
        }
        Ok(entries)
    }

    /// Adds `note` to the entry of `generation`, written only while the
    /// entry is as read; returns whether the history keeps that entry.
    pub async fn note_history(&self, generation: u64, note: &str) -> Result<bool, PassError> {
        let key = entry_key(self.prefix, generation);
        for attempt in 1..=self.config.max_attempts {
            let read = self.store.get_bounded(&key, ENTRY_LIMIT).await?;
            let Some(Bounded::Whole(body, meta)) = read else {
                return Ok(false);
            };
            let Some(mut entry) = serde_json::from_slice::<Entry>(&body).ok() else {
                return Ok(false);
            };
            entry.note = Some(match entry.note.take() {
                Some(earlier) if !earlier.is_empty() => format!("{earlier}; {note}"),
                _ => note.to_owned(),
            });
            let body = serde_json::to_vec_pretty(&entry).map_err(|e| PassError::Render {
                repository: self.location(),
                error: std::io::Error::other(e),
            })?;
            let options = PutOptions {
                mode: PutMode::Update(meta.etag),
                content_type: Some("application/json".to_owned()),
                ..PutOptions::default()
            };
            match self.put_entry(&key, body, options).await {
                Ok(()) => return Ok(true),
                Err(err) if err.is_precondition() => self.backoff(attempt).await,
                Err(err) => return Err(err.into()),
            }
        }
        Err(PassError::Contended {
            object: self.store.location(&key),
            attempts: self.config.max_attempts,
        })
    }

    /// The newest `n` entries of the history that read, newest first.
    pub async fn recent_history(&self, n: usize) -> Result<Vec<Entry>, PassError> {
        let listed = self.store.list(&history_prefix(self.prefix)).await?;
        let mut generations: Vec<(u64, &ObjectMeta)> = listed
            .iter()
            .filter(|m| m.key.ends_with(".json"))
            .filter_map(|m| Some((generation_of_key(self.prefix, &m.key)?, m)))
            .collect();
        generations.sort_unstable_by_key(|g| std::cmp::Reverse(g.0));
        let reads = generations
            .into_iter()
            .take(n)
            .map(|(g, meta)| self.listed_entry(g, meta));
        let read = futures::future::join_all(reads).await;
        let mut entries = Vec::new();
        for entry in read {
            entries.extend(entry?);
        }
        Ok(entries)
    }

    /// The entry of `generation`, if it is there and reads.
    async fn history_entry(&self, generation: u64) -> Result<Option<Entry>, StoreError> {
        self.read_entry(&entry_key(self.prefix, generation), generation)
            .await
    }

    /// The entry of `generation` as listed (`listed`): from memory while
    /// the store gives the ETag it was kept with, else read.
    async fn listed_entry(
        &self,
        generation: u64,
        listed: &ObjectMeta,
    ) -> Result<Option<Entry>, StoreError> {
        let location = self.store.location(&listed.key);
        match recent::ENTRIES.recalled(&location, &listed.etag) {
            Some(body) => Ok(entry_of(&body, generation)),
            None => self.read_entry(&listed.key, generation).await,
        }
    }

    /// Reads the entry at `key` as `generation`'s, and keeps its bytes
    /// for the next listing that gives the same ETag.
    async fn read_entry(&self, key: &str, generation: u64) -> Result<Option<Entry>, StoreError> {
        let Some(Bounded::Whole(body, meta)) = self.store.get_bounded(key, ENTRY_LIMIT).await?
        else {
            return Ok(None);
        };
        recent::ENTRIES.remember(&self.store.location(key), &meta.etag, body.clone());
        Ok(entry_of(&body, generation))
    }

    /// Writes the entry at `key` and keeps its bytes, by the ETag the
    /// store gave them.
    async fn put_entry(
        &self,
        key: &str,
        body: Vec<u8>,
        options: PutOptions,
    ) -> Result<(), StoreError> {
        let body = Bytes::from(body);
        let etag = self.store.put(key, body.clone(), options).await?;
        recent::ENTRIES.remember(&self.store.location(key), &etag, body);
        Ok(())
    }

    /// Republishes generation `to`'s summaries as a new generation, held.
    pub async fn rollback(&self, to: u64) -> Result<RolledBack, RollbackError> {
        let repository = self.location();
        let entry = self
            .history_entry(to)
            .await
            .map_err(PassError::from)?
            .ok_or_else(|| RollbackError::NotKept {
                repository: repository.clone(),
                generation: to,
            })?;
        let mut kept = Vec::new();
        for &format in &self.config.formats {
            let key = kept_key(self.prefix, to, format);
            let read = self.store.get_bounded(&key, SUMMARY_LIMIT).await;
            let Some(Bounded::Whole(bytes, _)) = read.map_err(PassError::from)? else {
                return Err(RollbackError::Incomplete {
                    repository,
                    generation: to,
                    file: crate::summary::file_name(format),
                });
            };
            kept.push((format, bytes));
        }
        let files = self.listed_files(to, &kept).await?;
        Box::pin(self.check_present(to, &files)).await?;
        let hold = Hold {
            since: now_seconds(),
            reason: format!("rolled back to generation {to}"),
        };
        let mut state = self
            .update_state(|state| {
                state.set_hold(Some(hold.clone()));
                true
            })
            .await?;
        let generation = state.generation();
        let stamp = Stamp {
            generation,
            current_from: generation,
            attempts: self.config.max_attempts,
            listed: entry.packages,
            selected: entry.select.parse().unwrap_or(Select::All),
        };
        let mut written = Vec::new();
        // Least preferred first, as every publication.
        for (format, bytes) in kept.into_iter().rev() {
            let key = output_key(self.prefix, format);
            let current = self.store.head(&key).await.map_err(PassError::from)?;
            let body = bytes.to_vec();
            // Boxed, as every large future here: a rollback's would
            // otherwise hold them all on the caller's stack.
            let put = put_output(self.store, &key, body, format, current.as_ref(), stamp);
            if let Some(etag) = Box::pin(put).await? {
                written.push((format, etag));
            }
        }
        let previous = written.len();
        let rolled = Entry {
            generation,
            time: now_seconds(),
            packages: entry.packages,
            select: entry.select,
            previous: to,
            changes: Changes::default(),
            note: Some(format!("rollback to generation {to}")),
        };
        Box::pin(self.record_history(rolled, &written)).await?;
        // The status says it is held, and why.
        Box::pin(self.publish(&mut state)).await?;
        tracing::info!(repository = %repository, to, generation, formats = previous, "rolled back");
        Ok(RolledBack {
            generation,
            files: files.len(),
            packages: entry.packages,
        })
    }

    /// The files a kept summary lists (FILE_NAME, else PKGNAME.tgz).
    async fn listed_files(
        &self,
        generation: u64,
        kept: &[(Compression, Bytes)],
    ) -> Result<BTreeSet<String>, RollbackError> {
        let Some((format, bytes)) = kept.first() else {
            return Ok(BTreeSet::new());
        };
        let text = summary::decode(*format, bytes, self.config.state_limit).map_err(|error| {
            RollbackError::Unreadable {
                repository: self.location(),
                generation,
                error,
            }
        })?;
        Ok(files_listed(&text))
    }

    /// Files listed by a generation of the history current at some time
    /// since `since` (seconds since the epoch), with the newest such
    /// generation; and, when the history cannot say that of every
    /// generation current since then (it keeps too few, or a kept summary
    /// cannot be read), the time from which it can.
    pub async fn listed_since(&self, since: u64) -> Result<ListedSince, PassError> {
        let entries = self.history().await?;
        let mut found = ListedSince::default();
        let Some(&format) = self.config.formats.first() else {
            return Ok(found);
        };
        let mut known_since = match entries.first() {
            // A generation before the oldest kept was current until it.
            Some(oldest) if oldest.previous != 0 && oldest.time > since => Some(oldest.time),
            Some(_) => None,
            // No history, but something was published: of what was
            // listed before now, only the current summary can say.
            None if self.published_generation().await? > 0 => Some(now_seconds()),
            None => None,
        };
        let ends = entries.iter().skip(1).map(|e| Some(e.time)).chain([None]);
        for (entry, end) in entries.iter().zip(ends) {
            if end.is_some_and(|end| end < since) {
                continue;
            }
            let key = kept_key(self.prefix, entry.generation, format);
            let read = self.store.get_bounded(&key, SUMMARY_LIMIT).await?;
            let text = match read {
                Some(Bounded::Whole(bytes, _)) => {
                    summary::decode(format, &bytes, self.config.state_limit).ok()
                }
                _ => None,
            };
            let Some(text) = text else {
                let until = end.unwrap_or_else(now_seconds);
                known_since = Some(known_since.map_or(until, |k: u64| k.max(until)));
                continue;
            };
            for file in files_listed(&text) {
                found.files.insert(file, entry.generation);
            }
        }
        found.known_since = known_since;
        Ok(found)
    }

    /// Refuses unless every file of `files` is in the bucket.
    async fn check_present(
        &self,
        generation: u64,
        files: &BTreeSet<String>,
    ) -> Result<(), RollbackError> {
        let heads = files.iter().map(|file| async move {
            let key = self.key(file);
            (file, self.store.head(&key).await)
        });
        let found: Vec<_> = stream::iter(heads)
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        let mut missing = Vec::new();
        for (file, head) in found {
            if head.map_err(PassError::from)?.is_none() {
                missing.push(file.clone());
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        missing.sort();
        Err(RollbackError::Missing {
            repository: self.location(),
            generation,
            missing: missing.len(),
            named: missing
                .iter()
                .take(MISSING_NAMED)
                .map(|f| Escaped(f).to_string())
                .collect(),
        })
    }
}

/// What the history listed since a time ([`Repo::listed_since`]).
#[derive(Debug, Clone, Default)]
pub struct ListedSince {
    /// Each file, with the newest generation that listed it.
    pub files: std::collections::BTreeMap<String, u64>,
    /// Set when the history cannot say what was listed before this time.
    pub known_since: Option<u64>,
}

/// The files a summary's records name (FILE_NAME, else PKGNAME.tgz),
/// those that can be keys of the repository.
pub fn files_listed(text: &[u8]) -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    for record in summary::records(text) {
        let field = |name| record::field(record, name).map(String::from_utf8_lossy);
        let file = field("FILE_NAME")
            .map(|f| f.into_owned())
            .or_else(|| field("PKGNAME").map(|n| format!("{n}.tgz")));
        if let Some(file) = file.filter(|f| crate::keys::is_plain_key(f) && !f.contains('/')) {
            files.insert(file);
        }
    }
    files
}

/// The history entry of a publication of `generation` over outputs that
/// were at `previous`.
pub(super) fn entry_for(
    state: &crate::state::State,
    previous: u64,
    packages: usize,
    select: Select,
) -> Entry {
    Entry {
        generation: state.generation(),
        time: now_seconds(),
        packages,
        select: select.to_string(),
        previous,
        changes: state.changes_since(previous, state.generation()),
        note: None,
    }
}

/// The generation a published output carries (0 when there is none).
pub(super) fn published_generation(current: Option<&ObjectMeta>) -> u64 {
    current.map_or(0, generation_of)
}
