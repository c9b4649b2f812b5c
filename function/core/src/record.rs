//! One package's summary record, byte for byte what NetBSD's `pkg_info -X`
//! prints (pkg_install `info/show.c` `show_summary`).
//!
//! Everything is bytes: metadata passes through unchanged, UTF-8 or not,
//! exactly as the C code copies it.

use crate::plist::{self, Entry};

/// The metadata members a record is made from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// `+CONTENTS`, the packing list.
    pub contents: Vec<u8>,
    /// `+COMMENT`.
    pub comment: Vec<u8>,
    /// `+DESC`.
    pub desc: Vec<u8>,
    /// `+BUILD_INFO`, when the package has one.
    pub build_info: Option<Vec<u8>>,
    /// `+SIZE_PKG`, when the package has one.
    pub size_pkg: Option<Vec<u8>>,
}

/// The `+BUILD_INFO` variables `pkg_info -X` copies.
const BUILD_INFO_VARS: [&[u8]; 14] = [
    b"PKGPATH",
    b"CATEGORIES",
    b"PROVIDES",
    b"REQUIRES",
    b"PKG_OPTIONS",
    b"OPSYS",
    b"OS_VERSION",
    b"MACHINE_ARCH",
    b"LICENSE",
    b"HOMEPAGE",
    b"PKGTOOLS_VERSION",
    b"BUILD_DATE",
    b"PREV_PKGPATH",
    b"SUPERSEDES",
];

/// `FILE_NAME` and `FILE_SIZE`, printed for package files only.
#[derive(Debug, Clone, Copy)]
pub struct FileInfo<'a> {
    /// The base name: everything after the last `/` of the path.
    pub name: &'a [u8],
    /// The package file's size in bytes (the outer file when signed).
    pub size: u64,
}

/// The part of `path` after its last `/`, as pkg_info takes FILE_NAME.
pub fn base_name(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// Default bound on one record's length (`PKGSUM_RECORD_LIMIT`). Real
/// records are a few KiB; a record is written into every summary, and
/// each line of `+DESC` costs 12 bytes more in it than in the package.
pub const DEFAULT_RECORD_LIMIT: u64 = 1 << 20;

/// A record would be longer than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("its record would be longer than {limit} bytes (the limit)")]
pub struct RecordTooLong {
    pub limit: u64,
}

/// Renders the record, ending with its blank line.
pub fn render(meta: &Metadata, file: Option<FileInfo<'_>>) -> Vec<u8> {
    let mut out = Out {
        bytes: Vec::new(),
        limit: usize::MAX,
    };
    // Cannot fail: nothing is longer than usize::MAX.
    let _ = write(meta, file, &mut out);
    out.bytes
}

/// Renders the record unless it would be longer than `limit` bytes, in
/// which case it stops as it reaches the limit: a package of a few KiB can
/// hold a `+DESC` of millions of empty lines.
pub fn render_limited(
    meta: &Metadata,
    file: Option<FileInfo<'_>>,
    limit: u64,
) -> Result<Vec<u8>, RecordTooLong> {
    let mut out = Out {
        bytes: Vec::new(),
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
    };
    write(meta, file, &mut out).map_err(|Full| RecordTooLong { limit })?;
    Ok(out.bytes)
}

/// A record being written, and its bound.
struct Out {
    bytes: Vec<u8>,
    limit: usize,
}

/// The bound was reached.
struct Full;

impl Out {
    fn push(&mut self, parts: &[&[u8]]) -> Result<(), Full> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if self.bytes.len().saturating_add(len) > self.limit {
            return Err(Full);
        }
        for part in parts {
            self.bytes.extend_from_slice(part);
        }
        Ok(())
    }
}

fn write(meta: &Metadata, file: Option<FileInfo<'_>>, out: &mut Out) -> Result<(), Full> {
    let hint =
        meta.comment.len() + meta.desc.len() + meta.build_info.as_ref().map_or(0, Vec::len) + 256;
    out.bytes.reserve(hint.min(out.limit));
    for entry in plist::summary_entries(c_str(&meta.contents)) {
        let (var, arg) = match entry {
            Entry::Name(arg) => (&b"PKGNAME"[..], arg),
            Entry::Depends(arg) => (&b"DEPENDS"[..], arg),
            Entry::Conflicts(arg) => (&b"CONFLICTS"[..], arg),
        };
        push_line(out, var, arg.unwrap_or(b"(null)"))?;
    }
    push_text(out, b"COMMENT", &meta.comment)?;
    if let Some(size_pkg) = &meta.size_pkg {
        push_text(out, b"SIZE_PKG", size_pkg)?;
    }
    if let Some(build_info) = &meta.build_info {
        push_build_info(out, build_info)?;
    }
    if let Some(file) = file {
        push_line(out, b"FILE_NAME", file.name)?;
        push_line(out, b"FILE_SIZE", file.size.to_string().as_bytes())?;
    }
    push_text(out, b"DESCRIPTION", &meta.desc)?;
    out.push(&[b"\n"])
}

/// The metadata buffers are C strings in pkg_install: nothing after a NUL
/// byte is ever seen.
fn c_str(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(i) => &bytes[..i],
        None => bytes,
    }
}

fn push_line(out: &mut Out, var: &[u8], value: &[u8]) -> Result<(), Full> {
    out.push(&[var, b"=", value, b"\n"])
}

/// `print_string_as_var`: one `VAR=` line per `\n`-ended segment, blank
/// ones included; a last unterminated segment only if non-empty.
fn push_text(out: &mut Out, var: &[u8], text: &[u8]) -> Result<(), Full> {
    for segment in c_str(text).split_inclusive(|&b| b == b'\n') {
        push_line(out, var, segment.strip_suffix(b"\n").unwrap_or(segment))?;
    }
    Ok(())
}

/// `var_copy_list`: every line starting with one of the variables and `=`
/// is copied whole, in file order.
fn push_build_info(out: &mut Out, build_info: &[u8]) -> Result<(), Full> {
    for line in c_str(build_info).split_inclusive(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let copied = BUILD_INFO_VARS
            .iter()
            .any(|var| line.starts_with(var) && line.get(var.len()) == Some(&b'='));
        if copied {
            out.push(&[line, b"\n"])?;
        }
    }
    Ok(())
}

/// The value of the record's first `PKGNAME=` line, if any.
pub fn pkgname(record: &[u8]) -> Option<&[u8]> {
    field(record, "PKGNAME")
}

/// The value of the record's first `NAME=` line, if any.
pub fn field<'r>(record: &'r [u8], name: &str) -> Option<&'r [u8]> {
    record.split(|&b| b == b'\n').find_map(|line| {
        line.strip_prefix(name.as_bytes())
            .and_then(|rest| rest.strip_prefix(b"="))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Metadata {
        Metadata {
            contents: b"@name x-1\n".to_vec(),
            comment: b"c".to_vec(),
            desc: b"d\n".to_vec(),
            build_info: None,
            size_pkg: None,
        }
    }

    #[test]
    fn minimal_record() {
        let rec = render(
            &meta(),
            Some(FileInfo {
                name: b"x-1.tgz",
                size: 9,
            }),
        );
        assert_eq!(
            rec,
            b"PKGNAME=x-1\nCOMMENT=c\nFILE_NAME=x-1.tgz\nFILE_SIZE=9\nDESCRIPTION=d\n\n"
        );
    }

    #[test]
    fn text_splitting_rules() {
        let mut m = meta();
        m.comment = Vec::new();
        m.desc = b"\na\n\n b\r\nlast".to_vec();
        let rec = render(&m, None);
        assert_eq!(
            rec,
            b"PKGNAME=x-1\nDESCRIPTION=\nDESCRIPTION=a\nDESCRIPTION=\nDESCRIPTION= b\r\nDESCRIPTION=last\n\n"
        );
    }

    #[test]
    fn build_info_copies_only_exact_variables() {
        let mut m = meta();
        m.desc = Vec::new();
        m.build_info = Some(
            b"OPSYS=Linux\nOPSYS =x\n OPSYS=y\nPKGPATHX=z\nopsys=q\nLICENSE=\nHOMEPAGE= h\r\nCC=gcc\nPKGPATH=a/b"
                .to_vec(),
        );
        assert_eq!(
            render(&m, None),
            b"PKGNAME=x-1\nCOMMENT=c\nOPSYS=Linux\nLICENSE=\nHOMEPAGE= h\r\nPKGPATH=a/b\n\n"
        );
    }

    #[test]
    fn nul_ends_a_metadata_file() {
        let mut m = meta();
        m.comment = b"before\0after".to_vec();
        assert_eq!(
            render(&m, None),
            b"PKGNAME=x-1\nCOMMENT=before\nDESCRIPTION=d\n\n"
        );
    }

    #[test]
    fn base_name_takes_text_after_last_slash() {
        assert_eq!(base_name(b"./signed/../m-1.tgz"), b"m-1.tgz");
        assert_eq!(base_name(b"m-1.tgz"), b"m-1.tgz");
    }

    #[test]
    fn a_record_past_the_limit_stops_there() {
        let mut m = meta();
        // 1 MiB of empty lines: 12 MiB of DESCRIPTION= lines.
        m.desc = vec![b'\n'; 1 << 20];
        let full = render(&m, None);
        assert_eq!(full.len(), 12 + 10 + 13 * (1 << 20) + 1);
        assert_eq!(render_limited(&m, None, full.len() as u64), Ok(full));
        assert_eq!(
            render_limited(&m, None, 1000),
            Err(RecordTooLong { limit: 1000 })
        );
    }

    #[test]
    fn pkgname_finds_the_name_line() {
        let rec = b"CONFLICTS=a\nPKGNAME=b-1\nCOMMENT=c\n\n";
        assert_eq!(pkgname(rec), Some(&b"b-1"[..]));
    }
}
