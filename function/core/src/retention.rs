//! Which package files a retention rule lets go (`pkgsum prune`), and why
//! every other one stays. Pruning naively breaks clients: pkgin cannot
//! upgrade a package whose installed file is gone (NetBSDfr/pkgin#79), so
//! the rules only ever propose, and the shields always win:
//!
//! - a file the current summary (or the index, at its next publication)
//!   lists stays;
//! - so does a file a generation listed within the grace window, and one
//!   that may have been listed by generations the history no longer holds;
//! - so does the one package left that satisfies a DEPENDS of a package
//!   that stays (the newest of them, as pkg_add would pick), and then its
//!   own dependencies, until nothing more is needed.
//!
//! The rules are `keep` (the newest N versions of each PKGPATH and
//! PKGBASE, in pkg_install's dewey order, ties broken by the later
//! BUILD_DATE) and `older_than` (uploaded longer ago than that); given
//! both, a file must break both to go. A file whose record names no
//! PKGNAME or PKGPATH, or whose version cannot be ordered, is not
//! understood well enough to judge, and stays.
//!
//! This is pure: the shell gathers the files, what is listed, and what
//! the history listed; DEPENDS are matched within [`MATCH_BUDGET`], and a
//! judgement the budget cannot settle keeps the file.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use pkgsrc::Pattern;
use pkgsrc::pkgname::pkgbase;

use crate::checks::{MATCH_BUDGET, Names};
use crate::excerpt::Bare;
use crate::select::{dewey, orderable};

/// Seconds in a day, for ages people read.
const DAY: u64 = 86_400;

/// The retention rules; at least one should be set (with none, nothing
/// goes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rules {
    /// Keep the newest this many versions of each PKGPATH and PKGBASE.
    pub keep: Option<usize>,
    /// Let go only files uploaded at least this many seconds ago.
    pub older_than: Option<u64>,
}

/// A package file as retention sees it.
#[derive(Debug, Clone, Copy)]
pub struct File<'a> {
    /// Its name in the repository.
    pub name: &'a str,
    pub size: u64,
    /// When it was uploaded, in seconds since the epoch.
    pub modified: Option<u64>,
    /// Its `pkg_info -X` record.
    pub record: &'a [u8],
}

/// What protects files whatever the rules say.
#[derive(Debug, Clone, Default)]
pub struct Shield {
    /// Files the current summary or the index lists.
    pub listed: BTreeSet<String>,
    /// Files a generation of the history listed within the grace window,
    /// with the newest such generation.
    pub grace: BTreeMap<String, u64>,
    /// When the history does not reach back over the whole grace window:
    /// the time from which it does. A file uploaded before then may have
    /// been listed by a generation no longer kept.
    pub known_since: Option<u64>,
    /// Files that hold other bytes than the index read: judged again once
    /// the indexer has read them.
    pub changed: BTreeSet<String>,
}

/// Why a file goes or stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// It breaks the rules set: older than the newest `keep` of its
    /// PKGPATH (it is number `rank`), uploaded `age_days` ago.
    Expired {
        pkgpath: String,
        rank: Option<(usize, usize)>,
        age_days: Option<u64>,
    },
    /// Number `rank` of the newest `keep` of its PKGPATH.
    Newest {
        pkgpath: String,
        rank: usize,
        keep: usize,
    },
    /// Uploaded `age_days` ago, within `--older-than`.
    Recent { age_days: u64 },
    /// Its upload time is not known.
    Undated,
    /// The current summary or the index lists it.
    Listed,
    /// Generation `generation` listed it within the grace window.
    Grace { generation: u64 },
    /// Uploaded before the history reaches back to (`since`).
    Unknown { since: u64 },
    /// The newest package left satisfying `pattern`, a DEPENDS of `by`.
    Needed { by: String, pattern: String },
    /// Its version cannot be ordered.
    Unordered,
    /// Its record names no PKGNAME or PKGPATH.
    Unidentified,
    /// DEPENDS matching ran out of its budget before this was settled.
    Unsettled,
    /// No rule was set.
    NoRule,
    /// It changed since the index read it.
    Changed,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Expired {
                pkgpath,
                rank,
                age_days,
            } => {
                let mut parts = Vec::new();
                if let Some((rank, keep)) = rank {
                    parts.push(format!(
                        "version {rank} of {}, past the newest {keep}",
                        Bare(pkgpath)
                    ));
                }
                if let Some(days) = age_days {
                    parts.push(format!("uploaded {days} days ago"));
                }
                f.write_str(&parts.join(", "))
            }
            Reason::Newest {
                pkgpath,
                rank,
                keep,
            } => write!(
                f,
                "version {rank} of {}, within the newest {keep}",
                Bare(pkgpath)
            ),
            Reason::Recent { age_days } => {
                write!(f, "uploaded {age_days} days ago, within --older-than")
            }
            Reason::Undated => f.write_str("its upload time is not known"),
            Reason::Listed => f.write_str("the current summary or the index lists it"),
            Reason::Grace { generation } => write!(
                f,
                "generation {generation} listed it within the grace window: clients may have installed it"
            ),
            Reason::Unknown { since } => write!(
                f,
                "uploaded before the history begins ({}): it may have been listed within the grace window",
                date(*since)
            ),
            Reason::Needed { by, pattern } => write!(
                f,
                "the newest package left satisfying DEPENDS {} of {}",
                Bare(pattern),
                Bare(by)
            ),
            Reason::Unordered => f.write_str("its version cannot be ordered"),
            Reason::Unidentified => f.write_str("its record names no PKGNAME or PKGPATH"),
            Reason::Changed => f.write_str(
                "it changed since the index read it: judged once the indexer has read it",
            ),
            Reason::NoRule => f.write_str("no rule (--keep, --older-than) was set"),
            Reason::Unsettled => {
                f.write_str("DEPENDS matching ran out of its budget before this was settled")
            }
        }
    }
}

impl Reason {
    /// Whether it keeps a file the rules would let go.
    pub fn is_shield(&self) -> bool {
        matches!(
            self,
            Reason::Listed
                | Reason::Grace { .. }
                | Reason::Unknown { .. }
                | Reason::Needed { .. }
                | Reason::Changed
                | Reason::Unsettled
        )
    }
}

/// A day as people write it, e.g. `2026-12-06`.
fn date(seconds: u64) -> String {
    let mut text = crate::gate::utc(seconds);
    text.truncate(10);
    text
}

/// What became of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    pub name: String,
    pub size: u64,
    pub goes: bool,
    pub why: Reason,
}

/// What retention reads of a record.
struct Fields<'a> {
    pkgname: Option<&'a str>,
    pkgpath: Option<&'a str>,
    build_date: &'a [u8],
    depends: Vec<&'a [u8]>,
}

impl<'a> Fields<'a> {
    fn of(record: &'a [u8]) -> Fields<'a> {
        let mut fields = Fields {
            pkgname: None,
            pkgpath: None,
            build_date: b"",
            depends: Vec::new(),
        };
        for line in record.split(|&b| b == b'\n') {
            let Some(eq) = line.iter().position(|&b| b == b'=') else {
                continue;
            };
            let (name, value) = (&line[..eq], &line[eq + 1..]);
            match name {
                b"DEPENDS" => fields.depends.push(value),
                b"PKGNAME" if fields.pkgname.is_none() => {
                    fields.pkgname = std::str::from_utf8(value).ok();
                }
                b"PKGPATH" if fields.pkgpath.is_none() => {
                    fields.pkgpath = std::str::from_utf8(value).ok();
                }
                b"BUILD_DATE" if fields.build_date.is_empty() => fields.build_date = value,
                _ => {}
            }
        }
        fields
    }
}

/// Judges every file of `files` by `rules`, under `shield`, at `now`
/// (seconds since the epoch); the answer is sorted by name.
pub fn judge(files: &[File<'_>], rules: Rules, shield: &Shield, now: u64) -> Vec<Judged> {
    let fields: Vec<Fields> = files.iter().map(|f| Fields::of(f.record)).collect();
    let ranks = ranks(&fields, files);
    let mut verdicts: Vec<(bool, Reason)> = files
        .iter()
        .zip(&fields)
        .zip(&ranks)
        .map(
            |((file, fields), rank)| match by_rules(file, fields, rank, rules, now) {
                (true, why) => shielded(file, shield, why),
                kept => kept,
            },
        )
        .collect();
    // Shielding is per file; dependencies are of the whole.
    verdicts = keep_needed(files, &fields, verdicts);
    let mut judged: Vec<Judged> = files
        .iter()
        .zip(verdicts)
        .map(|(file, (goes, why))| Judged {
            name: file.name.to_owned(),
            size: file.size,
            goes,
            why,
        })
        .collect();
    judged.sort_by(|a, b| a.name.cmp(&b.name));
    judged
}

/// Where a file stands among the versions of its PKGPATH and PKGBASE.
#[derive(Debug, Clone)]
enum Rank {
    /// Number `.0` (1: the newest) of its group, whose PKGPATH is `.1`.
    Of(usize, String),
    Unordered,
    Unidentified,
}

/// Each file's rank in its group, newest first: dewey order, then the
/// later BUILD_DATE (as written: pkgsrc writes it `YYYY-MM-DD HH:MM:SS
/// ±ZZZZ`), then the name that sorts first, as `select` picks.
fn ranks(fields: &[Fields], files: &[File]) -> Vec<Rank> {
    let mut ranks = vec![Rank::Unidentified; files.len()];
    let Ok(any) = Pattern::new("*") else {
        return ranks;
    };
    let mut groups: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for (i, f) in fields.iter().enumerate() {
        let (Some(pkgname), Some(pkgpath)) = (f.pkgname, f.pkgpath) else {
            continue;
        };
        if !orderable(&any, pkgname) {
            ranks[i] = Rank::Unordered;
            continue;
        }
        groups
            .entry((pkgpath, pkgbase(pkgname)))
            .or_default()
            .push(i);
    }
    for ((pkgpath, _), mut group) in groups {
        // dewey is a total preorder (components padded with zeros, then
        // PKGREVISION) and the rest break its ties, so this is a total
        // order.
        group.sort_by(|&a, &b| {
            let (fa, fb) = (&fields[a], &fields[b]);
            let (na, nb) = (fa.pkgname.unwrap_or(""), fb.pkgname.unwrap_or(""));
            dewey(&any, nb, na)
                .unwrap_or(Ordering::Equal)
                .then_with(|| fb.build_date.cmp(fa.build_date))
                .then_with(|| files[a].name.cmp(files[b].name))
        });
        for (rank, i) in group.into_iter().enumerate() {
            ranks[i] = Rank::Of(rank + 1, pkgpath.to_owned());
        }
    }
    ranks
}

/// What the rules alone say of a file.
fn by_rules(file: &File, fields: &Fields, rank: &Rank, rules: Rules, now: u64) -> (bool, Reason) {
    if fields.pkgname.is_none() {
        return (false, Reason::Unidentified);
    }
    let mut pkgpath = fields.pkgpath.unwrap_or("").to_owned();
    let mut expired_rank = None;
    if let Some(keep) = rules.keep {
        match rank {
            Rank::Unidentified => return (false, Reason::Unidentified),
            Rank::Unordered => return (false, Reason::Unordered),
            Rank::Of(rank, path) if *rank <= keep => {
                let why = Reason::Newest {
                    pkgpath: path.clone(),
                    rank: *rank,
                    keep,
                };
                return (false, why);
            }
            Rank::Of(rank, path) => {
                pkgpath = path.clone();
                expired_rank = Some((*rank, keep));
            }
        }
    }
    let mut age_days = None;
    if let Some(older_than) = rules.older_than {
        let Some(modified) = file.modified else {
            return (false, Reason::Undated);
        };
        let age = now.saturating_sub(modified);
        if age < older_than {
            return (
                false,
                Reason::Recent {
                    age_days: age / DAY,
                },
            );
        }
        age_days = Some(age / DAY);
    }
    if expired_rank.is_none() && age_days.is_none() {
        return (false, Reason::NoRule);
    }
    let why = Reason::Expired {
        pkgpath,
        rank: expired_rank,
        age_days,
    };
    (true, why)
}

/// A file the rules let go, unless a shield keeps it.
fn shielded(file: &File, shield: &Shield, why: Reason) -> (bool, Reason) {
    if shield.changed.contains(file.name) {
        return (false, Reason::Changed);
    }
    if shield.listed.contains(file.name) {
        return (false, Reason::Listed);
    }
    if let Some(&generation) = shield.grace.get(file.name) {
        return (false, Reason::Grace { generation });
    }
    if let Some(since) = shield.known_since
        && file.modified.is_none_or(|m| m < since)
    {
        return (false, Reason::Unknown { since });
    }
    (true, why)
}

/// Keeps, for every DEPENDS of a file that stays, the newest file that
/// satisfies it if none that stays does; then theirs, until no more.
fn keep_needed(
    files: &[File],
    fields: &[Fields],
    mut verdicts: Vec<(bool, Reason)>,
) -> Vec<(bool, Reason)> {
    let mut named: Vec<&str> = Vec::new();
    let mut file_of: Vec<usize> = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        if let Some(pkgname) = f.pkgname {
            named.push(pkgname);
            file_of.push(i);
        }
    }
    let names = Names::new(named.clone());
    let mut budget = MATCH_BUDGET;
    let mut settled: BTreeSet<&[u8]> = BTreeSet::new();
    let mut todo: Vec<usize> = (0..files.len()).filter(|&i| !verdicts[i].0).collect();
    while let Some(i) = todo.pop() {
        for &dep in &fields[i].depends {
            if settled.contains(dep) {
                continue;
            }
            let Ok(pattern) = Names::pattern(dep) else {
                settled.insert(dep);
                continue;
            };
            let mut staying = false;
            let mut going: Vec<usize> = Vec::new();
            let done = names.matching(&pattern, &mut budget, |n| {
                let file = file_of[n];
                match verdicts[file].0 {
                    false => staying = true,
                    true => going.push(file),
                }
                staying
            });
            if done.is_none() {
                return unsettled(verdicts);
            }
            settled.insert(dep);
            if staying || going.is_empty() {
                continue;
            }
            let best = newest_of(&pattern, &going, fields, files);
            verdicts[best] = (
                false,
                Reason::Needed {
                    by: files[i].name.to_owned(),
                    // At most MAX_PATTERN_BYTES: a longer one is no pattern.
                    pattern: String::from_utf8_lossy(dep).into_owned(),
                },
            );
            todo.push(best);
        }
    }
    verdicts
}

/// Of `going` (files `pattern` matches), the one pkg_add would pick.
fn newest_of(pattern: &Pattern, going: &[usize], fields: &[Fields], files: &[File]) -> usize {
    let mut best = going[0];
    for &candidate in &going[1..] {
        let (Some(a), Some(b)) = (fields[best].pkgname, fields[candidate].pkgname) else {
            continue;
        };
        if let Ok(Some(picked)) = pattern.best_match(Some(a), b)
            && picked == b
            && picked != a
        {
            best = candidate;
        } else if a == b && files[candidate].name < files[best].name {
            best = candidate;
        }
    }
    best
}

/// Every file still going stays: the budget ran out before what they
/// are needed for was settled.
fn unsettled(verdicts: Vec<(bool, Reason)>) -> Vec<(bool, Reason)> {
    verdicts
        .into_iter()
        .map(|(goes, why)| match goes {
            true => (false, Reason::Unsettled),
            false => (false, why),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    /// A record, its file named after PKGNAME, uploaded `days` ago.
    struct Made {
        name: String,
        record: Vec<u8>,
        modified: u64,
    }

    fn made(pkgname: &str, pkgpath: &str, build_date: &str, depends: &[&str], days: u64) -> Made {
        let mut record = format!("PKGNAME={pkgname}\nPKGPATH={pkgpath}\nBUILD_DATE={build_date}\n");
        for dep in depends {
            record.push_str(&format!("DEPENDS={dep}\n"));
        }
        Made {
            name: format!("{pkgname}.tgz"),
            record: record.into_bytes(),
            modified: NOW - days * DAY,
        }
    }

    fn files(made: &[Made]) -> Vec<File<'_>> {
        made.iter()
            .map(|m| File {
                name: &m.name,
                size: 100,
                modified: Some(m.modified),
                record: &m.record,
            })
            .collect()
    }

    fn going(judged: &[Judged]) -> Vec<&str> {
        judged
            .iter()
            .filter(|j| j.goes)
            .map(|j| j.name.as_str())
            .collect()
    }

    fn why<'j>(judged: &'j [Judged], name: &str) -> &'j Reason {
        &judged.iter().find(|j| j.name == name).unwrap().why
    }

    /// The corpus whose string order is not dewey order.
    fn corpus(pl_newer: bool) -> Vec<Made> {
        let (early, late) = ("2026-01-01 00:00:00 +0000", "2026-02-01 00:00:00 +0000");
        let (dot, pl) = if pl_newer {
            (early, late)
        } else {
            (late, early)
        };
        vec![
            made("foo-1.0alpha", "misc/foo", early, &[], 90),
            made("foo-1.0", "misc/foo", early, &[], 80),
            made("foo-1.0nb1", "misc/foo", early, &[], 70),
            made("foo-1.0.1", "misc/foo", dot, &[], 60),
            made("foo-1.0pl1", "misc/foo", pl, &[], 50),
        ]
    }

    #[test]
    fn keep_is_dewey_order_with_ties_by_build_date() {
        let rules = Rules {
            keep: Some(2),
            older_than: None,
        };
        for pl_newer in [true, false] {
            let made = corpus(pl_newer);
            let judged = judge(&files(&made), rules, &Shield::default(), NOW);
            assert_eq!(
                going(&judged),
                ["foo-1.0.tgz", "foo-1.0alpha.tgz", "foo-1.0nb1.tgz"]
            );
            let (first, second) = match pl_newer {
                true => ("foo-1.0pl1.tgz", "foo-1.0.1.tgz"),
                false => ("foo-1.0.1.tgz", "foo-1.0pl1.tgz"),
            };
            assert!(matches!(
                why(&judged, first),
                Reason::Newest { rank: 1, .. }
            ));
            assert!(matches!(
                why(&judged, second),
                Reason::Newest { rank: 2, .. }
            ));
            assert_eq!(
                why(&judged, "foo-1.0alpha.tgz").to_string(),
                "version 5 of misc/foo, past the newest 2"
            );
        }
    }

    #[test]
    fn both_rules_must_be_broken() {
        let made = corpus(true);
        let rules = Rules {
            keep: Some(1),
            older_than: Some(75 * DAY),
        };
        let judged = judge(&files(&made), rules, &Shield::default(), NOW);
        assert_eq!(going(&judged), ["foo-1.0.tgz", "foo-1.0alpha.tgz"]);
        assert_eq!(
            why(&judged, "foo-1.0nb1.tgz"),
            &Reason::Recent { age_days: 70 }
        );
        assert_eq!(
            why(&judged, "foo-1.0.tgz").to_string(),
            "version 4 of misc/foo, past the newest 1, uploaded 80 days ago"
        );
        // Age alone lets every old file go, whatever its rank.
        let rules = Rules {
            keep: None,
            older_than: Some(65 * DAY),
        };
        let judged = judge(&files(&made), rules, &Shield::default(), NOW);
        assert_eq!(
            going(&judged),
            ["foo-1.0.tgz", "foo-1.0alpha.tgz", "foo-1.0nb1.tgz"]
        );
        // No rule: nothing goes.
        let judged = judge(&files(&made), Rules::default(), &Shield::default(), NOW);
        assert!(going(&judged).is_empty());
    }

    #[test]
    fn shields_keep_what_clients_may_fetch() {
        let made = corpus(true);
        let rules = Rules {
            keep: Some(1),
            older_than: None,
        };
        let shield = Shield {
            listed: BTreeSet::from(["foo-1.0.1.tgz".to_owned()]),
            grace: BTreeMap::from([("foo-1.0nb1.tgz".to_owned(), 7)]),
            known_since: Some(NOW - 85 * DAY),
            changed: BTreeSet::new(),
        };
        let judged = judge(&files(&made), rules, &shield, NOW);
        assert_eq!(going(&judged), ["foo-1.0.tgz"]);
        assert_eq!(why(&judged, "foo-1.0.1.tgz"), &Reason::Listed);
        assert_eq!(
            why(&judged, "foo-1.0nb1.tgz"),
            &Reason::Grace { generation: 7 }
        );
        assert_eq!(
            why(&judged, "foo-1.0alpha.tgz"),
            &Reason::Unknown {
                since: NOW - 85 * DAY
            }
        );
    }

    #[test]
    fn the_newest_satisfier_of_a_kept_package_stays_and_so_do_its_dependencies() {
        let date = "2026-01-01 00:00:00 +0000";
        let deps = vec![
            made("app-1.0", "misc/app", date, &["lib>=1<2"], 10),
            made("lib-1.4", "devel/lib", date, &["base-[0-9]*"], 10),
            made("lib-1.5", "devel/lib", date, &["base<2"], 10),
            made("lib-2.0", "devel/lib", date, &[], 10),
            made("base-1.0", "devel/base", date, &[], 10),
            made("base-2.0", "devel/base", date, &[], 10),
            // Depended on by a file that goes: no reason to stay.
            made("old-1.0", "misc/old", date, &["lib<1.5"], 10),
            made("old-2.0", "misc/old", date, &[], 10),
        ];
        let rules = Rules {
            keep: Some(1),
            older_than: None,
        };
        let judged = judge(&files(&deps), rules, &Shield::default(), NOW);
        assert_eq!(going(&judged), ["lib-1.4.tgz", "old-1.0.tgz"]);
        assert_eq!(
            why(&judged, "lib-1.5.tgz").to_string(),
            "the newest package left satisfying DEPENDS lib>=1<2 of app-1.0.tgz"
        );
        assert_eq!(
            why(&judged, "base-1.0.tgz"),
            &Reason::Needed {
                by: "lib-1.5.tgz".into(),
                pattern: "base<2".into()
            }
        );
    }

    #[test]
    fn what_cannot_be_judged_stays() {
        let date = "2026-01-01 00:00:00 +0000";
        let mut odd = vec![
            made("foo-1.0", "misc/foo", date, &[], 10),
            made("foo-2.0", "misc/foo", date, &[], 10),
            made("foo-99999999999999999999", "misc/foo", date, &[], 10),
        ];
        odd.push(Made {
            name: "nameless.tgz".into(),
            record: b"COMMENT=no name\n".to_vec(),
            modified: 0,
        });
        let rules = Rules {
            keep: Some(1),
            older_than: None,
        };
        let judged = judge(&files(&odd), rules, &Shield::default(), NOW);
        assert_eq!(going(&judged), ["foo-1.0.tgz"]);
        assert_eq!(
            why(&judged, "foo-99999999999999999999.tgz"),
            &Reason::Unordered
        );
        assert_eq!(why(&judged, "nameless.tgz"), &Reason::Unidentified);
    }

    #[test]
    fn hostile_records_cost_bounded_work() {
        // 20,000 versions of one package, each depending on a pattern
        // of 256 alternatives that matches nothing but is looked up.
        let date = "2026-01-01 00:00:00 +0000";
        let wide = format!("{{{}}}-[0-9]*", vec!["x"; 256].join(","));
        let many: Vec<Made> = (0..20_000)
            .map(|i| {
                made(
                    &format!("foo-1.{i}"),
                    "misc/foo",
                    date,
                    &[wide.as_str()],
                    10,
                )
            })
            .collect();
        let rules = Rules {
            keep: Some(3),
            older_than: None,
        };
        let judged = judge(&files(&many), rules, &Shield::default(), NOW);
        assert_eq!(going(&judged).len(), 19_997);
        assert!(matches!(
            why(&judged, "foo-1.19999.tgz"),
            Reason::Newest { rank: 1, .. }
        ));
        // A pattern with more alternatives than are expanded is not matched.
        let huge = format!("{{{}}}{{a,b}}-1", vec!["x"; 256].join(","));
        let two = vec![
            made("app-1.0", "misc/app", date, &[huge.as_str()], 10),
            made("app-0.9", "misc/app", date, &[], 10),
        ];
        let rules = Rules {
            keep: Some(1),
            older_than: None,
        };
        let judged = judge(&files(&two), rules, &Shield::default(), NOW);
        assert_eq!(going(&judged), ["app-0.9.tgz"]);
    }

    #[test]
    fn dates_read_as_days() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_800_000_000), "2027-01-15");
    }
}
