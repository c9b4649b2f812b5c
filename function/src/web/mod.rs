//! The browsable site, published with each generation beside the
//! summaries: `PREFIX/index.html` (the page, [`page`]),
//! `PREFIX/packages.json` (the same data for tools) and the runs' files
//! under `PREFIX/site/`. `PKGSUM_SITE=0` turns it off.
//!
//! Its cost per update is bounded as the summaries' is: the packages are
//! cut into the same runs (by the state's pieces and their digests), each
//! run is three files ([`crate::site::run_files`]) under a name used once
//! (`GENERATION-RANDOM`), and the page and `packages.json` only name
//! them. An update renders and writes the runs whose records changed and
//! names the others again, found by the layout kept in
//! `.pkgsum/site.json` (used only while `packages.json` still has the ETag
//! the layout was written for, and the verdicts are those it was rendered
//! with; a run whose files are not all listed under `site/` is rendered
//! again). The page and `packages.json` are a few kilobytes whatever the
//! repository's size; a browser fetches the runs' tables at once and a
//! run's details when one of its packages is opened.
//!
//! Files no page names any more are removed an hour after they were
//! written (a page loaded before still opens its details meanwhile), at
//! most [`MAX_REMOVED`] a pass, by the pass that published the page; so
//! are the files of a pass that lost the race to publish.
//!
//! Its awaits are boxed, as the rest of publishing's are: inline, their
//! futures would grow every pass's.

pub mod page;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::keys::GENERATION;
use crate::repo::{PassError, Repo, whole_seconds};
use crate::site::{RunFiles, push_string, run_files};
use crate::state::State;
use crate::store::{Bounded, ObjectMeta, PutMode, PutOptions, Store};

/// The page, and the data for tools.
pub const INDEX: &str = "index.html";
pub const PACKAGES: &str = "packages.json";

/// Where the runs' files are, under the prefix.
pub const RUNS_DIR: &str = "site/";

/// The run files' names after their stem: the table's script, the
/// details' script, the JSON for tools.
const TABLE: &str = ".js";
const DETAILS: &str = ".details.js";
const JSON: &str = ".json";

/// The records a run of the site holds, about.
const RUN_TARGET: usize = 256 << 10;

/// The layout's format: another is not read.
const LAYOUT_VERSION: u32 = 2;

/// The largest layout, audit or history entry read.
const SMALL_LIMIT: u64 = 8 << 20;

/// How many generations "recent changes" shows.
const RECENT: usize = 10;

/// How long a run's files stay once no page names them.
const KEEP_UNNAMED: Duration = Duration::from_secs(3600);

/// Most unnamed files one pass removes.
pub const MAX_REMOVED: usize = 256;

/// Where each run's files are: the `packages.json` the layout was written
/// with (its generation and ETag), the verdicts' fingerprint the runs
/// were rendered with, and each run's digest, stem and package count.
#[derive(Serialize, Deserialize)]
struct SiteLayout {
    version: u32,
    generation: u64,
    etag: String,
    verdicts: String,
    runs: Vec<LaidRun>,
}

#[derive(Clone, Serialize, Deserialize)]
struct LaidRun {
    digest: String,
    stem: String,
    count: usize,
}

/// The findings of the last audit, kept by `pkgsum vulnerabilities` and
/// `pkgsum audit` in `.pkgsum/audit.json` for the site.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditFile {
    /// When the audit was made, in seconds since the epoch.
    pub checked: u64,
    /// (file, PKGNAME, type, URL).
    pub findings: Vec<(String, String, String, String)>,
}

/// Where the layout and the audit are kept.
fn layout_key(prefix: &str) -> String {
    format!("{prefix}.pkgsum/site.json")
}

pub fn audit_key(prefix: &str) -> String {
    format!("{prefix}.pkgsum/audit.json")
}

/// Whether `stem` is a run's stem as pkgsum names them: a generation, a
/// dash, 16 lower-case hex digits. Layouts are read from the store, so
/// their stems are checked before any is used in a key or a page.
fn is_stem(stem: &str) -> bool {
    let Some((generation, random)) = stem.split_once('-') else {
        return false;
    };
    (1..=20).contains(&generation.len())
        && generation.bytes().all(|b| b.is_ascii_digit())
        && random.len() == 16
        && random
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The stem of a run file's name (`STEM.js`, `STEM.details.js`,
/// `STEM.json`), if it is one: what the gateway serves under `site/`.
pub fn run_file_stem(name: &str) -> Option<&str> {
    let stem = name
        .strip_suffix(DETAILS)
        .or_else(|| name.strip_suffix(TABLE))
        .or_else(|| name.strip_suffix(JSON))?;
    is_stem(stem).then_some(stem)
}

/// A new stem for a run written in `generation`: never one in use.
fn new_stem(generation: u64) -> String {
    format!("{generation}-{:016x}", fastrand::u64(..))
}

/// What publishing the site did: runs rendered and named again.
#[derive(Debug, Clone, Copy, Default)]
pub struct SitePublished {
    pub rendered: usize,
    pub copied: usize,
}

/// The fingerprint of the verdicts a site shows: a change re-renders
/// every run (they are kept per file, apart from the records' digests).
fn fingerprint(verdicts: &BTreeMap<String, String>) -> String {
    let mut hash = Sha256::new();
    for (file, verdict) in verdicts {
        hash.update(file.as_bytes());
        hash.update([0]);
        hash.update(verdict.as_bytes());
        hash.update([0]);
    }
    pkgsum_core::hex(&hash.finalize())
}

impl<S: Store> Repo<'_, S> {
    /// Publishes the site of `state` (whose summary leaves out
    /// `unlisted`) as generation `generation`, unless the one there is of
    /// this generation or later.
    pub async fn publish_site(
        &self,
        state: &mut State,
        unlisted: &BTreeSet<String>,
    ) -> Result<Option<SitePublished>, PassError> {
        Box::pin(self.site_of(state, unlisted, false)).await
    }

    /// Publishes the site again for `state`, the index as it is (after
    /// an audit: what the page says of vulnerabilities changed, the
    /// packages did not), unless the site is off.
    pub async fn refresh_site(
        &self,
        state: &mut State,
    ) -> Result<Option<SitePublished>, PassError> {
        if !self.config().site {
            return Ok(None);
        }
        let packages: Vec<(&str, &[u8])> = state
            .packages()
            .map(|(n, p)| (n, p.record.as_slice()))
            .collect();
        let unlisted = crate::checks::unlisted(self.config().gates.select, packages);
        Box::pin(self.site_of(state, &unlisted, true)).await
    }

    /// The site of `state`; `again` writes it even if the one there is
    /// of this generation.
    async fn site_of(
        &self,
        state: &mut State,
        unlisted: &BTreeSet<String>,
        again: bool,
    ) -> Result<Option<SitePublished>, PassError> {
        let generation = state.generation();
        let packages_key = format!("{}{PACKAGES}", self.prefix());
        let current = Box::pin(self.store().head(&packages_key)).await?;
        let there = current
            .as_ref()
            .and_then(|m| m.metadata.get(GENERATION)?.parse::<u64>().ok());
        if there.is_some_and(|g| g > generation || (g == generation && !again)) {
            return Ok(None);
        }
        // Owned, so the state can load pieces meanwhile.
        let verdicts = self.verdicts(state);
        let fingerprint = fingerprint(&verdicts);
        let plan = crate::repo::plan_runs(state, unlisted, RUN_TARGET);
        let mut previous = Box::pin(self.previous_layout(current.as_ref(), &fingerprint)).await;
        // The bucket is the truth: a run some of whose files are gone is
        // rendered again.
        let listed = Box::pin(self.list_runs()).await;
        if let Some(listed) = &listed {
            let dir = self.runs_dir();
            let present: BTreeSet<&str> = listed
                .iter()
                .filter_map(|m| m.key.strip_prefix(&dir))
                .collect();
            previous.retain(|_, run| {
                [TABLE, DETAILS, JSON]
                    .iter()
                    .all(|suffix| present.contains(format!("{}{suffix}", run.stem).as_str()))
            });
        }
        let digests: Vec<String> = plan.digests.iter().map(|d| pkgsum_core::hex(d)).collect();
        let todo: Vec<usize> = (0..plan.runs.len())
            .filter(|&i| !previous.contains_key(&digests[i]))
            .collect();
        let unloaded = state.unloaded();
        let wanted: BTreeSet<usize> = todo
            .iter()
            .flat_map(|&i| plan.runs[i].clone())
            .filter(|p| unloaded.contains(p))
            .collect();
        if !wanted.is_empty()
            && Box::pin(self.load_pieces_for_site(state, wanted))
                .await?
                .is_none()
        {
            return Ok(None);
        }
        let mut runs: Vec<LaidRun> = Vec::with_capacity(plan.runs.len());
        let mut rendered: Vec<(String, RunFiles)> = Vec::with_capacity(todo.len());
        for (i, run) in plan.runs.iter().enumerate() {
            let laid = match previous.get(&digests[i]) {
                Some(laid) => laid.clone(),
                None => {
                    let text = state
                        .records_in(run.clone(), unlisted)
                        .map_err(|e| self.site_error(e.to_string()))?;
                    let files = run_files(&text, |f| verdicts.get(f).cloned());
                    let stem = new_stem(generation);
                    let count = files.count;
                    rendered.push((stem.clone(), files));
                    LaidRun {
                        digest: digests[i].clone(),
                        stem,
                        count,
                    }
                }
            };
            runs.push(laid);
        }
        Box::pin(self.put_runs(rendered)).await?;
        let count = runs.iter().map(|r| r.count).sum();
        let stems: Vec<&str> = runs.iter().map(|r| r.stem.as_str()).collect();
        let meta = Box::pin(self.meta(state, count, unlisted, &stems)).await?;
        let mut json = format!("{{\"meta\":{meta},\"parts\":[");
        for (i, stem) in stems.iter().enumerate() {
            let comma = if i > 0 { "," } else { "" };
            json.push_str(&format!("{comma}\n\"{RUNS_DIR}{stem}{JSON}\""));
        }
        json.push_str("\n]}\n");
        let written = Box::pin(self.put_site(
            &packages_key,
            json.into_bytes(),
            "application/json",
            current.as_ref(),
            generation,
        ))
        .await?;
        let Some(etag) = written else {
            return Ok(None);
        };
        let index_key = format!("{}{INDEX}", self.prefix());
        let index_now = Box::pin(self.store().head(&index_key)).await?;
        Box::pin(self.put_site(
            &index_key,
            page::render(&meta),
            "text/html; charset=utf-8",
            index_now.as_ref(),
            generation,
        ))
        .await?;
        let layout = SiteLayout {
            version: LAYOUT_VERSION,
            generation,
            etag,
            verdicts: fingerprint,
            runs,
        };
        // Best effort, so before the layout: a pass whose store fails
        // from here on still fails, on the layout's write.
        let named: BTreeSet<&str> = layout.runs.iter().map(|r| r.stem.as_str()).collect();
        if let Some(listed) = listed {
            Box::pin(self.remove_unnamed(listed, &named)).await;
        }
        Box::pin(self.put_json(&layout_key(self.prefix()), &layout)).await?;
        Ok(Some(SitePublished {
            rendered: todo.len(),
            copied: plan.runs.len() - todo.len(),
        }))
    }

    /// The signature verdicts the site shows, by file: none unless a
    /// policy is set.
    fn verdicts(&self, state: &State) -> BTreeMap<String, String> {
        match self.config().trust.policy() {
            crate::trust::Policy::Ignore => BTreeMap::new(),
            _ => state
                .verdicts()
                .map(|(n, v)| (n.to_owned(), v.to_string()))
                .collect(),
        }
    }

    /// Where the run files are.
    fn runs_dir(&self) -> String {
        format!("{}{RUNS_DIR}", self.prefix())
    }

    /// Writes the rendered runs' files, a few at a time.
    async fn put_runs(&self, rendered: Vec<(String, RunFiles)>) -> Result<(), PassError> {
        let immutable = |content_type: &str| PutOptions {
            content_type: Some(content_type.to_owned()),
            // A name is used once: its bytes never change.
            cache_control: Some("public, max-age=31536000, immutable".to_owned()),
            ..PutOptions::default()
        };
        let mut puts = Vec::with_capacity(rendered.len() * 3);
        for (stem, files) in rendered {
            let key = |suffix: &str| format!("{}{stem}{suffix}", self.runs_dir());
            let script = "text/javascript; charset=utf-8";
            puts.push((key(TABLE), files.table, immutable(script)));
            puts.push((key(DETAILS), files.details, immutable(script)));
            puts.push((key(JSON), files.json, immutable("application/json")));
        }
        let mut writes = futures::stream::iter(puts)
            .map(|(key, body, options)| async move {
                self.store().put(&key, Bytes::from(body), options).await
            })
            .buffer_unordered(self.config().concurrency.max(1));
        while let Some(written) = writes.next().await {
            written?;
        }
        Ok(())
    }

    /// Writes `value` as JSON at `key`: the layout, the kept audit.
    async fn put_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), PassError> {
        let body = serde_json::to_vec(value).map_err(|e| self.site_error(e.to_string()))?;
        let options = PutOptions {
            content_type: Some("application/json".to_owned()),
            ..PutOptions::default()
        };
        self.store().put(key, Bytes::from(body), options).await?;
        Ok(())
    }

    /// The runs of the site published before (`current` is its
    /// `packages.json`), by digest, when the layout was written for
    /// exactly that file and these verdicts; else none.
    async fn previous_layout(
        &self,
        current: Option<&ObjectMeta>,
        verdicts: &str,
    ) -> BTreeMap<String, LaidRun> {
        let Some(current) = current else {
            return BTreeMap::new();
        };
        let key = layout_key(self.prefix());
        let Ok(Some(Bounded::Whole(body, _))) = self.store().get_bounded(&key, SMALL_LIMIT).await
        else {
            return BTreeMap::new();
        };
        let Ok(layout) = serde_json::from_slice::<SiteLayout>(&body) else {
            return BTreeMap::new();
        };
        let usable = layout.version == LAYOUT_VERSION
            && layout.etag == current.etag
            && layout.verdicts == verdicts
            // Read from the store: its stems are checked, not trusted.
            && layout.runs.iter().all(|r| is_stem(&r.stem));
        if !usable {
            return BTreeMap::new();
        }
        layout
            .runs
            .into_iter()
            .map(|r| (r.digest.clone(), r))
            .collect()
    }

    /// The run files under `site/`, if they can be listed.
    async fn list_runs(&self) -> Option<Vec<ObjectMeta>> {
        self.store().list(&self.runs_dir()).await.ok()
    }

    /// Removes the run files of `listed` (listed before this pass wrote
    /// its own) that no page names (`named` are the stems the page just
    /// published names) and that were written more than [`KEEP_UNNAMED`]
    /// ago, at most [`MAX_REMOVED`]; a file that cannot be removed now is
    /// removed by a later pass.
    async fn remove_unnamed(&self, listed: Vec<ObjectMeta>, named: &BTreeSet<&str>) {
        let dir = self.runs_dir();
        let now = SystemTime::now();
        let stale = listed.into_iter().filter(|m| {
            let name = m.key.strip_prefix(&dir).unwrap_or_default();
            let old = m
                .last_modified
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age >= KEEP_UNNAMED);
            old && run_file_stem(name).is_none_or(|stem| !named.contains(stem))
        });
        let keys: Vec<String> = stale.take(MAX_REMOVED).map(|m| m.key).collect();
        let mut deletes = futures::stream::iter(keys)
            .map(|key| async move { self.store().delete(&key).await })
            .buffer_unordered(self.config().concurrency.max(1));
        while deletes.next().await.is_some() {}
    }

    /// Loads pieces for the site; `None` when a newer commit dropped one
    /// (its pass publishes the site).
    async fn load_pieces_for_site(
        &self,
        state: &mut State,
        wanted: BTreeSet<usize>,
    ) -> Result<Option<()>, PassError> {
        match self.load_pieces(state, wanted).await {
            Ok(()) => Ok(Some(())),
            Err(crate::repo::PieceError::Store(err)) if !err.is_moved_on() => Err(err.into()),
            Err(_) => Ok(None),
        }
    }

    /// The page's facts: the generation, when, how many packages, whether
    /// signatures are judged, the runs' stems, the recent changes and the
    /// last audit.
    async fn meta(
        &self,
        state: &State,
        count: usize,
        unlisted: &BTreeSet<String>,
        stems: &[&str],
    ) -> Result<String, PassError> {
        let mut meta = format!(
            "{{\"generation\":{},\"updated\":{},\"count\":{count},\"signatures\":{}",
            state.generation(),
            whole_seconds(std::time::SystemTime::now()),
            self.config().trust.policy() != crate::trust::Policy::Ignore
        );
        // Stems are pkgsum's own names ([`is_stem`]): nothing to escape.
        meta.push_str(",\"runs\":[");
        for (i, stem) in stems.iter().enumerate() {
            let comma = if i > 0 { "," } else { "" };
            meta.push_str(&format!("{comma}\"{stem}\""));
        }
        meta.push(']');
        meta.push_str(",\"changes\":[");
        for (i, entry) in Box::pin(self.recent_history(RECENT))
            .await?
            .iter()
            .enumerate()
        {
            if i > 0 {
                meta.push(',');
            }
            let list = |names: &[String]| {
                let mut out = String::from("[");
                for (j, n) in names.iter().take(50).enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    push_string(&mut out, n, 256);
                }
                out.push(']');
                out
            };
            let c = &entry.changes;
            meta.push_str(&format!(
                "{{\"generation\":{},\"time\":{},\"added\":{},\"removed\":{},\"replaced\":{},\"more\":{}",
                entry.generation,
                entry.time,
                list(&c.added),
                list(&c.removed),
                list(&c.replaced),
                c.more
            ));
            if let Some(note) = &entry.note {
                meta.push_str(",\"note\":");
                push_string(&mut meta, note, 1024);
            }
            meta.push('}');
        }
        meta.push(']');
        if let Some(audit) = Box::pin(self.last_audit()).await? {
            meta.push_str(&format!(",\"vulnerabilities_checked\":{}", audit.checked));
            meta.push_str(",\"vulnerabilities\":[");
            let present = audit
                .findings
                .iter()
                .filter(|(file, ..)| state.package(file).is_some() && !unlisted.contains(file));
            for (i, (file, pkgname, kind, url)) in present.take(10_000).enumerate() {
                if i > 0 {
                    meta.push(',');
                }
                let mut item = String::from("{\"file\":");
                push_string(&mut item, file, 1024);
                item.push_str(",\"pkgname\":");
                push_string(&mut item, pkgname, 1024);
                item.push_str(",\"type\":");
                push_string(&mut item, kind, 1024);
                item.push_str(",\"url\":");
                push_string(&mut item, url, 1024);
                item.push('}');
                meta.push_str(&item);
            }
            meta.push(']');
        }
        meta.push('}');
        Ok(meta)
    }

    /// The last audit kept for the site, if any reads.
    async fn last_audit(&self) -> Result<Option<AuditFile>, PassError> {
        let key = audit_key(self.prefix());
        let Some(Bounded::Whole(body, _)) = self.store().get_bounded(&key, SMALL_LIMIT).await?
        else {
            return Ok(None);
        };
        Ok(serde_json::from_slice(&body).ok())
    }

    /// Keeps `audit` for the site (by `pkgsum vulnerabilities` and
    /// `audit`).
    pub async fn keep_audit(&self, audit: &AuditFile) -> Result<(), PassError> {
        self.put_json(&audit_key(self.prefix()), audit).await
    }

    /// Writes a site file as of `generation`, unless a file of this
    /// generation or later is there by now; returns its ETag if written.
    async fn put_site(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        current: Option<&ObjectMeta>,
        generation: u64,
    ) -> Result<Option<String>, PassError> {
        let mode = match current {
            Some(meta) => PutMode::Update(meta.etag.clone()),
            None => PutMode::Create,
        };
        let options = PutOptions {
            mode,
            content_type: Some(content_type.to_owned()),
            cache_control: Some("no-cache".to_owned()),
            metadata: BTreeMap::from([(GENERATION.to_owned(), generation.to_string())]),
            ..PutOptions::default()
        };
        match self.store().put(key, Bytes::from(body), options).await {
            Ok(etag) => Ok(Some(etag)),
            // Another pass wrote it meanwhile: that pass's site stands.
            Err(err) if err.is_precondition() || err.is_not_found() => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    fn site_error(&self, why: String) -> PassError {
        PassError::Render {
            repository: self.location(),
            error: std::io::Error::other(why),
        }
    }
}
