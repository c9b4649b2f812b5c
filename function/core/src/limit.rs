//! Readers that bound, count and label the bytes coming from outside.
//!
//! Every package is untrusted input: these wrappers make sure reading one
//! costs at most a known number of bytes, and that an error says which
//! layer (input, decompressor) failed.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Layer, LayerError, LimitExceeded};

/// Default bound on decompressed metadata read from one package.
pub const DEFAULT_METADATA_LIMIT: u64 = 64 * 1024 * 1024;

/// Default bound on the compressed streams a package header may span:
/// pkg_create writes one; a parallel compressor writes one per block
/// (pbzip2: 900 kB), and metadata fills a few blocks at most. Each stream
/// costs a decoder's set-up, so thousands of empty ones cost seconds.
pub const DEFAULT_STREAM_LIMIT: u32 = 64;

/// Bounds applied while reading one package header.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most decompressed bytes read before the first payload member,
    /// tar headers and skipped members included.
    pub metadata: u64,
    /// Most bytes of a signed package's `+PKG_HASH`.
    pub pkg_hash: u64,
    /// Longest record made of a package.
    pub record: u64,
    /// Most concatenated compressed streams (gzip members, bzip2 and xz
    /// streams, zstd frames) read in one layer of a package.
    pub streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            metadata: DEFAULT_METADATA_LIMIT,
            pkg_hash: crate::signed::DEFAULT_PKG_HASH_LIMIT,
            record: crate::record::DEFAULT_RECORD_LIMIT,
            streams: DEFAULT_STREAM_LIMIT,
        }
    }
}

/// Fails (with a "limit exceeded" error) once more than `limit` bytes were
/// read.
pub struct Limited<R> {
    inner: R,
    limit: u64,
    used: u64,
}

impl<R: Read> Limited<R> {
    pub fn new(inner: R, limit: u64) -> Self {
        Limited {
            inner,
            limit,
            used: 0,
        }
    }

    /// Bytes still allowed.
    pub fn remaining(&self) -> u64 {
        self.limit - self.used
    }
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.used >= self.limit {
            // One byte more tells "exactly at the limit" from "beyond it".
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::other(LimitExceeded { limit: self.limit })),
            };
        }
        let room = usize::try_from(self.remaining()).unwrap_or(usize::MAX);
        let n = buf.len().min(room);
        let got = self.inner.read(&mut buf[..n])?;
        self.used += got as u64;
        Ok(got)
    }
}

/// Counts the bytes read through it into a shared counter, which stays
/// readable after the reader has been moved into a decoder.
pub struct Counted<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Counted<R> {
    pub fn new(inner: R) -> (Self, Arc<AtomicU64>) {
        let count = Arc::new(AtomicU64::new(0));
        let reader = Counted {
            inner,
            count: Arc::clone(&count),
        };
        (reader, count)
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Labels every error from `inner` with the layer it came from, unless a
/// lower layer already labelled it.
pub(crate) struct Tagged<R> {
    inner: R,
    layer: Layer,
}

impl<R: Read> Tagged<R> {
    pub(crate) fn new(inner: R, layer: Layer) -> Self {
        Tagged { inner, layer }
    }
}

impl<R: Read> Read for Tagged<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|err| {
            if crate::error::find_in_chain::<LayerError>(&err).is_some()
                || crate::error::find_in_chain::<LimitExceeded>(&err).is_some()
            {
                err
            } else {
                io::Error::new(
                    err.kind(),
                    LayerError {
                        layer: self.layer,
                        source: err,
                    },
                )
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limited_allows_exactly_the_limit() {
        let mut out = Vec::new();
        Limited::new(&[7u8; 10][..], 10)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out.len(), 10);
    }

    #[test]
    fn limited_fails_one_byte_past_the_limit() {
        let mut out = Vec::new();
        let err = Limited::new(&[7u8; 11][..], 10)
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(crate::error::find_in_chain::<LimitExceeded>(&err).is_some());
        assert_eq!(out.len(), 10);
    }

    #[test]
    fn counted_counts_through_a_move() {
        let (reader, count) = Counted::new(&b"hello world"[..]);
        let mut limited = Limited::new(reader, 5);
        let mut buf = [0u8; 5];
        limited.read_exact(&mut buf).unwrap();
        assert_eq!(count.load(Ordering::Relaxed), 5);
    }
}
