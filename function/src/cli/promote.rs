//! `pkgsum promote SRC DEST PKGNAME...|--release ID`: packages moved
//! between repositories inside the store, as one release, and waited for.

use std::time::{Duration, Instant};

use anyhow::bail;
use pkgsum::excerpt::Escaped;
use pkgsum::promote::{self, Chosen, PromoteOptions};
use pkgsum::push::wait;
use pkgsum::repo::Repo;
use pkgsum::store::Store;
use pkgsum::store::open::{Buckets, RepoUrl, open};
use pkgsum::verdict::Verdict;

use super::report::{Line, count, say_fate, say_unanswered};

pub const ABOUT: &str = "Copy packages from one repository to another (s3://BUCKET/PREFIX/ or a \
    directory on either side), e.g. from testing to stable, without rebuilding them: named by \
    PKGNAME, or every package of a release pushed to SRC (--release ID, as `pkgsum push` \
    printed it). Each is read from SRC as the indexer reads it and checked against DEST as \
    `pkgsum push` checks a file: built for DEST's platform, signed as DEST's PKGSUM_SIGNATURES \
    requires, and not a different file than the one at its key (--replace replaces it). \
    Nothing is copied unless all pass. Copies are made inside the store (CopyObject; \
    UploadPartCopy above 5 GiB; across buckets of one endpoint), each only while SRC still \
    holds what was checked, all as one release that DEST publishes in one generation; then \
    promote waits until they are live, and DEST's history says \"promoted from SRC \
    generation G\".";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The repository to copy from: s3://BUCKET/PREFIX/, a directory, or file://DIR
    src: String,
    /// The repository to copy into
    dest: String,
    /// PKGNAMEs (or file names) in SRC
    #[arg(required_unless_present = "release", conflicts_with = "release")]
    packages: Vec<String>,
    /// Every package of this release in SRC
    #[arg(long, value_name = "ID")]
    release: Option<String>,
    /// Replace a different file already at a key in DEST
    #[arg(long)]
    replace: bool,
    /// Return once copied, without waiting for DEST's indexer
    #[arg(long)]
    no_wait: bool,
    /// How long to wait for DEST's indexer
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Print one JSON report on standard output
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> anyhow::Result<Verdict> {
    let started = Instant::now();
    let src_url: RepoUrl = args.src.parse()?;
    let (url, repository, config) = super::open_for_writing(&args.dest).await?;
    let source = open(&src_url, &Buckets::from_env(), false).await?;
    let src = Repo::new(&source.store, &source.prefix, &config);
    let dest = Repo::new(&repository.store, &repository.prefix, &config);
    let chosen = match &args.release {
        Some(id) => Chosen::Release(id),
        None => Chosen::Names(&args.packages),
    };
    let options = PromoteOptions {
        replace: args.replace,
        ..PromoteOptions::default()
    };
    let before = wait::status_generation(&dest).await?;
    let promoted = promote::promote(&src, &dest, chosen, options).await?;
    for refused in &promoted.found.refused {
        eprintln!(
            "pkgsum: {src_url}{}: {}",
            Escaped(&refused.path.display().to_string()),
            refused.why
        );
    }
    for (name, warning) in &promoted.found.warnings {
        eprintln!("pkgsum: {url}{}: warning: {warning}", Escaped(name));
    }
    if promoted.refused() {
        eprintln!(
            "pkgsum: {url}: nothing copied: {} of {} failed the checks",
            promoted.found.refused.len(),
            promoted.found.refused.len() + promoted.found.checked.len()
        );
        return Ok(Verdict::Failed);
    }
    let mut verdict = Verdict::Indexed;
    let mut lines = Vec::new();
    for (checked, copied) in promoted.found.checked.iter().zip(&promoted.copied) {
        let location = dest
            .store()
            .location(&format!("{}{}", dest.prefix(), checked.name));
        match copied {
            Err(why) => {
                verdict = Verdict::Failed;
                eprintln!("pkgsum: {location}: not copied: {why}");
                lines.push(line(&checked.name, "failed", None, Some(why.clone())));
            }
            Ok(false) => eprintln!("pkgsum: {location}: the same bytes are there already"),
            Ok(true) => {}
        }
    }
    if args.no_wait && matches!(url, RepoUrl::S3 { .. }) {
        for (checked, _) in promoted.found.checked.iter().zip(&promoted.copied) {
            lines.push(line(&checked.name, "copied", None, None));
        }
        return finish(&args, &url, &promoted, lines, verdict, started);
    }
    let settled = promote::settle(&dest, &promoted, started, before, args.timeout).await?;
    for (name, fate) in &settled.fates {
        let location = dest.store().location(&format!("{}{name}", dest.prefix()));
        let (state, seconds, reason, called) =
            say_fate(&location, fate.clone(), "copied", args.timeout);
        verdict = verdict.max(called);
        lines.push(line(name, state, seconds, reason));
    }
    if !settled.answered && !settled.fates.is_empty() {
        say_unanswered(&url, args.timeout);
    }
    finish(&args, &url, &promoted, lines, verdict, started)
}

fn line(name: &str, state: &'static str, seconds: Option<f64>, reason: Option<String>) -> Line {
    Line {
        from: name.to_owned(),
        name: Some(name.to_owned()),
        state,
        seconds,
        reason,
    }
}

/// The last line, or the JSON report, and the verdict.
fn finish(
    args: &Args,
    url: &RepoUrl,
    promoted: &promote::Promoted,
    lines: Vec<Line>,
    verdict: Verdict,
    started: Instant,
) -> anyhow::Result<Verdict> {
    if lines.is_empty() && promoted.found.checked.is_empty() {
        bail!("{url}: nothing to promote");
    }
    let live = lines.iter().filter(|l| l.state == "live").count();
    if args.json {
        let packages: Vec<serde_json::Value> = lines.iter().map(|l| l.json("from")).collect();
        let report = serde_json::json!({
            "repository": url.to_string(),
            "from": promoted.from,
            "from_generation": promoted.from_generation,
            "release": promoted.release.as_ref().map(ToString::to_string),
            "verdict": verdict.as_str(),
            "seconds": started.elapsed().as_secs_f64(),
            "packages": packages,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    eprintln!(
        "pkgsum: {url}: {} live of {} promoted from {} in {:.1} s",
        count(live, "package"),
        promoted.found.checked.len(),
        promoted.from,
        started.elapsed().as_secs_f64()
    );
    Ok(verdict)
}
