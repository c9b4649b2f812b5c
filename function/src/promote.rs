//! `pkgsum promote SRC DEST`: moves packages from one repository to
//! another without rebuilding them (testing to stable), with `push`'s
//! guarantees. The packages are named by PKGNAME, or by the release that
//! pushed them to SRC; each must be in SRC as SRC indexed it. Each one's
//! header is read from SRC (ranged GETs, as the indexer reads) and judged
//! as `push` judges a file against DEST: its platform, DEST's signature
//! policy, what is at its key. Nothing is copied unless all pass. The
//! copies are made inside the store (CopyObject, UploadPartCopy above
//! 5 GiB; across buckets of one endpoint), each pinned to the ETag it was
//! judged at and written only if DEST's key is still as checked, all
//! tagged as one release so DEST publishes them in one generation. A
//! directory on either side is copied through pkgsum. Once live, DEST's
//! history entry of that generation says where they came from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};

use crate::excerpt::{Bare, Escaped, count};
use crate::fetch::{FetchError, fetch_header};
use crate::push::check::{self, Found, Published, judge_header};
use crate::push::upload::{SHA256, release_id};
use crate::push::wait::{self, Fate};
use crate::push::{Checked, Refused};
use crate::record;
use crate::release::{self, Tag};
use crate::repo::{PassError, Repo, Scope};
use crate::store::open::AnyStore;
use crate::store::s3::{CopySource, Copying};
use crate::store::{Checksum, ObjectMeta, PutMode, PutOptions, Store, StoreError};

/// Which packages to promote.
#[derive(Debug, Clone, Copy)]
pub enum Chosen<'a> {
    /// By PKGNAME (or file name).
    Names(&'a [String]),
    /// Every package of a release pushed to SRC.
    Release(&'a str),
}

/// Why a promotion could not start.
#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error(transparent)]
    Pass(#[from] PassError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{repository}: {} not indexed there: {}", count(*.missing, "package"), .named.join(", "))]
    Missing {
        repository: String,
        missing: usize,
        named: Vec<String>,
    },
    #[error("{repository}: {} changed since it was indexed: promote once the indexer has read {}", .named.join(", "), if .named.len() == 1 { "it" } else { "them" })]
    Changed {
        repository: String,
        named: Vec<String>,
    },
    #[error("{repository}: no package of release {id} is there")]
    NoRelease { repository: String, id: String },
    #[error(
        "{repository}: release {id} has {expected} packages, {found} of them are there: not promoted by halves"
    )]
    Partial {
        repository: String,
        id: String,
        expected: u32,
        found: usize,
    },
    #[error("{0}: promoting a repository into itself")]
    Same(String),
}

/// Most names a refusal lists; the rest are counted.
const NAMED: usize = 20;

/// A package of SRC to promote.
#[derive(Debug, Clone)]
pub struct Source {
    /// Its file name in SRC.
    pub name: String,
    /// What SRC holds at its key, as judged.
    pub meta: ObjectMeta,
}

/// What a promotion did before waiting.
#[derive(Debug)]
pub struct Promoted {
    /// SRC as people read it, and the generation it had published.
    pub from: String,
    pub from_generation: u64,
    /// What the checks against DEST found.
    pub found: Found,
    /// The release the copies make (none when nothing was copied).
    pub release: Option<Tag>,
    /// Each checked package's copy: `Ok(true)` copied, `Ok(false)` the
    /// same bytes were there, or why it failed.
    pub copied: Vec<Result<bool, String>>,
}

impl Promoted {
    /// Whether nothing was copied because a check refused a package.
    pub fn refused(&self) -> bool {
        !self.found.refused.is_empty()
    }
}

/// How to promote.
#[derive(Debug, Clone, Copy, Default)]
pub struct PromoteOptions {
    /// Replace a different object at a key in DEST (else refused).
    pub replace: bool,
    pub copying: Copying,
}

/// Chooses, checks and copies: the packages `chosen` from `src` into
/// `dest`, unless a check refuses one.
pub async fn promote(
    src: &Repo<'_, AnyStore>,
    dest: &Repo<'_, AnyStore>,
    chosen: Chosen<'_>,
    options: PromoteOptions,
) -> Result<Promoted, PromoteError> {
    if src.location() == dest.location() {
        return Err(PromoteError::Same(src.location()));
    }
    let sources = choose(src, chosen).await?;
    let from_generation = check::published(src).await?.map_or(0, |p| p.generation);
    let published = check::published(dest).await?;
    let mut found = judge(src, dest, &sources, published.as_ref(), options).await?;
    found.published_generation = published.as_ref().map_or(0, |p: &Published| p.generation);
    let mut promoted = Promoted {
        from: src.location(),
        from_generation,
        found,
        release: None,
        copied: Vec::new(),
    };
    if promoted.refused() || promoted.found.checked.is_empty() {
        return Ok(promoted);
    }
    let sending = promoted.found.checked.iter().filter(|c| !c.present).count();
    promoted.release = (sending > 0).then(|| Tag {
        id: release_id("promote"),
        count: u32::try_from(sending).unwrap_or(u32::MAX),
    });
    let by_name: BTreeMap<&str, &Source> = sources.iter().map(|s| (s.name.as_str(), s)).collect();
    let copies = promoted.found.checked.iter().map(|checked| {
        let source = by_name
            .get(checked.path.to_str().unwrap_or_default())
            .copied();
        let release = promoted.release.as_ref();
        async move {
            match (checked.present, source) {
                (true, _) => Ok(false),
                (false, Some(source)) => copy_one(src, dest, source, checked, release, options)
                    .await
                    .map(|_| true),
                (false, None) => Err("its source is unknown".to_owned()),
            }
        }
    });
    promoted.copied = stream::iter(copies)
        .buffered(dest.config().concurrency.max(1))
        .collect()
        .await;
    Ok(promoted)
}

/// The packages of `src` that `chosen` names, each as SRC indexed it.
async fn choose(src: &Repo<'_, AnyStore>, chosen: Chosen<'_>) -> Result<Vec<Source>, PromoteError> {
    let state = src.read_state().await?;
    let names: Vec<String> = match chosen {
        Chosen::Names(wanted) => {
            let by_pkgname: BTreeMap<&[u8], &str> = state
                .packages()
                .filter_map(|(name, p)| Some((record::pkgname(&p.record)?, name)))
                .collect();
            let mut names = Vec::new();
            let mut missing = Vec::new();
            for want in wanted {
                let bare = want.strip_suffix(".tgz").unwrap_or(want);
                let found = by_pkgname
                    .get(bare.as_bytes())
                    .map(|n| (*n).to_owned())
                    .or_else(|| state.package(want).map(|_| want.clone()));
                match found {
                    Some(name) => names.push(name),
                    None => missing.push(want.clone()),
                }
            }
            if !missing.is_empty() {
                return Err(PromoteError::Missing {
                    repository: src.location(),
                    missing: missing.len(),
                    named: missing
                        .iter()
                        .take(NAMED)
                        .map(|m| Bare(m).to_string())
                        .collect(),
                });
            }
            names
        }
        Chosen::Release(_) => state.packages().map(|(n, _)| n.to_owned()).collect(),
    };
    let heads = names.iter().map(|name| async move {
        let key = format!("{}{name}", src.prefix());
        (name, src.store().head(&key).await)
    });
    let found: Vec<_> = stream::iter(heads)
        .buffered(src.config().concurrency.max(1))
        .collect()
        .await;
    let mut sources = Vec::new();
    let mut changed = Vec::new();
    for (name, head) in found {
        let Some(meta) = head? else {
            changed.push(Bare(name).to_string());
            continue;
        };
        let package = state.package(name);
        if package.is_none_or(|p| p.token != meta.etag || p.size != meta.size) {
            changed.push(Bare(name).to_string());
            continue;
        }
        sources.push(Source {
            name: name.clone(),
            meta,
        });
    }
    if let Chosen::Release(id) = chosen {
        return of_release(src, id, sources);
    }
    if !changed.is_empty() {
        changed.truncate(NAMED);
        return Err(PromoteError::Changed {
            repository: src.location(),
            named: changed,
        });
    }
    Ok(sources)
}

/// The members of release `id` among `sources`, all of them.
fn of_release(
    src: &Repo<'_, AnyStore>,
    id: &str,
    sources: Vec<Source>,
) -> Result<Vec<Source>, PromoteError> {
    let mut expected = 0;
    let members: Vec<Source> = sources
        .into_iter()
        .filter(|s| {
            let tag = s.meta.metadata.get(release::METADATA);
            match tag.and_then(|t| Tag::parse(t).ok()) {
                Some(tag) if tag.id == id => {
                    expected = tag.count;
                    true
                }
                _ => false,
            }
        })
        .collect();
    if members.is_empty() {
        return Err(PromoteError::NoRelease {
            repository: src.location(),
            id: Escaped(id).to_string(),
        });
    }
    if members.len() != expected as usize {
        return Err(PromoteError::Partial {
            repository: src.location(),
            id: Escaped(id).to_string(),
            expected,
            found: members.len(),
        });
    }
    Ok(members)
}

/// Reads each source's header from SRC and judges it against DEST as
/// `push` judges a file; a source's `path` in the answer is its name in
/// SRC.
async fn judge(
    src: &Repo<'_, AnyStore>,
    dest: &Repo<'_, AnyStore>,
    sources: &[Source],
    published: Option<&Published>,
    options: PromoteOptions,
) -> Result<Found, PromoteError> {
    let config = dest.config();
    let reads = sources.iter().map(|source| async move {
        let header = fetch_header(src.store(), &source.meta, &config.fetch).await;
        (source, header)
    });
    let read: Vec<_> = stream::iter(reads)
        .buffered(config.concurrency.max(1))
        .collect()
        .await;
    let mut found = Found::default();
    let mut judged = Vec::new();
    for (source, header) in read {
        let path = PathBuf::from(&source.name);
        let header = match header {
            Ok(fetched) => fetched.header,
            Err(FetchError::Store(err)) => return Err(err.into()),
            Err(FetchError::Package(err)) => {
                let why = format!("SRC cannot be read as a package: {err}");
                found.refused.push(Refused { path, why });
                continue;
            }
        };
        match judge_header(&path, &header, source.meta.size, config) {
            Ok(checked) => judged.push(checked),
            Err(why) => found.refused.push(Refused { path, why }),
        }
    }
    let judged = check::against_repository(judged, published, &mut found);
    let by_name: BTreeMap<&str, &Source> = sources.iter().map(|s| (s.name.as_str(), s)).collect();
    for checked in judged {
        let source = by_name.get(checked.path.to_str().unwrap_or_default());
        let Some(source) = source else { continue };
        match at_dest(dest, checked, source, options).await? {
            Ok(checked) => found.checked.push(checked),
            Err(refused) => found.refused.push(refused),
        }
    }
    Ok(found)
}

/// What is at `checked`'s key in DEST: nothing, the same bytes (nothing
/// to do), or another object (refused, or replaced with `replace`).
async fn at_dest(
    dest: &Repo<'_, AnyStore>,
    checked: Checked,
    source: &Source,
    options: PromoteOptions,
) -> Result<Result<Checked, Refused>, StoreError> {
    let key = format!("{}{}", dest.prefix(), checked.name);
    let Some(meta) = dest.store().head(&key).await? else {
        return Ok(Ok(checked));
    };
    let digest = |m: &ObjectMeta| m.metadata.get(SHA256).cloned();
    let single_put = !source.meta.etag.contains('-');
    let same = meta.size == source.meta.size
        && ((single_put && meta.etag == source.meta.etag)
            || digest(&meta).is_some_and(|d| Some(d) == digest(&source.meta)));
    let location = dest.store().location(&key);
    Ok(check::taken(checked, same, options.replace, meta, location))
}

/// Copies one package into DEST under its checked name, tagged with the
/// release, pinned to the ETag it was judged at.
async fn copy_one(
    src: &Repo<'_, AnyStore>,
    dest: &Repo<'_, AnyStore>,
    source: &Source,
    checked: &Checked,
    release: Option<&Tag>,
    options: PromoteOptions,
) -> Result<String, String> {
    let to = format!("{}{}", dest.prefix(), checked.name);
    let mut metadata = BTreeMap::new();
    if let Some(tag) = release {
        metadata.insert(release::METADATA.to_owned(), tag.to_string());
    }
    if let Some(digest) = source.meta.metadata.get(SHA256) {
        metadata.insert(SHA256.to_owned(), digest.clone());
    }
    let mut put = PutOptions {
        mode: match &checked.replaces {
            Some(etag) => PutMode::Update(etag.clone()),
            None => PutMode::Create,
        },
        metadata,
        ..PutOptions::default()
    };
    let copied = match (src.store(), dest.store()) {
        (AnyStore::S3(from), AnyStore::S3(into)) => {
            let source = CopySource {
                store: from,
                key: &source.meta.key,
                etag: &source.meta.etag,
                size: source.meta.size,
            };
            into.copy_in(source, &to, put, options.copying).await
        }
        _ => {
            // A directory on either side: through pkgsum, checked.
            let got = src.store().get(&source.meta.key).await;
            match got {
                Ok(Some((body, meta))) if meta.etag == source.meta.etag => {
                    put.checksum = Some(Checksum::of(&body));
                    dest.store().put(&to, body, put).await
                }
                Ok(_) => Err(StoreError::new(
                    crate::store::Op::Get,
                    src.store().location(&source.meta.key),
                    crate::store::ErrorKind::Precondition,
                )),
                Err(err) => Err(err),
            }
        }
    };
    copied.map_err(|err| match err.is_precondition() {
        true => format!("{err} (it changed in SRC, or DEST's key was written, meanwhile)"),
        false => err.to_string(),
    })
}

/// What became of the promoted packages in DEST.
#[derive(Debug)]
pub struct Settled {
    pub fates: BTreeMap<String, Fate>,
    /// The generation that lists them, when they are live.
    pub generation: Option<u64>,
    /// Whether an indexer answered (always, for a directory).
    pub answered: bool,
}

/// Waits until the copies are live in DEST (a directory is indexed at
/// once), then says in DEST's history where they came from.
pub async fn settle(
    dest: &Repo<'_, AnyStore>,
    promoted: &Promoted,
    started: Instant,
    before: u64,
    timeout: Duration,
) -> Result<Settled, PromoteError> {
    let copied: Vec<&Checked> = promoted
        .found
        .checked
        .iter()
        .zip(&promoted.copied)
        .filter(|(_, copied)| copied.is_ok())
        .map(|(checked, _)| checked)
        .collect();
    let settled = match dest.store() {
        AnyStore::Local(_) => {
            let names: BTreeSet<String> = copied.iter().map(|c| c.name.clone()).collect();
            let applied = dest.apply(Scope::Names(&names), &()).await?;
            let report = applied.report;
            let live = started.elapsed();
            let fates = names
                .iter()
                .map(|name| {
                    let failure = report.failures.iter().find(|(n, _)| n == name);
                    let fate = match (failure, report.held.first()) {
                        (Some((_, why)), _) => Fate::Unreadable(why.clone()),
                        (None, Some(why)) => Fate::Held(why.clone()),
                        (None, None) => Fate::Live(live),
                    };
                    (name.clone(), fate)
                })
                .collect();
            Settled {
                fates,
                generation: report.published.then_some(report.generation),
                answered: true,
            }
        }
        AnyStore::S3(_) => {
            let watched: Vec<(String, Vec<u8>, u64)> = copied
                .iter()
                .map(|c| (c.name.clone(), c.record.clone(), c.size))
                .collect();
            let waited = wait::wait(dest, &watched, started, before, timeout).await?;
            Settled {
                fates: waited.fates,
                generation: waited.generation,
                answered: waited.answered,
            }
        }
    };
    let all_live = settled.fates.values().all(|f| matches!(f, Fate::Live(_)));
    if let (true, Some(generation)) = (all_live, settled.generation)
        && !copied.is_empty()
    {
        let note = format!(
            "promoted from {} generation {}: {}",
            promoted.from,
            promoted.from_generation,
            count(copied.len(), "package")
        );
        // The history entry is written just after the summaries it
        // follows: it may not be there the moment they are live.
        for _ in 0..150 {
            if dest.config().history == 0 || dest.note_history(generation, &note).await? {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(settled)
}
