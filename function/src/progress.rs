//! What a pass tells a person watching it, whichever shell runs it (a
//! directory or a bucket): a progress bar over the packages it looks at,
//! and a word when it has to wait for another run. The CLI draws it; the
//! function and tests pass `()`, which shows nothing.

/// Progress of a pass.
pub trait Progress: Sync {
    /// `total` packages are about to be looked at.
    fn begin(&self, _total: u64) {}
    /// One more was looked at.
    fn advance(&self) {}
    fn end(&self) {}
    /// Another run holds the repository's lock; `holder` says which.
    fn waiting(&self, _holder: &str) {}
}

/// No progress shown.
impl Progress for () {}
