//! `pkg_summary` files: the names pkgin looks for and the compressed bytes
//! of each, all rendered from the same uncompressed summary so every
//! published variant says the same thing.

use std::io;

use rayon::prelude::*;

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
/// taken for a package whatever suffixes are configured.
pub fn is_own_file(name: &str) -> bool {
    name.starts_with("pkg_summary") || name.starts_with(TEMP_PREFIX)
}

/// Prefix of the temporary files outputs are written through.
pub const TEMP_PREFIX: &str = ".pkgsum-tmp-";

/// One rendered summary file.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub format: Compression,
    pub bytes: Vec<u8>,
}

/// Compresses `summary` into every format, in parallel.
pub fn render(summary: &[u8], formats: &[Compression]) -> io::Result<Vec<Rendered>> {
    formats
        .par_iter()
        .map(|&format| {
            Ok(Rendered {
                format,
                bytes: format.compress(summary)?,
            })
        })
        .collect()
}

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
    use std::io::Read;

    #[test]
    fn every_format_decompresses_to_the_summary() {
        let summary = b"PKGNAME=a-1\nCOMMENT=x\n\nPKGNAME=b-1\nCOMMENT=y\n\n".repeat(100);
        let all = [
            Compression::Gzip,
            Compression::Bzip2,
            Compression::Xz,
            Compression::Zstd,
        ];
        for rendered in render(&summary, &all).unwrap() {
            let mut out = Vec::new();
            rendered
                .format
                .decoder(&rendered.bytes[..])
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, summary, "{:?}", rendered.format);
            assert_eq!(Compression::detect(&rendered.bytes), rendered.format);
        }
    }

    #[test]
    fn names_and_stale_variants() {
        assert_eq!(file_name(Compression::Xz), "pkg_summary.xz");
        assert_eq!(unwritten(&DEFAULT_FORMATS), vec![Compression::Zstd]);
        assert!(unwritten(&PKGIN_ORDER).is_empty());
        assert!(is_own_file("pkg_summary.gz") && is_own_file(".pkgsum-tmp-x1.tgz"));
        assert!(!is_own_file("pkgin-26.2.tgz"));
    }
}
