//! `cargo bench -p pkgsum-core --bench chunks`: what cutting a summary into
//! separately compressed runs costs in size, against compressing the whole
//! file at once, and what recompressing one run costs in time, for run
//! sizes from 64 KiB to 1 MiB, in every format. The figures choose the run
//! size each format gets (issue 11).
//!
//! Data: the real summaries in `../shared/fixtures/real/*/pkg_summary.gz`
//! (or `$PKGSUM_REAL_FIXTURES`) when they are there, and 20,000 synthetic
//! records (far more alike than real ones: a second opinion, not the
//! answer).

use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use pkgsum_core::chunk;
use pkgsum_core::compression::Compression;

const FORMATS: [Compression; 4] = [
    Compression::Gzip,
    Compression::Bzip2,
    Compression::Xz,
    Compression::Zstd,
];
const TARGETS: [usize; 5] = [64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20];

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

fn synthetic(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let name = format!("pkg{i:05}-1.{}", i % 9);
        out.extend_from_slice(
            format!(
                "BUILD_DATE=2026-11-25 10:00:00 +0000\nCATEGORIES=misc\nCOMMENT=Synthetic package {i}\n\
                 DEPENDS=dep{}>=1.0\nDESCRIPTION=Package {i} for the chunk benchmark.\nDESCRIPTION=It has a few lines.\n\
                 FILE_NAME={name}.tgz\nFILE_SIZE={}\nHOMEPAGE=https://example.org/{name}/\nLICENSE=modified-bsd\n\
                 MACHINE_ARCH=x86_64\nOPSYS=NetBSD\nOS_VERSION=10.1\nPKGNAME={name}\nPKGPATH=misc/pkg{i:05}\n\
                 PKGTOOLS_VERSION=20250417\nSIZE_PKG=12345\n\n",
                i % 997,
                4096 + i
            )
            .as_bytes(),
        );
    }
    out
}

fn measure(label: &str, summary: &[u8]) {
    let records = records(summary);
    let bytes: Vec<&[u8]> = records.iter().map(|(_, r)| &r[..]).collect();
    let whole: Vec<u8> = bytes.concat();
    let sizes: Vec<usize> = FORMATS
        .iter()
        .map(|f| f.compress(&whole).map(|c| c.len()).unwrap_or(0))
        .collect();
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
    println!("\nEach format: size against the whole file, CPU to compress one run.\n");
    println!("| run target | runs | gz | bz2 | xz | zst | one run, all four |");
    println!("|---|---|---|---|---|---|---|");
    for target in TARGETS {
        let runs = chunk::split(records.iter().map(|(n, r)| (n.as_str(), &r[..])), target);
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

/// Run size per format, as the tables above chose them.
const CHOSEN: [(Compression, usize); 4] = [
    (Compression::Gzip, 128 << 10),
    (Compression::Bzip2, 512 << 10),
    (Compression::Xz, 256 << 10),
    (Compression::Zstd, 512 << 10),
];

/// One record added to `summary`: the CPU time to reassemble every format
/// from the files before (digests included), against compressing each
/// whole.
fn one_update(label: &str, summary: &[u8]) {
    let mut records = records(summary);
    let view: Vec<(&str, &[u8])> = records.iter().map(|(n, r)| (n.as_str(), &r[..])).collect();
    let before: Vec<chunk::Assembled> = CHOSEN
        .iter()
        .map(|&(format, target)| {
            let plan = chunk::Plan::new(&view, target);
            chunk::assemble(&view, &plan, format, None).expect("assemble")
        })
        .collect();
    let at = records.len() / 2;
    let name = format!("{}-added", records[at].0);
    let record = records[at].1.clone();
    records.insert(at + 1, (name, record));
    let view: Vec<(&str, &[u8])> = records.iter().map(|(n, r)| (n.as_str(), &r[..])).collect();
    println!("\n{label}, one record added: CPU per format, reassembled from the files before\n");
    println!("| format | run target | runs compressed / copied | reassembled | whole file |");
    println!("|---|---|---|---|---|");
    let whole: Vec<u8> = view.iter().flat_map(|(_, r)| r.to_vec()).collect();
    for ((format, target), previous) in CHOSEN.iter().zip(&before) {
        let start = Instant::now();
        let plan = chunk::Plan::new(&view, *target);
        let made = chunk::assemble(
            &view,
            &plan,
            *format,
            Some((&previous.layout, &previous.bytes)),
        )
        .expect("assemble");
        let took = start.elapsed();
        let start = Instant::now();
        let _ = format.compress(&whole);
        println!(
            "| {} | {} KiB | {} / {} | {:.0} ms | {:.0} ms |",
            format.suffix(),
            target >> 10,
            made.compressed,
            made.reused,
            took.as_secs_f64() * 1000.0,
            start.elapsed().as_secs_f64() * 1000.0
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
    let synthetic = synthetic(20_000);
    measure("synthetic", &synthetic);
    one_update("20,000 synthetic records", &synthetic);
}
