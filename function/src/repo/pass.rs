//! The pass: what the bucket holds now for some names (or all of them),
//! merged into the state, committed by compare-and-swap, and published.
//! Events, `rebuild` and the scheduled reconcile all run it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures::stream::{self, StreamExt};

use super::commit::{Loaded, Want};
use super::publish::whole_seconds;
use super::{Applied, PassError, Repo, Report, StateLoss, Unsure};
use crate::checks;
use crate::excerpt::{Bare, Escaped};
use crate::fetch::{FetchError, Fetched, check_payload, header_after};
use crate::header::Header;
use crate::keys::is_package_key;
use crate::keys::state_key;
use crate::limit::Limits;
use crate::progress::Progress;
use crate::record::{self, FileInfo};
use crate::release::{self, Tag};
use crate::state::{Change, Failure, Package, Staged, State};
use crate::store::{ObjectMeta, Op, Peeked, Store, StoreError};
use crate::trust::{Policy, Trust};

/// Which names a pass looks at.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// The names an event gave (and the whole repository if its state
    /// turns out to be lost).
    Names(&'a BTreeSet<String>),
    /// Every package a listing shows and every name the state knows:
    /// `rebuild` and the scheduled reconcile.
    Listing,
}

/// Looks at one name before it is left unsure (to the next event or
/// reconcile) because the object kept changing while it was read.
const LOOKS: u32 = 5;

/// What looking at one name found.
enum Seen {
    Gone,
    Current,
    Changed(Change, u64),
    /// The object changed while we read it, or the store failed: the name
    /// is left as the state has it, and the error is reported.
    Unsure(StoreError),
}

/// What earlier attempts of a pass found to need no change, by name, with
/// the token the state then held for it (none for a name it did not hold).
/// While the state still holds that token, the finding still needs no
/// change and the name is not looked at again. A finding that changes the
/// state is always looked at again: the token may have come back (an object
/// reverted to its earlier bytes) through commits whose looks were later
/// than ours.
type Earlier = HashMap<String, Option<String>>;

/// What a look compares the bucket with: the state, unless every package
/// is to be judged again (`rejudge`), when no token counts.
#[derive(Clone, Copy)]
struct Against<'a> {
    state: &'a State,
    rejudge: bool,
}

impl Against<'_> {
    /// The token a peek may find unchanged.
    fn token(&self, name: &str) -> Option<&str> {
        self.state.token(name).filter(|_| !self.rejudge)
    }

    /// Whether `meta` is what the state already reflects.
    fn is_current(&self, name: &str, meta: &ObjectMeta) -> bool {
        !self.rejudge && self.state.is_current(name, meta.size, &meta.etag)
    }
}

/// Headers already read, by (name, ETag), kept across commit attempts.
type HeaderCache = tokio::sync::Mutex<HashMap<(String, String), (Change, u64)>>;

/// What one pass keeps across its commit attempts.
struct Pass<'a> {
    scope: Scope<'a>,
    report: Report,
    /// Headers read, so a retry does not read them again.
    cache: HeaderCache,
    /// Names earlier attempts found to need no change.
    earlier: Earlier,
    /// The listing, taken once per pass (after the first state read).
    listing: Option<BTreeMap<String, ObjectMeta>>,
}

/// How one attempt ended.
enum Attempt {
    /// Done: published (or nothing to do), with the names left unsure.
    Done(Vec<Unsure>),
    /// Another writer moved the state on: read it again, after a pause.
    Retry(&'static str),
}

/// What the look step found against the state it read.
struct Looked {
    seen: Vec<(String, Seen)>,
    /// The judgement (signature policy) this pass gives verdicts under.
    judgement: String,
    /// The highest published generation, where the state may lag it.
    published: u64,
}

/// The state the merge step made, whether it differs from the one read,
/// and the names left unsure.
struct Merged {
    /// `None` when a name-scoped pass found nothing to make a repository
    /// of: then nothing is committed or published.
    next: Option<State>,
    changed: bool,
    unsure: Vec<Unsure>,
}

impl<S: Store> Repo<'_, S> {
    /// Brings the state up to what the bucket holds for `scope` and
    /// publishes it, in steps: read the state, look at the names (reading
    /// the headers of new and changed packages), merge what was found,
    /// commit by compare-and-swap, publish. A commit that loses a race
    /// starts again from the read, keeping what was already looked at.
    pub async fn apply(
        &self,
        scope: Scope<'_>,
        progress: &dyn Progress,
    ) -> Result<Applied, PassError> {
        let mut pass = Pass {
            scope,
            report: Report {
                prefix: self.prefix.to_owned(),
                repository: self.location(),
                ..Report::default()
            },
            cache: HeaderCache::default(),
            earlier: Earlier::new(),
            listing: None,
        };
        for attempt in 1..=self.config.max_attempts {
            pass.report.attempts = attempt;
            match self.attempt(&mut pass, progress).await? {
                Attempt::Done(unsure) => {
                    return Ok(Applied {
                        report: pass.report,
                        unsure,
                    });
                }
                Attempt::Retry(why) => {
                    tracing::info!(prefix = self.prefix, attempt, "{why}; retrying");
                    self.backoff(attempt).await;
                }
            }
        }
        Err(PassError::Contended {
            object: self.store.location(&state_key(self.prefix)),
            attempts: self.config.max_attempts,
        })
    }

    /// One attempt: read, look, merge, commit, publish.
    async fn attempt(
        &self,
        pass: &mut Pass<'_>,
        progress: &dyn Progress,
    ) -> Result<Attempt, PassError> {
        let want = match pass.scope {
            Scope::Names(names) => Want::Names(names),
            Scope::Listing => Want::All,
        };
        let Some(mut loaded) = self.load_state(want).await? else {
            return Ok(Attempt::Retry("state changed while read"));
        };
        let looked = self.look_step(pass, &loaded, progress).await?;
        let Merged {
            next,
            changed,
            unsure,
        } = self.merge(pass, &mut loaded, looked)?;
        let Some(mut next) = next else {
            return Ok(Attempt::Done(unsure));
        };
        if changed {
            match self.commit(&mut next, loaded.etag.as_deref()).await {
                Ok(()) => pass.report.committed = true,
                Err(PassError::Store(err)) if err.is_precondition() => {
                    return Ok(Attempt::Retry("state changed under us"));
                }
                Err(err) => return Err(err),
            }
        }
        self.publish_step(pass, &mut next).await?;
        Ok(Attempt::Done(unsure))
    }

    /// The names this attempt looks at, each looked at against the state
    /// read (a header read for each new or changed package).
    async fn look_step(
        &self,
        pass: &mut Pass<'_>,
        loaded: &Loaded,
        progress: &dyn Progress,
    ) -> Result<Looked, PassError> {
        pass.report.remembered_suffixes = self.remembered_suffixes(&loaded.state);
        // Verdicts given under another policy, other keys or another
        // payload setting are given again: every package is read again,
        // whatever its token.
        let judgement = self.config.judgement();
        let rejudge = loaded.state.trust() != judgement;
        let listed_now = pass.listing.is_none();
        let (names, published) = self
            .names(pass.scope, loaded, rejudge, &mut pass.listing)
            .await?;
        // A listing taken after this attempt's state read is as fresh as a
        // HEAD would be: no HEAD per name (on a retry, there is).
        let listed = pass.listing.as_ref().filter(|_| listed_now);
        pass.report.state_lost = loaded
            .fresh
            .clone()
            .filter(|loss| published > 0 || *loss != StateLoss::Missing);
        let against = Against {
            state: &loaded.state,
            rejudge,
        };
        let seen = self
            .look_all(
                &names,
                against,
                listed,
                &pass.earlier,
                &pass.cache,
                progress,
            )
            .await;
        for (name, seen) in &seen {
            let token = loaded.state.token(name);
            if matches!((seen, token), (Seen::Current, _) | (Seen::Gone, None)) {
                pass.earlier.insert(name.clone(), token.map(str::to_owned));
            }
        }
        Ok(Looked {
            seen,
            judgement,
            published,
        })
    }

    /// The state with what was looked at merged in, the repository-wide
    /// checks of a listing pass, and the generation moved past published
    /// outputs ahead of it.
    fn merge(
        &self,
        pass: &mut Pass<'_>,
        loaded: &mut Loaded,
        looked: Looked,
    ) -> Result<Merged, PassError> {
        let report = &mut pass.report;
        // Taken, not cloned: a listing pass holds every record, and the
        // state read is not needed again (a retry reads it anew).
        let (generation, count) = (loaded.state.generation(), loaded.state.len());
        let mut next = std::mem::take(&mut loaded.state);
        let (changes, unsure) = tally(looked.seen, &next, report);
        let mut changed = next.apply_by(changes, self.who);
        if unsure.is_empty() {
            changed |= next.set_trust(&looked.judgement);
        }
        if matches!(pass.scope, Scope::Listing) {
            // Every record is at hand only here (and in `verify`). A pass
            // that changed no package finds what the last one did.
            let (_, checked) = next.repository_warnings();
            let found = if changed || checked == 0 {
                repository_warnings(&next)
            } else {
                next.repository_findings()
            };
            report.warnings.extend(found.warnings.iter().cloned());
            report.warnings.sort();
            report.warnings_more = found.more;
            next.recount_warnings();
            if unsure.is_empty() {
                changed |= next.set_repository_warnings(found);
            }
        }
        let published = looked.published;
        if never_indexed(pass.scope, loaded, published, &next) {
            // Names that are not there (another reading of a key, a late
            // delete) never create a repository.
            report.state_lost = None;
            return Ok(Merged {
                next: None,
                changed: false,
                unsure,
            });
        }
        changed |= next.remember_suffixes(self.config.suffixes.iter().map(String::as_str));
        // A state from before pieces is stored again in pieces.
        changed |= next.pieces().is_empty() && !next.is_empty();
        // Outputs ahead of the state (it was lost, or restored from an old
        // copy): move past them, or no publication would replace them.
        report.published_generation = None;
        if published > generation && next.advance_past(published) {
            changed = true;
            report.published_generation = Some(published);
        }
        self.check_size(&next, count)?;
        Ok(Merged {
            next: Some(next),
            changed,
            unsure,
        })
    }

    /// Publishes the newest committed state; a listing pass then collects
    /// the pieces nothing names.
    async fn publish_step(&self, pass: &mut Pass<'_>, next: &mut State) -> Result<(), PassError> {
        self.finish(&mut pass.report, next).await?;
        // Collecting garbage is housekeeping: a failure (a role that may
        // not delete, say) leaves the garbage, not the pass, behind.
        if matches!(pass.scope, Scope::Listing) {
            match self.collect_pieces(next).await {
                Ok(collected) => pass.report.pieces_collected = collected,
                Err(err) => tracing::warn!(%err, "could not collect unnamed pieces"),
            }
        }
        Ok(())
    }

    /// The names to look at, and the highest published generation where
    /// the state may lag it (0 otherwise). A lost state, a listing scope,
    /// or verdicts to give again (`rejudge`) mean every listed package and
    /// every name the state knows;
    /// the listing is taken once per pass, after the first state read
    /// (each name is looked at again anyway, so nothing older counts).
    async fn names(
        &self,
        scope: Scope<'_>,
        loaded: &Loaded,
        rejudge: bool,
        listing: &mut Option<BTreeMap<String, ObjectMeta>>,
    ) -> Result<(BTreeSet<String>, u64), PassError> {
        let mut names = match scope {
            Scope::Names(names) => names.clone(),
            Scope::Listing => BTreeSet::new(),
        };
        if matches!(scope, Scope::Names(_)) && loaded.fresh.is_none() && !rejudge {
            return Ok((names, 0));
        }
        if listing.is_none() {
            let also = self.remembered_suffixes(&loaded.state);
            *listing = Some(self.list_packages(&also).await?);
        }
        let listed = listing.iter().flat_map(|l| l.keys());
        if listed.clone().next().is_none()
            && matches!(scope, Scope::Listing)
            && !self.config.allow_empty
        {
            return Err(PassError::NoPackages {
                repository: self.location(),
                indexed: loaded.state.len(),
            });
        }
        names.extend(listed.cloned());
        names.extend(loaded.state.names().map(str::to_owned));
        Ok((names, self.published_generation().await?))
    }

    /// Suffixes the state remembers from earlier passes that this
    /// configuration lacks: their packages stay indexed (a run that forgets
    /// `--suffix .tbz` must not drop them).
    pub fn remembered_suffixes(&self, state: &State) -> Vec<String> {
        state
            .suffixes()
            .filter(|s| !self.config.suffixes.iter().any(|c| c == s))
            .map(str::to_owned)
            .collect()
    }

    /// The package file names directly under the prefix, from a listing:
    /// those with a configured suffix or one of `also`.
    pub async fn list_packages(
        &self,
        also: &[String],
    ) -> Result<BTreeMap<String, ObjectMeta>, StoreError> {
        let suffixes: Vec<&str> = self
            .config
            .suffixes
            .iter()
            .chain(also)
            .map(String::as_str)
            .collect();
        Ok(self
            .store
            .list(self.prefix)
            .await?
            .into_iter()
            .filter(|m| is_package_key(&m.key, &suffixes))
            .filter_map(|m| {
                let name = m.key[self.prefix.len()..].to_owned();
                (!name.contains('/')).then_some((name, m))
            })
            .collect())
    }

    /// Looks at every name, `concurrency` at a time, but for those an
    /// earlier attempt found to need no change, as the state still says;
    /// `listed`, if given, is a listing fresh enough to stand for a HEAD of
    /// each name.
    async fn look_all(
        &self,
        names: &BTreeSet<String>,
        against: Against<'_>,
        listed: Option<&BTreeMap<String, ObjectMeta>>,
        earlier: &Earlier,
        cache: &HeaderCache,
        progress: &dyn Progress,
    ) -> Vec<(String, Seen)> {
        // Futures built in a loop, not in a `map` closure: a closure here
        // makes the pass's future fail rustc's `Send` proof for spawned tasks.
        // Names settled without a request (most of a listing pass) are not
        // made into futures: at 20,000 names, that alone took ~50 ms.
        let mut looked = Vec::with_capacity(names.len());
        let mut lookups = Vec::new();
        progress.begin(names.len() as u64);
        for name in names {
            if let Some(seen) = settled(name, against, listed, earlier) {
                looked.push((name.clone(), seen));
                progress.advance();
                continue;
            }
            lookups.push(async move {
                let known = listed.map(|l| l.get(name).cloned());
                let seen = self.look_at(name, known, against, cache).await;
                progress.advance();
                (name.clone(), seen)
            });
        }
        let fetched: Vec<_> = stream::iter(lookups)
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        looked.extend(fetched);
        progress.end();
        looked
    }

    /// What the bucket holds for `name` now, against the state: a ranged
    /// GET of its start unless it still has the state's ETag (or, if
    /// `known`, from a fresh listing), and the rest of the header of a new
    /// or changed package.
    async fn look_at(
        &self,
        name: &str,
        mut known: Option<Option<ObjectMeta>>,
        against: Against<'_>,
        cache: &HeaderCache,
    ) -> Seen {
        let key = self.key(name);
        let fetch = &self.config.fetch;
        let mut last_error = None;
        // An object replaced or deleted between our first and a further
        // ranged GET (412 or 404), or while one was read (its body cut
        // short), is simply looked at again: the bucket moved on.
        for _ in 0..LOOKS {
            let (meta, first) = match known.take() {
                Some(None) => return Seen::Gone,
                Some(Some(meta)) if against.is_current(name, &meta) => return Seen::Current,
                // A listing carries no user metadata, and the release tag
                // is there: the first read (the same request a header
                // fetch starts with) brings it.
                Some(Some(_)) | None => match self
                    .store
                    .peek(&key, fetch.first(), against.token(name))
                    .await
                {
                    Ok(Peeked::Gone) => return Seen::Gone,
                    Ok(Peeked::Unchanged) => return Seen::Current,
                    Ok(Peeked::Found(meta, first)) => (meta, first),
                    Err(err) if err.is_refused_object() => {
                        return Seen::Changed(refused(name, None, &err), 0);
                    }
                    Err(err) if err.is_moved_on() => {
                        last_error = Some(err);
                        continue;
                    }
                    Err(err) => return Seen::Unsure(err),
                },
            };
            if against.is_current(name, &meta) {
                return Seen::Current;
            }
            let cache_key = (name.to_owned(), meta.etag.clone());
            if let Some((change, bytes)) = cache.lock().await.get(&cache_key) {
                return Seen::Changed(change.clone(), *bytes);
            }
            let fetched = header_after(self.store, &meta, first, 1, fetch).await;
            let fetched = match fetched {
                Ok(fetched) => self.check_payload(&meta, fetched).await,
                Err(err) => Err(err),
            };
            let (change, bytes) = match fetched {
                Ok(fetched) => {
                    tracing::info!(
                        key = %Escaped(&meta.key),
                        size = meta.size,
                        fetched = fetched.fetched,
                        requests = fetched.requests,
                        "header read"
                    );
                    let trust = &self.config.trust;
                    (
                        indexed(name, &meta, &fetched.header, trust, &fetch.limits),
                        fetched.fetched,
                    )
                }
                Err(FetchError::Package(error)) => (failed(name, &meta, &error), 0),
                Err(FetchError::Store(err)) if err.is_moved_on() => {
                    last_error = Some(err);
                    continue;
                }
                Err(FetchError::Store(err)) if err.is_refused_object() => {
                    (refused(name, Some(&meta), &err), 0)
                }
                Err(FetchError::Store(err)) => return Seen::Unsure(err),
            };
            cache
                .lock()
                .await
                .insert(cache_key, (change.clone(), bytes));
            return Seen::Changed(change, bytes);
        }
        Seen::Unsure(last_error.unwrap_or_else(|| {
            StoreError::other(
                Op::GetRange,
                self.store.location(&key),
                "kept changing while read",
            )
        }))
    }

    /// With `PKGSUM_VERIFY_PAYLOAD`, reads a signed package whole and checks
    /// its blocks against `+PKG_HASH`; the bytes count as fetched.
    async fn check_payload(
        &self,
        meta: &ObjectMeta,
        mut fetched: Fetched,
    ) -> Result<Fetched, FetchError> {
        if self.config.verify_payload && fetched.header.signature.is_some() {
            fetched.fetched += check_payload(self.store, meta, &self.config.fetch).await?;
        }
        Ok(fetched)
    }

    /// The releases of `state` still incomplete after the timeout.
    pub(crate) fn stalled(&self, state: &State) -> Vec<String> {
        let now = whole_seconds(std::time::SystemTime::now());
        let timeout = self.config.release_timeout.as_secs();
        let waiting = state.waiting().into_iter();
        waiting
            .filter(|w| w.timed_out(now, timeout))
            .map(|w| format!("{w}; past PKGSUM_RELEASE_TIMEOUT, it is not published"))
            .collect()
    }

    /// Refuses a pass that would grow the repository past its bound.
    fn check_size(&self, next: &State, before: usize) -> Result<(), PassError> {
        let limit = self.config.max_records;
        if next.len() > limit && next.len() > before {
            return Err(PassError::TooManyPackages {
                repository: self.location(),
                count: next.len(),
                limit,
            });
        }
        Ok(())
    }

    /// After a commit (or with nothing to commit): the report's totals,
    /// then publishing.
    async fn finish(&self, report: &mut Report, next: &mut State) -> Result<(), PassError> {
        if let Some(loss) = &report.state_lost {
            tracing::warn!(
                prefix = self.prefix,
                state = %loss,
                generation = next.generation(),
                "state was lost; recreated from a listing"
            );
        }
        report.failures = next
            .failures()
            .map(|(name, f)| (name.to_owned(), f.error.clone()))
            .collect();
        report.generation = next.generation();
        report.packages = next.len();
        // Boxed: publishing's future is large, and a pass's callers hold
        // theirs on small stacks (test threads, tokio workers).
        let published = Box::pin(self.publish(next)).await?;
        report.published = published.wrote;
        report.held = published.closed.iter().map(ToString::to_string).collect();
        report.stalled = self.stalled(next);
        for line in report.stalled.iter().take(LOGGED) {
            tracing::warn!(repository = %report.repository, "{line}");
        }
        report.runs_compressed = published.runs_compressed;
        report.runs_copied = published.runs_copied;
        report.site_rendered = published.site_rendered;
        report.site_copied = published.site_copied;
        Ok(())
    }
}

/// What `name` is without a request, if that is known: an earlier
/// attempt found it needs no change and the state still says so, or a
/// fresh listing lacks it or shows the object the state reflects.
fn settled(
    name: &str,
    against: Against<'_>,
    listed: Option<&BTreeMap<String, ObjectMeta>>,
    earlier: &Earlier,
) -> Option<Seen> {
    let token = against.state.token(name);
    match earlier.get(name) {
        Some(None) if token.is_none() => return Some(Seen::Gone),
        Some(Some(was)) if token == Some(was.as_str()) => return Some(Seen::Current),
        _ => {}
    }
    match listed?.get(name) {
        None => Some(Seen::Gone),
        Some(meta) if against.is_current(name, meta) => Some(Seen::Current),
        Some(_) => None,
    }
}

/// Whether a pass over event names found a repository that was never
/// indexed (no state, nothing published) and nothing in it.
fn never_indexed(scope: Scope<'_>, loaded: &Loaded, published: u64, next: &State) -> bool {
    matches!(scope, Scope::Names(_))
        && loaded.fresh == Some(StateLoss::Missing)
        && published == 0
        && next.names().next().is_none()
}

/// Sorts what the lookups found into changes for the state, names to
/// retry, and the report's counts.
fn tally(
    looked: Vec<(String, Seen)>,
    state: &State,
    report: &mut Report,
) -> (Vec<Change>, Vec<Unsure>) {
    let mut changes = Vec::new();
    let mut unsure = Vec::new();
    let (mut read, mut removed, mut warnings) = (Vec::new(), Vec::new(), Vec::new());
    let (mut unchanged, mut bytes) = (0, 0);
    for (name, seen) in looked {
        match seen {
            Seen::Gone => {
                if state.package(&name).is_some() || state.failure(&name).is_some() {
                    removed.push(name.clone());
                }
                changes.push(Change::Removed { name });
            }
            Seen::Current => unchanged += 1,
            Seen::Changed(change, n) => {
                let package = match &change {
                    Change::Indexed { package, .. } => Some(package),
                    Change::Staged { staged, .. } => Some(&staged.package),
                    _ => None,
                };
                if let Some(package) = package {
                    warnings.extend(package.warnings.iter().map(|w| (name.clone(), w.clone())));
                }
                read.push(name);
                bytes += n;
                changes.push(change);
            }
            Seen::Unsure(error) => unsure.push(Unsure { name, error }),
        }
    }
    read.sort();
    removed.sort();
    warnings.sort();
    (report.read, report.removed, report.warnings) = (read, removed, warnings);
    (report.unchanged, report.bytes_fetched) = (unchanged, bytes);
    (changes, unsure)
}

/// What is wrong with packages beside the others in `state` (duplicate
/// PKGNAMEs, another platform than most, unresolved DEPENDS), logged as it
/// is found (the first few: the state and status keep the rest).
fn repository_warnings(state: &State) -> checks::Findings {
    let records = state.packages().map(|(name, p)| (name, &p.record[..]));
    let found = checks::repository_warnings(records, checks::DEFAULT_KEPT);
    for (name, warning) in found.warnings.iter().take(LOGGED) {
        tracing::warn!(name = %Bare(name), %warning, "found beside the other packages");
    }
    let more = found.warnings.len().saturating_sub(LOGGED) + found.more;
    if more > 0 {
        tracing::warn!(
            more,
            "more warnings beside the other packages (in status.json)"
        );
    }
    found
}

/// Most warnings of one kind a pass writes to the log; the rest are
/// counted (status.json has them).
const LOGGED: usize = 20;

/// What reading a package's header found: a record, with its warnings and
/// its signature verdict; or, when the policy requires a good signature
/// and it has none, a failure naming the verdict.
fn indexed(
    name: &str,
    meta: &ObjectMeta,
    header: &Header,
    trust: &Trust,
    limits: &Limits,
) -> Change {
    let info = FileInfo {
        name: name.as_bytes(),
        size: meta.size,
    };
    let record = match record::render_limited(&header.metadata, Some(info), limits.record) {
        Ok(record) => record,
        Err(too_long) => return failed(name, meta, &too_long),
    };
    let pkgname = record::pkgname(&record).unwrap_or_default();
    let verdict = trust.verdict(header.signature.as_ref(), &String::from_utf8_lossy(pkgname));
    if let Some(verdict) = &verdict {
        tracing::info!(key = %Escaped(&meta.key), %verdict, "signature judged");
        if trust.policy() == Policy::Require && !verdict.is_good() {
            let error = format!("left out, as PKGSUM_SIGNATURES=require: {verdict}");
            return failed(name, meta, &error);
        }
    }
    let mut warnings = header.warnings.clone();
    warnings.extend(checks::package_warnings(
        name,
        &record,
        header.signature.as_ref().map(|s| &s.hash),
    ));
    let tag = meta.metadata.get(release::METADATA).map(|v| Tag::parse(v));
    if let Some(Err(bad)) = &tag {
        warnings.push(bad.to_string());
    }
    for warning in &warnings {
        tracing::warn!(key = %Escaped(&meta.key), %warning, "indexed with a warning");
    }
    let package = Package {
        record,
        size: meta.size,
        token: meta.etag.clone(),
        warnings,
    };
    let name = name.to_owned();
    match tag {
        Some(Ok(tag)) => Change::Staged {
            name,
            staged: Staged {
                tag,
                package,
                verdict,
                uploaded: meta.last_modified.map_or(0, whole_seconds),
            },
        },
        _ => Change::Indexed {
            name,
            package,
            verdict,
        },
    }
}

/// An object the store refuses or denies to us (an object encrypted with
/// a customer's key needs only PutObject to upload): recorded as
/// unreadable, as the store answered, so it is neither published nor
/// retried for ever. Without a HEAD's answer its token is unknown, and
/// each listing looks at it again.
fn refused(name: &str, meta: Option<&ObjectMeta>, error: &StoreError) -> Change {
    let unknown;
    let meta = match meta {
        Some(meta) => meta,
        None => {
            unknown = ObjectMeta {
                key: name.to_owned(),
                size: 0,
                etag: String::new(),
                last_modified: None,
                metadata: Default::default(),
            };
            &unknown
        }
    };
    failed(name, meta, error)
}

fn failed(name: &str, meta: &ObjectMeta, error: &dyn std::fmt::Display) -> Change {
    tracing::warn!(key = %Escaped(&meta.key), %error, "package skipped");
    Change::Failed {
        name: name.to_owned(),
        failure: Failure {
            size: meta.size,
            token: meta.etag.clone(),
            error: error.to_string(),
        },
    }
}
