//! `pkg_summary` files: the names pkgin looks for, in its order, and the
//! variants to remove. Their bytes are assembled run by run
//! ([`crate::chunk`]), every format from the same records, so every
//! published variant says the same thing.

use crate::compression::Compression;

/// The order in which pkgin tries summary files; the first that exists
/// wins, so a variant pkgsum does not write must not stay beside the rest.
pub const PKGIN_ORDER: [Compression; 4] = [
    Compression::Zstd,
    Compression::Xz,
    Compression::Bzip2,
    Compression::Gzip,
];

/// Formats written unless told otherwise. zstd is opt-in: only pkgin 26.2
/// and later read it, and older ones would skip to `.xz` anyway.
pub const DEFAULT_FORMATS: [Compression; 3] =
    [Compression::Gzip, Compression::Bzip2, Compression::Xz];

/// File name of the summary in `format`, e.g. `pkg_summary.gz`.
pub fn file_name(format: Compression) -> String {
    format!("pkg_summary{}", format.suffix())
}

/// Whether `name` is one of the files pkgsum writes, which must never be
/// taken for a package whatever suffixes are configured: exactly a
/// summary's name (`pkg_summary-utils-0.1.tgz` is a real package), or a
/// temporary file of its.
pub fn is_own_file(name: &str) -> bool {
    name == "pkg_summary"
        || PKGIN_ORDER.iter().any(|&format| name == file_name(format))
        || name.starts_with(TEMP_PREFIX)
}

/// Prefix of the temporary files outputs are written through.
pub const TEMP_PREFIX: &str = ".pkgsum-tmp-";

/// The formats pkgin may look for that are not in `formats`: stale copies
/// of these must be removed when publishing.
pub fn unwritten(formats: &[Compression]) -> Vec<Compression> {
    PKGIN_ORDER
        .into_iter()
        .filter(|f| !formats.contains(f))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_stale_variants() {
        assert_eq!(file_name(Compression::Xz), "pkg_summary.xz");
        assert_eq!(unwritten(&DEFAULT_FORMATS), vec![Compression::Zstd]);
        assert!(unwritten(&PKGIN_ORDER).is_empty());
        assert!(is_own_file("pkg_summary.gz") && is_own_file(".pkgsum-tmp-x1.tgz"));
        assert!(!is_own_file("pkgin-26.2.tgz"));
        // L4: a real pkgsrc package whose name starts like a summary's.
        assert!(!is_own_file("pkg_summary-utils-0.8.tgz"));
        assert!(is_own_file("pkg_summary.zst") && is_own_file("pkg_summary"));
    }
}
