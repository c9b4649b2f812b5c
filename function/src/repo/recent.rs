//! What this process wrote (or read) and will need again, kept in memory
//! by location and ETag, so that a warm process (a Lambda, `pkgsum serve`,
//! `pkgsum poll`) does not read it back:
//!
//! - [`SUMMARIES`]: the summaries written whole. The next update copies
//!   their unchanged runs from memory instead of reading the file: at
//!   20,000 packages, 13 MiB a format set that a summary under S3's 5 MiB
//!   part cannot splice.
//! - [`ENTRIES`]: the history's entries, which the site shows the newest
//!   of after every update (ten GETs a pass otherwise).
//!
//! An entry is used only for the object its location names while the
//! store gives it the ETag it had when kept: a single PUT's ETag is the
//! MD5 of its bytes, so another writer's object, or one written by
//! another process, misses and is read as before. What each keeps is
//! bounded; the oldest entries go first.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;

/// The summaries written whole, at most 64 MiB of them.
pub(super) static SUMMARIES: Recent = Recent::new(64 << 20);

/// History entries written or read: a few KiB each as a rule (at most
/// 1 MiB), so 4 MiB holds the site's ten newest of several repositories.
pub(super) static ENTRIES: Recent = Recent::new(4 << 20);

/// One process-wide cache: objects by location and ETag, within a budget.
pub(super) struct Recent(Mutex<Kept>);

impl Recent {
    const fn new(budget: usize) -> Recent {
        Recent(Mutex::new(Kept::new(budget)))
    }

    /// Remembers that the object at `location` is `body` with `etag`, in
    /// place of what was kept for it.
    pub(super) fn remember(&self, location: &str, etag: &str, body: Bytes) {
        if let Ok(mut kept) = self.0.lock() {
            kept.remember(location, etag, body);
        }
    }

    /// The bytes kept for `location` if they are the object with `etag`.
    pub(super) fn recalled(&self, location: &str, etag: &str) -> Option<Bytes> {
        self.0.lock().ok()?.recalled(location, etag)
    }
}

/// Entries, oldest first: location, ETag, the bytes; at most `budget`
/// bytes of them.
struct Kept {
    entries: VecDeque<(String, String, Bytes)>,
    bytes: usize,
    budget: usize,
}

impl Kept {
    const fn new(budget: usize) -> Self {
        Kept {
            entries: VecDeque::new(),
            bytes: 0,
            budget,
        }
    }

    /// A body over the budget is not kept; the oldest entries make room.
    fn remember(&mut self, location: &str, etag: &str, body: Bytes) {
        self.forget(location);
        if body.len() > self.budget {
            return;
        }
        self.bytes += body.len();
        self.entries
            .push_back((location.to_owned(), etag.to_owned(), body));
        while self.bytes > self.budget {
            let Some((_, _, oldest)) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= oldest.len();
        }
    }

    fn recalled(&self, location: &str, etag: &str) -> Option<Bytes> {
        self.entries
            .iter()
            .find(|(at, tag, _)| at == location && tag == etag)
            .map(|(_, _, body)| body.clone())
    }

    fn forget(&mut self, location: &str) {
        let found = self.entries.iter().position(|(at, _, _)| at == location);
        if let Some((_, _, body)) = found.and_then(|i| self.entries.remove(i)) {
            self.bytes -= body.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_recalled_only_for_its_location_and_etag() {
        let mut kept = Kept::new(1 << 10);
        let body = Bytes::from_static(b"records");
        kept.remember("s3://b/a", "e1", body.clone());
        assert_eq!(kept.recalled("s3://b/a", "e1"), Some(body));
        assert_eq!(kept.recalled("s3://b/a", "e2"), None);
        assert_eq!(kept.recalled("s3://b/b", "e1"), None);
        // A new write replaces the entry: the old ETag misses.
        kept.remember("s3://b/a", "e2", Bytes::from_static(b"newer"));
        assert_eq!(kept.recalled("s3://b/a", "e1"), None);
        assert_eq!(
            kept.recalled("s3://b/a", "e2"),
            Some(Bytes::from_static(b"newer"))
        );
        assert_eq!(kept.bytes, 5);
    }

    #[test]
    fn the_budget_drops_the_oldest_and_refuses_a_body_over_it() {
        let mut kept = Kept::new(100);
        for name in ["one", "two", "three"] {
            kept.remember(name, "e", Bytes::from(vec![7u8; 34]));
        }
        assert_eq!(kept.recalled("one", "e"), None, "kept over budget");
        assert!(kept.recalled("two", "e").is_some());
        assert!(kept.recalled("three", "e").is_some());
        kept.remember("over", "e", Bytes::from(vec![0u8; 101]));
        assert_eq!(kept.recalled("over", "e"), None);
        assert_eq!(kept.bytes, 68);
        assert_eq!(
            kept.bytes,
            kept.entries.iter().map(|(_, _, b)| b.len()).sum::<usize>()
        );
    }
}
