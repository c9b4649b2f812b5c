//! Publish gates: whether a summary may reach clients. The state always
//! commits what the bucket holds (nothing is lost); a gate only keeps a
//! summary that would hurt clients from replacing the one they have, the
//! way a release manager would refuse it:
//!
//! - a hold (`pkgsum hold`, a rollback) stops every publication;
//! - `PKGSUM_MAX_SHRINK`: a summary listing that share fewer packages
//!   than the one published (a deleted platform directory, a wrong
//!   prefix) is held, if that is [`SHRINK_FLOOR`] packages or more (a
//!   repository of three that loses one was not hit by a script bug);
//! - `PKGSUM_REQUIRED`: a summary missing one of these PKGBASEs (the
//!   package tools, say) is held;
//! - `PKGSUM_UNRESOLVED=hold`: a summary listing a package whose DEPENDS
//!   nothing listed satisfies is held.
//!
//! Which packages a summary lists at all (`PKGSUM_SELECT`) is decided
//! here too, since the gates judge what clients would see.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use pkgsrc::pkgname::pkgbase;

use crate::checks;
use crate::excerpt::Bare;
use crate::select::Select;
use crate::state::Hold;

/// What to do about DEPENDS that nothing listed satisfies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Unresolved {
    /// Publish, and warn (another repository may provide them).
    #[default]
    Warn,
    /// Hold the summary.
    Hold,
}

impl FromStr for Unresolved {
    type Err = ();

    fn from_str(text: &str) -> Result<Unresolved, ()> {
        match text {
            "warn" => Ok(Unresolved::Warn),
            "hold" => Ok(Unresolved::Hold),
            _ => Err(()),
        }
    }
}

/// The gates a repository's summaries pass before they are published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gates {
    pub select: Select,
    /// The share of the packages published, in percent, a new summary
    /// may drop; 100 turns the gate off.
    pub max_shrink: u8,
    /// PKGBASEs every summary must list.
    pub required: Vec<String>,
    pub unresolved: Unresolved,
}

impl Default for Gates {
    fn default() -> Self {
        Gates {
            select: Select::All,
            max_shrink: DEFAULT_MAX_SHRINK,
            required: Vec::new(),
            unresolved: Unresolved::Warn,
        }
    }
}

/// `PKGSUM_MAX_SHRINK`'s default, in percent.
pub const DEFAULT_MAX_SHRINK: u8 = 25;

/// The fewest packages a summary must drop for the shrink gate to hold
/// it, whatever their share.
pub const SHRINK_FLOOR: usize = 10;

impl Gates {
    /// Whether judging needs every record (else the package count does).
    pub fn need_records(&self) -> bool {
        self.select == Select::Newest
            || !self.required.is_empty()
            || self.unresolved == Unresolved::Hold
    }
}

/// Why a summary is not published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    Held(Hold),
    Shrink {
        published: usize,
        now: usize,
        limit: u8,
    },
    Missing(Vec<String>),
    Unresolved {
        /// How many DEPENDS are unresolved, and the first.
        count: usize,
        file: String,
        warning: String,
    },
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Closed::Held(hold) => write!(
                f,
                "publication is held ({}, since {}): `pkgsum resume` publishes",
                Bare(&hold.reason),
                utc(hold.since)
            ),
            Closed::Shrink {
                published,
                now,
                limit,
            } => write!(
                f,
                "the summary would list {now} packages, {}% fewer than the {published} published \
                 (PKGSUM_MAX_SHRINK={limit}%): `pkgsum resume` publishes it anyway",
                shrink_percent(*published, *now)
            ),
            Closed::Missing(bases) => write!(
                f,
                "the summary would list no {} (PKGSUM_REQUIRED)",
                bases
                    .iter()
                    .map(|b| Bare(b).to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Closed::Unresolved {
                count,
                file,
                warning,
            } => write!(
                f,
                "{count} DEPENDS nothing listed satisfies, the first of {}: {} \
                 (PKGSUM_UNRESOLVED=hold)",
                Bare(file),
                Bare(warning)
            ),
        }
    }
}

/// A time in seconds since the epoch, as RFC 3339 in UTC.
pub fn utc(seconds: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// How much smaller `now` is than `published`, in whole percent (rounded
/// up, so a drop past the limit never reads as the limit).
fn shrink_percent(published: usize, now: usize) -> u64 {
    let dropped = published.saturating_sub(now) as u64;
    (dropped * 100).div_ceil((published as u64).max(1))
}

/// What a summary would list and whether it may be published.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Files the summary leaves out (`PKGSUM_SELECT=newest`).
    pub unlisted: BTreeSet<String>,
    /// Packages it lists.
    pub listed: usize,
    /// Why it may not be published; empty when it may.
    pub closed: Vec<Closed>,
}

/// Judges a summary of the repository: `count` packages, whose records
/// (file name, record) are given when [`Gates::need_records`]; `hold`
/// from the state; `published`, the package count of the summary out
/// there (none when there is none, or it does not say).
pub fn judge<'a>(
    gates: &Gates,
    hold: Option<&Hold>,
    count: usize,
    records: Option<&[(&'a str, &'a [u8])]>,
    published: Option<usize>,
) -> Verdict {
    let mut verdict = Verdict {
        listed: count,
        ..Verdict::default()
    };
    if let Some(hold) = hold {
        verdict.closed.push(Closed::Held(hold.clone()));
    }
    let listed: Vec<(&str, &[u8])> = match records {
        Some(records) => {
            verdict.unlisted = checks::unlisted(gates.select, records.iter().copied());
            let listed = records
                .iter()
                .filter(|(n, _)| !verdict.unlisted.contains(*n));
            listed.copied().collect()
        }
        None => Vec::new(),
    };
    verdict.listed = count.saturating_sub(verdict.unlisted.len());
    if let Some(published) = published
        && shrink_percent(published, verdict.listed) > u64::from(gates.max_shrink)
        && published.saturating_sub(verdict.listed) >= SHRINK_FLOOR
    {
        verdict.closed.push(Closed::Shrink {
            published,
            now: verdict.listed,
            limit: gates.max_shrink,
        });
    }
    if records.is_some() {
        verdict.closed.extend(missing(&gates.required, &listed));
        if gates.unresolved == Unresolved::Hold {
            let found = checks::unresolved_of(listed.iter().copied());
            if let Some((file, warning)) = found.first() {
                verdict.closed.push(Closed::Unresolved {
                    count: found.len(),
                    file: file.clone(),
                    warning: warning.clone(),
                });
            }
        }
    }
    verdict
}

/// The required PKGBASEs no listed record has.
fn missing(required: &[String], listed: &[(&str, &[u8])]) -> Option<Closed> {
    if required.is_empty() {
        return None;
    }
    let bases: BTreeSet<&str> = listed
        .iter()
        .filter_map(|(_, record)| crate::record::pkgname(record))
        .filter_map(|name| std::str::from_utf8(name).ok())
        .map(pkgbase)
        .collect();
    let missing: Vec<String> = required
        .iter()
        .filter(|r| !bases.contains(r.as_str()))
        .cloned()
        .collect();
    (!missing.is_empty()).then_some(Closed::Missing(missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(pkgname: &str, pkgpath: &str, depends: &[&str]) -> Vec<u8> {
        let deps: String = depends.iter().map(|d| format!("DEPENDS={d}\n")).collect();
        format!("{deps}PKGNAME={pkgname}\nPKGPATH={pkgpath}\n\n").into_bytes()
    }

    fn corpus() -> Vec<(String, Vec<u8>)> {
        let versions = ["1.0alpha", "1.0", "1.0nb1", "1.0.1", "1.0pl1"];
        let mut all: Vec<(String, Vec<u8>)> = versions
            .iter()
            .map(|v| {
                (
                    format!("foo-{v}.tgz"),
                    record(&format!("foo-{v}"), "misc/foo", &[]),
                )
            })
            .collect();
        all.push((
            "pkgin-24.tgz".into(),
            record("pkgin-24", "pkgtools/pkgin", &["foo>=1"]),
        ));
        all.sort();
        all
    }

    fn pairs(corpus: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
        corpus.iter().map(|(n, r)| (n.as_str(), &r[..])).collect()
    }

    #[test]
    fn newest_lists_one_version_in_dewey_order() {
        let corpus = corpus();
        let gates = Gates {
            select: Select::Newest,
            ..Gates::default()
        };
        let verdict = judge(&gates, None, corpus.len(), Some(&pairs(&corpus)), None);
        let unlisted: Vec<&str> = verdict.unlisted.iter().map(String::as_str).collect();
        // By bytes 1.0pl1 sorts last; in dewey order `pl` is `.`, so
        // 1.0pl1 ties with 1.0.1, whose name sorts first.
        assert_eq!(
            unlisted,
            [
                "foo-1.0.tgz",
                "foo-1.0alpha.tgz",
                "foo-1.0nb1.tgz",
                "foo-1.0pl1.tgz"
            ]
        );
        assert_eq!(verdict.listed, 2);
        assert!(verdict.closed.is_empty());
        let all = judge(
            &Gates::default(),
            None,
            corpus.len(),
            Some(&pairs(&corpus)),
            None,
        );
        assert!(all.unlisted.is_empty());
        assert_eq!(all.listed, 6);
    }

    #[test]
    fn a_shrink_past_the_limit_is_held() {
        let gates = Gates::default();
        assert!(judge(&gates, None, 75, None, Some(100)).closed.is_empty());
        // Past the share, but fewer than the floor: a small repository.
        assert!(judge(&gates, None, 2, None, Some(3)).closed.is_empty());
        assert!(judge(&gates, None, 11, None, Some(20)).closed.is_empty());
        assert!(!judge(&gates, None, 10, None, Some(20)).closed.is_empty());
        let held = judge(&gates, None, 60, None, Some(100)).closed;
        assert_eq!(
            held,
            [Closed::Shrink {
                published: 100,
                now: 60,
                limit: 25
            }]
        );
        assert_eq!(
            held[0].to_string(),
            "the summary would list 60 packages, 40% fewer than the 100 published \
             (PKGSUM_MAX_SHRINK=25%): `pkgsum resume` publishes it anyway"
        );
        // 74.5 of 100 is past 25%, even if it rounds to it.
        assert!(!judge(&gates, None, 149, None, Some(200)).closed.is_empty());
        let off = Gates {
            max_shrink: 100,
            ..Gates::default()
        };
        assert!(judge(&off, None, 0, None, Some(100)).closed.is_empty());
        assert!(judge(&gates, None, 1, None, None).closed.is_empty());
        assert!(judge(&gates, None, 500, None, Some(100)).closed.is_empty());
    }

    #[test]
    fn required_and_unresolved_hold_what_the_summary_lacks() {
        let corpus = corpus();
        let gates = Gates {
            required: vec!["pkgin".into(), "pkg_install".into()],
            ..Gates::default()
        };
        let verdict = judge(&gates, None, corpus.len(), Some(&pairs(&corpus)), None);
        assert_eq!(
            verdict.closed,
            [Closed::Missing(vec!["pkg_install".into()])]
        );

        // Under newest, what is left out does not satisfy anything.
        let mut corpus = corpus;
        corpus.push((
            "app-1.tgz".into(),
            record("app-1", "misc/app", &["foo<1.0.1"]),
        ));
        corpus.sort();
        let gates = Gates {
            select: Select::Newest,
            unresolved: Unresolved::Hold,
            ..Gates::default()
        };
        let verdict = judge(&gates, None, corpus.len(), Some(&pairs(&corpus)), None);
        assert_eq!(verdict.closed.len(), 1, "{:?}", verdict.closed);
        let Closed::Unresolved { count, file, .. } = &verdict.closed[0] else {
            panic!("{:?}", verdict.closed)
        };
        assert_eq!((*count, file.as_str()), (1, "app-1.tgz"));
        let warn = Gates {
            unresolved: Unresolved::Warn,
            ..gates
        };
        assert!(
            judge(&warn, None, corpus.len(), Some(&pairs(&corpus)), None)
                .closed
                .is_empty()
        );
    }

    #[test]
    fn a_hold_closes_and_quotes_its_reason_escaped() {
        let hold = Hold {
            since: 0,
            reason: "by \u{1b}[31mme\n".into(),
        };
        let verdict = judge(&Gates::default(), Some(&hold), 3, None, Some(3));
        assert_eq!(verdict.closed.len(), 1);
        let text = verdict.closed[0].to_string();
        assert!(!text.contains('\u{1b}') && !text.contains('\n'), "{text}");
        assert!(text.starts_with("publication is held (by "), "{text}");
    }
}
