//! One repository in an object store, and the pass that brings it up to
//! date: the level-triggered heart of the indexer.
//!
//! A repository is a key prefix up to the last `/`. It keeps its state in
//! `<prefix>.pkgsum/state` and publishes `<prefix>pkg_summary.*`. A pass
//! over some names:
//!
//! 1. reads the state and remembers its ETag;
//! 2. asks the bucket what each name holds now (HEAD), after reading the
//!    state, so nothing older than the state is ever applied;
//! 3. fetches headers of new or changed packages only;
//! 4. commits the state with If-Match (If-None-Match `*` when new); on
//!    412/409 it waits a jittered, growing delay and starts over, a bounded
//!    number of times, reusing headers already fetched for the same ETag;
//! 5. publishes every format from the committed state, each write guarded
//!    by the generation recorded in the object's metadata, so an older
//!    state never replaces a newer one's outputs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::stream::{self, StreamExt};

use crate::compression::Compression;
use crate::error::Error;
use crate::fetch::{FetchError, FetchOptions, fetch_header};
use crate::progress::Progress;
use crate::record::{self, FileInfo};
use crate::state::{self, Change, Failure, Package, State};
use crate::store::{ObjectMeta, Op, PutMode, PutOptions, Store, StoreError};
use crate::summary;

/// Object metadata name carrying the state generation of an output.
pub const GENERATION: &str = "pkgsum-generation";

/// How passes behave.
#[derive(Debug, Clone)]
pub struct Config {
    /// Key suffixes that are packages.
    pub suffixes: Vec<String>,
    /// Summary formats to publish; pkgin's others are removed.
    pub formats: Vec<Compression>,
    pub fetch: FetchOptions,
    /// Commit attempts before giving up on a contended state.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt, with full jitter.
    pub backoff: Duration,
    /// Most packages one repository may hold.
    pub max_records: usize,
    /// Bound on the decoded size of a stored state.
    pub state_limit: u64,
    /// HEADs and header fetches in flight at once.
    pub concurrency: usize,
    /// Whether a pass over a listing that finds no package at all may
    /// publish an empty summary (`PKGSUM_ALLOW_EMPTY`, `--allow-empty`).
    pub allow_empty: bool,
    /// `s3://bucket/prefix/` repositories the scheduled reconcile covers
    /// when its payload names none (`PKGSUM_REPOSITORIES`).
    pub repositories: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            suffixes: vec![".tgz".to_owned()],
            formats: summary::DEFAULT_FORMATS.to_vec(),
            fetch: FetchOptions::default(),
            max_attempts: 10,
            backoff: Duration::from_millis(50),
            max_records: 200_000,
            state_limit: state::DEFAULT_STATE_LIMIT,
            concurrency: 16,
            allow_empty: false,
            repositories: Vec::new(),
        }
    }
}

impl Config {
    /// The configuration from `PKGSUM_*` environment variables: the one
    /// place every entry point (the CLI's commands, the Lambda function)
    /// reads its settings, so all behave the same; command-line flags
    /// override them only when given. `PKGSUM_SUFFIXES` (comma list,
    /// default `.tgz`), `PKGSUM_FORMATS` (`gz,bz2,xz` by default; add
    /// `zst`), `PKGSUM_FETCH_INITIAL` (bytes, 65536),
    /// `PKGSUM_METADATA_LIMIT` (bytes, 64 MiB), `PKGSUM_MAX_ATTEMPTS` (10),
    /// `PKGSUM_MAX_RECORDS` (200000), `PKGSUM_CONCURRENCY` (16),
    /// `PKGSUM_ALLOW_EMPTY` (0), `PKGSUM_REPOSITORIES` (none).
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`Config::from_env`] over any variable lookup (testable).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let bad = |name: &'static str, value: &str, expected: &'static str| ConfigError {
            name,
            value: value.to_owned(),
            expected,
        };
        let number = |name: &'static str| -> Result<Option<u64>, ConfigError> {
            var(name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|_| bad(name, &v, "a number"))
                })
                .transpose()
        };
        if let Some(list) = var("PKGSUM_SUFFIXES").filter(|v| !v.trim().is_empty()) {
            config.suffixes = list
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
        }
        if let Some(list) = var("PKGSUM_FORMATS").filter(|v| !v.trim().is_empty()) {
            config.formats = list
                .split(',')
                .map(|f| match f.trim() {
                    "gz" | "gzip" => Ok(Compression::Gzip),
                    "bz2" | "bzip2" => Ok(Compression::Bzip2),
                    "xz" => Ok(Compression::Xz),
                    "zst" | "zstd" => Ok(Compression::Zstd),
                    _ => Err(bad("PKGSUM_FORMATS", &list, "a list of gz, bz2, xz, zst")),
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(n) = number("PKGSUM_FETCH_INITIAL")? {
            config.fetch.initial = n;
        }
        if let Some(n) = number("PKGSUM_METADATA_LIMIT")? {
            config.fetch.limits.metadata = n;
        }
        if let Some(n) = number("PKGSUM_MAX_ATTEMPTS")? {
            config.max_attempts = n.clamp(1, 100) as u32;
        }
        if let Some(n) = number("PKGSUM_MAX_RECORDS")? {
            config.max_records = n as usize;
        }
        if let Some(n) = number("PKGSUM_CONCURRENCY")? {
            config.concurrency = n.clamp(1, 1024) as usize;
        }
        if let Some(flag) = var("PKGSUM_ALLOW_EMPTY").filter(|v| !v.trim().is_empty()) {
            config.allow_empty = match flag.trim() {
                "1" | "true" | "yes" => true,
                "0" | "false" | "no" => false,
                _ => return Err(bad("PKGSUM_ALLOW_EMPTY", &flag, "1 or 0")),
            };
        }
        if let Some(list) = var("PKGSUM_REPOSITORIES") {
            config.repositories = list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if config.suffixes.is_empty() {
            let value = var("PKGSUM_SUFFIXES").unwrap_or_default();
            return Err(bad("PKGSUM_SUFFIXES", &value, "at least one suffix"));
        }
        Ok(config)
    }
}

/// A `PKGSUM_*` setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value:?}: expected {expected}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// Splits a key into its repository prefix (ending in `/`, or empty) and
/// the file name.
pub fn split_key(key: &str) -> (&str, &str) {
    match key.rfind('/') {
        Some(i) => (&key[..=i], &key[i + 1..]),
        None => ("", key),
    }
}

/// Whether the key is one pkgsum writes: its state and status, and the
/// summaries. Events on these must never start work (no loops).
pub fn is_own_key(key: &str) -> bool {
    let (_, name) = split_key(key);
    key.split('/').any(|part| part == ".pkgsum") || summary::is_own_file(name)
}

impl Config {
    /// Whether an event on `key` concerns a package. Hidden files (`.x.tgz`)
    /// never do: pkgsrc never names a package so, upload tools use such
    /// names for partial files, `pkg_info -X *.tgz` skips them, and pkgin
    /// could not install one (it fetches `PKGNAME.tgz`).
    pub fn wants(&self, key: &str) -> bool {
        let (_, name) = split_key(key);
        !is_own_key(key)
            && !name.starts_with('.')
            && self.suffixes.iter().any(|s| name.ends_with(s.as_str()))
    }
}

pub fn state_key(prefix: &str) -> String {
    format!("{prefix}.pkgsum/state")
}

pub fn status_key(prefix: &str) -> String {
    format!("{prefix}.pkgsum/status.json")
}

pub fn output_key(prefix: &str, format: Compression) -> String {
    format!("{prefix}{}", summary::file_name(format))
}

/// What a pass did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub prefix: String,
    /// The repository as people read it, e.g. `s3://bucket/All/`.
    pub repository: String,
    /// Packages indexed after the pass.
    pub packages: usize,
    /// Names whose headers were read.
    pub read: Vec<String>,
    /// Names dropped because they are gone.
    pub removed: Vec<String>,
    /// Names the state already reflected.
    pub unchanged: usize,
    /// Every package of the repository that is there but cannot be
    /// indexed, with the reason: those found in this pass and those
    /// remembered from earlier ones, so they are reported every time.
    pub failures: Vec<(String, String)>,
    /// What pkg_info would warn about the packages read in this pass.
    pub warnings: Vec<(String, String)>,
    /// Bytes fetched from package headers.
    pub bytes_fetched: u64,
    /// State commits tried (1 when uncontended).
    pub attempts: u32,
    pub generation: u64,
    /// Whether this pass committed a new state.
    pub committed: bool,
    /// Whether this pass wrote summary files.
    pub published: bool,
    /// Set when the pass found the state lost (missing while summaries
    /// were published, or unreadable) and recreated it from a listing.
    pub state_lost: Option<StateLoss>,
    /// The highest generation the published files carried, when the pass
    /// had to move the state's generation past it.
    pub published_generation: Option<u64>,
}

/// How a repository's state was found lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateLoss {
    /// No state, although summaries had been published.
    Missing,
    /// A state that cannot be read, with the reason.
    Unreadable(String),
}

impl std::fmt::Display for StateLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateLoss::Missing => f.write_str("missing"),
            StateLoss::Unreadable(reason) => write!(f, "unreadable ({reason})"),
        }
    }
}

/// Why a pass could not finish. Nothing is lost: the bucket still holds
/// the truth and the next event or reconcile redoes the work.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{object}: still contended after {attempts} attempts (other writers kept winning)")]
    Contended { object: String, attempts: u32 },
    #[error(
        "{repository}: would hold {count} packages, more than the limit of {limit} (PKGSUM_MAX_RECORDS)"
    )]
    TooManyPackages {
        repository: String,
        count: usize,
        limit: usize,
    },
    /// A listing found no package, which is far more often a mistyped
    /// prefix than a repository emptied on purpose.
    #[error("{repository}: {}", crate::error::no_packages_message(*.indexed))]
    NoPackages { repository: String, indexed: usize },
    #[error("{object}: encoding the state: {error}")]
    EncodeState { object: String, error: Error },
    #[error("{repository}: rendering the summary: {error}")]
    Render {
        repository: String,
        error: std::io::Error,
    },
}

/// The state as stored, with the ETag to commit against.
struct Loaded {
    state: State,
    etag: Option<String>,
    /// No usable state: the pass must look at the whole repository.
    fresh: Option<StateLoss>,
}

async fn load_state<S: Store>(store: &S, prefix: &str, limit: u64) -> Result<Loaded, StoreError> {
    let key = state_key(prefix);
    match store.get(&key).await? {
        None => Ok(Loaded {
            state: State::default(),
            etag: None,
            fresh: Some(StateLoss::Missing),
        }),
        Some((body, meta)) => match State::from_bytes(&body, limit) {
            Ok(state) => Ok(Loaded {
                state,
                etag: Some(meta.etag),
                fresh: None,
            }),
            // The state is a cache: an unreadable one is replaced (by a
            // conditional write on its ETag) from a listing.
            Err(error) => Ok(Loaded {
                state: State::default(),
                etag: Some(meta.etag),
                fresh: Some(StateLoss::Unreadable(error.to_string())),
            }),
        },
    }
}

/// The highest generation carried by anything the repository published:
/// every summary variant, the status and the state object itself. A state
/// recreated after a loss must start above it, or the generation guard
/// would refuse every publication until the counter caught up.
async fn published_generation<S: Store>(store: &S, prefix: &str) -> Result<u64, StoreError> {
    let mut keys: Vec<String> = summary::PKGIN_ORDER
        .iter()
        .map(|&format| output_key(prefix, format))
        .collect();
    keys.push(status_key(prefix));
    keys.push(state_key(prefix));
    let mut highest = 0;
    for key in keys {
        if let Some(meta) = store.head(&key).await? {
            highest = highest.max(generation_of(&meta));
        }
    }
    Ok(highest)
}

/// The package file names directly under `prefix`, from a listing.
pub async fn list_packages<S: Store>(
    store: &S,
    prefix: &str,
    config: &Config,
) -> Result<BTreeMap<String, ObjectMeta>, StoreError> {
    Ok(store
        .list(prefix)
        .await?
        .into_iter()
        .filter(|m| config.wants(&m.key))
        .filter_map(|m| {
            let name = m.key[prefix.len()..].to_owned();
            (!name.contains('/')).then_some((name, m))
        })
        .collect())
}

/// What looking at one name found.
enum Seen {
    Gone,
    Current,
    Changed(Change, u64),
    /// The object changed while we read it, or the store failed: the name
    /// is left as the state has it, and the error is reported.
    Unsure(StoreError),
}

type HeaderCache = HashMap<(String, String), (Change, u64)>;

async fn look<S: Store>(
    store: &S,
    prefix: &str,
    name: &str,
    state: &State,
    cache: &tokio::sync::Mutex<HeaderCache>,
    config: &Config,
) -> Seen {
    let key = format!("{prefix}{name}");
    let mut last_error = None;
    // An object replaced or deleted between our HEAD and our ranged GET
    // (412 or 404) is simply looked at again: the bucket moved on.
    for _ in 0..3 {
        let meta = match store.head(&key).await {
            Ok(Some(meta)) => meta,
            Ok(None) => return Seen::Gone,
            Err(err) => return Seen::Unsure(err),
        };
        if state.is_current(name, meta.size, &meta.etag) {
            return Seen::Current;
        }
        let cache_key = (name.to_owned(), meta.etag.clone());
        if let Some((change, bytes)) = cache.lock().await.get(&cache_key) {
            return Seen::Changed(change.clone(), *bytes);
        }
        let (change, bytes) = match fetch_header(store, &meta, &config.fetch).await {
            Ok(fetched) => {
                tracing::info!(
                    key = %meta.key,
                    size = meta.size,
                    fetched = fetched.fetched,
                    requests = fetched.requests,
                    "header read"
                );
                (indexed(name, &meta, &fetched.header), fetched.fetched)
            }
            Err(FetchError::Package(error)) => (failed(name, &meta, &error), 0),
            Err(FetchError::Store(err)) if err.is_precondition() || err.is_not_found() => {
                last_error = Some(err);
                continue;
            }
            Err(FetchError::Store(err)) => return Seen::Unsure(err),
        };
        cache
            .lock()
            .await
            .insert(cache_key, (change.clone(), bytes));
        return Seen::Changed(change, bytes);
    }
    Seen::Unsure(last_error.unwrap_or_else(|| {
        StoreError::other(
            Op::GetRange,
            store.location(&key),
            "kept changing while read",
        )
    }))
}

async fn look_named<S: Store>(
    store: &S,
    prefix: &str,
    name: &str,
    state: &State,
    cache: &tokio::sync::Mutex<HeaderCache>,
    config: &Config,
    progress: &dyn Progress,
) -> (String, Seen) {
    let seen = look(store, prefix, name, state, cache, config).await;
    progress.advance();
    (name.to_owned(), seen)
}

fn indexed(name: &str, meta: &ObjectMeta, header: &crate::header::Header) -> Change {
    let info = FileInfo {
        name: name.as_bytes(),
        size: meta.size,
    };
    for warning in &header.warnings {
        tracing::warn!(key = %meta.key, %warning, "indexed with a warning");
    }
    Change::Indexed {
        name: name.to_owned(),
        package: Package {
            record: record::render(&header.metadata, Some(info)),
            size: meta.size,
            token: meta.etag.clone(),
            warnings: header.warnings.clone(),
        },
    }
}

fn failed(name: &str, meta: &ObjectMeta, error: &Error) -> Change {
    tracing::warn!(key = %meta.key, %error, "package skipped");
    Change::Failed {
        name: name.to_owned(),
        failure: Failure {
            size: meta.size,
            token: meta.etag.clone(),
            error: error.to_string(),
        },
    }
}

/// Which names a pass looks at.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// The names an event gave (and the whole repository if its state
    /// turns out to be lost).
    Names(&'a BTreeSet<String>),
    /// Every package a listing shows and every name the state knows:
    /// `rebuild` and the scheduled reconcile.
    Listing,
}

/// Applies names of the repository at `prefix` to its state and publishes
/// the result. Returns what the pass did, and the names it could not look
/// at because the store failed for them (left as they were, to be retried
/// by whoever asked).
pub async fn apply<S: Store>(
    store: &S,
    prefix: &str,
    names: &BTreeSet<String>,
    config: &Config,
) -> Result<(Report, Vec<(String, StoreError)>), PassError> {
    apply_with_progress(store, prefix, Scope::Names(names), config, &()).await
}

/// [`apply`] over a [`Scope`], advancing `progress` once per name looked at.
pub async fn apply_with_progress<S: Store>(
    store: &S,
    prefix: &str,
    scope: Scope<'_>,
    config: &Config,
    progress: &dyn Progress,
) -> Result<(Report, Vec<(String, StoreError)>), PassError> {
    let cache = tokio::sync::Mutex::new(HeaderCache::new());
    let mut listing: Option<BTreeSet<String>> = None;
    let mut report = Report {
        prefix: prefix.to_owned(),
        repository: store.location(prefix),
        ..Report::default()
    };
    for attempt in 1..=config.max_attempts {
        report.attempts = attempt;
        let loaded = load_state(store, prefix, config.state_limit).await?;
        let whole = matches!(scope, Scope::Listing) || loaded.fresh.is_some();
        let mut names = match scope {
            Scope::Names(names) => names.clone(),
            Scope::Listing => BTreeSet::new(),
        };
        // Published generations matter only where the state may lag them.
        let mut published = 0;
        if whole {
            // Listed after the state was read, and each name is looked at
            // again (HEAD) anyway, so nothing older than the state counts.
            if listing.is_none() {
                listing = Some(
                    list_packages(store, prefix, config)
                        .await?
                        .into_keys()
                        .collect(),
                );
            }
            let listed = listing.as_ref().map_or(0, BTreeSet::len);
            if listed == 0 && matches!(scope, Scope::Listing) && !config.allow_empty {
                return Err(PassError::NoPackages {
                    repository: store.location(prefix),
                    indexed: loaded.state.len(),
                });
            }
            names.extend(listing.iter().flatten().cloned());
            names.extend(loaded.state.names().map(str::to_owned));
            published = published_generation(store, prefix).await?;
        }
        report.state_lost = loaded
            .fresh
            .clone()
            .filter(|loss| published > 0 || *loss != StateLoss::Missing);

        // Futures built in a loop, not in a `map` closure: a closure here
        // makes the pass's future fail rustc's `Send` proof for spawned tasks.
        let mut lookups = Vec::with_capacity(names.len());
        for name in &names {
            lookups.push(look_named(
                store,
                prefix,
                name,
                &loaded.state,
                &cache,
                config,
                progress,
            ));
        }
        progress.begin(names.len() as u64);
        let looked: Vec<(String, Seen)> = stream::iter(lookups)
            .buffer_unordered(config.concurrency.max(1))
            .collect()
            .await;
        progress.end();

        let mut next = loaded.state.clone();
        let mut changes = Vec::new();
        let mut unsure = Vec::new();
        let (mut read, mut removed, mut unchanged, mut bytes) = (Vec::new(), Vec::new(), 0, 0);
        let mut warnings = Vec::new();
        for (name, seen) in looked {
            match seen {
                Seen::Gone => {
                    if next.package(&name).is_some() || next.failure(&name).is_some() {
                        removed.push(name.clone());
                    }
                    changes.push(Change::Removed { name });
                }
                Seen::Current => unchanged += 1,
                Seen::Changed(change, n) => {
                    if let Change::Indexed { package, .. } = &change {
                        warnings.extend(package.warnings.iter().map(|w| (name.clone(), w.clone())));
                    }
                    read.push(name);
                    bytes += n;
                    changes.push(change);
                }
                Seen::Unsure(err) => unsure.push((name, err)),
            }
        }
        let mut changed = next.apply(changes);
        // Outputs ahead of the state (it was lost, or restored from an old
        // copy): move past them, or no publication would ever replace them.
        report.published_generation = None;
        if published > loaded.state.generation() && next.advance_past(published) {
            changed = true;
            report.published_generation = Some(published);
        }
        if next.len() > config.max_records && next.len() > loaded.state.len() {
            return Err(PassError::TooManyPackages {
                repository: store.location(prefix),
                count: next.len(),
                limit: config.max_records,
            });
        }
        read.sort();
        removed.sort();
        (report.read, report.removed, report.unchanged) = (read, removed, unchanged);
        report.warnings = warnings;
        report.bytes_fetched = bytes;
        if changed {
            match commit(store, prefix, &next, loaded.etag.as_deref()).await {
                Ok(()) => report.committed = true,
                Err(PassError::Store(err)) if err.is_precondition() => {
                    tracing::info!(prefix, attempt, "state changed under us; retrying");
                    backoff(config, attempt).await;
                    continue;
                }
                Err(err) => return Err(err),
            }
        }
        if let Some(loss) = &report.state_lost {
            tracing::warn!(
                prefix,
                state = %loss,
                generation = next.generation(),
                "state was lost; recreated from a listing"
            );
        }
        report.failures = next
            .failures()
            .map(|(name, f)| (name.to_owned(), f.error.clone()))
            .collect();
        report.generation = next.generation();
        report.packages = next.len();
        report.published = publish(store, prefix, &next, config).await?;
        return Ok((report, unsure));
    }
    Err(PassError::Contended {
        object: store.location(&state_key(prefix)),
        attempts: config.max_attempts,
    })
}

async fn commit<S: Store>(
    store: &S,
    prefix: &str,
    state: &State,
    etag: Option<&str>,
) -> Result<(), PassError> {
    let key = state_key(prefix);
    let body = state.to_bytes().map_err(|error| PassError::EncodeState {
        object: store.location(&key),
        error,
    })?;
    let mode = match etag {
        Some(etag) => PutMode::Update(etag.to_owned()),
        None => PutMode::Create,
    };
    let options = PutOptions {
        mode,
        content_type: Some("application/octet-stream".to_owned()),
        cache_control: Some("no-cache".to_owned()),
        metadata: BTreeMap::from([(GENERATION.to_owned(), state.generation().to_string())]),
    };
    store.put(&key, Bytes::from(body), options).await?;
    Ok(())
}

/// Full-jitter exponential backoff, capped at 5 s.
async fn backoff(config: &Config, attempt: u32) {
    let cap = config
        .backoff
        .saturating_mul(1 << attempt.min(16))
        .min(Duration::from_secs(5));
    let wait = cap.mul_f64(fastrand::f64());
    tokio::time::sleep(wait).await;
}

fn generation_of(meta: &ObjectMeta) -> u64 {
    meta.metadata
        .get(GENERATION)
        .and_then(|g| g.parse().ok())
        .unwrap_or(0)
}

/// Publishes the summaries of `state` unless outputs that say the same (of
/// its records' generation or later) are there already. Returns whether
/// anything was written.
///
/// Outputs carry the generation of the state they were rendered from.
/// Generations form one line (commits are compare-and-swap), so an output
/// of generation at least `records_generation` holds these very records
/// or newer ones: it is never replaced by this pass.
pub async fn publish<S: Store>(
    store: &S,
    prefix: &str,
    state: &State,
    config: &Config,
) -> Result<bool, PassError> {
    let generation = state.generation();
    let current_from = state.records_generation();
    let mut stale = Vec::new();
    for format in summary::unwritten(&config.formats) {
        let key = output_key(prefix, format);
        if let Some(meta) = store.head(&key).await? {
            stale.push((key, meta));
        }
    }
    let mut behind = Vec::new();
    for &format in &config.formats {
        let key = output_key(prefix, format);
        let current = store.head(&key).await?;
        if current
            .as_ref()
            .is_none_or(|m| generation_of(m) < current_from)
        {
            behind.push(format);
        }
    }
    let mut wrote = false;
    if !behind.is_empty() {
        let summary = state.summary();
        let formats = behind.clone();
        let render_error = |error| PassError::Render {
            repository: store.location(prefix),
            error,
        };
        let rendered = tokio::task::spawn_blocking(move || summary::render(&summary, &formats))
            .await
            .map_err(|e| render_error(std::io::Error::other(e)))?
            .map_err(render_error)?;
        // Least preferred first: by the time the variant pkgin tries first
        // changes, the others already say the same.
        for output in rendered.into_iter().rev() {
            let key = output_key(prefix, output.format);
            let stamp = Stamp {
                generation,
                current_from,
                attempts: config.max_attempts,
            };
            wrote |= put_output(store, &key, output.bytes, output.format, stamp).await?;
        }
    }
    for (key, meta) in stale {
        if generation_of(&meta) <= generation {
            store.delete(&key).await?;
            tracing::info!(%key, "removed a summary variant this configuration does not write");
            wrote = true;
        }
    }
    write_status(store, prefix, state).await?;
    Ok(wrote)
}

/// The generation an output is written with, and the oldest generation
/// whose outputs already hold the same records.
#[derive(Debug, Clone, Copy)]
struct Stamp {
    generation: u64,
    current_from: u64,
    attempts: u32,
}

/// Writes one output unless one holding these records or newer is already
/// there; keeps its Last-Modified strictly after the previous one's, in
/// whole seconds.
async fn put_output<S: Store>(
    store: &S,
    key: &str,
    body: Vec<u8>,
    format: Compression,
    stamp: Stamp,
) -> Result<bool, PassError> {
    let Stamp {
        generation,
        current_from,
        attempts,
    } = stamp;
    let body = Bytes::from(body);
    for _ in 0..attempts {
        let current = store.head(key).await?;
        if current
            .as_ref()
            .is_some_and(|m| generation_of(m) >= current_from)
        {
            return Ok(false);
        }
        let previous = current.as_ref().and_then(|m| m.last_modified);
        wait_for_later_second(previous).await;
        let mode = match &current {
            Some(meta) => PutMode::Update(meta.etag.clone()),
            None => PutMode::Create,
        };
        let options = output_options(mode, format, generation);
        match store.put(key, body.clone(), options).await {
            Ok(_) => {
                ensure_later(store, key, &body, previous, format, generation).await?;
                return Ok(true);
            }
            Err(err) if err.is_precondition() || err.is_not_found() => {
                continue;
            }
            Err(err) => return Err(err.into()),
        }
    }
    Err(PassError::Contended {
        object: store.location(key),
        attempts,
    })
}

/// How a summary file is written: never cached stale by a CDN, typed for
/// browsers and tools, stamped with its state generation.
fn output_options(mode: PutMode, format: Compression, generation: u64) -> PutOptions {
    PutOptions {
        mode,
        content_type: Some(format.content_type().to_owned()),
        cache_control: Some("no-cache".to_owned()),
        metadata: BTreeMap::from([(GENERATION.to_owned(), generation.to_string())]),
    }
}

fn whole_seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Sleeps until the clock is in a later second than `previous`.
async fn wait_for_later_second(previous: Option<SystemTime>) {
    let Some(previous) = previous else { return };
    let target = SystemTime::UNIX_EPOCH + Duration::from_secs(whole_seconds(previous) + 1);
    if let Ok(wait) = target.duration_since(SystemTime::now()) {
        // Bounded: a Last-Modified far in the future (clock trouble) must
        // not stall publishing.
        tokio::time::sleep(wait.min(Duration::from_secs(2)) + Duration::from_millis(20)).await;
    }
}

/// If the store's clock gave the new object the same second as the one it
/// replaced, pkgin would never see it: write it again a second later.
async fn ensure_later<S: Store>(
    store: &S,
    key: &str,
    body: &Bytes,
    previous: Option<SystemTime>,
    format: Compression,
    generation: u64,
) -> Result<(), PassError> {
    let Some(previous) = previous else {
        return Ok(());
    };
    for _ in 0..3 {
        let Some(now) = store.head(key).await? else {
            return Ok(());
        };
        if generation_of(&now) != generation {
            return Ok(());
        }
        let Some(modified) = now.last_modified else {
            return Ok(());
        };
        if whole_seconds(modified) > whole_seconds(previous) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let options = output_options(PutMode::Update(now.etag), format, generation);
        match store.put(key, body.clone(), options).await {
            Ok(_) => {}
            Err(err) if err.is_precondition() => return Ok(()),
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// `<prefix>.pkgsum/status.json`: what is indexed and what is not, for
/// people and monitoring.
async fn write_status<S: Store>(store: &S, prefix: &str, state: &State) -> Result<(), PassError> {
    let key = status_key(prefix);
    if let Some(meta) = store.head(&key).await?
        && generation_of(&meta) >= state.generation()
    {
        return Ok(());
    }
    let failures: Vec<serde_json::Value> = state
        .failures()
        .map(|(name, f)| serde_json::json!({"file": name, "size": f.size, "error": f.error}))
        .collect();
    let warnings: Vec<serde_json::Value> = state
        .packages()
        .flat_map(|(name, p)| {
            p.warnings
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
    };
    let body = serde_json::to_vec_pretty(&status)
        .map_err(|e| StoreError::other(Op::Put, store.location(&key), e))?;
    store.put(&key, Bytes::from(body), options).await?;
    Ok(())
}

/// Loads a repository's state; a missing or unreadable one is empty.
pub async fn read_state<S: Store>(
    store: &S,
    prefix: &str,
    config: &Config,
) -> Result<State, PassError> {
    Ok(load_state(store, prefix, config.state_limit).await?.state)
}

/// A repository's state as `verify` reports it: the state (empty when
/// lost), how it was lost, and the highest published generation.
pub async fn inspect_state<S: Store>(
    store: &S,
    prefix: &str,
    config: &Config,
) -> Result<(State, Option<StateLoss>, u64), PassError> {
    let loaded = load_state(store, prefix, config.state_limit).await?;
    let published = published_generation(store, prefix).await?;
    let loss = loaded
        .fresh
        .filter(|loss| published > 0 || *loss != StateLoss::Missing);
    Ok((loaded.state, loss, published))
}
