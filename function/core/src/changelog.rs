//! What each commit changed in a repository's records, kept in the
//! state's manifest for the history (`pkgsum history`): the PKGNAMEs
//! added, removed and replaced, per generation. Publication can lag the
//! commits (a hold, a gate, passes published together), so a published
//! generation's changes are those of every commit since the one published
//! before it ([`Log::since`]).
//!
//! Bounded: the last [`ENTRIES`] commits, [`NAMES`] names of each kind per
//! commit (the rest counted), each name cut to [`NAME_BYTES`]. Past those,
//! the history says the list is incomplete rather than growing the state.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::stored;

/// Commits the log keeps.
pub const ENTRIES: usize = 64;

/// Names of one kind one entry keeps.
pub const NAMES: usize = 100;

/// Longest name kept (a PKGNAME is under 100 bytes).
pub const NAME_BYTES: usize = 200;

/// Principals one entry (and one publication's changes) keeps.
pub const WHO: usize = 8;

/// Longest principal kept (an AWS role session's is under 100 bytes).
pub const WHO_BYTES: usize = 128;

/// How a commit changed one package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Added,
    Removed,
    Replaced,
}

/// What one commit changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logged {
    pub generation: u64,
    #[serde(deserialize_with = "stored::seq")]
    pub added: Vec<String>,
    #[serde(deserialize_with = "stored::seq")]
    pub removed: Vec<String>,
    #[serde(deserialize_with = "stored::seq")]
    pub replaced: Vec<String>,
    /// Names left out of the lists.
    pub more: u64,
    /// Who made the changes, as the events name them (AWS's
    /// `userIdentity.principalId`): at most [`WHO`]. Stored apart from
    /// the entry ([`Log::who`]), after the fields of older states.
    #[serde(skip)]
    pub who: Vec<String>,
}

impl Logged {
    /// Notes that `who` made this commit's changes.
    pub fn by<'a>(&mut self, who: impl IntoIterator<Item = &'a str>) {
        add_who(&mut self.who, who);
    }

    /// Notes that `name` changed so.
    pub fn note(&mut self, kind: Kind, name: &str) {
        let list = match kind {
            Kind::Added => &mut self.added,
            Kind::Removed => &mut self.removed,
            Kind::Replaced => &mut self.replaced,
        };
        if list.len() < NAMES {
            list.push(cut(name));
        } else {
            self.more += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.replaced.is_empty()
            && self.more == 0
    }
}

/// The last commits' changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Log {
    #[serde(deserialize_with = "stored::seq")]
    entries: VecDeque<Logged>,
    /// The newest generation whose entry was dropped to stay bounded.
    dropped_through: u64,
}

/// The net change between two published generations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub replaced: Vec<String>,
    /// Names changed but not listed.
    pub more: u64,
    /// Whether every commit between them is in the lists.
    pub complete: bool,
    /// Who made them, where the events said (at most [`WHO`]).
    #[serde(default, deserialize_with = "stored::seq")]
    pub who: Vec<String>,
}

impl Log {
    /// Keeps `entry` (if it changed anything), dropping the oldest past
    /// [`ENTRIES`].
    pub fn push(&mut self, entry: Logged) {
        if entry.is_empty() {
            return;
        }
        self.entries.push_back(entry);
        while self.entries.len() > ENTRIES {
            if let Some(old) = self.entries.pop_front() {
                self.dropped_through = self.dropped_through.max(old.generation);
            }
        }
    }

    /// Who made each entry's changes, by generation, for storing.
    pub fn who(&self) -> BTreeMap<u64, Vec<String>> {
        let named = self.entries.iter().filter(|e| !e.who.is_empty());
        named.map(|e| (e.generation, e.who.clone())).collect()
    }

    /// Puts back what [`Log::who`] gave (bounded again: it was read
    /// from the bucket).
    pub fn set_who(&mut self, mut who: BTreeMap<u64, Vec<String>>) {
        for entry in &mut self.entries {
            if let Some(principals) = who.remove(&entry.generation) {
                entry.who.clear();
                add_who(&mut entry.who, principals.iter().map(String::as_str));
            }
        }
    }

    /// What changed after generation `published` up to `generation`
    /// (both of published summaries), net: a package added then removed
    /// is neither, one removed then added again is replaced.
    pub fn since(&self, published: u64, generation: u64) -> Changes {
        let mut net: BTreeMap<&str, Kind> = BTreeMap::new();
        let mut more = 0;
        let window = self
            .entries
            .iter()
            .filter(|e| e.generation > published && e.generation <= generation);
        let mut who = Vec::new();
        for entry in window {
            more += entry.more;
            add_who(&mut who, entry.who.iter().map(String::as_str));
            for name in &entry.added {
                let kind = match net.get(name.as_str()) {
                    Some(Kind::Removed) => Kind::Replaced,
                    Some(kind) => *kind,
                    None => Kind::Added,
                };
                net.insert(name, kind);
            }
            for name in &entry.replaced {
                let kind = match net.get(name.as_str()) {
                    Some(Kind::Added) => Kind::Added,
                    _ => Kind::Replaced,
                };
                net.insert(name, kind);
            }
            for name in &entry.removed {
                match net.get(name.as_str()) {
                    Some(Kind::Added) => {
                        net.remove(name.as_str());
                    }
                    _ => {
                        net.insert(name, Kind::Removed);
                    }
                }
            }
        }
        who.sort();
        let mut changes = Changes {
            more,
            who,
            complete: self.dropped_through <= published,
            ..Changes::default()
        };
        for (name, kind) in net {
            let list = match kind {
                Kind::Added => &mut changes.added,
                Kind::Removed => &mut changes.removed,
                Kind::Replaced => &mut changes.replaced,
            };
            list.push(name.to_owned());
        }
        changes
    }
}

/// `text` as a principal: cut to [`WHO_BYTES`] at a character boundary;
/// none when empty.
pub fn principal(text: &str) -> Option<String> {
    Some(cut_to(text, WHO_BYTES)).filter(|p| !p.is_empty())
}

/// Adds each principal of `new` not in `who` (as [`principal`] makes
/// it), while `who` holds fewer than [`WHO`].
pub fn add_who<'a>(who: &mut Vec<String>, new: impl IntoIterator<Item = &'a str>) {
    for principal in new.into_iter().filter_map(principal) {
        if who.len() < WHO && !who.contains(&principal) {
            who.push(principal);
        }
    }
}

/// `name` cut to [`NAME_BYTES`] at a character boundary.
fn cut(name: &str) -> String {
    cut_to(name, NAME_BYTES)
}

/// `text` cut to `bytes` at a character boundary.
fn cut_to(text: &str, bytes: usize) -> String {
    let mut end = text.len().min(bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(generation: u64, added: &[&str], removed: &[&str], replaced: &[&str]) -> Logged {
        let own = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect();
        Logged {
            generation,
            added: own(added),
            removed: own(removed),
            replaced: own(replaced),
            more: 0,
            who: Vec::new(),
        }
    }

    #[test]
    fn changes_between_publications_are_net() {
        let mut log = Log::default();
        log.push(entry(2, &["a-1", "b-1"], &[], &[]));
        log.push(entry(3, &[], &["b-1", "old-1"], &["c-2"]));
        log.push(entry(4, &["old-1"], &[], &[]));
        log.push(entry(5, &[], &[], &[]));
        let changes = log.since(1, 4);
        assert_eq!(changes.added, ["a-1"]);
        assert_eq!(changes.removed, Vec::<String>::new());
        assert_eq!(changes.replaced, ["c-2", "old-1"]);
        assert!(changes.complete);
        let later = log.since(3, 4);
        assert_eq!(later.added, ["old-1"]);
        assert_eq!(log.entries.len(), 3, "an empty entry is not kept");
    }

    #[test]
    fn the_log_stays_bounded_and_says_when_it_lost_some() {
        let mut log = Log::default();
        for g in 1..=(ENTRIES as u64 + 10) {
            let mut e = Logged {
                generation: g,
                ..Logged::default()
            };
            for i in 0..(NAMES + 5) {
                e.note(Kind::Added, &format!("{}-{g}-{i}", "x".repeat(300)));
            }
            log.push(e);
        }
        assert_eq!(log.entries.len(), ENTRIES);
        assert!(
            log.entries
                .iter()
                .all(|e| e.added.len() == NAMES && e.more == 5)
        );
        assert!(log.entries[0].added[0].len() == NAME_BYTES);
        assert!(!log.since(5, 100).complete);
        assert!(log.since(10, 100).complete);
    }

    #[test]
    fn who_is_bounded_and_joined_over_a_publication() {
        let mut log = Log::default();
        let mut first = entry(2, &["a-1"], &[], &[]);
        first.by(["AWS:AROA1:ci", "AWS:AROA1:ci", ""]);
        log.push(first);
        let mut second = entry(3, &["b-1"], &[], &[]);
        let long = "p".repeat(500);
        let many: Vec<String> = (0..20).map(|i| format!("user{i:02}")).collect();
        second.by([long.as_str()]);
        second.by(many.iter().map(String::as_str));
        assert_eq!(second.who.len(), WHO);
        assert_eq!(second.who[0].len(), WHO_BYTES);
        log.push(second);
        let changes = log.since(1, 3);
        assert_eq!(changes.who.len(), WHO);
        assert_eq!(changes.who[0], "AWS:AROA1:ci");
        assert_eq!(log.since(1, 2).who, ["AWS:AROA1:ci"]);
        // Stored apart and put back, bounded again.
        let mut stored = log.who();
        assert_eq!(stored.len(), 2);
        stored.insert(3, (0..50).map(|i| format!("u{i}")).collect());
        log.set_who(stored);
        assert_eq!(log.since(2, 3).who.len(), WHO);
    }
}
