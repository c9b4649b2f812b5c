//! pkg_create in miniature: builds pkgsrc packages laid out as
//! pkg_create writes them (pax tar with a `hdrcharset=BINARY` extended
//! header before every member, metadata first, then the payload), and
//! signed ones (the `ar` wrapper with `+PKG_HASH`).
//!
//! Part of the product: `pkgsum demo` builds its sample repository with
//! it. Tests and benchmarks build their corpora with it too.

use std::io::{self, Write};

use sha2::{Digest, Sha512};

use crate::compression::Compression;

/// Builds one package.
#[derive(Debug, Clone)]
pub struct PackageBuilder {
    pkgname: String,
    members: Vec<(String, Vec<u8>)>,
    contents_auto: bool,
    payload: Vec<(String, Vec<u8>)>,
    compression: Compression,
}

impl PackageBuilder {
    /// A package with the members pkgsrc writes: +CONTENTS, +COMMENT,
    /// +DESC, +BUILD_INFO and +SIZE_PKG, gzip-compressed, no payload.
    pub fn new(pkgname: &str) -> Self {
        let base = pkgname.rsplit_once('-').map_or(pkgname, |(b, _)| b);
        let build_info = format!(
            "BUILD_DATE=2026-11-25 12:00:00 +0000\nCATEGORIES=misc\n\
             HOMEPAGE=https://example.org/{base}/\nLICENSE=modified-bsd\n\
             MACHINE_ARCH=x86_64\nOPSYS=NetBSD\nOS_VERSION=10.1\n\
             PKGPATH=misc/{base}\nPKGTOOLS_VERSION=20250417\n"
        );
        PackageBuilder {
            pkgname: pkgname.to_owned(),
            members: vec![
                ("+CONTENTS".to_owned(), Vec::new()),
                (
                    "+COMMENT".to_owned(),
                    format!("The {base} test package\n").into_bytes(),
                ),
                (
                    "+DESC".to_owned(),
                    format!(
                        "{base} exists to be indexed.\n\nHomepage:\nhttps://example.org/{base}/\n"
                    )
                    .into_bytes(),
                ),
                ("+BUILD_INFO".to_owned(), build_info.into_bytes()),
                ("+SIZE_PKG".to_owned(), b"0\n".to_vec()),
            ],
            contents_auto: true,
            payload: Vec::new(),
            compression: Compression::Gzip,
        }
    }

    /// Sets a metadata member, keeping its place if it exists, else
    /// appending it after the others.
    pub fn member(mut self, name: &str, data: impl Into<Vec<u8>>) -> Self {
        if name == "+CONTENTS" {
            self.contents_auto = false;
        }
        let data = data.into();
        match self.members.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = data,
            None => self.members.push((name.to_owned(), data)),
        }
        self
    }

    /// Drops a metadata member.
    pub fn without(mut self, name: &str) -> Self {
        self.members.retain(|(n, _)| n != name);
        self
    }

    /// Adds a payload file (listed in the generated +CONTENTS).
    pub fn file(mut self, path: &str, data: impl Into<Vec<u8>>) -> Self {
        self.payload.push((path.to_owned(), data.into()));
        self
    }

    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// The package file's bytes.
    pub fn build(&self) -> io::Result<Vec<u8>> {
        self.compression.compress(&self.tar()?)
    }

    fn contents(&self) -> Vec<u8> {
        let mut text = format!("@name {}\n@cwd /usr/pkg\n", self.pkgname);
        for (path, _) in &self.payload {
            text.push_str(path);
            text.push('\n');
        }
        text.push_str("@cwd /usr/pkg\n");
        for (name, _) in &self.members {
            text.push_str(&format!("@ignore\n{name}\n"));
        }
        text.into_bytes()
    }

    fn tar(&self) -> io::Result<Vec<u8>> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in &self.members {
            let data = match (name.as_str(), self.contents_auto) {
                ("+CONTENTS", true) => self.contents(),
                _ => data.clone(),
            };
            append(&mut builder, name, &data, 0o444)?;
        }
        for (path, data) in &self.payload {
            append(&mut builder, path, data, 0o644)?;
        }
        builder.into_inner()
    }
}

fn append<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
    mode: u32,
) -> io::Result<()> {
    builder.append_pax_extensions([("hdrcharset", &b"BINARY"[..])])?;
    let mut header = tar::Header::new_ustar();
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_mtime(1_710_498_030);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, name, data)
}

/// Which signature member a signed package carries.
#[derive(Debug, Clone, Copy)]
pub enum Signature {
    /// `+PKG_GPG_SIGNATURE` (pkg_admin gpg-sign-package).
    Gpg,
    /// `+PKG_SIGNATURE` (pkg_admin x509-sign-package).
    X509,
}

/// The `+PKG_HASH` text pkg_admin writes for `inner`: the SHA-512 of each
/// 64 KiB block.
pub fn pkg_hash(pkgname: &str, inner: &[u8]) -> Vec<u8> {
    let mut text = format!(
        "pkgsrc signature\n\nversion: 1\npkgname: {pkgname}\nalgorithm: SHA512\n\
         block size: 65536\nfile size: {}\n\n",
        inner.len()
    );
    for block in inner.chunks(65536) {
        text.push_str(&crate::hex(&Sha512::digest(block)));
        text.push('\n');
    }
    text.push_str("end pkgsrc signature\n");
    text.into_bytes()
}

/// Wraps `inner` into a signed package as pkg_admin does, with a
/// signature that is only its first line (for tests of the container).
pub fn sign(inner: &[u8], inner_name: &str, pkgname: &str, kind: Signature) -> io::Result<Vec<u8>> {
    let hash = pkg_hash(pkgname, inner);
    let signature: &[u8] = match kind {
        Signature::Gpg => b"-----BEGIN PGP SIGNATURE-----\n",
        Signature::X509 => b"-----BEGIN PKCS7-----\n",
    };
    wrap(&hash, kind, signature, inner_name, inner)
}

/// A signed package of `hash` (the `+PKG_HASH` text), its `signature`
/// member and the inner package.
pub fn wrap(
    hash: &[u8],
    kind: Signature,
    signature: &[u8],
    inner_name: &str,
    inner: &[u8],
) -> io::Result<Vec<u8>> {
    let member = match kind {
        Signature::Gpg => "+PKG_GPG_SIGNATURE",
        Signature::X509 => "+PKG_SIGNATURE",
    };
    ar_archive(&[
        ("+PKG_HASH", hash),
        (member, signature),
        (inner_name, inner),
    ])
}

/// A BSD ar archive of the given members, in order, as libarchive's
/// `ar_bsd` writer lays it out: names over 16 bytes or with a space go
/// into the data as `#1/<len>`, odd sizes get a `\n` pad byte.
pub fn ar_archive(members: &[(&str, &[u8])]) -> io::Result<Vec<u8>> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, data) in members {
        let long = name.len() > 16 || name.contains(' ');
        let (id, prefix) = if long {
            (format!("#1/{}", name.len()), name.as_bytes())
        } else {
            (name.to_string(), &b""[..])
        };
        let size = prefix.len() + data.len();
        let header = format!(
            "{id:<16}{:<12}{:<6}{:<6}{:<8}{size:<10}`\n",
            1_710_498_030, 0, 0, 100_644
        );
        if header.len() != 60 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "ar header field overflow",
            ));
        }
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(prefix);
        out.extend_from_slice(data);
        if size % 2 == 1 {
            out.push(b'\n');
        }
    }
    Ok(out)
}

/// Deterministic incompressible bytes (xorshift64), for payloads.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
