//! `pkgsum hold URL` and `pkgsum resume URL`: stop publishing a
//! repository's summaries while uploads go on being indexed, and publish
//! again.

use pkgsum::excerpt::Bare;
use pkgsum::repo::Repo;
use pkgsum::verdict::Verdict;

pub const HOLD_ABOUT: &str = "Hold a repository's publication (s3://BUCKET/PREFIX/, or a \
    directory): every indexer (the function, poll, serve, index) still commits each upload to \
    the state, but no summary is published, so clients keep the one they have. status.json, \
    verify and the logs say so until `pkgsum resume`.";

pub const RESUME_ABOUT: &str = "Lift a hold and publish the repository's newest state as a new \
    generation (a later Last-Modified, so pkgin fetches it), whatever the publish gates \
    (PKGSUM_MAX_SHRINK, PKGSUM_REQUIRED, PKGSUM_UNRESOLVED) would say: a person has looked at \
    it. Also publishes a summary a gate held back.";

#[derive(Debug, clap::Args)]
pub struct HoldArgs {
    /// s3://BUCKET/PREFIX/, a directory, or file://DIR
    url: String,
    /// Why, for status.json and the logs
    #[arg(long, default_value = "held by `pkgsum hold`")]
    reason: String,
}

#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// s3://BUCKET/PREFIX/, a directory, or file://DIR
    url: String,
}

pub async fn hold(args: HoldArgs) -> anyhow::Result<Verdict> {
    let (url, repository, config) = super::open_for_writing(&args.url).await?;
    let repo = Repo::new(&repository.store, &repository.prefix, &config);
    let state = repo.hold(&args.reason).await?;
    let why = state.hold().map_or("", |h| h.reason.as_str());
    eprintln!(
        "pkgsum: {url}: held at generation {} ({}): uploads are indexed, nothing is published until `pkgsum resume`",
        state.generation(),
        Bare(why)
    );
    Ok(Verdict::Indexed)
}

pub async fn resume(args: ResumeArgs) -> anyhow::Result<Verdict> {
    let (url, repository, config) = super::open_for_writing(&args.url).await?;
    let repo = Repo::new(&repository.store, &repository.prefix, &config);
    let published = repo.resume().await?;
    for why in &published.closed {
        eprintln!("pkgsum: {url}: not published: {why}");
    }
    if !published.closed.is_empty() {
        return Ok(Verdict::Incomplete);
    }
    let what = if published.wrote {
        "published"
    } else {
        "already published by another pass"
    };
    eprintln!("pkgsum: {url}: resumed; the newest state is {what}");
    Ok(Verdict::Indexed)
}
