//! The object-store edge: one narrow trait, backends behind it (`local`,
//! `memory`, `s3`), and behaviour added by wrapping (`counting`,
//! `faulty`) rather than by flags inside backends.
//!
//! The operations are the ones the indexer needs and nothing more: HEAD
//! to learn what a key holds now, ranged GET pinned to an ETag for
//! headers, whole GET for the state, conditional PUT for compare-and-swap
//! commits, DELETE for stale variants, and a listing for `rebuild`.

pub mod counting;
pub mod faulty;
pub mod local;
pub mod memory;
pub mod s3;

use std::collections::BTreeMap;
use std::future::Future;
use std::ops::Range;
use std::time::SystemTime;

use bytes::Bytes;

/// What a key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    /// The entity tag, without quotes.
    pub etag: String,
    pub last_modified: Option<SystemTime>,
    /// User metadata (`x-amz-meta-*`), names in lower case.
    pub metadata: BTreeMap<String, String>,
}

/// The precondition of a PUT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PutMode {
    /// Write whatever is there.
    #[default]
    Overwrite,
    /// Only if the key does not exist (`If-None-Match: *`).
    Create,
    /// Only if the key still holds this ETag (`If-Match`).
    Update(String),
}

/// How to write an object.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    pub mode: PutMode,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// Why a store operation failed. Preconditions are named so callers can
/// retry exactly those.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{key}: not found")]
    NotFound { key: String },
    /// 412: the key changed (or exists, for `Create`).
    #[error("{key}: precondition failed")]
    Precondition { key: String },
    /// 409: a concurrent conditional write won the race; retry.
    #[error("{key}: conflicting concurrent write")]
    Conflict { key: String },
    #[error("{key}: {message}")]
    Other { key: String, message: String },
}

impl StoreError {
    /// True for 412 and 409: the caller lost a race and should re-read.
    pub fn is_precondition(&self) -> bool {
        matches!(
            self,
            StoreError::Precondition { .. } | StoreError::Conflict { .. }
        )
    }

    pub fn other(key: &str, message: impl std::fmt::Display) -> StoreError {
        StoreError::Other {
            key: key.to_owned(),
            message: message.to_string(),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// S3's answer to a conditional PUT on `key`, which holds `current` (its
/// ETag) or nothing: the semantics every local backend must copy.
pub fn check_put_mode(key: &str, mode: &PutMode, current: Option<&str>) -> StoreResult<()> {
    let key = key.to_owned();
    match (mode, current) {
        (PutMode::Create, Some(_)) => Err(StoreError::Precondition { key }),
        (PutMode::Update(_), None) => Err(StoreError::NotFound { key }),
        (PutMode::Update(want), Some(have)) if want != have => {
            Err(StoreError::Precondition { key })
        }
        _ => Ok(()),
    }
}

/// An object store.
pub trait Store: Send + Sync {
    /// What `key` holds now, or `None`.
    fn head(&self, key: &str) -> impl Future<Output = StoreResult<Option<ObjectMeta>>> + Send;

    /// The whole object, or `None`.
    fn get(
        &self,
        key: &str,
    ) -> impl Future<Output = StoreResult<Option<(Bytes, ObjectMeta)>>> + Send;

    /// Bytes `range` of `key`, only if it still has `etag`
    /// ([`StoreError::Precondition`] otherwise). The range is clipped to the
    /// object's end.
    fn get_range(
        &self,
        key: &str,
        range: Range<u64>,
        etag: &str,
    ) -> impl Future<Output = StoreResult<Bytes>> + Send;

    /// Writes `body`; returns the new ETag.
    fn put(
        &self,
        key: &str,
        body: Bytes,
        options: PutOptions,
    ) -> impl Future<Output = StoreResult<String>> + Send;

    /// Removes `key`; a missing key is not an error.
    fn delete(&self, key: &str) -> impl Future<Output = StoreResult<()>> + Send;

    /// Every object whose key starts with `prefix`, sorted by key.
    fn list(&self, prefix: &str) -> impl Future<Output = StoreResult<Vec<ObjectMeta>>> + Send;
}

/// Implements [`Store`] for a pointer type by delegating to its target:
/// a shared (`Arc`) or borrowed (`&`) store is a store.
macro_rules! delegate_store {
    ($($pointer:ty),*) => {$(
        impl<T: Store + ?Sized> Store for $pointer {
            fn head(&self, key: &str) -> impl Future<Output = StoreResult<Option<ObjectMeta>>> + Send {
                (**self).head(key)
            }

            fn get(
                &self,
                key: &str,
            ) -> impl Future<Output = StoreResult<Option<(Bytes, ObjectMeta)>>> + Send {
                (**self).get(key)
            }

            fn get_range(
                &self,
                key: &str,
                range: Range<u64>,
                etag: &str,
            ) -> impl Future<Output = StoreResult<Bytes>> + Send {
                (**self).get_range(key, range, etag)
            }

            fn put(
                &self,
                key: &str,
                body: Bytes,
                options: PutOptions,
            ) -> impl Future<Output = StoreResult<String>> + Send {
                (**self).put(key, body, options)
            }

            fn delete(&self, key: &str) -> impl Future<Output = StoreResult<()>> + Send {
                (**self).delete(key)
            }

            fn list(&self, prefix: &str) -> impl Future<Output = StoreResult<Vec<ObjectMeta>>> + Send {
                (**self).list(prefix)
            }
        }
    )*};
}

delegate_store!(std::sync::Arc<T>, &T);
