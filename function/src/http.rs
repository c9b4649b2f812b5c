//! The HTTP edge `pkgsum serve` and `pkgsum gateway` share: an accept
//! loop that bounds what unauthenticated clients can hold.
//!
//! `axum::serve` has no timer and no connection limit: a client that opens
//! a socket and sends nothing, or half a request, holds it (and a file
//! descriptor) for ever. Here each connection is served by hyper with a
//! timer: the request head must arrive within [`HttpLimits::header`], and
//! the same bound closes a keep-alive connection left idle after a
//! response. At most [`HttpLimits::connections`] are served at once;
//! beyond that a new one is closed at once (and the first of a burst is
//! logged), so a flood cannot starve the process of descriptors. An
//! accept error (EMFILE) is logged and waited out instead of spinning.
//! On shutdown, connections finish their request in flight, for at most
//! [`HttpLimits::drain`].

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// What one server lets its clients hold.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Connections served at once.
    pub connections: usize,
    /// How long a request's head may take to arrive, and how long a
    /// keep-alive connection may stay idle.
    pub header: Duration,
    /// How long shutdown waits for requests in flight.
    pub drain: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            connections: 256,
            header: Duration::from_secs(10),
            drain: Duration::from_secs(10),
        }
    }
}

/// Largest request head read (hyper's buffer): a request line and the
/// headers of any real client fit in a few KiB.
const MAX_HEAD: usize = 64 << 10;

/// Serves `router` on `listener` within `limits` until `shutdown`
/// resolves, then lets requests in flight finish (for `limits.drain`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header)
        .max_buf_size(MAX_HEAD);
    let permits = Arc::new(Semaphore::new(limits.connections.max(1)));
    let graceful = GracefulShutdown::new();
    let refused = Refusals::default();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors, most likely: wait for some to close.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refused.note(limits.connections, &peer);
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended");
            }
            drop(permit);
        });
    }
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still in flight after {} s; closing",
            limits.drain.as_secs()
        );
    }
}

/// Connections closed at the limit, logged once per burst (ten seconds)
/// with how many were closed since the last line.
#[derive(Default)]
struct Refusals {
    count: AtomicU64,
    logged: std::sync::Mutex<Option<Instant>>,
}

impl Refusals {
    fn note(&self, limit: usize, peer: &std::net::SocketAddr) {
        let count = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        if logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
            *logged = Some(Instant::now());
            self.count.store(0, Ordering::Relaxed);
            tracing::warn!(
                %peer,
                limit,
                refused = count,
                "connection limit reached: closing new connections"
            );
        }
    }
}
