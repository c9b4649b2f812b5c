//! pkgsum: a pkgsrc binary package repository index that updates itself.
//!
//! # How the parts fit
//!
//! The functional core is its own crate, `pkgsum-core`, with no async
//! runtime and no AWS dependency; its modules are re-exported here under
//! their own names. It turns bytes into records and records into
//! summaries:
//!
//! - [`header`] reads a package's metadata members from any byte stream
//!   (through [`compression`], [`signed`] and the bounded readers of
//!   [`limit`]); [`plist`] and [`record`] turn them into the exact
//!   `pkg_info -X` record.
//! - [`state`] keeps a repository's records and merges changes into them,
//!   stored as a small manifest naming immutable [`piece`]s, so an update
//!   reads and writes only the pieces it touches; [`summary`] names the `pkg_summary` files and [`chunk`] assembles
//!   them run by run, copying what did not change; [`create`] builds
//!   packages (for the demo, the tests and the benchmarks).
//!
//! This crate is the shell: it does the I/O, level-triggered (an event
//! only names keys to look at, and the store is the truth).
//!
//! - [`store`] is the one narrow object-store trait and its backends: S3
//!   (and S3-compatible servers), a local directory, memory; its `open`
//!   turns a repository URL (`s3://BUCKET/PREFIX/`, a directory) into its
//!   store, opening each bucket once.
//! - [`repo`] is a repository in a store and the one pass over it: list or
//!   look, read headers of new and changed packages ([`fetch`]), commit by
//!   compare-and-swap, publish. Every entry point runs this pass:
//!   - [`directory`]: `pkgsum index DIR`, over the local-directory store;
//!   - [`dispatch`]: decoded notifications ([`event`]) grouped into passes,
//!     for the Lambda function ([`payload`]), `pkgsum apply-event` and
//!     `pkgsum poll` ([`poll`]);
//!   - [`reconcile`]: `rebuild` (a pass over a listing) and `verify`;
//!   - [`serve`]: `pkgsum serve`, the webhook receiver for stores with no
//!     Lambda: notifications are spooled, then applied per repository by
//!     one writer after a debounce window.
//! - [`promote`] is `pkgsum promote`: packages of one repository judged
//!   against another as `push` judges files, copied inside the store as
//!   one release.
//! - [`advisories`] publishes the `pkg-vulnerabilities` file beside the
//!   summaries once [`vulnerabilities`] has checked it, and audits the
//!   repository's packages against it (`pkgsum vulnerabilities`, `audit`).
//! - [`prune`] is `pkgsum prune` and the scheduled prune: what
//!   [`retention`] lets go, deleted only while each file holds the ETag
//!   it was judged at, then the pass over the deleted names.
//! - [`push`] is `pkgsum push`: checks packages against the repository
//!   before anything is uploaded, uploads them as one release, and waits
//!   until the indexer has published them.
//! - [`gateway`] serves a private repository read-only to pkgin
//!   (`pkgsum gateway`), from any store, behind HTTP Basic credentials.
//! - [`web`] publishes the browsable site with each generation
//!   (`index.html`, `packages.json`, and each run's files under `site/`),
//!   writing only the runs whose records changed.
//! - [`http`] is the accept loop both servers share: connection limit,
//!   header and idle timeouts, graceful shutdown.
//! - All read their settings from [`config`] (each defined once, with its
//!   default and the commands that honour it, in [`settings`]), report
//!   progress through
//!   [`progress`] and sum up the same way ([`verdict`]).
//! - With the `testing` feature, `testing` holds what only tests and
//!   benchmarks use: the store conformance suite, store wrappers that
//!   count or fail requests, LocalStack helpers.

pub use pkgsum_core::{
    Error, Result, changelog, checks, chunk, compression, create, error, excerpt, gate, header,
    limit, piece, plist, record, record_file, record_stream, release, retention, sample, select,
    signed, site, splice, state, summary, trust, vulnerabilities,
};

pub mod advisories;
pub mod config;
pub mod directory;
pub mod dispatch;
pub mod event;
pub mod fetch;
#[cfg(feature = "gateway")]
pub mod gateway;
#[cfg(feature = "http")]
pub mod http;
pub mod keys;
#[cfg(feature = "lambda")]
pub mod payload;
#[cfg(feature = "poll")]
pub mod poll;
pub mod progress;
pub mod promote;
pub mod prune;
pub mod push;
pub mod reconcile;
pub mod repo;
#[cfg(feature = "serve")]
pub mod serve;
pub mod settings;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod verdict;
pub mod web;
