//! The state: its manifest, `<prefix>.pkgsum/state`, and the pieces it
//! names, `<prefix>.pkgsum/pieces/<generation>-<sha256>`. Reading it (a
//! missing or unreadable one is a lost state, to be recreated above what
//! was published), loading the pieces a pass needs, and committing:
//! new pieces first, then the manifest by compare-and-swap, then deleting
//! the pieces it no longer names.
//!
//! Deleting at once is safe: piece names carry the generation that wrote
//! them, and a commit builds on the manifest it replaces, so no later
//! manifest can name a piece an earlier commit dropped. A pass still
//! reading a dropped piece finds it gone (or its body cut short, or any
//! other error), sees the manifest has changed, and starts over. Pieces of commits that lost the race are collected by
//! listing passes ([`Repo::collect_pieces`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::stream::{self, StreamExt};

use super::{PassError, Repo, StateLoss};
use crate::keys::{
    GENERATION, generation_of, output_key, piece_key, pieces_prefix, state_key, status_key,
};
use crate::piece::{self, PieceRef};
use crate::state::State;
use crate::store::{Bounded, PutMode, PutOptions, Store, StoreError};
use crate::summary;

/// The state as stored, with the ETag to commit against.
pub(super) struct Loaded {
    pub state: State,
    pub etag: Option<String>,
    /// No usable state: the pass must look at the whole repository.
    pub fresh: Option<StateLoss>,
}

/// Which pieces a pass needs loaded.
#[derive(Debug, Clone, Copy)]
pub(super) enum Want<'a> {
    /// Those that hold these names (and their next ones).
    Names(&'a BTreeSet<String>),
    /// Every piece.
    All,
}

/// Why pieces could not be loaded.
pub(crate) enum PieceError {
    Store(StoreError),
    /// Missing or damaged, with the reason.
    Bad(String),
}

/// How old an unnamed piece must be before a listing pass deletes it: far
/// longer than any pass takes, so a piece written by a pass that has yet
/// to commit is never taken.
const PIECE_GRACE: Duration = Duration::from_secs(3600);

impl<S: Store> Repo<'_, S> {
    /// Reads the manifest and the pieces `want` needs. `None` when a
    /// piece has gone because another writer committed meanwhile: the
    /// caller reads again.
    pub(super) async fn load_state(&self, want: Want<'_>) -> Result<Option<Loaded>, StoreError> {
        let key = state_key(self.prefix);
        let limit = self.config.state_limit;
        let read = match self.store.get_bounded(&key, limit).await {
            // Replaced while read (its body cut short): read it again.
            Err(err) if err.is_moved_on() && !err.is_not_found() => return Ok(None),
            read => read?,
        };
        let (body, meta) = match read {
            Some(Bounded::Whole(body, meta)) => (body, meta),
            // The state is a cache: one larger than any pkgsum writes is
            // lost, and replaced (on its ETag) from a listing.
            Some(Bounded::TooLarge(meta)) => {
                let why = format!("larger than {limit} bytes (PKGSUM_STATE_LIMIT)");
                return Ok(Some(Loaded {
                    state: State::default(),
                    etag: Some(meta.etag),
                    fresh: Some(StateLoss::Unreadable(why)),
                }));
            }
            None => {
                return Ok(Some(Loaded {
                    state: State::default(),
                    etag: None,
                    fresh: Some(StateLoss::Missing),
                }));
            }
        };
        let mut state = match State::from_bytes(&body, limit) {
            Ok(state) => state,
            // The state is a cache: an unreadable one is replaced (by a
            // conditional write on its ETag) from a listing.
            Err(error) => {
                return Ok(Some(Loaded {
                    state: State::default(),
                    etag: Some(meta.etag),
                    fresh: Some(StateLoss::Unreadable(error.to_string())),
                }));
            }
        };
        // Members held for a release join the records when it is whole,
        // in whichever pass that is: their pieces are loaded too.
        let wanted = match want {
            Want::Names(names) => {
                let held = state.pending_names().map(str::to_owned).collect::<Vec<_>>();
                let names = names.iter().map(String::as_str);
                state.pieces_for(names.chain(held.iter().map(String::as_str)))
            }
            Want::All => state.unloaded(),
        };
        let failed = match self.load_pieces(&mut state, wanted).await {
            Ok(()) => {
                return Ok(Some(Loaded {
                    state,
                    etag: Some(meta.etag),
                    fresh: None,
                }));
            }
            Err(failed) => failed,
        };
        // A piece that vanished, came back short or failed to read is what
        // a newer commit dropping it looks like: if the manifest moved on,
        // read it again; only a failure under an unchanged one counts.
        if self.manifest_moved(&meta.etag).await? {
            return Ok(None);
        }
        match failed {
            PieceError::Store(err) => Err(err),
            PieceError::Bad(reason) => Ok(Some(Loaded {
                state: State::default(),
                etag: Some(meta.etag),
                fresh: Some(StateLoss::Unreadable(reason)),
            })),
        }
    }

    /// Whether the manifest no longer has `etag` (replaced or deleted).
    pub(super) async fn manifest_moved(&self, etag: &str) -> Result<bool, StoreError> {
        let now = self.store.head(&state_key(self.prefix)).await?;
        Ok(now.is_none_or(|now| now.etag != etag))
    }

    /// Reads pieces `wanted` of `state` into it, `concurrency` at a time.
    pub(crate) async fn load_pieces(
        &self,
        state: &mut State,
        wanted: BTreeSet<usize>,
    ) -> Result<(), PieceError> {
        let limit = self.config.state_limit;
        // Futures built in a loop: see `look_all`.
        let mut reads = Vec::with_capacity(wanted.len());
        for i in wanted {
            let piece = state.pieces()[i].clone();
            reads.push(async move {
                let key = piece_key(self.prefix, &piece);
                let bad =
                    |why: &str| PieceError::Bad(format!("{}: {why}", self.store.location(&key)));
                let got = match self.store.get_bounded(&key, limit).await {
                    // Decoded on the blocking pool: a listing pass decodes
                    // every piece (~40 ms of CPU at 20,000 packages), on
                    // every core rather than on the pass's own thread.
                    Ok(Some(Bounded::Whole(bytes, _))) => {
                        let decoding = tokio::task::spawn_blocking(move || {
                            piece::decode(&bytes, &piece, limit)
                        });
                        match decoding.await {
                            Ok(decoded) => decoded.map_err(|e| PieceError::Bad(e.to_string())),
                            Err(join) => Err(bad(&join.to_string())),
                        }
                    }
                    Ok(Some(Bounded::TooLarge(_))) => {
                        Err(bad(&format!("a piece larger than {limit} bytes")))
                    }
                    Ok(None) => Err(bad("a piece of the state is missing")),
                    Err(err) => Err(PieceError::Store(err)),
                };
                (i, got)
            });
        }
        let read: Vec<_> = stream::iter(reads)
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        for (i, got) in read {
            state.load(i, got?);
        }
        Ok(())
    }

    /// The highest generation carried by anything the repository
    /// published: every summary variant, the status and the state object
    /// itself. A state recreated after a loss must start above it, or the
    /// generation guard would refuse every publication until the counter
    /// caught up.
    pub(super) async fn published_generation(&self) -> Result<u64, StoreError> {
        let mut keys: Vec<String> = summary::PKGIN_ORDER
            .iter()
            .map(|&format| output_key(self.prefix, format))
            .collect();
        keys.push(status_key(self.prefix));
        keys.push(state_key(self.prefix));
        let mut highest = 0;
        for key in keys {
            if let Some(meta) = self.store.head(&key).await? {
                highest = highest.max(generation_of(&meta));
            }
        }
        Ok(highest)
    }

    /// Writes `state` if the stored manifest still has `etag` (or, with
    /// none, if there is still none): the compare-and-swap every pass
    /// commits by. Its new pieces are stored first, so a manifest never
    /// names a piece that is not there; the pieces it drops are deleted
    /// after.
    pub(super) async fn commit(
        &self,
        state: &mut State,
        etag: Option<&str>,
    ) -> Result<(), PassError> {
        let key = state_key(self.prefix);
        let mut cut = state.cut().map_err(|error| PassError::EncodeState {
            object: self.store.location(&key),
            error,
        })?;
        self.put_pieces(std::mem::take(&mut cut.made)).await?;
        let mode = match etag {
            Some(etag) => PutMode::Update(etag.to_owned()),
            None => PutMode::Create,
        };
        let options = PutOptions {
            mode,
            content_type: Some("application/octet-stream".to_owned()),
            cache_control: Some("no-cache".to_owned()),
            metadata: BTreeMap::from([(GENERATION.to_owned(), state.generation().to_string())]),
            ..PutOptions::default()
        };
        let body = Bytes::from(std::mem::take(&mut cut.manifest));
        self.store.put(&key, body, options).await?;
        let dropped = std::mem::take(&mut cut.dropped);
        state.stored(cut);
        self.delete_pieces(&dropped).await;
        Ok(())
    }

    /// Stores new pieces, `concurrency` at a time.
    async fn put_pieces(&self, made: Vec<(PieceRef, Vec<u8>)>) -> Result<(), StoreError> {
        let mut puts = Vec::with_capacity(made.len());
        for (piece, bytes) in made {
            let options = PutOptions {
                content_type: Some("application/octet-stream".to_owned()),
                ..PutOptions::default()
            };
            let key = piece_key(self.prefix, &piece);
            let body = Bytes::from(bytes);
            puts.push(async move { self.store.put(&key, body, options).await });
        }
        let done: Vec<_> = stream::iter(puts)
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        done.into_iter().try_for_each(|put| put.map(drop))
    }

    /// Deletes pieces no manifest names any more. A failure only leaves
    /// garbage for a listing pass to collect.
    async fn delete_pieces(&self, pieces: &[PieceRef]) {
        for piece in pieces {
            let key = piece_key(self.prefix, piece);
            if let Err(err) = self.store.delete(&key).await {
                tracing::warn!(%err, "could not delete a piece the state no longer names");
            }
        }
    }

    /// Deletes pieces that the manifest of `state` (committed) does not
    /// name, of its generation or older, and written over an hour ago:
    /// those of commits that lost the race or were cut short. Returns how
    /// many.
    pub(super) async fn collect_pieces(&self, state: &State) -> Result<usize, StoreError> {
        let named: BTreeSet<String> = state.pieces().iter().map(PieceRef::name).collect();
        let prefix = pieces_prefix(self.prefix);
        let now = SystemTime::now();
        let mut collected = 0;
        for meta in self.store.list(&prefix).await? {
            let name = &meta.key[prefix.len()..];
            let old = meta
                .last_modified
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > PIECE_GRACE);
            let settled = piece::generation_of_name(name).is_some_and(|g| g <= state.generation());
            if old && settled && !named.contains(name) {
                self.store.delete(&meta.key).await?;
                collected += 1;
            }
        }
        if collected > 0 {
            tracing::info!(
                prefix = self.prefix,
                collected,
                "deleted pieces no state names"
            );
        }
        Ok(collected)
    }

    /// Full-jitter exponential backoff before commit attempt `attempt + 1`,
    /// capped at 5 s.
    pub(super) async fn backoff(&self, attempt: u32) {
        let cap = self
            .config
            .backoff
            .saturating_mul(1 << attempt.min(16))
            .min(Duration::from_secs(5));
        tokio::time::sleep(cap.mul_f64(fastrand::f64())).await;
    }

    /// The repository's state, every piece loaded; a missing or
    /// unreadable one is empty.
    pub async fn read_state(&self) -> Result<State, PassError> {
        Ok(self.load_whole().await?.state)
    }

    /// The state with every piece, read again while other writers make
    /// its pieces go away under it.
    async fn load_whole(&self) -> Result<Loaded, PassError> {
        for attempt in 1..=self.config.max_attempts {
            if let Some(loaded) = self.load_state(Want::All).await? {
                return Ok(loaded);
            }
            self.backoff(attempt).await;
        }
        Err(PassError::Contended {
            object: self.store.location(&state_key(self.prefix)),
            attempts: self.config.max_attempts,
        })
    }

    /// Stores `state` as the repository's, whatever is there (for
    /// benchmarks and tools that seed a repository).
    pub async fn replace_state(&self, state: &mut State) -> Result<(), PassError> {
        let etag = self
            .store
            .head(&state_key(self.prefix))
            .await?
            .map(|m| m.etag);
        self.commit(state, etag.as_deref()).await
    }

    /// The state as `verify` reports it: the state (empty when lost), how
    /// it was lost, and the highest published generation.
    pub async fn inspect_state(&self) -> Result<(State, Option<StateLoss>, u64), PassError> {
        let loaded = self.load_whole().await?;
        let published = self.published_generation().await?;
        let loss = loaded
            .fresh
            .filter(|loss| published > 0 || *loss != StateLoss::Missing);
        Ok((loaded.state, loss, published))
    }
}
