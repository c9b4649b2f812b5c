//! `pkgsum serve`: the webhook receiver for stores with no Lambda.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use pkgsum::config::Config;
use pkgsum::serve::Options;
use pkgsum::serve::auth::Secret;
use pkgsum::settings::AUTH_TOKEN;
use pkgsum::verdict::Verdict;

use super::args::HttpArgs;

pub const ABOUT: &str = "Receive bucket notifications over HTTP and keep the repositories of \
    PKGSUM_REPOSITORIES (or --repository) indexed, for stores with no Lambda: MinIO webhooks, \
    Ceph RGW topics, SeaweedFS filer webhooks, SNS HTTP subscriptions. POST a notification to \
    any path; the secret goes in `Authorization: Bearer`, as the password of HTTP Basic, or as \
    the path /hook/SECRET. A notification is answered 200 once its keys are spooled on disk; \
    each repository applies them after the debounce window, one pass at a time, and is \
    reconciled from a listing at start and every --reconcile-every. GET /healthz (alive), \
    /readyz (store reachable), /status (counters, with the secret). SIGTERM drains the queues \
    before exit.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on, e.g. 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    listen: std::net::SocketAddr,
    /// A repository to serve (s3://BUCKET/PREFIX/); may be repeated;
    /// added to PKGSUM_REPOSITORIES.
    #[arg(long = "repository", value_name = "URL")]
    repositories: Vec<String>,
    /// File holding the shared secret (default: PKGSUM_AUTH_TOKEN).
    #[arg(long, value_name = "FILE")]
    auth_token_file: Option<PathBuf>,
    /// Accept notifications from anyone (only behind something that
    /// authenticates them).
    #[arg(long)]
    insecure_no_auth: bool,
    /// Where accepted notifications wait until applied (default:
    /// $STATE_DIRECTORY/spool under systemd, else
    /// ~/.local/state/pkgsum/spool).
    #[arg(long, value_name = "DIR")]
    spool: Option<PathBuf>,
    /// How long a first notification waits for others before its pass.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    debounce: Duration,
    /// How often every repository is reconciled from a listing (also at
    /// start); 0s: never.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    reconcile_every: Duration,
    /// Largest notification body, in bytes.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    max_body: usize,
    /// Most keys one notification may name.
    #[arg(long, default_value_t = 1000)]
    max_keys: usize,
    /// How long SIGTERM waits for the queues to drain.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    drain_timeout: Duration,
    #[command(flatten)]
    http: HttpArgs,
}

pub fn run(args: Args) -> anyhow::Result<Verdict> {
    let options = Options {
        secret: secret(args.auth_token_file.as_deref(), args.insecure_no_auth)?,
        spool: args.spool.map_or_else(default_spool, Ok)?,
        debounce: args.debounce,
        reconcile_every: Some(args.reconcile_every).filter(|d| !d.is_zero()),
        max_body: args.max_body,
        max_keys: args.max_keys.max(1),
        drain_timeout: args.drain_timeout,
        http: args.http.limits(),
        ..Options::default()
    };
    super::run_async(serve(args.listen, args.repositories, options))
}

/// The webhook secret, from --auth-token-file or PKGSUM_AUTH_TOKEN; none
/// only when asked for.
fn secret(file: Option<&Path>, insecure_no_auth: bool) -> anyhow::Result<Option<Secret>> {
    let text = match file {
        Some(file) => {
            Some(fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?)
        }
        None => std::env::var(AUTH_TOKEN).ok(),
    };
    match (text, insecure_no_auth) {
        (Some(text), _) => {
            let from = file.map_or(AUTH_TOKEN.to_owned(), |f| f.display().to_string());
            Ok(Some(Secret::new(&text).with_context(|| from)?))
        }
        (None, true) => Ok(None),
        (None, false) => bail!(
            "serve: no secret: give {AUTH_TOKEN} or --auth-token-file (or --insecure-no-auth)"
        ),
    }
}

/// $STATE_DIRECTORY/spool (systemd's StateDirectory=), else
/// $XDG_STATE_HOME/pkgsum/spool, else ~/.local/state/pkgsum/spool.
fn default_spool() -> anyhow::Result<PathBuf> {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = var("STATE_DIRECTORY") {
        // systemd may give several, colon-separated; the first is ours.
        let first = dir.to_string_lossy().split(':').next().map(PathBuf::from);
        return Ok(first.unwrap_or(dir).join("spool"));
    }
    let state = var("XDG_STATE_HOME")
        .or_else(|| var("HOME").map(|home| home.join(".local/state")))
        .context("serve: no --spool, and neither STATE_DIRECTORY nor HOME is set")?;
    Ok(state.join("pkgsum/spool"))
}

async fn serve(
    listen: std::net::SocketAddr,
    repositories: Vec<String>,
    options: Options,
) -> anyhow::Result<Verdict> {
    let mut config = Config::from_env()?;
    config.repositories.extend(repositories);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("serve: listening on {listen}"))?;
    let address = listener.local_addr().context("serve: the bound address")?;
    if options.secret.is_none() {
        eprintln!(
            "pkgsum: WARNING: no authentication (--insecure-no-auth): anyone who reaches {address} can make pkgsum look at keys"
        );
    }
    eprintln!(
        "pkgsum: listening on http://{address}/ for {}; spool {}",
        config.repositories.join(", "),
        options.spool.display()
    );
    let client = pkgsum::store::s3::client_from_env().await;
    pkgsum::serve::serve(listener, client, config, options, async {
        super::stop_signal().await;
        eprintln!("pkgsum: stopping: draining the queues");
    })
    .await?;
    eprintln!("pkgsum: stopped");
    Ok(Verdict::Indexed)
}
