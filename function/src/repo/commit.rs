//! The state object, `<prefix>.pkgsum/state`: reading it (a missing or
//! unreadable one is a lost state, to be recreated above what was
//! published), and committing it by compare-and-swap.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

use super::keys::{GENERATION, generation_of, output_key, state_key, status_key};
use super::{PassError, Repo, StateLoss};
use crate::state::State;
use crate::store::{PutMode, PutOptions, Store, StoreError};
use crate::summary;

/// The state as stored, with the ETag to commit against.
pub(super) struct Loaded {
    pub state: State,
    pub etag: Option<String>,
    /// No usable state: the pass must look at the whole repository.
    pub fresh: Option<StateLoss>,
}

impl<S: Store> Repo<'_, S> {
    pub(super) async fn load_state(&self) -> Result<Loaded, StoreError> {
        let key = state_key(self.prefix);
        match self.store.get(&key).await? {
            None => Ok(Loaded {
                state: State::default(),
                etag: None,
                fresh: Some(StateLoss::Missing),
            }),
            Some((body, meta)) => match State::from_bytes(&body, self.config.state_limit) {
                Ok(state) => Ok(Loaded {
                    state,
                    etag: Some(meta.etag),
                    fresh: None,
                }),
                // The state is a cache: an unreadable one is replaced (by a
                // conditional write on its ETag) from a listing.
                Err(error) => Ok(Loaded {
                    state: State::default(),
                    etag: Some(meta.etag),
                    fresh: Some(StateLoss::Unreadable(error.to_string())),
                }),
            },
        }
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

    /// Writes `state` if the stored one still has `etag` (or, with none,
    /// if there is still none): the compare-and-swap every pass commits by.
    pub(super) async fn commit(&self, state: &State, etag: Option<&str>) -> Result<(), PassError> {
        let key = state_key(self.prefix);
        let body = state.to_bytes().map_err(|error| PassError::EncodeState {
            object: self.store.location(&key),
            error,
        })?;
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
        self.store.put(&key, Bytes::from(body), options).await?;
        Ok(())
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

    /// The repository's state; a missing or unreadable one is empty.
    pub async fn read_state(&self) -> Result<State, PassError> {
        Ok(self.load_state().await?.state)
    }

    /// The state as `verify` reports it: the state (empty when lost), how
    /// it was lost, and the highest published generation.
    pub async fn inspect_state(&self) -> Result<(State, Option<StateLoss>, u64), PassError> {
        let loaded = self.load_state().await?;
        let published = self.published_generation().await?;
        let loss = loaded
            .fresh
            .filter(|loss| published > 0 || *loss != StateLoss::Missing);
        Ok((loaded.state, loss, published))
    }
}
