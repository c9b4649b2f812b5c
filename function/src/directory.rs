//! `pkgsum index DIR`: a repository in a local directory, indexed by the
//! same pass as a bucket ([`Repo::apply`] over [`LocalStore`]).
//!
//! What only a directory needs is here: refusing a path that is not a
//! directory, refusing one with no package before writing anything, a
//! lock that keeps two runs on one directory from doing the work twice
//! (and says who holds it), and names the filesystem allows but a store
//! key cannot hold (not UTF-8), reported as unreadable.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::config::Config;
use crate::error::Error;
use crate::keys::is_package_key;
use crate::progress::Progress;
use crate::repo::{Applied, PassError, Repo, Report, Scope, state_key};
use crate::store::local::LocalStore;

/// Where pkgsum keeps its own files inside a repository directory.
pub const STATE_DIR: &str = ".pkgsum";
const LOCK_FILE: &str = "lock";
/// The first bytes read from each package.
const LOCAL_FIRST_READ: u64 = 16 * 1024;

/// Why a directory could not be indexed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The directory itself (missing, not a directory, its lock).
    #[error(transparent)]
    Directory(#[from] Error),
    #[error(transparent)]
    Pass(#[from] PassError),
}

/// Indexes the packages in `dir` and publishes its summary files, as a
/// pass over a bucket does. A directory with no package file is refused
/// (nothing is written, not even `.pkgsum/`) unless `config.allow_empty`:
/// an empty summary is far more often a mistyped directory than an
/// emptied repository.
pub async fn index_directory(
    dir: &Path,
    config: &Config,
    progress: &dyn Progress,
) -> Result<Report, IndexError> {
    let meta = fs::metadata(dir).map_err(|e| Error::path(dir, e))?;
    if !meta.is_dir() {
        let err = std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory");
        return Err(Error::path(dir, err).into());
    }
    let mut config = config.clone();
    // A local ranged read costs a system call, not a round trip: start
    // small (most headers fit in 16 KiB) and let the fetch double it.
    config.fetch.initial = config.fetch.initial.min(LOCAL_FIRST_READ);
    let store = LocalStore::new(dir);
    let repo = Repo::new(&store, "", &config);
    let state_dir = dir.join(STATE_DIR);
    let unusable = unusable_names(dir, &config.suffixes)?;
    let fresh = !dir.join(state_key("")).exists();
    if fresh && !config.allow_empty && unusable.is_empty() {
        // The pass refuses too, but only after taking the lock, which
        // would leave `.pkgsum/` behind in a mistyped directory.
        if repo
            .list_packages(&[])
            .await
            .map_err(PassError::from)?
            .is_empty()
        {
            return Err(PassError::NoPackages {
                repository: repo.location(),
                indexed: 0,
            }
            .into());
        }
    }
    fs::create_dir_all(&state_dir).map_err(|e| Error::path(&state_dir, e))?;
    let _lock = lock(&state_dir, progress).await?;
    let Applied { mut report, unsure } = repo.apply(Scope::Listing, progress).await?;
    // A directory has no transient failures to retry: report them as
    // unreadable, with the reason, as every other failure.
    report.failures.extend(
        unsure
            .into_iter()
            .map(|unsure| (unsure.name, unsure.error.kind.to_string())),
    );
    report.failures.extend(unusable);
    report.failures.sort();
    Ok(report)
}

/// Takes the directory's lock, saying who holds it if it must wait, and
/// records this process as the holder.
async fn lock(state_dir: &Path, progress: &dyn Progress) -> Result<File, Error> {
    let path = state_dir.join(LOCK_FILE);
    let err = |e| Error::path(&path, e);
    // Never through a symbolic link: the holder is written into the file,
    // and `.pkgsum/` is as untrusted as the rest of the directory.
    let mut lock = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(err)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let holder = crate::config::read_small_file(&path, 1024).unwrap_or_default();
            let holder = String::from_utf8_lossy(&holder);
            let holder = match holder.trim() {
                "" => "another pkgsum run".to_owned(),
                holder => crate::excerpt::Bare(holder).to_string(),
            };
            let holder = holder.as_str();
            tracing::info!(lock = %path.display(), holder, "waiting for the lock");
            progress.waiting(holder);
            lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
                .await
                .map_err(|e| err(std::io::Error::other(e)))?
                .map_err(err)?;
        }
        Err(fs::TryLockError::Error(e)) => return Err(err(e)),
    }
    let holder = format!("pkgsum index (pid {})", std::process::id());
    lock.set_len(0).map_err(err)?;
    lock.write_all(holder.as_bytes()).map_err(err)?;
    Ok(lock)
}

/// Package files whose names no key can carry: not UTF-8, or holding a
/// control character (a newline would break the summary's FILE_NAME line
/// and forge log lines). The pass never sees them; they are reported as
/// unreadable, escaped, instead of silently left out.
fn unusable_names(dir: &Path, suffixes: &[String]) -> Result<Vec<(String, String)>, Error> {
    let suffixes: Vec<&str> = suffixes.iter().map(String::as_str).collect();
    let mut unusable = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::path(dir, e))? {
        let name = entry.map_err(|e| Error::path(dir, e))?.file_name();
        let (lossy, why) = match std::str::from_utf8(name.as_bytes()) {
            Err(_) => (name.to_string_lossy(), "file name is not valid UTF-8"),
            Ok(text) if text.chars().any(char::is_control) => (
                text.into(),
                "file name holds a control character, which no summary line can carry",
            ),
            Ok(_) => continue,
        };
        let plain: String = lossy.chars().filter(|c| !c.is_control()).collect();
        if is_package_key(&plain, &suffixes) {
            unusable.push((lossy.into_owned(), why.to_owned()));
        }
    }
    Ok(unusable)
}
