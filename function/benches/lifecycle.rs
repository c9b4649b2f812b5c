//! `cargo bench --bench lifecycle`: what the repository-lifecycle features
//! cost at 20,000 packages (`PKGSUM_BENCH_RECORDS`), records shaped like
//! pkgsrc's. Figures for docs/benchmarks.md, not pass/fail.
//!
//! 1. The site: the size of what the page fetches on opening
//!    (`index.html` and every run's table), of the runs' details, and of
//!    `packages.json` with its parts, and each gzip-compressed as a CDN
//!    would send it; the site is written to `PKGSUM_BENCH_SITE_OUT`
//!    (default under the temporary directory) and, where Debian's
//!    Chromium is installed, opened headless: the time from navigation to
//!    the first contentful paint and to every row built, and the filter
//!    one keystroke runs (`a`, which most rows match).
//! 2. Retention: judging every package (`retention::judge`) and the whole
//!    dry run over the in-memory store (`prune::judge`: the state, the
//!    summary and the history read).

use std::time::{Duration, Instant, SystemTime};

use pkgsum::compression::Compression;
use pkgsum::config::Config;
use pkgsum::prune::{self, PruneOptions};
use pkgsum::repo::Repo;
use pkgsum::retention::{self, File, Rules, Shield};
use pkgsum::sample;
use pkgsum::store::Store;
use pkgsum::store::memory::MemoryStore;

fn records() -> usize {
    std::env::var("PKGSUM_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// The median of `runs` timings of `f`.
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

#[tokio::main]
async fn main() {
    let n = records();
    let store = MemoryStore::new();
    let config = Config::default();
    let state = pkgsum::testing::seed(&store, "All/", n, sample::record, &config).await;
    let repo = Repo::new(&store, "All/", &config);

    let out = std::env::var("PKGSUM_BENCH_SITE_OUT").unwrap_or_else(|_| {
        std::env::temp_dir()
            .join(format!("pkgsum-site-{n}"))
            .display()
            .to_string()
    });
    let out = std::path::Path::new(&out);
    std::fs::create_dir_all(out.join("site")).unwrap();
    let gz = |b: &[u8]| Compression::Gzip.compress(b).unwrap().len();
    let mut sizes: std::collections::BTreeMap<&str, (usize, usize, usize)> = Default::default();
    for (kind, key) in [("page", "All/index.html"), ("tools", "All/packages.json")] {
        let (body, _) = store.get(key).await.unwrap().unwrap();
        std::fs::write(out.join(&key[4..]), &body).unwrap();
        let entry = sizes.entry(kind).or_default();
        *entry = (entry.0 + 1, entry.1 + body.len(), entry.2 + gz(&body));
    }
    for meta in store.list("All/site/").await.unwrap() {
        let (body, _) = store.get(&meta.key).await.unwrap().unwrap();
        std::fs::write(out.join(&meta.key[4..]), &body).unwrap();
        let kind = if meta.key.ends_with(".details.js") {
            "details"
        } else if meta.key.ends_with(".js") {
            "page"
        } else {
            "tools"
        };
        let entry = sizes.entry(kind).or_default();
        *entry = (entry.0 + 1, entry.1 + body.len(), entry.2 + gz(&body));
    }
    let mib = |b: usize| b as f64 / 1048576.0;
    println!("| {n} packages | files | bytes | gzip |");
    println!("|---|---|---|---|");
    for (kind, what) in [
        (
            "page",
            "what the page fetches on opening: index.html and every run's table",
        ),
        (
            "details",
            "the runs' details (fetched one run at a time, when a package is opened)",
        ),
        ("tools", "packages.json and the parts it names"),
    ] {
        let (files, bytes, gzip) = sizes[kind];
        println!(
            "| {what} | {files} | {:.2} MiB | {:.2} MiB |",
            mib(bytes),
            mib(gzip)
        );
    }
    chromium(&out.join("index.html"));

    let loaded: Vec<(String, Vec<u8>)> = state
        .packages()
        .map(|(n, p)| (n.to_owned(), p.record.clone()))
        .collect();
    let files: Vec<File> = loaded
        .iter()
        .map(|(name, record)| File {
            name,
            size: 1,
            modified: Some(0),
            record,
        })
        .collect();
    let rules = Rules {
        keep: Some(1),
        older_than: None,
    };
    let pure = median(5, || {
        retention::judge(&files, rules, &Shield::default(), 1);
    });
    let options = PruneOptions {
        rules,
        ..PruneOptions::default()
    };
    let start = Instant::now();
    let plan = prune::judge(&repo, options, SystemTime::now())
        .await
        .unwrap();
    let whole = start.elapsed();
    println!();
    println!("| retention, {n} packages | time |");
    println!("|---|---|");
    println!(
        "| judging every package (`retention::judge`, DEPENDS included) | {:.0} ms |",
        pure.as_secs_f64() * 1000.0
    );
    println!(
        "| the dry run on the memory store (`prune::judge`: state, summary, history) | {:.0} ms ({} going) |",
        whole.as_secs_f64() * 1000.0,
        plan.going().count()
    );
}

/// Opens the page in headless Chromium, if it is installed: the time to
/// the script's end and the one-keystroke filter, as the page records them.
fn chromium(page: &std::path::Path) {
    let profile = std::env::temp_dir().join("pkgsum-bench-chromium");
    let mut ready = Vec::new();
    let mut filter = Vec::new();
    let mut paint = Vec::new();
    for _ in 0..5 {
        let out = std::process::Command::new("chromium")
            .args(pkgsum::testing::CHROMIUM_FLAGS)
            .args([
                &format!("--user-data-dir={}", profile.display()),
                "--dump-dom",
                &format!("file://{}#q=a", page.display()),
            ])
            .output();
        let Ok(out) = out else {
            println!("\n(Chromium is not installed: no page timings)");
            return;
        };
        let dom = String::from_utf8_lossy(&out.stdout);
        let attr = |name: &str| -> Option<f64> {
            let at = dom.find(&format!("{name}=\""))? + name.len() + 2;
            dom[at..].split('"').next()?.parse().ok()
        };
        if let (Some(r), Some(f)) = (attr("data-ready"), attr("data-filter-ms")) {
            ready.push(r);
            filter.push(f);
        }
        paint.extend(attr("data-paint-ms"));
    }
    if ready.is_empty() {
        println!("\n(Chromium gave no timings)");
        return;
    }
    ready.sort_by(f64::total_cmp);
    filter.sort_by(f64::total_cmp);
    paint.sort_by(f64::total_cmp);
    println!();
    println!(
        "| the page in headless Chromium (median of {}) | time |",
        ready.len()
    );
    println!("|---|---|");
    if !paint.is_empty() {
        println!(
            "| from navigation to the first contentful paint | {:.0} ms |",
            paint[paint.len() / 2]
        );
    }
    println!(
        "| from navigation to every row built (every run's table loaded, the filter applied) | {:.0} ms |",
        ready[ready.len() / 2]
    );
    println!(
        "| the filter one keystroke runs (`a`) | {:.1} ms |",
        filter[filter.len() / 2]
    );
}
