//! Summaries in chunks: the sorted records cut into runs, each compressed
//! on its own, the published file their concatenation.
//!
//! pkgin reads a `pkg_summary` made of concatenated gzip members, bzip2
//! streams, xz streams or zstd frames, so an update need only recompress
//! the run it touches. Where a run ends is decided by the items
//! themselves (content-defined), so boundaries stay where they are as
//! packages come and go: a run ends after an item once the run holds at
//! least half the target size and the item's name hashes below a
//! threshold, or once it reaches twice the target. Adding or removing one
//! item rewrites its own run; now and then the minimum size moves the
//! next boundary too (in the test below, 47 of 50 changes rewrote one
//! run, none more than three). The same [`split`] cuts records into the
//! state's pieces, and pieces into a summary's runs: a run's [`Plan`]
//! needs only each piece's name, length and records digest.
//!
//! An update then [`join`]s each format from the file published before:
//! a run whose items are unchanged (same digests) is copied from where
//! that file's [`Layout`] says it lies ([`reusable`]), and only the
//! others are compressed. Whatever the previous file and layout hold, the result
//! decompresses to exactly the records: a layout that does not fit its
//! file is not used.
//!
//! This module is the pure part; what run size each format needs is
//! measured by `cargo bench -p pkgsum-core --bench chunks` (size against
//! compressing the whole file at once, and CPU per run).

use std::io;
use std::ops::Range;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::compression::Compression;

/// Where the runs of `items` (a name and a length each: records, or the
/// state's pieces; sorted by name) end, for runs of about `target` bytes:
/// consecutive ranges covering every item.
pub fn split<'a>(
    items: impl IntoIterator<Item = (&'a str, usize)>,
    target: usize,
) -> Vec<Range<usize>> {
    let (low, high) = (target / 2, target.saturating_mul(2).max(1));
    let mut runs = Vec::new();
    let (mut start, mut bytes, mut count) = (0, 0, 0);
    for (name, len) in items {
        count += 1;
        bytes += len;
        let chosen = bytes >= low && chosen_name(name, len, target);
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

/// [`split`] for records: name and bytes.
pub fn split_records<'a>(
    records: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    target: usize,
) -> Vec<Range<usize>> {
    split(records.into_iter().map(|(n, r)| (n, r.len())), target)
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

/// Compresses each of `raws` in `format`, in parallel.
pub fn compress_each(raws: &[Vec<u8>], format: Compression) -> io::Result<Vec<Vec<u8>>> {
    raws.par_iter().map(|raw| format.compress(raw)).collect()
}

/// The runs of a summary and what each holds: computed once per update,
/// shared by every format of the same run size.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Each run's items (records, or the state's pieces).
    pub runs: Vec<Range<usize>>,
    /// Each run's digest: the SHA-256 of its items' SHA-256s.
    pub digests: Vec<[u8; 32]>,
}

impl Plan {
    /// Cuts `records` (name and bytes, sorted by name) into runs of about
    /// `target` bytes and names each by its digest.
    pub fn new(records: &[(&str, &[u8])], target: usize) -> Plan {
        let items: Vec<(&str, usize)> = records.iter().map(|(n, r)| (*n, r.len())).collect();
        Plan::with_digests(&items, &record_digests(records), target)
    }

    /// The same, from each item's name, length and SHA-256: the state's
    /// pieces name the records they hold by one digest, so an update plans
    /// its runs without reading the records it leaves alone. A run's digest
    /// is the SHA-256 of its items' digests.
    pub fn with_digests(items: &[(&str, usize)], digests: &[[u8; 32]], target: usize) -> Plan {
        let runs = split(items.iter().copied(), target);
        let digests = runs
            .iter()
            .map(|run| {
                let mut hash = Sha256::new();
                for digest in &digests[run.clone()] {
                    hash.update(digest);
                }
                hash.finalize().into()
            })
            .collect();
        Plan { runs, digests }
    }
}

/// Each record's SHA-256, in parallel.
pub fn record_digests(records: &[(&str, &[u8])]) -> Vec<[u8; 32]> {
    records
        .par_iter()
        .map(|(_, record)| sha256(record))
        .collect()
}

/// Run digest -> its byte range in a file and the SHA-256 of those bytes.
type Places = std::collections::HashMap<[u8; 32], (Range<usize>, [u8; 32])>;

/// Where each compressed run lies in a published file, in order: enough
/// to copy an unchanged run out of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// The format's name ([`Compression::name`]): a layout is never used
    /// for a file of another format.
    pub format: String,
    pub runs: Vec<Placed>,
}

/// One compressed run of a published file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    /// The run's digest (see [`Plan::digests`]): names its records.
    pub digest: [u8; 32],
    /// SHA-256 of its compressed bytes: checked before they are copied,
    /// so a file that is not the one the layout describes (another
    /// writer's, another compressor version's) is never sliced wrong.
    pub stored: [u8; 32],
    /// Its compressed length; runs follow each other from offset 0.
    pub len: u64,
}

impl Layout {
    /// Total bytes of the file it describes; `None` if they overflow (a
    /// layout is read back from the store, and is as untrusted as anything
    /// else there).
    pub fn file_len(&self) -> Option<u64> {
        self.runs
            .iter()
            .try_fold(0u64, |sum, r| sum.checked_add(r.len))
    }

    /// Digest -> the run's byte range in a file of `len` bytes and the
    /// SHA-256 its bytes must have; `None` unless the runs tile exactly
    /// that file.
    fn places(&self, len: usize) -> Option<Places> {
        let mut offset = 0usize;
        let mut places = std::collections::HashMap::new();
        for run in &self.runs {
            let end = offset.checked_add(usize::try_from(run.len).ok()?)?;
            places.insert(run.digest, (offset..end, run.stored));
            offset = end;
        }
        (offset == len).then_some(places)
    }
}

/// A format's file, assembled.
#[derive(Debug, Clone)]
pub struct Assembled {
    pub bytes: Vec<u8>,
    pub layout: Layout,
    /// Runs compressed for this file, and runs copied from the previous.
    pub compressed: usize,
    pub reused: usize,
}

impl Assembled {
    /// `format`'s empty summary: the compressed empty file (a valid,
    /// empty summary), with no runs.
    pub fn empty(format: Compression) -> io::Result<Assembled> {
        Ok(Assembled {
            bytes: format.compress(b"")?,
            layout: Layout {
                format: format.name().to_owned(),
                runs: Vec::new(),
            },
            compressed: 0,
            reused: 0,
        })
    }
}

/// The run size each format gets, measured by `cargo bench -p pkgsum-core
/// --bench chunks` on 20,000 records shaped like pkgsrc's (docs/benchmarks.md,
/// "Chunked summaries"): gzip, bzip2 and zstd stay within 3%, 4% and 4%
/// of compressing the whole file, for 6, 31 and 13 ms a run; xz (+18%)
/// would need runs of 1 MiB to come within 10%, at 240 ms each, against
/// 45 ms here.
pub fn run_target(format: Compression) -> usize {
    match format {
        Compression::Gzip => 256 << 10,
        Compression::Xz => 256 << 10,
        Compression::Bzip2 => 640 << 10,
        Compression::Zstd | Compression::None => 1 << 20,
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// A run found in a previous file: its bytes there and their SHA-256.
pub type Copied<'a> = (&'a [u8], [u8; 32]);

/// Which runs of `plan` can be copied from `previous` (a published file
/// and its layout), and their bytes there: a previous file whose length or
/// format is not its layout's is not used at all, and a run whose bytes
/// are not the ones the layout recorded is not copied. `trusted` skips
/// that last check, for a file known to be the very one the layout was
/// written with (the same ETag).
pub fn reusable<'a>(
    plan: &Plan,
    format: Compression,
    previous: Option<(&Layout, &'a [u8])>,
    trusted: bool,
) -> Vec<Option<Copied<'a>>> {
    let places = match previous {
        Some((layout, file)) if layout.format == format.name() => {
            layout.places(file.len()).map(|places| (places, file))
        }
        _ => None,
    };
    plan.digests
        .par_iter()
        .map(|digest| {
            let (places, file) = places.as_ref()?;
            let (range, stored) = places.get(digest)?;
            let bytes = file.get(range.clone())?;
            (trusted || sha256(bytes) == *stored).then_some((bytes, *stored))
        })
        .collect()
}

/// Joins `format`'s file for `plan` from its runs, in order: each either
/// copied (`reused`, from [`reusable`]) or, where that is `None`, the next
/// of `made` (compressed now).
pub fn join(
    plan: &Plan,
    format: Compression,
    reused: &[Option<Copied<'_>>],
    made: Vec<Vec<u8>>,
) -> io::Result<Assembled> {
    // Sized once: a file grown by doubling would briefly take twice its
    // size.
    let len = reused
        .iter()
        .flatten()
        .map(|(bytes, _)| bytes.len())
        .sum::<usize>()
        + made.iter().map(Vec::len).sum::<usize>();
    let mut made = made.into_iter();
    let mut assembled = Assembled {
        bytes: Vec::with_capacity(len),
        layout: Layout {
            format: format.name().to_owned(),
            runs: Vec::new(),
        },
        compressed: 0,
        reused: 0,
    };
    for (copied, digest) in reused.iter().zip(&plan.digests) {
        let fresh;
        let (bytes, stored): (&[u8], [u8; 32]) = match copied {
            Some((bytes, stored)) => {
                assembled.reused += 1;
                (bytes, *stored)
            }
            None => {
                fresh = made
                    .next()
                    .ok_or_else(|| io::Error::other("fewer runs compressed than needed"))?;
                assembled.compressed += 1;
                (&fresh, sha256(&fresh))
            }
        };
        assembled.bytes.extend_from_slice(bytes);
        assembled.layout.runs.push(Placed {
            digest: *digest,
            stored,
            len: bytes.len() as u64,
        });
    }
    Ok(assembled)
}

/// Assembles `format`'s file of `records` for `plan` (made by
/// [`Plan::new`]): runs found in `previous` are copied from it, the
/// others compressed in parallel.
pub fn assemble(
    records: &[(&str, &[u8])],
    plan: &Plan,
    format: Compression,
    previous: Option<(&Layout, &[u8])>,
) -> io::Result<Assembled> {
    let reused = reusable(plan, format, previous, false);
    let raws: Vec<Vec<u8>> = plan
        .runs
        .iter()
        .zip(&reused)
        .filter(|(_, copied)| copied.is_none())
        .map(|(run, _)| {
            records[run.clone()]
                .iter()
                .flat_map(|(_, r)| r.iter().copied())
                .collect()
        })
        .collect();
    let made = compress_each(&raws, format)?;
    join(plan, format, &reused, made)
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
        let runs = split_records(records.iter().map(|(n, r)| (n.as_str(), &r[..])), target);
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
        let runs = split_records(records.iter().map(|(n, r)| (n.as_str(), &r[..])), target);
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
        let runs = split_records(records.iter().map(|(n, r)| (n.as_str(), &r[..])), 16 << 10);
        assert!(runs.len() > 10);
        for format in [
            Compression::Gzip,
            Compression::Bzip2,
            Compression::Xz,
            Compression::Zstd,
        ] {
            let published = compress(&bytes, &runs, format).unwrap().concat();
            assert_eq!(Compression::detect(&published), format);
            let mut out = Vec::new();
            format
                .decoder(&published[..])
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert!(out == whole, "{format:?}");
        }
    }

    fn whole_of(view: &[(&str, &[u8])]) -> Vec<u8> {
        view.iter().flat_map(|(_, r)| r.to_vec()).collect()
    }

    fn decompressed(format: Compression, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        format
            .decoder(bytes)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// Random additions, replacements and removals, each assembled from
    /// the file before: every file decompresses to exactly the records (as
    /// rendering from scratch would), and most runs are copied.
    #[test]
    fn assembled_updates_equal_a_render_from_scratch() {
        let mut records = sample(1500, 4);
        let mut rng = 11u64;
        let mut next = move || {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1);
            rng >> 33
        };
        for format in [Compression::Gzip, Compression::Xz] {
            let mut previous: Option<(Layout, Vec<u8>)> = None;
            let (mut reused, mut compressed) = (0, 0);
            for step in 0..40 {
                let at = next() as usize % records.len();
                match next() % 3 {
                    0 => {
                        records.remove(at);
                    }
                    1 => records[at].1 = format!("PKGNAME=changed-{step}\n\n").into_bytes(),
                    _ => {
                        let name = format!("{}b{step}", records[at].0);
                        records.insert(at + 1, (name, vec![b'z'; 700]));
                    }
                }
                let view: Vec<(&str, &[u8])> =
                    records.iter().map(|(n, r)| (n.as_str(), &r[..])).collect();
                let plan = Plan::new(&view, 16 << 10);
                let before = previous.as_ref().map(|(l, b)| (l, &b[..]));
                let made = assemble(&view, &plan, format, before).unwrap();
                assert!(
                    decompressed(format, &made.bytes) == whole_of(&view),
                    "step {step}"
                );
                assert_eq!(made.layout.file_len(), Some(made.bytes.len() as u64));
                if step > 0 {
                    reused += made.reused;
                    compressed += made.compressed;
                }
                previous = Some((made.layout, made.bytes));
            }
            // About 60 runs; a change rewrites one or two of them.
            assert!(compressed <= 39 * 3, "{compressed} compressed");
            assert!(
                reused > 20 * compressed,
                "{reused} reused, {compressed} compressed"
            );
        }
    }

    /// A layout that does not describe the file given with it is ignored:
    /// everything is compressed, and the result is still right.
    #[test]
    fn a_layout_that_does_not_fit_its_file_is_not_used() {
        let records = sample(300, 5);
        let view: Vec<(&str, &[u8])> = records.iter().map(|(n, r)| (n.as_str(), &r[..])).collect();
        let plan = Plan::new(&view, 16 << 10);
        let first = assemble(&view, &plan, Compression::Gzip, None).unwrap();
        let mut damaged = first.bytes.clone();
        damaged.push(0);
        let again = assemble(
            &view,
            &plan,
            Compression::Gzip,
            Some((&first.layout, &damaged)),
        )
        .unwrap();
        assert_eq!((again.reused, again.compressed), (0, plan.runs.len()));
        let other = assemble(
            &view,
            &plan,
            Compression::Zstd,
            Some((&first.layout, &first.bytes)),
        )
        .unwrap();
        assert_eq!(other.reused, 0);
        assert!(decompressed(Compression::Zstd, &other.bytes) == whole_of(&view));
        // Same length, one byte of the first run changed: that run is
        // compressed again, the others copied.
        let mut altered = first.bytes.clone();
        altered[20] ^= 0xff;
        let checked = assemble(
            &view,
            &plan,
            Compression::Gzip,
            Some((&first.layout, &altered)),
        )
        .unwrap();
        assert_eq!(
            (checked.reused, checked.compressed),
            (plan.runs.len() - 1, 1)
        );
        assert_eq!(checked.bytes, first.bytes);
        let fitting = assemble(
            &view,
            &plan,
            Compression::Gzip,
            Some((&first.layout, &first.bytes)),
        )
        .unwrap();
        assert_eq!((fitting.reused, fitting.compressed), (plan.runs.len(), 0));
        assert_eq!(fitting.bytes, first.bytes);
        assert!(decompressed(Compression::Gzip, &again.bytes) == whole_of(&view));
    }
}
