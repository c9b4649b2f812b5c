//! `pkgsum push DEST FILE...`: check, upload as one release, wait until
//! live, and say so, for a person or (`--json`) for CI.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use pkgsum::directory::index_directory;
use pkgsum::excerpt::Escaped;
use pkgsum::push::check::{self, Found};
use pkgsum::push::upload::{self, Sending, Sent};
use pkgsum::push::wait::{self, Fate};
use pkgsum::push::{Checked, PushOptions};
use pkgsum::repo::Repo;
use pkgsum::store::Store;
use pkgsum::store::open::RepoUrl;
use pkgsum::verdict::Verdict;

use super::report::{Bar, Line, count, say_fate, say_unanswered};

pub const ABOUT: &str = "Publish packages to a repository (s3://BUCKET/PREFIX/, or a directory) \
    as a release manager would. Every file is checked before anything is uploaded: read as the \
    indexer reads it, built for the repository's platform, signed as PKGSUM_SIGNATURES requires, \
    and not a different file than the one already at its key (--replace replaces it); its \
    DEPENDS are checked against the repository and this push (a warning). Each is uploaded as \
    PKGNAME.tgz with a checksum the store verifies, all as one release that the indexer \
    publishes in one generation. Then push waits until every package is in the published \
    summary, and says after how long; --json prints one report for CI. A directory gets each \
    file atomically and is indexed at once.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// s3://BUCKET/PREFIX/, a directory, or file://DIR
    dest: String,
    /// Package files
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Replace a different file already at a key
    #[arg(long)]
    replace: bool,
    /// Upload the files that pass when some do not (else nothing is)
    #[arg(long)]
    skip_bad: bool,
    /// Return once uploaded, without waiting for the indexer
    #[arg(long)]
    no_wait: bool,
    /// How long to wait for the indexer
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Print one JSON report on standard output
    #[arg(long)]
    json: bool,
    /// Uploads in flight (default: PKGSUM_CONCURRENCY, 16)
    #[arg(long, short)]
    jobs: Option<usize>,
    /// Files larger than this many MiB go in a multipart upload of parts
    /// this size (5 to 5120; each upload in flight holds one part)
    #[arg(long, value_name = "MIB", default_value_t = 16, value_parser = clap::value_parser!(u64).range(5..=5120))]
    part_size: u64,
}

pub async fn run(args: Args) -> anyhow::Result<Verdict> {
    let started = Instant::now();
    let (url, repository, mut config) = super::open_for_writing(&args.dest).await?;
    if let Some(jobs) = args.jobs {
        config.concurrency = jobs.max(1);
    }
    let repo = Repo::new(&repository.store, &repository.prefix, &config);
    let options = PushOptions {
        replace: args.replace,
        skip_bad: args.skip_bad,
    };
    let published = check::published(&repo).await?;
    let found = check::check(&repo, &args.files, options, published.as_ref()).await?;
    let mut lines: Vec<Line> = Vec::new();
    say_checked(&found, &url, &mut lines);
    if found.checked.is_empty() || !found.refused.is_empty() && !args.skip_bad {
        eprintln!(
            "pkgsum: {url}: nothing uploaded: {} of {} failed the checks",
            found.refused.len(),
            args.files.len()
        );
        return finish(&args, &url, None, lines, Verdict::Failed, started);
    }
    let before = wait::status_generation(&repo).await?;
    let release = upload::release_of(&found.checked);
    let sent = match &url {
        RepoUrl::Dir(dir) => upload::copy_into(dir, &found.checked),
        RepoUrl::S3 { .. } => {
            let bar = Bar::new("uploading", &url.to_string())?;
            let store = repo.store();
            let sending = Sending {
                release: release.as_ref(),
                concurrency: config.concurrency,
                part_size: args.part_size.saturating_mul(1 << 20),
            };
            upload::upload(store, repo.prefix(), &found.checked, sending, &bar).await
        }
    };
    let mut failed = false;
    let mut pushed = Vec::new();
    for (checked, sent) in found.checked.iter().zip(&sent) {
        let location = repo
            .store()
            .location(&format!("{}{}", repo.prefix(), checked.name));
        match sent {
            Sent::Failed(why) => {
                failed = true;
                eprintln!("pkgsum: {location}: not uploaded: {why}");
                lines.push(line(checked, "failed", None, Some(why.clone())));
            }
            Sent::Present => {
                eprintln!("pkgsum: {location}: the same bytes are there already");
                pushed.push(checked);
            }
            Sent::Uploaded(_) => pushed.push(checked),
        }
    }
    if let RepoUrl::Dir(dir) = &url {
        let report = index_directory(dir, &config, &()).await?;
        super::report::print_report(&report);
    }
    let release_text = release.as_ref().map(ToString::to_string);
    if args.no_wait && matches!(url, RepoUrl::S3 { .. }) {
        for checked in &pushed {
            lines.push(line(checked, "uploaded", None, None));
        }
        let verdict = if failed {
            Verdict::Failed
        } else {
            Verdict::Indexed
        };
        return finish(&args, &url, release_text, lines, verdict, started);
    }
    let watched: Vec<(String, Vec<u8>, u64)> = pushed
        .iter()
        .map(|c| (c.name.clone(), c.record.clone(), c.size))
        .collect();
    let waited = wait::wait(&repo, &watched, started, before, args.timeout).await?;
    let mut verdict = if failed {
        Verdict::Failed
    } else {
        Verdict::Indexed
    };
    for checked in &pushed {
        let location = repo
            .store()
            .location(&format!("{}{}", repo.prefix(), checked.name));
        let fate = waited
            .fates
            .get(&checked.name)
            .cloned()
            .unwrap_or(Fate::Waiting);
        let (state, seconds, reason, called) = say_fate(&location, fate, "uploaded", args.timeout);
        verdict = verdict.max(called);
        lines.push(line(checked, state, seconds, reason));
    }
    if !waited.answered && !pushed.is_empty() {
        say_unanswered(&url, args.timeout);
    }
    finish(&args, &url, release_text, lines, verdict, started)
}

/// Says what the checks refused, renamed and warned of.
fn say_checked(found: &Found, url: &RepoUrl, lines: &mut Vec<Line>) {
    for refused in &found.refused {
        eprintln!("pkgsum: {}: {}", refused.path.display(), refused.why);
        lines.push(Line {
            from: refused.path.display().to_string(),
            name: None,
            state: "refused",
            seconds: None,
            reason: Some(refused.why.clone()),
        });
    }
    for checked in &found.checked {
        let local = checked.path.file_name().and_then(|n| n.to_str());
        if local != Some(checked.name.as_str()) {
            eprintln!(
                "pkgsum: {}: uploaded as {} (pkgin downloads PKGNAME.tgz)",
                checked.path.display(),
                Escaped(&checked.name)
            );
        }
    }
    for (name, warning) in &found.warnings {
        eprintln!("pkgsum: {url}{}: warning: {warning}", Escaped(name));
    }
}

fn line(
    checked: &Checked,
    state: &'static str,
    seconds: Option<f64>,
    reason: Option<String>,
) -> Line {
    Line {
        from: checked.path.display().to_string(),
        name: Some(checked.name.clone()),
        state,
        seconds,
        reason,
    }
}

/// The last line, or the JSON report, and the verdict.
fn finish(
    args: &Args,
    url: &RepoUrl,
    release: Option<String>,
    lines: Vec<Line>,
    verdict: Verdict,
    started: Instant,
) -> anyhow::Result<Verdict> {
    let live = lines.iter().filter(|l| l.state == "live").count();
    if args.json {
        let packages: Vec<serde_json::Value> = lines.iter().map(|l| l.json("file")).collect();
        let report = serde_json::json!({
            "repository": url.to_string(),
            "release": release,
            "verdict": verdict.as_str(),
            "seconds": started.elapsed().as_secs_f64(),
            "packages": packages,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    eprintln!(
        "pkgsum: {url}: {} live of {} in {:.1} s",
        count(live, "package"),
        args.files.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(verdict)
}
