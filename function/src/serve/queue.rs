//! One writer per repository: keys wait here, per repository, and a
//! worker applies them in passes after a debounce window, so a burst of
//! uploads costs a few passes and no two passes of this process race on
//! one repository (which is all that keeps a store that ignores
//! conditional writes correct).
//!
//! The ledger ties keys to the spool entries that named them: an entry is
//! removed from the spool once every key in it has been applied. A key
//! that could not be applied goes back to wait, with its entries, and is
//! tried again after a backoff of its own (the other keys do not wait for
//! it); after [`KEY_ATTEMPTS`] tries it is given up, its entries released
//! and the failure logged and counted: the next reconcile looks at it
//! again. A pass that fails as a whole (the store is down) backs the
//! whole queue off, and counts against no key.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::FutureExt;

use tokio::sync::{Notify, watch};

use crate::changelog::add_who;
use crate::reconcile::rebuild;
use crate::repo::{Applied, PassError, Repo, Report, Scope, Unsure};
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

/// Tries of one key before it is given up (its spool entries released; the
/// next reconcile looks at it again).
pub const KEY_ATTEMPTS: u32 = 5;

/// A name waiting, the spool entries waiting for it, and its failed tries.
#[derive(Debug, Default)]
struct Waiting {
    entries: Vec<String>,
    /// Who the notifications say changed it (at most [`crate::changelog::WHO`]).
    who: Vec<String>,
    attempts: u32,
    /// Not to be tried again before this, after a failed try.
    not_before: Option<Instant>,
}

/// What waits for one repository's next pass.
#[derive(Debug, Default)]
struct Pending {
    names: BTreeMap<String, Waiting>,
    /// A pass over the whole listing is due.
    reconcile: bool,
}

impl Pending {
    /// Whether nothing is due by `now`.
    fn is_idle(&self, now: Instant) -> bool {
        !self.reconcile && !self.names.values().any(|w| w.is_due(now))
    }

    /// When the first of the waiting names falls due, if one waits.
    fn next_due(&self) -> Option<Instant> {
        self.names.values().filter_map(|w| w.not_before).min()
    }

    fn merge(&mut self, other: Pending) {
        for (name, waiting) in other.names {
            let mine = self.names.entry(name).or_default();
            mine.entries.extend(waiting.entries);
            add_who(&mut mine.who, waiting.who.iter().map(String::as_str));
            mine.attempts = mine.attempts.max(waiting.attempts);
            mine.not_before = mine.not_before.max(waiting.not_before);
        }
        self.reconcile |= other.reconcile;
    }

    /// What is due by `now`, taken out.
    fn take_due(&mut self, now: Instant) -> Pending {
        let (due, later) = std::mem::take(&mut self.names)
            .into_iter()
            .partition(|(_, w)| w.is_due(now));
        self.names = later;
        Pending {
            names: due,
            reconcile: std::mem::take(&mut self.reconcile),
        }
    }
}

impl Waiting {
    fn is_due(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|at| at <= now)
    }
}

/// Counters of one repository, for `GET /status` and the logs.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RepoStats {
    pub passes: u64,
    /// Passes that wrote the summary files.
    pub published: u64,
    pub failed_passes: u64,
    /// Keys given up after [`KEY_ATTEMPTS`] failed tries.
    pub keys_given_up: u64,
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
    pub fn push(&self, name: &str, entry: &str, who: Option<&str>) {
        let mut pending = lock(&self.pending);
        let waiting = pending.names.entry(name.to_owned()).or_default();
        waiting.entries.push(entry.to_owned());
        add_who(&mut waiting.who, who);
        drop(pending);
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
        lock(&self.pending).take_due(Instant::now())
    }

    fn put_back(&self, pending: Pending) {
        lock(&self.pending).merge(pending);
    }

    fn is_idle(&self) -> bool {
        lock(&self.pending).is_idle(Instant::now())
    }

    fn next_due(&self) -> Option<Instant> {
        lock(&self.pending).next_due()
    }

    fn is_empty(&self) -> bool {
        let pending = lock(&self.pending);
        pending.names.is_empty() && !pending.reconcile
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
    /// First wait before a key that failed is tried again; doubles with
    /// each of its tries.
    pub key_backoff: Duration,
}

/// What a worker reports after each pass.
pub type PassReport<'a> = (&'a RepoId, &'a Result<Report, PassFailure>);

/// Why a pass of a repository's queue failed as a whole (its keys are
/// tried again with the queue's backoff).
#[derive(Debug, thiserror::Error)]
pub enum PassFailure {
    #[error("the store is not reachable")]
    Unreachable,
    #[error(transparent)]
    Pass(#[from] PassError),
    /// A bug, or input no check foresaw: what it said, escaped.
    #[error("the pass panicked: {0}")]
    Panicked(String),
}

/// Applies one repository's queue until `stop` turns true and the queue
/// is empty. On stop, what is pending is applied at once (no debounce);
/// a pass that fails then is left in the spool for the next start.
/// `recovered` ends a backoff early: the store answers again.
#[allow(clippy::too_many_arguments)]
pub async fn run_worker<S: Store>(
    queue: Arc<RepoQueue>,
    store: impl AsyncFn() -> Option<S>,
    config: &crate::config::Config,
    ledger: &Ledger,
    options: &WorkerOptions,
    mut stop: watch::Receiver<bool>,
    mut recovered: watch::Receiver<bool>,
    report: impl Fn(PassReport<'_>),
) {
    let mut backoff = options.backoff;
    loop {
        let stopping = *stop.borrow();
        if queue.is_idle() {
            if stopping && queue.is_empty() {
                return;
            }
            // Keys that failed wait for their own time; on stop, for
            // nobody.
            let due = queue.next_due().filter(|_| !stopping);
            let wait_due = async {
                match due {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None if stopping => {}
                    None => std::future::pending().await,
                }
            };
            if stopping {
                // Draining: what waits for a later try is tried now.
                lock(&queue.pending)
                    .names
                    .values_mut()
                    .for_each(|w| w.not_before = None);
                continue;
            }
            tokio::select! {
                _ = queue.wake.notified() => {}
                _ = stop.changed() => {}
                _ = wait_due => {}
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
            Some(store) => caught(pass(&queue.id, &store, config, &pending)).await,
            None => Err(PassFailure::Unreachable),
        };
        let ok = settle(&queue, ledger, pending, result, options, &report);
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
            _ = recovered.changed() => {}
        }
        backoff = (backoff * 2).min(options.max_backoff);
    }
}

/// A pass, with a panic inside it (a bug, or input no check foresaw) made
/// a failed pass: logged and retried with the queue's backoff, instead of
/// ending the worker and, with it, the repository's indexing.
async fn caught(pass: impl Future<Output = PassResult>) -> PassResult {
    match std::panic::AssertUnwindSafe(pass).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            let what = crate::excerpt::Bare(&what).to_string();
            tracing::error!(panic = %what, "the pass panicked");
            Err(PassFailure::Panicked(what))
        }
    }
}

/// A pass's report and the names it could not apply, or why it failed as
/// a whole.
type PassResult = Result<Applied, PassFailure>;

async fn pass<S: Store>(
    id: &RepoId,
    store: &S,
    config: &crate::config::Config,
    pending: &Pending,
) -> PassResult {
    let mut who = Vec::new();
    for waiting in pending.names.values() {
        add_who(&mut who, waiting.who.iter().map(String::as_str));
    }
    let repo = Repo::new(store, &id.prefix, config).by(&who);
    let result = if pending.reconcile {
        rebuild(&repo, &()).await
    } else {
        let names: BTreeSet<String> = pending.names.keys().cloned().collect();
        repo.apply(Scope::Names(&names), &()).await
    };
    match result {
        Ok(applied) => Ok(applied),
        // A reconcile of a prefix with no package yet: nothing to do, and
        // nothing wrong with the store.
        Err(PassError::NoPackages { .. }) if pending.names.is_empty() => Ok(Applied {
            report: Report::default(),
            unsure: Vec::new(),
        }),
        Err(error) => Err(error.into()),
    }
}

/// Releases what a pass applied and queues the rest again: a key that
/// failed waits for its own backoff, and is given up (its entries
/// released) after [`KEY_ATTEMPTS`] tries. True when the pass itself
/// worked: a failing key does not hold the others back.
fn settle(
    queue: &RepoQueue,
    ledger: &Ledger,
    mut pending: Pending,
    result: PassResult,
    options: &WorkerOptions,
    report: &impl Fn(PassReport<'_>),
) -> bool {
    let (outcome, retry, given_up) = match result {
        Ok(Applied {
            report: done,
            unsure,
        }) => {
            let backoff = options.key_backoff;
            let (retry, given_up) = retry_keys(queue, ledger, &mut pending, &unsure, backoff);
            for waiting in pending.names.values() {
                ledger.applied(&waiting.entries);
            }
            (Ok(done), retry, given_up)
        }
        Err(reason) => (Err(reason), pending, 0),
    };
    {
        let mut stats = lock(&queue.stats);
        stats.passes += 1;
        stats.keys_given_up += given_up;
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
                stats.last_error = Some(reason.to_string());
            }
        }
    }
    let ok = outcome.is_ok();
    report((&queue.id, &outcome));
    queue.put_back(retry);
    ok
}

/// The keys a pass could not apply, out of `pending`: those to try again
/// later (each after its own growing wait), and how many were given up.
fn retry_keys(
    queue: &RepoQueue,
    ledger: &Ledger,
    pending: &mut Pending,
    unsure: &[Unsure],
    backoff: Duration,
) -> (Pending, u64) {
    let mut retry = Pending::default();
    let mut given_up = 0;
    for Unsure {
        name,
        error: reason,
    } in unsure
    {
        let Some(mut waiting) = pending.names.remove(name) else {
            tracing::warn!(repository = %queue.id, name = %crate::excerpt::Bare(name), %reason, "key not applied");
            continue;
        };
        waiting.attempts += 1;
        if waiting.attempts >= KEY_ATTEMPTS {
            tracing::error!(
                repository = %queue.id,
                name = %crate::excerpt::Bare(name),
                %reason,
                attempts = waiting.attempts,
                "key given up; the next reconcile looks at it again"
            );
            ledger.applied(&waiting.entries);
            given_up += 1;
            continue;
        }
        let wait = backoff.saturating_mul(1 << (waiting.attempts - 1).min(6));
        tracing::warn!(
            repository = %queue.id,
            name = %crate::excerpt::Bare(name),
            %reason,
            attempts = waiting.attempts,
            retry_in_ms = wait.as_millis() as u64,
            "key not applied; to be retried"
        );
        waiting.not_before = Some(Instant::now() + wait);
        retry.names.insert(name.clone(), waiting);
    }
    (retry, given_up)
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
                who: None,
            };
            let entry = ledger.spool().write(&[spooled]).unwrap();
            ledger.expect(&entry, 1);
            queue.push(&name, &entry, None);
        }
        (store, dir, ledger, queue)
    }

    fn options() -> WorkerOptions {
        WorkerOptions {
            debounce: Duration::from_millis(100),
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            key_backoff: Duration::from_millis(10),
        }
    }

    fn spooled(dir: &tempfile::TempDir) -> usize {
        std::fs::read_dir(dir.path()).unwrap().count()
    }

    /// Runs a worker over `queue` with `store` for `for_ms`, then stops it;
    /// returns whether each pass worked.
    async fn drive<S: Store + Clone>(
        queue: &Arc<RepoQueue>,
        store: Option<S>,
        ledger: &Ledger,
        for_ms: u64,
    ) -> Vec<bool> {
        let (stop, stopped) = watch::channel(false);
        let (config, options) = (Config::default(), options());
        let passes = Mutex::new(Vec::new());
        let worker = run_worker(
            queue.clone(),
            async || store.clone(),
            &config,
            ledger,
            &options,
            stopped,
            watch::channel(false).1,
            |(_, result): PassReport<'_>| passes.lock().unwrap().push(result.is_ok()),
        );
        let later = async {
            tokio::time::sleep(Duration::from_millis(for_ms)).await;
            stop.send(true).unwrap();
        };
        tokio::join!(worker, later);
        passes.into_inner().unwrap()
    }

    #[tokio::test]
    async fn a_burst_is_one_pass_and_leaves_the_spool_once_applied() {
        let (store, dir, ledger, queue) = queued(50).await;
        assert_eq!(spooled(&dir), 50);
        let passes = drive(&queue, Some(&store), &ledger, 500).await;
        assert_eq!(passes, vec![true]);
        let stats = queue.stats();
        assert_eq!((stats.packages, stats.published, stats.pending), (50, 1, 0));
        assert!(ledger.is_empty());
        assert_eq!(spooled(&dir), 0);
    }

    #[tokio::test]
    async fn what_cannot_be_applied_stays_spooled() {
        let (_store, dir, ledger, queue) = queued(3).await;
        let passes = drive(&queue, None::<&MemoryStore>, &ledger, 400).await;
        // Tried, backed off and tried again; nothing released.
        assert!(passes.iter().filter(|ok| !**ok).count() >= 2);
        assert_eq!(queue.stats().pending, 3);
        assert_eq!(ledger.len(), 3);
        assert_eq!(spooled(&dir), 3);
    }

    #[tokio::test]
    async fn a_failing_key_waits_on_its_own_and_is_given_up() {
        // M4: a key that fails with anything but 404 made every pass fail
        // and back off, so every upload waited, for ever.
        use crate::store::ErrorKind;
        use crate::store::faulty::{Fault, Faulty, Op};
        let (store, dir, ledger, queue) = queued(3).await;
        let store = Faulty::new(store);
        store.inject(Fault {
            op: Op::GetRange,
            key_contains: "p1-1.0".to_owned(),
            skip: 0,
            times: u32::MAX,
            kind: ErrorKind::Other("HTTP 500".to_owned()),
        });
        let passes = drive(&queue, Some(&store), &ledger, 1500).await;
        // Every pass worked; the others were published at the first.
        assert!(passes.iter().all(|ok| *ok), "{passes:?}");
        let stats = queue.stats();
        assert_eq!(
            (stats.packages, stats.keys_given_up, stats.pending),
            (2, 1, 0)
        );
        assert_eq!(passes.len() as u32, KEY_ATTEMPTS);
        assert!(ledger.is_empty());
        assert_eq!(spooled(&dir), 0);
    }

    #[tokio::test]
    async fn a_pass_that_panics_is_a_failed_pass() {
        let result = caught(async { panic!("a forged layout\nINFO fake line") }).await;
        assert_eq!(
            result.unwrap_err().to_string(),
            "the pass panicked: a forged layout\\nINFO fake line"
        );
    }
}
