//! The spool: what `pkgsum serve` has promised to apply, on local disk.
//!
//! A notification is answered 2xx only once its keys are written here and
//! flushed (the file, then the directory that names it), so a crash after
//! the answer loses nothing: the next start reads every entry back. An
//! entry is removed once all its keys are applied. Entries are small JSON
//! files, one per request, written to a temporary name and renamed, so a
//! reader never sees half of one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// A key to look at again, as kept in the spool.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key {
    pub bucket: String,
    pub key: String,
    /// Who the notification says made the change (for the history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub who: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    keys: Vec<Key>,
}

/// Why the spool could not be used, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("spool {path}: {operation}: {source}")]
pub struct SpoolError {
    pub path: PathBuf,
    pub operation: &'static str,
    #[source]
    pub source: io::Error,
}

/// What [`Spool::replay`] found: entries (file name and keys), oldest
/// first, and the entries that could not be read (set aside).
pub type Replayed = (Vec<(String, Vec<Key>)>, Vec<SpoolError>);

/// The spool directory.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    counter: AtomicU64,
}

const SUFFIX: &str = ".json";
const TEMPORARY: &str = ".tmp-";

impl Spool {
    /// Opens (creating it if need be) the spool in `dir`.
    pub fn open(dir: &Path) -> Result<Spool, SpoolError> {
        fs::create_dir_all(dir).map_err(|source| SpoolError {
            path: dir.to_owned(),
            operation: "creating the directory",
            source,
        })?;
        Ok(Spool {
            dir: dir.to_owned(),
            counter: AtomicU64::new(0),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes an entry durably and returns its file name.
    pub fn write(&self, keys: &[Key]) -> Result<String, SpoolError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        // Sorted by time of acceptance, unique within this process and,
        // with the process id, across restarts in the same nanosecond.
        let name = format!("{nanos:024}-{}-{n}{SUFFIX}", std::process::id());
        let path = self.dir.join(&name);
        let error = |operation| {
            let path = path.clone();
            move |source| SpoolError {
                path,
                operation,
                source,
            }
        };
        let body = serde_json::to_vec(&Entry {
            keys: keys.to_vec(),
        })
        .map_err(io::Error::other)
        .map_err(error("encoding"))?;
        let temporary = self.dir.join(format!("{TEMPORARY}{name}"));
        let mut file = File::create(&temporary).map_err(error("creating"))?;
        file.write_all(&body).map_err(error("writing"))?;
        file.sync_all().map_err(error("flushing"))?;
        fs::rename(&temporary, &path).map_err(error("renaming"))?;
        self.sync_dir().map_err(error("flushing the directory"))?;
        Ok(name)
    }

    /// Removes an applied entry.
    pub fn remove(&self, name: &str) -> Result<(), SpoolError> {
        let path = self.dir.join(name);
        match fs::remove_file(&path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(SpoolError {
                path,
                operation: "removing",
                source: err,
            }),
            _ => Ok(()),
        }
    }

    /// Every entry left by an earlier run, oldest first. A temporary file
    /// (a write cut short, never answered 2xx) is removed; an entry that
    /// cannot be read is renamed `*.bad` and reported, never retried
    /// forever.
    pub fn replay(&self) -> Result<Replayed, SpoolError> {
        let listing = fs::read_dir(&self.dir).map_err(|source| SpoolError {
            path: self.dir.clone(),
            operation: "listing",
            source,
        })?;
        let mut names: Vec<String> = listing
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        let mut entries = Vec::new();
        let mut bad = Vec::new();
        for name in names {
            let path = self.dir.join(&name);
            if name.starts_with(TEMPORARY) {
                let _ = fs::remove_file(&path);
                continue;
            }
            if !name.ends_with(SUFFIX) {
                continue;
            }
            match read_entry(&path) {
                Ok(keys) => entries.push((name, keys)),
                Err(source) => {
                    let _ = fs::rename(&path, path.with_extension("json.bad"));
                    bad.push(SpoolError {
                        path,
                        operation: "reading",
                        source,
                    });
                }
            }
        }
        Ok((entries, bad))
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

fn read_entry(path: &Path) -> io::Result<Vec<Key>> {
    let entry: Entry = serde_json::from_slice(&fs::read(path)?).map_err(io::Error::other)?;
    Ok(entry.keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        Key {
            bucket: "b".to_owned(),
            key: format!("All/{name}"),
            who: None,
        }
    }

    #[test]
    fn entries_come_back_in_order_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&dir.path().join("spool")).unwrap();
        let first = spool.write(&[key("a.tgz"), key("b.tgz")]).unwrap();
        let second = spool.write(&[key("c d+e%.tgz")]).unwrap();
        // A write cut short and a damaged entry, as a crash might leave.
        fs::write(spool.dir().join(".tmp-x.json"), b"{").unwrap();
        fs::write(spool.dir().join("0-damaged.json"), b"{").unwrap();

        let again = Spool::open(spool.dir()).unwrap();
        let (entries, bad) = again.replay().unwrap();
        assert_eq!(bad.len(), 1);
        assert!(bad[0].to_string().contains("0-damaged.json: reading"));
        assert_eq!(
            entries,
            vec![
                (first.clone(), vec![key("a.tgz"), key("b.tgz")]),
                (second.clone(), vec![key("c d+e%.tgz")]),
            ]
        );
        assert!(!spool.dir().join(".tmp-x.json").exists());
        assert!(spool.dir().join("0-damaged.json.bad").exists());

        again.remove(&first).unwrap();
        again.remove(&first).unwrap();
        let (entries, bad) = again.replay().unwrap();
        assert!(bad.is_empty());
        assert_eq!(entries, vec![(second, vec![key("c d+e%.tgz")])]);
    }
}
