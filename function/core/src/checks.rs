//! Checks that save users from silent failures: what neither pkg_info nor
//! pkgin reports, but makes a package fail later. Each finding is a
//! warning; the package stays indexed.
//!
//! Of one package ([`package_warnings`], on every pass that reads it):
//! - pkgin downloads `REPO/PKGNAME.tgz` and ignores FILE_NAME, so a
//!   package stored under any other name is listed but cannot be
//!   installed.
//! - pkg_add verifies a signed package's signature over `+PKG_HASH` but
//!   never compares the `pkgname` there with the package's PKGNAME, so a
//!   signature made for one package can vouch for another.
//!
//! Of the repository as a whole ([`repository_warnings`], where every
//! record is at hand: listing passes and `verify`):
//! - two files with one PKGNAME: pkgin keeps one of the records, and the
//!   other package cannot be installed;
//! - two versions of one PKGPATH (and PKGBASE): pkgin's upgrades get them
//!   wrong (NetBSDfr/pkgin#122); [`crate::select`] orders them;
//! - OPSYS, MACHINE_ARCH or OS_VERSION other than most packages': pkg_add
//!   refuses (or warns of) a package built for another platform;
//! - a DEPENDS pattern no package in the repository satisfies: pkgin cannot
//!   install the package from this repository alone (another repository
//!   may provide the dependency, so it is only a warning). Patterns are
//!   matched as pkg_install matches them (dewey, globs, alternates), by
//!   the `pkgsrc` crate.
//!
//! Every check is bounded, because one upload can carry anything: a
//! pattern is measured before it is expanded (its length and how many
//! alternatives its braces make), the matching of all patterns shares one
//! budget of work, a package gets at most [`MAX_PER_PACKAGE`] warnings,
//! and at most `keep` warnings are returned (the rest counted). Package
//! text is quoted as an [`excerpt`].

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use pkgsrc::Pattern;
use rayon::prelude::*;

use crate::excerpt::{Bare, excerpt};
use crate::record;
use crate::select;
use crate::signed::PkgHash;

/// Longest DEPENDS pattern matched (real ones are under 100 bytes).
pub const MAX_PATTERN_BYTES: usize = 1024;

/// Most alternatives a pattern's braces may make: `{a,b}{c,d}` makes 4,
/// and the `pkgsrc` crate builds every one of them. Real patterns make a
/// handful (`{py312,py313}-x>=1`: 2).
pub const MAX_ALTERNATIVES: u64 = 256;

/// The work all DEPENDS matching of one check may do, counted as the
/// bytes of the names compared: about a second of matching.
pub const MATCH_BUDGET: u64 = 1 << 30;

/// Most repository-wide warnings about one package; one more line says
/// how many were left out.
pub const MAX_PER_PACKAGE: usize = 16;

/// Most repository-wide warnings kept in the state and the status by
/// default: the rest are counted.
pub const DEFAULT_KEPT: usize = 1000;

/// How many of one PKGNAME's other files a duplicate warning names.
const OTHERS_NAMED: usize = 3;

/// The suffix pkgin appends to PKGNAME for the download.
const PKGIN_SUFFIX: &str = ".tgz";

/// What is wrong with the package stored as `file_name` (its key after the
/// repository's prefix), whose record is `record` and whose `+PKG_HASH`,
/// if it is signed, is `signature`.
pub fn package_warnings(
    file_name: &str,
    record: &[u8],
    signature: Option<&PkgHash>,
) -> Vec<String> {
    let Some(pkgname) = record::pkgname(record) else {
        return Vec::new();
    };
    let mut warnings = Vec::new();
    let wanted = [pkgname, PKGIN_SUFFIX.as_bytes()].concat();
    if file_name.as_bytes() != wanted {
        let shown = String::from_utf8_lossy(pkgname);
        warnings.push(format!(
            "pkgin downloads {} for PKGNAME={}, not this file: \
             the package is listed but cannot be installed (rename it to {})",
            excerpt(&wanted),
            Bare(&shown),
            excerpt(&wanted)
        ));
    }
    if let Some(hash) = signature
        && hash.pkgname.as_bytes() != pkgname
    {
        warnings.push(format!(
            "+PKG_HASH is signed for pkgname {}, but PKGNAME is {} \
             (pkg_add does not compare them)",
            excerpt(&hash.pkgname),
            excerpt(pkgname)
        ));
    }
    warnings
}

/// The fields a package's platform is told by.
pub const PLATFORM: [&str; 3] = ["OPSYS", "MACHINE_ARCH", "OS_VERSION"];

/// A package's PKGNAME and platform fields, in the order of [`PLATFORM`].
struct Fields<'r> {
    file: &'r str,
    pkgname: Option<&'r [u8]>,
    pkgpath: Option<&'r [u8]>,
    platform: [Option<&'r [u8]>; 3],
    depends: Vec<&'r [u8]>,
}

impl<'r> Fields<'r> {
    /// The first value of each field and every DEPENDS, read in one pass
    /// over the record's lines that stops when all are found (pkg_info
    /// prints DEPENDS before them).
    fn of(file: &'r str, record: &'r [u8]) -> Fields<'r> {
        let mut fields = Fields {
            file,
            pkgname: None,
            pkgpath: None,
            platform: [None; 3],
            depends: Vec::new(),
        };
        for line in record.split(|&b| b == b'\n') {
            let Some(eq) = line.iter().position(|&b| b == b'=') else {
                continue;
            };
            let (name, value) = (&line[..eq], &line[eq + 1..]);
            if name == b"DEPENDS" {
                fields.depends.push(value);
            } else if name == b"PKGNAME" {
                fields.pkgname.get_or_insert(value);
            } else if name == b"PKGPATH" {
                fields.pkgpath.get_or_insert(value);
            } else if let Some(i) = PLATFORM.iter().position(|f| f.as_bytes() == name) {
                fields.platform[i].get_or_insert(value);
            }
            let named = fields.pkgname.is_some() && fields.pkgpath.is_some();
            if named && fields.platform.iter().all(Option::is_some) {
                break;
            }
        }
        fields
    }
}

/// The fields the checks read of each of `packages` ((file name, record)
/// pairs), read on every core.
fn fields_of<'a>(packages: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Vec<Fields<'a>> {
    let packages: Vec<(&str, &[u8])> = packages.into_iter().collect();
    packages
        .par_iter()
        .map(|&(file, record)| Fields::of(file, record))
        .collect()
}

/// One repository-wide warning about a file. Its text is made only if it
/// is kept: a repository can hold tens of thousands of unsatisfied
/// DEPENDS, and formatting and sorting them all cost more than the checks.
enum Warning<'r> {
    Text(String),
    /// A DEPENDS pattern no package in the repository satisfies.
    Unsatisfied(&'r [u8]),
}

impl fmt::Display for Warning<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::Text(text) => f.write_str(text),
            Warning::Unsatisfied(dep) => write!(
                f,
                "DEPENDS {} is satisfied by no package in this repository: pkgin \
                 cannot install this package unless another repository provides it",
                Bare(&String::from_utf8_lossy(dep))
            ),
        }
    }
}

/// Warnings as the checks find them: the file each is about, and what.
type Found<'r> = Vec<(Cow<'r, str>, Warning<'r>)>;

/// What the repository-wide checks found: the first warnings in order of
/// (file, warning), and how many more there were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    pub warnings: Vec<(String, String)>,
    pub more: usize,
}

/// Warnings about packages against the rest of the repository, given as
/// (file name, record) pairs, sorted by file name: at most
/// [`MAX_PER_PACKAGE`] (and a line saying how many more) about one
/// package, and at most `keep` in all (the rest counted in
/// [`Findings::more`]).
pub fn repository_warnings<'a>(
    packages: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    keep: usize,
) -> Findings {
    let fields = fields_of(packages);
    // DEPENDS matching takes as long as the other checks together: on
    // another core, beside them.
    let (mut found, unresolved) = rayon::join(
        || {
            let mut found = duplicate_names(&fields);
            found.extend(older_versions(&fields));
            for (i, name) in PLATFORM.iter().enumerate() {
                found.extend(off_platform(&fields, i, name));
            }
            found
        },
        || unresolved_depends(&fields, MATCH_BUDGET),
    );
    found.extend(unresolved);
    cap(found, keep)
}

/// The files (of (file name, record) pairs) a summary under `mode`
/// leaves out: under `newest`, every older version of a PKGPATH and
/// PKGBASE ([`crate::select`]).
pub fn unlisted<'a>(
    mode: select::Select,
    packages: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> std::collections::BTreeSet<String> {
    if mode == select::Select::All {
        return std::collections::BTreeSet::new();
    }
    let fields = fields_of(packages);
    select::select(mode, candidates(&fields)).unlisted
}

/// The DEPENDS of `packages` that no package among them satisfies, one
/// warning each (and, if the work budget runs out, one saying so).
pub fn unresolved_of<'a>(
    packages: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Vec<(String, String)> {
    let fields = fields_of(packages);
    unresolved_depends(&fields, MATCH_BUDGET)
        .into_iter()
        .map(|(file, warning)| (file.into_owned(), warning.to_string()))
        .collect()
}

/// In order of (file, warning): at most [`MAX_PER_PACKAGE`] warnings a
/// file (and one saying how many more), then at most `keep` in all. Only
/// the kept ones are put into words; the rest are counted.
fn cap(mut found: Found<'_>, keep: usize) -> Findings {
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let mut findings = Findings::default();
    for run in found.chunk_by(|a, b| a.0 == b.0) {
        let left = run.len().saturating_sub(MAX_PER_PACKAGE);
        let lines = run.len() - left + usize::from(left > 0);
        let room = keep.saturating_sub(findings.warnings.len());
        if room == 0 {
            findings.more += lines;
            continue;
        }
        let mut texts: Vec<String> = run.iter().map(|(_, w)| w.to_string()).collect();
        texts.sort_unstable();
        texts.truncate(MAX_PER_PACKAGE);
        if left > 0 {
            texts.push(format!("… and {left} more warnings about it"));
        }
        findings.more += lines.saturating_sub(room);
        let file = &run[0].0;
        let kept = texts.into_iter().take(room);
        findings
            .warnings
            .extend(kept.map(|text| (file.to_string(), text)));
    }
    findings
}

/// Why a DEPENDS pattern is not expanded, if it is too large to: longer
/// than [`MAX_PATTERN_BYTES`], or braces that make more than
/// [`MAX_ALTERNATIVES`] alternatives. The count bounds what the `pkgsrc`
/// crate builds: it expands the last group first, each alternative a
/// pattern of its own, so every group multiplies the count by at most
/// its commas (nested ones included) plus one.
pub fn too_large(pattern: &[u8]) -> Option<String> {
    if pattern.len() > MAX_PATTERN_BYTES {
        return Some(format!("longer than {MAX_PATTERN_BYTES} bytes"));
    }
    let mut open: Vec<u64> = Vec::new();
    let mut alternatives: u64 = 1;
    for &b in pattern {
        match b {
            b'{' => open.push(0),
            b',' => {
                if let Some(commas) = open.last_mut() {
                    *commas += 1;
                }
            }
            b'}' => {
                let Some(commas) = open.pop() else { continue };
                alternatives = alternatives.saturating_mul(commas + 1);
                if let Some(outer) = open.last_mut() {
                    *outer += commas;
                }
            }
            _ => {}
        }
        if alternatives > MAX_ALTERNATIVES {
            return Some(format!(
                "its braces make more than {MAX_ALTERNATIVES} alternatives"
            ));
        }
    }
    None
}

/// DEPENDS patterns that no PKGNAME in the repository matches, each
/// pattern resolved once whoever depends on it, all within `budget` (the
/// bytes of names compared; past it, what is left is not checked and the
/// package whose pattern ran out is told so).
fn unresolved_depends<'r>(packages: &[Fields<'r>], mut budget: u64) -> Found<'r> {
    let names: Vec<&str> = packages
        .iter()
        .filter_map(|p| std::str::from_utf8(p.pkgname?).ok())
        .collect();
    let index = Names::new(names);
    let mut resolved: HashMap<&[u8], Resolved> = HashMap::new();
    let mut warnings = Vec::new();
    for package in packages {
        let file = Cow::Borrowed(package.file);
        for &dep in &package.depends {
            let found = match resolved.entry(dep) {
                std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    let Some(found) = unresolved(dep, &index, &mut budget) else {
                        warnings.push((
                            file,
                            Warning::Text(format!(
                                "DEPENDS checks stopped here, after comparing {MATCH_BUDGET} \
                                 bytes of names: the rest of the repository's are not checked"
                            )),
                        ));
                        return warnings;
                    };
                    slot.insert(found)
                }
            };
            let warning = match found {
                Resolved::Satisfied => continue,
                Resolved::Unsatisfied => Warning::Unsatisfied(dep),
                Resolved::Unchecked(why) => Warning::Text(why.clone()),
            };
            warnings.push((file.clone(), warning));
        }
    }
    warnings
}

/// What matching one DEPENDS pattern found.
enum Resolved {
    Satisfied,
    Unsatisfied,
    /// Not matched: too large to expand, or not a pattern.
    Unchecked(String),
}

/// PKGNAMEs, and their positions by base name, to match DEPENDS patterns
/// against within a budget of work.
pub(crate) struct Names<'a> {
    by_base: HashMap<&'a str, Vec<usize>>,
    names: Vec<&'a str>,
}

impl<'a> Names<'a> {
    pub(crate) fn new(names: Vec<&'a str>) -> Names<'a> {
        let mut by_base: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, name) in names.iter().enumerate() {
            let base = name.rsplit_once('-').map_or(*name, |(base, _)| base);
            by_base.entry(base).or_default().push(i);
        }
        Names { by_base, names }
    }

    /// The pattern `dep` as pkg_add reads it, or why it is not matched:
    /// too large to expand, or not a pattern.
    pub(crate) fn pattern(dep: &[u8]) -> Result<Pattern, String> {
        if let Some(why) = too_large(dep) {
            return Err(format!("DEPENDS {} is not checked: {why}", excerpt(dep)));
        }
        Pattern::new(&String::from_utf8_lossy(dep)).map_err(|_| {
            format!(
                "DEPENDS {} is not a package pattern pkg_add understands",
                excerpt(dep)
            )
        })
    }

    /// Calls `found` with the position of each name `pattern` matches
    /// until it returns true; `None` when `budget` (bytes of names
    /// compared) ran out first.
    pub(crate) fn matching(
        &self,
        pattern: &Pattern,
        budget: &mut u64,
        mut found: impl FnMut(usize) -> bool,
    ) -> Option<()> {
        let candidates: Box<dyn Iterator<Item = usize>> = match pattern.pkgbases() {
            Some(bases) => Box::new(
                bases
                    .into_iter()
                    .filter_map(|base| self.by_base.get(base))
                    .flatten()
                    .copied(),
            ),
            None => Box::new(0..self.names.len()),
        };
        for i in candidates {
            let name = self.names[i];
            let cost = name.len() as u64 + 1;
            if *budget < cost {
                return None;
            }
            *budget -= cost;
            if pattern.matches(name) && found(i) {
                break;
            }
        }
        Some(())
    }
}

/// Whether `dep` is satisfied in the repository; `None` when the budget
/// ran out before it was settled.
fn unresolved(dep: &[u8], index: &Names<'_>, budget: &mut u64) -> Option<Resolved> {
    let pattern = match Names::pattern(dep) {
        Ok(pattern) => pattern,
        Err(why) => return Some(Resolved::Unchecked(why)),
    };
    let mut found = false;
    index.matching(&pattern, budget, |_| {
        found = true;
        true
    })?;
    Some(if found {
        Resolved::Satisfied
    } else {
        Resolved::Unsatisfied
    })
}

/// Files that share a PKGNAME, each named with the others.
fn duplicate_names<'r>(packages: &[Fields<'r>]) -> Found<'r> {
    let mut by_name: BTreeMap<&[u8], Vec<&str>> = BTreeMap::new();
    for package in packages {
        if let Some(pkgname) = package.pkgname {
            by_name.entry(pkgname).or_default().push(package.file);
        }
    }
    let mut warnings = Vec::new();
    for (pkgname, files) in by_name.into_iter().filter(|(_, f)| f.len() > 1) {
        let pkgname = String::from_utf8_lossy(pkgname);
        for file in &files {
            let others: Vec<String> = files
                .iter()
                .filter(|f| *f != file)
                .take(OTHERS_NAMED)
                .map(|f| Bare(f).to_string())
                .collect();
            let left = files.len() - 1 - others.len();
            let more = match left {
                0 => String::new(),
                n => format!(" and {n} more"),
            };
            warnings.push((
                Cow::Borrowed(*file),
                Warning::Text(format!(
                    "PKGNAME={} is also in {}{more}: pkgin keeps one record for a \
                     PKGNAME, so only one of them can be installed",
                    Bare(&pkgname),
                    others.join(", ")
                )),
            ));
        }
    }
    warnings
}

/// Packages of which the repository holds a newer version, of one
/// PKGPATH and PKGBASE, in dewey order (another file of the same PKGNAME
/// is [`duplicate_names`]' to name). A PKGNAME or PKGPATH that is not
/// UTF-8 is left to the other checks.
/// What selection sees of each package that has a PKGNAME and a PKGPATH.
fn candidates<'a>(packages: &'a [Fields]) -> Vec<select::Candidate<'a>> {
    packages
        .iter()
        .filter_map(|p| {
            Some(select::Candidate {
                name: p.file,
                pkgname: std::str::from_utf8(p.pkgname?).ok()?,
                pkgpath: std::str::from_utf8(p.pkgpath?).ok()?,
            })
        })
        .collect()
}

fn older_versions<'r>(packages: &[Fields<'r>]) -> Found<'r> {
    let candidates = candidates(packages);
    let pkgname: HashMap<&str, &str> = candidates.iter().map(|c| (c.name, c.pkgname)).collect();
    let found = select::select(select::Select::All, candidates.iter().copied());
    let mut warnings = Vec::new();
    for versions in &found.versions {
        let newest = pkgname.get(versions.newest.as_str());
        let other_versions = versions
            .older
            .iter()
            .filter(|older| pkgname.get(older.as_str()) != newest);
        for older in other_versions {
            warnings.push((
                Cow::Owned(older.clone()),
                Warning::Text(format!(
                    "PKGPATH={} also has the newer {}: with two versions of one \
                     PKGPATH in the summary, pkgin's upgrades can pick the wrong one",
                    Bare(&versions.pkgpath),
                    Bare(&versions.newest)
                )),
            ));
        }
    }
    warnings
}

/// Packages whose platform field `i` (`name`) differs from the value most
/// packages have (if one value has more packages than any other).
fn off_platform<'r>(packages: &[Fields<'r>], i: usize, name: &str) -> Found<'r> {
    let mut counts: BTreeMap<&[u8], usize> = BTreeMap::new();
    for value in packages.iter().filter_map(|p| p.platform[i]) {
        *counts.entry(value).or_default() += 1;
    }
    let total: usize = counts.values().sum();
    let mut ranked: Vec<(&[u8], usize)> = counts.into_iter().collect();
    ranked.sort_by_key(|r| std::cmp::Reverse(r.1));
    let (most, count) = match ranked.as_slice() {
        [(value, n), rest @ ..] if rest.first().is_none_or(|r| r.1 < *n) => (*value, *n),
        _ => return Vec::new(),
    };
    let shown = excerpt(most);
    packages
        .iter()
        .filter_map(|p| {
            let value = p.platform[i].filter(|v| *v != most)?;
            // Quoted: a value may hold a stray `\r` (a CRLF +BUILD_INFO).
            let warning = format!(
                "{name} is {}, where {count} of {total} packages have {shown}: \
                 pkg_add refuses or warns of a package built for another platform",
                excerpt(value)
            );
            Some((Cow::Borrowed(p.file), Warning::Text(warning)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORD: &[u8] = b"PKGNAME=foo-1.2nb1\nCOMMENT=c\n\n";

    fn hash(pkgname: &str) -> PkgHash {
        PkgHash {
            pkgname: pkgname.to_owned(),
            algorithm: "SHA512".to_owned(),
            block_size: 65536,
            file_size: 1,
            blocks: Vec::new(),
        }
    }

    #[test]
    fn a_package_under_its_own_name_is_fine() {
        assert!(package_warnings("foo-1.2nb1.tgz", RECORD, None).is_empty());
        let signed = hash("foo-1.2nb1");
        assert!(package_warnings("foo-1.2nb1.tgz", RECORD, Some(&signed)).is_empty());
    }

    #[test]
    fn another_file_name_is_not_installable() {
        for name in ["foo-latest.tgz", "foo-1.2nb1.tbz", "foo-1.2.tgz"] {
            let warnings = package_warnings(name, RECORD, None);
            assert_eq!(warnings.len(), 1, "{name}");
            assert!(
                warnings[0]
                    .starts_with("pkgin downloads \"foo-1.2nb1.tgz\" for PKGNAME=foo-1.2nb1"),
                "{}",
                warnings[0]
            );
        }
    }

    #[test]
    fn a_signature_for_another_pkgname_is_named() {
        let signed = hash("bar-9.9");
        let warnings = package_warnings("foo-1.2nb1.tgz", RECORD, Some(&signed));
        assert_eq!(
            warnings,
            [
                "+PKG_HASH is signed for pkgname \"bar-9.9\", but PKGNAME is \"foo-1.2nb1\" \
              (pkg_add does not compare them)"
            ]
        );
    }

    #[test]
    fn a_record_without_pkgname_gives_nothing_to_compare() {
        assert!(package_warnings("x.tgz", b"COMMENT=c\n\n", None).is_empty());
    }

    fn platform(pkgname: &str, opsys: &str, arch: &str, version: &str) -> Vec<u8> {
        format!("PKGNAME={pkgname}\nOPSYS={opsys}\nMACHINE_ARCH={arch}\nOS_VERSION={version}\n\n")
            .into_bytes()
    }

    #[test]
    fn older_versions_of_one_pkgpath_are_named() {
        let record = |pkgname: &str, pkgpath: &str| {
            format!("PKGNAME={pkgname}\nOPSYS=NetBSD\nMACHINE_ARCH=x86_64\nOS_VERSION=10.1\nPKGPATH={pkgpath}\n\n")
                .into_bytes()
        };
        let records = [
            ("foo-1.0.tgz", record("foo-1.0", "misc/foo")),
            ("foo-1.0nb1.tgz", record("foo-1.0nb1", "misc/foo")),
            ("foo-1.0alpha.tgz", record("foo-1.0alpha", "misc/foo")),
            ("py311-x-1.tgz", record("py311-x-1", "devel/py-x")),
            ("py312-x-1.tgz", record("py312-x-1", "devel/py-x")),
        ];
        let found = repository_warnings(records.iter().map(|(n, r)| (*n, &r[..])), 100);
        let named: Vec<&str> = found
            .warnings
            .iter()
            .map(|(file, _)| file.as_str())
            .collect();
        assert_eq!(named, ["foo-1.0.tgz", "foo-1.0alpha.tgz"]);
        assert_eq!(
            found.warnings[0].1,
            "PKGPATH=misc/foo also has the newer foo-1.0nb1.tgz: with two versions of one \
             PKGPATH in the summary, pkgin's upgrades can pick the wrong one"
        );
    }

    #[test]
    fn depends_no_package_satisfies_are_named() {
        let with = |pkgname: &str, depends: &[&str]| {
            let lines: String = depends.iter().map(|d| format!("DEPENDS={d}\n")).collect();
            format!("{lines}PKGNAME={pkgname}\n\n").into_bytes()
        };
        let records = [
            with(
                "app-2.0",
                &["lib>=1.0", "tool-[0-9]*", "{py311,py312}-x>=3"],
            ),
            with("lib-1.2nb1", &["lib2>=1.0", "font-{a,b}-[0-9]*"]),
            with("other-1", &["lib<1.0", "lib>=1.0", "bad pattern>>"]),
            with("py312-x-3.1", &[]),
            with("font-b-1", &[]),
        ];
        let names = [
            "app-2.0.tgz",
            "lib-1.2nb1.tgz",
            "other-1.tgz",
            "py312-x-3.1.tgz",
            "font-b-1.tgz",
        ];
        let packages = names.iter().copied().zip(records.iter().map(|r| &r[..]));
        let got = repository_warnings(packages, DEFAULT_KEPT).warnings;
        let unresolved = |d: &str| {
            format!(
                "DEPENDS {d} is satisfied by no package in this repository: pkgin cannot \
                 install this package unless another repository provides it"
            )
        };
        let want = [
            ("app-2.0.tgz".to_owned(), unresolved("tool-[0-9]*")),
            ("lib-1.2nb1.tgz".to_owned(), unresolved("lib2>=1.0")),
            (
                "other-1.tgz".to_owned(),
                "DEPENDS \"bad pattern>>\" is not a package pattern pkg_add understands".to_owned(),
            ),
            ("other-1.tgz".to_owned(), unresolved("lib<1.0")),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn one_platform_and_distinct_names_are_fine() {
        let a = platform("a-1", "NetBSD", "aarch64", "10.0");
        let b = platform("b-1", "NetBSD", "aarch64", "10.0");
        let packages = [("a-1.tgz", &a[..]), ("b-1.tgz", &b[..])];
        assert_eq!(
            repository_warnings(packages, DEFAULT_KEPT),
            Findings::default()
        );
    }

    #[test]
    fn two_files_with_one_pkgname_are_both_named() {
        let a = platform("a-1", "NetBSD", "aarch64", "10.0");
        let packages = [("a-1.tgz", &a[..]), ("a-copy.tgz", &a[..])];
        let warnings = repository_warnings(packages, DEFAULT_KEPT).warnings;
        let files: Vec<&str> = warnings.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(files, ["a-1.tgz", "a-copy.tgz"]);
        assert!(
            warnings[0]
                .1
                .starts_with("PKGNAME=a-1 is also in a-copy.tgz: pkgin keeps")
        );
        assert!(
            warnings[1]
                .1
                .starts_with("PKGNAME=a-1 is also in a-1.tgz: pkgin keeps")
        );
    }

    #[test]
    fn a_package_for_another_platform_than_most_is_named() {
        let records = [
            platform("a-1", "NetBSD", "aarch64", "10.0"),
            platform("b-1", "NetBSD", "aarch64", "10.0"),
            platform("c-1", "NetBSD", "x86_64", "9.3"),
        ];
        let names = ["a-1.tgz", "b-1.tgz", "c-1.tgz"];
        let packages = names.iter().copied().zip(records.iter().map(|r| &r[..]));
        let warnings = repository_warnings(packages, DEFAULT_KEPT).warnings;
        assert_eq!(
            warnings,
            [
                (
                    "c-1.tgz".to_owned(),
                    "MACHINE_ARCH is \"x86_64\", where 2 of 3 packages have \"aarch64\": \
                     pkg_add refuses or warns of a package built for another platform"
                        .to_owned()
                ),
                (
                    "c-1.tgz".to_owned(),
                    "OS_VERSION is \"9.3\", where 2 of 3 packages have \"10.0\": \
                     pkg_add refuses or warns of a package built for another platform"
                        .to_owned()
                ),
            ]
        );
    }

    #[test]
    fn no_majority_names_nobody() {
        let a = platform("a-1", "NetBSD", "aarch64", "10.0");
        let b = platform("b-1", "Linux", "x86_64", "6.1");
        let packages = [("a-1.tgz", &a[..]), ("b-1.tgz", &b[..])];
        assert!(
            repository_warnings(packages, DEFAULT_KEPT)
                .warnings
                .is_empty()
        );
    }

    fn depending(pkgname: &str, depends: &[String]) -> Vec<u8> {
        let lines: String = depends.iter().map(|d| format!("DEPENDS={d}\n")).collect();
        format!("{lines}PKGNAME={pkgname}\n\n").into_bytes()
    }

    #[test]
    fn braces_are_measured_before_they_are_expanded() {
        assert_eq!(too_large(b"{py312,py313}-x>=1"), None);
        assert_eq!(too_large(b"a-{1,2,3}{4,5}{6,7}"), None);
        // Nested commas count in the outer group too: an upper bound.
        assert_eq!(too_large(b"{a,{b,c}}-[0-9]*"), None);
        let doubling = format!("{}x-[0-9]*", "{a,b}".repeat(30));
        assert_eq!(
            too_large(doubling.as_bytes()).as_deref(),
            Some("its braces make more than 256 alternatives")
        );
        let long = "x".repeat(MAX_PATTERN_BYTES + 1);
        assert!(too_large(long.as_bytes()).is_some());
        // Unbalanced braces are left to the parser, which refuses them.
        assert_eq!(too_large(b"}{a,b"), None);
    }

    #[test]
    fn a_pattern_of_two_to_the_thirty_alternates_is_not_expanded() {
        // H1: about 100 bytes that the pkgsrc crate would expand into 2^30
        // patterns (minutes and gigabytes).
        let hostile = format!("{}x-[0-9]*", "{a,b}".repeat(30));
        let record = depending("evil-1", std::slice::from_ref(&hostile));
        let ok = depending("ok-1", &[]);
        let packages = [("evil-1.tgz", &record[..]), ("ok-1.tgz", &ok[..])];
        let started = std::time::Instant::now();
        let found = repository_warnings(packages, DEFAULT_KEPT);
        assert_eq!(found.warnings.len(), 1);
        assert!(
            found.warnings[0]
                .1
                .ends_with("is not checked: its braces make more than 256 alternatives"),
            "{:?}",
            found.warnings
        );
        // Not a timed assertion: printed for the record.
        eprintln!("checked in {:?}", started.elapsed());
    }

    #[test]
    fn matching_stops_when_its_budget_is_spent() {
        // Patterns no base narrows are matched against every name.
        let names: Vec<Vec<u8>> = (0..100)
            .map(|i| depending(&format!("p{i}-1"), &[]))
            .collect();
        let globs: Vec<String> = (0..100).map(|i| format!("*z{i}-[0-9]*")).collect();
        let asker = depending("asker-1", &globs);
        let mut fields: Vec<Fields> = vec![Fields::of("asker-1.tgz", &asker)];
        let files: Vec<String> = (0..100).map(|i| format!("p{i}-1.tgz")).collect();
        fields.extend(files.iter().zip(&names).map(|(f, r)| Fields::of(f, r)));
        let all = unresolved_depends(&fields, u64::MAX);
        assert_eq!(all.len(), 100);
        // Room for about 10 patterns' worth of comparisons.
        let cut = unresolved_depends(&fields, 10 * 101 * 6);
        assert!(cut.len() < 20, "{}", cut.len());
        assert!(
            cut.last()
                .unwrap()
                .1
                .to_string()
                .starts_with("DEPENDS checks stopped here")
        );
    }

    #[test]
    fn warnings_are_capped_per_package_and_in_all() {
        let deps: Vec<String> = (0..40).map(|i| format!("missing{i}-[0-9]*")).collect();
        let records: Vec<Vec<u8>> = (0..5)
            .map(|i| depending(&format!("a{i}-1"), &deps))
            .collect();
        let files: Vec<String> = (0..5).map(|i| format!("a{i}-1.tgz")).collect();
        let packages = files
            .iter()
            .map(String::as_str)
            .zip(records.iter().map(|r| &r[..]));
        let found = repository_warnings(packages.clone(), DEFAULT_KEPT);
        assert_eq!(found.warnings.len(), 5 * (MAX_PER_PACKAGE + 1));
        assert_eq!(found.more, 0);
        assert_eq!(
            found.warnings[MAX_PER_PACKAGE].1,
            format!("… and {} more warnings about it", 40 - MAX_PER_PACKAGE)
        );
        let kept = repository_warnings(packages, 20);
        assert_eq!((kept.warnings.len(), kept.more), (20, 5 * 17 - 20));
        assert_eq!(kept.warnings[..], found.warnings[..20]);
    }

    #[test]
    fn package_text_is_quoted_as_an_excerpt() {
        // H3: a 60 MiB @name made 300 MB messages.
        let long = "n".repeat(1 << 20);
        let record = format!("PKGNAME={long}-1\n\n");
        let warnings = package_warnings("x.tgz", record.as_bytes(), Some(&hash(&long)));
        assert_eq!(warnings.len(), 2);
        for warning in &warnings {
            assert!(warning.len() < 1024, "{}", warning.len());
        }
        let a = format!("PKGNAME=a-1\nOPSYS={long}\n\n");
        let b = "PKGNAME=b-1\nOPSYS=NetBSD\n\n";
        let c = "PKGNAME=c-1\nOPSYS=NetBSD\n\n";
        let packages = [
            ("a.tgz", a.as_bytes()),
            ("b.tgz", b.as_bytes()),
            ("c.tgz", c.as_bytes()),
        ];
        let found = repository_warnings(packages, DEFAULT_KEPT);
        assert_eq!(found.warnings.len(), 1);
        assert!(found.warnings[0].1.len() < 1024);
    }

    #[test]
    fn many_files_with_one_pkgname_name_a_few_others() {
        let record = b"PKGNAME=same-1\n\n";
        let files: Vec<String> = (0..1000).map(|i| format!("copy{i:04}.tgz")).collect();
        let packages = files.iter().map(|f| (f.as_str(), &record[..]));
        let found = repository_warnings(packages, 10);
        assert_eq!((found.warnings.len(), found.more), (10, 990));
        assert_eq!(
            found.warnings[0].1,
            "PKGNAME=same-1 is also in copy0001.tgz, copy0002.tgz, copy0003.tgz and 996 more: \
             pkgin keeps one record for a PKGNAME, so only one of them can be installed"
        );
    }
}
