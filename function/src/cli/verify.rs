//! `pkgsum verify URL`: drift between a repository, its state and its
//! summaries, reported without writing anything.

use pkgsum::config::Config;
use pkgsum::repo::Repo;
use pkgsum::store::open::{Buckets, RepoUrl, open};
use pkgsum::verdict::Verdict;

use super::report::count;

pub const ABOUT: &str = "Compare a repository (s3://BUCKET/PREFIX/, or a directory) with its state \
    and its published summaries, without writing anything. Differences go to standard output, \
    one per line, as do unreadable packages; exit status 1 when there is any.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// s3://BUCKET/PREFIX/, a directory, or file://DIR
    url: String,
}

pub async fn run(args: Args) -> anyhow::Result<Verdict> {
    let url: RepoUrl = args.url.parse()?;
    let config = Config::from_env()?;
    let buckets = Buckets::from_env();
    let repository = open(&url, &buckets, false).await?;
    let prefix = &repository.prefix;
    let repo = Repo::new(&repository.store, prefix, &config);
    let drift = pkgsum::reconcile::verify(&repo).await?;
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
        "pkgsum: {}: {}, {} unreadable, generation {}: {differences}",
        url,
        count(drift.packages, "package"),
        drift.unreadable.len(),
        drift.generation,
    );
    Ok(if drift.is_clean() {
        Verdict::Indexed
    } else {
        Verdict::Incomplete
    })
}
