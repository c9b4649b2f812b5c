//! `pkgsum history URL` and `pkgsum rollback URL --to GEN`: what each
//! published generation was, and publishing one of them again.

use pkgsum::changelog::Changes;
use pkgsum::config::Config;
use pkgsum::excerpt::Bare;
use pkgsum::gate::utc;
use pkgsum::repo::{Entry, Repo};
use pkgsum::store::open::{Buckets, RepoUrl, open};
use pkgsum::verdict::Verdict;

use super::report::count;

pub const HISTORY_ABOUT: &str = "List a repository's published generations (s3://BUCKET/PREFIX/, \
    or a directory), oldest first: when each was published, how many packages its summary \
    lists, and which PKGNAMEs it added, removed and replaced since the one before. The \
    summaries of the last PKGSUM_HISTORY generations are kept in .pkgsum/history/ for \
    `pkgsum rollback`.";

pub const ROLLBACK_ABOUT: &str = "Publish a kept generation's summaries again, as a new \
    generation with a later Last-Modified (so pkgin fetches them), after checking that every \
    file they list is still in the bucket (else nothing is published and the missing files are \
    named). Publication is then held, so the next upload does not undo the rollback: \
    uploads are still indexed, and `pkgsum resume` publishes the newest state.";

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// s3://BUCKET/PREFIX/, a directory, or file://DIR
    url: String,
    /// One JSON array of every entry, for tools
    #[arg(long)]
    json: bool,
    /// Only the newest N generations
    #[arg(long, value_name = "N")]
    last: Option<usize>,
}

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// s3://BUCKET/PREFIX/, a directory, or file://DIR
    url: String,
    /// The generation to publish again (see `pkgsum history`)
    #[arg(long, value_name = "GEN")]
    to: u64,
}

pub async fn history(args: HistoryArgs) -> anyhow::Result<Verdict> {
    let url: RepoUrl = args.url.parse()?;
    let config = Config::from_env()?;
    let repository = open(&url, &Buckets::from_env(), false).await?;
    let repo = Repo::new(&repository.store, &repository.prefix, &config);
    let mut entries = repo.history().await?;
    if let Some(last) = args.last {
        entries.drain(..entries.len().saturating_sub(last));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(Verdict::Indexed);
    }
    if entries.is_empty() {
        eprintln!("pkgsum: {url}: no generation in the history yet");
    }
    for entry in &entries {
        print_entry(entry);
    }
    Ok(Verdict::Indexed)
}

/// One generation: a line, then a line per kind of change.
fn print_entry(entry: &Entry) {
    let Changes {
        added,
        removed,
        replaced,
        more,
        complete,
        who,
    } = &entry.changes;
    let note = entry
        .note
        .as_deref()
        .map(|n| format!(" ({})", Bare(n)))
        .unwrap_or_default();
    println!(
        "generation {}  {}  {}  +{} -{} ~{}{note}",
        entry.generation,
        utc(entry.time),
        count(entry.packages, "package"),
        added.len(),
        removed.len(),
        replaced.len(),
    );
    for (what, names) in [
        ("added", added),
        ("removed", removed),
        ("replaced", replaced),
    ] {
        if !names.is_empty() {
            let names: Vec<String> = names.iter().map(|n| Bare(n).to_string()).collect();
            println!("  {what}: {}", names.join(" "));
        }
    }
    if *more > 0 {
        println!("  and {more} more changes not listed");
    }
    if !who.is_empty() {
        let who: Vec<String> = who.iter().map(|n| Bare(n).to_string()).collect();
        println!("  by: {}", who.join(" "));
    }
    if !complete && entry.note.is_none() {
        println!(
            "  (changes before generation {} are not all recorded)",
            entry.previous + 1
        );
    }
}

pub async fn rollback(args: RollbackArgs) -> anyhow::Result<Verdict> {
    let (url, repository, config) = super::open_for_writing(&args.url).await?;
    let repo = Repo::new(&repository.store, &repository.prefix, &config);
    let rolled = repo.rollback(args.to).await?;
    eprintln!(
        "pkgsum: {url}: generation {} published again as generation {} ({}, every file present); \
         publication is held until `pkgsum resume`",
        args.to,
        rolled.generation,
        count(rolled.packages, "package"),
    );
    Ok(Verdict::Indexed)
}
