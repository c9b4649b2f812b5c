//! A store in a local directory: keys are relative paths. For a
//! repository served straight from disk, and as a second implementation
//! of the trait's semantics in the conformance tests.
//!
//! ETags come from the file's identity (mtime, size, inode), so HEAD never
//! reads a package. User metadata and headers live in JSON sidecars under
//! `.pkgsum-meta/`. Conditional writes hold an exclusive lock on
//! `.pkgsum-meta/.lock` while they compare and rename.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::excerpt::Escaped;
use crate::summary::TEMP_PREFIX;

use super::{
    ErrorKind, ObjectMeta, Op, PutOptions, Store, StoreError, StoreResult, check_put_mode,
};

const META_DIR: &str = ".pkgsum-meta";

/// Largest sidecar read.
const SIDECAR_LIMIT: u64 = 64 << 10;

/// An object's metadata from its file's `lstat` or `fstat`: none unless it
/// is a regular file.
fn object_meta(key: &str, stat: &fs::Metadata) -> Option<ObjectMeta> {
    if !stat.file_type().is_file() {
        return None;
    }
    Some(ObjectMeta {
        key: key.to_owned(),
        size: stat.len(),
        // A replacement by rename changes the inode; a rewrite in
        // place changes ctime even where mtime is put back.
        etag: format!(
            "{:x}.{:x}-{:x}.{:x}-{:x}-{:x}",
            stat.mtime(),
            stat.mtime_nsec(),
            stat.ctime(),
            stat.ctime_nsec(),
            stat.len(),
            stat.ino()
        ),
        last_modified: stat.modified().ok(),
        metadata: BTreeMap::new(),
    })
}

/// Whether a listing passes over the file or directory `key` (named
/// `name`): the sidecars, and files being written.
fn is_skipped(key: &str, name: &str) -> bool {
    key == META_DIR || name.starts_with(TEMP_PREFIX)
}

/// A directory holding objects.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

/// What a sidecar keeps for an object.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Sidecar {
    content_type: Option<String>,
    cache_control: Option<String>,
    metadata: BTreeMap<String, String>,
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore { root: root.into() }
    }

    /// A failed filesystem call on `key`'s object, with the cause kept.
    fn io_error(&self, op: Op, key: &str, error: io::Error) -> StoreError {
        let kind = match error.kind() {
            io::ErrorKind::NotFound => ErrorKind::NotFound,
            io::ErrorKind::PermissionDenied => ErrorKind::Denied(error.to_string()),
            _ => ErrorKind::Other(error.to_string()),
        };
        StoreError::new(op, self.location(key), kind).with_backend(error)
    }

    fn path(&self, op: Op, key: &str) -> StoreResult<PathBuf> {
        let relative = Path::new(key);
        let plain = !key.is_empty()
            && relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
            && !key.starts_with(META_DIR);
        if !plain {
            return Err(StoreError::other(
                op,
                self.location(key),
                "not a plain relative key",
            ));
        }
        Ok(self.root.join(relative))
    }

    fn sidecar_path(&self, key: &str) -> PathBuf {
        self.root.join(META_DIR).join(format!("{key}.json"))
    }

    /// What `key` holds, with its user metadata (HEAD and GET).
    fn meta(&self, op: Op, key: &str, path: &Path) -> StoreResult<Option<ObjectMeta>> {
        let Some(mut meta) = self.stat(op, key, path)? else {
            return Ok(None);
        };
        meta.metadata = self.sidecar(key).metadata;
        Ok(Some(meta))
    }

    /// The sidecar of `key`, read bounded (it is a few hundred bytes; a
    /// file under `.pkgsum-meta/` is as untrusted as any other).
    fn sidecar(&self, key: &str) -> Sidecar {
        crate::config::read_small_file(&self.sidecar_path(key), SIDECAR_LIMIT)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// What `key` holds, without user metadata: a listing (as S3's) and a
    /// ranged read need only the size and the ETag. Only a regular file
    /// is an object: a symbolic link (`x.tgz -> /etc/shadow`), a FIFO (which
    /// would block a read for ever) or a device is not there.
    fn stat(&self, op: Op, key: &str, path: &Path) -> StoreResult<Option<ObjectMeta>> {
        self.stated(op, key, fs::symlink_metadata(path))
    }

    /// What `stat`, a `symlink_metadata` of `key`'s file, says it holds.
    fn stated(
        &self,
        op: Op,
        key: &str,
        stat: io::Result<fs::Metadata>,
    ) -> StoreResult<Option<ObjectMeta>> {
        match stat {
            Ok(stat) => Ok(object_meta(key, &stat)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io_error(op, key, e)),
        }
    }

    /// Opens `key`'s file for reading only if it is a regular file, never
    /// through a symbolic link and never waiting on a FIFO, and says what
    /// it holds as the open file says (no window for a swap in between).
    fn open(&self, op: Op, key: &str, path: &Path) -> StoreResult<Option<(File, ObjectMeta)>> {
        use std::os::unix::fs::OpenOptionsExt;
        let opened = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path);
        let file = match opened {
            Ok(file) => file,
            // ELOOP: the last component is a symbolic link.
            Err(e)
                if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ELOOP) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(self.io_error(op, key, e)),
        };
        let stat = file.metadata().map_err(|e| self.io_error(op, key, e))?;
        Ok(object_meta(key, &stat).map(|meta| (file, meta)))
    }

    /// Holds the store-wide write lock (across processes too).
    fn write_lock(&self, op: Op, key: &str) -> StoreResult<File> {
        let dir = self.root.join(META_DIR);
        let err = |e| self.io_error(op, key, e);
        fs::create_dir_all(&dir).map_err(err)?;
        let lock = File::create(dir.join(".lock")).map_err(err)?;
        lock.lock().map_err(err)?;
        Ok(lock)
    }

    fn put_sync(&self, key: &str, body: &[u8], options: PutOptions) -> StoreResult<String> {
        let path = self.path(Op::Put, key)?;
        let _lock = self.write_lock(Op::Put, key)?;
        let current = self.meta(Op::Put, key, &path)?;
        check_put_mode(
            &self.location(key),
            &options.mode,
            current.as_ref().map(|m| m.etag.as_str()),
        )?;
        let err = |e: io::Error| self.io_error(Op::Put, key, e);
        let dir = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(err)?;
        let sidecar = Sidecar {
            content_type: options.content_type,
            cache_control: options.cache_control,
            metadata: options.metadata,
        };
        let sidecar_path = self.sidecar_path(key);
        if let Some(parent) = sidecar_path.parent() {
            fs::create_dir_all(parent).map_err(err)?;
        }
        let json = serde_json::to_vec(&sidecar)
            .map_err(|e| StoreError::other(Op::Put, self.location(key), e))?;
        fs::write(&sidecar_path, json).map_err(err)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(dir)
            .map_err(err)?;
        tmp.write_all(body).map_err(err)?;
        tmp.as_file()
            .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .map_err(err)?;
        if let Some(modified) = options.modified {
            tmp.as_file().set_modified(modified).map_err(err)?;
        }
        tmp.as_file().sync_all().map_err(err)?;
        tmp.persist(&path).map_err(|e| err(e.error))?;
        let meta = self.meta(Op::Put, key, &path)?.ok_or_else(|| {
            StoreError::other(Op::Put, self.location(key), "vanished after write")
        })?;
        Ok(meta.etag)
    }

    fn list_sync(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>> {
        let mut out = Vec::new();
        let Some(start) = self.list_start(prefix) else {
            return Ok(out);
        };
        let mut dirs = vec![start];
        while let Some(dir) = dirs.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io_error(Op::List, prefix, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| self.io_error(Op::List, prefix, e))?;
                let path = entry.path();
                let Ok(relative) = path.strip_prefix(&self.root) else {
                    continue;
                };
                let Some(key) = relative.to_str() else {
                    continue;
                };
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if is_skipped(key, &name) {
                    continue;
                }
                let kind = entry
                    .file_type()
                    .map_err(|e| self.io_error(Op::List, key, e))?;
                if kind.is_dir() {
                    // Only a directory that can hold keys under the prefix.
                    let within = format!("{key}/");
                    if within.starts_with(prefix) || prefix.starts_with(&within) {
                        dirs.push(path);
                    }
                } else if key.starts_with(prefix) {
                    // Relative to the open directory (fstatat), as
                    // `symlink_metadata`: no lookup of the whole path.
                    out.extend(self.stated(Op::List, key, entry.metadata())?);
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

impl LocalStore {
    /// Where a listing of `prefix` starts: the deepest directory its
    /// whole components name, so listing `.pkgsum/pieces/` reads that
    /// directory and not the 20,000 packages beside it. `None` when the
    /// walk from the root would find nothing there: a step that is
    /// missing, not a directory, a symbolic link (the walk follows none),
    /// or a name it skips.
    fn list_start(&self, prefix: &str) -> Option<PathBuf> {
        let Some((dirs, _)) = prefix.rsplit_once('/') else {
            return Some(self.root.clone());
        };
        let mut path = self.root.clone();
        let mut end = 0;
        for part in dirs.split('/') {
            end += part.len();
            let key = &dirs[..end];
            end += 1;
            let plain = matches!(Path::new(part).components().next(), Some(Component::Normal(p)) if p == part);
            if !plain || is_skipped(key, part) {
                return None;
            }
            path.push(part);
            match fs::symlink_metadata(&path) {
                Ok(stat) if stat.is_dir() => {}
                _ => return None,
            }
        }
        Some(path)
    }

    fn head_sync(&self, key: &str) -> StoreResult<Option<ObjectMeta>> {
        let path = self.path(Op::Head, key)?;
        self.meta(Op::Head, key, &path)
    }

    fn get_sync(&self, key: &str) -> StoreResult<Option<(Bytes, ObjectMeta)>> {
        let path = self.path(Op::Get, key)?;
        let Some((mut file, mut meta)) = self.open(Op::Get, key, &path)? else {
            return Ok(None);
        };
        meta.metadata = self.sidecar(key).metadata;
        let mut body = Vec::new();
        file.read_to_end(&mut body)
            .map_err(|e| self.io_error(Op::Get, key, e))?;
        Ok(Some((Bytes::from(body), meta)))
    }

    fn get_range_sync(&self, key: &str, range: Range<u64>, etag: &str) -> StoreResult<Bytes> {
        let path = self.path(Op::GetRange, key)?;
        let fail = |kind| StoreError::new(Op::GetRange, self.location(key), kind);
        let (mut file, meta) = self
            .open(Op::GetRange, key, &path)?
            .ok_or_else(|| fail(ErrorKind::NotFound))?;
        if meta.etag != etag {
            return Err(fail(ErrorKind::Precondition));
        }
        let err = |e: io::Error| self.io_error(Op::GetRange, key, e);
        let end = range.end.min(meta.size);
        let start = range.start.min(end);
        file.seek(SeekFrom::Start(start)).map_err(err)?;
        let mut body = Vec::with_capacity((end - start) as usize);
        file.take(end - start).read_to_end(&mut body).map_err(err)?;
        Ok(Bytes::from(body))
    }

    fn delete_sync(&self, key: &str, etag: Option<&str>) -> StoreResult<()> {
        let path = self.path(Op::Delete, key)?;
        let _lock = self.write_lock(Op::Delete, key)?;
        if let Some(etag) = etag {
            let fail = |kind| StoreError::new(Op::Delete, self.location(key), kind);
            match self.meta(Op::Delete, key, &path)? {
                None => return Err(fail(ErrorKind::NotFound)),
                Some(meta) if meta.etag != etag => return Err(fail(ErrorKind::Precondition)),
                Some(_) => {}
            }
        }
        for p in [path, self.sidecar_path(key)] {
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io_error(Op::Delete, key, e)),
            }
        }
        Ok(())
    }

    /// Runs filesystem work on tokio's blocking pool, as object_store's
    /// local backend does, so a slow disk never stalls the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        op: Op,
        key: &str,
        work: impl FnOnce(&LocalStore) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || work(&store))
            .await
            .map_err(|e| StoreError::other(op, self.location(key), e))?
    }
}

impl Store for LocalStore {
    async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>> {
        let owned = key.to_owned();
        self.blocking(Op::Head, key, move |s| s.head_sync(&owned))
            .await
    }

    async fn get(&self, key: &str) -> StoreResult<Option<(Bytes, ObjectMeta)>> {
        let owned = key.to_owned();
        self.blocking(Op::Get, key, move |s| s.get_sync(&owned))
            .await
    }

    async fn get_range(&self, key: &str, range: Range<u64>, etag: &str) -> StoreResult<Bytes> {
        let (owned, etag) = (key.to_owned(), etag.to_owned());
        self.blocking(Op::GetRange, key, move |s| {
            s.get_range_sync(&owned, range, &etag)
        })
        .await
    }

    async fn put(&self, key: &str, body: Bytes, options: PutOptions) -> StoreResult<String> {
        super::check_checksum(|| self.location(key), &body, &options)?;
        let owned = key.to_owned();
        self.blocking(Op::Put, key, move |s| s.put_sync(&owned, &body, options))
            .await
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        let owned = key.to_owned();
        self.blocking(Op::Delete, key, move |s| s.delete_sync(&owned, None))
            .await
    }

    async fn delete_if(&self, key: &str, etag: &str) -> StoreResult<()> {
        let (owned, etag) = (key.to_owned(), etag.to_owned());
        self.blocking(Op::Delete, key, move |s| s.delete_sync(&owned, Some(&etag)))
            .await
    }

    async fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>> {
        let owned = prefix.to_owned();
        self.blocking(Op::List, prefix, move |s| s.list_sync(&owned))
            .await
    }

    fn location(&self, key: &str) -> String {
        Escaped(&self.root.join(key).display().to_string()).to_string()
    }

    fn sets_modified(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listing that starts below the root finds exactly what the whole
    /// walk finds under the prefix: nothing through a link, nothing
    /// under a file, nothing in the sidecars.
    #[test]
    fn a_listing_from_below_the_root_finds_what_the_whole_walk_does() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for file in ["x.tgz", "a/b/1", "a/bc/2", "a/b/c/3", "ab/4", "a/file"] {
            let path = root.join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, file).unwrap();
        }
        std::os::unix::fs::symlink(root.join("a/b"), root.join("a/link")).unwrap();
        fs::create_dir_all(root.join(META_DIR).join("a")).unwrap();
        fs::write(root.join(META_DIR).join("a/b.json"), "{}").unwrap();
        let store = LocalStore::new(root);
        let all = store.list_sync("").unwrap();
        let keys = |listed: Vec<ObjectMeta>| -> Vec<String> {
            listed.into_iter().map(|m| m.key).collect()
        };
        assert_eq!(
            keys(all.clone()),
            ["a/b/1", "a/b/c/3", "a/bc/2", "a/file", "ab/4", "x.tgz"]
        );
        let prefixes = [
            "a",
            "a/",
            "a/b",
            "a/b/",
            "a/b/c/",
            "a/link/",
            "a/nothing/",
            "a/file/",
            "x.tgz/",
            ".pkgsum-meta/",
            ".pkgsum-meta/a/",
            "../",
            "a//",
            "./a/",
            "a/../a/",
        ];
        for prefix in prefixes {
            let whole: Vec<String> = keys(all.clone())
                .into_iter()
                .filter(|k| k.starts_with(prefix))
                .collect();
            assert_eq!(keys(store.list_sync(prefix).unwrap()), whole, "{prefix}");
        }
        assert_eq!(store.list_start("a/b/"), Some(root.join("a/b")));
    }
}
