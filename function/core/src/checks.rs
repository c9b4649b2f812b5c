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
//! - OPSYS, MACHINE_ARCH or OS_VERSION other than most packages': pkg_add
//!   refuses (or warns of) a package built for another platform;
//! - a DEPENDS pattern no package in the repository satisfies: pkgin cannot
//!   install the package from this repository alone (another repository
//!   may provide the dependency, so it is only a warning). Patterns are
//!   matched as pkg_install matches them (dewey, globs, alternates), by
//!   the `pkgsrc` crate.

use std::collections::{BTreeMap, HashMap};

use pkgsrc::Pattern;

use crate::record;
use crate::signed::PkgHash;

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
    let pkgname = String::from_utf8_lossy(pkgname);
    let mut warnings = Vec::new();
    let wanted = format!("{pkgname}{PKGIN_SUFFIX}");
    if file_name != wanted {
        warnings.push(format!(
            "pkgin downloads {wanted:?} for PKGNAME={pkgname}, not this file: \
             the package is listed but cannot be installed (rename it to {wanted:?})"
        ));
    }
    if let Some(hash) = signature
        && hash.pkgname != pkgname
    {
        warnings.push(format!(
            "+PKG_HASH is signed for pkgname {:?}, but PKGNAME is {pkgname:?} \
             (pkg_add does not compare them)",
            hash.pkgname
        ));
    }
    warnings
}

/// The fields a package's platform is told by.
const PLATFORM: [&str; 3] = ["OPSYS", "MACHINE_ARCH", "OS_VERSION"];

/// A package's PKGNAME and platform fields, in the order of [`PLATFORM`].
struct Fields<'r> {
    file: &'r str,
    pkgname: Option<&'r [u8]>,
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
            } else if let Some(i) = PLATFORM.iter().position(|f| f.as_bytes() == name) {
                fields.platform[i].get_or_insert(value);
            }
            if fields.pkgname.is_some() && fields.platform.iter().all(Option::is_some) {
                break;
            }
        }
        fields
    }
}

/// Warnings about packages against the rest of the repository, given as
/// (file name, record) pairs, sorted by file name.
pub fn repository_warnings<'a>(
    packages: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Vec<(String, String)> {
    let fields: Vec<Fields> = packages
        .into_iter()
        .map(|(file, record)| Fields::of(file, record))
        .collect();
    let mut warnings = duplicate_names(&fields);
    for (i, name) in PLATFORM.iter().enumerate() {
        warnings.extend(off_platform(&fields, i, name));
    }
    warnings.extend(unresolved_depends(&fields));
    warnings.sort();
    warnings
}

/// DEPENDS patterns that no PKGNAME in the repository matches, each
/// pattern resolved once whoever depends on it.
fn unresolved_depends(packages: &[Fields]) -> Vec<(String, String)> {
    let names: Vec<&str> = packages
        .iter()
        .filter_map(|p| std::str::from_utf8(p.pkgname?).ok())
        .collect();
    let mut by_base: HashMap<&str, Vec<&str>> = HashMap::new();
    for name in &names {
        let base = name.rsplit_once('-').map_or(*name, |(base, _)| base);
        by_base.entry(base).or_default().push(name);
    }
    let mut resolved: HashMap<&[u8], Option<String>> = HashMap::new();
    let mut warnings = Vec::new();
    for package in packages {
        for &dep in &package.depends {
            let problem = resolved
                .entry(dep)
                .or_insert_with(|| unresolved(dep, &by_base, &names));
            if let Some(problem) = problem {
                warnings.push((package.file.to_owned(), problem.clone()));
            }
        }
    }
    warnings
}

/// Why `dep` cannot be resolved in the repository, if it cannot.
fn unresolved(dep: &[u8], by_base: &HashMap<&str, Vec<&str>>, names: &[&str]) -> Option<String> {
    let text = String::from_utf8_lossy(dep);
    let Ok(pattern) = Pattern::new(&text) else {
        return Some(format!(
            "DEPENDS {text:?} is not a package pattern pkg_add understands"
        ));
    };
    let found = match pattern.pkgbases() {
        Some(bases) => bases
            .iter()
            .filter_map(|base| by_base.get(base))
            .flatten()
            .any(|name| pattern.matches(name)),
        None => names.iter().any(|name| pattern.matches(name)),
    };
    (!found).then(|| {
        format!(
            "DEPENDS {text} is satisfied by no package in this repository: pkgin \
             cannot install this package unless another repository provides it"
        )
    })
}

/// Files that share a PKGNAME, each named with the others.
fn duplicate_names(packages: &[Fields]) -> Vec<(String, String)> {
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
            let others: Vec<&str> = files.iter().copied().filter(|f| f != file).collect();
            warnings.push((
                (*file).to_owned(),
                format!(
                    "PKGNAME={pkgname} is also in {}: pkgin keeps one record for a \
                     PKGNAME, so only one of them can be installed",
                    others.join(", ")
                ),
            ));
        }
    }
    warnings
}

/// Packages whose platform field `i` (`name`) differs from the value most
/// packages have (if one value has more packages than any other).
fn off_platform(packages: &[Fields], i: usize, name: &str) -> Vec<(String, String)> {
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
    let shown = String::from_utf8_lossy(most);
    packages
        .iter()
        .filter_map(|p| {
            let value = p.platform[i].filter(|v| *v != most)?;
            let value = String::from_utf8_lossy(value);
            // Quoted: a value may hold a stray `\r` (a CRLF +BUILD_INFO).
            let warning = format!(
                "{name} is {value:?}, where {count} of {total} packages have {shown:?}: \
                 pkg_add refuses or warns of a package built for another platform"
            );
            Some((p.file.to_owned(), warning))
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
        let got: Vec<(String, String)> = repository_warnings(packages);
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
        assert!(repository_warnings(packages).is_empty());
    }

    #[test]
    fn two_files_with_one_pkgname_are_both_named() {
        let a = platform("a-1", "NetBSD", "aarch64", "10.0");
        let packages = [("a-1.tgz", &a[..]), ("a-copy.tgz", &a[..])];
        let warnings = repository_warnings(packages);
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
        let warnings = repository_warnings(packages);
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
        assert!(repository_warnings([("a-1.tgz", &a[..]), ("b-1.tgz", &b[..])]).is_empty());
    }
}
