//! `cargo bench -p pkgsum-core --bench chunks`: what cutting a summary into
//! separately compressed runs costs in size, against compressing the whole
//! file at once, and what recompressing one run costs in time, for run
//! sizes from 64 KiB to 1 MiB, in every format. Runs are cut as publishing
//! cuts them: whole pieces of the state. The figures choose the run size
//! each format gets (issue 11). Then, at those run sizes, what one upload
//! costs each format on average (the run it lands in is recompressed).
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
    // Each run's length and time to compress, per format, at the run size
    // pkgsum gives that format: the upload table below is made of them.
    let mut at_pkgsum_size = Vec::new();
    for target in TARGETS {
        let runs = runs_of(&records, piece::TARGET, target);
        if runs.len() < 2 {
            continue;
        }
        let mut cells = Vec::new();
        let mut time = 0.0;
        for (&format, whole_size) in FORMATS.iter().zip(&sizes) {
            let mut total = 0;
            let mut timed = Vec::with_capacity(runs.len());
            for run in &runs {
                let raw = bytes[run.clone()].concat();
                let start = Instant::now();
                total += format.compress(&raw).map_or(0, |c| c.len());
                timed.push((raw.len(), start.elapsed().as_secs_f64()));
            }
            let per_run = timed.iter().map(|(_, t)| t).sum::<f64>() / runs.len() as f64;
            time += per_run;
            let larger = 100.0 * (total as f64 / *whole_size as f64 - 1.0);
            cells.push(format!("{larger:+.1}%, {:.0} ms", per_run * 1000.0));
            if target == chunk::run_target(format) {
                at_pkgsum_size.push((format, target, timed));
            }
        }
        println!(
            "| {} KiB | {} | {} | {:.0} ms |",
            target >> 10,
            runs.len(),
            cells.join(" | "),
            time * 1000.0
        );
    }
    print_upload(&at_pkgsum_size);
    let xz = FORMATS.iter().position(|&f| f == Compression::Xz);
    measure_chained(&records, xz.map_or(0, |i| sizes[i]));
}

/// A format, its run target, and each of its runs' length and seconds to
/// compress.
type RunsTimed = (Compression, usize, Vec<(usize, f64)>);

/// What one upload costs each format at the run size pkgsum gives it
/// ([`chunk::run_target`]), from each run's length and time to compress
/// (`timed`, measured above): an upload lands in a run with odds in
/// proportion to the run's bytes, so long runs are hit, and recompressed,
/// more often than their number says. Each run's time is weighted by its
/// share of the bytes.
fn print_upload(timed: &[RunsTimed]) {
    println!(
        "\nOne upload, at pkgsum's run sizes: the run it lands in, on average, and its CPU.\n"
    );
    println!(
        "| format | run target | runs | mean run | run an upload lands in | CPU a run | CPU an upload |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (format, target, runs) in timed {
        let total: usize = runs.iter().map(|(len, _)| len).sum();
        let (mut time, mut upload, mut landed) = (0.0, 0.0, 0.0);
        for &(len, elapsed) in runs {
            let share = len as f64 / total as f64;
            time += elapsed;
            upload += elapsed * share;
            landed += len as f64 * share;
        }
        println!(
            "| {} | {} KiB | {} | {:.0} KiB | {:.0} KiB | {:.1} ms | {:.1} ms |",
            format.name(),
            target >> 10,
            runs.len(),
            total as f64 / runs.len() as f64 / 1024.0,
            landed / 1024.0,
            time * 1000.0 / runs.len() as f64,
            upload * 1000.0
        );
    }
}

/// xz runs chained in one stream instead of one stream each: each run's
/// LZMA2 encoder is primed with the last `tail` bytes of the run before
/// (a preset dictionary, which the decoder holds as the output just
/// before), so a run finds matches across the boundary. The price: a run
/// must follow the run it was primed with, so a change re-encodes the
/// next run too when it touches that tail, and a file can no longer be
/// spliced with its new runs last.
mod chained {
    use liblzma_sys as sys;

    /// xz -6 tuned as pkgsum's runs are (lc=4, pb=0, nice_len=128), a
    /// raw LZMA2 encoder primed with `preset`: its LZMA2 chunks, the end
    /// marker dropped.
    pub fn encode(data: &[u8], preset: &[u8]) -> Vec<u8> {
        let dict = (preset.len() + data.len()).next_power_of_two().max(4096);
        // SAFETY: every pointer given to liblzma outlives the stream,
        // which is ended before they are dropped; a zeroed lzma_stream is
        // LZMA_STREAM_INIT, and a zeroed lzma_options_lzma is filled by
        // lzma_lzma_preset before use.
        unsafe {
            let mut opts: sys::lzma_options_lzma = std::mem::zeroed();
            assert_eq!(sys::lzma_lzma_preset(&mut opts, 6), 0);
            opts.lc = 4;
            opts.pb = 0;
            opts.nice_len = 128;
            opts.dict_size = dict as u32;
            if !preset.is_empty() {
                opts.preset_dict = preset.as_ptr();
                opts.preset_dict_size = preset.len() as u32;
            }
            let filters = [
                sys::lzma_filter {
                    id: sys::LZMA_FILTER_LZMA2,
                    options: (&raw mut opts).cast(),
                },
                sys::lzma_filter {
                    id: sys::LZMA_VLI_UNKNOWN,
                    options: std::ptr::null_mut(),
                },
            ];
            let mut stream: sys::lzma_stream = std::mem::zeroed();
            assert_eq!(
                sys::lzma_raw_encoder(&mut stream, filters.as_ptr()),
                sys::LZMA_OK
            );
            let mut out = vec![0u8; data.len() + data.len() / 2 + 4096];
            stream.next_in = data.as_ptr();
            stream.avail_in = data.len();
            stream.next_out = out.as_mut_ptr();
            stream.avail_out = out.len();
            let ret = sys::lzma_code(&mut stream, sys::LZMA_FINISH);
            let written = out.len() - stream.avail_out;
            sys::lzma_end(&mut stream);
            assert_eq!(ret, sys::LZMA_STREAM_END);
            // The raw encoder ends with LZMA2's end marker, one 0 byte.
            out.truncate(written - 1);
            out
        }
    }

    fn crc32(data: &[u8], crc: u32) -> u32 {
        // SAFETY: the pointer and length are those of a live slice.
        unsafe { sys::lzma_crc32(data.as_ptr(), data.len(), crc) }
    }

    fn varint(mut n: u64, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push(n as u8 | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }

    /// One xz stream (CRC32 check, one block declaring an 8 MiB
    /// dictionary) of `chunks`, which decode to `plain` bytes whose
    /// CRC32 is `crc` (xz file format 1.1.0, sections 2 and 3).
    pub fn stream(chunks: &[Vec<u8>], plain: u64, crc: u32) -> Vec<u8> {
        let flags = [0u8, 1];
        let mut out = vec![0xFD, b'7', b'z', b'X', b'Z', 0];
        out.extend(flags);
        out.extend(crc32(&flags, 0).to_le_bytes());
        // Header size 12 ((2 + 1) * 4), one filter, no sizes; LZMA2 with
        // one property byte: 22 is an 8 MiB dictionary.
        let header = [2u8, 0, 0x21, 1, 22, 0, 0, 0];
        out.extend(header);
        out.extend(crc32(&header, 0).to_le_bytes());
        let data: usize = chunks.iter().map(Vec::len).sum::<usize>() + 1;
        chunks.iter().for_each(|c| out.extend(c));
        out.push(0);
        out.resize(out.len() + (4 - (12 + data) % 4) % 4, 0);
        out.extend(crc.to_le_bytes());
        let mut index = vec![0u8];
        varint(1, &mut index);
        varint((12 + data + 4) as u64, &mut index);
        varint(plain, &mut index);
        index.resize(index.len().next_multiple_of(4), 0);
        index.extend(crc32(&index, 0).to_le_bytes());
        out.extend(&index);
        let mut footer = ((index.len() / 4 - 1) as u32).to_le_bytes().to_vec();
        footer.extend(flags);
        out.extend(crc32(&footer, 0).to_le_bytes());
        out.extend(footer);
        out.extend(b"YZ");
        out
    }

    /// Every run of `plain` chained with a preset of `tail` bytes: the
    /// stream's size and the CPU per run. The stream is decoded and
    /// checked against the runs.
    pub fn measure(plain: &[Vec<u8>], tail: usize) -> (usize, f64) {
        let start = std::time::Instant::now();
        let mut chunks = Vec::new();
        let mut crc = 0;
        for (i, run) in plain.iter().enumerate() {
            let before: &[u8] = if i > 0 { &plain[i - 1] } else { &[] };
            chunks.push(encode(run, &before[before.len().saturating_sub(tail)..]));
            crc = crc32(run, crc);
        }
        let per_run = start.elapsed().as_secs_f64() / plain.len() as f64;
        let whole = plain.concat();
        let file = stream(&chunks, whole.len() as u64, crc);
        let decoded = liblzma::decode_all(&file[..]).expect("a chained stream decodes");
        assert!(decoded == whole, "a chained stream decodes to its runs");
        (file.len(), per_run)
    }
}

/// xz's runs chained (see [`chained`]) against one stream each, for run
/// targets of 128 and 256 KiB and preset tails from none to the whole
/// run before.
fn measure_chained(records: &[(String, Vec<u8>)], whole_xz: usize) {
    println!(
        "\nxz runs chained in one stream, each encoder primed with the end of the run before: size against the whole file, CPU per run.\n"
    );
    println!("| run target | runs | no tail | tail 16 KiB | tail 64 KiB | the whole run before |");
    println!("|---|---|---|---|---|---|");
    for target in [128 << 10, 256 << 10] {
        let runs = runs_of(records, piece::TARGET, target);
        let plain: Vec<Vec<u8>> = runs
            .iter()
            .map(|run| {
                records[run.clone()]
                    .iter()
                    .flat_map(|(_, r)| r.clone())
                    .collect()
            })
            .collect();
        let cells: Vec<String> = [0, 16 << 10, 64 << 10, usize::MAX]
            .into_iter()
            .map(|tail| {
                let (size, per_run) = chained::measure(&plain, tail);
                let larger = 100.0 * (size as f64 / whole_xz as f64 - 1.0);
                format!("{larger:+.1}%, {:.0} ms", per_run * 1000.0)
            })
            .collect();
        println!(
            "| {} KiB | {} | {} |",
            target >> 10,
            runs.len(),
            cells.join(" | ")
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
