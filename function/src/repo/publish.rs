//! Publishing a committed state's summaries, with the rules that keep
//! what pkgin reads right: all formats from one generation, an output of a
//! newer generation never replaced, a variant pkgsum does not write
//! removed (pkgin would prefer it), and each new version at a later second
//! than the last (pkgin ignores a Last-Modified it has seen). Before any
//! of it, the summary is judged against the publish gates (`gate.rs`): a
//! hold, or a summary that would hurt clients, is not published, and the
//! status says why.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::future::join_all;

use super::commit::{Loaded, PieceError, Want};
use super::history;
use super::recent;
use super::splice::{Spliced, put_spliced};
use super::{PassError, Repo};
use crate::chunk::{self, Assembled, Layout};
use crate::compression::Compression;
use crate::gate::{self, Closed, Verdict};
use crate::keys::{GENERATION, LISTED, SELECTED, generation_of, output_key, state_key};
use crate::state::State;
use crate::store::{Bounded, ObjectMeta, PutMode, PutOptions, Segment, Store, StoreError};
use crate::summary;

/// What [`Repo::publish`] did.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// Whether anything was written.
    pub wrote: bool,
    /// Why the summary was not published, if it was not.
    pub closed: Vec<Closed>,
    /// Runs compressed for the files written, and runs copied from the
    /// files published before.
    pub runs_compressed: usize,
    pub runs_copied: usize,
    /// Runs of the site rendered and copied.
    pub site_rendered: usize,
    pub site_copied: usize,
}

/// Whether the publish gates apply: `pkgsum resume` publishes what they
/// held (a hold itself is lifted by committing the state without it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gating {
    Apply,
    Override,
}

/// The largest published file read back to copy its unchanged runs.
const PREVIOUS_LIMIT: u64 = 256 << 20;

/// The largest layout read: about 150 bytes a run, a few hundred runs.
const LAYOUT_LIMIT: u64 = 4 << 20;

/// A published file's layout, kept beside it in `.pkgsum/`: which runs it
/// holds, where, and the SHA-256 of each run's bytes. Only a file of the
/// same generation and length is read with it, and a run is copied only if
/// its bytes still have that digest, so this is a cache that can never
/// make a summary wrong (a racing writer or another compressor version
/// only costs a recompression).
#[derive(serde::Serialize, serde::Deserialize)]
struct LayoutFile {
    generation: u64,
    /// The ETag of the file it was written for: a file that still has it
    /// holds exactly those bytes, and its runs need no checking.
    #[serde(default)]
    etag: Option<String>,
    layout: Layout,
}

/// The most bytes of previous summaries (or of records, for a format
/// with none) for which all formats are made at once: 32 MiB, about 50,000
/// packages, holds the previous and the new files of every format well
/// within a 128 MiB function.
const TOGETHER_LIMIT: u64 = 32 << 20;

/// A format's summary being made: its runs, and how those the published
/// file holds already are kept.
struct Draft {
    format: Compression,
    plan: chunk::Plan,
    kept: Kept,
}

/// How a draft keeps the runs the published file holds already.
enum Kept {
    /// Copied out of that file, read back: for each run, the bytes and
    /// digest it can be copied with, if it can.
    Read(Vec<Option<(Bytes, [u8; 32])>>),
    /// Spliced inside the store from that file, of this ETag.
    Spliced(String, crate::splice::Splice),
}

impl Draft {
    /// The runs to compress, as ranges of the state's pieces.
    fn todo(&self) -> Vec<std::ops::Range<usize>> {
        match &self.kept {
            Kept::Spliced(_, splice) => splice
                .fresh
                .iter()
                .map(|&i| self.plan.runs[i].clone())
                .collect(),
            Kept::Read(copied) => self
                .plan
                .runs
                .iter()
                .zip(copied)
                .filter(|(_, copied)| copied.is_none())
                .map(|(run, _)| run.clone())
                .collect(),
        }
    }
}

/// A format's new summary: its bytes, or how the store splices it.
enum Made {
    Whole(Assembled),
    Spliced(Spliced),
}

/// Whether a summary may be spliced inside the store: not when a splice
/// was refused (another writer replaced what it copies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Splicing {
    Allowed,
    Refused,
}

/// What writing one format's summary came to.
enum Outcome {
    /// Written, with this ETag and layout, so many runs compressed and
    /// copied.
    Written(String, Layout, usize, usize),
    /// One of these records or newer is there already.
    Unchanged,
    /// A newer commit dropped a piece this one needs.
    Superseded,
}

/// A refused splice's file made again without splicing came out spliced.
fn spliced_again() -> std::io::Error {
    std::io::Error::other("a summary made without splicing came out spliced")
}

/// What publishing did when a newer commit dropped the pieces it needed:
/// that commit's pass publishes.
fn superseded(published: Published, generation: u64, prefix: &str) -> Published {
    tracing::info!(
        prefix,
        generation,
        "a newer commit dropped pieces this one needs; its pass publishes"
    );
    published
}

/// A published file read back, with its layout.
struct Previous {
    layout: Layout,
    bytes: Bytes,
    /// The file is the one the layout was written with (same ETag).
    trusted: bool,
}

impl<S: Store> Repo<'_, S> {
    /// Publishes the summaries of `state`, or of a newer committed state,
    /// unless outputs that say the same (of its records' generation or
    /// later) are there already. Returns whether anything was written, and
    /// how many runs were compressed and copied.
    ///
    /// Outputs carry the generation of the state they were rendered from.
    /// Generations form one line (commits are compare-and-swap), so an output
    /// of generation at least `records_generation` holds these very records
    /// or newer ones: it is never replaced by this pass.
    ///
    /// pkgin's one-second rule allows one version per second. A pass that
    /// must wait for the next second publishes whatever is the newest
    /// committed state by then, so the passes that committed meanwhile are
    /// published together, as one version, instead of one per second.
    pub async fn publish(&self, state: &mut State) -> Result<Published, PassError> {
        self.publish_as(state, Gating::Apply).await
    }

    /// [`Repo::publish`], with the gates applied or not.
    pub async fn publish_as(
        &self,
        state: &mut State,
        gating: Gating,
    ) -> Result<Published, PassError> {
        let behind = self.behind(state).await?;
        let verdict = match self.cleared(state, &behind, gating).await? {
            Ok(verdict) => verdict,
            Err(done) => return Ok(done),
        };
        let Some(later) = self.next_second(&behind) else {
            return self.publish_state(state, behind, &verdict, None).await;
        };
        // The files are made while waiting: usually no newer commit has
        // come by then, and the wait was not lost.
        let early = if self.together(state, &behind) {
            let unlisted = &verdict.unlisted;
            let made = self.assemble_all(state, &behind, unlisted, Splicing::Allowed);
            let (_, made) = tokio::join!(wait_until(later), made);
            made?
        } else {
            wait_until(later).await;
            None
        };
        if let Some(mut newer) = self.newer_state(state.generation()).await? {
            tracing::debug!(
                prefix = self.prefix,
                committed = state.generation(),
                newer = newer.generation(),
                "publishing a newer commit"
            );
            let behind = self.behind(&newer).await?;
            let verdict = match self.cleared(&mut newer, &behind, gating).await? {
                Ok(verdict) => verdict,
                Err(done) => return Ok(done),
            };
            return self.publish_state(&mut newer, behind, &verdict, None).await;
        }
        self.publish_state(state, behind, &verdict, early).await
    }

    /// The verdict on `state`'s summary if it may be published; else what
    /// publishing did instead: nothing, a newer commit having dropped a
    /// piece (its pass publishes), or the summary withheld, saying why.
    async fn cleared(
        &self,
        state: &mut State,
        behind: &[(Compression, Option<ObjectMeta>)],
        gating: Gating,
    ) -> Result<Result<Verdict, Published>, PassError> {
        let Some(verdict) = self.judge(state, behind, gating).await? else {
            let done = superseded(Published::default(), state.generation(), self.prefix);
            return Ok(Err(done));
        };
        if !verdict.closed.is_empty() {
            return Ok(Err(self.withhold(state, verdict).await?));
        }
        Ok(Ok(verdict))
    }

    /// What a summary of `state` lists, and what keeps it from being
    /// published: the state's hold, and (for formats `behind`) the gates.
    /// Every piece is loaded first when a gate needs every record. `None`
    /// when a newer commit dropped a piece (its pass publishes).
    async fn judge(
        &self,
        state: &mut State,
        behind: &[(Compression, Option<ObjectMeta>)],
        gating: Gating,
    ) -> Result<Option<Verdict>, PassError> {
        let gates = &self.config.gates;
        let need_records = !behind.is_empty() && gates.need_records();
        if need_records && !self.load_wanted(state, state.unloaded()).await? {
            return Ok(None);
        }
        let published = behind
            .iter()
            .filter_map(|(_, current)| current.as_ref()?.metadata.get(LISTED)?.parse().ok())
            .max();
        let records: Option<Vec<(&str, &[u8])>> =
            need_records.then(|| state.packages().map(|(n, p)| (n, &p.record[..])).collect());
        let mut verdict = gate::judge(
            gates,
            state.hold(),
            state.len(),
            records.as_deref(),
            published,
        );
        if gating == Gating::Override {
            verdict.closed.retain(|c| matches!(c, Closed::Held(_)));
        }
        Ok(Some(verdict))
    }

    /// Loads pieces `wanted` of `state`; `false` when one has gone (or
    /// came back cut short or unreadable) because a newer commit dropped
    /// it: that commit's pass publishes.
    async fn load_wanted(
        &self,
        state: &mut State,
        wanted: BTreeSet<usize>,
    ) -> Result<bool, PassError> {
        match self.load_pieces(state, wanted).await {
            Ok(()) => Ok(true),
            Err(_) if self.superseded(state.generation()).await? => Ok(false),
            Err(PieceError::Store(err)) => Err(err.into()),
            Err(PieceError::Bad(reason)) => Err(self.render_error(std::io::Error::other(reason))),
        }
    }

    /// Leaves the published summaries as they are, and says why: in the
    /// logs and in the status.
    async fn withhold(&self, state: &State, verdict: Verdict) -> Result<Published, PassError> {
        for closed in &verdict.closed {
            tracing::warn!(
                repository = %self.location(),
                generation = state.generation(),
                "not published: {closed}"
            );
        }
        self.write_status(state, &verdict, false).await?;
        Ok(Published {
            closed: verdict.closed,
            ..Published::default()
        })
    }

    /// The formats whose published file is older than `state`'s records,
    /// with what is there now.
    async fn behind(
        &self,
        state: &State,
    ) -> Result<Vec<(Compression, Option<ObjectMeta>)>, PassError> {
        let mut behind = Vec::new();
        for &format in &self.config.formats {
            let current = self.store.head(&output_key(self.prefix, format)).await?;
            let selected = self.config.gates.select.to_string();
            if current.as_ref().is_none_or(|m| {
                generation_of(m) < state.records_generation()
                    || m.metadata.get(SELECTED).map_or("all", String::as_str) != selected
            }) {
                behind.push((format, current));
            }
        }
        Ok(behind)
    }

    /// The second after the newest of these files', if it has not begun
    /// (and the store cannot be told a modification time): pkgin would
    /// take a new version written before it for the old one.
    fn next_second(&self, behind: &[(Compression, Option<ObjectMeta>)]) -> Option<SystemTime> {
        if self.store.sets_modified() {
            return None;
        }
        let newest = behind
            .iter()
            .filter_map(|(_, m)| m.as_ref()?.last_modified)
            .max()?;
        later_second(newest, SystemTime::now())
    }

    /// Whether every format of `behind` may be made at once: their
    /// previous files (or, where there is none, the records) together stay
    /// within [`TOGETHER_LIMIT`]. Above it, one format at a time, so a
    /// large repository holds one previous file and one new one at once.
    fn together(&self, state: &State, behind: &[(Compression, Option<ObjectMeta>)]) -> bool {
        let records: u64 = state.pieces().iter().map(|p| p.bytes).sum();
        let held: u64 = behind
            .iter()
            .map(|(_, current)| current.as_ref().map_or(records, |m| m.size))
            .sum();
        // A state never stored in pieces is published from a cut copy.
        (!state.pieces().is_empty() || state.is_empty()) && held <= TOGETHER_LIMIT
    }

    /// The committed state, if it is newer than `generation` (its manifest
    /// only: publishing loads the pieces it needs).
    async fn newer_state(&self, generation: u64) -> Result<Option<State>, StoreError> {
        let names = BTreeSet::new();
        Ok(match self.load_state(Want::Names(&names)).await? {
            Some(Loaded {
                state, fresh: None, ..
            }) if state.generation() > generation => Some(state),
            _ => None,
        })
    }

    /// Whether a state newer than `generation` has been committed.
    async fn superseded(&self, generation: u64) -> Result<bool, StoreError> {
        let manifest = self.store.head(&state_key(self.prefix)).await?;
        Ok(manifest.is_some_and(|m| generation_of(&m) > generation))
    }

    /// Publishes `state` for the formats `behind` (with their files if
    /// `early` has them already, in the same order), removes variants this
    /// configuration does not write, and writes the status.
    async fn publish_state(
        &self,
        state: &mut State,
        behind: Vec<(Compression, Option<ObjectMeta>)>,
        verdict: &Verdict,
        early: Option<Vec<Made>>,
    ) -> Result<Published, PassError> {
        let (store, prefix, config) = (self.store, self.prefix, self.config);
        let generation = state.generation();
        let current_from = state.records_generation();
        let mut stale = Vec::new();
        for format in summary::unwritten(&config.formats) {
            let key = output_key(prefix, format);
            if let Some(meta) = store.head(&key).await? {
                stale.push((key, meta));
            }
        }
        let mut published = Published::default();
        let mut view;
        let state = if !behind.is_empty() && state.pieces().is_empty() && !state.is_empty() {
            // Never stored in pieces (read from an older state): publish
            // from a copy cut as a commit would cut it.
            view = state.clone();
            let cut = state
                .cut()
                .map_err(|e| self.render_error(std::io::Error::other(e)))?;
            view.stored(cut);
            &mut view
        } else {
            state
        };
        let unlisted = &verdict.unlisted;
        let mut outputs: Vec<Option<Made>> = match early {
            Some(made) => made.into_iter().map(Some).collect(),
            None if !behind.is_empty() && self.together(state, &behind) => {
                match self
                    .assemble_all(state, &behind, unlisted, Splicing::Allowed)
                    .await?
                {
                    Some(made) => made.into_iter().map(Some).collect(),
                    None => return Ok(superseded(published, generation, prefix)),
                }
            }
            None => behind.iter().map(|_| None).collect(),
        };
        // Least preferred first: by the time the variant pkgin tries first
        // changes, the others already say the same.
        let mut layouts = Vec::new();
        let mut kept = Vec::new();
        let previous = behind
            .iter()
            .map(|(_, current)| history::published_generation(current.as_ref()))
            .max()
            .unwrap_or(0);
        let stamp = Stamp {
            generation,
            current_from,
            attempts: config.max_attempts,
            listed: verdict.listed,
            selected: config.gates.select,
        };
        for (i, entry) in behind.iter().enumerate().rev() {
            let made = outputs.get_mut(i).and_then(Option::take);
            match Box::pin(self.write_output(state, entry, made, stamp, unlisted)).await? {
                Outcome::Written(etag, layout, compressed, copied) => {
                    published.wrote = true;
                    published.runs_compressed += compressed;
                    published.runs_copied += copied;
                    kept.push((entry.0, etag.clone()));
                    layouts.push(self.write_layout(entry.0, generation, etag, layout));
                }
                Outcome::Unchanged => {}
                Outcome::Superseded => return Ok(superseded(published, generation, prefix)),
            }
        }
        for (key, meta) in stale {
            if generation_of(&meta) <= generation {
                store.delete(&key).await?;
                tracing::info!(%key, "removed a summary variant this configuration does not write");
                published.wrote = true;
            }
        }
        // Layouts only serve the next update: written together, with the
        // status, after the summaries.
        let entry = history::entry_for(state, previous, verdict.listed, config.gates.select);
        let (layouts, status, history) = tokio::join!(
            join_all(layouts),
            self.write_status(state, verdict, published.wrote),
            // Boxed: its copies and listing would make every pass's
            // future larger.
            Box::pin(self.record_history(entry, &kept))
        );
        layouts
            .into_iter()
            .chain([status, history])
            .collect::<Result<(), _>>()?;
        if config.site {
            // After the history, so its recent changes include this one.
            if let Some(site) = Box::pin(self.publish_site(state, &verdict.unlisted)).await? {
                published.site_rendered = site.rendered;
                published.site_copied = site.copied;
            }
        }
        Ok(published)
    }

    /// Writes one format's summary (`made` already, or made now), spliced
    /// inside the store where it can be, else whole; a splice refused
    /// because the file changed meanwhile is made whole instead.
    async fn write_output(
        &self,
        state: &mut State,
        (format, current): &(Compression, Option<ObjectMeta>),
        made: Option<Made>,
        stamp: Stamp,
        unlisted: &BTreeSet<String>,
    ) -> Result<Outcome, PassError> {
        let key = output_key(self.prefix, *format);
        let made = match made {
            Some(made) => made,
            None => match self
                .assemble_all(
                    state,
                    &[(*format, current.clone())],
                    unlisted,
                    Splicing::Allowed,
                )
                .await?
            {
                Some(mut made) => made.remove(0),
                None => return Ok(Outcome::Superseded),
            },
        };
        let mut known = current.clone();
        let whole = match made {
            Made::Whole(whole) => whole,
            Made::Spliced(spliced) => {
                let (compressed, copied) = (spliced.compressed, spliced.reused);
                tracing::debug!(%key, compressed, copied, "summary spliced");
                let written = self.put_spliced_output(&key, &spliced, *format, current, stamp);
                if let Some(etag) = written.await? {
                    return Ok(Outcome::Written(etag, spliced.layout, compressed, copied));
                }
                // Refused: made whole from what is there now.
                known = self.store.head(&key).await?;
                let now = [(*format, known.clone())];
                let made = self.assemble_all(state, &now, unlisted, Splicing::Refused);
                match made.await? {
                    Some(mut made) => match made.remove(0) {
                        Made::Whole(whole) => whole,
                        Made::Spliced(_) => return Err(self.render_error(spliced_again())),
                    },
                    None => return Ok(Outcome::Superseded),
                }
            }
        };
        let (compressed, copied) = (whole.compressed, whole.reused);
        tracing::debug!(%key, compressed, copied, "summary assembled");
        let written = put_output(
            self.store,
            &key,
            whole.bytes,
            *format,
            known.as_ref(),
            stamp,
        );
        Ok(match written.await? {
            Some(etag) => Outcome::Written(etag, whole.layout, compressed, copied),
            None => Outcome::Unchanged,
        })
    }

    /// Writes `spliced` as `key` in place of `current`, a later second than
    /// it; `None` if a precondition was refused (another writer replaced
    /// the file, or what is copied).
    async fn put_spliced_output(
        &self,
        key: &str,
        spliced: &Spliced,
        format: Compression,
        current: &Option<ObjectMeta>,
        stamp: Stamp,
    ) -> Result<Option<String>, PassError> {
        let previous = current.as_ref().and_then(|m| m.last_modified);
        let mut options = output_options(PutMode::Update(spliced.source.clone()), format, stamp);
        in_later_second(self.store, previous, &mut options).await;
        match put_spliced(self.store, self.prefix, key, spliced, options).await {
            Ok(etag) => {
                let size = spliced.layout.file_len().unwrap_or(0);
                let written = Written { etag, stamp };
                let body = Body::Stored(size);
                let etag = ensure_later(self.store, key, body, previous, format, written).await?;
                Ok(Some(etag))
            }
            Err(err) if err.is_precondition() || err.is_not_found() => {
                tracing::debug!(key, "a splice was refused: {err}");
                Ok(None)
            }
            Err(err) => Err(err.into()),
        }
    }

    /// The summaries of `state` in the formats `behind`, in that order,
    /// made together: each format's file is spliced from its published
    /// file inside the store where it can be (`splicing`); else the runs
    /// that file holds already are copied from it; the pieces of the
    /// runs made now are loaded once for all formats and their records
    /// compressed, the formats in parallel. `None` if a piece has gone
    /// because a newer state was committed (whose pass publishes).
    async fn assemble_all(
        &self,
        state: &mut State,
        behind: &[(Compression, Option<ObjectMeta>)],
        unlisted: &BTreeSet<String>,
        splicing: Splicing,
    ) -> Result<Option<Vec<Made>>, PassError> {
        if state.is_empty() {
            let empty = behind.iter().map(|(format, _)| Assembled::empty(*format));
            return empty
                .map(|made| made.map(Made::Whole))
                .collect::<Result<_, _>>()
                .map(Some)
                .map_err(|e| self.render_error(e));
        }
        let shared: &State = state;
        let drafts = join_all(behind.iter().map(|(format, current)| {
            self.draft(shared, *format, current.as_ref(), unlisted, splicing)
        }))
        .await;
        let unloaded = state.unloaded();
        let wanted = drafts.iter().flat_map(Draft::todo).flatten();
        let wanted = wanted.filter(|i| unloaded.contains(i)).collect();
        if !self.load_wanted(state, wanted).await? {
            return Ok(None);
        }
        let mut jobs = Vec::with_capacity(drafts.len());
        for draft in &drafts {
            let raws = draft
                .todo()
                .into_iter()
                .map(|run| state.records_in(run, unlisted))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.render_error(std::io::Error::other(e)))?;
            let format = draft.format;
            jobs.push(tokio::task::spawn_blocking(move || {
                chunk::compress_each(&raws, format)
            }));
        }
        let mut assembled = Vec::with_capacity(drafts.len());
        for (draft, job) in drafts.into_iter().zip(join_all(jobs).await) {
            let made = job
                .map_err(|e| self.render_error(std::io::Error::other(e)))?
                .map_err(|e| self.render_error(e))?;
            assembled.push(self.file_of(draft, made)?);
        }
        Ok(Some(assembled))
    }

    /// `draft`'s file, given its runs `made` now.
    fn file_of(&self, draft: Draft, made: Vec<Vec<u8>>) -> Result<Made, PassError> {
        match draft.kept {
            Kept::Spliced(source, splice) => {
                let layout = splice.layout(&draft.plan, draft.format, &made);
                Ok(Made::Spliced(Spliced {
                    source,
                    groups: splice.groups,
                    fresh: Bytes::from(made.concat()),
                    layout,
                    compressed: made.len(),
                    reused: splice.kept.len(),
                }))
            }
            Kept::Read(copied) => {
                let copied: Vec<_> = copied
                    .iter()
                    .map(|c| c.as_ref().map(|(bytes, digest)| (&bytes[..], *digest)))
                    .collect();
                let file = chunk::join(&draft.plan, draft.format, &copied, made);
                Ok(Made::Whole(file.map_err(|e| self.render_error(e))?))
            }
        }
    }

    /// How `format`'s summary of `state` will be made: its runs, and
    /// whether it is spliced from the published file (`current`) or which
    /// runs that file holds already.
    async fn draft(
        &self,
        state: &State,
        format: Compression,
        current: Option<&ObjectMeta>,
        unlisted: &BTreeSet<String>,
        splicing: Splicing,
    ) -> Draft {
        let plan = plan_runs(state, unlisted, chunk::run_target(format));
        let saved = match current {
            Some(current) => self.saved_layout(format, current).await,
            None => None,
        };
        if let Some((etag, splice)) = self.splice(&plan, format, current, saved.as_ref(), splicing)
        {
            return Draft {
                format,
                plan,
                kept: Kept::Spliced(etag, splice),
            };
        }
        let previous = match (saved, current) {
            (Some(saved), Some(current)) => self.previous_output(format, current, saved).await,
            _ => None,
        };
        let copied = match &previous {
            Some(previous) => {
                let file = (&previous.layout, &previous.bytes[..]);
                chunk::reusable(&plan, format, Some(file), previous.trusted)
                    .into_iter()
                    .map(|c| c.map(|(bytes, digest)| (previous.bytes.slice_ref(bytes), digest)))
                    .collect()
            }
            None => vec![None; plan.runs.len()],
        };
        Draft {
            format,
            plan,
            kept: Kept::Read(copied),
        }
    }

    /// How `plan` is spliced from the published file `current` inside the
    /// store, and that file's ETag: only where the store copies ranges,
    /// and the layout `saved` is that very file's (same ETag).
    fn splice(
        &self,
        plan: &chunk::Plan,
        format: Compression,
        current: Option<&ObjectMeta>,
        saved: Option<&LayoutFile>,
        splicing: Splicing,
    ) -> Option<(String, crate::splice::Splice)> {
        let min = self.store.copies_at_least()?;
        let (current, saved) = (current?, saved?);
        if splicing == Splicing::Refused || saved.etag.as_deref() != Some(current.etag.as_str()) {
            return None;
        }
        let splice = crate::splice::splice(plan, format, &saved.layout, min)?;
        Some((current.etag.clone(), splice))
    }

    fn render_error(&self, error: std::io::Error) -> PassError {
        PassError::Render {
            repository: self.store.location(self.prefix),
            error,
        }
    }
}

impl<S: Store> Repo<'_, S> {
    /// The layout saved for the published `format` file `current`, if it
    /// is that file's (same generation and length). Anything else, a read
    /// error included, means no runs are copied: slower, never wrong.
    async fn saved_layout(&self, format: Compression, current: &ObjectMeta) -> Option<LayoutFile> {
        let layout_key = layout_key(self.prefix, format);
        let Bounded::Whole(body, _) = self
            .store
            .get_bounded(&layout_key, LAYOUT_LIMIT)
            .await
            .ok()??
        else {
            return None;
        };
        let saved: LayoutFile = serde_json::from_slice(&body).ok()?;
        (saved.generation == generation_of(current)
            && saved.layout.file_len() == Some(current.size))
        .then_some(saved)
    }

    /// The published `format` file, `current`, read back with its layout
    /// `saved`.
    async fn previous_output(
        &self,
        format: Compression,
        current: &ObjectMeta,
        saved: LayoutFile,
    ) -> Option<Previous> {
        if current.size > PREVIOUS_LIMIT {
            return None;
        }
        let key = output_key(self.prefix, format);
        // Written by this process and not replaced since: not read again.
        let location = self.store.location(&key);
        if let Some(bytes) = recent::SUMMARIES.recalled(&location, &current.etag) {
            tracing::debug!(%location, "the published file is the one this process wrote");
            return Some(Previous {
                trusted: saved.etag.as_deref() == Some(current.etag.as_str()),
                layout: saved.layout,
                bytes,
            });
        }
        let Bounded::Whole(bytes, meta) =
            self.store.get_bounded(&key, PREVIOUS_LIMIT).await.ok()??
        else {
            return None;
        };
        // Its length is checked against the layout where the runs are cut.
        (generation_of(&meta) == saved.generation).then_some(Previous {
            trusted: saved.etag.as_deref() == Some(meta.etag.as_str()),
            layout: saved.layout,
            bytes,
        })
    }

    /// Saves the layout of the `format` file just published.
    async fn write_layout(
        &self,
        format: Compression,
        generation: u64,
        etag: String,
        layout: Layout,
    ) -> Result<(), PassError> {
        let saved = LayoutFile {
            generation,
            etag: Some(etag),
            layout,
        };
        let body = serde_json::to_vec(&saved).map_err(|e| PassError::Render {
            repository: self.store.location(self.prefix),
            error: std::io::Error::other(e),
        })?;
        let options = PutOptions {
            mode: PutMode::Overwrite,
            content_type: Some("application/json".to_owned()),
            ..PutOptions::default()
        };
        self.store
            .put(&layout_key(self.prefix, format), Bytes::from(body), options)
            .await?;
        Ok(())
    }
}

/// The runs of about `target` bytes `state`'s pieces are cut into, each
/// named by the digests of the records it lists (all but `unlisted`): how
/// the summaries and the site are made run by run.
pub(crate) fn plan_runs(state: &State, unlisted: &BTreeSet<String>, target: usize) -> chunk::Plan {
    let items: Vec<(&str, usize)> = state
        .pieces()
        .iter()
        .map(|p| (p.first.as_str(), p.bytes as usize))
        .collect();
    chunk::Plan::with_digests(&items, &state.listed_digests(unlisted), target)
}

/// Where the layout of a published `format` file is kept.
fn layout_key(prefix: &str, format: Compression) -> String {
    format!("{prefix}.pkgsum/layout{}.json", format.suffix())
}

/// The generation an output is written with, and the oldest generation
/// whose outputs already hold the same records.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stamp {
    pub generation: u64,
    pub current_from: u64,
    pub attempts: u32,
    /// What the summary lists: how many packages, selected how.
    pub listed: usize,
    pub selected: crate::select::Select,
}

/// Writes one output unless one holding these records or newer is already
/// there (as `known` said, then as a HEAD says after a refused write); keeps its Last-Modified strictly after the previous one's, in
/// whole seconds. Returns the ETag it was written with, if it was.
pub(super) async fn put_output<S: Store>(
    store: &S,
    key: &str,
    body: Vec<u8>,
    format: Compression,
    known: Option<&ObjectMeta>,
    stamp: Stamp,
) -> Result<Option<String>, PassError> {
    let Stamp {
        current_from,
        attempts,
        ..
    } = stamp;
    let body = Bytes::from(body);
    // The first attempt trusts what `behind` saw: If-Match refuses the
    // write if another pass has published since, and the retry looks again.
    let mut known = Some(known.cloned());
    for _ in 0..attempts {
        let current = match known.take() {
            Some(current) => current,
            None => store.head(key).await?,
        };
        if current.as_ref().is_some_and(|m| {
            generation_of(m) >= current_from
                && m.metadata.get(SELECTED).map_or("all", String::as_str)
                    == stamp.selected.to_string()
        }) {
            return Ok(None);
        }
        let previous = current.as_ref().and_then(|m| m.last_modified);
        let mode = match &current {
            Some(meta) => PutMode::Update(meta.etag.clone()),
            None => PutMode::Create,
        };
        let mut options = output_options(mode, format, stamp);
        in_later_second(store, previous, &mut options).await;
        match store.put(key, body.clone(), options).await {
            Ok(etag) => {
                let written = Written { etag, stamp };
                let sent = Body::Sent(body.clone());
                let etag = ensure_later(store, key, sent, previous, format, written).await?;
                recent::SUMMARIES.remember(&store.location(key), &etag, body);
                return Ok(Some(etag));
            }
            Err(err) if err.is_precondition() || err.is_not_found() => {
                continue;
            }
            Err(err) => return Err(err.into()),
        }
    }
    Err(PassError::Contended {
        object: store.location(key),
        attempts,
    })
}

/// How a summary file is written: never cached stale by a CDN, typed for
/// browsers and tools, stamped with its state generation.
fn output_options(mode: PutMode, format: Compression, stamp: Stamp) -> PutOptions {
    PutOptions {
        mode,
        content_type: Some(format.content_type().to_owned()),
        cache_control: Some("no-cache".to_owned()),
        metadata: BTreeMap::from([
            (GENERATION.to_owned(), stamp.generation.to_string()),
            (LISTED.to_owned(), stamp.listed.to_string()),
            (SELECTED.to_owned(), stamp.selected.to_string()),
        ]),
        modified: None,
        checksum: None,
    }
}

/// A time in whole seconds since the epoch (0 before it).
pub fn whole_seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// pkgin's rule for a new version of a summary: it must be modified in a
/// later whole second than the version it replaces, or pkgin keeps its
/// cached copy. The start of that second if `now` is not already in it.
pub(crate) fn later_second(previous: SystemTime, now: SystemTime) -> Option<SystemTime> {
    let next = whole_seconds(previous) + 1;
    (whole_seconds(now) < next).then(|| SystemTime::UNIX_EPOCH + Duration::from_secs(next))
}

/// Makes a write with `options` land in a later whole second than
/// `previous`, the version it replaces: a store that sets modification
/// times is given that second; on any other, this waits for it.
async fn in_later_second<S: Store>(
    store: &S,
    previous: Option<SystemTime>,
    options: &mut PutOptions,
) {
    let later = previous.and_then(|p| later_second(p, SystemTime::now()));
    if store.sets_modified() {
        options.modified = later;
    } else if let Some(later) = later {
        wait_until(later).await;
    }
}

/// Sleeps until `time`, but never long: a Last-Modified far in the future
/// (clock trouble) must not stall publishing.
async fn wait_until(time: SystemTime) {
    if let Ok(wait) = time.duration_since(SystemTime::now()) {
        tokio::time::sleep(wait.min(Duration::from_secs(2)) + Duration::from_millis(20)).await;
    }
}

/// What an output holds, to write it again: its bytes, or (spliced in
/// the store) only its length, copied from itself.
enum Body {
    Sent(Bytes),
    Stored(u64),
}

/// An output just written.
struct Written {
    etag: String,
    stamp: Stamp,
}

/// If the store's clock gave the new object the same second as the one it
/// replaced, pkgin would never see it: write it again a second later.
/// Returns the ETag of the last write.
async fn ensure_later<S: Store>(
    store: &S,
    key: &str,
    body: Body,
    previous: Option<SystemTime>,
    format: Compression,
    written: Written,
) -> Result<String, PassError> {
    let Written { mut etag, stamp } = written;
    let Some(previous) = previous else {
        return Ok(etag);
    };
    for _ in 0..3 {
        let Some(now) = store.head(key).await? else {
            return Ok(etag);
        };
        if generation_of(&now) != stamp.generation {
            return Ok(etag);
        }
        let Some(modified) = now.last_modified else {
            return Ok(etag);
        };
        if later_second(previous, modified).is_none() {
            return Ok(etag);
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let options = output_options(PutMode::Update(now.etag.clone()), format, stamp);
        let again = match &body {
            Body::Sent(bytes) => store.put(key, bytes.clone(), options).await,
            Body::Stored(size) => {
                let itself = Segment::Copy {
                    key: key.to_owned(),
                    etag: now.etag,
                    range: 0..*size,
                };
                let made = store.assemble(key, vec![itself], options).await;
                made.map(|made| made.etag)
            }
        };
        match again {
            Ok(again) => etag = again,
            Err(err) if err.is_precondition() => return Ok(etag),
            Err(err) => return Err(err.into()),
        }
    }
    Ok(etag)
}
