//! `pkgsum gateway`: a private repository in any S3-compatible store,
//! served read-only to an unmodified pkgin over HTTP.
//!
//! pkgin hands `REPO/pkg_summary.*` and `REPO/PKGNAME.tgz` to libfetch,
//! which sends `Authorization: Basic` when the repository URL carries
//! `user:password@`. The gateway admits only such credentials
//! ([`credentials`]), then answers `GET` and `HEAD` for exactly those
//! names, directly under the repository's path (`/PREFIX`), from the
//! store, with the store's own `Content-Length`, `Last-Modified` and ETag,
//! single byte ranges, and `If-None-Match` / `If-Modified-Since`. It never
//! lists anything and never maps a request outside its prefix: the path
//! is split on `/` before it is percent-decoded, so an encoded slash or a
//! `..` cannot climb out, and the last segment must be a package or a
//! summary name.
//!
//! Bodies are streamed in ranged GETs of at most 1 MiB, each pinned to the
//! ETag of the HEAD that answered the headers, so a package being replaced
//! meanwhile ends the response early rather than mixing two versions.

pub mod credentials;

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_SECURITY_POLICY,
    CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, RANGE, WWW_AUTHENTICATE,
    X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use percent_encoding::percent_decode_str;

pub use credentials::{Credentials, CredentialsError, Refused};

use crate::store::{ObjectMeta, Store};
use crate::summary;

/// The largest ranged GET a response is streamed in: what a download
/// holds in memory while its client reads slowly (hyper asks for the next
/// part only once the last is written).
const PART: u64 = 1 << 20;

/// A repository served read-only.
pub struct Gateway<S> {
    store: S,
    /// The key prefix (empty, or ending in `/`).
    prefix: String,
    /// Package key suffixes served besides the summaries.
    suffixes: Vec<String>,
    credentials: Credentials,
}

impl<S: Store + Send + Sync + 'static> Gateway<S> {
    pub fn new(store: S, prefix: &str, suffixes: Vec<String>, credentials: Credentials) -> Self {
        Gateway {
            store,
            prefix: prefix.to_owned(),
            suffixes,
            credentials,
        }
    }

    /// The URL path the repository is served at (`/PREFIX`, no trailing
    /// slash), for `repositories.conf`.
    pub fn path(&self) -> String {
        format!("/{}", self.prefix.trim_end_matches('/'))
    }

    /// The router: every path goes to one handler.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new().fallback(answer::<S>).with_state(self)
    }

    /// The file name a request path names under the prefix, if it names
    /// one the gateway serves.
    fn name_of(&self, path: &str) -> Option<String> {
        served_name(&self.prefix, &self.suffixes, path)
    }
}

/// The file name `path` names directly under `prefix`, if it is one the
/// gateway serves (a summary, `pkg-vulnerabilities.gz`, the site's
/// `index.html` (also for the prefix itself) and `packages.json`, or a
/// name ending in one of `suffixes`): the
/// path is split on `/` before each segment is decoded, so an encoded
/// slash or a `..` cannot climb out; empty, dot and control-character
/// segments and hidden names are refused.
pub fn served_name(prefix: &str, suffixes: &[String], path: &str) -> Option<String> {
    // The repository's own URL is its page.
    let index;
    let path = match path.strip_suffix('/') {
        Some(dir) => {
            index = format!("{dir}/{}", crate::web::INDEX);
            index.as_str()
        }
        None => path,
    };
    let mut segments = Vec::new();
    for raw in path.strip_prefix('/')?.split('/') {
        let segment = percent_decode_str(raw).decode_utf8().ok()?;
        let bad = segment.is_empty()
            || segment == "."
            || segment == ".."
            || segment.contains(['/', '\\'])
            || segment.chars().any(char::is_control);
        if bad {
            return None;
        }
        segments.push(segment.into_owned());
    }
    let name = segments.pop()?;
    let prefix: Vec<&str> = prefix.split('/').filter(|s| !s.is_empty()).collect();
    // The site's run files, under `site/`, by pkgsum's own names only.
    if let Some((dir, above)) = segments.split_last()
        && dir.as_str() == crate::web::RUNS_DIR.trim_end_matches('/')
        && above == prefix.as_slice()
    {
        let stem = crate::web::run_file_stem(&name);
        return stem.map(|_| format!("{}{name}", crate::web::RUNS_DIR));
    }
    if segments != prefix || name.starts_with('.') {
        return None;
    }
    let summary = summary::PKGIN_ORDER
        .iter()
        .any(|f| name == summary::file_name(*f));
    let package = suffixes.iter().any(|s| name.ends_with(s.as_str()));
    let own = [
        crate::advisories::FILE_NAME,
        crate::web::INDEX,
        crate::web::PACKAGES,
    ];
    (summary || package || own.contains(&name.as_str())).then_some(name)
}

/// One request: credentials, then the name, then the object.
async fn answer<S: Store + Send + Sync + 'static>(
    State(gateway): State<Arc<Gateway<S>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match gateway.credentials.admit(&headers).await {
        Ok(()) => {}
        Err(Refused::Wrong) => {
            let challenge = HeaderValue::from_static("Basic realm=\"pkgsum\", charset=\"UTF-8\"");
            return (StatusCode::UNAUTHORIZED, [(WWW_AUTHENTICATE, challenge)]).into_response();
        }
        Err(Refused::Busy) => {
            let retry = [(axum::http::header::RETRY_AFTER, "1")];
            return (StatusCode::SERVICE_UNAVAILABLE, retry).into_response();
        }
    }
    if method != Method::GET && method != Method::HEAD {
        let allow = [(axum::http::header::ALLOW, "GET, HEAD")];
        return (StatusCode::METHOD_NOT_ALLOWED, allow).into_response();
    }
    let Some(name) = gateway.name_of(uri.path()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let key = format!("{}{name}", gateway.prefix);
    let meta = match gateway.store.head(&key).await {
        Ok(Some(meta)) => meta,
        Ok(None) => return StatusCode::NOT_FOUND.into_response(),
        Err(err) => {
            tracing::warn!(%err, "gateway: the store failed");
            return StatusCode::BAD_GATEWAY.into_response();
        }
    };
    let mut response = HeaderMap::new();
    describe(&meta, &name, &mut response);
    if not_modified(&headers, &meta) {
        return (StatusCode::NOT_MODIFIED, response).into_response();
    }
    let range = match requested_range(&headers, meta.size) {
        Ok(range) => range,
        Err(Unsatisfiable) => {
            let unsatisfied = format!("bytes */{}", meta.size);
            insert(&mut response, CONTENT_RANGE, &unsatisfied);
            return (StatusCode::RANGE_NOT_SATISFIABLE, response).into_response();
        }
    };
    let (status, start, end) = match range {
        Some((start, end)) => {
            let content_range = format!("bytes {start}-{}/{}", end - 1, meta.size);
            insert(&mut response, CONTENT_RANGE, &content_range);
            (StatusCode::PARTIAL_CONTENT, start, end)
        }
        None => (StatusCode::OK, 0, meta.size),
    };
    insert(&mut response, CONTENT_LENGTH, &(end - start).to_string());
    if method == Method::HEAD {
        return (status, response).into_response();
    }
    let body = Body::from_stream(parts(gateway, meta, start, end));
    (status, response, body).into_response()
}

/// The headers every answer about `meta`, the file `name`, carries: its
/// type by its name (never sniffed), and for the page its policy.
fn describe(meta: &ObjectMeta, name: &str, headers: &mut HeaderMap) {
    insert(headers, ETAG, &format!("\"{}\"", meta.etag));
    if let Some(modified) = meta.last_modified {
        insert(headers, LAST_MODIFIED, &httpdate::fmt_http_date(modified));
    }
    insert(headers, ACCEPT_RANGES, "bytes");
    insert(headers, CONTENT_TYPE, content_type(name));
    insert(headers, X_CONTENT_TYPE_OPTIONS, "nosniff");
    if name == crate::web::INDEX {
        insert(
            headers,
            CONTENT_SECURITY_POLICY,
            &crate::web::page::policy(),
        );
    }
    let changing = [
        crate::advisories::FILE_NAME,
        crate::web::INDEX,
        crate::web::PACKAGES,
    ];
    if name.starts_with(crate::web::RUNS_DIR) {
        // A run file's name is used once: its bytes never change.
        insert(
            headers,
            CACHE_CONTROL,
            "public, max-age=31536000, immutable",
        );
    } else if name.starts_with("pkg_summary.") || changing.contains(&name) {
        // pkgin decides whether to fetch a summary by its Last-Modified;
        // the page and packages.json change with every generation.
        insert(headers, CACHE_CONTROL, "no-cache");
    }
}

/// The media type of a served file, by its name.
fn content_type(name: &str) -> &'static str {
    if name.ends_with(".html") {
        "text/html; charset=utf-8"
    } else if name.ends_with(".js") {
        "text/javascript; charset=utf-8"
    } else if name.ends_with(".json") {
        "application/json"
    } else {
        "application/octet-stream"
    }
}

fn insert(headers: &mut HeaderMap, name: axum::http::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// Whether the client's copy is current: `If-None-Match` names the ETag,
/// or (without it) `If-Modified-Since` is no earlier than Last-Modified.
fn not_modified(headers: &HeaderMap, meta: &ObjectMeta) -> bool {
    if let Some(tags) = headers.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        return tags.split(',').any(|tag| {
            let tag = tag.trim().trim_start_matches("W/").trim_matches('"');
            tag == "*" || tag == meta.etag
        });
    }
    let since = headers
        .get(IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    match (since, meta.last_modified) {
        (Some(since), Some(modified)) => whole_seconds(modified) <= whole_seconds(since),
        _ => false,
    }
}

fn whole_seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The one byte range asked for, as `start..end`: none for the whole
/// object (no Range, or one the gateway does not serve as a range, such
/// as several ranges), an error for one that lies past the end.
fn requested_range(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, Unsatisfiable> {
    match headers.get(RANGE).and_then(|v| v.to_str().ok()) {
        Some(value) => byte_range(value, size),
        None => Ok(None),
    }
}

/// A `Range` header's value (`bytes=A-B`, `bytes=A-`, `bytes=-N`) as
/// `start..end` within an object of `size` bytes: `Ok(None)` for what the
/// gateway serves whole (several ranges, another unit, a malformed one),
/// `Err` for a range that starts past the end.
pub fn byte_range(value: &str, size: u64) -> Result<Option<(u64, u64)>, Unsatisfiable> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let number = |s: &str| s.trim().parse::<u64>().ok();
    let (start, end) = match (first.trim().is_empty(), number(first), number(last)) {
        // bytes=-N: the last N bytes.
        (true, _, Some(n)) if n > 0 => (size.saturating_sub(n), size),
        (false, Some(start), None) if last.trim().is_empty() => (start, size),
        (false, Some(start), Some(last)) if last >= start => {
            (start, last.saturating_add(1).min(size))
        }
        _ => return Ok(None),
    };
    if start >= size {
        return Err(Unsatisfiable);
    }
    Ok(Some((start, end)))
}

/// A range that starts at or past the end of the object (416).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the range starts past the end of the object")]
pub struct Unsatisfiable;

/// The body: ranged GETs of at most [`PART`] bytes, pinned to the ETag.
fn parts<S: Store + Send + Sync + 'static>(
    gateway: Arc<Gateway<S>>,
    meta: ObjectMeta,
    start: u64,
    end: u64,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::unfold(start, move |at| {
        let (gateway, meta) = (gateway.clone(), meta.clone());
        async move {
            if at >= end {
                return None;
            }
            let until = (at + PART).min(end);
            let part = gateway
                .store
                .get_range(&meta.key, at..until, &meta.etag)
                .await
                .map_err(|err| {
                    tracing::warn!(%err, "gateway: a body ended early");
                    std::io::Error::other(err.to_string())
                });
            let next = if part.is_ok() { until } else { end };
            Some((part, next))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(range: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(RANGE, HeaderValue::from_str(range).unwrap());
        map
    }

    #[test]
    fn single_ranges_are_served_and_others_are_not() {
        assert_eq!(
            requested_range(&headers("bytes=0-9"), 100),
            Ok(Some((0, 10)))
        );
        assert_eq!(
            requested_range(&headers("bytes=90-"), 100),
            Ok(Some((90, 100)))
        );
        assert_eq!(
            requested_range(&headers("bytes=-10"), 100),
            Ok(Some((90, 100)))
        );
        assert_eq!(
            requested_range(&headers("bytes=95-200"), 100),
            Ok(Some((95, 100)))
        );
        assert_eq!(
            requested_range(&headers("bytes=100-"), 100),
            Err(Unsatisfiable)
        );
        assert_eq!(requested_range(&headers("bytes=0-1,5-6"), 100), Ok(None));
        assert_eq!(requested_range(&headers("bytes=5-1"), 100), Ok(None));
        assert_eq!(requested_range(&headers("items=0-1"), 100), Ok(None));
        assert_eq!(requested_range(&HeaderMap::new(), 100), Ok(None));
        // L1: the largest last byte overflowed `last + 1`.
        assert_eq!(
            requested_range(&headers("bytes=0-18446744073709551615"), 100),
            Ok(Some((0, 100)))
        );
    }

    /// A store that remembers the longest range asked of it.
    struct Longest {
        inner: crate::store::memory::MemoryStore,
        most: std::sync::atomic::AtomicU64,
    }

    impl Store for Longest {
        async fn head(&self, key: &str) -> crate::store::StoreResult<Option<ObjectMeta>> {
            self.inner.head(key).await
        }
        async fn get(&self, key: &str) -> crate::store::StoreResult<Option<(Bytes, ObjectMeta)>> {
            self.inner.get(key).await
        }
        async fn get_range(
            &self,
            key: &str,
            range: std::ops::Range<u64>,
            etag: &str,
        ) -> crate::store::StoreResult<Bytes> {
            let len = range.end - range.start;
            self.most
                .fetch_max(len, std::sync::atomic::Ordering::SeqCst);
            self.inner.get_range(key, range, etag).await
        }
        async fn put(
            &self,
            key: &str,
            body: Bytes,
            options: crate::store::PutOptions,
        ) -> crate::store::StoreResult<String> {
            self.inner.put(key, body, options).await
        }
        async fn delete(&self, key: &str) -> crate::store::StoreResult<()> {
            self.inner.delete(key).await
        }
        async fn list(&self, prefix: &str) -> crate::store::StoreResult<Vec<ObjectMeta>> {
            self.inner.list(prefix).await
        }
    }

    #[tokio::test]
    async fn a_download_holds_one_part_at_a_time() {
        // M6: 60 downloads never read took 11.6 MiB each (8 MiB parts).
        let store = Longest {
            inner: crate::store::memory::MemoryStore::new(),
            most: std::sync::atomic::AtomicU64::new(0),
        };
        let body = Bytes::from(vec![7u8; 5 << 20]);
        store
            .put("pkgs/big-1.0.tgz", body.clone(), Default::default())
            .await
            .unwrap();
        let hash = bcrypt::hash("pw", 4).unwrap();
        let credentials = Credentials::parse(&format!("ann:{hash}\n"), "creds").unwrap();
        let gateway = Arc::new(Gateway::new(
            store,
            "pkgs/",
            vec![".tgz".to_owned()],
            credentials,
        ));
        let mut headers = HeaderMap::new();
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD.encode("ann:pw");
        headers.insert(
            axum::http::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {basic}")).unwrap(),
        );
        let uri: Uri = "/pkgs/big-1.0.tgz".parse().unwrap();
        let response = answer(State(gateway.clone()), Method::GET, uri, headers).await;
        assert_eq!(response.status(), StatusCode::OK);
        let got = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(got, body);
        let most = gateway.store.most.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(most, PART);
    }
}
