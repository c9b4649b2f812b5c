//! The summary state of one repository: file name → (record, size, change
//! token), plus the packages that could not be read and why.
//!
//! It is a cache of what the repository holds, never the truth: losing it
//! costs a full re-read, nothing more. Changes are merged with
//! [`State::apply`]; every effective merge advances the generation number
//! that published outputs carry. Stored as a small versioned binary file.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::limit::Limited;

/// An indexed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// Its `pkg_info -X` record, blank line included.
    #[serde(with = "serde_bytes")]
    pub record: Vec<u8>,
    /// Its size in bytes.
    pub size: u64,
    /// What identifies this version of the file: an ETag, or mtime and
    /// inode for a local file.
    pub token: String,
    /// What pkg_info would warn about it ("build information missing").
    pub warnings: Vec<String>,
}

/// A package that could not be read, remembered so an unchanged bad file
/// is reported again without being read again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub size: u64,
    pub token: String,
    /// Why it could not be indexed.
    pub error: String,
}

/// One observed change to a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The file is there and was read.
    Indexed { name: String, package: Package },
    /// The file is there but is not a readable package.
    Failed { name: String, failure: Failure },
    /// The file is gone.
    Removed { name: String },
}

/// The state of a repository.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    generation: u64,
    /// The generation at which the records last changed: outputs of this
    /// generation or later already say what this state would say.
    records_generation: u64,
    packages: BTreeMap<String, Package>,
    failures: BTreeMap<String, Failure>,
    /// The package suffixes the repository has been indexed with, so a
    /// run that forgets `--suffix .tbz` does not drop those packages.
    suffixes: BTreeSet<String>,
}

/// Version 2 of the stored state, read and carried forward.
#[derive(Deserialize)]
struct StateV2 {
    generation: u64,
    records_generation: u64,
    packages: BTreeMap<String, PackageV2>,
    failures: BTreeMap<String, Failure>,
}

/// A package as version 2 kept it: no warnings.
#[derive(Deserialize)]
struct PackageV2 {
    #[serde(with = "serde_bytes")]
    record: Vec<u8>,
    size: u64,
    token: String,
}

impl From<StateV2> for State {
    fn from(old: StateV2) -> State {
        let packages = old
            .packages
            .into_iter()
            .map(|(name, p)| {
                let package = Package {
                    record: p.record,
                    size: p.size,
                    token: p.token,
                    warnings: Vec::new(),
                };
                (name, package)
            })
            .collect();
        State {
            generation: old.generation,
            records_generation: old.records_generation,
            packages,
            failures: old.failures,
            suffixes: BTreeSet::new(),
        }
    }
}

/// A file as a listing of the repository shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub size: u64,
    pub token: String,
}

/// What one pass must do to bring the state up to a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// New or changed files: their headers must be read.
    pub read: Vec<Listed>,
    /// Files the state knows that the listing no longer has.
    pub removed: Vec<String>,
    /// Files the state already reflects.
    pub unchanged: usize,
}

/// First bytes of a stored state; the byte after them is the version.
const MAGIC: &[u8] = b"pkgsum-state\n";
const VERSION: u8 = 3;

/// Default bound on a stored state's decoded size (about 200,000 records).
pub const DEFAULT_STATE_LIMIT: u64 = 1 << 30;

impl State {
    /// The generation: 0 for an empty new state, +1 per effective change.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The generation at which the records (the summary) last changed.
    pub fn records_generation(&self) -> u64 {
        self.records_generation
    }

    /// Number of indexed packages.
    pub fn len(&self) -> usize {
        self.packages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packages.is_empty()
    }

    /// Indexed packages, sorted bytewise by file name.
    pub fn packages(&self) -> impl Iterator<Item = (&str, &Package)> {
        self.packages.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Packages that could not be read, sorted by file name.
    pub fn failures(&self) -> impl Iterator<Item = (&str, &Failure)> {
        self.failures.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn package(&self, name: &str) -> Option<&Package> {
        self.packages.get(name)
    }

    pub fn failure(&self, name: &str) -> Option<&Failure> {
        self.failures.get(name)
    }

    /// Whether the state already reflects this version of the file, read
    /// successfully or not: then it need not be read again.
    pub fn is_current(&self, name: &str, size: u64, token: &str) -> bool {
        let same = |s: u64, t: &str| s == size && t == token;
        self.packages
            .get(name)
            .is_some_and(|p| same(p.size, &p.token))
            || self
                .failures
                .get(name)
                .is_some_and(|f| same(f.size, &f.token))
    }

    /// The package suffixes remembered from earlier runs.
    pub fn suffixes(&self) -> impl Iterator<Item = &str> {
        self.suffixes.iter().map(String::as_str)
    }

    /// Adds to the remembered suffixes; returns whether any was new.
    pub fn remember_suffixes<'a>(&mut self, suffixes: impl IntoIterator<Item = &'a str>) -> bool {
        let before = self.suffixes.len();
        self.suffixes
            .extend(suffixes.into_iter().map(str::to_owned));
        self.suffixes.len() != before
    }

    /// Every file name the state knows, indexed or failed.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.packages
            .keys()
            .chain(self.failures.keys())
            .map(String::as_str)
    }

    /// Compares a full listing with the state.
    pub fn plan(&self, listing: &[Listed]) -> Plan {
        let mut plan = Plan::default();
        let mut present = std::collections::BTreeSet::new();
        for file in listing {
            present.insert(file.name.as_str());
            if self.is_current(&file.name, file.size, &file.token) {
                plan.unchanged += 1;
            } else {
                plan.read.push(file.clone());
            }
        }
        plan.removed = self
            .names()
            .filter(|name| !present.contains(name))
            .map(str::to_owned)
            .collect();
        plan
    }

    /// Whether merging `change` would alter the summary (records), as
    /// opposed to only tokens or remembered failures.
    pub fn changes_records(&self, change: &Change) -> bool {
        match change {
            Change::Indexed { name, package } => self
                .packages
                .get(name)
                .is_none_or(|p| p.record != package.record),
            Change::Failed { name, .. } | Change::Removed { name } => {
                self.packages.contains_key(name)
            }
        }
    }

    /// Moves the generation past `published`, the highest generation the
    /// repository's published files carry, if it is not already past it,
    /// and marks the summary as to be republished. A state recreated after
    /// a loss restarts above what is out there, so the publication guard
    /// (never replace a newer generation) cannot lock it out. Returns
    /// whether the generation moved.
    pub fn advance_past(&mut self, published: u64) -> bool {
        if self.generation > published {
            return false;
        }
        self.generation = published + 1;
        self.records_generation = self.generation;
        true
    }

    /// Merges changes; returns whether anything changed, in which case the
    /// generation has advanced by one.
    pub fn apply<I: IntoIterator<Item = Change>>(&mut self, changes: I) -> bool {
        let (mut changed, mut records) = (false, false);
        for change in changes {
            records |= self.changes_records(&change);
            changed |= self.apply_one(change);
        }
        if changed {
            self.generation += 1;
        }
        if records {
            self.records_generation = self.generation;
        }
        changed
    }

    fn apply_one(&mut self, change: Change) -> bool {
        match change {
            Change::Indexed { name, package } => {
                let dropped = self.failures.remove(&name).is_some();
                let old = self.packages.insert(name, package.clone());
                dropped || old.as_ref() != Some(&package)
            }
            Change::Failed { name, failure } => {
                let dropped = self.packages.remove(&name).is_some();
                let old = self.failures.insert(name, failure.clone());
                dropped || old.as_ref() != Some(&failure)
            }
            Change::Removed { name } => {
                let a = self.packages.remove(&name).is_some();
                let b = self.failures.remove(&name).is_some();
                a || b
            }
        }
    }

    /// The uncompressed `pkg_summary`: all records sorted by file name.
    pub fn summary(&self) -> Vec<u8> {
        let len = self.packages.values().map(|p| p.record.len()).sum();
        let mut out = Vec::with_capacity(len);
        for package in self.packages.values() {
            out.extend_from_slice(&package.record);
        }
        out
    }

    /// Serializes: magic, version byte, then zstd-compressed postcard.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let body = postcard::to_stdvec(self).map_err(|e| Error::State(e.to_string()))?;
        let packed = zstd::bulk::compress(&body, 3).map_err(Error::Io)?;
        let mut out = Vec::with_capacity(MAGIC.len() + 1 + packed.len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&packed);
        Ok(out)
    }

    /// Parses a stored state, decoding at most `limit` bytes.
    pub fn from_bytes(bytes: &[u8], limit: u64) -> Result<State> {
        let rest = bytes
            .strip_prefix(MAGIC)
            .ok_or_else(|| Error::State("not a pkgsum state (bad magic)".to_owned()))?;
        let (&version, packed) = rest
            .split_first()
            .ok_or_else(|| Error::State("no version byte".to_owned()))?;
        if version != VERSION && version != 2 {
            return Err(Error::State(format!(
                "unsupported state version {version} (this pkgsum reads versions 2 and {VERSION})"
            )));
        }
        let decoder = crate::compression::Compression::Zstd
            .decoder(packed)
            .map_err(|e| crate::error::classify(e, "state"))?;
        let mut body = Vec::new();
        Limited::new(decoder, limit)
            .read_to_end(&mut body)
            .map_err(|e| crate::error::classify(e, "state"))?;
        let state = match version {
            2 => postcard::from_bytes::<StateV2>(&body).map(State::from),
            _ => postcard::from_bytes(&body),
        };
        state.map_err(|e| Error::State(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(record: &str, token: &str) -> Package {
        Package {
            record: record.as_bytes().to_vec(),
            size: 10,
            token: token.to_owned(),
            warnings: Vec::new(),
        }
    }

    fn indexed(name: &str, record: &str, token: &str) -> Change {
        Change::Indexed {
            name: name.to_owned(),
            package: package(record, token),
        }
    }

    #[test]
    fn apply_sorts_replaces_and_removes() {
        let mut state = State::default();
        assert!(state.apply([
            indexed("b-1.tgz", "PKGNAME=b-1\n\n", "1"),
            indexed("a-1.tgz", "PKGNAME=a-1\n\n", "1"),
        ]));
        assert_eq!(state.generation(), 1);
        assert_eq!(state.summary(), b"PKGNAME=a-1\n\nPKGNAME=b-1\n\n");

        assert!(state.apply([indexed("a-1.tgz", "PKGNAME=a-1\nX=y\n\n", "2")]));
        assert!(state.apply([Change::Removed {
            name: "b-1.tgz".to_owned()
        }]));
        assert_eq!(state.summary(), b"PKGNAME=a-1\nX=y\n\n");
        assert_eq!(state.generation(), 3);
    }

    #[test]
    fn repeated_changes_do_not_advance_the_generation() {
        let mut state = State::default();
        state.apply([indexed("a-1.tgz", "PKGNAME=a-1\n\n", "1")]);
        assert!(!state.apply([indexed("a-1.tgz", "PKGNAME=a-1\n\n", "1")]));
        assert!(!state.apply([Change::Removed {
            name: "zzz.tgz".to_owned()
        }]));
        assert_eq!(state.generation(), 1);
    }

    #[test]
    fn records_generation_moves_only_with_the_summary() {
        let mut state = State::default();
        state.apply([indexed("a-1.tgz", "PKGNAME=a-1\n\n", "1")]);
        assert_eq!((state.generation(), state.records_generation()), (1, 1));
        // A new token with the same record, or a new failure: not the summary.
        state.apply([indexed("a-1.tgz", "PKGNAME=a-1\n\n", "2")]);
        state.apply([Change::Failed {
            name: "bad.tgz".to_owned(),
            failure: Failure {
                size: 1,
                token: "1".to_owned(),
                error: "empty file".to_owned(),
            },
        }]);
        assert_eq!((state.generation(), state.records_generation()), (3, 1));
        state.apply([Change::Removed {
            name: "a-1.tgz".to_owned(),
        }]);
        assert_eq!((state.generation(), state.records_generation()), (4, 4));
    }

    #[test]
    fn advancing_past_published_outputs_republishes() {
        let mut state = State::default();
        state.apply([indexed("a-1.tgz", "PKGNAME=a-1\n\n", "1")]);
        assert!(state.advance_past(7));
        assert_eq!((state.generation(), state.records_generation()), (8, 8));
        assert!(!state.advance_past(7));
        assert!(!state.advance_past(3));
        assert_eq!(state.generation(), 8);
    }

    #[test]
    fn a_failure_replaces_the_record_and_is_current() {
        let mut state = State::default();
        state.apply([indexed("a-1.tgz", "PKGNAME=a-1\n\n", "1")]);
        state.apply([Change::Failed {
            name: "a-1.tgz".to_owned(),
            failure: Failure {
                size: 3,
                token: "2".to_owned(),
                error: "truncated".to_owned(),
            },
        }]);
        assert!(state.is_empty());
        assert!(state.is_current("a-1.tgz", 3, "2"));
        assert!(!state.is_current("a-1.tgz", 3, "1"));
    }

    #[test]
    fn plan_reads_only_new_and_changed_files() {
        let mut state = State::default();
        state.apply([
            indexed("keep.tgz", "PKGNAME=k\n\n", "1"),
            indexed("change.tgz", "PKGNAME=c\n\n", "1"),
            indexed("gone.tgz", "PKGNAME=g\n\n", "1"),
        ]);
        let listed = |name: &str, token: &str| Listed {
            name: name.to_owned(),
            size: 10,
            token: token.to_owned(),
        };
        let listing = [
            listed("keep.tgz", "1"),
            listed("change.tgz", "2"),
            listed("new.tgz", "1"),
        ];
        let plan = state.plan(&listing);
        assert_eq!(plan.read, vec![listing[1].clone(), listing[2].clone()]);
        assert_eq!(plan.removed, vec!["gone.tgz".to_owned()]);
        assert_eq!(plan.unchanged, 1);
    }

    #[test]
    fn bytes_round_trip_and_reject_other_versions() {
        let mut state = State::default();
        state.apply([Change::Indexed {
            name: "a b+ü.tgz".to_owned(),
            package: Package {
                record: b"PKGNAME=a\xff-1\n\n".to_vec(),
                size: 1,
                token: "\"etag\"".to_owned(),
                warnings: Vec::new(),
            },
        }]);
        let bytes = state.to_bytes().unwrap();
        assert_eq!(
            State::from_bytes(&bytes, DEFAULT_STATE_LIMIT).unwrap(),
            state
        );

        // A version-2 state (before suffixes were kept) still reads.
        let v2 = {
            let packages: BTreeMap<&String, (&serde_bytes::Bytes, u64, &String)> = state
                .packages
                .iter()
                .map(|(n, p)| (n, (serde_bytes::Bytes::new(&p.record), p.size, &p.token)))
                .collect();
            let old = (
                state.generation,
                state.records_generation,
                packages,
                &state.failures,
            );
            let packed = zstd::bulk::compress(&postcard::to_stdvec(&old).unwrap(), 3).unwrap();
            [MAGIC, &[2], &packed].concat()
        };
        assert_eq!(State::from_bytes(&v2, DEFAULT_STATE_LIMIT).unwrap(), state);

        let mut other = bytes.clone();
        other[MAGIC.len()] = 9;
        let err = State::from_bytes(&other, DEFAULT_STATE_LIMIT).unwrap_err();
        assert!(
            err.to_string().contains("unsupported state version 9"),
            "{err}"
        );
        assert!(State::from_bytes(b"garbage", DEFAULT_STATE_LIMIT).is_err());
        assert!(matches!(
            State::from_bytes(&bytes, 4),
            Err(Error::TooLarge { .. })
        ));
    }
}
