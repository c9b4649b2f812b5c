//! Checks that save users from silent failures: things about one package
//! that neither pkg_info nor pkgin reports, but that make it fail later.
//! Each finding is a warning; the package stays indexed.
//!
//! - pkgin downloads `REPO/PKGNAME.tgz` and ignores FILE_NAME, so a
//!   package stored under any other name is listed but cannot be
//!   installed.
//! - pkg_add verifies a signed package's signature over `+PKG_HASH` but
//!   never compares the `pkgname` there with the package's PKGNAME, so a
//!   signature made for one package can vouch for another.

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
}
