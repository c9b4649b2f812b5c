//! Summaries in chunks: the sorted records cut into runs, each compressed
//! on its own, the published file their concatenation.
//!
//! pkgin reads a `pkg_summary` made of concatenated gzip members, bzip2
//! streams, xz streams or zstd frames, so an update need only recompress
//! the run it touches. Where a run ends is decided by the records
//! themselves (content-defined), so boundaries stay where they are as
//! packages come and go: a run ends after a record once the run holds at
//! least half the target size and the record's name hashes below a
//! threshold, or once it reaches twice the target. Adding or removing one
//! record rewrites its own run; now and then the minimum size moves the
//! next boundary too (in the test below, 47 of 50 changes rewrote one
//! run, none more than three).
//!
//! This module is the pure part (where runs end, compressing them); what
//! chunk size each format needs is measured by `cargo bench --bench
//! chunks` (size against compressing the whole file at once, and CPU per
//! chunk).

use std::io;
use std::ops::Range;

use rayon::prelude::*;

use crate::compression::Compression;

/// Where the runs of `records` (name and record bytes, sorted by name)
/// end, for runs of about `target` bytes: consecutive ranges covering
/// every record.
pub fn split<'a>(
    records: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    target: usize,
) -> Vec<Range<usize>> {
    let (low, high) = (target / 2, target.saturating_mul(2).max(1));
    let mut runs = Vec::new();
    let (mut start, mut bytes, mut count) = (0, 0, 0);
    for (name, record) in records {
        count += 1;
        bytes += record.len();
        let chosen = bytes >= low && chosen_name(name, record.len(), target);
        if chosen || bytes >= high {
            runs.push(start..count);
            (start, bytes) = (count, 0);
        }
    }
    if start < count {
        runs.push(start..count);
    }
    runs
}

/// Whether a record may end a run: about one in `target / 2 / size`
/// records does, so a run's expected size past its minimum is `target / 2`.
fn chosen_name(name: &str, size: usize, target: usize) -> bool {
    let odds = (target / 2 / size.max(1)).max(1) as u64;
    fnv1a(name.as_bytes()).is_multiple_of(odds)
}

/// FNV-1a, 64 bits: the same on every platform and in every version, so
/// boundaries never move on an upgrade.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Compresses each run of `records` in `format`, in parallel.
pub fn compress(
    records: &[&[u8]],
    runs: &[Range<usize>],
    format: Compression,
) -> io::Result<Vec<Vec<u8>>> {
    runs.par_iter()
        .map(|run| format.compress(&records[run.clone()].concat()))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// Records of realistic sizes (300 to 1,500 bytes) under sorted names.
    fn sample(n: usize, seed: u64) -> Vec<(String, Vec<u8>)> {
        let mut state = seed;
        let mut next = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            state >> 33
        };
        let mut records: Vec<(String, Vec<u8>)> = (0..n)
            .map(|_| {
                let name = format!("p{:08x}-1.0.tgz", next());
                let size = 300 + (next() % 1200) as usize;
                let mut record = format!("PKGNAME={name}\nCOMMENT=").into_bytes();
                record.resize(size - 2, b'x');
                record.extend_from_slice(b"\n\n");
                (name, record)
            })
            .collect();
        records.sort();
        records
    }

    fn runs_of(records: &[(String, Vec<u8>)], target: usize) -> Vec<Vec<String>> {
        let runs = split(records.iter().map(|(n, r)| (n.as_str(), &r[..])), target);
        runs.iter()
            .map(|run| {
                records[run.clone()]
                    .iter()
                    .map(|(n, _)| n.clone())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn runs_cover_every_record_in_order_near_the_target() {
        let records = sample(5000, 1);
        let target = 64 << 10;
        let runs = split(records.iter().map(|(n, r)| (n.as_str(), &r[..])), target);
        let mut next = 0;
        for run in &runs {
            assert_eq!(run.start, next);
            next = run.end;
            let bytes: usize = records[run.clone()].iter().map(|(_, r)| r.len()).sum();
            assert!(bytes < 2 * target + 1500, "{bytes}");
        }
        assert_eq!(next, records.len());
        let total: usize = records.iter().map(|(_, r)| r.len()).sum();
        let average = total / runs.len();
        assert!(average > target / 2 && average < 2 * target, "{average}");
    }

    #[test]
    fn one_change_moves_few_runs() {
        let records = sample(5000, 2);
        let before = runs_of(&records, 32 << 10);
        let mut touched = Vec::new();
        let mut rng = 7u64;
        for _ in 0..50 {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1);
            let mut changed = records.clone();
            let at = (rng >> 33) as usize % changed.len();
            if rng & 1 == 0 {
                changed.remove(at);
            } else {
                let name = format!("{}a", changed[at].0);
                changed.insert(at + 1, (name, vec![b'y'; 800]));
            }
            let after = runs_of(&changed, 32 << 10);
            touched.push(after.iter().filter(|run| !before.contains(run)).count());
        }
        // Seen: 47 of the 50 changes rewrite one run, 2 rewrite two, 1
        // rewrites three (the minimum size can shift the next boundary).
        let single = touched.iter().filter(|&&n| n == 1).count();
        assert!(single >= 45, "{touched:?}");
        assert!(touched.iter().all(|&n| n <= 3), "{touched:?}");
    }

    #[test]
    fn concatenated_runs_decompress_to_the_whole_summary() {
        let records = sample(800, 3);
        let whole: Vec<u8> = records.iter().flat_map(|(_, r)| r.clone()).collect();
        let bytes: Vec<&[u8]> = records.iter().map(|(_, r)| &r[..]).collect();
        let runs = split(records.iter().map(|(n, r)| (n.as_str(), &r[..])), 16 << 10);
        assert!(runs.len() > 10);
        for format in [
            Compression::Gzip,
            Compression::Bzip2,
            Compression::Xz,
            Compression::Zstd,
        ] {
            let published = compress(&bytes, &runs, format).unwrap().concat();
            let mut out = Vec::new();
            format
                .decoder(&published[..])
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert!(out == whole, "{format:?}");
        }
    }
}
