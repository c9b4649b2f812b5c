//! pkgsum-core: the pure core of pkgsum. Bytes in, bytes out; no async
//! runtime, no network, no object store (this crate cannot depend on them,
//! so the boundary is kept by the compiler rather than by discipline).
//!
//! # How the parts fit
//!
//! - [`header`] reads a package's leading `+` metadata members from any
//!   byte stream, through [`compression`] (the four codecs pkgsrc uses,
//!   detected by magic bytes), [`signed`] (the `ar` wrapper of a signed
//!   package) and the bounded readers of [`limit`], so no input can make
//!   it read or allocate without bound.
//! - [`plist`] parses `+CONTENTS`; [`record`] renders the metadata as the
//!   exact record `pkg_info -X` prints; [`checks`] warns of what would make
//!   a package fail later (a file name pkgin never downloads).
//! - [`state`] is a repository's records, tokens and failures, and merges
//!   changes into them; it is stored as a manifest naming [`piece`]s, so
//!   an update reads and writes only what it touches; [`summary`] names the `pkg_summary` files;
//!   [`chunk`] cuts sorted records into runs that stay put as packages
//!   come and go, compressed one by one (a concatenation is a valid
//!   summary), so an update can recompress one run; [`splice`] says how
//!   a store that copies ranges inside itself makes a new file from the
//!   previous one, sending only the runs made now.
//! - [`create`] builds packages as pkg_create does (for `pkgsum demo`, the
//!   tests and the benchmarks); [`sample`] makes metadata shaped like
//!   pkgsrc's for the benchmarks.
//! - [`select`] decides what a summary lists: every package, or the
//!   newest version of each (`PKGSUM_SELECT`), in pkg_install's dewey
//!   order.
//! - [`retention`] judges which package files may be deleted
//!   (`pkgsum prune`) without breaking a client.
//! - [`trust`] is a repository's signature policy: it gives each package
//!   a verdict (signed by whom, not signed, a bad signature) from the
//!   `+PKG_HASH` and signature that [`signed`] kept.
//! - [`site`] makes the browsable site's line of each package (JSON safe
//!   inside HTML), run by run as the summaries are made.
//! - [`vulnerabilities`] reads and checks the `pkg-vulnerabilities` file
//!   as `pkg_admin` does, and matches it against the repository's packages.
//! - [`error`] names every way a package or a state can be bad;
//!   [`excerpt`] is how any text from outside is quoted in a message: a
//!   short, escaped excerpt, never the whole.
//!
//! The `pkgsum` crate is the shell around this: stores, the repository
//! pass, events, the Lambda function and the CLI.

pub mod changelog;
pub mod checks;
pub mod chunk;
pub mod compression;
pub mod create;
pub mod error;
pub mod excerpt;
pub mod gate;
pub mod header;
pub mod limit;
pub mod piece;
pub mod plist;
pub mod record;
pub mod release;
pub mod retention;
pub mod sample;
pub mod select;
pub mod signed;
pub mod site;
pub mod splice;
pub mod state;
mod stored;
pub mod summary;
pub mod trust;
pub mod vulnerabilities;

pub use error::{Error, Result};

use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::Ordering;

/// Lower-case hex of `bytes`: digests in object names, `+PKG_HASH`,
/// fingerprints and ETags.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The record `pkg_info -X PATH` prints for a package file, with the
/// warnings pkg_info would print beside it. FILE_NAME is the text after
/// the path's last `/`; FILE_SIZE is the size of the file it names.
pub fn record_file(path: &Path, limits: &limit::Limits) -> Result<(Vec<u8>, Vec<String>)> {
    let file = File::open(path).map_err(Error::Io)?;
    let meta = file.metadata().map_err(Error::Io)?;
    if meta.is_dir() {
        return Err(Error::NotAFile("a directory"));
    }
    let size = meta.len();
    // No extra buffering: every decoder buffers its input already, and the
    // header reader should take as few bytes as it can.
    let header = header::read_header(file, limits)?;
    let info = record::FileInfo {
        name: record::base_name(path.as_os_str().as_bytes()),
        size,
    };
    let record = record::render_limited(&header.metadata, Some(info), limits.record)?;
    Ok((record, header.warnings))
}

/// The record of a package read from a stream (standard input): the whole
/// stream is read, since FILE_SIZE is its length. FILE_NAME is `name`, or
/// `PKGNAME.tgz` (the name pkgin fetches a package by) when not given.
pub fn record_stream<R: Read>(
    input: R,
    name: Option<&[u8]>,
    limits: &limit::Limits,
) -> Result<(Vec<u8>, Vec<String>)> {
    let (mut input, count) = limit::Counted::new(input);
    let header = header::read_header(&mut input, limits)?;
    std::io::copy(&mut input, &mut std::io::sink()).map_err(Error::Io)?;
    let size = count.load(Ordering::Relaxed);
    let default_name = record::render_limited(&header.metadata, None, limits.record)?;
    let default_name = record::pkgname(&default_name)
        .map(|n| [n, b".tgz"].concat())
        .unwrap_or_default();
    let info = record::FileInfo {
        name: name.unwrap_or(&default_name),
        size,
    };
    let record = record::render_limited(&header.metadata, Some(info), limits.record)?;
    Ok((record, header.warnings))
}
