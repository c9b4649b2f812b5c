//! Splicing a summary inside the store: which byte ranges of the file
//! published before a new one keeps, in what order, and which runs it
//! makes now, for a store that copies ranges inside itself (S3's
//! UploadPartCopy) but only ranges of at least a minimum length, except
//! the last (every part of a multipart upload but the last is at least
//! 5 MiB).
//!
//! pkgin reads the records of a summary in any order (docs/design.md), so
//! a spliced file keeps its unchanged runs where they lie and puts the
//! runs made now last, where a part may be short. What the unchanged runs
//! form are stretches of the previous file: a stretch of at least the
//! minimum is a part of its own; a shorter one is joined after a long one
//! (as the last part of an object made for that), so no byte of either
//! crosses the wire. Only the new runs are sent and nothing is read.
//!
//! A file too small to hold one long stretch is not spliced (it is sent
//! whole, sorted, as before), nor is one whose kept runs are scattered
//! over more than [`MAX_SHORT`] short stretches: sending it whole sorts it
//! again.

use std::ops::Range;

use sha2::{Digest, Sha256};

use crate::chunk::{Layout, Placed, Plan};
use crate::compression::Compression;

/// The most short stretches joined in one splice: each costs a multipart
/// upload.
pub const MAX_SHORT: usize = 8;

/// How a new file is made from the previous one inside the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splice {
    /// The kept bytes, in the new file's order.
    pub groups: Vec<Group>,
    /// The runs of the plan made now (indices into it, in order): they
    /// follow the groups.
    pub fresh: Vec<usize>,
    /// The kept runs as the new file holds them, in order.
    pub kept: Vec<Placed>,
}

/// A long stretch of the previous file and the short ones joined after
/// it, as byte ranges of that file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub long: Range<u64>,
    pub short: Vec<Range<u64>>,
}

impl Group {
    /// The bytes it holds.
    pub fn len(&self) -> u64 {
        let short: u64 = self.short.iter().map(|r| r.end - r.start).sum();
        self.long.end - self.long.start + short
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Kept runs next to each other in the previous file.
struct Stretch {
    bytes: Range<u64>,
    runs: Vec<Placed>,
}

/// How `format`'s file for `plan` is spliced from the previous one,
/// described by `layout`, in a store that copies ranges of at least `min`
/// bytes: `None` when it is not worth it (see the module's doc).
///
/// The layout must be the previous file's own (the caller knows by its
/// ETag): a run is kept on its digest alone.
pub fn splice(plan: &Plan, format: Compression, layout: &Layout, min: u64) -> Option<Splice> {
    if layout.format != format.name() {
        return None;
    }
    let mut wanted: std::collections::HashMap<[u8; 32], Vec<usize>> = Default::default();
    for (i, digest) in plan.digests.iter().enumerate().rev() {
        wanted.entry(*digest).or_default().push(i);
    }
    let mut made_now = vec![true; plan.digests.len()];
    let mut stretches: Vec<Stretch> = Vec::new();
    let mut offset = 0u64;
    let mut extends = false;
    for run in &layout.runs {
        let end = offset.checked_add(run.len)?;
        let index = wanted.get_mut(&run.digest).and_then(Vec::pop);
        match (index, stretches.last_mut()) {
            (Some(i), Some(last)) if extends => {
                made_now[i] = false;
                last.bytes.end = end;
                last.runs.push(run.clone());
            }
            (Some(i), _) => {
                made_now[i] = false;
                stretches.push(Stretch {
                    bytes: offset..end,
                    runs: vec![run.clone()],
                });
            }
            (None, _) => {}
        }
        extends = index.is_some();
        offset = end;
    }
    let (long, short): (Vec<Stretch>, Vec<Stretch>) = stretches
        .into_iter()
        .partition(|s| s.bytes.end - s.bytes.start >= min);
    if long.is_empty() || short.len() > MAX_SHORT {
        return None;
    }
    let fresh = (0..made_now.len()).filter(|&i| made_now[i]).collect();
    Some(grouped(long, short, fresh))
}

/// Each short stretch joined after a long one, taken in turn, so the
/// joins run side by side where there are enough long stretches.
fn grouped(long: Vec<Stretch>, short: Vec<Stretch>, fresh: Vec<usize>) -> Splice {
    let count = long.len();
    let mut groups: Vec<(Stretch, Vec<Stretch>)> =
        long.into_iter().map(|s| (s, Vec::new())).collect();
    for (i, stretch) in short.into_iter().enumerate() {
        groups[i % count].1.push(stretch);
    }
    let mut kept = Vec::new();
    let groups = groups
        .into_iter()
        .map(|(long, short)| {
            kept.extend(long.runs);
            let short = short
                .into_iter()
                .map(|s| {
                    kept.extend(s.runs);
                    s.bytes
                })
                .collect();
            Group {
                long: long.bytes,
                short,
            }
        })
        .collect();
    Splice {
        groups,
        fresh,
        kept,
    }
}

impl Splice {
    /// The new file's layout, given the runs made now (compressed, in the
    /// order of [`Splice::fresh`]).
    pub fn layout(&self, plan: &Plan, format: Compression, made: &[Vec<u8>]) -> Layout {
        let fresh = self.fresh.iter().zip(made).map(|(&i, bytes)| Placed {
            digest: plan.digests[i],
            stored: Sha256::digest(bytes).into(),
            len: bytes.len() as u64,
        });
        Layout {
            format: format.name().to_owned(),
            runs: self.kept.iter().cloned().chain(fresh).collect(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // A group's list of ranges.
mod tests {
    use super::*;

    /// A layout of runs of the given lengths, digests 0, 1, 2...
    fn layout(lens: &[u64]) -> Layout {
        Layout {
            format: "gzip".to_owned(),
            runs: lens
                .iter()
                .enumerate()
                .map(|(i, &len)| Placed {
                    digest: [i as u8; 32],
                    stored: [0; 32],
                    len,
                })
                .collect(),
        }
    }

    fn plan(digests: &[u8]) -> Plan {
        Plan {
            runs: (0..digests.len()).map(|i| i..i + 1).collect(),
            digests: digests.iter().map(|&d| [d; 32]).collect(),
        }
    }

    #[test]
    fn a_changed_run_is_made_now_and_the_rest_copied() {
        // Runs 0..6 of 3 bytes each; run 2 changed (digest 9).
        let previous = layout(&[3; 6]);
        let splice = splice(&plan(&[0, 1, 9, 3, 4, 5]), Compression::Gzip, &previous, 7).unwrap();
        assert_eq!(
            splice.groups,
            vec![Group {
                long: 9..18,
                short: vec![0..6]
            }]
        );
        assert_eq!(splice.fresh, vec![2]);
        let order: Vec<u8> = splice.kept.iter().map(|p| p.digest[0]).collect();
        assert_eq!(order, vec![3, 4, 5, 0, 1]);
        let layout = splice.layout(&plan(&[0, 1, 9, 3, 4, 5]), Compression::Gzip, &[vec![7; 4]]);
        assert_eq!(layout.runs.len(), 6);
        assert_eq!(layout.file_len(), Some(19));
    }

    #[test]
    fn shorts_are_shared_among_the_long_stretches() {
        // Long stretches of runs 0-1 and 5-6, short ones 3 and 8 between
        // removed runs.
        let previous = layout(&[5, 5, 1, 2, 1, 5, 5, 1, 2]);
        let wanted = plan(&[0, 1, 3, 5, 6, 8]);
        let splice = splice(&wanted, Compression::Gzip, &previous, 10).unwrap();
        assert_eq!(splice.groups.len(), 2);
        assert_eq!(splice.groups[0].short, vec![11..13]);
        assert_eq!(splice.groups[1].short, vec![25..27]);
        assert!(splice.fresh.is_empty());
    }

    #[test]
    fn no_splice_without_a_long_stretch_or_with_too_many_short_ones() {
        let previous = layout(&[3; 6]);
        let changed = plan(&[0, 9, 2, 9, 4, 5]);
        assert_eq!(splice(&changed, Compression::Gzip, &previous, 7), None);
        assert_eq!(splice(&changed, Compression::Xz, &previous, 1), None);
        // Every other run changed: scattered.
        let previous = layout(&[1; 40]);
        let scattered = plan(
            &(0..40)
                .map(|i| if i % 2 == 0 { i } else { 99 })
                .collect::<Vec<_>>(),
        );
        let mut long = layout(&[1; 40]);
        long.runs[0].len = 100;
        assert!(splice(&scattered, Compression::Gzip, &long, 50).is_none());
        assert!(splice(&scattered, Compression::Gzip, &previous, 1).is_some());
    }

    /// Any previous layout and any new plan: a splice, when there is one,
    /// keeps each wanted run once, makes the others, and its groups are
    /// the kept runs' bytes.
    #[test]
    fn a_splice_holds_every_wanted_run_once() {
        let mut seed = 7u64;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let mut spliced = 0;
        for _ in 0..2000 {
            let count = 1 + next(30) as usize;
            let lens: Vec<u64> = (0..count).map(|_| 1 + next(9)).collect();
            let previous = layout(&lens);
            let added = next(4) as u8;
            let digests: Vec<u8> = (0..count as u8)
                .filter(|_| next(4) != 0)
                .chain((0..added).map(|i| 100 + i))
                .collect();
            let plan = plan(&digests);
            let Some(splice) = splice(&plan, Compression::Gzip, &previous, 1 + next(20)) else {
                continue;
            };
            spliced += 1;
            let made: Vec<Vec<u8>> = splice.fresh.iter().map(|_| vec![0; 3]).collect();
            let new = splice.layout(&plan, Compression::Gzip, &made);
            let mut have: Vec<u8> = new.runs.iter().map(|p| p.digest[0]).collect();
            let mut want = digests.clone();
            have.sort();
            want.sort();
            assert_eq!(have, want);
            // Each group's ranges are its runs' bytes in the previous file.
            let starts: Vec<u64> = lens
                .iter()
                .scan(0, |at, len| {
                    *at += len;
                    Some(*at - len)
                })
                .collect();
            let mut kept = splice.kept.iter();
            for group in &splice.groups {
                for range in std::iter::once(&group.long).chain(&group.short) {
                    let mut at = range.start;
                    while at < range.end {
                        let run = kept.next().unwrap();
                        let i = run.digest[0] as usize;
                        assert_eq!(starts[i], at);
                        at += lens[i];
                    }
                    assert_eq!(at, range.end);
                }
            }
            assert!(kept.next().is_none());
        }
        assert!(spliced > 500, "{spliced}");
    }

    #[test]
    fn a_run_wanted_once_is_kept_once() {
        // A forged layout naming one run twice: kept once, never twice.
        let mut previous = layout(&[10, 10]);
        previous.runs[1].digest = previous.runs[0].digest;
        let splice = splice(&plan(&[0]), Compression::Gzip, &previous, 5).unwrap();
        assert_eq!(splice.kept.len(), 1);
        assert!(splice.fresh.is_empty());
    }
}
