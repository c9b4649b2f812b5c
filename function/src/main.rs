//! The `pkgsum` command line: a thin shell over the library.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use pkgsum::compression::Compression;
use pkgsum::index::{self, Options, Progress};
use pkgsum::limit::{DEFAULT_METADATA_LIMIT, Limits};

#[derive(Parser)]
#[command(
    name = "pkgsum",
    version,
    about = "Index pkgsrc binary packages into pkg_summary files"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print each package's summary record, exactly as `pkg_info -X FILE...`.
    Record {
        /// Package files.
        #[arg(required = true)]
        files: Vec<OsString>,
        /// Most decompressed metadata bytes read from one package.
        #[arg(long, default_value_t = DEFAULT_METADATA_LIMIT)]
        metadata_limit: u64,
    },
    /// Apply an S3/SQS/EventBridge event (JSON, from FILE or - for stdin) to
    /// the bucket, exactly as the Lambda function does. The store and the
    /// PKGSUM_* settings come from the environment. Exits 1 if any key
    /// could not be applied.
    ApplyEvent {
        /// The event JSON file, or - for standard input.
        file: PathBuf,
    },
    /// Build or repair a repository's state and summaries from a listing of
    /// s3://BUCKET/PREFIX/ (reads only new and changed packages).
    Rebuild {
        /// s3://bucket/prefix/
        url: String,
        /// Parallel HEADs and header fetches.
        #[arg(long, short, default_value_t = 32)]
        jobs: usize,
    },
    /// Report drift between s3://BUCKET/PREFIX/, its state and its
    /// summaries; exits 1 when there is any.
    Verify {
        /// s3://bucket/prefix/
        url: String,
    },
    /// Build a small sample repository and index it: a first look at what
    /// pkgsum does, with nothing to download.
    Demo {
        /// Where to build it (default: a new directory under the system
        /// temporary directory).
        dir: Option<PathBuf>,
    },
    /// Index the packages in DIR and write DIR/pkg_summary.{gz,bz2,xz}.
    ///
    /// Only new and changed packages are read; the state is kept in
    /// DIR/.pkgsum/. Exits 1 if any package could not be read.
    Index {
        /// The repository directory.
        dir: PathBuf,
        /// Another file suffix to treat as a package (".tgz" always is).
        #[arg(long = "suffix", value_name = "SUFFIX")]
        suffixes: Vec<String>,
        /// Also write pkg_summary.zst (pkgin 26.2 and later prefer it).
        #[arg(long)]
        zstd: bool,
        /// Parallel header reads (default: one per CPU).
        #[arg(long, short)]
        jobs: Option<usize>,
        /// Most decompressed metadata bytes read from one package.
        #[arg(long, default_value_t = DEFAULT_METADATA_LIMIT)]
        metadata_limit: u64,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(io::stderr)
        .init();
    let result = match Cli::parse().command {
        Command::Record {
            files,
            metadata_limit,
        } => record(
            &files,
            &Limits {
                metadata: metadata_limit,
            },
        ),
        Command::Demo { dir } => demo(dir),
        Command::ApplyEvent { file } => remote(apply_event(file)),
        Command::Rebuild { url, jobs } => remote(rebuild(url, jobs)),
        Command::Verify { url } => remote(verify(url)),
        Command::Index {
            dir,
            suffixes,
            zstd,
            jobs,
            metadata_limit,
        } => {
            let mut options = Options::default();
            options.suffixes.extend(suffixes);
            if zstd {
                options.formats.push(Compression::Zstd);
            }
            options.limits.metadata = metadata_limit;
            run_index(&dir, &options, jobs)
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("pkgsum: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Prints records in argument order; a bad file is reported and skipped.
/// Returns whether every file gave a record.
fn record(files: &[OsString], limits: &Limits) -> anyhow::Result<bool> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut ok = true;
    for file in files {
        let path = Path::new(file);
        match pkgsum::record_file(path, limits) {
            Ok((record, warnings)) => {
                for warning in warnings {
                    eprintln!("pkgsum: {}: {warning}", path.display());
                }
                out.write_all(&record).context("writing to stdout")?;
            }
            Err(err) => {
                ok = false;
                // Flush first so messages follow the records before them.
                out.flush().context("writing to stdout")?;
                eprintln!("pkgsum: {}: {err}", path.display());
            }
        }
    }
    out.flush().context("writing to stdout")?;
    Ok(ok)
}

/// A progress bar on stderr; indicatif draws nothing when stderr is not a
/// terminal, so logs never fill with it.
struct Bar(ProgressBar);

impl Progress for Bar {
    fn begin(&self, total: u64) {
        self.0.set_length(total);
    }
    fn advance(&self) {
        self.0.inc(1);
    }
    fn end(&self) {
        self.0.finish_and_clear();
    }
}

fn run_index(dir: &Path, options: &Options, jobs: Option<usize>) -> anyhow::Result<bool> {
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(jobs) = jobs {
        pool = pool.num_threads(jobs);
    }
    let pool = pool.build().context("starting worker threads")?;
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{spinner} reading headers {pos}/{len} [{bar:30}] {per_sec} {eta}",
        )
        .context("progress bar template")?,
    );
    let report = pool
        .install(|| index::index_dir(dir, options, &Bar(bar)))
        .with_context(|| format!("indexing {}", dir.display()))?;

    if let Some(reason) = &report.state_reset {
        eprintln!(
            "pkgsum: {}: discarded unreadable state ({reason}); rebuilt",
            dir.display()
        );
    }
    for (name, warning) in &report.warnings {
        eprintln!("pkgsum: {}: warning: {warning}", dir.join(name).display());
    }
    for (name, error) in &report.failures {
        eprintln!("pkgsum: {}: {error}", dir.join(name).display());
    }
    let formats: Vec<&str> = options
        .formats
        .iter()
        .map(|f| f.suffix().trim_start_matches('.'))
        .collect();
    eprintln!(
        "pkgsum: {}: {} packages (read {}, unchanged {}, removed {}, failed {}); {} pkg_summary.{{{}}} generation {}",
        dir.display(),
        report.packages,
        report.read.len(),
        report.unchanged,
        report.removed.len(),
        report.failures.len(),
        if report.published { "wrote" } else { "kept" },
        formats.join(","),
        report.generation,
    );
    Ok(report.failures.is_empty())
}

/// Sample packages in every compression pkgsum reads, one of them signed.
fn write_demo_packages(dir: &Path) -> anyhow::Result<()> {
    use pkgsum::testkit::{PackageBuilder, Signature, sign};
    let samples = [
        (
            "hello-2.12nb1",
            Compression::Gzip,
            "@pkgdep gettext-lib>=0.22\n",
        ),
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

fn demo(dir: Option<PathBuf>) -> anyhow::Result<bool> {
    let dir = match dir {
        Some(dir) => dir,
        None => tempfile::Builder::new()
            .prefix("pkgsum-demo-")
            .tempdir()
            .context("creating a temporary directory")?
            .keep(),
    };
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    write_demo_packages(&dir)
        .with_context(|| format!("writing sample packages to {}", dir.display()))?;
    eprintln!("pkgsum: sample repository in {}", dir.display());
    let ok = run_index(&dir, &Options::default(), None)?;
    let gz = fs::read(dir.join("pkg_summary.gz")).context("reading pkg_summary.gz")?;
    let mut summary = Vec::new();
    Compression::Gzip
        .decoder(&gz[..])?
        .read_to_end(&mut summary)?;
    io::stdout()
        .write_all(&summary)
        .context("writing to stdout")?;
    eprintln!("pkgsum: indexing again reads nothing new:");
    Ok(ok && run_index(&dir, &Options::default(), None)?)
}

/// Runs an S3 command on a fresh async runtime.
fn remote(job: impl std::future::Future<Output = anyhow::Result<bool>>) -> anyhow::Result<bool> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(job)
}

fn env_config() -> anyhow::Result<pkgsum::repo::Config> {
    pkgsum::repo::Config::from_env().map_err(|e| anyhow::anyhow!(e))
}

async fn apply_event(file: PathBuf) -> anyhow::Result<bool> {
    let text = if file.as_os_str() == "-" {
        let mut text = String::new();
        io::stdin()
            .read_to_string(&mut text)
            .context("reading the event from stdin")?;
        text
    } else {
        fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?
    };
    let messages = pkgsum::event::decode_str(&text).context("the event is not JSON")?;
    let config = env_config()?;
    let client = pkgsum::store::s3::client_from_env().await;
    let store_for = |bucket: &str| pkgsum::store::s3::S3Store::new(client.clone(), bucket);
    let outcome = pkgsum::handler::handle(&messages, store_for, &config).await;
    for line in &outcome.ignored {
        eprintln!("pkgsum: ignored: {line}");
    }
    for report in &outcome.reports {
        let place = if report.prefix.is_empty() {
            "(top)"
        } else {
            &report.prefix
        };
        eprintln!("pkgsum: {place}: {}", pass_summary(report));
        for (name, reason) in &report.failures {
            eprintln!("pkgsum: {}{name}: {reason}", report.prefix);
        }
    }
    for error in &outcome.errors {
        eprintln!("pkgsum: {error}");
    }
    Ok(outcome.is_success())
}

/// One line on what a repository pass did.
fn pass_summary(report: &pkgsum::repo::Report) -> String {
    format!(
        "read {}, removed {}, unchanged {}, failed {}; {} bytes fetched; generation {}{}",
        report.read.len(),
        report.removed.len(),
        report.unchanged,
        report.failures.len(),
        report.bytes_fetched,
        report.generation,
        if report.published { ", published" } else { "" }
    )
}

/// The store and repository prefix an `s3://bucket/prefix/` URL names.
async fn s3_repository(url: &str) -> anyhow::Result<(pkgsum::store::s3::S3Store, String)> {
    let (bucket, prefix) = pkgsum::reconcile::parse_s3_url(url).map_err(|e| anyhow::anyhow!(e))?;
    let client = pkgsum::store::s3::client_from_env().await;
    Ok((pkgsum::store::s3::S3Store::new(client, bucket), prefix))
}

async fn rebuild(url: String, jobs: usize) -> anyhow::Result<bool> {
    let (store, prefix) = s3_repository(&url).await?;
    let mut config = env_config()?;
    config.concurrency = jobs.max(1);
    let bar = Bar(ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{spinner} looking at packages {pos}/{len} [{bar:30}] {per_sec} {eta}",
        )
        .context("progress bar template")?,
    ));
    let (report, unsure) = pkgsum::reconcile::rebuild(&store, &prefix, &config, &bar)
        .await
        .with_context(|| format!("rebuilding {url}"))?;
    for (name, reason) in &report.failures {
        eprintln!("pkgsum: {url}{name}: {reason}");
    }
    for (name, error) in &unsure {
        eprintln!("pkgsum: {url}{name}: {error}");
    }
    eprintln!("pkgsum: {url}: {}", pass_summary(&report));
    Ok(unsure.is_empty() && report.failures.is_empty())
}

async fn verify(url: String) -> anyhow::Result<bool> {
    let (store, prefix) = s3_repository(&url).await?;
    let config = env_config()?;
    let drift = pkgsum::reconcile::verify(&store, &prefix, &config)
        .await
        .with_context(|| format!("verifying {url}"))?;
    for line in &drift.lines {
        println!("{line}");
    }
    eprintln!(
        "pkgsum: {url}: {} packages, {} unreadable, generation {}: {}",
        drift.packages,
        drift.unreadable.len(),
        drift.generation,
        if drift.is_clean() {
            "no drift".to_owned()
        } else {
            format!("{} differences", drift.lines.len())
        }
    );
    Ok(drift.is_clean())
}
