//! `pkgsum push`: publishing packages as a release manager would, in
//! three steps, each its own module:
//!
//! 1. [`check`]: every file is read and judged before anything is
//!    uploaded, with the indexer's own reader: its header and record, its
//!    platform against the repository's, its signature under the policy,
//!    what is at its key already, and (a warning) whether its DEPENDS are
//!    satisfied by the repository plus this push. One bad file stops the
//!    push, unless `--skip-bad`.
//! 2. [`upload`]: each file goes to `PKGNAME.tgz` (pkgin downloads that
//!    name), with a checksum the store verifies, as one release
//!    (`pkgsum-release: ID/COUNT`, see [`crate::release`]) so the indexer
//!    publishes all of them in one generation; written only if the key is
//!    still as checked (`If-None-Match: *`, or `If-Match` for `--replace`),
//!    so two pushers racing cannot clobber each other. A directory gets
//!    each file by a link or rename (atomic), then one index pass.
//! 3. [`wait`]: until every pushed package is in the published summary,
//!    or the indexer reports it unreadable or held back, or time runs out.

pub mod check;
pub mod upload;
pub mod wait;

use std::path::PathBuf;

use crate::trust::SignatureVerdict;

/// A file that passed the checks, ready to upload.
#[derive(Debug, Clone)]
pub struct Checked {
    pub path: PathBuf,
    /// `PKGNAME.tgz`: the name it is uploaded under.
    pub name: String,
    pub pkgname: String,
    /// The record the indexer will make of it under `name`.
    pub record: Vec<u8>,
    pub size: u64,
    pub verdict: Option<SignatureVerdict>,
    /// The same bytes are at its key already: nothing to upload.
    pub present: bool,
    /// The ETag of a different object at its key, replaced (`--replace`).
    pub replaces: Option<String>,
}

/// A file that did not pass, and why (one line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub path: PathBuf,
    pub why: String,
}

/// What a push is asked to do.
#[derive(Debug, Clone, Copy, Default)]
pub struct PushOptions {
    /// Replace a different object at a key (else refused).
    pub replace: bool,
    /// Upload the good files when some are bad (else nothing is).
    pub skip_bad: bool,
}
