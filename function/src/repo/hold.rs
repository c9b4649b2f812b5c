//! Holding and resuming publication (`pkgsum hold`, `pkgsum resume`):
//! the hold is kept in the state, so every indexer (the function, `poll`,
//! `serve`, `index`) sees it on its next pass. While held, passes still
//! commit what the bucket holds; nothing is published.

use std::collections::BTreeSet;
use std::time::SystemTime;

use super::commit::Want;
use super::publish::whole_seconds;
use super::{Gating, PassError, Published, Repo};
use crate::keys::state_key;
use crate::state::{Hold, State};
use crate::store::Store;

/// Why a hold or a resume could not be committed.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    #[error(transparent)]
    Pass(#[from] PassError),
    /// No usable state: nothing to hold, and a hold committed on an empty
    /// state would look like an empty repository.
    #[error("{repository}: no state to hold or resume ({why}): `pkgsum rebuild` indexes it first")]
    NoState { repository: String, why: String },
}

impl<S: Store> Repo<'_, S> {
    /// Holds publication, saying `reason`; returns the state committed.
    /// Holding a held repository keeps the first hold.
    pub async fn hold(&self, reason: &str) -> Result<State, HoldError> {
        let since = whole_seconds(SystemTime::now());
        let hold = Hold {
            since,
            reason: reason.to_owned(),
        };
        let mut state = self
            .update_state(|state| state.hold().is_none() && state.set_hold(Some(hold.clone())))
            .await?;
        // The status says so at once; no summary is written. Boxed: the
        // publishing future is large.
        Box::pin(self.publish(&mut state)).await?;
        Ok(state)
    }

    /// Lifts the hold and publishes the newest state as a new generation,
    /// whatever the publish gates would say: a person has looked at it.
    pub async fn resume(&self) -> Result<Published, HoldError> {
        let mut state = self
            .update_state(|state| {
                state.set_hold(None);
                state.republish();
                true
            })
            .await?;
        Ok(Box::pin(self.publish_as(&mut state, Gating::Override)).await?)
    }

    /// Reads the state's manifest, lets `change` change it, and commits
    /// it if it did, by compare-and-swap, again on a lost race. Returns
    /// the state as committed (or as read, if unchanged).
    pub(super) async fn update_state(
        &self,
        mut change: impl FnMut(&mut State) -> bool,
    ) -> Result<State, HoldError> {
        let none = BTreeSet::new();
        for attempt in 1..=self.config.max_attempts {
            let Some(mut loaded) = self
                .load_state(Want::Names(&none))
                .await
                .map_err(PassError::from)?
            else {
                self.backoff(attempt).await;
                continue;
            };
            if let Some(loss) = loaded.fresh {
                return Err(HoldError::NoState {
                    repository: self.location(),
                    why: format!("the state is {loss}"),
                });
            }
            if !change(&mut loaded.state) {
                return Ok(loaded.state);
            }
            match self.commit(&mut loaded.state, loaded.etag.as_deref()).await {
                Ok(()) => return Ok(loaded.state),
                Err(PassError::Store(err)) if err.is_precondition() => {
                    self.backoff(attempt).await;
                }
                Err(err) => return Err(err.into()),
            }
        }
        Err(PassError::Contended {
            object: self.store.location(&state_key(self.prefix)),
            attempts: self.config.max_attempts,
        }
        .into())
    }
}
