//! Waiting until pushed packages are live: in the published summary with
//! the very record the push expects, or reported by the indexer as
//! unreadable, or held back by a gate or a hold. Reads what any client
//! may read, plus `status.json`: a HEAD of the summary per poll, the
//! summary itself only when its generation moves.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::excerpt::{Escaped, bounded};
use crate::keys::{GENERATION, output_key, status_key};
use crate::repo::Repo;
use crate::store::{Bounded, Store, StoreError};

/// The largest status read.
const STATUS_LIMIT: u64 = 64 << 20;

/// Most failures and reasons for a hold read from a status (the indexer
/// writes fewer).
const STATUS_FAILURES: usize = 100_000;
const STATUS_HELD: usize = 16;

/// What became of one pushed package.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    /// In the published summary this long after the push began.
    Live(Duration),
    /// The indexer could not read it; why.
    Unreadable(String),
    /// Indexed, but the summary is held back; why.
    Held(String),
    /// None of those by the deadline.
    Waiting,
}

/// What waiting found.
#[derive(Debug)]
pub struct Waited {
    /// Each package's fate, by file name.
    pub fates: BTreeMap<String, Fate>,
    /// Whether any indexer committed anything after the push began.
    pub answered: bool,
    /// The generation of the summary the last package was found live in.
    pub generation: Option<u64>,
}

/// The repository's status, as far as waiting needs it.
#[derive(Default)]
struct Status {
    generation: u64,
    failures: BTreeMap<String, (u64, String)>,
    held: Vec<String>,
}

/// Reads `status.json`; an unreadable one says nothing.
async fn status<S: Store>(repo: &Repo<'_, S>) -> Result<Status, StoreError> {
    let key = status_key(repo.prefix());
    let read = match repo.store().get_bounded(&key, STATUS_LIMIT).await {
        // Replaced while read (LocalStack serves such answers torn): the
        // next poll reads it again.
        Err(err) if err.is_moved_on() => return Ok(Status::default()),
        read => read?,
    };
    let Some(Bounded::Whole(body, _)) = read else {
        return Ok(Status::default());
    };
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return Ok(Status::default());
    };
    // Anyone who may write the bucket may plant a status: what is read of
    // it is bounded and escaped before it is printed or reported.
    let text = |v: &serde_json::Value| {
        let text = bounded(v.as_str().unwrap_or_default().to_owned());
        Escaped(&text).to_string()
    };
    let failures = json["failures"].as_array().into_iter().flatten();
    let failures = failures.take(STATUS_FAILURES);
    let held = json["publication"]["held"].as_array().into_iter().flatten();
    let held = held.take(STATUS_HELD);
    Ok(Status {
        generation: json["generation"].as_u64().unwrap_or(0),
        failures: failures
            .map(|f| {
                (
                    text(&f["file"]),
                    (f["size"].as_u64().unwrap_or(0), text(&f["error"])),
                )
            })
            .collect(),
        held: held.map(text).collect(),
    })
}

/// The generation the state had when the push began (from the status).
pub async fn status_generation<S: Store>(repo: &Repo<'_, S>) -> Result<u64, StoreError> {
    Ok(status(repo).await?.generation)
}

/// Waits until every package of `pushed` (file name, record, size) has
/// a fate other than [`Fate::Waiting`], or `timeout` after `started`.
/// `before` is the status generation when the push began.
pub async fn wait<S: Store>(
    repo: &Repo<'_, S>,
    pushed: &[(String, Vec<u8>, u64)],
    started: Instant,
    before: u64,
    timeout: Duration,
) -> Result<Waited, StoreError> {
    let mut fates: BTreeMap<String, Fate> = pushed
        .iter()
        .map(|(n, _, _)| (n.clone(), Fate::Waiting))
        .collect();
    let wanted: BTreeMap<&str, &[u8]> = pushed
        .iter()
        .map(|(n, r, _)| (n.as_str(), trim(r)))
        .collect();
    let sizes: BTreeMap<&str, u64> = pushed.iter().map(|(n, _, s)| (n.as_str(), *s)).collect();
    let mut seen_generation = None;
    let mut live_in = None;
    let mut answered = false;
    let format = repo.config().formats.first().copied();
    loop {
        let status = status(repo).await?;
        answered |= status.generation > before;
        for (name, fate) in fates.iter_mut().filter(|(_, f)| **f == Fate::Waiting) {
            if let Some((size, error)) = status.failures.get(name)
                && Some(size) == sizes.get(name.as_str())
            {
                *fate = Fate::Unreadable(error.clone());
            }
        }
        if let Some(format) = format {
            let key = output_key(repo.prefix(), format);
            let head = repo.store().head(&key).await?;
            let generation = head
                .as_ref()
                .and_then(|m| m.metadata.get(GENERATION).cloned());
            if generation.is_some() && generation != seen_generation {
                let listed = match records(repo).await {
                    // Replaced while read: read again at the next poll.
                    Err(err) if err.is_moved_on() => BTreeSet::new(),
                    listed => {
                        seen_generation = generation;
                        listed?
                    }
                };
                for (name, fate) in fates.iter_mut() {
                    let record = wanted.get(name.as_str()).copied().unwrap_or_default();
                    if *fate == Fate::Waiting && listed.contains(record) {
                        *fate = Fate::Live(started.elapsed());
                        answered = true;
                        live_in = seen_generation.as_deref().and_then(|g| g.parse().ok());
                    }
                }
            }
        }
        let waiting = fates.values().filter(|f| **f == Fate::Waiting).count();
        if waiting > 0 && !status.held.is_empty() && status.generation > before {
            let why = status.held.join("; ");
            for fate in fates.values_mut().filter(|f| **f == Fate::Waiting) {
                *fate = Fate::Held(why.clone());
            }
        }
        let done = fates.values().all(|f| *f != Fate::Waiting);
        if done || started.elapsed() >= timeout {
            return Ok(Waited {
                fates,
                answered,
                generation: live_in,
            });
        }
        let poll = Duration::from_millis(250).min(timeout.saturating_sub(started.elapsed()));
        tokio::time::sleep(poll).await;
    }
}

/// The records of the published summary, each without its trailing
/// newlines.
async fn records<S: Store>(repo: &Repo<'_, S>) -> Result<BTreeSet<Vec<u8>>, StoreError> {
    let Some(published) = super::check::published(repo).await? else {
        return Ok(BTreeSet::new());
    };
    let records = crate::summary::records(&published.records);
    Ok(records.into_iter().map(|r| trim(r).to_vec()).collect())
}

/// A record without its trailing newlines.
fn trim(record: &[u8]) -> &[u8] {
    let end = record
        .iter()
        .rposition(|&b| b != b'\n')
        .map_or(0, |i| i + 1);
    &record[..end]
}
