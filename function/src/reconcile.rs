//! Whole-repository operations: `rebuild` (bootstrap or repair a
//! repository from a listing) and `verify` (report drift between the
//! bucket, the state and the published summaries without writing, and
//! whatever keeps the summary from being published).

use crate::checks;
use crate::gate;
use crate::keys::LISTED;
use crate::progress::Progress;
use crate::repo::{Applied, PassError, Repo, Scope, output_key, state_key};
use crate::state::{Listed, State};
use crate::store::Store;
use crate::summary;

pub use crate::store::open::{UrlError, parse_s3_url};

/// Brings a repository's state and summaries in line with its listing:
/// every listed package is looked at (read only if new or changed), every
/// state entry no longer listed is looked at and dropped if gone. A lost
/// state is recreated above the published generation. A listing with no
/// package at all is refused unless `config.allow_empty`.
pub async fn rebuild<S: Store>(
    repo: &Repo<'_, S>,
    progress: &dyn Progress,
) -> Result<Applied, PassError> {
    repo.apply(Scope::Listing, progress).await
}

/// What [`verify`] found.
#[derive(Debug, Default, Clone)]
pub struct Drift {
    /// Differences between the bucket, the state and the summaries, one
    /// line each.
    pub lines: Vec<String>,
    /// Packages that are there but cannot be indexed, with the reason.
    pub unreadable: Vec<(String, String)>,
    /// Indexed packages' warnings (pkg_info's, and what would make them
    /// fail later, alone or beside the others): not drift, so they leave
    /// the verdict alone.
    pub warnings: Vec<(String, String)>,
    pub packages: usize,
    pub generation: u64,
}

impl Drift {
    /// No drift and nothing unreadable.
    pub fn is_clean(&self) -> bool {
        self.lines.is_empty() && self.unreadable.is_empty()
    }
}

/// Most repository-wide warnings `verify` lists.
const VERIFY_KEPT: usize = 100_000;

/// Compares bucket, state and outputs. Reads every summary file whole.
pub async fn verify<S: Store>(repo: &Repo<'_, S>) -> Result<Drift, PassError> {
    let prefix = repo.prefix();
    let (state, loss, published) = repo.inspect_state().await?;
    let listing: Vec<Listed> = repo
        .list_packages(&repo.remembered_suffixes(&state))
        .await?
        .into_iter()
        .map(|(name, meta)| Listed {
            name,
            size: meta.size,
            token: meta.etag,
        })
        .collect();
    let mut drift = Drift {
        packages: state.len(),
        unreadable: state
            .failures()
            .map(|(name, f)| (name.to_owned(), f.error.clone()))
            .collect(),
        // Every package is loaded: each one's warnings are in its piece.
        warnings: state
            .packages()
            .flat_map(|(name, p)| p.warnings.iter().map(move |w| (name.to_owned(), w.clone())))
            .chain(
                checks::repository_warnings(
                    state.packages().map(|(name, p)| (name, &p.record[..])),
                    VERIFY_KEPT,
                )
                .warnings,
            )
            .collect(),
        generation: state.generation(),
        ..Drift::default()
    };
    let state_key = state_key(prefix);
    if let Some(loss) = loss {
        drift.lines.push(format!(
            "{state_key}: {loss}, while the summaries are at generation {published}: the next pass recreates it from a listing"
        ));
    } else if published > state.generation() {
        drift.lines.push(format!(
            "{state_key}: generation {} is behind the published {published}: `pkgsum rebuild` repairs it",
            state.generation()
        ));
    }
    let plan = state.plan(&listing);
    for file in &plan.read {
        let why = if state.failure(&file.name).is_some() || state.package(&file.name).is_some() {
            "changed since it was indexed"
        } else {
            "not indexed"
        };
        drift.lines.push(format!("{prefix}{}: {why}", file.name));
    }
    for name in &plan.removed {
        let what = if state.package(name).is_some() {
            "indexed"
        } else if state.failure(name).is_some() {
            "recorded as unreadable"
        } else {
            "held for its release"
        };
        drift
            .lines
            .push(format!("{prefix}{name}: {what}, but gone from the bucket"));
    }
    let location = repo.location();
    for line in repo.stalled(&state) {
        drift.lines.push(format!("{location}: {line}"));
    }
    check_outputs(repo, &state, &mut drift).await?;
    Ok(drift)
}

/// Whether the summary may be published (a hold, the gates), and, if
/// so, whether the published files say what the state does.
async fn check_outputs<S: Store>(
    repo: &Repo<'_, S>,
    state: &State,
    drift: &mut Drift,
) -> Result<(), PassError> {
    let (store, prefix, config) = (repo.store(), repo.prefix(), repo.config());
    let mut published = None;
    for &format in &config.formats {
        if let Some(meta) = store.head(&output_key(prefix, format)).await? {
            let listed = meta
                .metadata
                .get(LISTED)
                .and_then(|n| n.parse::<usize>().ok());
            published = published.max(listed);
        }
    }
    let records: Vec<(&str, &[u8])> = state.packages().map(|(n, p)| (n, &p.record[..])).collect();
    let verdict = gate::judge(
        &config.gates,
        state.hold(),
        state.len(),
        Some(&records),
        published,
    );
    if !verdict.closed.is_empty() {
        // The files out there are older on purpose: nothing to compare.
        let location = repo.location();
        for closed in &verdict.closed {
            drift
                .lines
                .push(format!("{location}: not published: {closed}"));
        }
        return Ok(());
    }
    let mut want = Vec::new();
    for (name, record) in records {
        if !verdict.unlisted.contains(name) {
            want.extend_from_slice(record);
        }
    }
    for &format in &config.formats {
        let key = output_key(prefix, format);
        let Some((body, _)) = store.get(&key).await? else {
            drift.lines.push(format!("{key}: missing"));
            continue;
        };
        // Bounded: a summary larger than any state could be is damage.
        match summary::decode(format, &body, config.state_limit) {
            Err(err) => drift.lines.push(format!("{key}: unreadable ({err})")),
            Ok(got) if got != want => drift.lines.push(format!(
                "{key}: does not match the state ({} records)",
                count_records(&got)
            )),
            Ok(_) => {}
        }
    }
    for format in summary::unwritten(&config.formats) {
        let key = output_key(prefix, format);
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
