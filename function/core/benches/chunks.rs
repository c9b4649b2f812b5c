//! `cargo bench -p pkgsum-core --bench chunks`: what cutting a summary into
//! separately compressed runs costs in size, against compressing the whole
//! file at once, and what recompressing one run costs in time, for run
//! sizes from 64 KiB to 1 MiB, in every format. Runs are cut as publishing
//! cuts them: whole pieces of the state. The figures choose the run size
//! each format gets (issue 11).
//!
//! The baseline is the whole file compressed as one would by hand (gzip
//! -9, bzip2 -9, xz -6, zstd -9), whatever options the runs are given.
//!
//! Data: the real summaries in `../shared/fixtures/real/*/pkg_summary.gz`
//! (or `$PKGSUM_REAL_FIXTURES`) when they are there, and 20,000 records
//! shaped like pkgsrc's from `sample` (`PKGSUM_BENCH_RECORDS` for
//! another count).

use std::io::Read;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Instant;

use pkgsum_core::chunk;
use pkgsum_core::compression::Compression;
use pkgsum_core::{piece, sample};

const FORMATS: [Compression; 4] = [
    Compression::Gzip,
    Compression::Bzip2,
    Compression::Xz,
    Compression::Zstd,
];
const TARGETS: [usize; 7] = [
    64 << 10,
    128 << 10,
    256 << 10,
    512 << 10,
    640 << 10,
    768 << 10,
    1 << 20,
];

/// A summary split into (FILE_NAME, record) pairs, sorted by name.
fn records(summary: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut record = Vec::new();
    for line in summary.split_inclusive(|&b| b == b'\n') {
        record.extend_from_slice(line);
        if line == b"\n" {
            let record = std::mem::take(&mut record);
            out.push((file_name(&record), record));
        }
    }
    out.sort();
    out
}

fn file_name(record: &[u8]) -> String {
    let text = String::from_utf8_lossy(record);
    text.lines()
        .find_map(|l| l.strip_prefix("FILE_NAME=").or(l.strip_prefix("PKGNAME=")))
        .unwrap_or_default()
        .to_owned()
}

fn real_summaries() -> Vec<(String, Vec<u8>)> {
    let dir = std::env::var_os("PKGSUM_REAL_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/real")
        });
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path().join("pkg_summary.gz");
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let mut text = Vec::new();
        if flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut text)
            .is_ok()
        {
            out.push((entry.file_name().to_string_lossy().into_owned(), text));
        }
    }
    out.sort();
    out
}

/// `n` records shaped like pkgsrc's ([`sample`]), sorted by file name:
/// a summary as pkgsum would publish it.
fn synthetic(n: usize) -> Vec<u8> {
    let mut records: Vec<(String, Vec<u8>)> = (0..n).map(sample::record).collect();
    records.sort();
    records.into_iter().flat_map(|(_, r)| r).collect()
}

/// Runs as publishing cuts them: records into pieces of `piece_target`,
/// then whole pieces into runs of `target`. Record ranges.
fn runs_of(records: &[(String, Vec<u8>)], piece_target: usize, target: usize) -> Vec<Range<usize>> {
    let pieces = chunk::split_records(
        records.iter().map(|(n, r)| (n.as_str(), &r[..])),
        piece_target,
    );
    let items: Vec<(&str, usize)> = pieces
        .iter()
        .map(|p| {
            let bytes = records[p.clone()].iter().map(|(_, r)| r.len()).sum();
            (records[p.start].0.as_str(), bytes)
        })
        .collect();
    chunk::split(items.iter().copied(), target)
        .into_iter()
        .map(|run| pieces[run.start].start..pieces[run.end - 1].end)
        .collect()
}

/// The size of `whole` compressed at once, as one would by hand: for xz,
/// `xz -6` with its default options (pkgsum tunes its runs' encoder, and
/// that tuning must not move the baseline it is measured against).
fn whole_size(format: Compression, whole: &[u8]) -> usize {
    let compressed = match format {
        Compression::Xz => liblzma::encode_all(whole, 6),
        _ => format.compress(whole),
    };
    compressed.map_or(0, |c| c.len())
}

fn measure(label: &str, summary: &[u8]) {
    let records = records(summary);
    let bytes: Vec<&[u8]> = records.iter().map(|(_, r)| &r[..]).collect();
    let whole: Vec<u8> = bytes.concat();
    let sizes: Vec<usize> = FORMATS.iter().map(|&f| whole_size(f, &whole)).collect();
    println!(
        "\n{label}: {} records, {:.1} MiB; whole file: {}",
        records.len(),
        whole.len() as f64 / 1048576.0,
        FORMATS
            .iter()
            .zip(&sizes)
            .map(|(f, s)| format!("{} {:.0} KiB", f.suffix(), *s as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "\nEach format: size against the whole file, CPU to compress one run (pieces of {} KiB).\n",
        piece::TARGET >> 10
    );
    println!("| run target | runs | gz | bz2 | xz | zst | one run, all four |");
    println!("|---|---|---|---|---|---|---|");
    for target in TARGETS {
        let runs = runs_of(&records, piece::TARGET, target);
        if runs.len() < 2 {
            continue;
        }
        let mut cells = Vec::new();
        let mut time = 0.0;
        for (format, whole_size) in FORMATS.iter().zip(&sizes) {
            let start = Instant::now();
            let mut total = 0;
            for run in &runs {
                total += format
                    .compress(&bytes[run.clone()].concat())
                    .map_or(0, |c| c.len());
            }
            let per_run = start.elapsed().as_secs_f64() / runs.len() as f64;
            time += per_run;
            let larger = 100.0 * (total as f64 / *whole_size as f64 - 1.0);
            cells.push(format!("{larger:+.1}%, {:.0} ms", per_run * 1000.0));
        }
        println!(
            "| {} KiB | {} | {} | {:.0} ms |",
            target >> 10,
            runs.len(),
            cells.join(" | "),
            time * 1000.0
        );
    }
}

fn main() {
    for (name, summary) in real_summaries() {
        // One record says nothing about runs.
        if summary.len() > 64 << 10 {
            measure(&format!("real: {name}"), &summary);
        }
    }
    let count = std::env::var("PKGSUM_BENCH_RECORDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    measure(&format!("{count} sample records"), &synthetic(count));
}
