//! Key naming, a leaf every other part may use: which keys are packages
//! and which are plain enough to hold, and where a repository's files
//! live, relative to its prefix: the packages (`<prefix><name>`), pkgsum's
//! own state (a manifest and its pieces) and status under
//! `<prefix>.pkgsum/`, and the summaries `<prefix>pkg_summary.*`, whose
//! object metadata carries the generation they were rendered from.

use crate::compression::Compression;
use crate::piece::PieceRef;
use crate::store::ObjectMeta;
use crate::summary;

/// Object metadata name carrying the state generation of an output.
pub const GENERATION: &str = "pkgsum-generation";

/// Object metadata name carrying how many packages a summary lists: the
/// count the next summary's shrink is measured against.
pub const LISTED: &str = "pkgsum-listed";

/// Object metadata name carrying what a summary lists (`all`, `newest`).
pub const SELECTED: &str = "pkgsum-select";

/// Splits a key into its repository prefix (ending in `/`, or empty) and
/// the file name.
pub fn split_key(key: &str) -> (&str, &str) {
    match key.rfind('/') {
        Some(i) => (&key[..=i], &key[i + 1..]),
        None => ("", key),
    }
}

/// Whether the key is one pkgsum writes: its state and status, and the
/// summaries. Events on these must never start work (no loops).
pub fn is_own_key(key: &str) -> bool {
    let (_, name) = split_key(key);
    key.split('/').any(|part| part == ".pkgsum") || summary::is_own_file(name)
}

/// Whether `key` names a package with one of `suffixes`: not one of
/// pkgsum's own files, not hidden (see [`Config::wants`]), and a plain
/// key (see [`is_plain_key`]).
pub fn is_package_key(key: &str, suffixes: &[&str]) -> bool {
    let (_, name) = split_key(key);
    is_plain_key(key)
        && !is_own_key(key)
        && !name.starts_with('.')
        && suffixes.iter().any(|s| name.ends_with(s))
}

/// Whether `key` is one a repository can hold as it is: no control
/// character (a NUL or a newline: no store serves one back, and it would
/// forge log lines), and no empty, `.` or `..` segment (a rename to
/// `../../x.tgz` must not make pkgsum read or write outside the prefix).
pub fn is_plain_key(key: &str) -> bool {
    !key.chars().any(char::is_control)
        && key.split('/').enumerate().all(|(i, part)| {
            !matches!(part, "." | "..") && (!part.is_empty() || i == 0 && key.is_empty())
        })
}

/// The state object of the repository at `prefix`.
pub fn state_key(prefix: &str) -> String {
    format!("{prefix}.pkgsum/state")
}

/// Where the pieces of its state are kept.
pub fn pieces_prefix(prefix: &str) -> String {
    format!("{prefix}.pkgsum/pieces/")
}

/// The object of one piece of its state.
pub fn piece_key(prefix: &str, piece: &PieceRef) -> String {
    format!("{}{}", pieces_prefix(prefix), piece.name())
}

/// Where step `step` of joining group `group` of the summary `file` is
/// made while the summary is spliced (`repo/splice.rs`).
pub fn splice_key(prefix: &str, file: &str, group: usize, step: usize) -> String {
    format!("{prefix}.pkgsum/splice/{file}.{group}.{step}")
}

/// Its status object, for people and monitoring.
pub fn status_key(prefix: &str) -> String {
    format!("{prefix}.pkgsum/status.json")
}

/// Its summary in `format`.
pub fn output_key(prefix: &str, format: Compression) -> String {
    format!("{prefix}{}", summary::file_name(format))
}

/// The generation an object of the repository was written with (0 if
/// none).
pub(crate) fn generation_of(meta: &ObjectMeta) -> u64 {
    meta.metadata
        .get(GENERATION)
        .and_then(|g| g.parse().ok())
        .unwrap_or(0)
}
