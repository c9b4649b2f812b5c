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
//! pkg_install checks each block of the inner package against its hash in
//! `+PKG_HASH` as it reads it, pkg_info included; so does the header
//! reader here ([`Blocks`]): every block it reads metadata from is read
//! whole and checked, so the record of a signed package comes only from
//! bytes its signed hashes cover. [`check_blocks`] checks every block.
//!
//! The ar reader is our own: the format is a 60-byte header per member,
//! and the general-purpose crates trust the sizes in those headers (a
//! forged name-table size makes them allocate gigabytes, a forged name
//! index makes them panic). Here every size is checked against a bound
//! before anything is allocated.

use std::io::{self, Read};

use sha2::{Digest, Sha512};

use crate::error::{BlockMismatch, Error, Result, classify};
use crate::excerpt::excerpt;

/// The ar archive magic.
pub const AR_MAGIC: &[u8] = b"!<arch>\n";

/// Largest signature member read: real ones are 1 to 4 KiB (an armored
/// OpenPGP signature, a PEM PKCS#7 with its signer's certificate), and
/// every byte of one is parsed and may be verified.
const SIGNATURE_LIMIT: u64 = 64 * 1024;

/// Longest BSD `#1/` member name accepted.
const NAME_LIMIT: u64 = 4096;

/// Default bound on the `+PKG_HASH` text: 129 bytes a block, so 8 MiB
/// lists the blocks of an inner package of 4 GiB at pkg_admin's 64 KiB.
pub const DEFAULT_PKG_HASH_LIMIT: u64 = 8 << 20;

/// Largest block size accepted. pkg_admin writes 65536 and pkg_install
/// reads a block into memory at once; a header read must read the blocks
/// its metadata lies in whole, so their size is bounded too.
pub const MAX_BLOCK_SIZE: u64 = 1 << 20;

/// Length of a SHA-512 digest, and of its hex in `+PKG_HASH`.
const DIGEST_LEN: usize = 64;
const HEX_LEN: usize = 2 * DIGEST_LEN;

const HEADER_LEN: usize = 60;

/// What `+PKG_HASH` says about the inner package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkgHash {
    pub pkgname: String,
    pub algorithm: String,
    pub block_size: u64,
    pub file_size: u64,
    /// The SHA-512 of each block of the inner package, as listed: one
    /// per `block_size` bytes of `file_size`, the last block shorter.
    pub blocks: Vec<[u8; DIGEST_LEN]>,
}

impl PkgHash {
    /// The length of block `index` (0-based) of the inner package.
    fn block_len(&self, index: u64) -> u64 {
        let start = index.saturating_mul(self.block_size);
        self.block_size.min(self.file_size.saturating_sub(start))
    }

    /// Whether block `index` has the digest `digest`.
    fn matches(&self, index: u64, digest: &[u8]) -> bool {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.blocks.get(i))
            .is_some_and(|want| want[..] == *digest)
    }

    /// What is wrong when block `index` does not match its hash.
    fn mismatch(&self, index: u64) -> String {
        let start = index.saturating_mul(self.block_size);
        format!(
            "block {} of the inner package (bytes {start} to {}) does not match its hash in +PKG_HASH",
            index + 1,
            start.saturating_add(self.block_len(index))
        )
    }
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
    let (inner, signed) = inner_package(input, hash_limit)?;
    let mut blocks = Blocks::new(inner, &signed.hash);
    let mut buffer = vec![0u8; 64 * 1024];
    while read_full(&mut blocks, &mut buffer)? > 0 {}
    if !blocks.is_done() {
        return Err(Error::Truncated("signed package"));
    }
    Ok(signed.hash.file_size)
}

/// A reader over the inner package of a signed one that checks each
/// block against its digest in `+PKG_HASH` as its last byte is read, and
/// fails (with [`BlockMismatch`]) at the first that does not match.
pub(crate) struct Blocks<'h, R> {
    inner: R,
    hash: &'h PkgHash,
    /// The block being read (0-based), and how much of it has been.
    index: u64,
    filled: u64,
    hasher: Sha512,
}

impl<'h, R: Read> Blocks<'h, R> {
    /// `inner` must start at the inner package's first byte.
    pub(crate) fn new(inner: R, hash: &'h PkgHash) -> Self {
        Blocks {
            inner,
            hash,
            index: 0,
            filled: 0,
            hasher: Sha512::new(),
        }
    }

    /// Whether every block has been read and checked.
    fn is_done(&self) -> bool {
        self.index == self.hash.blocks.len() as u64
    }

    /// Reads the rest of the block being read, if one was begun, and
    /// checks it: then every byte read so far lies in a checked block.
    pub(crate) fn finish_block(&mut self) -> Result<()> {
        let mut buffer = [0u8; 8192];
        while self.filled > 0 {
            let left = self.hash.block_len(self.index) - self.filled;
            let room = usize::try_from(left).map_or(buffer.len(), |l| l.min(buffer.len()));
            match self.read(&mut buffer[..room]) {
                Ok(0) => return Err(Error::Truncated("signed package")),
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(classify(err, "signed package")),
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for Blocks<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.hash.block_len(self.index) - self.filled;
        let room = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        if room == 0 {
            return Ok(0);
        }
        let got = self.inner.read(&mut buf[..room])?;
        self.hasher.update(&buf[..got]);
        self.filled += got as u64;
        if got > 0 && self.filled == self.hash.block_len(self.index) {
            let digest = self.hasher.finalize_reset();
            if !self.hash.matches(self.index, &digest) {
                let message = self.hash.mismatch(self.index);
                return Err(io::Error::other(BlockMismatch(message)));
            }
            self.index += 1;
            self.filled = 0;
        }
        Ok(got)
    }
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
        "expected member {}, found {}",
        names.join(" or "),
        excerpt(&member.name)
    )))
}

/// Reads a whole member and its padding byte; refuses one over `limit`.
fn read_member<R: Read>(archive: &mut R, member: &Member, limit: u64) -> Result<Vec<u8>> {
    if member.size > limit {
        return Err(Error::Signed(format!(
            "{} is larger than {limit} bytes",
            excerpt(&member.name)
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

/// Parses the `+PKG_HASH` text pkg_admin writes, exactly: the header
/// lines, a blank line, one lower-case SHA-512 hex line for each block of
/// the inner package (as many as its file size and block size make), and
/// the end line. Anything else is refused before it is kept.
pub fn parse_pkg_hash(text: &[u8]) -> Result<PkgHash> {
    let bad = |why: &str| Error::Signed(format!("malformed +PKG_HASH: {why}"));
    let text = std::str::from_utf8(text).map_err(|_| bad("not text"))?;
    let mut lines = text.split('\n');
    let mut next = |want: &str| {
        lines
            .next()
            .ok_or_else(|| bad(&format!("ends before {want:?}")))
    };
    let mut expect = |want: &str| match next(want)? {
        line if line == want => Ok(()),
        line => Err(bad(&format!("expected {want:?}, found {}", excerpt(line)))),
    };
    expect("pkgsrc signature")?;
    expect("")?;
    expect("version: 1")?;
    let mut field = |name: &str| -> Result<String> {
        let line = next(name)?;
        line.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(": "))
            .map(str::to_owned)
            .ok_or_else(|| bad(&format!("expected {name}, found {}", excerpt(line))))
    };
    let pkgname = field("pkgname")?;
    let algorithm = field("algorithm")?;
    let number = |value: String, what: &str| {
        value
            .parse::<u64>()
            .map_err(|_| bad(&format!("{what} {} is not a number", excerpt(&value))))
    };
    let block_size = number(field("block size")?, "block size")?;
    let file_size = number(field("file size")?, "file size")?;
    if algorithm != "SHA512" {
        return Err(bad(&format!(
            "algorithm {} (pkg_install knows SHA512 only)",
            excerpt(&algorithm)
        )));
    }
    if !(1024..=MAX_BLOCK_SIZE).contains(&block_size) {
        return Err(bad(&format!(
            "block size {block_size} is not between 1024 and {MAX_BLOCK_SIZE}"
        )));
    }
    let mut lines = text.split('\n').skip(7);
    match lines.next() {
        Some("") => {}
        _ => return Err(bad("no blank line before the block hashes")),
    }
    // Checked against the text's length before anything is allocated:
    // each hash takes a line of 129 bytes.
    let count = file_size.div_ceil(block_size);
    if count > (text.len() / (HEX_LEN + 1)) as u64 {
        return Err(bad(&format!(
            "file size {file_size} makes {count} blocks, more than the text lists"
        )));
    }
    let mut blocks = Vec::with_capacity(count as usize);
    for index in 1..=count {
        let line = lines.next().unwrap_or_default();
        let digest = digest_of(line).ok_or_else(|| {
            bad(&format!(
                "line {} should be the hash of block {index} of {count}, found {}",
                index + 8,
                excerpt(line)
            ))
        })?;
        blocks.push(digest);
    }
    match (lines.next(), lines.next(), lines.next()) {
        (Some("end pkgsrc signature"), Some(""), None) => {}
        (Some(line), _, _) if digest_of(line).is_some() => {
            return Err(bad(&format!(
                "more block hashes than the {count} blocks of file size {file_size}"
            )));
        }
        _ => return Err(bad("no end line, or text after it")),
    }
    Ok(PkgHash {
        pkgname,
        algorithm,
        block_size,
        file_size,
        blocks,
    })
}

/// A SHA-512 digest from its lower-case hex, as pkg_admin writes it.
fn digest_of(line: &str) -> Option<[u8; DIGEST_LEN]> {
    let hex = line.as_bytes();
    if hex.len() != HEX_LEN {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut digest = [0u8; DIGEST_LEN];
    for (byte, pair) in digest.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(digest)
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

    fn hash_text(file_size: u64, lines: &[String]) -> Vec<u8> {
        let mut text = format!(
            "pkgsrc signature\n\nversion: 1\npkgname: a-1\nalgorithm: SHA512\n\
             block size: 65536\nfile size: {file_size}\n\n"
        );
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        text.push_str("end pkgsrc signature\n");
        text.into_bytes()
    }

    #[test]
    fn pkg_hash_lines_are_checked_while_parsed() {
        let digest = "0123456789abcdef".repeat(8);
        let good = parse_pkg_hash(&hash_text(65537, &[digest.clone(), digest.clone()])).unwrap();
        assert_eq!((good.blocks.len(), good.blocks[0][0]), (2, 0x01));
        let refused = |file_size: u64, lines: &[String], why: &str| {
            let err = parse_pkg_hash(&hash_text(file_size, lines))
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{why}: {err}");
            assert!(err.len() < 1024, "{}", err.len());
        };
        refused(
            65537,
            std::slice::from_ref(&digest),
            "more than the text lists",
        );
        refused(
            65537,
            &[digest.clone(), "g".repeat(128)],
            "should be the hash of block 2 of 2",
        );
        refused(
            65536,
            &[digest.clone(), digest.clone()],
            "more block hashes than the 1 blocks",
        );
        refused(
            1,
            &[digest.to_uppercase()],
            "should be the hash of block 1 of 1",
        );
        refused(
            65537,
            &["x".to_owned(), digest.clone(), digest.clone()],
            "found \"x\"",
        );
        refused(1, &["0".repeat(10_000)], "(10000 bytes)");
        // More blocks than the text could list, before any is allocated.
        refused(
            u64::MAX,
            std::slice::from_ref(&digest),
            "more than the text lists",
        );
        let other = String::from_utf8(hash_text(1, std::slice::from_ref(&digest)))
            .unwrap()
            .replace("SHA512", "MD5");
        let err = parse_pkg_hash(other.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("algorithm \"MD5\""), "{err}");
        let big = String::from_utf8(hash_text(1, &[digest]))
            .unwrap()
            .replace("block size: 65536", "block size: 1073741824");
        let err = parse_pkg_hash(big.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("is not between 1024 and"), "{err}");
    }

    #[test]
    fn a_huge_pkg_hash_is_refused_before_it_is_read() {
        // H2: 31 M one-byte "digest" lines took 1.76 GB; the member's size
        // is checked against the limit first.
        let mut bytes = header("+PKG_HASH", 62_000_000);
        bytes.extend_from_slice(&b"a\n".repeat(1000));
        let err = inner_package(&bytes[..], DEFAULT_PKG_HASH_LIMIT).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "invalid signed package: \"+PKG_HASH\" is larger than {DEFAULT_PKG_HASH_LIMIT} bytes"
            )
        );
        // Within the limit, one-byte lines are refused at the first.
        let mut text = hash_text(1 << 30, &[]);
        text.truncate(text.len() - "end pkgsrc signature\n".len());
        text.extend_from_slice(&b"a\n".repeat(1 << 20));
        let err = parse_pkg_hash(&text).unwrap_err().to_string();
        assert!(err.contains("more than the text lists"), "{err}");
    }

    #[test]
    fn a_swapped_inner_package_is_refused_by_the_header_read() {
        // M2: a good signature over +PKG_HASH, but the inner package is
        // another of the same size, with the attacker's metadata.
        use crate::compression::Compression;
        use crate::create::{PackageBuilder, Signature, wrap};
        let inner = PackageBuilder::new("good-1.0")
            .compression(Compression::None)
            .member("+COMMENT", "a good package\n")
            .file("payload", crate::create::noise(3, 150_000))
            .build()
            .unwrap();
        let hash = crate::create::pkg_hash("good-1.0", &inner);
        let signed = wrap(&hash, Signature::Gpg, b"sig", "good-1.0.tgz", &inner).unwrap();
        let limits = crate::limit::Limits::default();
        let header = crate::header::read_header(&signed[..], &limits).unwrap();
        assert_eq!(header.metadata.comment, b"a good package\n");
        // Every block the metadata came from was read whole and checked.
        let start = signed.len() - inner.len();
        assert!(
            header.consumed >= start as u64 + 65536,
            "{}",
            header.consumed
        );

        let at = inner
            .windows(14)
            .position(|w| w == b"a good package")
            .unwrap();
        let mut evil = inner.clone();
        evil[at..at + 14].copy_from_slice(b"a BAD! package");
        let swapped = wrap(&hash, Signature::Gpg, b"sig", "good-1.0.tgz", &evil).unwrap();
        let err = crate::header::read_header(&swapped[..], &limits).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid signed package: block 1 of the inner package (bytes 0 to 65536) \
             does not match its hash in +PKG_HASH"
        );
    }
}
