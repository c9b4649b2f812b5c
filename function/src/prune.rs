//! `pkgsum prune`: retention over a repository in a store. The judgement
//! is [`crate::retention`]'s; this gathers what it needs (the index's
//! records, a listing for sizes, ETags and upload times, the current
//! summary, the history within the grace window), then deletes what may
//! go, each file only while it still holds the ETag it was judged at, and
//! runs the indexer's pass over the deleted names so the summary follows
//! at once (the store's notifications bring the same pass again, which
//! then finds nothing to do).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use futures::stream::{self, StreamExt};

use crate::checks;
use crate::keys::output_key;
use crate::progress::Progress;
use crate::repo::{Applied, PassError, Repo, Scope};
use crate::retention::{self, File, Judged, Rules, Shield};
use crate::store::{Bounded, Store};
use crate::summary;

/// The largest published summary read to learn what it lists.
const SUMMARY_LIMIT: u64 = 256 << 20;

/// What a prune is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneOptions {
    pub rules: Rules,
    /// Files listed by a generation current within this long are kept.
    pub grace: Duration,
}

/// The grace window unless told otherwise: 30 days.
pub const GRACE: Duration = Duration::from_secs(30 * 86_400);

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            rules: Rules::default(),
            grace: GRACE,
        }
    }
}

impl PruneOptions {
    /// Whether a rule is set (with none, nothing would go).
    pub fn is_set(&self) -> bool {
        self.rules.keep.is_some() || self.rules.older_than.is_some()
    }
}

/// What the judgement found: every indexed file, going or staying.
#[derive(Debug, Clone)]
pub struct Plan {
    pub repository: String,
    pub judged: Vec<Judged>,
    /// The ETag each file was judged at.
    etags: BTreeMap<String, String>,
}

impl Plan {
    /// The files that would go.
    pub fn going(&self) -> impl Iterator<Item = &Judged> {
        self.judged.iter().filter(|j| j.goes)
    }

    /// The bytes deleting them frees.
    pub fn bytes(&self) -> u64 {
        self.going().map(|j| j.size).sum()
    }

    /// Files the rules would let go that something keeps.
    pub fn shielded(&self) -> impl Iterator<Item = &Judged> {
        self.judged.iter().filter(|j| !j.goes && j.why.is_shield())
    }
}

/// What `--apply` did.
#[derive(Debug, Default)]
pub struct Pruned {
    /// Files deleted, and the bytes they held.
    pub deleted: Vec<String>,
    pub bytes: u64,
    /// Files kept after all, and why: written again since the judgement,
    /// or already gone.
    pub kept: Vec<(String, String)>,
    /// The indexer's pass over the deleted names.
    pub applied: Option<Applied>,
}

/// Judges every indexed file of `repo` at `now`.
pub async fn judge<S: Store>(
    repo: &Repo<'_, S>,
    options: PruneOptions,
    now: SystemTime,
) -> Result<Plan, PassError> {
    let now = crate::repo::whole_seconds(now);
    let state = repo.read_state().await?;
    let listing = repo
        .list_packages(&repo.remembered_suffixes(&state))
        .await?;
    let mut shield = Shield {
        listed: published_files(repo).await?,
        ..Shield::default()
    };
    let packages: Vec<(&str, &[u8])> = state
        .packages()
        .map(|(name, p)| (name, p.record.as_slice()))
        .collect();
    let unlisted = checks::unlisted(repo.config().gates.select, packages.iter().copied());
    shield.listed.extend(
        state
            .names()
            .filter(|name| !unlisted.contains(*name))
            .map(str::to_owned),
    );
    let grace = options.grace.as_secs();
    if grace > 0 {
        let since = repo.listed_since(now.saturating_sub(grace)).await?;
        shield.grace = since.files;
        shield.known_since = since.known_since;
    }
    let mut files = Vec::new();
    let mut etags = BTreeMap::new();
    for (name, package) in state.packages() {
        let Some(meta) = listing.get(name) else {
            continue;
        };
        if meta.etag != package.token || meta.size != package.size {
            shield.changed.insert(name.to_owned());
        }
        etags.insert(name.to_owned(), meta.etag.clone());
        files.push(File {
            name,
            size: meta.size,
            modified: meta.last_modified.map(crate::repo::whole_seconds),
            record: &package.record,
        });
    }
    let judged = retention::judge(&files, options.rules, &shield, now);
    Ok(Plan {
        repository: repo.location(),
        judged,
        etags,
    })
}

/// The files the published summary lists (none if there is none).
async fn published_files<S: Store>(repo: &Repo<'_, S>) -> Result<BTreeSet<String>, PassError> {
    let config = repo.config();
    let Some(&format) = config.formats.first() else {
        return Ok(BTreeSet::new());
    };
    let key = output_key(repo.prefix(), format);
    let read = repo.store().get_bounded(&key, SUMMARY_LIMIT).await?;
    let Some(Bounded::Whole(body, _)) = read else {
        return Ok(BTreeSet::new());
    };
    let text =
        summary::decode(format, &body, config.state_limit).map_err(|error| PassError::Render {
            repository: repo.location(),
            error,
        })?;
    Ok(crate::repo::files_listed(&text))
}

/// Deletes what `plan` lets go, each only while it holds the ETag it was
/// judged at, then runs the indexer's pass over the deleted names.
pub async fn apply<S: Store>(
    repo: &Repo<'_, S>,
    plan: &Plan,
    progress: &dyn Progress,
) -> Result<Pruned, PassError> {
    let deletes = plan.going().map(|judged| async move {
        let etag = plan.etags.get(&judged.name).map_or("", String::as_str);
        let key = format!("{}{}", repo.prefix(), judged.name);
        (judged, repo.store().delete_if(&key, etag).await)
    });
    let done: Vec<_> = stream::iter(deletes)
        .buffer_unordered(repo.config().concurrency.max(1))
        .collect()
        .await;
    let mut pruned = Pruned::default();
    for (judged, result) in done {
        match result {
            Ok(()) => {
                pruned.deleted.push(judged.name.clone());
                pruned.bytes += judged.size;
            }
            Err(err) if err.is_precondition() => pruned.kept.push((
                judged.name.clone(),
                "written again since it was judged".to_owned(),
            )),
            Err(err) if err.is_not_found() => {
                pruned
                    .kept
                    .push((judged.name.clone(), "already gone".to_owned()));
            }
            Err(err) => return Err(err.into()),
        }
    }
    pruned.deleted.sort();
    pruned.kept.sort();
    if !pruned.deleted.is_empty() {
        let names: BTreeSet<String> = pruned.deleted.iter().cloned().collect();
        pruned.applied = Some(repo.apply(Scope::Names(&names), progress).await?);
    }
    Ok(pruned)
}
