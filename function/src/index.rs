//! `pkgsum index DIR`: the local-directory shell around the core.
//!
//! One pass lists the directory, reads the headers of new and changed
//! packages only (in parallel), merges them into the state kept in
//! `DIR/.pkgsum/state`, and publishes `pkg_summary.*` atomically when
//! anything changed. A lock file keeps two passes on one directory apart.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rayon::prelude::*;

use crate::compression::Compression;
use crate::error::{Error, Result};
use crate::header::read_header;
use crate::limit::Limits;
use crate::progress::Progress;
use crate::record::{self, FileInfo};
use crate::state::{self, Change, Failure, Listed, Package, State};
use crate::summary;

/// Where pkgsum keeps its own files inside a repository directory.
pub const STATE_DIR: &str = ".pkgsum";
const STATE_FILE: &str = "state";
const LOCK_FILE: &str = "lock";

/// How to index a directory.
#[derive(Debug, Clone)]
pub struct Options {
    /// File name suffixes that mark packages.
    pub suffixes: Vec<String>,
    /// Summary formats to write; pkgin's other variants are removed.
    pub formats: Vec<Compression>,
    pub limits: Limits,
    /// Bound on the decoded size of the stored state.
    pub state_limit: u64,
    /// Whether a directory with no package may get an empty summary.
    pub allow_empty: bool,
}

impl Options {
    /// The options the shared `PKGSUM_*` configuration gives a directory.
    pub fn from_config(config: &crate::config::Config) -> Options {
        Options {
            suffixes: config.suffixes.clone(),
            formats: config.formats.clone(),
            limits: config.fetch.limits,
            state_limit: config.state_limit,
            allow_empty: config.allow_empty,
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            suffixes: vec![".tgz".to_owned()],
            formats: summary::DEFAULT_FORMATS.to_vec(),
            limits: Limits::default(),
            state_limit: state::DEFAULT_STATE_LIMIT,
            allow_empty: false,
        }
    }
}

/// What a pass did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Files whose headers were read, sorted.
    pub read: Vec<String>,
    /// Files dropped because they are gone.
    pub removed: Vec<String>,
    /// Files the state already reflected.
    pub unchanged: usize,
    /// Every package currently unreadable, with the reason (new ones and
    /// unchanged ones remembered from earlier passes).
    pub failures: Vec<(String, String)>,
    /// Warnings about packages that were indexed (pkg_info's warnings).
    pub warnings: Vec<(String, String)>,
    /// Indexed packages after the pass.
    pub packages: usize,
    /// The state's generation after the pass.
    pub generation: u64,
    /// Whether the summary files were (re)written.
    pub published: bool,
    /// Bytes taken from package files while reading headers.
    pub bytes_read: u64,
    /// Why a stored state was discarded, if it was.
    pub state_reset: Option<String>,
    /// Suffixes indexed because earlier runs were given them, although
    /// this run was not.
    pub remembered_suffixes: Vec<String>,
}

/// Indexes the packages in `dir` and publishes its summary files.
///
/// A directory with no package file is refused (nothing is written, not
/// even `.pkgsum/`) unless `options.allow_empty`: an empty summary is far
/// more often a mistyped directory than an emptied repository.
pub fn index_dir(dir: &Path, options: &Options, progress: &dyn Progress) -> Result<Report> {
    let meta = fs::metadata(dir).map_err(|e| Error::path(dir, e))?;
    if !meta.is_dir() {
        let err = std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory");
        return Err(Error::path(dir, err));
    }
    let state_dir = dir.join(STATE_DIR);
    let state_path = state_dir.join(STATE_FILE);
    let refuse = |indexed| Error::NoPackages {
        repository: dir.display().to_string(),
        indexed,
    };
    if !options.allow_empty
        && !state_path.exists()
        && list_packages(dir, &options.suffixes)?.is_empty()
    {
        return Err(refuse(0));
    }
    fs::create_dir_all(&state_dir).map_err(|e| Error::path(&state_dir, e))?;
    let _lock = lock(&state_dir, progress)?;

    let mut report = Report::default();
    let (mut state, reset) = load_state(&state_path, options.state_limit)?;
    report.state_reset = reset;
    report.remembered_suffixes = state
        .suffixes()
        .filter(|s| !options.suffixes.iter().any(|o| o == s))
        .map(str::to_owned)
        .collect();
    let mut suffixes = options.suffixes.clone();
    suffixes.extend(report.remembered_suffixes.iter().cloned());
    let new_suffixes = state.remember_suffixes(suffixes.iter().map(String::as_str));

    let listing = list_packages(dir, &suffixes)?;
    if listing.is_empty() && !options.allow_empty {
        return Err(refuse(state.len()));
    }
    let plan = state.plan(&listing.files);
    report.unchanged = plan.unchanged;
    report.removed = plan.removed.clone();
    tracing::info!(
        dir = %dir.display(),
        listed = listing.files.len(),
        to_read = plan.read.len(),
        gone = plan.removed.len(),
        generation = state.generation(),
        "planned"
    );

    progress.begin(plan.read.len() as u64);
    let results: Vec<(Change, u64, Vec<String>)> = plan
        .read
        .par_iter()
        .map(|file| {
            let out = read_package(dir, file, &options.limits);
            progress.advance();
            out
        })
        .collect();
    progress.end();

    let mut changes: Vec<Change> = Vec::with_capacity(results.len() + plan.removed.len());
    for (change, bytes, warnings) in results {
        report.bytes_read += bytes;
        if let Change::Indexed { name, .. } = &change {
            for warning in warnings {
                report.warnings.push((name.clone(), warning));
            }
        }
        changes.push(change);
    }
    report.read = plan.read.into_iter().map(|f| f.name).collect();
    changes.extend(
        plan.removed
            .into_iter()
            .map(|name| Change::Removed { name }),
    );
    let records_changed = changes.iter().any(|c| state.changes_records(c));
    let changed = state.apply(changes);

    // Outputs before state: a crash in between leaves a state that is
    // behind, so the next pass redoes the work; never the reverse.
    if records_changed || !outputs_complete(dir, &options.formats) {
        publish(dir, &state, &options.formats)?;
        report.published = true;
        tracing::info!(dir = %dir.display(), generation = state.generation(), "published");
    }
    if changed || new_suffixes || report.published {
        save_state(&state_dir, &state)?;
    }

    report.failures = state
        .failures()
        .map(|(name, f)| (name.to_owned(), f.error.clone()))
        .chain(listing.unlistable)
        .collect();
    report.packages = state.len();
    report.generation = state.generation();
    Ok(report)
}

/// Takes the repository's lock, saying who holds it if it must wait, and
/// records this process as the holder.
fn lock(state_dir: &Path, progress: &dyn Progress) -> Result<File> {
    let path = state_dir.join(LOCK_FILE);
    let err = |e| Error::path(&path, e);
    let mut lock = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(err)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            let holder = if holder.is_empty() {
                "another pkgsum run"
            } else {
                holder
            };
            tracing::info!(lock = %path.display(), holder, "waiting for the lock");
            progress.waiting(holder);
            lock.lock().map_err(err)?;
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(err(e)),
    }
    let holder = format!("pkgsum index (pid {})", std::process::id());
    lock.set_len(0).map_err(err)?;
    lock.write_all(holder.as_bytes()).map_err(err)?;
    Ok(lock)
}

/// Loads the stored state; a missing one is empty, an unreadable one is
/// discarded (it is only a cache) with the reason returned.
fn load_state(path: &Path, limit: u64) -> Result<(State, Option<String>)> {
    match fs::read(path) {
        Ok(bytes) => match State::from_bytes(&bytes, limit) {
            Ok(state) => Ok((state, None)),
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "discarding unreadable state");
                Ok((State::default(), Some(err.to_string())))
            }
        },
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok((State::default(), None)),
        Err(err) => Err(Error::path(path, err)),
    }
}

fn save_state(state_dir: &Path, state: &State) -> Result<()> {
    write_atomic(&state_dir.join(STATE_FILE), &state.to_bytes()?)
}

/// A directory listing: package files, and names that cannot be indexed
/// with the reason.
struct Listing {
    files: Vec<Listed>,
    unlistable: Vec<(String, String)>,
}

impl Listing {
    /// No package file at all, readable or not.
    fn is_empty(&self) -> bool {
        self.files.is_empty() && self.unlistable.is_empty()
    }
}

/// Lists package files: regular files (symlinks followed) with one of the
/// suffixes, not hidden (`.x.tgz` is an upload in progress or a leftover,
/// never a package pkgin could fetch, and `pkg_info -X *.tgz` skips it
/// too). Names that are not UTF-8 cannot be keyed and are returned as
/// failures instead.
fn list_packages(dir: &Path, suffixes: &[String]) -> Result<Listing> {
    let mut listing = Vec::new();
    let mut unlistable = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| Error::path(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::path(dir, e))?;
        let raw = entry.file_name();
        let lossy = raw.to_string_lossy();
        if lossy.starts_with('.')
            || !suffixes.iter().any(|s| lossy.ends_with(s.as_str()))
            || summary::is_own_file(&lossy)
        {
            continue;
        }
        let Some(name) = raw.to_str() else {
            unlistable.push((
                lossy.into_owned(),
                "file name is not valid UTF-8".to_owned(),
            ));
            continue;
        };
        let path = entry.path();
        let meta = match fs::metadata(&path) {
            Ok(meta) => meta,
            Err(err) => {
                unlistable.push((name.to_owned(), format!("cannot stat: {err}")));
                continue;
            }
        };
        if !meta.is_file() {
            continue;
        }
        listing.push(Listed {
            name: name.to_owned(),
            size: meta.len(),
            token: local_token(&meta),
        });
    }
    listing.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Listing {
        files: listing,
        unlistable,
    })
}

/// Identifies a version of a local file: a replacement by rename changes
/// the inode, an in-place rewrite changes ctime even if mtime is kept.
fn local_token(meta: &fs::Metadata) -> String {
    format!(
        "m{}.{:09} c{}.{:09} i{}",
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
        meta.ino()
    )
}

/// Reads one package's header into a change, with the bytes it cost and
/// pkg_info's warnings.
fn read_package(dir: &Path, file: &Listed, limits: &Limits) -> (Change, u64, Vec<String>) {
    let path = dir.join(&file.name);
    let result = File::open(&path)
        .map_err(Error::Io)
        .and_then(|f| read_header(f, limits));
    match result {
        Ok(header) => {
            tracing::info!(file = %path.display(), read = header.consumed, size = file.size, "header read");
            let info = FileInfo {
                name: file.name.as_bytes(),
                size: file.size,
            };
            let package = Package {
                record: record::render(&header.metadata, Some(info)),
                size: file.size,
                token: file.token.clone(),
                warnings: header.warnings.clone(),
            };
            let change = Change::Indexed {
                name: file.name.clone(),
                package,
            };
            (change, header.consumed, header.warnings)
        }
        Err(err) => {
            tracing::info!(file = %path.display(), error = %err, "unreadable package");
            let failure = Failure {
                size: file.size,
                token: file.token.clone(),
                error: err.to_string(),
            };
            let change = Change::Failed {
                name: file.name.clone(),
                failure,
            };
            (change, 0, Vec::new())
        }
    }
}

/// Whether every summary file to be written exists and no stale variant
/// does.
fn outputs_complete(dir: &Path, formats: &[Compression]) -> bool {
    formats
        .iter()
        .all(|&f| dir.join(summary::file_name(f)).is_file())
        && summary::unwritten(formats)
            .into_iter()
            .all(|f| !dir.join(summary::file_name(f)).exists())
}

/// Writes all summary files from one state and removes stale variants.
fn publish(dir: &Path, state: &State, formats: &[Compression]) -> Result<()> {
    let rendered = summary::render(&state.summary(), formats).map_err(Error::Io)?;
    for stale in summary::unwritten(formats) {
        let path = dir.join(summary::file_name(stale));
        match fs::remove_file(&path) {
            Ok(()) => tracing::info!(path = %path.display(), "removed stale summary variant"),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(Error::path(path, err)),
        }
    }
    for output in rendered {
        write_atomic(&dir.join(summary::file_name(output.format)), &output.bytes)?;
    }
    Ok(())
}

/// Writes a file whole or not at all: a temporary file in the same
/// directory, synced, then renamed over the target. Its mtime is kept
/// strictly later, in whole seconds, than the file it replaces, because
/// pkgin refreshes only on a newer Last-Modified.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let err = |e| Error::path(path, e);
    let mut tmp = tempfile::Builder::new()
        .prefix(summary::TEMP_PREFIX)
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    let file = tmp.as_file();
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .map_err(err)?;
    if let Some(mtime) = later_mtime(path) {
        file.set_modified(mtime).map_err(err)?;
    }
    file.sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// A modification time one second past the existing file's, if now is
/// not already in a later second.
fn later_mtime(path: &Path) -> Option<SystemTime> {
    let old = fs::metadata(path).ok()?.modified().ok()?;
    let secs = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs())
    };
    let (old_s, now_s) = (secs(old)?, secs(SystemTime::now())?);
    (now_s <= old_s).then(|| SystemTime::UNIX_EPOCH + Duration::from_secs(old_s + 1))
}
