//! From decoded events to repository passes: the code path shared by the
//! Lambda function and `pkgsum apply-event`.
//!
//! Keys are filtered (package suffixes only, never pkgsum's own files, no
//! control characters or dot segments, and only in the repositories of
//! `PKGSUM_REPOSITORIES` when it names any),
//! grouped by bucket and repository so a batch costs one pass per
//! repository, and failures are mapped back to the SQS messages that
//! named them, for partial batch failure reports.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::Config;
use crate::event::Message;
use crate::excerpt::Escaped;
use crate::repo::{self, Applied, Repo, Report, Scope, Unsure};
use crate::store::Store;
use crate::verdict::Verdict;

/// What handling a set of messages did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub reports: Vec<Report>,
    /// Ids of SQS messages with a key that could not be applied: report
    /// these as batch item failures so SQS delivers them again.
    pub failed_messages: Vec<String>,
    /// What went wrong, one line each.
    pub errors: Vec<String>,
    /// Parts of events that named nothing to do, with the reason.
    pub ignored: Vec<String>,
}

impl Outcome {
    /// True when every key was applied.
    pub fn is_success(&self) -> bool {
        self.errors.is_empty()
    }

    /// Failed if any key could not be applied; otherwise Unreadable if a
    /// repository it touched holds unreadable packages.
    pub fn verdict(&self) -> Verdict {
        if !self.is_success() {
            Verdict::Failed
        } else {
            let verdicts = self.reports.iter().map(crate::repo::Report::verdict);
            verdicts.max().unwrap_or_default()
        }
    }
}

/// Applies the keys named by `messages`. `store_for` gives the store of a
/// bucket (one shared client behind it).
pub async fn apply_messages<S, F>(messages: &[Message], store_for: F, config: &Config) -> Outcome
where
    S: Store,
    F: Fn(&str) -> S,
{
    let mut outcome = Outcome::default();
    // (bucket, prefix) -> name -> indices of the messages naming it.
    let mut groups: BTreeMap<(String, String), BTreeMap<String, BTreeSet<usize>>> = BTreeMap::new();
    // (bucket, prefix) -> who the events say made the changes.
    let mut who: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let allowed = config.allowed_repositories();
    for (index, message) in messages.iter().enumerate() {
        outcome.ignored.extend(message.ignored.iter().cloned());
        for target in &message.targets {
            let shown = Escaped(&target.key);
            if !config.wants(&target.key) {
                outcome.ignored.push(format!("{shown}: not a package key"));
                continue;
            }
            let (prefix, name) = repo::split_key(&target.key);
            let repository = (target.bucket.clone(), prefix.to_owned());
            if allowed.as_ref().is_some_and(|a| !a.contains(&repository)) {
                let why = "not in a repository of PKGSUM_REPOSITORIES";
                outcome
                    .ignored
                    .push(format!("s3://{}/{shown}: {why}", target.bucket));
                continue;
            }
            let named = who.entry(repository.clone()).or_default();
            crate::changelog::add_who(named, target.who.as_deref());
            groups
                .entry(repository)
                .or_default()
                .entry(name.to_owned())
                .or_default()
                .insert(index);
        }
    }

    let mut failed = BTreeSet::new();
    for ((bucket, prefix), names) in groups {
        let store = store_for(&bucket);
        let wanted: BTreeSet<String> = names.keys().cloned().collect();
        let named = who.remove(&(bucket.clone(), prefix.clone()));
        let named = named.unwrap_or_default();
        let repo = Repo::new(&store, &prefix, config).by(&named);
        match repo.apply(Scope::Names(&wanted), &()).await {
            Ok(Applied { report, unsure }) => {
                for Unsure { name, error } in unsure {
                    tracing::warn!(%error, "key not applied; to be retried");
                    outcome.errors.push(error.to_string());
                    failed.extend(names.get(&name).into_iter().flatten().copied());
                }
                tracing::info!(
                    bucket = %bucket,
                    prefix = %report.prefix,
                    read = report.read.len(),
                    removed = report.removed.len(),
                    unchanged = report.unchanged,
                    unreadable = report.failures.len(),
                    bytes_fetched = report.bytes_fetched,
                    attempts = report.attempts,
                    generation = report.generation,
                    published = report.published,
                    "repository updated"
                );
                outcome.reports.push(report);
            }
            Err(error) => {
                tracing::error!(%error, "repository pass failed");
                outcome.errors.push(error.to_string());
                failed.extend(names.values().flatten().copied());
            }
        }
    }
    outcome.failed_messages = failed
        .into_iter()
        .filter_map(|i| messages[i].id.clone())
        .collect();
    outcome
}
