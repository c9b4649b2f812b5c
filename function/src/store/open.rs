//! One way from a repository's URL to its store, for every command and
//! server: [`RepoUrl`] parses `s3://BUCKET/PREFIX/`, `file://DIR` or a
//! plain directory path; [`Buckets`] opens each S3 bucket once per process,
//! probing its conditional writes the first time it is written to, and
//! [`open`] gives the repository's store as an [`AnyStore`].

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::str::FromStr;

use bytes::Bytes;

use super::local::LocalStore;
use super::s3::{ConditionalWrites, S3Store};
use super::{
    Bounded, ErrorKind, ObjectMeta, Op, Peeked, PutOptions, Store, StoreError, StoreResult,
};

/// Where a repository is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoUrl {
    /// `s3://BUCKET/PREFIX/`: the prefix is empty or ends in `/`.
    S3 { bucket: String, prefix: String },
    /// A directory, from a path or `file://PATH`.
    Dir(PathBuf),
}

/// Text that names no repository.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url:?} is not {expected}")]
pub struct UrlError {
    pub url: String,
    pub expected: &'static str,
}

const S3_URL: &str = "an s3://BUCKET/PREFIX/ URL";
const REPO_URL: &str = "a repository: s3://BUCKET/PREFIX/, a directory, or file://DIR";

/// Parses `s3://bucket/prefix/` into the bucket and a repository prefix
/// (empty, or ending in `/`).
pub fn parse_s3_url(url: &str) -> Result<(String, String), UrlError> {
    let error = || UrlError {
        url: url.to_owned(),
        expected: S3_URL,
    };
    let rest = url.strip_prefix("s3://").ok_or_else(error)?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(error());
    }
    let mut prefix = prefix.to_owned();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    Ok((bucket.to_owned(), prefix))
}

impl FromStr for RepoUrl {
    type Err = UrlError;

    fn from_str(url: &str) -> Result<Self, UrlError> {
        let error = || UrlError {
            url: url.to_owned(),
            expected: REPO_URL,
        };
        if url.starts_with("s3://") {
            let (bucket, prefix) = parse_s3_url(url)?;
            return Ok(RepoUrl::S3 { bucket, prefix });
        }
        let path = match url.strip_prefix("file://") {
            Some(path) => path,
            // Another scheme is a mistake, not a directory named so.
            None if url.contains("://") => return Err(error()),
            None => url,
        };
        if path.is_empty() {
            return Err(error());
        }
        Ok(RepoUrl::Dir(PathBuf::from(path)))
    }
}

impl fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RepoUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            RepoUrl::Dir(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The S3 stores of the buckets one process uses, each opened once: the
/// first write to a bucket on an endpoint other than AWS's probes its
/// conditional writes (Ceph RGW's If-Match dialect is then spoken; a store
/// that ignores them is named as such), and every later use shares what
/// was found.
pub struct Buckets {
    /// Made from the standard AWS settings on first use, unless given.
    client: tokio::sync::OnceCell<aws_sdk_s3::Client>,
    opened: tokio::sync::Mutex<HashMap<String, S3Store>>,
}

/// A bucket opened for writing, and what its first opening found.
pub struct Opened {
    pub store: S3Store,
    /// What the probe found, the first time the bucket was opened on an
    /// endpoint other than AWS's; `None` afterwards and on AWS.
    pub found: Option<ConditionalWrites>,
}

impl Buckets {
    pub fn new(client: aws_sdk_s3::Client) -> Buckets {
        Buckets {
            client: tokio::sync::OnceCell::new_with(Some(client)),
            opened: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// With a client made from the standard AWS settings when a bucket is
    /// first used (a directory needs none, and loading them may wait on
    /// the network).
    pub fn from_env() -> Buckets {
        Buckets {
            client: tokio::sync::OnceCell::new(),
            opened: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    pub async fn client(&self) -> &aws_sdk_s3::Client {
        self.client.get_or_init(super::s3::client_from_env).await
    }

    /// The store of `bucket`, for reading: as opened if it was, else
    /// without a probe (reads need none).
    pub async fn reader(&self, bucket: &str) -> S3Store {
        let opened = self.opened.lock().await.get(bucket).cloned();
        match opened {
            Some(store) => store,
            None => S3Store::new(self.client().await.clone(), bucket),
        }
    }

    /// The store of `bucket`, ready to commit; the probe writes a scratch
    /// key under `prefix`, the first time only.
    pub async fn writer(&self, bucket: &str, prefix: &str) -> StoreResult<Opened> {
        let mut opened = self.opened.lock().await;
        if let Some(store) = opened.get(bucket) {
            return Ok(Opened {
                store: store.clone(),
                found: None,
            });
        }
        let client = self.client().await.clone();
        let (store, found) = S3Store::open(client, bucket, prefix).await?;
        opened.insert(bucket.to_owned(), store.clone());
        Ok(Opened { store, found })
    }

    /// The stores of the buckets `messages` name (those of keys `config`
    /// wants), each opened for writing once, and what each first opening
    /// found. A bucket whose probe failed is given for reading: its keys
    /// then fail in the pass with the reason, and the other buckets go on.
    pub async fn for_messages(
        &self,
        messages: &[crate::event::Message],
        config: &crate::config::Config,
    ) -> Stores {
        let mut stores = Stores {
            opened: HashMap::new(),
            client: self.client().await.clone(),
            found: Vec::new(),
        };
        for target in messages.iter().flat_map(|m| &m.targets) {
            if stores.opened.contains_key(&target.bucket) || !config.wants(&target.key) {
                continue;
            }
            let (prefix, _) = crate::keys::split_key(&target.key);
            let store = match self.writer(&target.bucket, prefix).await {
                Ok(opened) => {
                    if let Some(found) = opened.found {
                        stores.found.push((target.bucket.clone(), found));
                    }
                    opened.store
                }
                Err(err) => {
                    tracing::info!(bucket = %target.bucket, error = %err, "probe failed");
                    self.reader(&target.bucket).await
                }
            };
            stores.opened.insert(target.bucket.clone(), store);
        }
        stores
    }

    /// Whether `bucket` was opened for writing already.
    pub async fn is_open(&self, bucket: &str) -> bool {
        self.opened.lock().await.contains_key(bucket)
    }
}

/// The buckets of one batch of messages, opened (see
/// [`Buckets::for_messages`]).
pub struct Stores {
    opened: HashMap<String, S3Store>,
    /// For a bucket no wanted key named (its keys are refused unread).
    client: aws_sdk_s3::Client,
    /// What the first opening of a bucket found, by bucket.
    pub found: Vec<(String, ConditionalWrites)>,
}

impl Stores {
    /// The store of `bucket`.
    pub fn get(&self, bucket: &str) -> S3Store {
        match self.opened.get(bucket) {
            Some(store) => store.clone(),
            None => S3Store::new(self.client.clone(), bucket),
        }
    }
}

/// The store of a repository, whichever backend its URL names.
#[derive(Debug, Clone)]
pub enum AnyStore {
    S3(S3Store),
    Local(LocalStore),
}

/// What opening a repository gave: its store, the prefix of its keys, and
/// (for a bucket opened for writing on another endpoint than AWS's) what
/// its conditional writes were found to be.
pub struct Repository {
    pub store: AnyStore,
    pub prefix: String,
    pub found: Option<ConditionalWrites>,
}

/// Opens the repository `url` names; `writing` probes a bucket's
/// conditional writes first (see [`Buckets::writer`]).
pub async fn open(url: &RepoUrl, buckets: &Buckets, writing: bool) -> StoreResult<Repository> {
    match url {
        RepoUrl::S3 { bucket, prefix } if writing => {
            let opened = buckets.writer(bucket, prefix).await?;
            Ok(Repository {
                store: AnyStore::S3(opened.store),
                prefix: prefix.clone(),
                found: opened.found,
            })
        }
        RepoUrl::S3 { bucket, prefix } => Ok(Repository {
            store: AnyStore::S3(buckets.reader(bucket).await),
            prefix: prefix.clone(),
            found: None,
        }),
        RepoUrl::Dir(path) => Ok(Repository {
            store: AnyStore::Local(open_dir(path)?),
            prefix: String::new(),
            found: None,
        }),
    }
}

/// The store of a directory that exists: a missing one is a mistyped
/// path, not an empty repository.
fn open_dir(path: &std::path::Path) -> StoreResult<LocalStore> {
    let shown = path.display().to_string();
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(LocalStore::new(path)),
        Ok(_) => Err(StoreError::other(Op::List, shown, "not a directory")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(StoreError::new(Op::List, shown, ErrorKind::NotFound))
        }
        Err(e) => Err(StoreError::other(Op::List, shown, e)),
    }
}

/// Runs `$call` on whichever store `$self` holds.
macro_rules! either {
    ($self:expr, $store:ident => $call:expr) => {
        match $self {
            AnyStore::S3($store) => $call,
            AnyStore::Local($store) => $call,
        }
    };
}

impl Store for AnyStore {
    async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>> {
        either!(self, s => s.head(key).await)
    }

    async fn get(&self, key: &str) -> StoreResult<Option<(Bytes, ObjectMeta)>> {
        either!(self, s => s.get(key).await)
    }

    async fn get_range(&self, key: &str, range: Range<u64>, etag: &str) -> StoreResult<Bytes> {
        either!(self, s => s.get_range(key, range, etag).await)
    }

    async fn peek(&self, key: &str, len: u64, unless: Option<&str>) -> StoreResult<Peeked> {
        either!(self, s => s.peek(key, len, unless).await)
    }

    async fn get_bounded(&self, key: &str, limit: u64) -> StoreResult<Option<Bounded>> {
        either!(self, s => s.get_bounded(key, limit).await)
    }

    async fn put(&self, key: &str, body: Bytes, options: PutOptions) -> StoreResult<String> {
        either!(self, s => s.put(key, body, options).await)
    }

    async fn put_parts(
        &self,
        key: &str,
        parts: crate::store::Parts<'_>,
        options: PutOptions,
    ) -> StoreResult<String> {
        either!(self, s => s.put_parts(key, parts, options).await)
    }

    async fn assemble(
        &self,
        key: &str,
        segments: Vec<crate::store::Segment>,
        options: PutOptions,
    ) -> StoreResult<crate::store::Assembly> {
        either!(self, s => s.assemble(key, segments, options).await)
    }

    fn copies_at_least(&self) -> Option<u64> {
        either!(self, s => s.copies_at_least())
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        either!(self, s => s.delete(key).await)
    }

    async fn delete_if(&self, key: &str, etag: &str) -> StoreResult<()> {
        either!(self, s => s.delete_if(key, etag).await)
    }

    async fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>> {
        either!(self, s => s.list(prefix).await)
    }

    async fn copy(&self, from: &str, to: &str, etag: &str) -> StoreResult<String> {
        either!(self, s => s.copy(from, to, etag).await)
    }

    fn location(&self, key: &str) -> String {
        either!(self, s => s.location(key))
    }

    fn sets_modified(&self) -> bool {
        either!(self, s => s.sets_modified())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_bucket_or_a_directory() {
        let s3 = |bucket: &str, prefix: &str| RepoUrl::S3 {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        };
        let dir = |path: &str| RepoUrl::Dir(PathBuf::from(path));
        for (text, want) in [
            ("s3://b/All/", s3("b", "All/")),
            ("s3://b/All", s3("b", "All/")),
            ("s3://b", s3("b", "")),
            ("file:///srv/pkgs", dir("/srv/pkgs")),
            ("packages/All", dir("packages/All")),
            ("/srv/pkgs", dir("/srv/pkgs")),
        ] {
            assert_eq!(text.parse::<RepoUrl>(), Ok(want), "{text}");
        }
        for text in ["http://b/All/", "s3:///All/", "", "file://"] {
            assert!(text.parse::<RepoUrl>().is_err(), "{text}");
        }
        assert_eq!(s3("b", "All/").to_string(), "s3://b/All/");
    }
}
