//! pkgsum: a pkgsrc binary package repository index that updates itself.
//!
//! # How the parts fit
//!
//! A functional core turns bytes into records and records into summaries,
//! with no I/O of its own:
//!
//! - [`header`] reads a package's metadata members from any byte stream
//!   (through [`compression`], [`signed`] and the bounded readers of
//!   [`limit`]); [`plist`] and [`record`] turn them into the exact
//!   `pkg_info -X` record.
//! - [`state`] keeps a repository's records and merges changes into them;
//!   [`summary`] renders the `pkg_summary` files.
//!
//! A thin shell does the I/O, level-triggered: an event only names keys to
//! look at, and the store is the truth.
//!
//! - [`store`] is the one narrow object-store trait and its backends.
//! - [`repo`] is a repository in a store and the pass over it: look, read
//!   headers ([`fetch`]), commit by compare-and-swap, publish.
//! - The entry points feed it: [`event`] decodes notifications and
//!   [`handler`] turns them into passes, for the Lambda function
//!   ([`invoke`]), `pkgsum apply-event` and [`poll`]; [`reconcile`] is
//!   `rebuild` and `verify`; [`index`] is `pkgsum index` on a directory.
//! - All read their settings from [`config`], report progress through
//!   [`progress`] and sum up the same way ([`verdict`]).

pub mod compression;
pub mod config;
pub mod error;
pub mod event;
pub mod fetch;
pub mod handler;
pub mod header;
pub mod index;
pub mod invoke;
pub mod limit;
pub mod plist;
pub mod poll;
pub mod progress;
pub mod reconcile;
pub mod record;
pub mod repo;
pub mod signed;
pub mod state;
pub mod store;
pub mod summary;
pub mod testkit;
pub mod verdict;

pub use error::{Error, Result};

use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::Ordering;

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
    Ok((
        record::render(&header.metadata, Some(info)),
        header.warnings,
    ))
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
    let default_name = record::render(&header.metadata, None);
    let default_name = record::pkgname(&default_name)
        .map(|n| [n, b".tgz"].concat())
        .unwrap_or_default();
    let info = record::FileInfo {
        name: name.unwrap_or(&default_name),
        size,
    };
    Ok((
        record::render(&header.metadata, Some(info)),
        header.warnings,
    ))
}
