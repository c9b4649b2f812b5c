//! Signed packages: a BSD `ar` archive holding `+PKG_HASH`, a signature
//! (`+PKG_SIGNATURE` for X.509, `+PKG_GPG_SIGNATURE` for OpenPGP) and the
//! unsigned package itself (pkg_install `lib/pkg_signature.c`).
//!
//! The `+PKG_HASH` text is checked for shape and for the inner package's
//! size, so a damaged container is reported rather than indexed; the text
//! and the signature are kept for [`crate::trust`], which verifies them
//! when the repository's policy asks (pkg_info ignores the verdict for
//! `-X`, and pkg_add verifies at install time).
//!
//! The ar reader is our own: the format is a 60-byte header per member,
//! and the general-purpose crates trust the sizes in those headers (a
//! forged name-table size makes them allocate gigabytes, a forged name
//! index makes them panic). Here every size is checked against a bound
//! before anything is allocated.

use std::io::{self, Read};

use sha2::{Digest, Sha512};

use crate::error::{Error, Result, classify};

/// The ar archive magic.
pub const AR_MAGIC: &[u8] = b"!<arch>\n";

/// Largest signature member read (real ones are a few KiB).
const SIGNATURE_LIMIT: u64 = 1024 * 1024;

/// Longest BSD `#1/` member name accepted.
const NAME_LIMIT: u64 = 4096;

const HEADER_LEN: usize = 60;

/// What `+PKG_HASH` says about the inner package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkgHash {
    pub pkgname: String,
    pub algorithm: String,
    pub block_size: u64,
    pub file_size: u64,
    /// The SHA-512 of each block of the inner package, in hex, as listed.
    pub blocks: Vec<String>,
}

/// How a package is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `+PKG_GPG_SIGNATURE`: a detached OpenPGP signature.
    Gpg,
    /// `+PKG_SIGNATURE`: PKCS#7, PEM.
    X509,
}

/// What a signed package carries before its inner package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub hash: PkgHash,
    /// `+PKG_HASH` as stored: the bytes the signature covers.
    pub text: Vec<u8>,
    pub method: Method,
    /// The signature member.
    pub signature: Vec<u8>,
}

/// Reads `+PKG_HASH` and the signature from a signed package (positioned
/// just after the ar magic) and returns a reader over the inner package.
pub(crate) fn inner_package<R: Read>(
    mut archive: R,
    hash_limit: u64,
) -> Result<(io::Take<R>, Signed)> {
    let hash_member = next_member(&mut archive, "+PKG_HASH")?;
    expect_name(&hash_member, &["+PKG_HASH"])?;
    let text = read_member(&mut archive, &hash_member, hash_limit)?;
    let hash = parse_pkg_hash(&text)?;

    let member = next_member(&mut archive, "a signature")?;
    expect_name(&member, &["+PKG_SIGNATURE", "+PKG_GPG_SIGNATURE"])?;
    let method = if member.name == b"+PKG_SIGNATURE" {
        Method::X509
    } else {
        Method::Gpg
    };
    let signature = read_member(&mut archive, &member, SIGNATURE_LIMIT)?;

    let inner = next_member(&mut archive, "the inner package")?;
    if inner.size != hash.file_size {
        return Err(Error::Signed(format!(
            "+PKG_HASH gives file size {} but the inner package has {} bytes",
            hash.file_size, inner.size
        )));
    }
    let signed = Signed {
        hash,
        text,
        method,
        signature,
    };
    Ok((archive.take(inner.size), signed))
}

/// Reads a signed package from its first byte (an uncompressed ar
/// archive, as pkg_admin writes it) to the end of its inner package,
/// checking the SHA-512 of every block against `+PKG_HASH`, as pkg_add
/// does while it extracts. Memory is one 64 KiB buffer, whatever the block
/// size. Returns the inner package's size.
pub fn check_blocks<R: Read>(mut input: R, hash_limit: u64) -> Result<u64> {
    let mut magic = [0u8; AR_MAGIC.len()];
    if read_full(&mut input, &mut magic)? < magic.len() || magic != AR_MAGIC {
        return Err(Error::Signed(
            "the payload check needs an uncompressed ar archive".to_owned(),
        ));
    }
    let (mut inner, signed) = inner_package(input, hash_limit)?;
    let digests = &signed.hash.blocks;
    let block_size = signed.hash.block_size;
    let blocks = signed.hash.file_size.div_ceil(block_size);
    if digests.len() as u64 != blocks {
        return Err(Error::Signed(format!(
            "+PKG_HASH lists {} block hashes for {blocks} blocks",
            digests.len()
        )));
    }
    let mut buffer = vec![0u8; 64 * 1024];
    for (index, want) in digests.iter().enumerate() {
        let mut hasher = Sha512::new();
        let mut left = block_size.min(signed.hash.file_size - index as u64 * block_size);
        while left > 0 {
            let n = buffer.len().min(left as usize);
            if read_full(&mut inner, &mut buffer[..n])? < n {
                return Err(Error::Truncated("signed package"));
            }
            hasher.update(&buffer[..n]);
            left -= n as u64;
        }
        if !crate::hex(&hasher.finalize()).eq_ignore_ascii_case(want) {
            return Err(Error::Signed(format!(
                "block {} of the inner package (bytes {} to {}) does not match its hash in +PKG_HASH",
                index + 1,
                index as u64 * block_size,
                ((index as u64 + 1) * block_size).min(signed.hash.file_size)
            )));
        }
    }
    Ok(signed.hash.file_size)
}

/// One member's header.
#[derive(Debug)]
struct Member {
    name: Vec<u8>,
    size: u64,
}

/// Reads the next member header, skipping a GNU `//` name table as
/// pkg_install does.
fn next_member<R: Read>(archive: &mut R, wanted: &str) -> Result<Member> {
    loop {
        let mut header = [0u8; HEADER_LEN];
        let got = read_full(archive, &mut header)?;
        if got == 0 {
            return Err(Error::Signed(format!(
                "the ar archive ends before {wanted}"
            )));
        }
        if got < HEADER_LEN {
            return Err(Error::Truncated("ar archive"));
        }
        if &header[58..60] != b"`\n" {
            return Err(corrupt("bad member header terminator"));
        }
        let mut name = trim_spaces(&header[..16]).to_vec();
        let mut size = parse_decimal(&header[48..58], "member size")?;
        if let Some(len) = name.strip_prefix(b"#1/") {
            // BSD long name: the name is the first `len` bytes of the data.
            let len = parse_decimal(len, "name length")?;
            if len > NAME_LIMIT || len > size {
                return Err(corrupt("implausible member name length"));
            }
            let mut long = vec![0u8; len as usize];
            if read_full(archive, &mut long)? < long.len() {
                return Err(Error::Truncated("ar archive"));
            }
            while long.last() == Some(&0) {
                long.pop();
            }
            name = long;
            size -= len;
        }
        if name == b"//" {
            skip(archive, size + size % 2)?;
            continue;
        }
        if name.len() > 1 && name.ends_with(b"/") {
            name.pop();
        }
        return Ok(Member { name, size });
    }
}

fn expect_name(member: &Member, names: &[&str]) -> Result<()> {
    if names.iter().any(|n| n.as_bytes() == member.name) {
        return Ok(());
    }
    Err(Error::Signed(format!(
        "expected member {}, found {:?}",
        names.join(" or "),
        String::from_utf8_lossy(&member.name)
    )))
}

/// Reads a whole member and its padding byte; refuses one over `limit`.
fn read_member<R: Read>(archive: &mut R, member: &Member, limit: u64) -> Result<Vec<u8>> {
    if member.size > limit {
        return Err(Error::Signed(format!(
            "{} is larger than {limit} bytes",
            String::from_utf8_lossy(&member.name)
        )));
    }
    let mut data = vec![0u8; member.size as usize];
    if read_full(archive, &mut data)? < data.len() {
        return Err(Error::Truncated("ar archive"));
    }
    skip(archive, member.size % 2)?;
    Ok(data)
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(classify(err, "ar archive")),
        }
    }
    Ok(filled)
}

fn skip<R: Read>(reader: &mut R, n: u64) -> Result<()> {
    io::copy(&mut reader.take(n), &mut io::sink()).map_err(|e| classify(e, "ar archive"))?;
    Ok(())
}

fn trim_spaces(field: &[u8]) -> &[u8] {
    let end = field.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    &field[..end]
}

fn parse_decimal(field: &[u8], what: &str) -> Result<u64> {
    std::str::from_utf8(trim_spaces(field))
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| corrupt(&format!("{what} is not a number")))
}

fn corrupt(reason: &str) -> Error {
    Error::Corrupt {
        codec: "ar archive",
        reason: reason.to_owned(),
    }
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
    // A blank line, then one digest per line up to the end line.
    let blocks = lines
        .skip_while(|line| line.is_empty())
        .take_while(|line| *line != "end pkgsrc signature")
        .map(str::to_owned)
        .collect();
    Ok(PkgHash {
        pkgname,
        algorithm,
        block_size,
        file_size,
        blocks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, size: u64) -> Vec<u8> {
        format!("{name:<16}{:<12}{:<6}{:<6}{:<8}{size:<10}`\n", 0, 0, 0, 644).into_bytes()
    }

    #[test]
    fn forged_sizes_fail_without_allocating() {
        // A 9 GB GNU name table and a BSD name longer than the limit.
        let table = header("//", 9_999_999_999);
        assert!(next_member(&mut &table[..], "x").is_err());
        let long = header("#1/999999999", 9_999_999_999);
        let err = next_member(&mut &long[..], "x").unwrap_err();
        assert!(
            err.to_string().contains("implausible member name length"),
            "{err}"
        );
    }

    #[test]
    fn gnu_style_names_and_tables() {
        let mut bytes = header("//", 4);
        bytes.extend_from_slice(b"x/\n\n");
        bytes.extend(header("+PKG_HASH/", 3));
        bytes.extend_from_slice(b"abc\n");
        let mut input = &bytes[..];
        let member = next_member(&mut input, "x").unwrap();
        assert_eq!(member.name, b"+PKG_HASH");
        assert_eq!(read_member(&mut input, &member, 10).unwrap(), b"abc");
        assert!(input.is_empty());
    }

    #[test]
    fn every_block_is_checked_against_pkg_hash() {
        use crate::create::{PackageBuilder, Signature, sign};
        let inner = PackageBuilder::new("big-1.0")
            .file("payload", crate::create::noise(7, 200_000))
            .build()
            .unwrap();
        let signed = sign(&inner, "big-1.0.tgz", "big-1.0", Signature::Gpg).unwrap();
        assert_eq!(
            check_blocks(&signed[..], 1 << 20).unwrap(),
            inner.len() as u64
        );
        // One byte changed in the third block (bytes 131072 on).
        let at = signed.len() - inner.len() + 140_000;
        let mut bad = signed.clone();
        bad[at] ^= 1;
        let err = check_blocks(&bad[..], 1 << 20).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "invalid signed package: block 3 of the inner package (bytes 131072 to 196608)"
            ),
            "{err}"
        );
        let err = check_blocks(&inner[..], 1 << 20).unwrap_err();
        assert!(
            err.to_string().contains("needs an uncompressed ar archive"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_header_is_corrupt() {
        let mut bytes = header("+PKG_HASH", 3);
        bytes[59] = b'x';
        let err = next_member(&mut &bytes[..], "x").unwrap_err();
        assert!(err.to_string().contains("corrupt ar archive"), "{err}");
        let mut bytes = header("+PKG_HASH", 3);
        bytes[50] = b'z';
        assert!(next_member(&mut &bytes[..], "x").is_err());
    }
}
