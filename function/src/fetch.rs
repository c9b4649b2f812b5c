//! Header-only reads from an object store: the header parser reads from a
//! stream of ranged GETs, each pinned to the ETag of the first (taken by a
//! [`Store::peek`] or after a HEAD or listing), so a concurrent overwrite
//! cannot mix versions, and each twice as long as everything before it,
//! issued only while the parser asks for more.
//!
//! The parser is synchronous (it decompresses) and runs on the blocking
//! pool; the GETs are async. They meet through two one-slot channels:
//! the parser asks for bytes, the fetch loop answers with the next range,
//! an empty chunk at the end of the object, or nothing (a closed channel)
//! when it may not fetch more. Each package is parsed once, however many
//! ranges it takes.
//!
//! Parsing decompresses, which is CPU-bound and holds a decoder's memory
//! (up to the limits of `compression`), so at most two parsers per CPU run
//! at a time, however many fetches are in flight (two, so one's wait for a
//! further range overlaps another's work); the first range is fetched
//! before a parser is started, so waiting on the network holds none.

use std::io::{self, Read};
use std::sync::OnceLock;

use bytes::{Buf, Bytes};
use tokio::sync::{Semaphore, mpsc};

use crate::error::Error;
use crate::excerpt::Escaped;
use crate::header::{Header, read_header};
use crate::limit::Limits;
use crate::signed::check_blocks;
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

impl FetchOptions {
    /// The length of the first range.
    pub fn first(&self) -> u64 {
        self.initial.clamp(1, self.max.max(1))
    }
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

/// Permits to parse: two per CPU, shared by every fetch in the process.
fn parsers() -> &'static Semaphore {
    static PARSERS: OnceLock<Semaphore> = OnceLock::new();
    PARSERS.get_or_init(|| {
        Semaphore::new(2 * std::thread::available_parallelism().map_or(1, |n| n.get()))
    })
}

/// Fetches and parses the header of the object `meta` describes.
pub async fn fetch_header<S: Store>(
    store: &S,
    meta: &ObjectMeta,
    options: &FetchOptions,
) -> Result<Fetched, FetchError> {
    let first = options.first().min(meta.size);
    let chunk = if first > 0 {
        store.get_range(&meta.key, 0..first, &meta.etag).await?
    } else {
        Bytes::new()
    };
    header_after(store, meta, chunk, u32::from(first > 0), options).await
}

/// Parses the header of the object `meta` describes from `chunk`, its
/// first bytes (fetched by `requests` requests, e.g. a [`Store::peek`]),
/// fetching further ranges as the parser asks.
pub async fn header_after<S: Store>(
    store: &S,
    meta: &ObjectMeta,
    chunk: Bytes,
    requests: u32,
    options: &FetchOptions,
) -> Result<Fetched, FetchError> {
    let limits = options.limits;
    let reading = Reading {
        max: options.max.max(1),
        largest_range: options.max.max(1),
    };
    let (header, fetched, requests) =
        read_after(store, meta, chunk, requests, reading, move |ranges| {
            read_header(ranges, &limits)
        })
        .await?;
    Ok(Fetched {
        header,
        fetched,
        requests,
    })
}

/// Reads a signed package whole and checks every block of its inner
/// package against `+PKG_HASH` (`PKGSUM_VERIFY_PAYLOAD`), in ranges of at
/// most 8 MiB, one at a time. Returns the bytes fetched.
pub async fn check_payload<S: Store>(
    store: &S,
    meta: &ObjectMeta,
    options: &FetchOptions,
) -> Result<u64, FetchError> {
    let limit = options.limits.pkg_hash;
    let reading = Reading {
        max: meta.size.max(1),
        largest_range: PAYLOAD_RANGE,
    };
    let (_, fetched, requests) = read_after(store, meta, Bytes::new(), 0, reading, move |ranges| {
        check_blocks(ranges, limit)
    })
    .await?;
    tracing::info!(key = %Escaped(&meta.key), fetched, requests, "payload checked against +PKG_HASH");
    Ok(fetched)
}

/// The largest range a payload check fetches at once: what it holds in
/// memory, besides its 64 KiB buffer.
const PAYLOAD_RANGE: u64 = 8 << 20;

/// How far a [`read_after`] may read.
#[derive(Debug, Clone, Copy)]
struct Reading {
    /// Most bytes fetched from the object.
    max: u64,
    /// Longest single range.
    largest_range: u64,
}

/// Runs `parse` on the blocking pool over the object `meta` describes,
/// from `chunk` (its first bytes, fetched by `requests` requests) on,
/// fetching each further range only when the parser asks: each as long as
/// everything before it, up to `reading.largest_range`. Returns what the
/// parser made, the bytes fetched and the requests made.
async fn read_after<S, T, F>(
    store: &S,
    meta: &ObjectMeta,
    chunk: Bytes,
    mut requests: u32,
    reading: Reading,
    parse: F,
) -> Result<(T, u64, u32), FetchError>
where
    S: Store,
    T: Send + 'static,
    F: FnOnce(Ranges) -> Result<T, Error> + Send + 'static,
{
    let max = reading.max;
    let mut fetched = chunk.len() as u64;
    let mut next = match fetched {
        0 => reading.largest_range,
        n => n.min(reading.largest_range),
    };
    let _permit = parsers()
        .acquire()
        .await
        .map_err(|e| StoreError::other(Op::GetRange, store.location(&meta.key), e))?;
    let (want_tx, mut want_rx) = mpsc::channel(1);
    let (data_tx, data_rx) = mpsc::channel(1);
    let mut parse = tokio::task::spawn_blocking(move || {
        parse(Ranges {
            want: want_tx,
            data: data_rx,
            chunk,
            ended: false,
        })
    });
    let mut data_tx = Some(data_tx);
    let (mut refused, mut store_error) = (false, None);
    let parsed = loop {
        tokio::select! {
            biased;
            parsed = &mut parse => break parsed,
            Some(()) = want_rx.recv() => {
                let Some(tx) = data_tx.as_ref() else { continue };
                let answer = if fetched >= meta.size {
                    Some(Bytes::new())
                } else if fetched >= max {
                    refused = true;
                    None
                } else {
                    let end = (fetched + next).min(max).min(meta.size);
                    match store.get_range(&meta.key, fetched..end, &meta.etag).await {
                        Ok(chunk) => {
                            requests += 1;
                            fetched += chunk.len() as u64;
                            next = fetched.min(reading.largest_range);
                            Some(chunk)
                        }
                        Err(err) => {
                            store_error = Some(err);
                            None
                        }
                    }
                };
                match answer {
                    // The parser may have finished meanwhile; its result
                    // is what counts then.
                    Some(chunk) => _ = tx.send(chunk).await,
                    None => data_tx = None,
                }
            }
        }
    };
    let parsed = parsed.map_err(|e| {
        StoreError::other(
            Op::GetRange,
            store.location(&meta.key),
            format!("reading task failed: {e}"),
        )
    })?;
    if let Some(err) = store_error {
        return Err(err.into());
    }
    match parsed {
        Ok(value) => Ok((value, fetched, requests)),
        // M1: the parser fails because no more may be fetched; say so,
        // rather than blame decompressed data.
        Err(_) if refused => Err(Error::FetchLimit { limit: max }.into()),
        Err(err) => Err(err.into()),
    }
}

/// The parser's side: a byte stream that asks the fetch loop for each
/// next range when the last one is used up.
struct Ranges {
    want: mpsc::Sender<()>,
    data: mpsc::Receiver<Bytes>,
    chunk: Bytes,
    ended: bool,
}

impl Read for Ranges {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() && !buf.is_empty() {
            if self.ended {
                return Ok(0);
            }
            let stopped = || io::Error::other("no more of the object may be fetched");
            self.want.blocking_send(()).map_err(|_| stopped())?;
            match self.data.blocking_recv() {
                Some(chunk) if chunk.is_empty() => self.ended = true,
                Some(chunk) => self.chunk = chunk,
                None => return Err(stopped()),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}
