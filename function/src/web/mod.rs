//! The browsable site, published with each generation beside the
//! summaries: `PREFIX/index.html` (the page, [`page`]) and
//! `PREFIX/packages.json` (the same data for tools). `PKGSUM_SITE=0` turns
//! it off.
//!
//! Its cost per update is bounded as the summaries' is: the packages are
//! cut into the same runs (by the state's pieces and their digests), and
//! a run whose records did not change is copied from the
//! `packages.json` published before, found by the layout kept beside it
//! in `.pkgsum/site.json` (used only while that file still has the ETag
//! the layout was written for); only the other runs' pieces are loaded and
//! rendered ([`crate::site`]). Its awaits are boxed, as the rest of
//! publishing's are: inline, their futures would grow every pass's.

pub mod page;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::keys::GENERATION;
use crate::repo::{PassError, Repo, whole_seconds};
use crate::site::{as_array_body, fragment, from_array_body, push_string};
use crate::state::State;
use crate::store::{Bounded, PutMode, PutOptions, Store};

/// The page, and the data for tools.
pub const INDEX: &str = "index.html";
pub const PACKAGES: &str = "packages.json";

/// The records a run of the site holds, about.
const RUN_TARGET: usize = 256 << 10;

/// The largest `packages.json` read back to copy its runs.
const PREVIOUS_LIMIT: u64 = 512 << 20;

/// The largest layout, audit or history entry read.
const SMALL_LIMIT: u64 = 8 << 20;

/// How many generations "recent changes" shows.
const RECENT: usize = 10;

/// Where `packages.json`'s runs are: the file it was written as (its
/// generation and ETag), where the array's body begins, and each run's
/// digest and length in the JSON lines the body is made from.
#[derive(Serialize, Deserialize)]
struct SiteLayout {
    generation: u64,
    etag: String,
    header: usize,
    runs: Vec<(String, usize)>,
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

/// What publishing the site did: runs rendered and copied.
#[derive(Debug, Clone, Copy, Default)]
pub struct SitePublished {
    pub rendered: usize,
    pub copied: usize,
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
        let plan = crate::repo::plan_runs(state, unlisted, RUN_TARGET);
        let previous = Box::pin(self.previous_site(current.as_ref())).await;
        let names: Vec<String> = plan.digests.iter().map(|d| pkgsum_core::hex(d)).collect();
        let todo: Vec<usize> = (0..plan.runs.len())
            .filter(|&i| !previous.contains_key(&names[i]))
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
        let verdicts: BTreeMap<&str, String> = match self.config().trust.policy() {
            crate::trust::Policy::Ignore => BTreeMap::new(),
            _ => state.verdicts().map(|(n, v)| (n, v.to_string())).collect(),
        };
        let mut ndjson = Vec::new();
        let mut runs = Vec::with_capacity(plan.runs.len());
        for (i, run) in plan.runs.iter().enumerate() {
            let lines = match previous.get(&names[i]) {
                Some(copied) => copied.clone(),
                None => {
                    let text = state
                        .records_in(run.clone(), unlisted)
                        .map_err(|e| self.site_error(e.to_string()))?;
                    fragment(&text, |f| verdicts.get(f).cloned()).into_bytes()
                }
            };
            runs.push((names[i].clone(), lines.len()));
            ndjson.extend_from_slice(&lines);
        }
        let count = ndjson.iter().filter(|&&b| b == b'\n').count();
        let meta = Box::pin(self.meta(state, count, unlisted)).await?;
        let body = as_array_body(&ndjson);
        let header = format!("{{\"meta\":{meta},\"packages\":[\n");
        let json = [header.as_bytes(), &body, b"\n]}\n"].concat();
        let html = page::render(&meta, &body);
        let written = Box::pin(self.put_site(
            &packages_key,
            json,
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
            html,
            "text/html; charset=utf-8",
            index_now.as_ref(),
            generation,
        ))
        .await?;
        let layout = SiteLayout {
            generation,
            etag,
            header: header.len(),
            runs,
        };
        let layout = serde_json::to_vec(&layout).map_err(|e| self.site_error(e.to_string()))?;
        let options = PutOptions {
            content_type: Some("application/json".to_owned()),
            ..PutOptions::default()
        };
        let key = layout_key(self.prefix());
        Box::pin(self.store().put(&key, Bytes::from(layout), options)).await?;
        Ok(Some(SitePublished {
            rendered: todo.len(),
            copied: plan.runs.len() - todo.len(),
        }))
    }

    /// The runs of the `packages.json` published before (`current`), by
    /// digest, when its layout was written for exactly that file.
    async fn previous_site(
        &self,
        current: Option<&crate::store::ObjectMeta>,
    ) -> BTreeMap<String, Vec<u8>> {
        let mut runs = BTreeMap::new();
        let Some(current) = current.filter(|m| m.size <= PREVIOUS_LIMIT) else {
            return runs;
        };
        let key = layout_key(self.prefix());
        let Ok(Some(Bounded::Whole(body, _))) = self.store().get_bounded(&key, SMALL_LIMIT).await
        else {
            return runs;
        };
        let Ok(layout) = serde_json::from_slice::<SiteLayout>(&body) else {
            return runs;
        };
        if layout.etag != current.etag {
            return runs;
        }
        let packages_key = format!("{}{PACKAGES}", self.prefix());
        let Ok(Some(Bounded::Whole(file, meta))) = self
            .store()
            .get_bounded(&packages_key, PREVIOUS_LIMIT)
            .await
        else {
            return runs;
        };
        let footer = b"\n]}\n".len();
        // The layout is read from the store: its numbers are checked, not
        // trusted.
        let Some(body) = file.get(layout.header..file.len().saturating_sub(footer)) else {
            return runs;
        };
        if meta.etag != layout.etag {
            return runs;
        }
        let ndjson = from_array_body(body);
        let mut at: usize = 0;
        for (digest, len) in layout.runs {
            let Some(lines) = at.checked_add(len).and_then(|end| ndjson.get(at..end)) else {
                return BTreeMap::new();
            };
            runs.insert(digest, lines.to_vec());
            at += len;
        }
        if at != ndjson.len() {
            return BTreeMap::new();
        }
        runs
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
    /// signatures are judged, the recent changes and the last audit.
    async fn meta(
        &self,
        state: &State,
        count: usize,
        unlisted: &BTreeSet<String>,
    ) -> Result<String, PassError> {
        let mut meta = format!(
            "{{\"generation\":{},\"updated\":{},\"count\":{count},\"signatures\":{}",
            state.generation(),
            whole_seconds(std::time::SystemTime::now()),
            self.config().trust.policy() != crate::trust::Policy::Ignore
        );
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
        let body = serde_json::to_vec(audit).map_err(|e| self.site_error(e.to_string()))?;
        let options = PutOptions {
            content_type: Some("application/json".to_owned()),
            ..PutOptions::default()
        };
        let key = audit_key(self.prefix());
        self.store().put(&key, Bytes::from(body), options).await?;
        Ok(())
    }

    /// Writes a site file as of `generation`, unless a file of this
    /// generation or later is there by now; returns its ETag if written.
    async fn put_site(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        current: Option<&crate::store::ObjectMeta>,
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
