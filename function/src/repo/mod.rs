//! One repository in an object store, and the pass that brings it up to
//! date: the level-triggered heart of the indexer.
//!
//! A repository is a key prefix up to the last `/` (`keys.rs`), in any
//! store: a bucket, or a local directory (`pkgsum index`). A [`Repo`] is a
//! handle on one: its store, its prefix and the settings. A pass over some
//! names, or over a listing (`pass.rs`):
//!
//! 1. reads the state's manifest and remembers its ETag, then the pieces
//!    that hold the names it looks at (`commit.rs`); a lost state turns
//!    the pass into one over the whole listing;
//! 2. asks the store what each name holds now, after reading the state, so
//!    nothing older than the state is ever applied: a peek per name (one
//!    ranged GET, 304 for a name the state holds unchanged), or a listing
//!    taken after the state was read;
//! 3. fetches the rest of the headers of new or changed packages only;
//! 4. stores the pieces it changed, then commits the manifest with
//!    If-Match (If-None-Match `*` when new); on
//!    412/409 it waits a jittered, growing delay and starts over, a bounded
//!    number of times, reusing headers already fetched for the same ETag
//!    and not looking again at names found to need no change;
//! 5. publishes every format (`publish.rs`) from the newest committed
//!    state, its own or, if it had to wait for pkgin's next second,
//!    whatever another pass committed meanwhile; each write guarded by the
//!    generation recorded in the object's metadata, so an older state never
//!    replaces a newer one's outputs, and each at a later second than the
//!    last; then the status object (`status.rs`). A file this process
//!    wrote whole and nobody replaced since is not read back to copy its
//!    runs, nor are the history entries the site lists (`recent.rs`).

mod commit;
mod history;
mod hold;
mod pass;
mod publish;
mod recent;
mod splice;
mod status;

pub use crate::keys::{GENERATION, is_own_key, output_key, split_key, state_key, status_key};
pub(crate) use commit::PieceError;
pub use history::{Entry, ListedSince, RollbackError, RolledBack, files_listed, history_prefix};
pub use hold::HoldError;
pub use pass::Scope;
pub(crate) use publish::plan_runs;
pub use publish::whole_seconds;
pub use publish::{Gating, Published};

use crate::config::Config;
use crate::error::Error;
use crate::store::{Store, StoreError};

/// A repository: a store, the prefix its keys start with (empty, or
/// ending in `/`), and the settings its passes follow.
#[derive(Debug, Clone, Copy)]
pub struct Repo<'a, S> {
    store: &'a S,
    prefix: &'a str,
    config: &'a Config,
    /// Who made the changes a pass applies, as the events named them.
    who: &'a [String],
}

impl<'a, S: Store> Repo<'a, S> {
    pub fn new(store: &'a S, prefix: &'a str, config: &'a Config) -> Self {
        Repo {
            store,
            prefix,
            config,
            who: &[],
        }
    }

    /// The same repository, noting in the change log that `who` (the
    /// principals the events named) made what its passes apply.
    pub fn by(mut self, who: &'a [String]) -> Self {
        self.who = who;
        self
    }

    pub fn store(&self) -> &'a S {
        self.store
    }

    pub fn prefix(&self) -> &'a str {
        self.prefix
    }

    pub fn config(&self) -> &'a Config {
        self.config
    }

    /// The repository as people read it, e.g. `s3://bucket/All/`.
    pub fn location(&self) -> String {
        self.store.location(self.prefix)
    }

    /// The key of the file `name` in the repository.
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

/// What a pass did, and the names it could not look at.
#[derive(Debug)]
pub struct Applied {
    pub report: Report,
    /// Names the store failed for, left as the state had them, for
    /// whoever asked to retry them.
    pub unsure: Vec<Unsure>,
}

/// A name a pass could not look at, and why.
#[derive(Debug)]
pub struct Unsure {
    pub name: String,
    pub error: StoreError,
}

/// What a pass did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub prefix: String,
    /// The repository as people read it, e.g. `s3://bucket/All/`.
    pub repository: String,
    /// Packages indexed after the pass.
    pub packages: usize,
    /// Names whose headers were read.
    pub read: Vec<String>,
    /// Names dropped because they are gone.
    pub removed: Vec<String>,
    /// Names the state already reflected.
    pub unchanged: usize,
    /// Every package of the repository that is there but cannot be
    /// indexed, with the reason: those found in this pass and those
    /// remembered from earlier ones, so they are reported every time.
    pub failures: Vec<(String, String)>,
    /// What pkg_info would warn about the packages read in this pass
    /// (and, on a listing pass, the repository-wide warnings kept).
    pub warnings: Vec<(String, String)>,
    /// Repository-wide warnings found beyond those in `warnings`.
    pub warnings_more: usize,
    /// Bytes fetched from package headers.
    pub bytes_fetched: u64,
    /// State commits tried (1 when uncontended).
    pub attempts: u32,
    pub generation: u64,
    /// Whether this pass committed a new state.
    pub committed: bool,
    /// Whether this pass wrote summary files.
    pub published: bool,
    /// Why the summary was not published (a hold, a gate), one line each.
    pub held: Vec<String>,
    /// Releases still incomplete after `PKGSUM_RELEASE_TIMEOUT`, one line
    /// each (their packages are not published).
    pub stalled: Vec<String>,
    /// Runs of records compressed for the summary files this pass wrote,
    /// and runs copied from the files published before (all formats).
    pub runs_compressed: usize,
    pub runs_copied: usize,
    /// Runs of the site rendered and copied.
    pub site_rendered: usize,
    pub site_copied: usize,
    /// Pieces of the state that no manifest names, deleted by a listing
    /// pass (left by commits that lost a race or were cut short).
    pub pieces_collected: usize,
    /// Set when the pass found the state lost (missing while summaries
    /// were published, or unreadable) and recreated it from a listing.
    pub state_lost: Option<StateLoss>,
    /// Suffixes indexed because earlier passes were given them, although
    /// this one was not.
    pub remembered_suffixes: Vec<String>,
    /// The highest generation the published files carried, when the pass
    /// had to move the state's generation past it.
    pub published_generation: Option<u64>,
}

impl Report {
    /// How the pass ends: unreadable packages or a summary held back
    /// need a person.
    pub fn verdict(&self) -> crate::verdict::Verdict {
        let attention = self.failures.len() + self.held.len() + self.stalled.len();
        crate::verdict::Verdict::from_unreadable(attention)
    }

    /// One line on what the pass did.
    pub fn summary(&self) -> String {
        let plural = if self.packages == 1 { "" } else { "s" };
        format!(
            "{} package{plural}: read {}, removed {}, unchanged {}, unreadable {}; {} bytes fetched; generation {}{}",
            self.packages,
            self.read.len(),
            self.removed.len(),
            self.unchanged,
            self.failures.len(),
            self.bytes_fetched,
            self.generation,
            if self.published {
                ", published"
            } else if !self.held.is_empty() {
                ", held"
            } else {
                ""
            }
        )
    }
}

/// How a repository's state was found lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateLoss {
    /// No state, although summaries had been published.
    Missing,
    /// A state that cannot be read, with the reason.
    Unreadable(String),
}

impl std::fmt::Display for StateLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateLoss::Missing => f.write_str("missing"),
            StateLoss::Unreadable(reason) => write!(f, "unreadable ({reason})"),
        }
    }
}

/// Why a pass could not finish. Nothing is lost: the bucket still holds
/// the truth and the next event or reconcile redoes the work.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{object}: still contended after {attempts} attempts (other writers kept winning)")]
    Contended { object: String, attempts: u32 },
    #[error(
        "{repository}: would hold {count} packages, more than the limit of {limit} (PKGSUM_MAX_RECORDS)"
    )]
    TooManyPackages {
        repository: String,
        count: usize,
        limit: usize,
    },
    /// A listing found no package, which is far more often a mistyped
    /// prefix than a repository emptied on purpose.
    #[error("{repository}: {}", no_packages_message(*.indexed))]
    NoPackages { repository: String, indexed: usize },
    #[error("{object}: encoding the state: {error}")]
    EncodeState { object: String, error: Error },
    #[error("{repository}: rendering the summary: {error}")]
    Render {
        repository: String,
        error: std::io::Error,
    },
}

/// What refusing an empty listing says, for a directory and a bucket alike.
fn no_packages_message(indexed: usize) -> String {
    let kept = match indexed {
        0 => "nothing was published".to_owned(),
        n => format!(
            "the index still lists {}, left as it is",
            crate::excerpt::count(n, "package")
        ),
    };
    format!(
        "no packages found: {kept} (is the path right? --allow-empty or PKGSUM_ALLOW_EMPTY=1 publishes an empty summary)"
    )
}
