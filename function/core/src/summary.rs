//! `pkg_summary` files: the names pkgin looks for, in its order, and the
//! variants to remove. Their bytes are assembled run by run
//! ([`crate::chunk`]), every format from the same records, so every
//! published variant says the same thing.

use std::io::{self, Read};

use crate::compression::Compression;
use crate::limit::Limited;

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

/// The text of a summary file: `file` decoded as `format`, refused past
/// `limit` bytes (a file from the store is outside input).
pub fn decode(format: Compression, file: &[u8], limit: u64) -> io::Result<Vec<u8>> {
    let mut text = Vec::new();
    Limited::new(format.decoder(file)?, limit).read_to_end(&mut text)?;
    Ok(text)
}

/// The records of a summary's text, in order: each ends with its last
/// line's newline, without the blank line that separates it from the next.
pub fn records(text: &[u8]) -> Vec<&[u8]> {
    let mut records = Vec::new();
    let mut start = 0;
    let mut at = 0;
    while at < text.len() {
        if text[at] == b'\n' {
            if at == start {
                // Blank lines between records.
                start = at + 1;
            } else if text.get(at + 1) == Some(&b'\n') {
                records.push(&text[start..=at]);
                start = at + 2;
                at += 1;
            }
        }
        at += 1;
    }
    if start < text.len() {
        records.push(&text[start..]);
    }
    records
}

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
    fn records_are_split_at_blank_lines() {
        let text = b"PKGNAME=a-1\nX=1\n\nPKGNAME=b-1\n\n\nPKGNAME=c-1\n";
        assert_eq!(
            records(text),
            [
                &b"PKGNAME=a-1\nX=1\n"[..],
                b"PKGNAME=b-1\n",
                b"PKGNAME=c-1\n"
            ]
        );
        assert!(records(b"").is_empty());
        assert!(records(b"\n\n\n").is_empty());
    }

    #[test]
    fn a_summary_past_its_bound_is_refused() {
        let file = Compression::Gzip.compress(&[b'x'; 4096]).unwrap();
        assert_eq!(decode(Compression::Gzip, &file, 4096).unwrap().len(), 4096);
        assert!(decode(Compression::Gzip, &file, 4095).is_err());
    }

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
