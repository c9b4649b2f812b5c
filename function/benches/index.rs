//! `cargo bench`: figures for the README, not pass/fail.
//!
//! Builds a corpus of packages with the project's own test kit, then
//! measures `pkgsum index` (`index_directory`) cold (no state) and warm (nothing changed), the
//! bytes read per package against package size, and the time to render
//! a 20,000-record summary in each format.
//!
//! `PKGSUM_BENCH_PACKAGES` (default 2000) and `PKGSUM_BENCH_RECORDS`
//! (default 20000) change the sizes.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use pkgsum::compression::Compression;
use pkgsum::config::Config;
use pkgsum::create::{PackageBuilder, noise};
use pkgsum::directory::index_directory;
use pkgsum::header::read_header;
use pkgsum::limit::Limits;
use pkgsum::record::{self, FileInfo, Metadata};
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
    let dir = tmp.path();
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
        "| one package replaced: 1 read, all outputs rewritten | {:.2} s | - |",
        single_time.as_secs_f64()
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
fn synthetic_record(i: usize) -> Vec<u8> {
    let name = format!("pkg{i:05}-{}.{}nb{}", i % 13, i % 7, i % 3);
    let mut contents = format!("@cwd /usr/pkg\n@name {name}\n");
    for d in 0..(i % 6) {
        contents.push_str(&format!(
            "@pkgdep dep{}>={}.0\n@blddep dep{}-{}.0\n",
            (i + d) % 997,
            d,
            (i + d) % 997,
            d
        ));
    }
    let meta = Metadata {
        contents: contents.into_bytes(),
        comment: format!("Synthetic package number {i} for the rendering benchmark\n").into_bytes(),
        desc: format!(
            "This is package {i}. It does what packages do, and its description\n\
             runs over a few lines like most real ones.\n\nHomepage:\nhttps://example.org/{name}/\n"
        )
        .into_bytes(),
        build_info: Some(
            format!(
                "BUILD_DATE=2026-11-2{} 10:00:00 +0000\nCATEGORIES=misc devel\nHOMEPAGE=https://example.org/{name}/\n\
                 LICENSE=modified-bsd\nMACHINE_ARCH=x86_64\nOPSYS=NetBSD\nOS_VERSION=10.1\nPKGPATH=misc/pkg{i:05}\n\
                 PKGTOOLS_VERSION=20250417\nREQUIRES=/usr/lib/libc.so.12\nPROVIDES=/usr/pkg/lib/libp{i}.so.1\n",
                i % 10
            )
            .into_bytes(),
        ),
        size_pkg: Some(format!("{}\n", 1000 + i * 37).into_bytes()),
    };
    let file = format!("{name}.tgz");
    record::render(
        &meta,
        Some(FileInfo {
            name: file.as_bytes(),
            size: 5000 + i as u64 * 13,
        }),
    )
}

fn bench_render(records: usize) {
    let mut state = State::default();
    state.apply((0..records).map(|i| {
        let record = synthetic_record(i);
        Change::Indexed {
            name: format!("pkg{i:05}.tgz"),
            package: Package {
                size: record.len() as u64,
                record,
                token: format!("\"{i:032x}\""),
                warnings: Vec::new(),
            },
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
    let packages = env_count("PKGSUM_BENCH_PACKAGES", 2000);
    let records = env_count("PKGSUM_BENCH_RECORDS", 20_000);
    println!(
        "pkgsum bench on {} CPUs ({})",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        std::env::consts::ARCH
    );
    bench_index(packages);
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
