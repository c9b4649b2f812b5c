//! `pkgsum index DIR`: the repository pass on a directory.

use std::path::{Path, PathBuf};

use pkgsum::compression::Compression;
use pkgsum::config::Config;
use pkgsum::directory::index_directory;
use pkgsum::verdict::Verdict;

use super::args::{LimitArgs, PassArgs};
use super::report::{Bar, count};

pub const ABOUT: &str = "Index the packages in DIR and write DIR/pkg_summary.{gz,bz2,xz} (and .zst \
    with --zstd) atomically, by the same pass that indexes a bucket. Only new and changed \
    packages are read; the state and status.json are kept in DIR/.pkgsum/. Unreadable packages \
    are listed on every run. Suffixes given once are remembered. Hidden files (.name.tgz) are \
    never packages.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The repository directory.
    dir: PathBuf,
    /// Another file suffix to treat as a package (".tgz" always is);
    /// remembered for later runs.
    #[arg(long = "suffix", value_name = "SUFFIX")]
    suffixes: Vec<String>,
    /// Also write pkg_summary.zst (pkgin 26.2 and later prefer it).
    #[arg(long)]
    zstd: bool,
    #[command(flatten)]
    pass: PassArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

pub fn run(args: Args) -> anyhow::Result<Verdict> {
    let mut config = Config::from_env()?;
    for suffix in args.suffixes {
        if !config.suffixes.contains(&suffix) {
            config.suffixes.push(suffix);
        }
    }
    if args.zstd && !config.formats.contains(&Compression::Zstd) {
        config.formats.push(Compression::Zstd);
    }
    args.pass.apply(&mut config);
    args.limits.apply(&mut config);
    super::run_async(index(&args.dir, &config))
}

/// Indexes `dir` and says what it did.
pub async fn index(dir: &Path, config: &Config) -> anyhow::Result<Verdict> {
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
    for why in &report.held {
        eprintln!("pkgsum: {place}: not published: {why}");
    }
    for line in &report.stalled {
        eprintln!("pkgsum: {place}: {line}");
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
    Ok(report.verdict())
}
