//! `pkgsum serve`: the indexer as a long-lived service, for stores with no
//! Lambda (MinIO, Ceph RGW, SeaweedFS): they POST bucket notifications
//! here.
//!
//! A request is authenticated ([`auth`]), bounded (body size, keys),
//! decoded by [`crate::event`] (every shape and key encoding it knows),
//! filtered to the configured repositories, written to the [`spool`] and
//! flushed, and only then answered 200: fast, because an RGW sync topic
//! holds the uploader's PUT until the answer, and durable, because the
//! spool is read back at start. Each repository's [`queue`] applies its
//! keys in passes after a debounce window, one pass at a time.
//!
//! The store of each bucket is opened once, with its conditional writes
//! probed (Ceph RGW's unquoted If-Match is spoken; a store that ignores
//! them is reported loudly, and only this process's single writer keeps
//! it correct). Every configured repository is reconciled from a listing
//! at start and every `reconcile_every`, which repairs notifications that
//! never came. While the store cannot be reached, notifications are still
//! spooled and answered 200 (not every store sends one again), and applied
//! once it answers; `/readyz` says whether it does.
//!
//! The HTTP side runs in a task of its own, through [`crate::http`]
//! (timeouts and a connection limit), so however long a pass computes, the
//! server keeps answering; a pass that panics is a failed pass.

pub mod auth;
pub mod queue;
pub mod spool;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::config::Config;
use crate::excerpt::{Bare, Escaped};
use crate::http::HttpLimits;
use crate::reconcile::{UrlError, parse_s3_url};
use crate::repo::{Report, split_key, state_key};
use crate::store::Store;
use crate::store::s3::S3Store;

use auth::Secret;
use queue::{Ledger, PassFailure, RepoId, RepoQueue, WorkerOptions, run_worker};
use spool::{Key, Spool, SpoolError};

/// How the service runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// `None` only with `--insecure-no-auth`.
    pub secret: Option<Secret>,
    pub spool: PathBuf,
    pub debounce: Duration,
    /// `None`: never (not even at start).
    pub reconcile_every: Option<Duration>,
    /// Largest request body accepted.
    pub max_body: usize,
    /// Most keys one request may name (after decoding).
    pub max_keys: usize,
    /// Most spool entries waiting; more are refused with 503.
    pub max_spooled: usize,
    /// How long SIGTERM waits for the queues to drain.
    pub drain_timeout: Duration,
    /// What HTTP clients may hold: connections, header time.
    pub http: HttpLimits,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            secret: None,
            spool: PathBuf::from("spool"),
            debounce: Duration::from_secs(1),
            reconcile_every: Some(Duration::from_secs(3600)),
            max_body: 1 << 20,
            max_keys: 1000,
            max_spooled: 100_000,
            drain_timeout: Duration::from_secs(60),
            http: HttpLimits::default(),
        }
    }
}

/// Why the service could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "no repositories to serve: give them in PKGSUM_REPOSITORIES or --repository (s3://BUCKET/PREFIX/)"
    )]
    NoRepositories,
    #[error(transparent)]
    BadRepository(#[from] UrlError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("serving HTTP: {0}")]
    Http(#[source] std::io::Error),
}

/// The stores of the configured buckets, opened (and probed) on first
/// use, and whether they answer.
struct Buckets {
    /// Each bucket's store, opened (and probed) once.
    stores: crate::store::open::Buckets,
    /// Bucket -> the prefix its probe writes under.
    probe_prefix: BTreeMap<String, String>,
    ready: AtomicBool,
    /// Why the store is not ready, as the last check found.
    why_not: std::sync::Mutex<Option<String>>,
    /// Turns true when a check finds the store answering again: workers
    /// backing off retry at once.
    recovered: watch::Sender<bool>,
    /// Asks the health loop to check the store now.
    recheck: Notify,
}

impl Buckets {
    async fn store(&self, bucket: &str) -> Option<S3Store> {
        let prefix = self.probe_prefix.get(bucket)?;
        let first = !self.stores.is_open(bucket).await;
        match self.stores.writer(bucket, prefix).await {
            Ok(opened) => {
                match opened.found {
                    Some(found) if !found.honoured() => {
                        tracing::error!(bucket, "{found}; run one `pkgsum serve` only")
                    }
                    Some(found) => tracing::info!(bucket, "{found}"),
                    None if first => {
                        tracing::info!(bucket, "AWS S3: conditional writes honoured")
                    }
                    None => {}
                }
                Some(opened.store)
            }
            Err(error) => {
                // The health loop says when the store goes and comes back.
                tracing::debug!(bucket, %error, "store not reachable");
                self.ready.store(false, Ordering::Relaxed);
                None
            }
        }
    }

    /// Whether every bucket answers: opened (probed), and a HEAD of its
    /// first repository's state answers (found or not).
    async fn check(&self) -> Result<(), String> {
        let result = self.check_all().await;
        let was = self.ready.swap(result.is_ok(), Ordering::Relaxed);
        *self.why_not.lock().unwrap_or_else(|e| e.into_inner()) = result.clone().err();
        if result.is_ok() && !was {
            self.recovered.send_replace(true);
        }
        result
    }

    async fn check_all(&self) -> Result<(), String> {
        for (bucket, prefix) in &self.probe_prefix {
            let store = self
                .store(bucket)
                .await
                .ok_or_else(|| format!("s3://{bucket}/: not reachable"))?;
            store
                .head(&state_key(prefix))
                .await
                .map_err(|error| error.to_string())?;
        }
        Ok(())
    }
}

/// What the HTTP handlers share.
struct App {
    options: Options,
    config: Arc<Config>,
    queues: BTreeMap<RepoId, Arc<RepoQueue>>,
    ledger: Arc<Ledger>,
    buckets: Arc<Buckets>,
    stopping: watch::Receiver<bool>,
    /// Notifications spooled since start.
    accepted: AtomicU64,
}

/// Runs the service on `listener` until `shutdown` resolves, then drains
/// the queues (for at most `options.drain_timeout`; what is left stays in
/// the spool for the next start).
pub async fn serve(
    listener: TcpListener,
    client: aws_sdk_s3::Client,
    config: Config,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let queues = repositories(&config)?;
    if queues.is_empty() {
        return Err(ServeError::NoRepositories);
    }
    let mut probe_prefix = BTreeMap::new();
    for id in queues.keys() {
        probe_prefix
            .entry(id.bucket.clone())
            .or_insert_with(|| id.prefix.clone());
    }
    let buckets = Arc::new(Buckets {
        stores: crate::store::open::Buckets::new(client),
        probe_prefix,
        ready: AtomicBool::new(false),
        why_not: std::sync::Mutex::new(None),
        recovered: watch::channel(false).0,
        recheck: Notify::new(),
    });
    let ledger = Arc::new(Ledger::new(Spool::open(&options.spool)?));
    replay(&ledger, &queues, &config)?;
    if let Err(reason) = buckets.check().await {
        tracing::warn!(%reason, "store not ready; notifications are spooled until it is");
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let config = Arc::new(config);
    let app = Arc::new(App {
        options: options.clone(),
        config: config.clone(),
        queues: queues.clone(),
        ledger: ledger.clone(),
        buckets: buckets.clone(),
        stopping: stop_rx.clone(),
        accepted: AtomicU64::new(0),
    });
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .fallback(notification)
        .with_state(app);

    // The server in a task of its own: a pass computing on this one can
    // never hold up an answer.
    let limits = options.http;
    let server = tokio::spawn(async move {
        crate::http::serve(listener, router, limits, shutdown).await;
        tracing::info!("stopped accepting; draining the queues");
        let _ = stop_tx.send(true);
    });
    let worker_options = WorkerOptions {
        debounce: options.debounce,
        backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(60),
        key_backoff: Duration::from_secs(1),
    };
    let workers = queues.values().map(|queue| {
        let buckets = &buckets;
        let bucket = queue.id.bucket.clone();
        run_worker(
            queue.clone(),
            async move || buckets.store(&bucket).await,
            &config,
            &ledger,
            &worker_options,
            stop_rx.clone(),
            buckets.recovered.subscribe(),
            |(id, result)| report_pass(id, result, buckets),
        )
    });
    let drain = async {
        tokio::select! {
            _ = futures::future::join_all(workers) => {}
            _ = deadline(stop_rx.clone(), options.drain_timeout) => {
                tracing::warn!(
                    entries = ledger.len(),
                    "drain timed out; what is left stays in the spool for the next start"
                );
            }
        }
    };
    let background = async {
        tokio::select! {
            _ = health_loop(&buckets) => {}
            _ = reconcile_loop(&queues, options.reconcile_every) => {}
            _ = stopped(stop_rx.clone()) => {}
        }
    };
    let (served, (), ()) = tokio::join!(server, drain, background);
    served.map_err(|e| ServeError::Http(std::io::Error::other(e)))
}

/// Every configured repository, with its queue.
fn repositories(config: &Config) -> Result<BTreeMap<RepoId, Arc<RepoQueue>>, UrlError> {
    let mut queues = BTreeMap::new();
    for url in &config.repositories {
        let (bucket, prefix) = parse_s3_url(url)?;
        let id = RepoId { bucket, prefix };
        queues.insert(id.clone(), RepoQueue::new(id));
    }
    Ok(queues)
}

/// Queues what earlier runs spooled and never applied.
fn replay(
    ledger: &Ledger,
    queues: &BTreeMap<RepoId, Arc<RepoQueue>>,
    config: &Config,
) -> Result<(), SpoolError> {
    let (entries, bad) = ledger.spool().replay()?;
    for error in bad {
        tracing::error!(%error, "spool entry set aside");
    }
    let mut keys = 0;
    for (entry, spooled) in &entries {
        let targets: Vec<Routed> = spooled
            .iter()
            .filter_map(|key| route(queues, config, key).ok())
            .collect();
        if targets.is_empty() {
            // Nothing this configuration serves: done with it.
            ledger.spool().remove(entry)?;
            continue;
        }
        enqueue(ledger, entry, &targets);
        keys += targets.len();
    }
    if !entries.is_empty() {
        tracing::info!(entries = entries.len(), keys, "spool replayed");
    }
    Ok(())
}

/// A key's repository queue, its name there, and who changed it.
type Routed<'a> = (&'a Arc<RepoQueue>, &'a str, Option<&'a str>);

/// Queues the names of a spooled entry, each in its repository's queue;
/// the entry leaves the spool once all are applied.
fn enqueue(ledger: &Ledger, entry: &str, targets: &[Routed]) {
    ledger.expect(entry, targets.len());
    for (queue, name, who) in targets {
        queue.push(name, entry, *who);
    }
}

/// The queue of the repository `key` belongs to and its name there, or
/// why it is not one of ours.
fn route<'a>(
    queues: &'a BTreeMap<RepoId, Arc<RepoQueue>>,
    config: &Config,
    key: &'a Key,
) -> Result<Routed<'a>, String> {
    if !config.wants(&key.key) {
        return Err(format!("{}: not a package key", Escaped(&key.key)));
    }
    let (prefix, name) = split_key(&key.key);
    let id = RepoId {
        bucket: key.bucket.clone(),
        prefix: prefix.to_owned(),
    };
    match queues.get(&id) {
        Some(queue) => Ok((queue, name, key.who.as_deref())),
        None => Err(format!("{id}{}: not in a served repository", Escaped(name))),
    }
}

/// Logs a pass; a failed one asks for a store check (the 503s).
fn report_pass(id: &RepoId, result: &Result<Report, PassFailure>, buckets: &Buckets) {
    match result {
        Ok(report) if report.repository.is_empty() => {
            tracing::info!(repository = %id, "reconciled: no packages yet")
        }
        Ok(report) => {
            tracing::info!(repository = %id, "{}", report.summary());
            // The store answered: if it was thought down, check now.
            if !buckets.ready.load(Ordering::Relaxed) {
                buckets.recheck.notify_one();
            }
        }
        Err(reason) => {
            tracing::warn!(repository = %id, %reason, "pass failed; retrying");
            buckets.recheck.notify_one();
        }
    }
}

/// Checks the store every 2 s while it is not ready, every 30 s while it
/// is, and at once when a pass failed.
async fn health_loop(buckets: &Buckets) {
    loop {
        let ready = buckets.ready.load(Ordering::Relaxed);
        let period = Duration::from_secs(if ready { 30 } else { 2 });
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = buckets.recheck.notified() => {}
        }
        match buckets.check().await {
            Ok(()) if !ready => tracing::info!("store reachable; applying what was spooled"),
            Err(reason) if ready => {
                tracing::warn!(%reason, "store not reachable; notifications are spooled meanwhile")
            }
            _ => {}
        }
    }
}

/// Asks every repository for a pass over its listing now and every
/// `every`.
async fn reconcile_loop(queues: &BTreeMap<RepoId, Arc<RepoQueue>>, every: Option<Duration>) {
    let Some(every) = every else {
        return std::future::pending().await;
    };
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        for queue in queues.values() {
            queue.request_reconcile();
        }
    }
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

async fn deadline(stop: watch::Receiver<bool>, after: Duration) {
    stopped(stop).await;
    tokio::time::sleep(after).await;
}

fn answer(status: StatusCode, body: Value) -> Response {
    let mut text = body.to_string();
    text.push('\n');
    (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
}

/// Why a request is refused: each maps to its status, and is answered as
/// `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("POST notifications here")]
    NotPost,
    #[error("missing or wrong secret")]
    Unauthorized,
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the body is larger than {0} bytes (or was cut short)")]
    TooLargeOrCut(usize),
    #[error("the body did not arrive within {} s", BODY_TIME.as_secs())]
    Late,
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("not a notification pkgsum knows (S3, MinIO, SNS, EventBridge or SeaweedFS filer)")]
    Unknown,
    #[error("{keys} keys in one request, more than {most}")]
    TooManyKeys { keys: usize, most: usize },
    #[error("shutting down")]
    ShuttingDown,
    #[error("too many notifications waiting; send it again later")]
    Full,
    #[error("could not spool it")]
    NotSpooled,
    #[error("spooling failed")]
    SpoolFailed,
    #[error("{0}")]
    NotReady(String),
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Refusal::NotPost => StatusCode::METHOD_NOT_ALLOWED,
            Refusal::Unauthorized => StatusCode::UNAUTHORIZED,
            Refusal::TooLarge(_) | Refusal::TooLargeOrCut(_) | Refusal::TooManyKeys { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Refusal::Late => StatusCode::REQUEST_TIMEOUT,
            Refusal::NotJson(_) | Refusal::Unknown => StatusCode::BAD_REQUEST,
            Refusal::ShuttingDown | Refusal::Full | Refusal::NotSpooled | Refusal::NotReady(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Refusal::SpoolFailed => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = answer(self.status(), json!({ "error": self.to_string() }));
        if matches!(self, Refusal::Unauthorized) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer, Basic realm=\"pkgsum\""),
            );
        }
        response
    }
}

/// Whether the store answers, as the health loop last found (every 2 s
/// while it does not, every 30 s while it does): an unauthenticated
/// request never makes one of its own.
async fn readyz(State(app): State<Arc<App>>) -> Result<Response, Refusal> {
    if app.buckets.ready.load(Ordering::Relaxed) {
        return Ok(answer(StatusCode::OK, json!({ "ready": true })));
    }
    let why = app.buckets.why_not.lock().map(|w| w.clone()).ok().flatten();
    let why = why.unwrap_or_else(|| "the store has not answered yet".to_owned());
    Err(Refusal::NotReady(why))
}

/// Whether the request carries the secret (when there is one).
fn admit(app: &App, request: &Request) -> Result<(), Refusal> {
    match &app.options.secret {
        Some(secret) if !secret.admits(request.headers(), request.uri().path()) => {
            Err(Refusal::Unauthorized)
        }
        _ => Ok(()),
    }
}

async fn status(State(app): State<Arc<App>>, request: Request) -> Result<Response, Refusal> {
    admit(&app, &request)?;
    let repositories: BTreeMap<String, _> = app
        .queues
        .values()
        .map(|queue| (queue.id.to_string(), queue.stats()))
        .collect();
    Ok(answer(
        StatusCode::OK,
        json!({
            "ready": app.buckets.ready.load(Ordering::Relaxed),
            "spooled": app.ledger.len(),
            "accepted": app.accepted.load(Ordering::Relaxed),
            "repositories": repositories,
        }),
    ))
}

/// Most lines one notification writes to the log, and most reasons its
/// answer lists: the rest are counted.
const LOGGED: usize = 10;

/// How long a notification's body may take to arrive (a client that
/// trickles it holds a connection, no more).
const BODY_TIME: Duration = Duration::from_secs(30);

/// `POST` on any other path: a notification.
async fn notification(State(app): State<Arc<App>>, request: Request) -> Result<Response, Refusal> {
    if request.method() != Method::POST {
        return Err(Refusal::NotPost);
    }
    if let Err(refused) = admit(&app, &request) {
        tracing::info!("notification refused: missing or wrong secret");
        return Err(refused);
    }
    let limit = app.options.max_body;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Refusal::TooLarge(limit));
    }
    let reading = axum::body::to_bytes(request.into_body(), limit);
    let body = match tokio::time::timeout(BODY_TIME, reading).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => return Err(Refusal::TooLargeOrCut(limit)),
        Err(_) => return Err(Refusal::Late),
    };
    accept(&app, &body).await
}

/// Decodes, bounds, spools and queues a notification body.
async fn accept(app: &App, body: &[u8]) -> Result<Response, Refusal> {
    let value: Value =
        serde_json::from_slice(body).map_err(|error| Refusal::NotJson(error.to_string()))?;
    let messages = crate::event::decode(&value);
    let mut ignored: Vec<String> = messages.iter().flat_map(|m| m.ignored.clone()).collect();
    let keys: BTreeSet<Key> = messages
        .iter()
        .flat_map(|m| &m.targets)
        .map(|t| Key {
            bucket: t.bucket.clone(),
            key: t.key.clone(),
            who: t.who.clone(),
        })
        .collect();
    if keys.is_empty() && ignored.iter().all(|i| i == crate::event::UNRECOGNIZED) {
        return Err(Refusal::Unknown);
    }
    if keys.len() > app.options.max_keys {
        return Err(Refusal::TooManyKeys {
            keys: keys.len(),
            most: app.options.max_keys,
        });
    }
    let mut ours = Vec::new();
    let mut targets = Vec::new();
    for key in &keys {
        match route(&app.queues, &app.config, key) {
            Ok(target) => {
                ours.push(key.clone());
                targets.push(target);
            }
            Err(reason) => ignored.push(reason),
        }
    }
    // One request logs a few lines, however much it holds.
    for reason in ignored.iter().take(LOGGED) {
        tracing::info!(reason = %Bare(reason), "ignored");
    }
    if ignored.len() > LOGGED {
        tracing::info!(more = ignored.len() - LOGGED, "more parts ignored");
    }
    let ignored_more = ignored.len().saturating_sub(LOGGED);
    ignored.truncate(LOGGED);
    if ours.is_empty() {
        return Ok(answer(
            StatusCode::OK,
            json!({ "queued": 0, "ignored": ignored, "ignored_more": ignored_more }),
        ));
    }
    if *app.stopping.borrow() {
        return Err(Refusal::ShuttingDown);
    }
    if app.ledger.len() >= app.options.max_spooled {
        return Err(Refusal::Full);
    }
    let entry = spool_keys(app.ledger.clone(), ours.clone()).await?;
    tracing::info!(keys = ours.len(), %entry, "notification spooled");
    app.accepted.fetch_add(1, Ordering::Relaxed);
    enqueue(&app.ledger, &entry, &targets);
    Ok(answer(
        StatusCode::OK,
        json!({ "queued": ours.len(), "ignored": ignored, "ignored_more": ignored_more }),
    ))
}

/// Writes the keys to the spool off the async threads (it waits for the
/// disk).
async fn spool_keys(ledger: Arc<Ledger>, keys: Vec<Key>) -> Result<String, Refusal> {
    let written = tokio::task::spawn_blocking(move || ledger.spool().write(&keys)).await;
    match written {
        Ok(Ok(entry)) => Ok(entry),
        Ok(Err(error)) => {
            tracing::error!(%error, "notification not spooled");
            Err(Refusal::NotSpooled)
        }
        Err(_) => Err(Refusal::SpoolFailed),
    }
}
