//! Whole-repository operations: `rebuild` (bootstrap or repair a
//! repository from a listing) and `verify` (report drift between the
//! bucket, the state and the published summaries without writing).

use std::collections::{BTreeMap, BTreeSet};

use crate::index::Progress;
use crate::repo::{self, Config, PassError, Report};
use crate::state::State;
use crate::store::{Store, StoreError};
use crate::summary;

/// Parses `s3://bucket/prefix/` into the bucket and a repository prefix
/// (empty, or ending in `/`).
pub fn parse_s3_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("{url:?} is not an s3://bucket/prefix/ URL"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("{url:?} names no bucket"));
    }
    let mut prefix = prefix.to_owned();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    Ok((bucket.to_owned(), prefix))
}

/// The package file names directly under `prefix`, from a listing.
async fn listed_packages<S: Store>(
    store: &S,
    prefix: &str,
    config: &Config,
) -> Result<BTreeMap<String, (u64, String)>, StoreError> {
    Ok(store
        .list(prefix)
        .await?
        .into_iter()
        .filter(|m| config.wants(&m.key))
        .filter_map(|m| {
            let name = m.key[prefix.len()..].to_owned();
            (!name.contains('/')).then_some((name, (m.size, m.etag)))
        })
        .collect())
}

/// Brings a repository's state and summaries in line with its listing:
/// every listed package is looked at (read only if new or changed), every
/// state entry no longer listed is looked at and dropped if gone.
pub async fn rebuild<S: Store>(
    store: &S,
    prefix: &str,
    config: &Config,
    progress: &dyn Progress,
) -> Result<(Report, Vec<(String, StoreError)>), PassError> {
    let listed = listed_packages(store, prefix, config).await?;
    let state = repo::read_state(store, prefix, config).await?;
    let mut names: BTreeSet<String> = listed.into_keys().collect();
    names.extend(state.names().map(str::to_owned));
    repo::apply_with_progress(store, prefix, &names, config, progress).await
}

/// Differences found by [`verify`], one line each.
#[derive(Debug, Default, Clone)]
pub struct Drift {
    pub lines: Vec<String>,
    pub packages: usize,
    pub failures: usize,
    pub generation: u64,
}

impl Drift {
    pub fn is_clean(&self) -> bool {
        self.lines.is_empty()
    }
}

/// Compares bucket, state and outputs. Reads every summary file whole.
pub async fn verify<S: Store>(
    store: &S,
    prefix: &str,
    config: &Config,
) -> Result<Drift, PassError> {
    let listed = listed_packages(store, prefix, config).await?;
    let state = repo::read_state(store, prefix, config).await?;
    let mut drift = Drift {
        packages: state.len(),
        failures: state.failures().count(),
        generation: state.generation(),
        ..Drift::default()
    };
    for (name, (size, etag)) in &listed {
        if !state.is_current(name, *size, etag) {
            let why = if state.names().any(|n| n == name) {
                "changed since it was indexed"
            } else {
                "not indexed"
            };
            drift.lines.push(format!("{prefix}{name}: {why}"));
        }
    }
    for name in state.names() {
        if !listed.contains_key(name) {
            drift
                .lines
                .push(format!("{prefix}{name}: indexed but gone from the bucket"));
        }
    }
    check_outputs(store, prefix, &state, config, &mut drift).await?;
    Ok(drift)
}

async fn check_outputs<S: Store>(
    store: &S,
    prefix: &str,
    state: &State,
    config: &Config,
    drift: &mut Drift,
) -> Result<(), PassError> {
    let want = state.summary();
    for &format in &config.formats {
        let key = repo::output_key(prefix, format);
        let Some((body, _)) = store.get(&key).await? else {
            drift.lines.push(format!("{key}: missing"));
            continue;
        };
        let mut got = Vec::new();
        let decoded = format
            .decoder(&body[..])
            .and_then(|mut d| std::io::Read::read_to_end(&mut d, &mut got));
        match decoded {
            Err(err) => drift.lines.push(format!("{key}: unreadable ({err})")),
            Ok(_) if got != want => drift.lines.push(format!(
                "{key}: does not match the state ({} records)",
                count_records(&got)
            )),
            Ok(_) => {}
        }
    }
    for format in summary::unwritten(&config.formats) {
        let key = repo::output_key(prefix, format);
        if store.head(&key).await?.is_some() {
            drift.lines.push(format!(
                "{key}: present but not written by this configuration (pkgin may prefer it)"
            ));
        }
    }
    Ok(())
}

fn count_records(summary: &[u8]) -> usize {
    summary.windows(2).filter(|w| w == b"\n\n").count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls() {
        assert_eq!(
            parse_s3_url("s3://b/All/").unwrap(),
            ("b".into(), "All/".into())
        );
        assert_eq!(
            parse_s3_url("s3://b/All").unwrap(),
            ("b".into(), "All/".into())
        );
        assert_eq!(parse_s3_url("s3://b").unwrap(), ("b".into(), "".into()));
        assert_eq!(parse_s3_url("s3://b/").unwrap(), ("b".into(), "".into()));
        assert!(parse_s3_url("http://b/").is_err());
        assert!(parse_s3_url("s3:///x").is_err());
    }
}
