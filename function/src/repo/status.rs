//! `<prefix>.pkgsum/status.json`: what is indexed and what is not, for
//! people and monitoring: the generation, the package count, every
//! package that cannot be read (with the reason) and every pkg_info
//! warning.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::keys::{GENERATION, generation_of, status_key};
use super::{PassError, Repo};
use crate::state::State;
use crate::store::{Op, PutMode, PutOptions, Store, StoreError};

impl<S: Store> Repo<'_, S> {
    /// Writes the status of `state` unless one of its generation or later
    /// is there already.
    pub(super) async fn write_status(&self, state: &State) -> Result<(), PassError> {
        let key = status_key(self.prefix);
        if let Some(meta) = self.store.head(&key).await?
            && generation_of(&meta) >= state.generation()
        {
            return Ok(());
        }
        let failures: Vec<serde_json::Value> = state
            .failures()
            .map(|(name, f)| serde_json::json!({"file": name, "size": f.size, "error": f.error}))
            .collect();
        let warnings: Vec<serde_json::Value> = state
            .warnings()
            .flat_map(|(name, warnings)| {
                warnings
                    .iter()
                    .map(move |w| serde_json::json!({"file": name, "warning": w}))
            })
            .collect();
        let status = serde_json::json!({
            "generation": state.generation(),
            "packages": state.len(),
            "failures": failures,
            "warnings": warnings,
        });
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
