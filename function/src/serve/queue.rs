//! One writer per repository: keys wait here, per repository, and a
//! worker applies them in passes after a debounce window, so a burst of
//! uploads costs a few passes and no two passes of this process race on
//! one repository (which is all that keeps a store that ignores
//! conditional writes correct).
//!
//! The ledger ties keys to the spool entries that named them: an entry is
//! removed from the spool once every key in it has been applied. A key
//! that could not be applied goes back to wait, with its entries, and is
//! tried again after a backoff.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::reconcile::rebuild;
use crate::repo::{PassError, Repo, Report, Scope};
use crate::store::Store;

use super::spool::Spool;

/// A repository: its bucket and prefix (empty, or ending in `/`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoId {
    pub bucket: String,
    pub prefix: String,
}

impl std::fmt::Display for RepoId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// What waits for one repository's next pass.
#[derive(Debug, Default)]
struct Pending {
    /// Name -> spool entries waiting for it.
    names: BTreeMap<String, Vec<String>>,
    /// A pass over the whole listing is due.
    reconcile: bool,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.names.is_empty() && !self.reconcile
    }

    fn merge(&mut self, other: Pending) {
        for (name, entries) in other.names {
            self.names.entry(name).or_default().extend(entries);
        }
        self.reconcile |= other.reconcile;
    }
}

/// Counters of one repository, for `GET /status` and the logs.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RepoStats {
    pub passes: u64,
    /// Passes that wrote the summary files.
    pub published: u64,
    pub failed_passes: u64,
    pub pending: usize,
    pub packages: usize,
    pub generation: u64,
    pub last_error: Option<String>,
}

/// The queue of one repository.
#[derive(Debug)]
pub struct RepoQueue {
    pub id: RepoId,
    pending: Mutex<Pending>,
    wake: Notify,
    stats: Mutex<RepoStats>,
}

/// Locks a mutex, taking over a poisoned one: what it guards stays
/// consistent (every update is one assignment or one merge).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RepoQueue {
    pub fn new(id: RepoId) -> Arc<RepoQueue> {
        Arc::new(RepoQueue {
            id,
            pending: Mutex::new(Pending::default()),
            wake: Notify::new(),
            stats: Mutex::new(RepoStats::default()),
        })
    }

    /// Queues a name on behalf of a spool entry.
    pub fn push(&self, name: &str, entry: &str) {
        lock(&self.pending)
            .names
            .entry(name.to_owned())
            .or_default()
            .push(entry.to_owned());
        self.wake.notify_one();
    }

    /// Asks for a pass over the whole listing.
    pub fn request_reconcile(&self) {
        lock(&self.pending).reconcile = true;
        self.wake.notify_one();
    }

    pub fn stats(&self) -> RepoStats {
        let mut stats = lock(&self.stats).clone();
        stats.pending = lock(&self.pending).names.len();
        stats
    }

    fn take(&self) -> Pending {
        std::mem::take(&mut *lock(&self.pending))
    }

    fn put_back(&self, pending: Pending) {
        lock(&self.pending).merge(pending);
    }

    fn is_idle(&self) -> bool {
        lock(&self.pending).is_empty()
    }
}

/// Spool entries and how many of their keys are still to be applied.
#[derive(Debug)]
pub struct Ledger {
    spool: Spool,
    outstanding: Mutex<HashMap<String, usize>>,
}

impl Ledger {
    pub fn new(spool: Spool) -> Ledger {
        Ledger {
            spool,
            outstanding: Mutex::new(HashMap::new()),
        }
    }

    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    /// Records that `entry` waits for `keys` keys.
    pub fn expect(&self, entry: &str, keys: usize) {
        lock(&self.outstanding).insert(entry.to_owned(), keys);
    }

    /// Entries still waiting.
    pub fn len(&self) -> usize {
        lock(&self.outstanding).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One key of each of `entries` was applied; entries with nothing left
    /// leave the spool.
    fn applied(&self, entries: &[String]) {
        let mut done = Vec::new();
        {
            let mut outstanding = lock(&self.outstanding);
            for entry in entries {
                if let Some(left) = outstanding.get_mut(entry) {
                    *left = left.saturating_sub(1);
                    if *left == 0 {
                        outstanding.remove(entry);
                        done.push(entry.clone());
                    }
                }
            }
        }
        for entry in done {
            if let Err(error) = self.spool.remove(&entry) {
                // Applied twice at worst, on the next start: harmless.
                tracing::warn!(%error, "spool entry not removed");
            }
        }
    }
}

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// How long a first key waits for others before the pass.
    pub debounce: Duration,
    /// First wait after a failed pass; doubles up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
}

/// What a worker reports after each pass.
pub type PassReport<'a> = (&'a RepoId, &'a Result<Report, String>);

/// Applies one repository's queue until `stop` turns true and the queue
/// is empty. On stop, what is pending is applied at once (no debounce);
/// a pass that fails then is left in the spool for the next start.
pub async fn run_worker<S: Store>(
    queue: Arc<RepoQueue>,
    store: impl AsyncFn() -> Option<S>,
    config: &crate::config::Config,
    ledger: &Ledger,
    options: &WorkerOptions,
    mut stop: watch::Receiver<bool>,
    report: impl Fn(PassReport<'_>),
) {
    let mut backoff = options.backoff;
    loop {
        let stopping = *stop.borrow();
        if queue.is_idle() {
            if stopping {
                return;
            }
            tokio::select! {
                _ = queue.wake.notified() => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        if !stopping {
            tokio::select! {
                _ = tokio::time::sleep(options.debounce) => {}
                _ = stop.changed() => {}
            }
        }
        let pending = queue.take();
        let result = match store().await {
            Some(store) => pass(&queue.id, &store, config, &pending).await,
            None => Err("the store is not reachable".to_owned()),
        };
        let ok = settle(&queue, ledger, pending, result, &report);
        if ok {
            backoff = options.backoff;
            continue;
        }
        if *stop.borrow() {
            // Draining with a failing store: what is left stays spooled.
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => {}
        }
        backoff = (backoff * 2).min(options.max_backoff);
    }
}

/// A pass's report and the names it could not apply (with the reason),
/// or why it failed as a whole.
type PassResult = Result<(Report, Vec<(String, String)>), String>;

async fn pass<S: Store>(
    id: &RepoId,
    store: &S,
    config: &crate::config::Config,
    pending: &Pending,
) -> PassResult {
    let repo = Repo::new(store, &id.prefix, config);
    let result = if pending.reconcile {
        rebuild(&repo, &()).await
    } else {
        let names: BTreeSet<String> = pending.names.keys().cloned().collect();
        repo.apply(Scope::Names(&names), &()).await
    };
    match result {
        Ok((report, unsure)) => {
            let unsure = unsure
                .into_iter()
                .map(|(name, error)| (name, error.to_string()))
                .collect();
            Ok((report, unsure))
        }
        // A reconcile of a prefix with no package yet: nothing to do, and
        // nothing wrong with the store.
        Err(PassError::NoPackages { .. }) if pending.names.is_empty() => {
            Ok((Report::default(), Vec::new()))
        }
        Err(error) => Err(error.to_string()),
    }
}

/// Releases what a pass applied and queues the rest again. True when
/// everything was applied.
fn settle(
    queue: &RepoQueue,
    ledger: &Ledger,
    mut pending: Pending,
    result: PassResult,
    report: &impl Fn(PassReport<'_>),
) -> bool {
    let (outcome, retry) = match result {
        Ok((done, unsure)) => {
            let mut retry = Pending::default();
            for (name, reason) in &unsure {
                tracing::warn!(repository = %queue.id, name, reason, "key not applied; to be retried");
                if let Some(entries) = pending.names.remove(name) {
                    retry.names.insert(name.clone(), entries);
                }
            }
            for entries in pending.names.values() {
                ledger.applied(entries);
            }
            let outcome = if unsure.is_empty() {
                Ok(done)
            } else {
                let reasons: Vec<String> = unsure.iter().map(|(_, r)| r.clone()).collect();
                Err(reasons.join("; "))
            };
            (outcome, retry)
        }
        Err(reason) => (Err(reason), pending),
    };
    {
        let mut stats = lock(&queue.stats);
        stats.passes += 1;
        match &outcome {
            Ok(done) => {
                stats.published += u64::from(done.published);
                if !done.repository.is_empty() {
                    stats.packages = done.packages;
                    stats.generation = done.generation;
                }
                stats.last_error = None;
            }
            Err(reason) => {
                stats.failed_passes += 1;
                stats.last_error = Some(reason.clone());
            }
        }
    }
    let ok = outcome.is_ok() && retry.is_empty();
    report((&queue.id, &outcome));
    queue.put_back(retry);
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::create::PackageBuilder;
    use crate::serve::spool::Key;
    use crate::store::PutOptions;
    use crate::store::memory::MemoryStore;

    /// A memory store holding `n` packages under `All/`, a ledger, and a
    /// queue holding one spool entry per package.
    async fn queued(n: usize) -> (MemoryStore, tempfile::TempDir, Ledger, Arc<RepoQueue>) {
        let store = MemoryStore::new();
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(Spool::open(dir.path()).unwrap());
        let queue = RepoQueue::new(RepoId {
            bucket: "b".to_owned(),
            prefix: "All/".to_owned(),
        });
        for i in 0..n {
            let name = format!("p{i}-1.0.tgz");
            let body = PackageBuilder::new(&format!("p{i}-1.0")).build().unwrap();
            let key = format!("All/{name}");
            store
                .put(&key, body.into(), PutOptions::default())
                .await
                .unwrap();
            let spooled = Key {
                bucket: "b".to_owned(),
                key,
            };
            let entry = ledger.spool().write(&[spooled]).unwrap();
            ledger.expect(&entry, 1);
            queue.push(&name, &entry);
        }
        (store, dir, ledger, queue)
    }

    fn options() -> WorkerOptions {
        WorkerOptions {
            debounce: Duration::from_millis(100),
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        }
    }

    fn spooled(dir: &tempfile::TempDir) -> usize {
        std::fs::read_dir(dir.path()).unwrap().count()
    }

    #[tokio::test]
    async fn a_burst_is_one_pass_and_leaves_the_spool_once_applied() {
        let (store, dir, ledger, queue) = queued(50).await;
        assert_eq!(spooled(&dir), 50);
        let (stop, stopped) = watch::channel(false);
        let (config, options) = (Config::default(), options());
        let passes = Mutex::new(Vec::new());
        let worker = run_worker(
            queue.clone(),
            async || Some(&store),
            &config,
            &ledger,
            &options,
            stopped,
            |(_, result)| passes.lock().unwrap().push(result.is_ok()),
        );
        let later = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            stop.send(true).unwrap();
        };
        tokio::join!(worker, later);
        assert_eq!(*passes.lock().unwrap(), vec![true]);
        let stats = queue.stats();
        assert_eq!((stats.packages, stats.published, stats.pending), (50, 1, 0));
        assert!(ledger.is_empty());
        assert_eq!(spooled(&dir), 0);
    }

    #[tokio::test]
    async fn what_cannot_be_applied_stays_spooled() {
        let (_store, dir, ledger, queue) = queued(3).await;
        let (stop, stopped) = watch::channel(false);
        let (config, options) = (Config::default(), options());
        let failures = Mutex::new(0);
        let worker = run_worker(
            queue.clone(),
            async || None::<MemoryStore>,
            &config,
            &ledger,
            &options,
            stopped,
            |(_, result)| *failures.lock().unwrap() += usize::from(result.is_err()),
        );
        let later = async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            stop.send(true).unwrap();
        };
        tokio::join!(worker, later);
        // Tried, backed off and tried again; nothing released.
        assert!(*failures.lock().unwrap() >= 2);
        assert_eq!(queue.stats().pending, 3);
        assert_eq!(ledger.len(), 3);
        assert_eq!(spooled(&dir), 3);
    }
}
