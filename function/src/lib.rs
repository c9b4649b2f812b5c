//! pkgsum: a pkgsrc binary package repository index that updates itself.
//!
//! The library is the functional core: [`header`] reads a package's
//! metadata from any byte stream, [`record`] turns it into the exact
//! `pkg_info -X` record, [`state`] keeps the records of a repository and
//! merges changes into them, and [`summary`] renders `pkg_summary` files.
//! [`index`] is the local-directory shell around that core.

pub mod compression;
pub mod error;
pub mod event;
pub mod fetch;
pub mod handler;
pub mod header;
pub mod index;
pub mod invoke;
pub mod limit;
pub mod plist;
pub mod reconcile;
pub mod record;
pub mod repo;
pub mod signed;
pub mod state;
pub mod store;
pub mod summary;
pub mod testkit;

pub use error::{Error, Result};

use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The record `pkg_info -X PATH` prints for a package file, with the
/// warnings pkg_info would print beside it. FILE_NAME is the text after
/// the path's last `/`; FILE_SIZE is the size of the file it names.
pub fn record_file(path: &Path, limits: &limit::Limits) -> Result<(Vec<u8>, Vec<String>)> {
    let file = File::open(path).map_err(Error::Io)?;
    let size = file.metadata().map_err(Error::Io)?.len();
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
