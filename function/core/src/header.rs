//! Reading a package's header: the leading `+` metadata members, and
//! nothing after them.
//!
//! Works on any `Read` (no `Seek`), so the same code serves a local file and
//! a ranged stream from S3. The format is found by magic bytes at every
//! layer: an optional compression, an optional signing `ar` wrapper (whose
//! inner package has its own compression), then the tar archive. Reading
//! stops at the first member that is not metadata, as pkg_info does
//! (`info/perform.c` `read_meta_data_from_archive`).

use std::cell::Cell;
use std::io::{Cursor, Read};
use std::rc::Rc;
use std::sync::atomic::Ordering;

use crate::compression::{Compression, MAGIC_LEN};
use crate::error::{Error, Layer, Result, classify};
use crate::limit::{Counted, Limited, Limits, Tagged};
use crate::record::Metadata;
use crate::signed::{self, AR_MAGIC, Signed};

/// The metadata members pkg_info knows, in the order pkg_create writes
/// them. Reading stops at the first member not in this list.
const META_MEMBERS: [&[u8]; 14] = [
    b"+CONTENTS",
    b"+COMMENT",
    b"+DESC",
    b"+INSTALL",
    b"+DEINSTALL",
    b"+DISPLAY",
    b"+MTREE_DIRS",
    b"+BUILD_VERSION",
    b"+BUILD_INFO",
    b"+SIZE_PKG",
    b"+SIZE_ALL",
    b"+PRESERVE",
    b"+REQUIRED_BY",
    b"+INSTALLED_INFO",
];

const CONTENTS: usize = 0;
const COMMENT: usize = 1;
const DESC: usize = 2;
const BUILD_INFO: usize = 8;
const SIZE_PKG: usize = 9;

/// Size of a tar header block.
const BLOCK: usize = 512;

/// A package header as read from the front of a package file.
#[derive(Debug, Clone)]
pub struct Header {
    /// The members a summary record is made from.
    pub metadata: Metadata,
    /// The compression of the tar archive (of the inner one when signed).
    pub compression: Compression,
    /// `+PKG_HASH` and the signature of a signed package.
    pub signature: Option<Signed>,
    /// Bytes taken from the input, decoder read-ahead included.
    pub consumed: u64,
    /// What pkg_info would warn about without failing.
    pub warnings: Vec<String>,
}

/// Reads the header of the package in `input`.
pub fn read_header<R: Read>(input: R, limits: &Limits) -> Result<Header> {
    let (counted, count) = Counted::new(input);
    let source: Box<dyn Read + '_> = Box::new(Tagged::new(counted, Layer::Input));
    let mut warnings = Vec::new();
    let (metadata, compression, signature) = read_layers(source, limits, true, &mut warnings)?;
    if metadata.build_info.is_none() {
        warnings.push("build information missing".to_owned());
    }
    Ok(Header {
        metadata,
        compression,
        signature,
        consumed: count.load(Ordering::Relaxed),
        warnings,
    })
}

type Layers = (Metadata, Compression, Option<Signed>);

/// Peels one compression layer, then reads a tar archive or unwraps a
/// signed package's ar archive (`allow_ar`, once) and recurses into it.
fn read_layers<'a>(
    input: Box<dyn Read + 'a>,
    limits: &Limits,
    allow_ar: bool,
    warnings: &mut Vec<String>,
) -> Result<Layers> {
    let (head, input) = peek(input, MAGIC_LEN, Compression::None)?;
    if head.is_empty() {
        return Err(Error::Empty);
    }
    let compression = Compression::detect(&head);
    let decoded = decode(input, compression, limits)?;
    let (block, decoded) = peek(decoded, BLOCK, compression)?;
    if block.starts_with(AR_MAGIC) {
        if !allow_ar {
            return Err(Error::Signed(
                "the inner package is itself an ar archive".to_owned(),
            ));
        }
        let archive = skip_magic(decoded)?;
        let (inner, signed) = signed::inner_package(archive, limits.pkg_hash)?;
        // As pkg_info does, every block metadata is read from is read
        // whole and checked against its hash: the record then comes only
        // from bytes the signed `+PKG_HASH` covers.
        let mut blocks = signed::Blocks::new(inner, &signed.hash);
        let (metadata, inner_compression, _) =
            read_layers(Box::new(&mut blocks), limits, false, warnings)?;
        blocks.finish_block()?;
        return Ok((metadata, inner_compression, Some(signed)));
    }
    check_tar_start(&block, compression)?;
    let metadata = read_tar(decoded, limits, warnings)?;
    Ok((metadata, compression, None))
}

/// Drops the ar magic that `peek` replayed.
fn skip_magic<'a>(mut input: Box<dyn Read + 'a>) -> Result<Box<dyn Read + 'a>> {
    let mut magic = [0u8; AR_MAGIC.len()];
    input
        .read_exact(&mut magic)
        .map_err(|err| classify(err, "ar archive"))?;
    Ok(input)
}

/// Wraps `input` in the decoder for `compression`, labelled for error
/// messages and bounded by the metadata limit.
fn decode<'a>(
    input: Box<dyn Read + 'a>,
    compression: Compression,
    limits: &Limits,
) -> Result<Box<dyn Read + 'a>> {
    let decoder = compression
        .decoder_bounded(input, limits.streams)
        .map_err(|err| classify(err, compression.stream_name()))?;
    let tagged = Tagged::new(decoder, Layer::Codec(compression.stream_name()));
    Ok(Box::new(Limited::new(tagged, limits.metadata)))
}

/// Reads up to `n` bytes and hands back a reader that yields them again.
fn peek<'a>(
    mut input: Box<dyn Read + 'a>,
    n: usize,
    compression: Compression,
) -> Result<(Vec<u8>, Box<dyn Read + 'a>)> {
    let mut head = Vec::with_capacity(n);
    input
        .by_ref()
        .take(n as u64)
        .read_to_end(&mut head)
        .map_err(|err| classify(err, compression.stream_name()))?;
    let replay = Cursor::new(head.clone()).chain(input);
    Ok((head, Box::new(replay)))
}

/// Rejects data that is not a tar archive before the tar reader sees it,
/// so random bytes are called that rather than a checksum error.
fn check_tar_start(block: &[u8], compression: Compression) -> Result<()> {
    let ustar = block.len() >= 262 && &block[257..262] == b"ustar";
    if block.len() == BLOCK && (ustar || tar_checksum_ok(block) || block.iter().all(|&b| b == 0)) {
        return Ok(());
    }
    if ustar {
        return Err(Error::Truncated("tar archive"));
    }
    if block.is_empty() {
        return Err(Error::Truncated(compression.stream_name()));
    }
    let shown: Vec<String> = block.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let what = match compression {
        Compression::None => shown.join(" "),
        other => format!(
            "{} stream holding neither a tar nor an ar archive: {}",
            other.name(),
            shown.join(" ")
        ),
    };
    Err(Error::UnknownFormat(what))
}

/// The checksum test of an old-style (pre-POSIX) tar header.
fn tar_checksum_ok(block: &[u8]) -> bool {
    let field = &block[148..156];
    let digits: String = field
        .iter()
        .map(|&b| b as char)
        .filter(|c| c.is_digit(8))
        .collect();
    let Ok(stored) = u32::from_str_radix(&digits, 8) else {
        return false;
    };
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum();
    sum == stored
}

/// Remembers whether the input ran dry, to tell an archive that ended with
/// its end-of-archive block from one cut at a block boundary, which the
/// tar reader would otherwise take as a normal end.
struct EofWatch<R> {
    inner: R,
    hit: Rc<Cell<bool>>,
}

impl<R: Read> Read for EofWatch<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.hit.set(true);
        }
        Ok(n)
    }
}

/// Reads the leading metadata members of a tar archive.
fn read_tar<R: Read>(input: R, limits: &Limits, warnings: &mut Vec<String>) -> Result<Metadata> {
    let tar_error = |err| classify(err, "tar archive");
    let eof = Rc::new(Cell::new(false));
    let mut archive = tar::Archive::new(EofWatch {
        inner: input,
        hit: Rc::clone(&eof),
    });
    let mut reached_payload = false;
    let mut found: [Option<Vec<u8>>; META_MEMBERS.len()] = Default::default();
    let mut seen = [false; META_MEMBERS.len()];
    let mut last = 0;
    for entry in archive.entries().map_err(tar_error)? {
        let mut entry = entry.map_err(tar_error)?;
        let member = {
            let path = entry.path_bytes();
            META_MEMBERS.iter().position(|m| *m == &*path)
        };
        let Some(member) = member else {
            reached_payload = true;
            break;
        };
        if std::mem::replace(&mut seen[member], true) {
            return Err(Error::DuplicateMember(
                String::from_utf8_lossy(META_MEMBERS[member]).into_owned(),
            ));
        }
        if member < last && !warnings.iter().any(|w| w == MISORDERED) {
            warnings.push(MISORDERED.to_owned());
        }
        last = last.max(member);
        if matches!(member, CONTENTS | COMMENT | DESC | BUILD_INFO | SIZE_PKG) {
            found[member] = Some(read_member(&mut entry, limits).map_err(tar_error)?);
        }
    }
    if !reached_payload && eof.get() {
        return Err(Error::Truncated("tar archive"));
    }
    let mut take = |i: usize| found[i].take();
    let contents = take(CONTENTS).ok_or(Error::MissingMember("+CONTENTS"))?;
    let comment = take(COMMENT).ok_or(Error::MissingMember("+COMMENT"))?;
    let desc = take(DESC).ok_or(Error::MissingMember("+DESC"))?;
    Ok(Metadata {
        contents,
        comment,
        desc,
        build_info: take(BUILD_INFO),
        size_pkg: take(SIZE_PKG),
    })
}

const MISORDERED: &str = "misordered package";

/// Reads one member whole. Its declared size is checked first so a forged
/// header cannot make us allocate past the limit.
fn read_member<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    limits: &Limits,
) -> std::io::Result<Vec<u8>> {
    let size = entry.size();
    if size > limits.metadata {
        return Err(std::io::Error::other(crate::error::LimitExceeded {
            limit: limits.metadata,
        }));
    }
    let mut data = Vec::with_capacity(size.min(1 << 20) as usize);
    entry.read_to_end(&mut data)?;
    Ok(data)
}
