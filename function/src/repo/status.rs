//! `<prefix>.pkgsum/status.json`: what is indexed and what is not, for
//! people and monitoring: the generation, the package count, every
//! package that cannot be read (with the reason), every pkg_info
//! warning, what the last pass over the whole repository found wrong
//! between packages, and, under a signature policy, every package's
//! verdict: of each list, the first thousand, with a count of the rest,
//! so a repository of bad or warned-of uploads keeps a small status; and
//! whether its summary is published or held, and why.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::{PassError, Repo};
use crate::gate::Verdict;
use crate::keys::{GENERATION, generation_of, status_key};
use crate::state::State;
use crate::store::{Op, PutMode, PutOptions, Store, StoreError};
use crate::trust::{Policy, SignatureVerdict};

/// Most failures and verdicts the status lists; the rest are counted
/// (`*_more`). Each is bounded, and so, with these, is the status.
const LISTED: usize = 1000;

impl<S: Store> Repo<'_, S> {
    /// Writes the status of `state`, published or held as `verdict`
    /// says, unless one of a later generation is there already (or of the
    /// same, unless this pass has just published: the status there may
    /// say the summary was held).
    pub(super) async fn write_status(
        &self,
        state: &State,
        verdict: &Verdict,
        published: bool,
    ) -> Result<(), PassError> {
        let key = status_key(self.prefix);
        if let Some(meta) = self.store.head(&key).await?
            && (generation_of(&meta) > state.generation()
                || generation_of(&meta) == state.generation() && !published)
        {
            return Ok(());
        }
        let failures: Vec<serde_json::Value> = state
            .failures()
            .take(LISTED)
            .map(|(name, f)| serde_json::json!({"file": name, "size": f.size, "error": f.error}))
            .collect();
        let failures_more = state.failures().count().saturating_sub(LISTED);
        let warnings: Vec<serde_json::Value> = state
            .warnings()
            .flat_map(|(name, warnings)| {
                warnings
                    .iter()
                    .map(move |w| serde_json::json!({"file": name, "warning": w}))
            })
            .collect();
        let (found, checked) = state.repository_warnings();
        let beside: Vec<serde_json::Value> = found
            .iter()
            .map(|(name, w)| serde_json::json!({"file": name, "warning": w}))
            .collect();
        let mut status = serde_json::json!({
            "generation": state.generation(),
            "packages": state.len(),
            "failures": failures,
            "failures_more": failures_more,
            // Of the first packages with warnings; the others are counted
            // (`pkgsum verify` lists them all).
            "warnings": warnings,
            "warned_packages_more": state.warned_more(),
            // What a pass over the whole repository (`rebuild`, the daily
            // reconcile) last found; a package's are dropped when it
            // changes or goes.
            "repository_warnings": {
                "found_at_generation": checked,
                "warnings": beside,
                "more": state.repository_more(),
            },
            // Pushed releases not yet whole: their packages are held.
            "releases": state.waiting().iter().take(LISTED).map(|w| serde_json::json!({
                "id": w.id,
                "have": w.have,
                "count": w.count,
                "since": crate::gate::utc(w.since),
                "timeout_seconds": self.config.release_timeout.as_secs(),
            })).collect::<Vec<_>>(),
            // Whether this state's summary is out there, what it lists,
            // and what keeps it back (a hold, a gate).
            "publication": {
                "published": verdict.closed.is_empty(),
                "held": verdict.closed.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "select": self.config.gates.select.to_string(),
                "listed": verdict.listed,
                "unlisted": verdict.unlisted.len(),
            },
        });
        let policy = self.config.trust.policy();
        if policy != Policy::Ignore {
            let verdicts = state.verdicts().take(LISTED);
            status["signatures"] = serde_json::json!({
                "policy": policy.as_str(),
                "packages": verdicts.map(|(name, v)| verdict_json(name, v)).collect::<Vec<_>>(),
                "packages_more": state.verdicts().count().saturating_sub(LISTED),
            });
        }
        let options = PutOptions {
            mode: PutMode::Overwrite,
            content_type: Some("application/json".to_owned()),
            cache_control: Some("no-cache".to_owned()),
            metadata: BTreeMap::from([(GENERATION.to_owned(), state.generation().to_string())]),
            ..PutOptions::default()
        };
        let body = serde_json::to_vec_pretty(&status)
            .map_err(|e| StoreError::other(Op::Put, self.store.location(&key), e))?;
        self.store.put(&key, Bytes::from(body), options).await?;
        Ok(())
    }
}

/// One package's verdict: `signed` (with `by`), `unsigned`, or `bad` (with
/// the `reason`).
fn verdict_json(name: &str, verdict: &SignatureVerdict) -> serde_json::Value {
    match verdict {
        SignatureVerdict::Signed { by } => {
            serde_json::json!({"file": name, "verdict": "signed", "by": by})
        }
        SignatureVerdict::Unsigned => serde_json::json!({"file": name, "verdict": "unsigned"}),
        SignatureVerdict::Bad { reason } => {
            serde_json::json!({"file": name, "verdict": "bad", "reason": reason})
        }
    }
}
