//! `cargo bench --bench hostile`: what each crafted hostile upload
//! (`pkgsum::testing::hostile`) costs the pass that meets it, for the
//! the limits table (docs/security.md). Not pass/fail: figures.
//!
//! Each upload is put beside 200 good packages in a memory store, and a
//! listing pass (the one that also runs the repository-wide checks) is
//! run over them, in a child process of its own so its peak RSS is its
//! own. A pass with no hostile upload is the baseline. Prints a Markdown
//! table: the upload's size, the pass's wall and CPU time, the child's
//! peak RSS, and what became of the upload.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Instant;

use bytes::Bytes;
use pkgsum::config::Config;
use pkgsum::create::PackageBuilder;
use pkgsum::repo::{Repo, Scope};
use pkgsum::store::memory::MemoryStore;
use pkgsum::store::{PutOptions, Store};

const GOOD: usize = 200;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--make") {
        let body = pkgsum::testing::hostile::upload(&args[at + 1]).expect("a known upload");
        std::fs::write(&args[at + 2], body).expect("written");
        return;
    }
    if let Some(at) = args.iter().position(|a| a == "--one") {
        let name = &args[at + 1];
        let file = args.get(at + 2).filter(|f| !f.is_empty());
        let body = file.map(|f| std::fs::read(f).expect("the upload"));
        one(name, body);
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    if let Some(at) = args.iter().position(|a| a == "--warned") {
        warned(args[at + 1] == "yes");
        return;
    }
    // This process stays small: Linux carries a process's peak RSS across
    // exec into its children, so uploads are made by a child of their own
    // and measured by another.
    let exe = std::env::current_exe().expect("this benchmark");
    println!("| upload | bytes | pass wall | pass CPU | peak RSS | what became of it |");
    println!("|---|---|---|---|---|---|");
    let names = pkgsum::testing::hostile::UPLOADS.map(|(name, _)| Some(name));
    for name in [None].into_iter().chain(names) {
        let file = tempfile::NamedTempFile::new().expect("a temporary file");
        let path = file.path().display().to_string();
        let (shown, path) = match name {
            Some(name) => {
                let made = Command::new(&exe).args(["--make", name, &path]).status();
                assert!(made.is_ok_and(|s| s.success()), "making {name}");
                (name.to_owned(), path)
            }
            None => (format!("(none: {GOOD} good packages)"), String::new()),
        };
        let size = std::fs::metadata(file.path()).map_or(0, |m| m.len());
        let out = Command::new(&exe)
            .args(["--one", &shown, &path])
            .output()
            .expect("the child");
        let line = String::from_utf8_lossy(&out.stdout);
        let line = line.trim();
        if !out.status.success() || line.is_empty() {
            let why = String::from_utf8_lossy(&out.stderr);
            println!("| {shown} | {size} | failed: {} | | | |", short(why.trim()));
            continue;
        }
        println!("| {shown} | {size} | {line} |");
    }
    // H3: with every package warned of (20,000 renamed copies), one update
    // cost 850 ms of CPU against 69 ms without warnings.
    println!();
    println!("| one update onto {WARNED} packages | CPU | peak RSS |");
    println!("|---|---|---|");
    for (label, arg) in [
        ("no package warned of", "no"),
        ("every package warned of", "yes"),
    ] {
        let out = Command::new(&exe)
            .args(["--warned", arg])
            .output()
            .expect("the child");
        let line = String::from_utf8_lossy(&out.stdout);
        println!("| {label} | {} |", line.trim());
    }
}

/// Packages in the warned-of repository.
const WARNED: usize = 20_000;

/// One package added to a repository of [`WARNED`] packages, each with a
/// pkg_info warning (`with`) or none; prints the pass's CPU and the
/// process's peak RSS, the median of five updates.
fn warned(with: bool) {
    use pkgsum::state::{Change, Package, State};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let store = MemoryStore::setting_modified();
        let config = Config::default();
        let mut state = State::default();
        state.apply((0..WARNED).map(|i| {
            let (name, record) = pkgsum::sample::record(i);
            let pkgname = name.trim_end_matches(".tgz").to_owned();
            let name = format!("copy-of-{name}");
            let warnings = match with {
                true => vec![format!(
                    "pkgin downloads \"{pkgname}.tgz\" for PKGNAME={pkgname}, not this file: \
                     the package is listed but cannot be installed (rename it to \"{pkgname}.tgz\")"
                )],
                false => Vec::new(),
            };
            Change::Indexed {
                name,
                package: Package {
                    record,
                    size: 4096,
                    token: format!("{i:032x}"),
                    warnings,
                },
                verdict: None,
            }
        }));
        let repo = Repo::new(&store, "All/", &config);
        repo.replace_state(&mut state).await.expect("the state");
        repo.publish(&mut state).await.expect("the summaries");
        let mut cpu = Vec::new();
        for n in 0..5 {
            let name = format!("new{n}-1.0");
            let package = PackageBuilder::new(&name).build().expect("a package");
            put(&store, &format!("All/{name}.tgz"), package).await;
            let names = BTreeSet::from([format!("{name}.tgz")]);
            let start = cpu_time();
            repo.apply(Scope::Names(&names), &())
                .await
                .expect("the update");
            cpu.push(cpu_time() - start);
        }
        cpu.sort_by(f64::total_cmp);
        println!("{:.0} ms | {} MiB", cpu[2] * 1000.0, peak_rss_kib() / 1024);
    });
}

/// Runs the listing pass over 200 good packages and `body` (as `name`) in
/// this process, and prints its row's figures.
fn one(name: &str, body: Option<Vec<u8>>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let store = MemoryStore::new();
        for i in 0..GOOD {
            let pkgname = format!("good{i}-1.0");
            let package = PackageBuilder::new(&pkgname).build().expect("a package");
            put(&store, &format!("All/{pkgname}.tgz"), package).await;
        }
        let config = Config::default();
        let repo = Repo::new(&store, "All/", &config);
        repo.apply(Scope::Listing, &())
            .await
            .expect("the first pass");
        if let Some(body) = body {
            put(&store, &format!("All/{name}"), body).await;
        }
        let (cpu, wall) = (cpu_time(), Instant::now());
        let report = repo
            .apply(Scope::Listing, &())
            .await
            .expect("the pass")
            .report;
        let (wall, cpu) = (wall.elapsed(), cpu_time() - cpu);
        let failure = report.failures.iter().find(|(n, _)| n == name);
        let warnings: BTreeSet<&str> = report
            .warnings
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, w)| w.as_str())
            .collect();
        let fate = match failure {
            Some((_, why)) => format!("unreadable: {}", short(why)),
            None if report.packages > GOOD => format!(
                "indexed, {} warning(s){}",
                warnings.len(),
                warnings
                    .iter()
                    .next()
                    .map(|w| format!(": {}", short(w)))
                    .unwrap_or_default()
            ),
            None => "indexed".to_owned(),
        };
        println!(
            "{:.0} ms | {:.0} ms | {} MiB | {fate}",
            wall.as_secs_f64() * 1000.0,
            cpu * 1000.0,
            peak_rss_kib() / 1024
        );
    });
}

async fn put(store: &MemoryStore, key: &str, body: Vec<u8>) {
    store
        .put(key, Bytes::from(body), PutOptions::default())
        .await
        .expect("a put");
}

/// A message cut for a table cell.
fn short(text: &str) -> String {
    let mut end = text.len().min(90);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = if end < text.len() { "…" } else { "" };
    text[..end].replace('|', "\\|") + cut
}

/// This process's user and system CPU seconds.
fn cpu_time() -> f64 {
    let usage = rusage();
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// This process's peak resident set, in KiB.
fn peak_rss_kib() -> u64 {
    rusage().ru_maxrss as u64
}

fn rusage() -> libc::rusage {
    // SAFETY: getrusage fills the struct it is given; zeroed is a valid
    // rusage.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    }
}
