//! Header-only reads from an object store: ranged GETs from the start of
//! the package, extended only while the metadata continues, each pinned
//! to the ETag seen by HEAD so a concurrent overwrite cannot mix versions.

use bytes::BytesMut;

use crate::error::Error;
use crate::header::{Header, read_header_prefix};
use crate::limit::Limits;
use crate::store::{ObjectMeta, Op, Store, StoreError};

/// How much to fetch.
#[derive(Debug, Clone, Copy)]
pub struct FetchOptions {
    /// First range, in bytes.
    pub initial: u64,
    /// Most bytes fetched from one package before giving up.
    pub max: u64,
    pub limits: Limits,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            initial: 64 * 1024,
            // Enough for a bzip2 package whose first 900k block holds the
            // metadata, with room to spare; far below any real payload.
            max: 16 * 1024 * 1024,
            limits: Limits::default(),
        }
    }
}

/// Why a header could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The package is bad: it should be recorded as failed.
    #[error("{0}")]
    Package(#[from] Error),
    /// The store failed or the object changed under us: retry later.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// A fetched header with what it cost.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub header: Header,
    /// Bytes fetched from the store.
    pub fetched: u64,
    /// Ranged GETs made.
    pub requests: u32,
}

/// Fetches and parses the header of the object `meta` describes.
pub async fn fetch_header<S: Store>(
    store: &S,
    meta: &ObjectMeta,
    options: &FetchOptions,
) -> Result<Fetched, FetchError> {
    let mut data = BytesMut::new();
    let mut want = options.initial.clamp(1, options.max.max(1)).min(meta.size);
    let mut requests = 0;
    loop {
        let have = data.len() as u64;
        if want > have {
            let chunk = store.get_range(&meta.key, have..want, &meta.etag).await?;
            requests += 1;
            data.extend_from_slice(&chunk);
        }
        let complete = data.len() as u64 >= meta.size;
        let snapshot = data.clone().freeze();
        let limits = options.limits;
        // Parsing decompresses: keep it off the async worker threads.
        let parsed =
            tokio::task::spawn_blocking(move || read_header_prefix(&snapshot, complete, &limits))
                .await
                .map_err(|e| {
                    StoreError::other(
                        Op::GetRange,
                        store.location(&meta.key),
                        format!("header task failed: {e}"),
                    )
                })?;
        match parsed {
            Ok(Some(header)) => {
                return Ok(Fetched {
                    header,
                    fetched: data.len() as u64,
                    requests,
                });
            }
            Ok(None) if (data.len() as u64) < options.max => {
                want = (data.len() as u64 * 2).min(options.max).min(meta.size);
            }
            Ok(None) => return Err(Error::TooLarge { limit: options.max }.into()),
            Err(err) => return Err(err.into()),
        }
    }
}
