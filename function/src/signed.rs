//! Signed packages: a BSD `ar` archive holding `+PKG_HASH`, a signature
//! (`+PKG_SIGNATURE` for X.509, `+PKG_GPG_SIGNATURE` for OpenPGP) and the
//! unsigned package itself (pkg_install `lib/pkg_signature.c`).
//!
//! pkgsum indexes; it does not verify. pkg_info ignores the verdict for
//! `-X` too, and pkg_add verifies at install time. The `+PKG_HASH` text is
//! still checked for shape and for the inner package's size, so a damaged
//! container is reported rather than indexed.

use std::io::{self, Read};

use crate::error::{Error, Result, classify};

/// The ar archive magic.
pub const AR_MAGIC: &[u8] = b"!<arch>\n";

/// Largest signature member read (real ones are a few KiB).
const SIGNATURE_LIMIT: u64 = 1024 * 1024;

/// What `+PKG_HASH` says about the inner package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkgHash {
    pub pkgname: String,
    pub algorithm: String,
    pub block_size: u64,
    pub file_size: u64,
}

/// Reads `+PKG_HASH` and the signature from a signed package, leaving the
/// archive positioned at the inner package, which is returned.
pub(crate) fn inner_package<'a, R: Read + 'a>(
    archive: &'a mut ar::Archive<R>,
    hash_limit: u64,
) -> Result<(ar::Entry<'a, R>, PkgHash)> {
    let hash_text = {
        let mut entry = next_member(archive, "+PKG_HASH")?;
        expect_name(&entry, &[b"+PKG_HASH"])?;
        read_member(&mut entry, hash_limit, "+PKG_HASH")?
    };
    let hash = parse_pkg_hash(&hash_text)?;
    {
        let mut entry = next_member(archive, "a signature")?;
        expect_name(&entry, &[b"+PKG_SIGNATURE", b"+PKG_GPG_SIGNATURE"])?;
        read_member(&mut entry, SIGNATURE_LIMIT, "the signature")?;
    }
    let inner = next_member(archive, "the inner package")?;
    let size = inner.header().size();
    if size != hash.file_size {
        return Err(Error::Signed(format!(
            "+PKG_HASH gives file size {} but the inner package has {size} bytes",
            hash.file_size
        )));
    }
    Ok((inner, hash))
}

/// The next member. The ar crate itself consumes the GNU `//` name table
/// and symbol tables, which pkg_install skips too.
fn next_member<'a, R: Read + 'a>(
    archive: &'a mut ar::Archive<R>,
    wanted: &str,
) -> Result<ar::Entry<'a, R>> {
    match archive.next_entry() {
        None => Err(Error::Signed(format!(
            "the ar archive ends before {wanted}"
        ))),
        Some(Err(err)) => Err(ar_error(err)),
        Some(Ok(entry)) => Ok(entry),
    }
}

fn expect_name<R: Read>(entry: &ar::Entry<'_, R>, names: &[&[u8]]) -> Result<()> {
    let id = entry.header().identifier();
    if names.contains(&id) {
        return Ok(());
    }
    let wanted: Vec<String> = names
        .iter()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    Err(Error::Signed(format!(
        "expected member {}, found {:?}",
        wanted.join(" or "),
        String::from_utf8_lossy(id)
    )))
}

fn read_member<R: Read>(entry: &mut R, limit: u64, what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let n = entry
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(ar_error)?;
    if n as u64 > limit {
        return Err(Error::Signed(format!(
            "{what} is larger than {limit} bytes"
        )));
    }
    Ok(out)
}

fn ar_error(err: io::Error) -> Error {
    classify(err, "ar archive")
}

/// Parses the `+PKG_HASH` text pkg_admin writes.
pub fn parse_pkg_hash(text: &[u8]) -> Result<PkgHash> {
    let bad = |why: &str| Error::Signed(format!("malformed +PKG_HASH: {why}"));
    let text = std::str::from_utf8(text).map_err(|_| bad("not text"))?;
    let mut lines = text.split('\n');
    let mut expect = |want: &str| match lines.next() {
        Some(line) if line == want => Ok(()),
        Some(line) => Err(bad(&format!("expected {want:?}, found {line:?}"))),
        None => Err(bad(&format!("ends before {want:?}"))),
    };
    expect("pkgsrc signature")?;
    expect("")?;
    expect("version: 1")?;
    let mut field = |name: &str| -> Result<String> {
        let line = lines
            .next()
            .ok_or_else(|| bad(&format!("no {name} line")))?;
        line.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(": "))
            .map(str::to_owned)
            .ok_or_else(|| bad(&format!("expected {name}, found {line:?}")))
    };
    let pkgname = field("pkgname")?;
    let algorithm = field("algorithm")?;
    let block_size = field("block size")?
        .parse::<u64>()
        .map_err(|_| bad("block size is not a number"))?;
    let file_size = field("file size")?
        .parse::<u64>()
        .map_err(|_| bad("file size is not a number"))?;
    if block_size < 1024 {
        return Err(bad("block size below 1024"));
    }
    if !text.ends_with("end pkgsrc signature\n") {
        return Err(bad("no end line"));
    }
    Ok(PkgHash {
        pkgname,
        algorithm,
        block_size,
        file_size,
    })
}
