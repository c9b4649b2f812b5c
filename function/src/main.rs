//! The `pkgsum` command line: a thin shell over the library. Every command
//! ends with the same exit status ([`pkgsum::verdict`]): 0 everything
//! indexed, 1 done but some packages unreadable, 2 could not run.

use std::ffi::OsString;
use std::fs;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use pkgsum::compression::Compression;
use pkgsum::config::Config;
use pkgsum::directory::{IndexError, index_directory};
use pkgsum::dispatch::Outcome;
use pkgsum::excerpt::Escaped;
use pkgsum::limit::Limits;
use pkgsum::progress::Progress;
use pkgsum::repo::{Repo, Report};
use pkgsum::store::s3::{S3Store, client_from_env};
use pkgsum::verdict::{EXIT_STATUS_HELP, Verdict};

const S3_SETTINGS_HELP: &str = "\
Settings come from the environment, as for the Lambda function:
  PKGSUM_SUFFIXES (.tgz), PKGSUM_FORMATS (gz,bz2,xz), PKGSUM_CONCURRENCY (16),
  PKGSUM_MAX_RECORDS, PKGSUM_FETCH_INITIAL, PKGSUM_MAX_ATTEMPTS,
  PKGSUM_ALLOW_EMPTY, PKGSUM_REPOSITORIES, PKGSUM_SIGNATURES,
  PKGSUM_GPG_KEYRING, PKGSUM_X509_ANCHORS, PKGSUM_VERIFY_PAYLOAD; the bounds
  PKGSUM_METADATA_LIMIT, PKGSUM_PKG_HASH_LIMIT, PKGSUM_RECORD_LIMIT,
  PKGSUM_STREAM_LIMIT, PKGSUM_STATE_LIMIT (docs/security.md); the store and
  credentials from the AWS SDK's own (AWS_REGION, AWS_ENDPOINT_URL,
  AWS_PROFILE, ...).";

#[derive(Parser)]
#[command(
    name = "pkgsum",
    version,
    about = "Index pkgsrc binary packages into pkg_summary files, byte for byte as pkg_info -X",
    after_help = EXIT_STATUS_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Index a package directory and write its pkg_summary files
    #[command(
        long_about = "Index the packages in DIR and write DIR/pkg_summary.{gz,bz2,xz} (and .zst \
            with --zstd) atomically, by the same pass that indexes a bucket. Only new and \
            changed packages are read; the state and status.json are kept in DIR/.pkgsum/. \
            Unreadable packages are listed on every run. Suffixes given once are remembered. \
            Hidden files (.name.tgz) are never packages. Reads the PKGSUM_* settings; flags \
            override them.",
        after_help = EXIT_STATUS_HELP
    )]
    Index {
        /// The repository directory.
        dir: PathBuf,
        /// Another file suffix to treat as a package (".tgz" always is);
        /// remembered for later runs.
        #[arg(long = "suffix", value_name = "SUFFIX")]
        suffixes: Vec<String>,
        /// Also write pkg_summary.zst (pkgin 26.2 and later prefer it).
        #[arg(long)]
        zstd: bool,
        /// Header reads in flight (default: PKGSUM_CONCURRENCY, 16).
        #[arg(long, short)]
        jobs: Option<usize>,
        /// Most decompressed metadata bytes read from one package
        /// (default: PKGSUM_METADATA_LIMIT, 64 MiB).
        #[arg(long)]
        metadata_limit: Option<u64>,
        /// Publish an empty summary when DIR holds no package.
        #[arg(long)]
        allow_empty: bool,
    },
    /// Print each package's record, exactly as pkg_info -X FILE...
    #[command(after_help = EXIT_STATUS_HELP)]
    Record {
        /// Package files; - reads one package from standard input.
        #[arg(required = true)]
        files: Vec<OsString>,
        /// Most decompressed metadata bytes read from one package
        /// (default: PKGSUM_METADATA_LIMIT, 64 MiB).
        #[arg(long)]
        metadata_limit: Option<u64>,
        /// FILE_NAME for a package read from standard input (default:
        /// PKGNAME.tgz, the name pkgin fetches it by).
        #[arg(long, value_name = "NAME")]
        file_name: Option<String>,
    },
    /// Build or repair a bucket repository's index from a listing
    #[command(
        long_about = "Build or repair the index of s3://BUCKET/PREFIX/ from a listing: every \
            new or changed package is read, every vanished one dropped, a lost or damaged \
            state recreated, and the summaries published.",
        after_help = format!("{S3_SETTINGS_HELP}\n\n{EXIT_STATUS_HELP}")
    )]
    Rebuild {
        /// s3://BUCKET/PREFIX/
        url: String,
        /// HEADs and header fetches in flight (default: PKGSUM_CONCURRENCY, 16).
        #[arg(long, short)]
        jobs: Option<usize>,
        /// Publish an empty summary when the prefix holds no package.
        #[arg(long)]
        allow_empty: bool,
    },
    /// Report differences between a bucket, its index and its summaries
    #[command(
        long_about = "Compare s3://BUCKET/PREFIX/ with its state and its published summaries, \
            without writing anything. Differences go to standard output, one per line, as do \
            unreadable packages; exit status 1 when there is any.",
        after_help = format!("{S3_SETTINGS_HELP}\n\n{EXIT_STATUS_HELP}")
    )]
    Verify {
        /// s3://BUCKET/PREFIX/
        url: String,
    },
    /// Apply an S3, SQS, SNS or EventBridge event, as the Lambda function does
    #[command(
        long_about = "Apply an event (S3 notification, SQS batch, `aws sqs receive-message` \
            output, SNS envelope or EventBridge event) from FILE, or - for standard input, \
            exactly as the Lambda function does.",
        after_help = format!("{S3_SETTINGS_HELP}\n\n{EXIT_STATUS_HELP}")
    )]
    ApplyEvent {
        /// The event JSON file, or - for standard input.
        file: PathBuf,
    },
    /// Consume an SQS queue of S3 notifications, as Lambda's event source does
    #[command(
        long_about = "Consume QUEUE_URL, an SQS queue receiving a bucket's S3 notifications: \
            messages are taken in batches, each applied as the Lambda function would, and \
            deleted once applied; a message that could not be applied stays, so SQS delivers \
            it again after its visibility timeout (and to the dead-letter queue in the end). \
            Runs until SIGTERM or Ctrl-C, which finish the batch at hand first.",
        after_help = format!("{S3_SETTINGS_HELP}\n\n{EXIT_STATUS_HELP}")
    )]
    Poll {
        /// The queue's URL (`aws sqs get-queue-url`).
        queue_url: String,
        /// Most messages in one batch.
        #[arg(long, default_value_t = 10)]
        batch_size: usize,
        /// Seconds to keep gathering a batch after its first message.
        #[arg(long, default_value_t = 0, value_name = "SECONDS")]
        batching_window: u64,
        /// Long-poll time of one receive, 1 to 20 seconds.
        #[arg(long, default_value_t = 20, value_name = "SECONDS")]
        wait: u64,
        /// Visibility timeout to ask for (default: the queue's).
        #[arg(long, value_name = "SECONDS")]
        visibility_timeout: Option<u64>,
        /// Stop once the queue is empty instead of waiting for more.
        #[arg(long)]
        until_empty: bool,
    },
    /// Receive bucket notifications over HTTP (MinIO, Ceph RGW, SeaweedFS) and index
    #[command(
        long_about = "Receive bucket notifications over HTTP and keep the repositories of \
            PKGSUM_REPOSITORIES (or --repository) indexed, for stores with no Lambda: MinIO \
            webhooks, Ceph RGW topics, SeaweedFS filer webhooks, SNS HTTP subscriptions. POST \
            a notification to any path; the secret goes in `Authorization: Bearer`, as the \
            password of HTTP Basic, or as the path /hook/SECRET. A notification is answered \
            200 once its keys are spooled on disk; each repository applies them after the \
            debounce window, one pass at a time, and is reconciled from a listing at start and \
            every --reconcile-every. GET /healthz (alive), /readyz (store reachable), /status \
            (counters, with the secret). SIGTERM drains the queues before exit.",
        after_help = format!("{S3_SETTINGS_HELP}\n\n{EXIT_STATUS_HELP}")
    )]
    Serve {
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
    },
    /// Serve a private repository read-only to pkgin, behind HTTP Basic
    #[command(
        long_about = "Serve s3://BUCKET/PREFIX/ read-only over HTTP to an unmodified pkgin, for \
            stores with no CloudFront: GET and HEAD of pkg_summary.* and package files directly \
            under /PREFIX, with the store's Content-Length, Last-Modified and ETag, byte ranges \
            and conditional requests, to clients with a user and password from --credentials \
            (one user:hash per line, bcrypt or Argon2, as `htpasswd -B` or `argon2` write them). \
            Nothing is listed, and nothing outside the prefix is reachable. Put it behind TLS: \
            pkgin then uses https://USER:PASSWORD@HOST/PREFIX.",
        after_help = format!("{S3_SETTINGS_HELP}\n\n{EXIT_STATUS_HELP}")
    )]
    Gateway {
        /// s3://BUCKET/PREFIX/
        url: String,
        /// Address to listen on, e.g. 127.0.0.1:8080.
        #[arg(long, value_name = "ADDR")]
        listen: std::net::SocketAddr,
        /// The credentials file.
        #[arg(long, value_name = "FILE")]
        credentials: PathBuf,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// Build a small sample repository and index it
    #[command(
        long_about = "Build a small sample repository (one package per compression, one \
            signed) in DIR, which must be new or empty, index it, print its summary, and \
            index it again to show nothing is read twice.",
        after_help = EXIT_STATUS_HELP
    )]
    Demo {
        /// Where to build it (default: a new directory under the system
        /// temporary directory).
        dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Library logs are detail for those who ask (RUST_LOG=info); what a
    // user needs is printed by the commands themselves, once. A service's
    // log is its output, so `serve` logs at info unless told otherwise.
    let default = match cli.command {
        Command::Serve { .. } | Command::Gateway { .. } => "pkgsum=info",
        _ => "off",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_ansi(io::stderr().is_terminal())
        .with_writer(io::stderr)
        .init();
    let verdict = match run(cli.command) {
        Ok(verdict) => verdict,
        Err(err) if is_broken_pipe(&err) => Verdict::Indexed,
        Err(err) => {
            eprintln!("pkgsum: {}", one_line(&err));
            Verdict::Failed
        }
    };
    ExitCode::from(verdict.exit_code())
}

/// An error and the context around it, in one line. pkgsum's own errors
/// say all there is to say (the object, the operation, the cause), so the
/// chain stops at the first of them rather than repeating what they keep
/// as their source (an SDK error's layers).
fn one_line(err: &anyhow::Error) -> String {
    let mut parts = Vec::new();
    for cause in err.chain() {
        parts.push(cause.to_string());
        let complete = cause.is::<pkgsum::Error>()
            || cause.is::<pkgsum::store::StoreError>()
            || cause.is::<pkgsum::repo::PassError>()
            || cause.is::<IndexError>()
            || cause.is::<pkgsum::config::ConfigError>()
            || cause.is::<pkgsum::reconcile::UrlError>()
            || cause.is::<pkgsum::poll::PollError>()
            || cause.is::<pkgsum::gateway::CredentialsError>();
        if complete {
            break;
        }
    }
    parts.join(": ")
}

fn run(command: Command) -> anyhow::Result<Verdict> {
    match command {
        Command::Index {
            dir,
            suffixes,
            zstd,
            jobs,
            metadata_limit,
            allow_empty,
        } => {
            let mut config = Config::from_env()?;
            for suffix in suffixes {
                if !config.suffixes.contains(&suffix) {
                    config.suffixes.push(suffix);
                }
            }
            if zstd && !config.formats.contains(&Compression::Zstd) {
                config.formats.push(Compression::Zstd);
            }
            if let Some(limit) = metadata_limit {
                config.fetch.limits.metadata = limit;
            }
            if let Some(jobs) = jobs {
                config.concurrency = jobs.max(1);
            }
            config.allow_empty |= allow_empty;
            run_async(run_index(&dir, &config))
        }
        Command::Record {
            files,
            metadata_limit,
            file_name,
        } => {
            let mut limits = Config::from_env()?.fetch.limits;
            if let Some(limit) = metadata_limit {
                limits.metadata = limit;
            }
            record(&files, file_name.as_deref(), &limits)
        }
        Command::Rebuild {
            url,
            jobs,
            allow_empty,
        } => run_async(rebuild(url, jobs, allow_empty)),
        Command::Verify { url } => run_async(verify(url)),
        Command::ApplyEvent { file } => run_async(apply_event(file)),
        Command::Poll {
            queue_url,
            batch_size,
            batching_window,
            wait,
            visibility_timeout,
            until_empty,
        } => {
            let options = pkgsum::poll::PollOptions {
                batch_size: batch_size.clamp(1, 10_000),
                window: Duration::from_secs(batching_window.min(300)),
                wait: Duration::from_secs(wait.clamp(1, 20)),
                visibility_timeout: visibility_timeout.map(Duration::from_secs),
                until_empty,
            };
            run_async(poll(queue_url, options))
        }
        Command::Serve {
            listen,
            repositories,
            auth_token_file,
            insecure_no_auth,
            spool,
            debounce,
            reconcile_every,
            max_body,
            max_keys,
            drain_timeout,
            http,
        } => {
            let options = pkgsum::serve::Options {
                secret: secret(auth_token_file.as_deref(), insecure_no_auth)?,
                spool: spool.map_or_else(default_spool, Ok)?,
                debounce,
                reconcile_every: Some(reconcile_every).filter(|d| !d.is_zero()),
                max_body,
                max_keys: max_keys.max(1),
                drain_timeout,
                http: http.limits(),
                ..pkgsum::serve::Options::default()
            };
            run_async(serve(listen, repositories, options))
        }
        Command::Gateway {
            url,
            listen,
            credentials,
            http,
        } => run_async(gateway(url, listen, credentials, http.limits())),
        Command::Demo { dir } => demo(dir),
    }
}

/// Whether writing to stdout failed because the reader went away
/// (`pkgsum record ... | head`): that ends the command quietly.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

/// "1 package", "2 packages".
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Prints records in argument order; a bad file is reported and skipped.
fn record(files: &[OsString], file_name: Option<&str>, limits: &Limits) -> anyhow::Result<Verdict> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut verdict = Verdict::Indexed;
    for file in files {
        let (shown, result) = if file == "-" {
            let name = file_name.map(str::as_bytes);
            let stdin = io::stdin().lock();
            (
                "(stdin)".to_owned(),
                pkgsum::record_stream(stdin, name, limits),
            )
        } else {
            let path = Path::new(file);
            (
                path.display().to_string(),
                pkgsum::record_file(path, limits),
            )
        };
        match result {
            Ok((record, warnings)) => {
                for warning in warnings {
                    eprintln!("pkgsum: {shown}: {warning}");
                }
                out.write_all(&record).context("writing to stdout")?;
            }
            Err(err) => {
                verdict = Verdict::Unreadable;
                // Flush first so messages follow the records before them.
                out.flush().context("writing to stdout")?;
                eprintln!("pkgsum: {shown}: {err}");
            }
        }
    }
    out.flush().context("writing to stdout")?;
    Ok(verdict)
}

/// A progress bar on stderr; indicatif draws nothing when stderr is not a
/// terminal, so logs never fill with it.
struct Bar {
    bar: ProgressBar,
    /// What the pass is about, for the note when it must wait.
    place: String,
}

impl Bar {
    fn new(what: &str, place: &str) -> anyhow::Result<Bar> {
        let style = ProgressStyle::with_template(&format!(
            "{{spinner}} {what} {{pos}}/{{len}} [{{bar:30}}] {{per_sec}} {{eta}}"
        ))
        .context("progress bar template")?;
        Ok(Bar {
            bar: ProgressBar::new(0).with_style(style),
            place: place.to_owned(),
        })
    }
}

impl Progress for Bar {
    fn begin(&self, total: u64) {
        self.bar.set_length(total);
    }
    fn advance(&self) {
        self.bar.inc(1);
    }
    fn end(&self) {
        self.bar.finish_and_clear();
    }
    fn waiting(&self, holder: &str) {
        eprintln!("pkgsum: {}: waiting for {holder} to finish", self.place);
    }
}

async fn run_index(dir: &Path, config: &Config) -> anyhow::Result<Verdict> {
    let place = dir.display().to_string();
    let bar = Bar::new("reading headers", &place)?;
    let report = index_directory(dir, config, &bar).await?;

    if let Some(loss) = &report.state_lost {
        eprintln!("pkgsum: {place}: the state was {loss}; rebuilt it");
    }
    if !report.remembered_suffixes.is_empty() {
        eprintln!(
            "pkgsum: {place}: also indexing *{}, as earlier runs were told to",
            report.remembered_suffixes.join(", *")
        );
    }
    for (name, warning) in &report.warnings {
        eprintln!("pkgsum: {}: warning: {warning}", dir.join(name).display());
    }
    for (name, error) in &report.failures {
        eprintln!("pkgsum: {}: {error}", dir.join(name).display());
    }
    let formats: Vec<&str> = config
        .formats
        .iter()
        .map(|f| f.suffix().trim_start_matches('.'))
        .collect();
    eprintln!(
        "pkgsum: {place}: {} (read {}, unchanged {}, removed {}, unreadable {}); {} pkg_summary.{{{}}} generation {}",
        count(report.packages, "package"),
        report.read.len(),
        report.unchanged,
        report.removed.len(),
        report.failures.len(),
        if report.published { "wrote" } else { "kept" },
        formats.join(","),
        report.generation,
    );
    Ok(Verdict::from_unreadable(report.failures.len()))
}

/// Sample packages in every compression pkgsum reads, one of them signed.
fn write_demo_packages(dir: &Path) -> anyhow::Result<()> {
    use pkgsum::create::{PackageBuilder, Signature, sign};
    let samples = [
        ("hello-2.12nb1", Compression::Gzip, "@pkgdep libfoo>=1.2\n"),
        (
            "libfoo-1.4",
            Compression::Xz,
            "@pkgcfl libfoo-devel-[0-9]*\n",
        ),
        ("tool-0.9", Compression::Bzip2, ""),
        ("modern-3.0", Compression::Zstd, "@pkgdep libfoo>=1.0\n"),
    ];
    for (name, compression, extra) in samples {
        let contents = format!("@name {name}\n{extra}@cwd /usr/pkg\nbin/{name}\n");
        let bytes = PackageBuilder::new(name)
            .member("+CONTENTS", contents)
            .file(&format!("bin/{name}"), format!("#!/bin/sh\necho {name}\n"))
            .compression(compression)
            .build()?;
        fs::write(dir.join(format!("{name}.tgz")), bytes)?;
    }
    let inner = PackageBuilder::new("signed-1.0")
        .compression(Compression::Xz)
        .build()?;
    let signed = sign(&inner, "signed-1.0.tgz", "signed-1.0", Signature::Gpg)?;
    fs::write(dir.join("signed-1.0.tgz"), signed)?;
    Ok(())
}

fn demo(dir: Option<PathBuf>) -> anyhow::Result<Verdict> {
    let dir = match dir {
        Some(dir) => {
            let occupied = fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some());
            if occupied {
                bail!(
                    "{}: not empty; the demo writes sample packages only into a new or empty directory",
                    dir.display()
                );
            }
            fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            dir
        }
        None => tempfile::Builder::new()
            .prefix("pkgsum-demo-")
            .tempdir()
            .context("creating a temporary directory")?
            .keep(),
    };
    write_demo_packages(&dir)
        .with_context(|| format!("writing sample packages to {}", dir.display()))?;
    eprintln!("pkgsum: sample repository in {}", dir.display());
    let first = run_async(run_index(&dir, &Config::default()))?;
    let gz = fs::read(dir.join("pkg_summary.gz")).context("reading pkg_summary.gz")?;
    let mut summary = Vec::new();
    Compression::Gzip
        .decoder(&gz[..])?
        .read_to_end(&mut summary)?;
    io::stdout()
        .write_all(&summary)
        .context("writing to stdout")?;
    eprintln!("pkgsum: indexing again reads nothing new:");
    Ok(first.max(run_async(run_index(&dir, &Config::default()))?))
}

/// Runs an S3 command on a fresh async runtime.
fn run_async(
    job: impl std::future::Future<Output = anyhow::Result<Verdict>>,
) -> anyhow::Result<Verdict> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(job)
}

/// What a pass did, for people: a recreated state, every unreadable
/// package, and the summary line.
fn print_report(report: &Report) {
    let place = &report.repository;
    if let Some(loss) = &report.state_lost {
        let above = report
            .published_generation
            .map(|g| format!(", above the published generation {g}"))
            .unwrap_or_default();
        eprintln!(
            "pkgsum: {place}.pkgsum/state was {loss}; recreated from a listing at generation {}{above}",
            report.generation
        );
    } else if let Some(g) = report.published_generation {
        eprintln!(
            "pkgsum: {place}.pkgsum/state was behind the published generation {g}; moved to {}",
            report.generation
        );
    }
    // Names are escaped: a file name cannot forge a line of this output.
    for (name, warning) in &report.warnings {
        eprintln!("pkgsum: {place}{}: warning: {warning}", Escaped(name));
    }
    if report.warnings_more > 0 {
        eprintln!(
            "pkgsum: {place}: {} more warnings beside the other packages (status.json counts them; `pkgsum verify` lists them)",
            report.warnings_more
        );
    }
    for (name, reason) in &report.failures {
        eprintln!("pkgsum: {place}{}: {reason}", Escaped(name));
    }
    eprintln!("pkgsum: {place}: {}", report.summary());
}

fn print_outcome(outcome: &Outcome) {
    for line in outcome.ignored.iter().take(10) {
        eprintln!("pkgsum: ignored: {}", pkgsum::excerpt::Bare(line));
    }
    if outcome.ignored.len() > 10 {
        eprintln!("pkgsum: ignored: {} more", outcome.ignored.len() - 10);
    }
    for report in &outcome.reports {
        print_report(report);
    }
    for error in &outcome.errors {
        eprintln!("pkgsum: {error}");
    }
}

async fn apply_event(file: PathBuf) -> anyhow::Result<Verdict> {
    let (shown, text) = if file.as_os_str() == "-" {
        let mut text = String::new();
        io::stdin()
            .read_to_string(&mut text)
            .context("reading the event from standard input")?;
        ("(stdin)".to_owned(), text)
    } else {
        let text =
            fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        (file.display().to_string(), text)
    };
    let messages =
        pkgsum::event::decode_str(&text).with_context(|| format!("{shown}: not JSON"))?;
    let unrecognized = messages.iter().all(|m| {
        m.targets.is_empty() && m.ignored.iter().all(|i| i == pkgsum::event::UNRECOGNIZED)
    });
    if unrecognized {
        bail!("{shown}: not an S3, SQS, SNS or EventBridge event; nothing applied");
    }
    let config = Config::from_env()?;
    let client = client_from_env().await;
    let mut stores = std::collections::BTreeMap::new();
    for target in messages.iter().flat_map(|m| &m.targets) {
        if !stores.contains_key(&target.bucket) && config.wants(&target.key) {
            let (prefix, _) = pkgsum::repo::split_key(&target.key);
            // A bucket that cannot be probed fails its own keys in the
            // pass, with the reason; the other buckets go on.
            let store = match open_bucket(&client, &target.bucket, prefix).await {
                Ok(store) => store,
                Err(err) => {
                    tracing::info!(bucket = %target.bucket, error = %err, "probe failed");
                    S3Store::new(client.clone(), &target.bucket)
                }
            };
            stores.insert(target.bucket.clone(), store);
        }
    }
    let store_for = |bucket: &str| {
        stores
            .get(bucket)
            .cloned()
            .unwrap_or_else(|| S3Store::new(client.clone(), bucket))
    };
    let outcome = pkgsum::dispatch::apply_messages(&messages, store_for, &config).await;
    print_outcome(&outcome);
    Ok(outcome.verdict())
}

/// The store and repository prefix an `s3://bucket/prefix/` URL names;
/// `writing` probes the store's conditional writes first.
async fn s3_repository(url: &str, writing: bool) -> anyhow::Result<(S3Store, String)> {
    let (bucket, prefix) = pkgsum::reconcile::parse_s3_url(url)?;
    let client = client_from_env().await;
    let store = if writing {
        open_bucket(&client, &bucket, &prefix).await?
    } else {
        S3Store::new(client, bucket)
    };
    Ok((store, prefix))
}

/// The store of `bucket`, ready to commit (probed on a custom endpoint); a
/// store that ignores conditional writes is named as such.
async fn open_bucket(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> anyhow::Result<S3Store> {
    let (store, found) = S3Store::open(client.clone(), bucket, prefix).await?;
    if let Some(found) = found.filter(|found| !found.honoured()) {
        eprintln!("pkgsum: s3://{bucket}/: {found}");
    }
    Ok(store)
}

async fn rebuild(url: String, jobs: Option<usize>, allow_empty: bool) -> anyhow::Result<Verdict> {
    let mut config = Config::from_env()?;
    if let Some(jobs) = jobs {
        config.concurrency = jobs.max(1);
    }
    config.allow_empty |= allow_empty;
    let (store, prefix) = s3_repository(&url, true).await?;
    let bar = Bar::new("looking at packages", &url)?;
    let repo = Repo::new(&store, &prefix, &config);
    let (report, unsure) = pkgsum::reconcile::rebuild(&repo, &bar).await?;
    print_report(&report);
    for (_, error) in &unsure {
        eprintln!("pkgsum: {error}");
    }
    if !unsure.is_empty() {
        return Ok(Verdict::Failed);
    }
    Ok(Verdict::from_unreadable(report.failures.len()))
}

async fn verify(url: String) -> anyhow::Result<Verdict> {
    let config = Config::from_env()?;
    let (store, prefix) = s3_repository(&url, false).await?;
    let drift = pkgsum::reconcile::verify(&Repo::new(&store, &prefix, &config)).await?;
    for line in &drift.lines {
        println!("{line}");
    }
    for (name, reason) in &drift.unreadable {
        println!("{prefix}{name}: unreadable: {reason}");
    }
    for (name, warning) in &drift.warnings {
        eprintln!("pkgsum: {prefix}{name}: warning: {warning}");
    }
    let differences = if drift.lines.is_empty() {
        "no drift".to_owned()
    } else {
        count(drift.lines.len(), "difference")
    };
    eprintln!(
        "pkgsum: {url}: {}, {} unreadable, generation {}: {differences}",
        count(drift.packages, "package"),
        drift.unreadable.len(),
        drift.generation,
    );
    Ok(if drift.is_clean() {
        Verdict::Indexed
    } else {
        Verdict::Unreadable
    })
}

async fn poll(queue: String, options: pkgsum::poll::PollOptions) -> anyhow::Result<Verdict> {
    let config = Config::from_env()?;
    let sdk = pkgsum::store::s3::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let client = pkgsum::store::s3::client_from_config(&sdk);
    let store_for = |bucket: &str| S3Store::new(client.clone(), bucket);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        stop_signal().await;
        eprintln!("pkgsum: stopping after the batch at hand");
        let _ = stop_tx.send(true);
    });
    eprintln!("pkgsum: polling {queue}");
    let verdict = pkgsum::poll::poll(
        &sqs,
        &queue,
        store_for,
        &config,
        &options,
        stop_rx,
        |batch| {
            print_outcome(&batch.outcome);
            eprintln!(
                "pkgsum: {}: {} deleted, {} left for redelivery",
                count(batch.received, "message"),
                batch.deleted,
                batch.received - batch.deleted
            );
        },
    )
    .await?;
    // A service that was told to stop ended well; a drain reports what
    // its batches found.
    Ok(if options.until_empty {
        verdict
    } else {
        Verdict::Indexed
    })
}

/// The webhook secret, from --auth-token-file or PKGSUM_AUTH_TOKEN; none
/// only when asked for.
fn secret(
    file: Option<&Path>,
    insecure_no_auth: bool,
) -> anyhow::Result<Option<pkgsum::serve::auth::Secret>> {
    let text = match file {
        Some(file) => {
            Some(fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?)
        }
        None => std::env::var("PKGSUM_AUTH_TOKEN").ok(),
    };
    match (text, insecure_no_auth) {
        (Some(text), _) => {
            let secret = pkgsum::serve::auth::Secret::new(&text);
            let from = file.map_or("PKGSUM_AUTH_TOKEN".to_owned(), |f| f.display().to_string());
            Ok(Some(secret.with_context(|| from)?))
        }
        (None, true) => Ok(None),
        (None, false) => bail!(
            "serve: no secret: give PKGSUM_AUTH_TOKEN or --auth-token-file (or --insecure-no-auth)"
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
    options: pkgsum::serve::Options,
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
    let client = client_from_env().await;
    pkgsum::serve::serve(listener, client, config, options, async {
        stop_signal().await;
        eprintln!("pkgsum: stopping: draining the queues");
    })
    .await?;
    eprintln!("pkgsum: stopped");
    Ok(Verdict::Indexed)
}

async fn gateway(
    url: String,
    listen: std::net::SocketAddr,
    credentials: PathBuf,
    limits: pkgsum::http::HttpLimits,
) -> anyhow::Result<Verdict> {
    let config = Config::from_env()?;
    let credentials = pkgsum::gateway::Credentials::from_file(&credentials)?;
    let (store, prefix) = s3_repository(&url, false).await?;
    let gateway = std::sync::Arc::new(pkgsum::gateway::Gateway::new(
        store,
        &prefix,
        config.suffixes.clone(),
        credentials,
    ));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("gateway: listening on {listen}"))?;
    let address = listener
        .local_addr()
        .context("gateway: the bound address")?;
    eprintln!(
        "pkgsum: serving {url} read-only at http://{address}{}",
        gateway.path()
    );
    pkgsum::http::serve(listener, gateway.router(), limits, stop_signal()).await;
    eprintln!("pkgsum: stopped");
    Ok(Verdict::Indexed)
}

/// What HTTP clients of `serve` and `gateway` may hold.
#[derive(Debug, clap::Args)]
struct HttpArgs {
    /// Connections served at once; more are closed at once (and logged).
    #[arg(long, default_value_t = 256, value_name = "N")]
    max_connections: usize,
    /// How long a request's headers may take to arrive, and how long an
    /// idle keep-alive connection stays open.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    header_timeout: Duration,
}

impl HttpArgs {
    fn limits(&self) -> pkgsum::http::HttpLimits {
        pkgsum::http::HttpLimits {
            connections: self.max_connections.max(1),
            header: self.header_timeout.max(Duration::from_millis(100)),
            ..pkgsum::http::HttpLimits::default()
        }
    }
}

/// SIGTERM (as systemd, ECS and Kubernetes stop a service) or Ctrl-C.
async fn stop_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
