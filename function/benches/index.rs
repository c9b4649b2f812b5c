//! `cargo bench`: figures for docs/benchmarks.md, not pass/fail.
//!
//! Builds a corpus of packages with the project's own test kit, then
//! measures `pkgsum index` (`index_directory`) cold (no state) and warm
//! (nothing changed), against the pipeline it replaces (`pkgsum record`
//! into gzip, bzip2 and xz), the bytes read per package against package
//! size, one package added to a directory of 20,000, and the time to
//! render a 20,000-record summary in each format.
//!
//! `PKGSUM_BENCH_PACKAGES` (default 1000) and `PKGSUM_BENCH_RECORDS`
//! (default 20000) change the sizes; `PKGSUM_BENCH_CORPUS=DIR` builds the
//! corpus in DIR and keeps it (to profile `pkgsum index` on a copy).

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use pkgsum::compression::Compression;
use pkgsum::config::Config;
use pkgsum::create::{PackageBuilder, noise};
use pkgsum::directory::index_directory;
use pkgsum::header::read_header;
use pkgsum::limit::Limits;
use pkgsum::repo::Report;
use pkgsum::state::{Change, Package, State};

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator for corpus shapes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Log-uniform in [lo, hi): many small packages, a few large ones, as
    /// in a real repository.
    fn log_uniform(&mut self, lo: f64, hi: f64) -> usize {
        let u = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        (lo * (hi / lo).powf(u)) as usize
    }
}

fn build_corpus(dir: &Path, count: usize) -> (u64, u64) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut total, mut largest) = (0u64, 0u64);
    for i in 0..count {
        let payload = rng.log_uniform(2048.0, 2.0 * 1024.0 * 1024.0);
        let files = rng.log_uniform(1.0, 400.0);
        let compression = match i % 20 {
            0 => Compression::Xz,
            1 => Compression::Bzip2,
            2 => Compression::Zstd,
            _ => Compression::Gzip,
        };
        let name = format!("bench{i:05}-1.{}", i % 7);
        let mut builder = PackageBuilder::new(&name).compression(compression);
        let per_file = payload / files;
        for f in 0..files {
            builder = builder.file(
                &format!("share/{name}/f{f:04}"),
                noise(i as u64 * 7919 + f as u64, per_file),
            );
        }
        let bytes = builder.build().expect("corpus package");
        total += bytes.len() as u64;
        largest = largest.max(bytes.len() as u64);
        fs::write(dir.join(format!("{name}.tgz")), bytes).expect("write corpus");
    }
    (total, largest)
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn drop_page_cache() -> bool {
    // Needs root and a writable /proc/sys; where it fails (or with
    // PKGSUM_BENCH_KEEP_CACHE=1), "cold" means "no state" with the files
    // still in the page cache.
    std::env::var_os("PKGSUM_BENCH_KEEP_CACHE").is_none()
        && fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

fn bench_index(count: usize) {
    let tmp = tempfile::tempdir().expect("tempdir");
    // PKGSUM_BENCH_CORPUS=DIR builds the corpus there and keeps it, to
    // profile `pkgsum index` on it (copied, so each run starts cold).
    let kept = std::env::var_os("PKGSUM_BENCH_CORPUS").map(std::path::PathBuf::from);
    let dir = kept.as_deref().unwrap_or(tmp.path());
    fs::create_dir_all(dir).expect("corpus directory");
    let start = Instant::now();
    let (total, largest) = build_corpus(dir, count);
    println!(
        "corpus: {count} packages, {:.1} MiB, largest {:.2} MiB, built in {:.1} s",
        total as f64 / 1048576.0,
        largest as f64 / 1048576.0,
        start.elapsed().as_secs_f64()
    );
    // The CLI's settings (PKGSUM_CONCURRENCY, ...) apply here too.
    let config = Config::from_env().expect("PKGSUM_* settings");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let index = |what: &str| -> Report {
        runtime
            .block_on(index_directory(dir, &config, &()))
            .expect(what)
    };
    let dropped = drop_page_cache();

    let start = Instant::now();
    let cold = index("cold index");
    let cold_time = start.elapsed();
    assert_eq!(cold.packages, count, "{:?}", cold.failures);

    let start = Instant::now();
    let warm = index("warm index");
    let warm_time = start.elapsed();
    assert!(warm.read.is_empty());

    // One package replaced: the typical upload.
    let one = PackageBuilder::new("bench00000-1.0")
        .build()
        .expect("package");
    fs::write(dir.join("bench00000-1.0.tgz"), one).expect("write");
    let start = Instant::now();
    let single = index("single update");
    let single_time = start.elapsed();
    assert_eq!(single.read.len(), 1);

    let pipeline_time = pipeline(dir);

    let summary_gz = fs::metadata(dir.join("pkg_summary.gz"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!();
    println!("| `pkgsum index` on {count} packages | time | packages/s |");
    println!("|---|---|---|");
    println!(
        "| cold: no state, every header read{} | {:.2} s | {:.0} |",
        if dropped { ", page cache dropped" } else { "" },
        cold_time.as_secs_f64(),
        per_sec(count, cold_time)
    );
    println!(
        "| warm: nothing changed, no package read | {:.1} ms | {:.0} |",
        warm_time.as_secs_f64() * 1000.0,
        per_sec(count, warm_time)
    );
    println!(
        "| one package replaced: 1 read, the runs it touches recompressed | {:.3} s | - |",
        single_time.as_secs_f64()
    );
    println!(
        "| the pipeline: `pkgsum record *.tgz` into `gzip -9`, `bzip2 -9` and `xz -6` at once{} | {:.2} s | {:.0} |",
        if dropped { ", page cache dropped" } else { "" },
        pipeline_time.as_secs_f64(),
        per_sec(count, pipeline_time)
    );
    println!();
    println!("| bytes read per package | value |");
    println!("|---|---|");
    println!(
        "| mean package size | {:.1} KiB |",
        total as f64 / count as f64 / 1024.0
    );
    println!(
        "| mean bytes read (cold) | {:.1} KiB |",
        cold.bytes_fetched as f64 / count as f64 / 1024.0
    );
    println!(
        "| bytes read / bytes stored | {:.2} % |",
        100.0 * cold.bytes_fetched as f64 / total as f64
    );
    println!(
        "| pkg_summary.gz for {count} records | {:.1} KiB |",
        summary_gz as f64 / 1024.0
    );
    bytes_read_by_size(dir);
}

/// What `pkg_info -X *.tgz | gzip -9` and its bzip2 and xz siblings cost,
/// with pkgsum's own `record` standing in for pkg_info: one process
/// printing every record, its output teed into the three compressors
/// running at once. Cold, like the cold index it is compared with.
fn pipeline(dir: &Path) -> Duration {
    let out = tempfile::tempdir().expect("tempdir");
    let script = format!(
        "cd '{}' && mkfifo '{o}/g' '{o}/b' && {{ gzip -9 < '{o}/g' > '{o}/s.gz' & bzip2 -9 < '{o}/b' > '{o}/s.bz2' & '{}' record *.tgz | tee '{o}/g' '{o}/b' | xz -6 > '{o}/s.xz'; wait; }}",
        dir.display(),
        env!("CARGO_BIN_EXE_pkgsum"),
        o = out.path().display()
    );
    drop_page_cache();
    let start = Instant::now();
    let status = std::process::Command::new("bash")
        .args(["-c", &script])
        .status()
        .expect("bash");
    let took = start.elapsed();
    assert!(status.success(), "the pipeline failed");
    // The same records as the index publishes (the pipeline sorts by
    // the shell's glob order, which is the bytewise order here).
    let mut text = Vec::new();
    let gz = fs::read(out.path().join("s.gz")).expect("s.gz");
    std::io::Read::read_to_end(
        &mut Compression::Gzip.decoder(&gz[..]).expect("gzip"),
        &mut text,
    )
    .expect("gunzip");
    assert!(!text.is_empty());
    took
}

/// One package added to a directory of `count` packages (records shaped
/// like pkgsrc's, small payloads) that `pkgsum index` has indexed: the
/// time of that index run, and what it read and wrote.
fn bench_one_added(count: usize) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let start = Instant::now();
    for i in 0..count {
        let meta = pkgsum::sample::metadata(i);
        let package = PackageBuilder::new(&pkgsum::sample::pkgname(i))
            .member("+CONTENTS", meta.contents)
            .member("+COMMENT", meta.comment)
            .member("+DESC", meta.desc)
            .member("+BUILD_INFO", meta.build_info.unwrap_or_default())
            .member("+SIZE_PKG", meta.size_pkg.unwrap_or_default())
            .build()
            .expect("package");
        let name = format!("{}.tgz", pkgsum::sample::pkgname(i));
        fs::write(dir.join(name), package).expect("write");
    }
    let built = start.elapsed();
    let config = Config::from_env().expect("PKGSUM_* settings");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let index = |what: &str| -> (Report, Duration) {
        let start = Instant::now();
        let report = runtime
            .block_on(index_directory(dir, &config, &()))
            .expect(what);
        (report, start.elapsed())
    };
    let (cold, cold_time) = index("cold index");
    assert_eq!(cold.packages, count, "{:?}", cold.failures);
    let mut added = Vec::new();
    for k in 0..5 {
        let name = format!("{}a{k}-1.0", pkgsum::sample::pkgname(count / 2 + k * 97));
        let package = PackageBuilder::new(&name).build().expect("package");
        fs::write(dir.join(format!("{name}.tgz")), package).expect("write");
        // pkgin's one-second rule: a local directory is given the next
        // second's modification time rather than waited for.
        let (report, took) = index("one added");
        assert_eq!((report.read.len(), report.packages), (1, count + k + 1));
        added.push((took, report.runs_compressed, report.runs_copied));
    }
    println!();
    println!(
        "| `pkgsum index`, a directory of {count} packages (built in {:.0} s) | time | runs compressed / copied |",
        built.as_secs_f64()
    );
    println!("|---|---|---|");
    println!(
        "| cold: every header read, every run compressed | {:.2} s | {} / 0 |",
        cold_time.as_secs_f64(),
        cold.runs_compressed
    );
    for (k, (took, compressed, copied)) in added.iter().enumerate() {
        println!(
            "| one package added ({}) | {:.0} ms | {compressed} / {copied} |",
            k + 1,
            took.as_secs_f64() * 1000.0
        );
    }
}

/// Running sums for one row of a bytes-read table.
#[derive(Default, Clone, Copy)]
struct Sums {
    count: u64,
    size: u64,
    read: u64,
    max_read: u64,
}

impl Sums {
    fn add(&mut self, size: u64, read: u64) {
        self.count += 1;
        self.size += size;
        self.read += read;
        self.max_read = self.max_read.max(read);
    }

    fn row(&self, label: &str) {
        if self.count == 0 {
            return;
        }
        let kib = |b: u64| b as f64 / 1024.0;
        println!(
            "| {label} | {} | {:.1} KiB | {:.1} KiB | {:.1} KiB |",
            self.count,
            kib(self.size) / self.count as f64,
            kib(self.read) / self.count as f64,
            kib(self.max_read)
        );
    }
}

/// Bytes the header reader takes from packages by size and by codec: the
/// cost should not grow with the payload.
fn bytes_read_by_size(dir: &Path) {
    const KIB: u64 = 1024;
    let buckets = [(0, 64 * KIB), (64 * KIB, 512 * KIB), (512 * KIB, u64::MAX)];
    let codecs = [
        Compression::Gzip,
        Compression::Bzip2,
        Compression::Xz,
        Compression::Zstd,
    ];
    let mut by_size = [Sums::default(); 3];
    let mut by_codec = [Sums::default(); 4];
    for entry in fs::read_dir(dir).expect("corpus dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "tgz") {
            continue;
        }
        let size = fs::metadata(&path).expect("stat").len();
        let file = fs::File::open(&path).expect("open");
        let header = read_header(file, &Limits::default()).expect("header");
        let b = buckets
            .iter()
            .position(|(lo, hi)| (*lo..*hi).contains(&size))
            .unwrap_or(2);
        by_size[b].add(size, header.consumed);
        if let Some(c) = codecs.iter().position(|&c| c == header.compression) {
            by_codec[c].add(size, header.consumed);
        }
    }
    println!();
    println!("| package | packages | mean size | mean bytes read | most bytes read |");
    println!("|---|---|---|---|---|");
    for ((lo, hi), sums) in buckets.iter().zip(by_size) {
        let label = if *hi == u64::MAX {
            format!("size >= {} KiB", lo / KIB)
        } else {
            format!("size {}–{} KiB", lo / KIB, hi / KIB)
        };
        sums.row(&label);
    }
    for (codec, sums) in codecs.iter().zip(by_codec) {
        sums.row(codec.name());
    }
}

/// A realistic record: pkgsrc-like metadata with dependencies and a
/// description of a few lines.
fn bench_render(records: usize) {
    let mut state = State::default();
    state.apply((0..records).map(|i| {
        let (name, record) = pkgsum::sample::record(i);
        Change::Indexed {
            name,
            package: Package {
                size: record.len() as u64,
                record,
                token: format!("\"{i:032x}\""),
                warnings: Vec::new(),
            },
            verdict: None,
        }
    }));
    let summary = state.summary();
    println!();
    println!(
        "| rendering {records} records ({:.1} MiB uncompressed) | time | output | ratio |",
        summary.len() as f64 / 1048576.0
    );
    println!("|---|---|---|---|");
    for format in [
        Compression::Gzip,
        Compression::Bzip2,
        Compression::Xz,
        Compression::Zstd,
    ] {
        let start = Instant::now();
        let out = format.compress(&summary).expect("compress");
        let took = start.elapsed();
        println!(
            "| {} | {:.2} s | {:.0} KiB | {:.1} % |",
            format.name(),
            took.as_secs_f64(),
            out.len() as f64 / 1024.0,
            100.0 * out.len() as f64 / summary.len() as f64
        );
    }
    let start = Instant::now();
    let cut = state.cut().expect("state");
    let save = start.elapsed();
    let limit = pkgsum::state::DEFAULT_STATE_LIMIT;
    let start = Instant::now();
    let mut back = State::from_bytes(&cut.manifest, limit).expect("state");
    for (i, (piece, bytes)) in cut.made.iter().enumerate() {
        back.load(
            i,
            pkgsum::piece::decode(bytes, piece, limit).expect("piece"),
        );
    }
    let load = start.elapsed();
    assert!(back.is_loaded() && back.len() == records);
    let stored: Vec<u8> = cut
        .made
        .iter()
        .flat_map(|(_, b)| b.iter().copied())
        .collect();
    println!(
        "| state file (save / load) | {:.3} s / {:.3} s | {:.0} KiB | {:.1} % |",
        save.as_secs_f64(),
        load.as_secs_f64(),
        stored.len() as f64 / 1024.0,
        100.0 * stored.len() as f64 / summary.len() as f64
    );
}

fn main() {
    // `cargo bench` passes "--bench"; other harness flags are ignored.
    let packages = env_count("PKGSUM_BENCH_PACKAGES", 1000);
    let records = env_count("PKGSUM_BENCH_RECORDS", 20_000);
    println!(
        "pkgsum bench on {} CPUs ({})",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        std::env::consts::ARCH
    );
    bench_index(packages);
    bench_one_added(records);
    bench_render(records);
    println!();
    println!("peak resident memory of the whole bench: {}", peak_rss());
}

/// VmHWM from /proc: the process's peak resident set.
fn peak_rss() -> String {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l[6..].trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}
