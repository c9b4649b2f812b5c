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
//! [`HttpLimits::drain`]. It also reads the `Authorization` header's
//! scheme and Basic credentials for both.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
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

/// The user and password of an `Authorization: Basic` value, split at the
/// first colon (a password may hold more).
pub(crate) fn basic_credentials(value: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (scheme, credentials) = split_scheme(value)?;
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let decoded = STANDARD.decode(credentials).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

/// `Scheme credentials` into its two parts.
pub(crate) fn split_scheme(value: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = value.iter().position(|&b| b == b' ')?;
    let credentials = value[space + 1..].trim_ascii();
    Some((&value[..space], credentials))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    /// Whether the server has closed `stream` (a read ends), waiting up to
    /// `within`.
    fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
        stream.set_read_timeout(Some(within)).unwrap();
        let mut one = [0u8; 1];
        matches!(stream.read(&mut one), Ok(0))
            || matches!(stream.read(&mut one), Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_and_excess_connections_are_closed_and_the_rest_served() {
        // M3: half-open requests were held for ever, and idle sockets
        // took every descriptor.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let limits = HttpLimits {
            connections: 2,
            header: Duration::from_millis(300),
            drain: Duration::from_secs(1),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router, limits, async {
            let _ = stopped.await;
        }));
        let checks = tokio::task::spawn_blocking(move || {
            let mut idle = TcpStream::connect(address).unwrap();
            let mut half = TcpStream::connect(address).unwrap();
            half.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
            std::thread::sleep(Duration::from_millis(50));
            // A third, past the limit, is closed at once.
            let mut third = TcpStream::connect(address).unwrap();
            assert!(closed_within(&mut third, Duration::from_secs(2)), "third");
            // The idle one and the one whose head never ends go at the
            // header timeout.
            assert!(closed_within(&mut idle, Duration::from_secs(5)), "idle");
            assert!(closed_within(&mut half, Duration::from_secs(5)), "half");
            // And a whole request is answered, its connection then kept
            // no longer than the same bound.
            let mut whole = TcpStream::connect(address).unwrap();
            whole
                .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut answer = [0u8; 15];
            whole.read_exact(&mut answer).unwrap();
            assert_eq!(&answer, b"HTTP/1.1 200 OK");
            let mut rest = Vec::new();
            whole
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            assert!(whole.read_to_end(&mut rest).is_ok(), "kept open");
        });
        checks.await.unwrap();
        stop.send(()).unwrap();
        server.await.unwrap();
    }
}
