//! The summary state of one repository: file name → (record, size, change
//! token), plus the packages that could not be read and why.
//!
//! It is a cache of what the repository holds, never the truth: losing it
//! costs a full re-read, nothing more. Changes are merged with
//! [`State::apply`]; every effective merge advances the generation number
//! that published outputs carry.
//!
//! It is stored as a small manifest (generations, failures, warnings, and
//! the list of [`piece`]s) naming immutable pieces that hold
//! the packages. A state read from its manifest holds no packages until
//! the pieces a pass needs are [`load`](State::load)ed: an update touches
//! the pieces of its names, and [`cut`](State::cut) stores again only the
//! pieces it changed.
use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Bound, Range};

use serde::{Deserialize, Serialize};

use crate::changelog::{Changes, Kind, Log, Logged};
use crate::checks::Findings;
use crate::chunk;
use crate::error::{Error, Result};
use crate::excerpt::bounded;
pub use crate::piece::Package;
use crate::piece::{self, PieceRef};
use crate::release::{Tag, Waiting};
use crate::stored;
use crate::trust::SignatureVerdict;

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
    /// The file is there and was read; `verdict` is what the signature
    /// policy found (none when signatures are ignored).
    Indexed {
        name: String,
        package: Package,
        verdict: Option<SignatureVerdict>,
    },
    /// The file is there but is not a readable package.
    Failed { name: String, failure: Failure },
    /// The file is gone.
    Removed { name: String },
    /// The file is there and was read, and belongs to a release: it is
    /// held until the release is whole (see [`crate::release`]).
    Staged { name: String, staged: Staged },
}

impl Staged {
    /// The change it makes once its release is whole.
    pub fn into_indexed(self, name: String) -> Change {
        Change::Indexed {
            name,
            package: self.package,
            verdict: self.verdict,
        }
    }
}

/// A package held until its release is whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staged {
    pub tag: Tag,
    pub package: Package,
    pub verdict: Option<SignatureVerdict>,
    /// When its file was uploaded, in seconds since the epoch.
    pub uploaded: u64,
}

impl Change {
    /// The file name it is about.
    pub fn name(&self) -> &str {
        match self {
            Change::Indexed { name, .. }
            | Change::Failed { name, .. }
            | Change::Removed { name }
            | Change::Staged { name, .. } => name,
        }
    }
}

/// The state of a repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    generation: u64,
    /// The generation at which the records last changed: outputs of this
    /// generation or later already say what this state would say.
    records_generation: u64,
    /// The packages of the loaded pieces (all of them when there are no
    /// pieces: a new state, or one read from a version 2 or 3 file).
    packages: BTreeMap<String, Package>,
    failures: BTreeMap<String, Failure>,
    /// The package suffixes the repository has been indexed with, so a
    /// run that forgets `--suffix .tbz` does not drop those packages.
    suffixes: BTreeSet<String>,
    /// Packages' pkg_info warnings, for the status object (kept in the
    /// manifest, so it needs no piece): of [`KEPT_WARNED`] packages at most,
    /// each package's own are in its piece.
    warnings: BTreeMap<String, Vec<String>>,
    /// How many packages with warnings `warnings` leaves out.
    warned_more: u64,
    /// Every package's signature verdict, for the status object (in the
    /// manifest too); empty when signatures are ignored.
    signatures: BTreeMap<String, SignatureVerdict>,
    /// The fingerprint of the policy and keys the verdicts were given
    /// under (empty: signatures ignored).
    trust: String,
    /// Warnings about packages against the whole repository (duplicate
    /// PKGNAMEs, other platforms, unresolved DEPENDS), as the last pass
    /// with every record at hand found them; a package's are dropped when
    /// it changes or goes.
    repository_warnings: Vec<(String, String)>,
    /// How many more that pass found than it kept.
    repository_more: u64,
    /// The generation those warnings were found at.
    repository_checked: u64,
    /// Set while publication is held (`pkgsum hold`, a rollback): passes
    /// still commit, nothing is published.
    hold: Option<Hold>,
    /// What the last commits changed, for the history.
    log: Log,
    /// Packages held until their release is whole, by file name.
    pending: BTreeMap<String, Staged>,
    /// Releases published, by ID, with the generation that published
    /// them: a member read again later is not held again.
    released: BTreeMap<String, u64>,
    /// The pieces as last stored, in order.
    pieces: Vec<PieceRef>,
    /// Which of them have their packages in `packages`.
    loaded: Vec<bool>,
    /// Which of them hold packages changed since.
    dirty: BTreeSet<usize>,
}

/// What the manifest of a stored state holds.
#[derive(Serialize, Deserialize)]
struct Manifest {
    generation: u64,
    records_generation: u64,
    #[serde(deserialize_with = "stored::map")]
    failures: BTreeMap<String, Failure>,
    #[serde(deserialize_with = "stored::seq")]
    suffixes: BTreeSet<String>,
    #[serde(deserialize_with = "stored::map_of_lines")]
    warnings: BTreeMap<String, Vec<String>>,
    warned_more: u64,
    #[serde(deserialize_with = "stored::seq")]
    pieces: Vec<PieceRef>,
    #[serde(deserialize_with = "stored::map")]
    signatures: BTreeMap<String, SignatureVerdict>,
    trust: String,
    #[serde(deserialize_with = "stored::seq")]
    repository_warnings: Vec<(String, String)>,
    repository_more: u64,
    repository_checked: u64,
    hold: Option<Hold>,
    log: Log,
    #[serde(deserialize_with = "stored::map")]
    pending: BTreeMap<String, Staged>,
    #[serde(deserialize_with = "stored::map")]
    released: BTreeMap<String, u64>,
}

/// What a manifest stores after a version 7 manifest's fields (postcard
/// writes a struct as its fields in order, so a version 7 manifest is
/// this without [`Extension`]).
#[derive(Serialize, Deserialize)]
struct Stored {
    manifest: Manifest,
    extension: Extension,
}

/// Fields added in version 8.
#[derive(Serialize, Deserialize, Default)]
struct Extension {
    /// Who made each logged commit's changes, by generation.
    #[serde(deserialize_with = "stored::map")]
    who: BTreeMap<u64, Vec<String>>,
}

/// Why and since when publication is held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// Seconds since the epoch.
    pub since: u64,
    /// Who or what held it, as people read it (`pkgsum hold`, a rollback
    /// to generation 12).
    pub reason: String,
}

/// A version 6 manifest: before publication could be held.
#[derive(Deserialize)]
struct ManifestV6 {
    generation: u64,
    records_generation: u64,
    #[serde(deserialize_with = "stored::map")]
    failures: BTreeMap<String, Failure>,
    #[serde(deserialize_with = "stored::seq")]
    suffixes: BTreeSet<String>,
    #[serde(deserialize_with = "stored::map_of_lines")]
    warnings: BTreeMap<String, Vec<String>>,
    warned_more: u64,
    #[serde(deserialize_with = "stored::seq")]
    pieces: Vec<PieceRef>,
    #[serde(deserialize_with = "stored::map")]
    signatures: BTreeMap<String, SignatureVerdict>,
    trust: String,
    #[serde(deserialize_with = "stored::seq")]
    repository_warnings: Vec<(String, String)>,
    repository_more: u64,
    repository_checked: u64,
}

impl From<ManifestV6> for Manifest {
    fn from(old: ManifestV6) -> Manifest {
        Manifest {
            generation: old.generation,
            records_generation: old.records_generation,
            failures: old.failures,
            suffixes: old.suffixes,
            warnings: old.warnings,
            warned_more: old.warned_more,
            pieces: old.pieces,
            signatures: old.signatures,
            trust: old.trust,
            repository_warnings: old.repository_warnings,
            repository_more: old.repository_more,
            repository_checked: old.repository_checked,
            hold: None,
            log: Log::default(),
            pending: BTreeMap::new(),
            released: BTreeMap::new(),
        }
    }
}

/// A version 5 manifest: before warnings were kept only in part.
#[derive(Deserialize)]
struct ManifestV5 {
    generation: u64,
    records_generation: u64,
    #[serde(deserialize_with = "stored::map")]
    failures: BTreeMap<String, Failure>,
    #[serde(deserialize_with = "stored::seq")]
    suffixes: BTreeSet<String>,
    #[serde(deserialize_with = "stored::map_of_lines")]
    warnings: BTreeMap<String, Vec<String>>,
    #[serde(deserialize_with = "stored::seq")]
    pieces: Vec<PieceRef>,
    #[serde(deserialize_with = "stored::map")]
    signatures: BTreeMap<String, SignatureVerdict>,
    trust: String,
    #[serde(deserialize_with = "stored::seq")]
    repository_warnings: Vec<(String, String)>,
    repository_checked: u64,
}

impl From<ManifestV5> for Manifest {
    fn from(old: ManifestV5) -> Manifest {
        Manifest {
            generation: old.generation,
            records_generation: old.records_generation,
            failures: old.failures,
            suffixes: old.suffixes,
            warnings: old.warnings,
            warned_more: 0,
            pieces: old.pieces,
            signatures: old.signatures,
            trust: old.trust,
            repository_warnings: old.repository_warnings,
            repository_more: 0,
            repository_checked: old.repository_checked,
            hold: None,
            log: Log::default(),
            pending: BTreeMap::new(),
            released: BTreeMap::new(),
        }
    }
}

/// A version 4 manifest: before signature verdicts.
#[derive(Deserialize)]
struct ManifestV4 {
    generation: u64,
    records_generation: u64,
    #[serde(deserialize_with = "stored::map")]
    failures: BTreeMap<String, Failure>,
    #[serde(deserialize_with = "stored::seq")]
    suffixes: BTreeSet<String>,
    #[serde(deserialize_with = "stored::map_of_lines")]
    warnings: BTreeMap<String, Vec<String>>,
    #[serde(deserialize_with = "stored::seq")]
    pieces: Vec<PieceRef>,
}

impl From<ManifestV4> for Manifest {
    fn from(old: ManifestV4) -> Manifest {
        Manifest {
            generation: old.generation,
            records_generation: old.records_generation,
            failures: old.failures,
            suffixes: old.suffixes,
            warnings: old.warnings,
            warned_more: 0,
            pieces: old.pieces,
            signatures: BTreeMap::new(),
            trust: String::new(),
            repository_warnings: Vec::new(),
            repository_more: 0,
            repository_checked: 0,
            hold: None,
            log: Log::default(),
            pending: BTreeMap::new(),
            released: BTreeMap::new(),
        }
    }
}

/// A version 3 state: every package in one object.
#[derive(Deserialize)]
struct StateV3 {
    generation: u64,
    records_generation: u64,
    #[serde(deserialize_with = "stored::map")]
    packages: BTreeMap<String, Package>,
    #[serde(deserialize_with = "stored::map")]
    failures: BTreeMap<String, Failure>,
    #[serde(deserialize_with = "stored::seq")]
    suffixes: BTreeSet<String>,
}

impl From<StateV3> for State {
    fn from(old: StateV3) -> State {
        let warnings = old
            .packages
            .iter()
            .filter(|(_, p)| !p.warnings.is_empty())
            .map(|(name, p)| (name.clone(), p.warnings.clone()))
            .collect();
        State {
            generation: old.generation,
            records_generation: old.records_generation,
            packages: old.packages,
            failures: old.failures,
            suffixes: old.suffixes,
            warnings,
            ..State::default()
        }
    }
}

impl Cut {
    fn add(&mut self, made: Vec<(PieceRef, Vec<u8>)>) {
        for (piece, bytes) in made {
            self.pieces.push(piece.clone());
            self.loaded.push(true);
            self.made.push((piece, bytes));
        }
    }
}

/// A state cut into pieces, ready to store: the manifest, the pieces it
/// names that are new, and the pieces it no longer names.
#[derive(Debug, Clone)]
pub struct Cut {
    pub manifest: Vec<u8>,
    pub pieces: Vec<PieceRef>,
    /// The new pieces and their bytes.
    pub made: Vec<(PieceRef, Vec<u8>)>,
    pub dropped: Vec<PieceRef>,
    /// Which of `pieces` have their packages loaded.
    loaded: Vec<bool>,
}

/// Version 2 of the stored state, read and carried forward.
#[derive(Deserialize)]
struct StateV2 {
    generation: u64,
    records_generation: u64,
    #[serde(deserialize_with = "stored::map")]
    packages: BTreeMap<String, PackageV2>,
    #[serde(deserialize_with = "stored::map")]
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
        State::from(StateV3 {
            generation: old.generation,
            records_generation: old.records_generation,
            packages,
            failures: old.failures,
            suffixes: BTreeSet::new(),
        })
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
const VERSION: u8 = 8;

/// Default bound on a stored manifest's decoded size. The manifest names
/// the pieces (about 120 bytes each, one per 128 KiB of records) and holds
/// failures, verdicts and the warnings kept: a few MiB at 200,000
/// packages. Anything larger is not one pkgsum wrote, and is a lost state.
pub const DEFAULT_STATE_LIMIT: u64 = 64 << 20;

/// Most elements (failures, verdicts, pieces, warnings...) a manifest may
/// decode to: each costs about 100 bytes of memory however few bytes it
/// took to store, so this bounds what a forged manifest can make.
pub const ELEMENTS: u64 = 500_000;

/// Packages whose pkg_info warnings the manifest keeps, for the status:
/// the rest are counted (and each package's are in its piece).
pub const KEPT_WARNED: usize = 1000;

/// Most pkg_info warnings kept of one package.
pub const MAX_PACKAGE_WARNINGS: usize = 16;

/// Most packages held for incomplete releases; past it, a member is
/// recorded as unreadable, saying why.
pub const MAX_PENDING: usize = 20_000;

/// Releases remembered as published.
pub const RELEASED_KEPT: usize = 4096;

impl State {
    /// The generation: 0 for an empty new state, +1 per effective change.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The generation at which the records (the summary) last changed.
    pub fn records_generation(&self) -> u64 {
        self.records_generation
    }

    /// Number of indexed packages, loaded or not.
    pub fn len(&self) -> usize {
        let unloaded: usize = self
            .pieces
            .iter()
            .zip(&self.loaded)
            .filter(|(_, loaded)| !**loaded)
            .map(|(piece, _)| piece.count as usize)
            .sum();
        self.packages.len() + unloaded
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Packages' pkg_info warnings, sorted by file name: those of
    /// [`KEPT_WARNED`] packages at most.
    pub fn warnings(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.warnings.iter().map(|(k, v)| (k.as_str(), &v[..]))
    }

    /// How many packages with warnings [`State::warnings`] leaves out.
    pub fn warned_more(&self) -> u64 {
        self.warned_more
    }

    /// Keeps the warnings of the first [`KEPT_WARNED`] packages that have
    /// any, and counts the rest: exact once every piece is loaded (a
    /// listing pass), where merges only keep the count right.
    pub fn recount_warnings(&mut self) {
        if !self.is_loaded() {
            return;
        }
        let mut warned = self.packages.iter().filter(|(_, p)| !p.warnings.is_empty());
        self.warnings = warned
            .by_ref()
            .take(KEPT_WARNED)
            .map(|(name, p)| (name.clone(), p.warnings.clone()))
            .collect();
        self.warned_more = warned.count() as u64;
    }

    /// Every indexed package's signature verdict, sorted by file name.
    pub fn verdicts(&self) -> impl Iterator<Item = (&str, &SignatureVerdict)> {
        self.signatures.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The fingerprint of the signature policy the verdicts were given
    /// under ([`crate::trust::Trust::fingerprint`]).
    pub fn trust(&self) -> &str {
        &self.trust
    }

    /// Records that every name has been judged under `fingerprint`;
    /// returns whether that changed (and if so, advances the generation).
    pub fn set_trust(&mut self, fingerprint: &str) -> bool {
        if self.trust == fingerprint {
            return false;
        }
        fingerprint.clone_into(&mut self.trust);
        self.generation = self.generation.saturating_add(1);
        true
    }

    /// The warnings about packages against the whole repository that
    /// were kept, and the generation they were found at.
    pub fn repository_warnings(&self) -> (&[(String, String)], u64) {
        (&self.repository_warnings, self.repository_checked)
    }

    /// What the last check of the whole repository found, as it found it
    /// (the warnings kept, and how many more).
    pub fn repository_findings(&self) -> Findings {
        Findings {
            warnings: self.repository_warnings.clone(),
            more: usize::try_from(self.repository_more).unwrap_or(usize::MAX),
        }
    }

    /// How many warnings against the whole repository were found beyond
    /// those kept.
    pub fn repository_more(&self) -> u64 {
        self.repository_more
    }

    /// Keeps what a pass with every record at hand found (sorted);
    /// returns whether that changed (and if so, advances the generation).
    pub fn set_repository_warnings(&mut self, found: Findings) -> bool {
        let more = found.more as u64;
        if self.repository_warnings == found.warnings && self.repository_more == more {
            return false;
        }
        self.repository_warnings = found.warnings;
        self.repository_more = more;
        self.generation = self.generation.saturating_add(1);
        self.repository_checked = self.generation;
        true
    }

    /// Indexed packages of the loaded pieces (all of them once
    /// [`is_loaded`](State::is_loaded)), sorted bytewise by file name.
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
            || self
                .pending
                .get(name)
                .is_some_and(|s| same(s.package.size, &s.package.token))
    }

    /// The ETag (or other token) the state holds for `name`, indexed or
    /// failed.
    pub fn token(&self, name: &str) -> Option<&str> {
        let package = self.packages.get(name).map(|p| p.token.as_str());
        let held = || self.pending.get(name).map(|s| s.package.token.as_str());
        package
            .or_else(|| self.failures.get(name).map(|f| f.token.as_str()))
            .or_else(held)
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

    /// Every file name the state knows: indexed, failed or held for its
    /// release.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.packages
            .keys()
            .chain(self.failures.keys())
            .chain(self.pending.keys())
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
            Change::Indexed { name, package, .. } => self
                .packages
                .get(name)
                .is_none_or(|p| p.record != package.record),
            Change::Failed { name, .. } | Change::Removed { name } => {
                self.packages.contains_key(name)
            }
            // Held: the records change when the release is whole.
            Change::Staged { .. } => false,
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
        self.generation = published.saturating_add(1);
        self.records_generation = self.generation;
        true
    }

    /// Why publication is held, if it is.
    pub fn hold(&self) -> Option<&Hold> {
        self.hold.as_ref()
    }

    /// Holds publication (`Some`) or lets it go on (`None`); returns
    /// whether that changed (and if so, advances the generation).
    pub fn set_hold(&mut self, hold: Option<Hold>) -> bool {
        let hold = hold.map(|h| Hold {
            reason: bounded(h.reason),
            ..h
        });
        if self.hold == hold {
            return false;
        }
        self.hold = hold;
        self.generation = self.generation.saturating_add(1);
        true
    }

    /// Marks the summary as to be published again, as a new generation,
    /// although its records did not change: after a rollback or a hold,
    /// the files out there are not this state's.
    pub fn republish(&mut self) {
        self.generation = self.generation.saturating_add(1);
        self.records_generation = self.generation;
    }

    /// Merges changes; returns whether anything changed, in which case the
    /// generation has advanced by one.
    pub fn apply<I: IntoIterator<Item = Change>>(&mut self, changes: I) -> bool {
        self.apply_by(changes, &[])
    }

    /// [`State::apply`], noting in the change log `who` made the changes
    /// (the principals the events named).
    pub fn apply_by<I: IntoIterator<Item = Change>>(&mut self, changes: I, who: &[String]) -> bool {
        let (mut changed, mut records) = (false, false);
        let mut logged = Logged::default();
        logged.by(who.iter().map(String::as_str));
        let mut merged = Vec::new();
        for change in changes {
            changed |= self.stage(change, &mut merged);
        }
        merged.extend(self.whole_releases());
        for change in merged {
            if self.changes_records(&change) {
                records = true;
                self.note(&change, &mut logged);
            }
            changed |= self.apply_one(change);
        }
        if changed {
            self.generation = self.generation.saturating_add(1);
        }
        if records {
            self.records_generation = self.generation;
            logged.generation = self.generation;
            self.log.push(logged);
        }
        changed
    }

    /// Holds a release member in `pending`, returning whether that
    /// changed it. Any other change (which drops what was held of its
    /// name), a member of a release published already, or one past
    /// [`MAX_PENDING`] (as a failure) goes to `merged`.
    fn stage(&mut self, change: Change, merged: &mut Vec<Change>) -> bool {
        let (name, staged) = match change {
            Change::Staged { name, staged } if !self.released.contains_key(&staged.tag.id) => {
                (name, staged)
            }
            Change::Staged { name, staged } => {
                return self.stage(staged.into_indexed(name), merged);
            }
            other => {
                let dropped = self.pending.remove(other.name()).is_some();
                merged.push(other);
                return dropped;
            }
        };
        if self.pending.len() >= MAX_PENDING && !self.pending.contains_key(&name) {
            let error = format!(
                "held for release {}, but {MAX_PENDING} packages are held for incomplete releases already",
                staged.tag
            );
            let failure = Failure {
                size: staged.package.size,
                token: staged.package.token,
                error,
            };
            merged.push(Change::Failed { name, failure });
            return false;
        }
        let changed = self.pending.get(&name) != Some(&staged);
        self.pending.insert(name, staged);
        changed
    }

    /// The members of every release now whole, taken out of `pending` as
    /// changes to merge; each such release is remembered as published.
    fn whole_releases(&mut self) -> Vec<Change> {
        let mut have: BTreeMap<&str, (usize, u32)> = BTreeMap::new();
        for staged in self.pending.values() {
            let entry = have.entry(staged.tag.id.as_str()).or_default();
            entry.0 += 1;
            entry.1 = entry.1.max(staged.tag.count);
        }
        let whole: Vec<String> = have
            .into_iter()
            .filter(|(_, (have, count))| *have >= *count as usize)
            .map(|(id, _)| id.to_owned())
            .collect();
        if whole.is_empty() {
            return Vec::new();
        }
        let members: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, s)| whole.contains(&s.tag.id))
            .map(|(name, _)| name.clone())
            .collect();
        let next = self.generation.saturating_add(1);
        for id in whole {
            self.released.insert(id, next);
        }
        while self.released.len() > RELEASED_KEPT {
            let oldest = self
                .released
                .iter()
                .min_by_key(|(_, g)| **g)
                .map(|(id, _)| id.clone());
            if let Some(id) = oldest {
                self.released.remove(&id);
            }
        }
        let mut changes = Vec::with_capacity(members.len());
        for name in members {
            if let Some(staged) = self.pending.remove(&name) {
                changes.push(staged.into_indexed(name));
            }
        }
        changes
    }

    /// The file names held for releases.
    pub fn pending_names(&self) -> impl Iterator<Item = &str> {
        self.pending.keys().map(String::as_str)
    }

    /// The releases not yet whole, oldest first.
    pub fn waiting(&self) -> Vec<Waiting> {
        let mut by_id: BTreeMap<&str, Waiting> = BTreeMap::new();
        for staged in self.pending.values() {
            let waiting = by_id.entry(&staged.tag.id).or_insert_with(|| Waiting {
                id: staged.tag.id.clone(),
                have: 0,
                count: 0,
                since: staged.uploaded,
            });
            waiting.have += 1;
            waiting.count = waiting.count.max(staged.tag.count);
            waiting.since = waiting.since.min(staged.uploaded);
        }
        let mut waiting: Vec<Waiting> = by_id.into_values().collect();
        waiting.sort_by_key(|w| w.since);
        waiting
    }

    /// Notes in `logged` how `change` changes the records, by PKGNAME
    /// (the file name when a record has none).
    fn note(&self, change: &Change, logged: &mut Logged) {
        let pkgname = |name: &str, record: &[u8]| -> String {
            let found = crate::record::pkgname(record).map(String::from_utf8_lossy);
            found.map_or_else(|| name.to_owned(), |n| n.into_owned())
        };
        match change {
            Change::Indexed { name, package, .. } => {
                let kind = match self.packages.contains_key(name) {
                    true => Kind::Replaced,
                    false => Kind::Added,
                };
                logged.note(kind, &pkgname(name, &package.record));
            }
            Change::Failed { name, .. } | Change::Removed { name } => {
                if let Some(old) = self.packages.get(name) {
                    logged.note(Kind::Removed, &pkgname(name, &old.record));
                }
            }
            Change::Staged { .. } => {}
        }
    }

    /// What the records' changes after generation `published` up to
    /// `generation` were, net, as far as the log still holds them.
    pub fn changes_since(&self, published: u64, generation: u64) -> Changes {
        self.log.since(published, generation)
    }

    /// Merges one change; what the repository-wide checks said of that
    /// name no longer holds once it changed.
    fn apply_one(&mut self, change: Change) -> bool {
        let name = change.name().to_owned();
        let changed = self.merge(change);
        if changed {
            self.repository_warnings.retain(|(file, _)| *file != name);
        }
        changed
    }

    fn merge(&mut self, change: Change) -> bool {
        match change {
            // `apply` holds these before merging.
            Change::Staged { name, staged } => self.merge(staged.into_indexed(name)),
            Change::Indexed {
                name,
                mut package,
                verdict,
            } => {
                bound_warnings(&mut package.warnings);
                let dropped = self.failures.remove(&name).is_some();
                let judged = match verdict {
                    Some(verdict) => {
                        self.signatures.insert(name.clone(), verdict.clone()) != Some(verdict)
                    }
                    None => self.signatures.remove(&name).is_some(),
                };
                self.forget_warnings(&name);
                if !package.warnings.is_empty() {
                    if self.warnings.len() < KEPT_WARNED {
                        self.warnings.insert(name.clone(), package.warnings.clone());
                    } else {
                        self.warned_more += 1;
                    }
                }
                let changed = self.packages.get(&name) != Some(&package);
                if changed {
                    self.touch(&name);
                    self.packages.insert(name, package);
                }
                dropped || changed || judged
            }
            Change::Failed { name, mut failure } => {
                failure.error = bounded(std::mem::take(&mut failure.error));
                let dropped = self.remove_package(&name);
                let old = self.failures.insert(name, failure.clone());
                dropped || old.as_ref() != Some(&failure)
            }
            Change::Removed { name } => {
                let a = self.remove_package(&name);
                let b = self.failures.remove(&name).is_some();
                a || b
            }
        }
    }

    /// Drops what the manifest says of `name`'s warnings: its entry, or
    /// its place in the count of those left out (its package, whose piece
    /// a merge has loaded, says whether it had any).
    fn forget_warnings(&mut self, name: &str) {
        if self.warnings.remove(name).is_none()
            && self
                .packages
                .get(name)
                .is_some_and(|p| !p.warnings.is_empty())
        {
            self.warned_more = self.warned_more.saturating_sub(1);
        }
    }

    fn remove_package(&mut self, name: &str) -> bool {
        self.forget_warnings(name);
        self.signatures.remove(name);
        let removed = self.packages.remove(name).is_some();
        if removed {
            self.touch(name);
        }
        removed
    }

    /// Marks the piece that holds `name` as changed.
    fn touch(&mut self, name: &str) {
        if let Some(i) = self.locate(name) {
            self.dirty.insert(i);
        }
    }

    /// The piece that holds (or would hold) `name`; none before the state
    /// is first stored in pieces.
    pub fn locate(&self, name: &str) -> Option<usize> {
        if self.pieces.is_empty() {
            return None;
        }
        let after = self.pieces.partition_point(|p| p.first.as_str() <= name);
        Some(after.saturating_sub(1))
    }

    /// The pieces, as last stored.
    pub fn pieces(&self) -> &[PieceRef] {
        &self.pieces
    }

    /// The pieces a pass over `names` must load before it merges changes
    /// to them: each name's piece and the one after it (a piece that
    /// shrinks is merged with the next), those not loaded yet.
    pub fn pieces_for<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> BTreeSet<usize> {
        names
            .into_iter()
            .filter_map(|name| self.locate(name))
            .flat_map(|i| [i, i + 1])
            .filter(|&i| i < self.pieces.len() && !self.loaded[i])
            .collect()
    }

    /// Every piece not loaded yet.
    pub fn unloaded(&self) -> BTreeSet<usize> {
        (0..self.pieces.len())
            .filter(|&i| !self.loaded[i])
            .collect()
    }

    /// Whether every package is loaded.
    pub fn is_loaded(&self) -> bool {
        self.loaded.iter().all(|&l| l)
    }

    /// Adds the packages of piece `i`, read from its object.
    pub fn load(&mut self, i: usize, packages: Vec<(String, Package)>) {
        if self.loaded.get(i).is_none_or(|&l| l) {
            return;
        }
        self.packages.extend(packages);
        self.loaded[i] = true;
    }

    /// The names a range of pieces covers.
    fn bounds(&self, pieces: Range<usize>) -> (Bound<&str>, Bound<&str>) {
        let name = |i: usize| Bound::Included(self.pieces[i].first.as_str());
        let low = if pieces.start == 0 {
            Bound::Unbounded
        } else {
            name(pieces.start)
        };
        let high = match self.pieces.get(pieces.end) {
            Some(piece) => Bound::Excluded(piece.first.as_str()),
            None => Bound::Unbounded,
        };
        (low, high)
    }

    /// The loaded packages in a range of pieces.
    fn packages_in(&self, pieces: Range<usize>) -> Vec<(&String, &Package)> {
        self.packages.range::<str, _>(self.bounds(pieces)).collect()
    }

    /// The records of a range of loaded pieces, concatenated, but for the
    /// files `unlisted`: one run of the summary.
    pub fn records_in(&self, pieces: Range<usize>, unlisted: &BTreeSet<String>) -> Result<Vec<u8>> {
        if self.loaded[pieces.clone()].iter().any(|&l| !l) {
            return Err(Error::State(
                "a piece needed for the summary is not loaded".to_owned(),
            ));
        }
        let packages = self.packages_in(pieces);
        let listed = packages
            .iter()
            .filter(|(name, _)| !unlisted.contains(*name));
        let len = listed.clone().map(|(_, p)| p.record.len()).sum();
        let mut out = Vec::with_capacity(len);
        for (_, package) in listed {
            out.extend_from_slice(&package.record);
        }
        Ok(out)
    }

    /// Each piece's digest of the records a summary lists from it: the
    /// stored digest, or, for a piece holding a file of `unlisted`, the
    /// SHA-256 of that digest and the names left out. A run of a
    /// published summary is copied only under the same digest, so a
    /// change of selection makes its runs again.
    pub fn listed_digests(&self, unlisted: &BTreeSet<String>) -> Vec<[u8; 32]> {
        use sha2::{Digest, Sha256};
        let mut left_out: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
        for name in unlisted {
            if let Some(i) = self.locate(name) {
                left_out.entry(i).or_default().push(name);
            }
        }
        let pieces = self.pieces.iter().enumerate();
        pieces
            .map(|(i, piece)| match left_out.get(&i) {
                None => piece.records,
                Some(names) => {
                    let mut hash = Sha256::new();
                    hash.update(piece.records);
                    for name in names {
                        hash.update(name.as_bytes());
                        hash.update([0]);
                    }
                    hash.finalize().into()
                }
            })
            .collect()
    }

    /// Cuts the state into pieces for storing: unchanged pieces are kept,
    /// changed ones are cut again from their packages (with the next
    /// ones, if loaded, while they hold less than [`piece::MIN`]; a small
    /// last piece joins the one before it). Refused if a changed piece is not loaded: cutting it would
    /// drop the packages that were not.
    pub fn cut(&self) -> Result<Cut> {
        let mut cut = Cut {
            manifest: Vec::new(),
            pieces: Vec::new(),
            made: Vec::new(),
            dropped: Vec::new(),
            loaded: Vec::new(),
        };
        if self.pieces.is_empty() {
            cut.add(self.make_pieces(&self.packages.iter().collect::<Vec<_>>())?);
        }
        let mut i = 0;
        while i < self.pieces.len() {
            if !self.dirty.contains(&i) {
                cut.pieces.push(self.pieces[i].clone());
                cut.loaded.push(self.loaded[i]);
                i += 1;
                continue;
            }
            let start = i;
            while i < self.pieces.len() && (self.dirty.contains(&i)) {
                i += 1;
            }
            if self.loaded[start..i].iter().any(|&l| !l) {
                return Err(Error::State("a changed piece is not loaded".to_owned()));
            }
            // A region too small for a piece takes in the next, if loaded.
            let bytes = |end: usize| -> usize {
                let packages = self.packages_in(start..end);
                packages.iter().map(|(_, p)| p.record.len()).sum()
            };
            while i < self.pieces.len() && self.loaded[i] && bytes(i) < piece::MIN {
                i += 1;
            }
            cut.add(self.make_pieces(&self.packages_in(start..i))?);
            cut.dropped.extend_from_slice(&self.pieces[start..i]);
        }
        let manifest = Manifest {
            generation: self.generation,
            records_generation: self.records_generation,
            failures: self.failures.clone(),
            suffixes: self.suffixes.clone(),
            warnings: self.warnings.clone(),
            warned_more: self.warned_more,
            pieces: cut.pieces.clone(),
            signatures: self.signatures.clone(),
            trust: self.trust.clone(),
            repository_warnings: self.repository_warnings.clone(),
            repository_more: self.repository_more,
            repository_checked: self.repository_checked,
            hold: self.hold.clone(),
            log: self.log.clone(),
            pending: self.pending.clone(),
            released: self.released.clone(),
        };
        cut.manifest = encode_manifest(manifest)?;
        Ok(cut)
    }

    /// Cuts `packages` (sorted) into new pieces of this generation.
    fn make_pieces(&self, packages: &[(&String, &Package)]) -> Result<Vec<(PieceRef, Vec<u8>)>> {
        let mut ranges = chunk::split(
            packages.iter().map(|(n, p)| (n.as_str(), p.record.len())),
            piece::TARGET,
        );
        // A small last piece joins the one before it: the next piece may
        // not be loaded to take it in.
        let len = |r: &Range<usize>| -> usize {
            packages[r.clone()]
                .iter()
                .map(|(_, p)| p.record.len())
                .sum()
        };
        if let [.., before, last] = &ranges[..]
            && len(last) < piece::MIN
        {
            let joined = before.start..last.end;
            ranges.truncate(ranges.len() - 2);
            ranges.push(joined);
        }
        ranges
            .into_iter()
            .map(|range| piece::encode(&packages[range], self.generation))
            .collect()
    }

    /// Takes the pieces of `cut` as the stored ones, once it is committed.
    pub fn stored(&mut self, cut: Cut) {
        self.pieces = cut.pieces;
        self.loaded = cut.loaded;
        self.dirty.clear();
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

    /// Parses a stored state, decoding at most `limit` bytes. A version 4
    /// state is its manifest: no piece is loaded yet.
    pub fn from_bytes(bytes: &[u8], limit: u64) -> Result<State> {
        let rest = bytes
            .strip_prefix(MAGIC)
            .ok_or_else(|| Error::State("not a pkgsum state (bad magic)".to_owned()))?;
        let (&version, packed) = rest
            .split_first()
            .ok_or_else(|| Error::State("no version byte".to_owned()))?;
        if !(2..=VERSION).contains(&version) {
            return Err(Error::State(format!(
                "unsupported state version {version} (this pkgsum reads versions 2 to {VERSION})"
            )));
        }
        let body = stored::unpack(packed, limit, "state")?;
        let state = match version {
            2 => stored::decode::<StateV2>(&body, ELEMENTS).map(State::from),
            3 => stored::decode::<StateV3>(&body, ELEMENTS).map(State::from),
            4 => stored::decode::<ManifestV4>(&body, ELEMENTS)
                .map(|m| State::from(Manifest::from(m))),
            5 => stored::decode::<ManifestV5>(&body, ELEMENTS)
                .map(|m| State::from(Manifest::from(m))),
            6 => stored::decode::<ManifestV6>(&body, ELEMENTS)
                .map(|m| State::from(Manifest::from(m))),
            7 => stored::decode::<Manifest>(&body, ELEMENTS).map(State::from),
            _ => stored::decode::<Stored>(&body, ELEMENTS).map(State::from),
        };
        state.map_err(|e| Error::State(e.to_string()))
    }
}

impl From<Manifest> for State {
    fn from(manifest: Manifest) -> State {
        State {
            generation: manifest.generation,
            records_generation: manifest.records_generation,
            failures: manifest.failures,
            suffixes: manifest.suffixes,
            warnings: manifest.warnings,
            warned_more: manifest.warned_more,
            signatures: manifest.signatures,
            trust: manifest.trust,
            repository_warnings: manifest.repository_warnings,
            repository_more: manifest.repository_more,
            repository_checked: manifest.repository_checked,
            hold: manifest.hold.map(|h| Hold {
                reason: bounded(h.reason),
                ..h
            }),
            log: manifest.log,
            pending: manifest.pending,
            released: manifest.released,
            loaded: vec![false; manifest.pieces.len()],
            pieces: manifest.pieces,
            ..State::default()
        }
    }
}

/// At most [`MAX_PACKAGE_WARNINGS`] of a package's warnings, each cut to
/// [`crate::excerpt::MESSAGE_BYTES`], and a line saying how many more.
fn bound_warnings(warnings: &mut Vec<String>) {
    if warnings.len() > MAX_PACKAGE_WARNINGS {
        let more = warnings.len() - MAX_PACKAGE_WARNINGS;
        warnings.truncate(MAX_PACKAGE_WARNINGS);
        warnings.push(format!("… and {more} more warnings about it"));
    }
    for warning in warnings {
        if warning.len() > crate::excerpt::MESSAGE_BYTES {
            *warning = bounded(std::mem::take(warning));
        }
    }
}

/// Serializes a manifest: magic, version byte, then zstd-compressed
/// postcard.
fn encode_manifest(manifest: Manifest) -> Result<Vec<u8>> {
    let extension = Extension {
        who: manifest.log.who(),
    };
    let stored = Stored {
        manifest,
        extension,
    };
    Ok([MAGIC, &[VERSION], &stored::pack(&stored)?].concat())
}

impl From<Stored> for State {
    fn from(stored: Stored) -> State {
        let mut state = State::from(stored.manifest);
        state.log.set_who(stored.extension.who);
        state
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
            verdict: None,
        }
    }

    fn staged(name: &str, id: &str, count: u32) -> Change {
        let pkgname = name.trim_end_matches(".tgz");
        Change::Staged {
            name: name.to_owned(),
            staged: Staged {
                tag: Tag {
                    id: id.to_owned(),
                    count,
                },
                package: package(&format!("PKGNAME={pkgname}\n\n"), "1"),
                verdict: None,
                uploaded: 100,
            },
        }
    }

    #[test]
    fn a_release_joins_the_records_whole_in_one_generation() {
        let mut state = State::default();
        state.apply([indexed("old-1.tgz", "PKGNAME=old-1\n\n", "1")]);
        let names: Vec<String> = (0..5).map(|i| format!("m{i}-1.tgz")).collect();
        // Delivered out of order and duplicated, over several applies.
        for i in [3, 1, 3, 0, 1] {
            assert!(state.apply([staged(&names[i], "r1", 5)]) || i == 3 || i == 1);
            assert_eq!(state.len(), 1, "a member joined the records early");
        }
        assert_eq!(
            state.waiting()[0].to_string().split(':').next().unwrap(),
            "release r1 has 3 of its 5 packages, the first uploaded 1970-01-01T00"
        );
        let records_before = state.records_generation();
        state.apply([
            staged(&names[4], "r1", 5),
            indexed("other-1.tgz", "PKGNAME=other-1\n\n", "1"),
        ]);
        assert_eq!(state.len(), 2);
        assert!(state.apply([staged(&names[2], "r1", 5)]));
        assert_eq!(state.len(), 7, "the release is whole");
        assert!(state.records_generation() > records_before);
        assert!(state.waiting().is_empty());
        let log = state.changes_since(state.generation() - 1, state.generation());
        assert_eq!(log.added.len(), 5);
        // Read again later (a listing pass), a member is not held again.
        let mut again = package("PKGNAME=m0-1\nCOMMENT=again\n\n", "2");
        again.size = 11;
        let Change::Staged {
            name,
            staged: mut held,
        } = staged(&names[0], "r1", 5)
        else {
            unreachable!()
        };
        held.package = again.clone();
        state.apply([Change::Staged { name, staged: held }]);
        assert_eq!(state.package(&names[0]), Some(&again));
        // A member deleted while held leaves the release waiting.
        state.apply([staged("x-1.tgz", "r2", 2)]);
        state.apply([Change::Removed {
            name: "x-1.tgz".into(),
        }]);
        assert!(state.waiting().is_empty());
        assert_eq!(state.pending_names().count(), 0);
        // The held members survive a round trip through the manifest.
        state.apply([staged("y-1.tgz", "r3", 2)]);
        let cut = state.cut().unwrap();
        let back = State::from_bytes(&cut.manifest, DEFAULT_STATE_LIMIT).unwrap();
        assert_eq!(back.pending_names().collect::<Vec<_>>(), ["y-1.tgz"]);
        assert_eq!(back.waiting()[0].have, 1);
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
    fn repository_warnings_of_a_changed_name_are_dropped() {
        let mut state = State::default();
        state.apply([
            indexed("a-1.tgz", "PKGNAME=a-1\n\n", "1"),
            indexed("a-copy.tgz", "PKGNAME=a-1\n\n", "1"),
        ]);
        let found = vec![
            ("a-1.tgz".to_owned(), "twin".to_owned()),
            ("a-copy.tgz".to_owned(), "twin".to_owned()),
        ];
        let findings = Findings {
            warnings: found.clone(),
            more: 0,
        };
        assert!(state.set_repository_warnings(findings.clone()));
        assert_eq!(state.repository_warnings(), (&found[..], 2));
        assert!(!state.set_repository_warnings(findings));
        // An unchanged file keeps its warnings; a removed one loses them.
        state.apply([indexed("a-1.tgz", "PKGNAME=a-1\n\n", "1")]);
        assert_eq!(state.repository_warnings().0.len(), 2);
        state.apply([Change::Removed {
            name: "a-copy.tgz".to_owned(),
        }]);
        assert_eq!(state.repository_warnings(), (&found[..1], 2));
        assert_eq!(state.generation(), 3);
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
            verdict: None,
        }]);
        let cut = state.cut().unwrap();
        let bytes = cut.manifest.clone();
        let mut back = State::from_bytes(&bytes, DEFAULT_STATE_LIMIT).unwrap();
        assert_eq!((back.len(), back.is_loaded()), (1, false));
        let (piece, stored) = &cut.made[0];
        back.load(
            0,
            piece::decode(stored, piece, DEFAULT_STATE_LIMIT).unwrap(),
        );
        assert_eq!(back.summary(), state.summary());
        state.stored(cut);
        assert_eq!(back, state);
        assert_eq!(back.changes_since(0, 1).added, ["a\u{fffd}-1"]);

        // Who made a commit is kept (version 8), and a version-7 manifest
        // (the same fields without it) still reads, naming nobody.
        let mut named = state.clone();
        named.apply_by(
            [Change::Removed {
                name: "a b+ü.tgz".to_owned(),
            }],
            &["AWS:AROA1:ci".to_owned()],
        );
        let named_cut = named.cut().unwrap();
        let named_back = State::from_bytes(&named_cut.manifest, DEFAULT_STATE_LIMIT).unwrap();
        let generation = named.generation();
        assert_eq!(
            named_back.changes_since(1, generation).who,
            ["AWS:AROA1:ci"]
        );
        let v7 = {
            let manifest =
                stored::unpack(&named_cut.manifest[MAGIC.len() + 1..], 1 << 20, "test").unwrap();
            let stored: Stored = stored::decode(&manifest, ELEMENTS).unwrap();
            [MAGIC, &[7], &stored::pack(&stored.manifest).unwrap()].concat()
        };
        let v7_state = State::from_bytes(&v7, DEFAULT_STATE_LIMIT).unwrap();
        assert_eq!(
            v7_state.changes_since(1, generation).removed,
            ["a\u{fffd}-1"]
        );
        assert!(v7_state.changes_since(1, generation).who.is_empty());

        // A version-6 manifest (before holds and the change log) still
        // reads, with neither.
        let v6 = {
            let old = (
                state.generation,
                state.records_generation,
                &state.failures,
                &state.suffixes,
                &state.warnings,
                state.warned_more,
                &state.pieces,
                &state.signatures,
                &state.trust,
                &state.repository_warnings,
                state.repository_more,
                state.repository_checked,
            );
            [MAGIC, &[6], &stored::pack(&old).unwrap()].concat()
        };
        let v6_state = State::from_bytes(&v6, DEFAULT_STATE_LIMIT).unwrap();
        assert_eq!(v6_state.pieces(), state.pieces());
        assert_eq!(v6_state.hold(), None);
        assert!(v6_state.changes_since(0, 1).added.is_empty());

        // Older versions have no log to compare.
        state.log = Log::default();

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
        let mut v2_state = State::from_bytes(&v2, DEFAULT_STATE_LIMIT).unwrap();
        assert_eq!(v2_state.summary(), state.summary());
        v2_state.stored(v2_state.cut().unwrap());
        assert_eq!(v2_state, state);

        // A version-4 manifest (before verdicts) still reads, with none.
        let v4 = {
            let old = (
                state.generation,
                state.records_generation,
                &state.failures,
                &state.suffixes,
                &state.warnings,
                &state.pieces,
            );
            [MAGIC, &[4], &stored::pack(&old).unwrap()].concat()
        };
        let v4_state = State::from_bytes(&v4, DEFAULT_STATE_LIMIT).unwrap();
        assert_eq!(v4_state.pieces(), state.pieces());
        assert_eq!((v4_state.verdicts().count(), v4_state.trust()), (0, ""));

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

    /// Stores a cut state in `store` (pieces by name) and returns its
    /// manifest.
    fn store_cut(cut: &Cut, store: &mut BTreeMap<String, Vec<u8>>) -> Vec<u8> {
        for (piece, bytes) in &cut.made {
            store.insert(piece.name(), bytes.clone());
        }
        for piece in &cut.dropped {
            store.remove(&piece.name());
        }
        cut.manifest.clone()
    }

    /// Reads a stored state back as a pass would: the manifest, then the
    /// pieces `want` names.
    fn read_back(
        manifest: &[u8],
        store: &BTreeMap<String, Vec<u8>>,
        want: impl Fn(&State) -> BTreeSet<usize>,
    ) -> State {
        let mut read = State::from_bytes(manifest, DEFAULT_STATE_LIMIT).unwrap();
        for i in want(&read) {
            let piece = read.pieces()[i].clone();
            let bytes = &store[&piece.name()];
            read.load(
                i,
                piece::decode(bytes, &piece, DEFAULT_STATE_LIMIT).unwrap(),
            );
        }
        read
    }

    /// Random additions, replacements and removals, each applied to a
    /// state read back from its pieces with only the pieces it needs: the
    /// stored state always holds exactly what a state built from scratch
    /// holds, its pieces stay within their bounds, and an update rewrites
    /// few of them.
    #[test]
    fn updates_on_pieces_equal_a_state_from_scratch() {
        let mut rng = 5u64;
        let mut next = move || {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1);
            rng >> 33
        };
        let record = |name: &str, n: u64| {
            let mut r = format!("PKGNAME={name}\nCOMMENT=").into_bytes();
            r.resize(300 + (n % 1500) as usize, b'x');
            r.extend_from_slice(b"\n\n");
            r
        };
        let mut truth: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut state = State::default();
        let initial: Vec<Change> = (0..2000)
            .map(|i| {
                let name = format!("p{:06}.tgz", next() % 1_000_000);
                let r = record(&name, next());
                truth.insert(name.clone(), r.clone());
                indexed(&name, std::str::from_utf8(&r).unwrap(), &i.to_string())
            })
            .collect();
        state.apply(initial);
        let mut store = BTreeMap::new();
        let mut manifest = store_cut(&state.cut().unwrap(), &mut store);
        let mut rewritten = Vec::new();
        for step in 0..200 {
            let names: Vec<String> = truth.keys().cloned().collect();
            let mut changes = Vec::new();
            let mut touched = Vec::new();
            for _ in 0..1 + next() % 3 {
                let name = match next() % 3 {
                    0 => format!("p{:06}.tgz", next() % 1_000_000),
                    _ => names[next() as usize % names.len()].clone(),
                };
                if next() % 3 == 0 {
                    truth.remove(&name);
                    changes.push(Change::Removed { name: name.clone() });
                } else {
                    let r = record(&name, next());
                    truth.insert(name.clone(), r.clone());
                    let text = std::str::from_utf8(&r).unwrap();
                    changes.push(indexed(&name, text, &step.to_string()));
                }
                touched.push(name);
            }
            let mut read = read_back(&manifest, &store, |s| {
                s.pieces_for(touched.iter().map(String::as_str))
            });
            read.apply(changes);
            let cut = read.cut().unwrap();
            rewritten.push(cut.made.len());
            manifest = store_cut(&cut, &mut store);

            let whole = read_back(&manifest, &store, State::unloaded);
            let want = truth
                .values()
                .map(Vec::as_slice)
                .collect::<Vec<_>>()
                .concat();
            assert!(whole.summary() == want, "step {step}");
            assert_eq!(whole.len(), truth.len());
            // The store holds exactly the pieces the manifest names: those
            // a commit drops are never named again.
            let named: BTreeSet<String> = whole.pieces().iter().map(PieceRef::name).collect();
            assert_eq!(named, store.keys().cloned().collect::<BTreeSet<_>>());
            let pieces = whole.pieces();
            for (i, piece) in pieces.iter().enumerate() {
                let most = 2 * piece::TARGET + piece::MIN + 2000;
                assert!(piece.bytes as usize <= most, "{piece:?}");
                // Only the last piece, which has no next to take it in, may
                // be small.
                if i + 1 < pieces.len() {
                    assert!(piece.bytes as usize >= piece::MIN, "step {step}: {piece:?}");
                }
            }
        }
        // About 40 pieces; an update of one to three names rewrites a few.
        let most = rewritten.iter().max().copied().unwrap_or(0);
        let mean = rewritten.iter().sum::<usize>() as f64 / rewritten.len() as f64;
        assert!(most <= 8 && mean < 4.0, "{rewritten:?}");
    }

    fn warned(name: &str, warnings: usize) -> Change {
        let mut change = indexed(name, &format!("PKGNAME={name}\n\n"), "1");
        if let Change::Indexed { package, .. } = &mut change {
            package.warnings = (0..warnings).map(|i| format!("w{i}")).collect();
        }
        change
    }

    #[test]
    fn the_manifest_keeps_the_warnings_of_a_bounded_number_of_packages() {
        // H3: 20,000 packages with a warning each made every update decode,
        // copy and write all of them.
        let mut state = State::default();
        state.apply((0..KEPT_WARNED + 500).map(|i| warned(&format!("p{i:05}.tgz"), 1)));
        assert_eq!(
            (state.warnings().count(), state.warned_more()),
            (KEPT_WARNED, 500)
        );
        // Removing a kept one and a counted one keeps the count exact.
        state.apply([
            Change::Removed {
                name: "p00000.tgz".to_owned(),
            },
            Change::Removed {
                name: format!("p{:05}.tgz", KEPT_WARNED + 10),
            },
        ]);
        assert_eq!(
            (state.warnings().count(), state.warned_more()),
            (KEPT_WARNED - 1, 499)
        );
        // A counted package that loses its warnings leaves the count.
        state.apply([warned(&format!("p{:05}.tgz", KEPT_WARNED + 20), 0)]);
        assert_eq!(state.warned_more(), 498);
        state.recount_warnings();
        assert_eq!(
            (state.warnings().count(), state.warned_more()),
            (KEPT_WARNED, 497)
        );
        // One package's warnings are bounded too.
        state.apply([warned("zz.tgz", 100)]);
        let kept = &state.package("zz.tgz").unwrap().warnings;
        assert_eq!(kept.len(), MAX_PACKAGE_WARNINGS + 1);
        assert_eq!(
            kept[MAX_PACKAGE_WARNINGS],
            "… and 84 more warnings about it"
        );
    }

    #[test]
    fn a_failure_reason_is_kept_bounded() {
        let mut state = State::default();
        state.apply([Change::Failed {
            name: "bad.tgz".to_owned(),
            failure: Failure {
                size: 1,
                token: "1".to_owned(),
                error: "x".repeat(10 << 20),
            },
        }]);
        let kept = &state.failure("bad.tgz").unwrap().error;
        assert!(
            kept.len() < 2048 && kept.ends_with("… (cut)"),
            "{}",
            kept.len()
        );
    }

    #[test]
    fn a_forged_manifest_is_refused_before_it_is_built() {
        // M5: 33 KB of zstd made a 1 GB state. Zeros are empty strings and
        // empty lists to postcard: millions of elements.
        let body = vec![0u8; 60 << 20];
        let packed = zstd::bulk::compress(&body, 3).unwrap();
        assert!(packed.len() < 100 << 10, "{}", packed.len());
        let forged = [MAGIC, &[VERSION], &packed].concat();
        assert!(State::from_bytes(&forged, DEFAULT_STATE_LIMIT).is_err());
        // A list of 8 M empty suffixes, each one byte stored.
        let mut body = vec![0u8, 0, 0, 0];
        body.extend_from_slice(&[0x80, 0x80, 0x80, 0x04]);
        body.resize(body.len() + (8 << 20), 0);
        let forged = [MAGIC, &[VERSION], &zstd::bulk::compress(&body, 3).unwrap()].concat();
        let err = State::from_bytes(&forged, DEFAULT_STATE_LIMIT).unwrap_err();
        assert!(err.to_string().starts_with("invalid state"), "{err}");
        // Generations at the top do not overflow.
        let mut state = State::default();
        assert!(state.advance_past(u64::MAX));
        assert!(state.apply([indexed("a.tgz", "PKGNAME=a\n\n", "1")]));
        assert_eq!(state.generation(), u64::MAX);
    }
}
