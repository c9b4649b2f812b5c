//! A fault-injecting wrapper: fails chosen operations on chosen keys, or
//! every operation from the n-th on (a crash), to test that a crash or an
//! outage at any step loses nothing.

use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

pub use super::ErrorKind;
pub use super::Op;
use super::{
    Assembly, Bounded, ObjectMeta, Peeked, PutOptions, Segment, Store, StoreError, StoreResult,
};

/// Fail `times` calls of `op` on keys containing `key_contains`, after
/// letting `skip` such calls through, with an error of `kind` (say
/// [`ErrorKind::Precondition`] for a race lost to another writer).
#[derive(Debug, Clone)]
pub struct Fault {
    pub op: Op,
    pub key_contains: String,
    pub skip: u32,
    pub times: u32,
    pub kind: ErrorKind,
}

/// Passes calls to `inner` unless a fault rule claims them.
#[derive(Debug)]
pub struct Faulty<S> {
    inner: S,
    faults: Mutex<Vec<Fault>>,
    /// Operations passed through or failed so far.
    operations: AtomicU64,
    /// The operation from which on every one fails.
    crash_at: AtomicU64,
}

impl<S> Faulty<S> {
    pub fn new(inner: S) -> Self {
        Faulty {
            inner,
            faults: Mutex::new(Vec::new()),
            operations: AtomicU64::new(0),
            crash_at: AtomicU64::new(u64::MAX),
        }
    }

    /// Operations asked of the store so far.
    pub fn operations(&self) -> u64 {
        self.operations.load(Ordering::SeqCst)
    }

    /// Fails every operation after the next `n`, as if the process died
    /// there, until [`Faulty::recover`].
    pub fn crash_after(&self, n: u64) {
        let now = self.operations();
        self.crash_at.store(now + n, Ordering::SeqCst);
    }

    /// Ends a crash.
    pub fn recover(&self) {
        self.crash_at.store(u64::MAX, Ordering::SeqCst);
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Adds a rule.
    pub fn inject(&self, fault: Fault) {
        self.lock().push(fault);
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Fault>> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<S: Store> Faulty<S> {
    fn check(&self, op: Op, key: &str) -> StoreResult<()> {
        let n = self.operations.fetch_add(1, Ordering::SeqCst);
        if n >= self.crash_at.load(Ordering::SeqCst) {
            return Err(StoreError::other(op, self.inner.location(key), "crashed"));
        }
        let mut faults = self.lock();
        for fault in faults.iter_mut() {
            if fault.op != op || !key.contains(&fault.key_contains) || fault.times == 0 {
                continue;
            }
            if fault.skip > 0 {
                fault.skip -= 1;
                continue;
            }
            fault.times -= 1;
            let kind = fault.kind.clone();
            return Err(StoreError::new(op, self.inner.location(key), kind));
        }
        Ok(())
    }
}

impl<S: Store> Store for Faulty<S> {
    async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>> {
        self.check(Op::Head, key)?;
        self.inner.head(key).await
    }

    async fn get(&self, key: &str) -> StoreResult<Option<(Bytes, ObjectMeta)>> {
        self.check(Op::Get, key)?;
        self.inner.get(key).await
    }

    async fn get_bounded(&self, key: &str, limit: u64) -> StoreResult<Option<Bounded>> {
        self.check(Op::Get, key)?;
        self.inner.get_bounded(key, limit).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>, etag: &str) -> StoreResult<Bytes> {
        self.check(Op::GetRange, key)?;
        self.inner.get_range(key, range, etag).await
    }

    /// A ranged GET, as S3 makes it.
    async fn peek(&self, key: &str, len: u64, unless: Option<&str>) -> StoreResult<Peeked> {
        self.check(Op::GetRange, key)?;
        self.inner.peek(key, len, unless).await
    }

    async fn put(&self, key: &str, body: Bytes, options: PutOptions) -> StoreResult<String> {
        self.check(Op::Put, key)?;
        self.inner.put(key, body, options).await
    }

    /// One write, as far as faults go: what it reads and copies is the
    /// store's own business.
    async fn assemble(
        &self,
        key: &str,
        segments: Vec<Segment>,
        options: PutOptions,
    ) -> StoreResult<Assembly> {
        self.check(Op::Put, key)?;
        self.inner.assemble(key, segments, options).await
    }

    fn copies_at_least(&self) -> Option<u64> {
        self.inner.copies_at_least()
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.check(Op::Delete, key)?;
        self.inner.delete(key).await
    }

    async fn delete_if(&self, key: &str, etag: &str) -> StoreResult<()> {
        self.check(Op::Delete, key)?;
        self.inner.delete_if(key, etag).await
    }

    async fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>> {
        self.check(Op::List, prefix)?;
        self.inner.list(prefix).await
    }

    async fn copy(&self, from: &str, to: &str, etag: &str) -> StoreResult<String> {
        self.check(Op::Copy, to)?;
        self.inner.copy(from, to, etag).await
    }

    fn location(&self, key: &str) -> String {
        self.inner.location(key)
    }

    fn sets_modified(&self) -> bool {
        self.inner.sets_modified()
    }
}
