//! Which packages a summary lists (`PKGSUM_SELECT`): all of them, or only
//! the newest version of each package. pkgin drives upgrades by PKGPATH,
//! and two versions under one PKGPATH in one summary confuse them
//! (NetBSDfr/pkgin#122); pbulk never lists more than one. `newest` keeps,
//! for each PKGPATH and PKGBASE, the version that is highest in
//! pkg_install's dewey order (`1.0alpha < 1.0 < 1.0nb1 < 1.0.1 = 1.0pl1`
//! is not the strings' order). PKGBASE counts too because one PKGPATH
//! builds one package per Python or PHP version (`py311-foo`, `py312-foo`),
//! and those are not versions of each other.
//!
//! An unlisted package's file stays where it is: a client that installed
//! it can still download it. Under `all`, every group with more than one
//! version is named, so the operator hears of it.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use pkgsrc::Pattern;
use pkgsrc::pkgname::pkgbase;

/// What a summary lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Select {
    /// Every package the repository holds.
    #[default]
    All,
    /// The newest version of each PKGPATH and PKGBASE.
    Newest,
}

/// A `PKGSUM_SELECT` value that is neither `all` nor `newest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not `all` or `newest`")]
pub struct SelectError;

impl FromStr for Select {
    type Err = SelectError;

    fn from_str(text: &str) -> Result<Select, SelectError> {
        match text {
            "all" => Ok(Select::All),
            "newest" => Ok(Select::Newest),
            _ => Err(SelectError),
        }
    }
}

impl fmt::Display for Select {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Select::All => "all",
            Select::Newest => "newest",
        })
    }
}

/// A package as selection sees it: its file name and the two fields of
/// its record that say what it is a version of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub name: &'a str,
    pub pkgname: &'a str,
    pub pkgpath: &'a str,
}

/// Versions of one package found together: the file listed as the
/// newest, and the other files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    pub pkgpath: String,
    pub newest: String,
    pub older: Vec<String>,
}

/// What selection found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Files left out of the summary (`newest` only).
    pub unlisted: BTreeSet<String>,
    /// Every group of more than one version, newest first; under `all`
    /// these are the warnings, under `newest` the reasons.
    pub versions: Vec<Versions>,
}

/// Selects what a summary lists from `candidates`. A package whose
/// version cannot be ordered (a component past 2^63) is never unlisted:
/// the selection only hides what it can prove older.
pub fn select<'a>(mode: Select, candidates: impl IntoIterator<Item = Candidate<'a>>) -> Selection {
    let mut groups: BTreeMap<(&str, &str), Vec<Candidate<'a>>> = BTreeMap::new();
    for candidate in candidates {
        let key = (candidate.pkgpath, pkgbase(candidate.pkgname));
        groups.entry(key).or_default().push(candidate);
    }
    let mut selection = Selection::default();
    let Ok(any) = Pattern::new("*") else {
        return selection;
    };
    for ((pkgpath, _), group) in groups.into_iter().filter(|(_, g)| g.len() > 1) {
        let Some(newest) = newest(&any, &group) else {
            continue;
        };
        let older: Vec<String> = group
            .iter()
            .filter(|c| c.name != newest.name)
            .filter(|c| dewey(&any, c.pkgname, newest.pkgname).is_some_and(Ordering::is_le))
            .map(|c| c.name.to_owned())
            .collect();
        if older.is_empty() {
            continue;
        }
        if mode == Select::Newest {
            selection.unlisted.extend(older.iter().cloned());
        }
        selection.versions.push(Versions {
            pkgpath: pkgpath.to_owned(),
            newest: newest.name.to_owned(),
            older,
        });
    }
    selection
}

/// The newest of `group` in dewey order, of those whose version can be
/// ordered; of equal versions, the file whose name sorts first, so the
/// choice does not depend on the order they came in.
fn newest<'g, 'a>(any: &Pattern, group: &'g [Candidate<'a>]) -> Option<&'g Candidate<'a>> {
    let mut best: Option<&Candidate<'a>> = None;
    for candidate in group.iter().filter(|c| orderable(any, c.pkgname)) {
        let wins = match best {
            None => true,
            Some(best) => match dewey(any, candidate.pkgname, best.pkgname) {
                Some(Ordering::Greater) => true,
                Some(Ordering::Equal) => candidate.name < best.name,
                _ => false,
            },
        };
        if wins {
            best = Some(candidate);
        }
    }
    best
}

/// Whether the version of `pkgname` can be ordered at all.
pub(crate) fn orderable(any: &Pattern, pkgname: &str) -> bool {
    any.best_match(Some("x-0"), pkgname).is_ok()
}

/// The version of `a` against that of `b` in pkg_install's dewey order;
/// `None` when either cannot be ordered. The crate's best match breaks a
/// tie between equal versions by the names, one way or the other: when
/// the two ways pick different names, the versions are equal.
pub(crate) fn dewey(any: &Pattern, a: &str, b: &str) -> Option<Ordering> {
    if a == b {
        return Some(Ordering::Equal);
    }
    let smaller_on_tie = any.best_match(Some(a), b).ok()??;
    let larger_on_tie = any.best_match_pbulk(Some(a), b).ok()??;
    Some(match (smaller_on_tie == a, larger_on_tie == a) {
        (true, true) => Ordering::Greater,
        (false, false) => Ordering::Less,
        _ => Ordering::Equal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates<'a>(names: &'a [(&'a str, &'a str)]) -> Vec<Candidate<'a>> {
        names
            .iter()
            .map(|&(pkgname, pkgpath)| Candidate {
                name: pkgname,
                pkgname,
                pkgpath,
            })
            .collect()
    }

    #[test]
    fn newest_is_dewey_order_not_string_order() {
        let any = Pattern::new("*").unwrap();
        // In string order 1.0 < 1.0.1 < 1.0alpha < 1.0nb1 < 1.0pl1.
        let order = [
            "foo-1.0alpha",
            "foo-1.0",
            "foo-1.0nb1",
            "foo-1.0.1",
            "foo-1.10",
        ];
        for pair in order.windows(2) {
            assert_eq!(
                dewey(&any, pair[0], pair[1]),
                Some(Ordering::Less),
                "{pair:?}"
            );
            assert_eq!(
                dewey(&any, pair[1], pair[0]),
                Some(Ordering::Greater),
                "{pair:?}"
            );
        }
        // `pl` counts as `.`: 1.0pl1 is 1.0.1.
        assert_eq!(
            dewey(&any, "foo-1.0pl1", "foo-1.0.1"),
            Some(Ordering::Equal)
        );
        assert_eq!(
            dewey(&any, "foo-1.0.1", "foo-1.0pl1"),
            Some(Ordering::Equal)
        );

        let versions = [
            "foo-1.0alpha",
            "foo-1.0",
            "foo-1.0nb1",
            "foo-1.0.1",
            "foo-1.0pl1",
        ];
        // Every rotation of the input gives the same answer: of the equal
        // newest two, the name that sorts first.
        for shift in 0..versions.len() {
            let mut rotated = versions.to_vec();
            rotated.rotate_left(shift);
            let pairs: Vec<_> = rotated.iter().map(|&v| (v, "misc/foo")).collect();
            let found = select(Select::Newest, candidates(&pairs));
            assert_eq!(found.versions.len(), 1);
            assert_eq!(found.versions[0].newest, "foo-1.0.1");
            let kept: Vec<_> = versions
                .iter()
                .filter(|v| !found.unlisted.contains(**v))
                .collect();
            assert_eq!(kept, [&"foo-1.0.1"]);
        }
    }

    #[test]
    fn all_lists_everything_and_names_the_versions() {
        let pairs = [
            ("foo-1.0", "misc/foo"),
            ("foo-1.10", "misc/foo"),
            ("foo-1.9", "misc/foo"),
        ];
        let found = select(Select::All, candidates(&pairs));
        assert!(found.unlisted.is_empty());
        assert_eq!(
            found.versions,
            [Versions {
                pkgpath: "misc/foo".into(),
                newest: "foo-1.10".into(),
                older: vec!["foo-1.0".into(), "foo-1.9".into()],
            }]
        );
    }

    #[test]
    fn groups_are_pkgpath_and_pkgbase() {
        let pairs = [
            // One PKGPATH, one package per Python version: not versions.
            ("py311-foo-1.0", "devel/py-foo"),
            ("py312-foo-1.0", "devel/py-foo"),
            // One PKGBASE from two PKGPATHs: not versions either.
            ("bar-1.0", "misc/bar"),
            ("bar-2.0", "wip/bar"),
            ("baz-1.0", "misc/baz"),
        ];
        assert_eq!(
            select(Select::Newest, candidates(&pairs)),
            Selection::default()
        );
    }

    #[test]
    fn a_version_that_cannot_be_ordered_stays_listed() {
        let pairs = [
            ("foo-1.0", "misc/foo"),
            ("foo-2.0", "misc/foo"),
            ("foo-99999999999999999999", "misc/foo"),
        ];
        let found = select(Select::Newest, candidates(&pairs));
        assert_eq!(found.unlisted, BTreeSet::from(["foo-1.0".to_owned()]));
    }

    #[test]
    fn hostile_versions_cost_linear_time() {
        // One PKGBASE with 20,000 versions, and a 1 MiB version of dots.
        let mut owned: Vec<String> = (0..20_000).map(|i| format!("foo-1.{i}")).collect();
        owned.push(format!("foo-{}", ".".repeat(1 << 20)));
        let pairs: Vec<(&str, &str)> = owned.iter().map(|n| (n.as_str(), "misc/foo")).collect();
        let found = select(Select::Newest, candidates(&pairs));
        assert_eq!(found.versions[0].newest, "foo-1.19999");
        assert_eq!(found.unlisted.len(), 20_000);
    }

    #[test]
    fn select_parses_its_setting() {
        assert_eq!("newest".parse(), Ok(Select::Newest));
        assert_eq!("all".parse(), Ok(Select::All));
        assert_eq!("Newest".parse::<Select>(), Err(SelectError));
        assert_eq!(Select::Newest.to_string(), "newest");
    }
}
