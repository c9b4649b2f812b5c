//! `pkgsum prune URL`: retention that cannot break a client; a dry run
//! unless `--apply`.

use std::time::{Duration, SystemTime};

use anyhow::bail;
use pkgsum::excerpt::{Escaped, count};
use pkgsum::prune::{self, Plan, Pruned};
use pkgsum::repo::Repo;
use pkgsum::verdict::Verdict;

use super::report::print_report;

pub const ABOUT: &str = "Delete old package files from a repository (s3://BUCKET/PREFIX/, or a \
    directory) without breaking a client. --keep N keeps the newest N versions of each PKGPATH \
    (and PKGBASE), in pkg_install's dewey order, ties broken by the later BUILD_DATE; \
    --older-than lets go only files uploaded longer ago; given both, a file must break both. \
    Whatever the rules say, a file stays if the current summary or the index lists it, if a \
    generation current within --grace listed it (clients may have installed it and pkgin \
    needs it to upgrade), or if it is the newest package left that satisfies a DEPENDS of a \
    package that stays. Prints each file that would go, why, and the bytes freed; --apply \
    deletes them, each only while it still holds the ETag it was judged at, then indexes the \
    deleted names so the summary follows. Under PKGSUM_SELECT=all the summary lists every \
    file, so nothing goes: with newest, older versions leave the summary first, and go once \
    --grace has passed.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// s3://BUCKET/PREFIX/, a directory, or file://DIR
    url: String,
    /// Keep the newest N versions of each PKGPATH (and PKGBASE)
    /// (default: PKGSUM_PRUNE_KEEP)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    keep: Option<u32>,
    /// Let go only files uploaded longer ago than this, e.g. 90d
    /// (default: PKGSUM_PRUNE_OLDER_THAN)
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    older_than: Option<Duration>,
    /// Keep files listed by a generation current within this long
    /// (default: PKGSUM_PRUNE_GRACE, 30d)
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    grace: Option<Duration>,
    /// Delete the files (without it, only say what would go)
    #[arg(long)]
    apply: bool,
    /// One JSON object, for tools
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> anyhow::Result<Verdict> {
    let mut options = pkgsum::config::Config::from_env()?.prune;
    if let Some(keep) = args.keep {
        options.rules.keep = Some(keep as usize);
    }
    if let Some(age) = args.older_than {
        options.rules.older_than = Some(age.as_secs());
    }
    if let Some(grace) = args.grace {
        options.grace = grace;
    }
    if !options.is_set() {
        bail!("say which files may go: --keep N, --older-than DURATION, or both");
    }
    let (url, repository, config) = super::open_for_writing(&args.url).await?;
    let repo = Repo::new(&repository.store, &repository.prefix, &config);
    let plan = prune::judge(&repo, options, SystemTime::now()).await?;
    let pruned = match args.apply {
        true => Some(prune::apply(&repo, &plan, &()).await?),
        false => None,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json(&plan, pruned.as_ref()))?
        );
    } else {
        print_plan(&plan, pruned.as_ref());
    }
    let Some(pruned) = pruned else {
        eprintln!(
            "pkgsum: {url}: {} would go, {} freed; {} kept by the summary, the history or DEPENDS (a dry run: --apply deletes them)",
            count(plan.going().count(), "file"),
            bytes(plan.bytes()),
            plan.shielded().count(),
        );
        return Ok(Verdict::Indexed);
    };
    if let Some(applied) = &pruned.applied {
        print_report(&applied.report);
    }
    eprintln!(
        "pkgsum: {url}: deleted {}, {} freed{}",
        count(pruned.deleted.len(), "file"),
        bytes(pruned.bytes),
        match pruned.kept.len() {
            0 => String::new(),
            n => format!("; {n} kept after all (changed since judged)"),
        }
    );
    Ok(pruned
        .applied
        .as_ref()
        .map_or(Verdict::Indexed, |a| a.report.verdict()))
}

/// Each file that goes (or went), then each the rules let go that
/// something kept, a line each.
fn print_plan(plan: &Plan, pruned: Option<&Pruned>) {
    let verb = if pruned.is_some() {
        "deleted"
    } else {
        "would go"
    };
    let kept_after: Vec<&str> = pruned
        .map(|p| p.kept.iter().map(|(n, _)| n.as_str()).collect())
        .unwrap_or_default();
    for judged in plan.going() {
        if kept_after.contains(&judged.name.as_str()) {
            continue;
        }
        println!(
            "{verb}: {} ({}): {}",
            Escaped(&judged.name),
            bytes(judged.size),
            judged.why
        );
    }
    for (name, why) in pruned.map(|p| p.kept.as_slice()).unwrap_or_default() {
        println!("kept: {}: {why}", Escaped(name));
    }
    for judged in plan.shielded() {
        println!("kept: {}: {}", Escaped(&judged.name), judged.why);
    }
}

/// The plan and what was done, for tools.
fn json(plan: &Plan, pruned: Option<&Pruned>) -> serde_json::Value {
    let files: Vec<serde_json::Value> = plan
        .judged
        .iter()
        .map(|j| {
            serde_json::json!({
                "name": j.name,
                "size": j.size,
                "goes": j.goes,
                "why": j.why.to_string(),
            })
        })
        .collect();
    serde_json::json!({
        "repository": plan.repository,
        "applied": pruned.is_some(),
        "bytes": plan.bytes(),
        "files": files,
        "deleted": pruned.map(|p| p.deleted.clone()),
        "kept": pruned.map(|p| p.kept.iter().map(|(n, w)| serde_json::json!({"name": n, "why": w})).collect::<Vec<_>>()),
    })
}

/// A size people read: 512 bytes, 1.5 MiB.
fn bytes(n: u64) -> String {
    const MIB: f64 = (1 << 20) as f64;
    match n {
        0..1024 => count(n as usize, "byte"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / MIB),
    }
}
