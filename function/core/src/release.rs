//! Releases: packages pushed together (`pkgsum push`) are published
//! together. Each object of a push carries `x-amz-meta-pkgsum-release:
//! ID/COUNT`, which a pass reads with the header it GETs anyway. A
//! member is held in the state (not in its records) until COUNT members
//! of ID are there; then all of them join the records in one commit, so
//! one generation, one summary, lists them all: a client never sees
//! `app-2.0` without the `libdep-2.0` pushed with it. Notifications may
//! come over many passes, duplicated and out of order: the state counts
//! distinct file names.
//!
//! The tag is outside input: [`Tag::parse`] bounds it (an ID of at most
//! [`ID_BYTES`] plain characters, a COUNT of at most [`MAX_COUNT`]); a
//! malformed tag is ignored with a warning, never trusted.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::excerpt::excerpt;

/// The object metadata name (`x-amz-meta-pkgsum-release`).
pub const METADATA: &str = "pkgsum-release";

/// Longest release ID.
pub const ID_BYTES: usize = 64;

/// Most packages in one release.
pub const MAX_COUNT: u32 = 100_000;

/// A package's release: its ID and how many packages it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub id: String,
    pub count: u32,
}

/// Why a tag was ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "its {METADATA} metadata {excerpt} is not ID/COUNT (an ID of 1 to {ID_BYTES} letters, digits, `.`, `_` or `-`, and a COUNT of 1 to {MAX_COUNT}): published on its own"
)]
pub struct BadTag {
    excerpt: String,
}

impl Tag {
    /// Reads `ID/COUNT`.
    pub fn parse(value: &str) -> Result<Tag, BadTag> {
        let bad = || BadTag {
            excerpt: excerpt(value).to_string(),
        };
        let (id, count) = value.split_once('/').ok_or_else(bad)?;
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if id.is_empty() || id.len() > ID_BYTES || !id.chars().all(plain) {
            return Err(bad());
        }
        let count: u32 = count
            .parse()
            .ok()
            .filter(|n| (1..=MAX_COUNT).contains(n))
            .ok_or_else(bad)?;
        Ok(Tag {
            id: id.to_owned(),
            count,
        })
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.id, self.count)
    }
}

/// A release not yet published, as the status and `verify` report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub id: String,
    /// Members there, and members pushed.
    pub have: usize,
    pub count: u32,
    /// When its oldest member was uploaded (seconds since the epoch).
    pub since: u64,
}

impl Waiting {
    /// Whether it has waited longer than `timeout` seconds by `now`.
    pub fn timed_out(&self, now: u64, timeout: u64) -> bool {
        now.saturating_sub(self.since) > timeout
    }
}

impl fmt::Display for Waiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "release {} has {} of its {} packages, the first uploaded {}: it is published when all are there",
            self.id,
            self.have,
            self.count,
            crate::gate::utc(self.since)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_is_id_and_count() {
        let tag = Tag::parse("ci-4711.a_b/50").unwrap();
        assert_eq!((tag.id.as_str(), tag.count), ("ci-4711.a_b", 50));
        assert_eq!(tag.to_string(), "ci-4711.a_b/50");
    }

    #[test]
    fn hostile_tags_are_refused_and_quoted_short() {
        let long = "x".repeat(ID_BYTES + 1);
        let huge = format!("a/{}", u64::MAX);
        let wide = format!("{}/{}", "\u{1b}[31m".repeat(1000), 1);
        for bad in [
            "", "/", "a", "a/", "/3", "a/0", "a/-1", "a/1/2", "a b/2", "../x/2", "a\n/2", &long,
            &huge, &wide, "a/100001", "a/ 2",
        ] {
            let err = Tag::parse(bad).unwrap_err().to_string();
            assert!(!err.contains('\u{1b}') && !err.contains('\n'), "{err}");
            assert!(err.len() < 600, "{}", err.len());
        }
        assert!(Tag::parse(&format!("{}/{MAX_COUNT}", "x".repeat(ID_BYTES))).is_ok());
    }
}
