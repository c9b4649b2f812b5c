//! The argument groups several commands share, each applied to the
//! settings in one place: a flag given overrides its `PKGSUM_*` setting,
//! a flag left out leaves it alone.

#[cfg(feature = "http")]
use std::time::Duration;

use pkgsum::config::Config;
#[cfg(feature = "http")]
use pkgsum::http::HttpLimits;

/// How a pass over a listing runs (`index`, `rebuild`).
#[derive(Debug, clap::Args)]
pub struct PassArgs {
    /// Header reads in flight (default: PKGSUM_CONCURRENCY, 16).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Publish an empty summary when the repository holds no package.
    #[arg(long)]
    pub allow_empty: bool,
}

impl PassArgs {
    pub fn apply(&self, config: &mut Config) {
        if let Some(jobs) = self.jobs {
            config.concurrency = jobs.max(1);
        }
        config.allow_empty |= self.allow_empty;
    }
}

/// What one package may cost to read (`index`, `record`).
#[derive(Debug, clap::Args)]
pub struct LimitArgs {
    /// Most decompressed metadata bytes read from one package
    /// (default: PKGSUM_METADATA_LIMIT, 64 MiB).
    #[arg(long, value_name = "BYTES")]
    pub metadata_limit: Option<u64>,
}

impl LimitArgs {
    pub fn apply(&self, config: &mut Config) {
        if let Some(limit) = self.metadata_limit {
            config.fetch.limits.metadata = limit;
        }
    }
}

/// What HTTP clients of `serve` and `gateway` may hold.
#[cfg(feature = "http")]
#[derive(Debug, clap::Args)]
pub struct HttpArgs {
    /// Connections served at once; more are closed at once (and logged).
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub max_connections: usize,
    /// How long a request's headers may take to arrive, and how long an
    /// idle keep-alive connection stays open.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,
}

#[cfg(feature = "http")]
impl HttpArgs {
    pub fn limits(&self) -> HttpLimits {
        HttpLimits {
            connections: self.max_connections.max(1),
            header: self.header_timeout.max(Duration::from_millis(100)),
            ..HttpLimits::default()
        }
    }
}
