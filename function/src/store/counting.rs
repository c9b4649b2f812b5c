//! A wrapper that counts calls and bytes: what one event costs, for logs,
//! tests ("a large package is never downloaded whole") and benchmarks.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::{Assembly, Bounded, ObjectMeta, Peeked, PutOptions, Segment, Store, StoreResult};

/// Totals since creation (or the last [`Counting::take`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub heads: u64,
    pub gets: u64,
    pub range_gets: u64,
    pub puts: u64,
    pub deletes: u64,
    pub lists: u64,
    /// Copies inside the store (no byte passes through pkgsum).
    pub copies: u64,
    /// Bytes received by GETs, ranged or whole.
    pub bytes_read: u64,
    /// Bytes sent by PUTs.
    pub bytes_written: u64,
}

#[derive(Debug, Default)]
struct Counters {
    heads: AtomicU64,
    gets: AtomicU64,
    range_gets: AtomicU64,
    puts: AtomicU64,
    deletes: AtomicU64,
    lists: AtomicU64,
    copies: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
}

/// Counts what passes through to `inner`.
#[derive(Debug)]
pub struct Counting<S> {
    inner: S,
    counters: Counters,
}

impl<S> Counting<S> {
    pub fn new(inner: S) -> Self {
        Counting {
            inner,
            counters: Counters::default(),
        }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The totals so far.
    pub fn counts(&self) -> Counts {
        self.read_with(|a| a.load(Ordering::Relaxed))
    }

    /// The totals so far, resetting them to zero.
    pub fn take(&self) -> Counts {
        self.read_with(|a| a.swap(0, Ordering::Relaxed))
    }

    fn read_with(&self, read: impl Fn(&AtomicU64) -> u64) -> Counts {
        let c = &self.counters;
        Counts {
            heads: read(&c.heads),
            gets: read(&c.gets),
            range_gets: read(&c.range_gets),
            puts: read(&c.puts),
            deletes: read(&c.deletes),
            lists: read(&c.lists),
            copies: read(&c.copies),
            bytes_read: read(&c.bytes_read),
            bytes_written: read(&c.bytes_written),
        }
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl<S: Store> Store for Counting<S> {
    async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>> {
        add(&self.counters.heads, 1);
        self.inner.head(key).await
    }

    async fn get(&self, key: &str) -> StoreResult<Option<(Bytes, ObjectMeta)>> {
        add(&self.counters.gets, 1);
        let out = self.inner.get(key).await?;
        if let Some((body, _)) = &out {
            add(&self.counters.bytes_read, body.len() as u64);
        }
        Ok(out)
    }

    /// One GET, as S3 makes it.
    async fn get_bounded(&self, key: &str, limit: u64) -> StoreResult<Option<Bounded>> {
        add(&self.counters.gets, 1);
        let out = self.inner.get_bounded(key, limit).await?;
        if let Some(Bounded::Whole(body, _)) = &out {
            add(&self.counters.bytes_read, body.len() as u64);
        }
        Ok(out)
    }

    async fn get_range(&self, key: &str, range: Range<u64>, etag: &str) -> StoreResult<Bytes> {
        add(&self.counters.range_gets, 1);
        let body = self.inner.get_range(key, range, etag).await?;
        add(&self.counters.bytes_read, body.len() as u64);
        Ok(body)
    }

    /// One ranged GET, as S3 makes it (a backend without one makes a HEAD
    /// and a GET behind this count).
    async fn peek(&self, key: &str, len: u64, unless: Option<&str>) -> StoreResult<Peeked> {
        add(&self.counters.range_gets, 1);
        let peeked = self.inner.peek(key, len, unless).await?;
        if let Peeked::Found(_, body) = &peeked {
            add(&self.counters.bytes_read, body.len() as u64);
        }
        Ok(peeked)
    }

    async fn put(&self, key: &str, body: Bytes, options: PutOptions) -> StoreResult<String> {
        add(&self.counters.puts, 1);
        add(&self.counters.bytes_written, body.len() as u64);
        self.inner.put(key, body, options).await
    }

    /// Counted as one PUT with the bytes it moved each way (what the
    /// store copied itself crosses no wire).
    async fn assemble(
        &self,
        key: &str,
        segments: Vec<Segment>,
        options: PutOptions,
    ) -> StoreResult<Assembly> {
        add(&self.counters.puts, 1);
        let made = self.inner.assemble(key, segments, options).await?;
        add(&self.counters.bytes_written, made.sent);
        add(&self.counters.bytes_read, made.received);
        Ok(made)
    }

    fn copies_at_least(&self) -> Option<u64> {
        self.inner.copies_at_least()
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        add(&self.counters.deletes, 1);
        self.inner.delete(key).await
    }

    async fn delete_if(&self, key: &str, etag: &str) -> StoreResult<()> {
        add(&self.counters.deletes, 1);
        self.inner.delete_if(key, etag).await
    }

    async fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>> {
        add(&self.counters.lists, 1);
        self.inner.list(prefix).await
    }

    async fn copy(&self, from: &str, to: &str, etag: &str) -> StoreResult<String> {
        add(&self.counters.copies, 1);
        self.inner.copy(from, to, etag).await
    }

    fn location(&self, key: &str) -> String {
        self.inner.location(key)
    }

    fn sets_modified(&self) -> bool {
        self.inner.sets_modified()
    }
}
