//! `pkgsum rebuild URL`: a pass over a repository's listing, to bootstrap
//! or repair its index.

use pkgsum::config::Config;
use pkgsum::repo::{Applied, Repo};
use pkgsum::store::open::{Buckets, RepoUrl, open};
use pkgsum::verdict::Verdict;

use super::args::PassArgs;
use super::report::{Bar, print_found, print_report};

pub const ABOUT: &str = "Build or repair the index of a repository (s3://BUCKET/PREFIX/, or a \
    directory) from a listing: every new or changed package is read, every vanished one \
    dropped, a lost or damaged state recreated, and the summaries published. A directory is \
    indexed as `pkgsum index` does.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// s3://BUCKET/PREFIX/, a directory, or file://DIR
    url: String,
    #[command(flatten)]
    pass: PassArgs,
}

pub async fn run(args: Args) -> anyhow::Result<Verdict> {
    let url: RepoUrl = args.url.parse()?;
    let mut config = Config::from_env()?;
    args.pass.apply(&mut config);
    let bucket = match &url {
        RepoUrl::Dir(dir) => return super::index::index(dir, &config).await,
        RepoUrl::S3 { bucket, .. } => bucket.clone(),
    };
    let buckets = Buckets::from_env();
    let repository = open(&url, &buckets, true).await?;
    print_found(&bucket, repository.found.as_ref());
    let bar = Bar::new("looking at packages", &url.to_string())?;
    let repo = Repo::new(&repository.store, &repository.prefix, &config);
    let Applied { report, unsure } = pkgsum::reconcile::rebuild(&repo, &bar).await?;
    print_report(&report);
    for unsure in &unsure {
        eprintln!("pkgsum: {}", unsure.error);
    }
    if !unsure.is_empty() {
        return Ok(Verdict::Failed);
    }
    Ok(report.verdict())
}
