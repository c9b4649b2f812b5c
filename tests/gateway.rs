//! `pkgsum gateway`, the binary, with LocalStack as the store: what pkgin
//! asks (a summary, then a package) with good credentials of both hash
//! kinds, and every way in that must stay shut: no, wrong or unknown
//! credentials, paths that climb out of the prefix (`..`, encoded slashes
//! and dots, backslashes), hidden files, pkgsum's own files, listings,
//! other methods, and a missing package.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use pkgsum::create::PackageBuilder;
use pkgsum::store::{PutOptions, Store};

/// A running `pkgsum gateway`, killed when dropped.
pub(crate) struct Gateway {
    child: Child,
    base: String,
    agent: ureq::Agent,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    pub(crate) fn start(url: &str, credentials: &std::path::Path) -> Gateway {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pkgsum"))
            .args(["gateway", url, "--listen", "127.0.0.1:0", "--credentials"])
            .arg(credentials)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("read-only at ").nth(1) {
                    let _ = tx.send(rest.to_owned());
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the gateway did not start");
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Gateway { child, base, agent }
    }

    /// The host part of the base URL (`http://127.0.0.1:PORT`).
    pub(crate) fn host(&self) -> &str {
        let rest = &self.base["http://".len()..];
        let end = rest
            .find('/')
            .map_or(self.base.len(), |i| i + "http://".len());
        &self.base[..end]
    }

    /// A request as libfetch makes it; the status, the headers asked
    /// for, and the body.
    fn ask(
        &self,
        method: &str,
        path: &str,
        auth: Option<(&str, &str)>,
        extra: &[(&str, &str)],
    ) -> (u16, ureq::http::HeaderMap, Vec<u8>) {
        let url = format!("{}{path}", self.host());
        let mut request = ureq::http::Request::builder().method(method).uri(&url);
        if let Some((user, password)) = auth {
            let value = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
            request = request.header("Authorization", value);
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let mut response = self.agent.run(request.body(()).unwrap()).unwrap();
        let headers = response.headers().clone();
        let body = response.body_mut().read_to_vec().unwrap_or_default();
        (response.status().as_u16(), headers, body)
    }
}

fn header<'a>(headers: &'a ureq::http::HeaderMap, name: &str) -> &'a str {
    headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
}

async fn put(store: &impl Store, key: &str, body: Vec<u8>) {
    store
        .put(key, Bytes::from(body), PutOptions::default())
        .await
        .unwrap();
}

/// pkgin's requests are served with the store's headers; everything else
/// is refused.
async fn pkgin_gets_the_summary_then_the_package_and_nothing_else() {
    let store = pkgsum::testing::s3_bucket().await;
    let package = PackageBuilder::new("foo-1.0")
        .file("payload", pkgsum::create::noise(3, 100_000))
        .build()
        .unwrap();
    let summary = b"PKGNAME=foo-1.0\n\n".to_vec();
    put(&store, "pkgs/All/foo-1.0.tgz", package.clone()).await;
    put(&store, "pkgs/All/pkg_summary.gz", summary.clone()).await;
    put(&store, "pkgs/All/.pkgsum/status.json", b"{}".to_vec()).await;
    put(&store, "pkgs/All/.hidden.tgz", b"x".to_vec()).await;
    put(&store, "pkgs/secret.tgz", b"outside".to_vec()).await;
    put(&store, "secret/other-1.0.tgz", b"outside".to_vec()).await;
    // Keys a gateway that decoded before splitting, or that passed `..`
    // through, would reach: S3 takes them literally.
    put(&store, "pkgs/All/../secret.tgz", b"outside".to_vec()).await;
    put(&store, "pkgs/All/sub/x.tgz", b"outside".to_vec()).await;

    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials");
    let argon = {
        use argon2::password_hash::PasswordHasher;
        let params = argon2::Params::new(1024, 1, 1, None).unwrap();
        let argon2 =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        argon2.hash_password(b"argon-pass").unwrap().to_string()
    };
    let mut file = std::fs::File::create(&credentials).unwrap();
    writeln!(file, "# read-only users").unwrap();
    writeln!(file, "ci:{}", bcrypt::hash("bcrypt-pass", 4).unwrap()).unwrap();
    writeln!(file, "ann:{argon}").unwrap();
    drop(file);

    let url = format!("s3://{}/pkgs/All/", store.bucket());
    let gateway = tokio::task::spawn_blocking(move || Gateway::start(&url, &credentials))
        .await
        .unwrap();
    let gateway = std::sync::Arc::new(gateway);
    assert!(gateway.base.ends_with("/pkgs/All"), "{}", gateway.base);
    let meta = store.head("pkgs/All/foo-1.0.tgz").await.unwrap().unwrap();
    let summary_meta = store
        .head("pkgs/All/pkg_summary.gz")
        .await
        .unwrap()
        .unwrap();
    let g = gateway.clone();
    let sent = package.clone();
    tokio::task::spawn_blocking(move || {
        let package = sent;
        let ci = Some(("ci", "bcrypt-pass"));
        let ann = Some(("ann", "argon-pass"));

        // The summary, then the package, as pkgin fetches them.
        let (status, headers, body) = g.ask("GET", "/pkgs/All/pkg_summary.gz", ci, &[]);
        assert_eq!((status, body), (200, summary.clone()));
        assert_eq!(header(&headers, "cache-control"), "no-cache");
        // The store's own Last-Modified and ETag, not the gateway's.
        let modified = header(&headers, "last-modified").to_owned();
        assert_eq!(
            modified,
            httpdate::fmt_http_date(summary_meta.last_modified.unwrap())
        );
        assert_eq!(
            header(&headers, "etag"),
            format!("\"{}\"", summary_meta.etag)
        );
        let (status, headers, body) = g.ask("GET", "/pkgs/All/foo-1.0.tgz", ann, &[]);
        assert_eq!(status, 200);
        assert!(body == package, "the package differs");
        assert_eq!(
            header(&headers, "content-length"),
            package.len().to_string()
        );
        assert_eq!(header(&headers, "etag"), format!("\"{}\"", meta.etag));
        assert_eq!(
            header(&headers, "last-modified"),
            httpdate::fmt_http_date(meta.last_modified.unwrap())
        );
        assert_eq!(header(&headers, "accept-ranges"), "bytes");

        // HEAD: the same headers, no body.
        let (status, headers, body) = g.ask("HEAD", "/pkgs/All/foo-1.0.tgz", ci, &[]);
        assert_eq!((status, body.len()), (200, 0));
        assert_eq!(
            header(&headers, "content-length"),
            package.len().to_string()
        );

        // A range, a suffix range, one past the end.
        let (status, headers, body) = g.ask(
            "GET",
            "/pkgs/All/foo-1.0.tgz",
            ci,
            &[("Range", "bytes=10-19")],
        );
        assert_eq!((status, &body[..]), (206, &package[10..20]));
        let whole = package.len();
        assert_eq!(
            header(&headers, "content-range"),
            format!("bytes 10-19/{whole}")
        );
        let (status, _, body) = g.ask("GET", "/pkgs/All/foo-1.0.tgz", ci, &[("Range", "bytes=-5")]);
        assert_eq!((status, &body[..]), (206, &package[whole - 5..]));
        let past = format!("bytes={whole}-");
        let (status, headers, _) = g.ask("GET", "/pkgs/All/foo-1.0.tgz", ci, &[("Range", &past)]);
        assert_eq!(status, 416);
        assert_eq!(
            header(&headers, "content-range"),
            format!("bytes */{whole}")
        );

        // Conditional requests, as pkgin makes for the summary.
        let (status, _, body) = g.ask(
            "GET",
            "/pkgs/All/pkg_summary.gz",
            ci,
            &[("If-Modified-Since", &modified)],
        );
        assert_eq!((status, body.len()), (304, 0));
        let etag = format!("\"{}\"", meta.etag);
        let (status, _, _) = g.ask(
            "GET",
            "/pkgs/All/foo-1.0.tgz",
            ci,
            &[("If-None-Match", &etag)],
        );
        assert_eq!(status, 304);

        // No, wrong, unknown and malformed credentials: 401 with a
        // challenge, whatever the path.
        let refused: [Option<(&str, &str)>; 5] = [
            None,
            Some(("ci", "wrong")),
            Some(("ann", "bcrypt-pass")),
            Some(("mallory", "bcrypt-pass")),
            Some(("", "")),
        ];
        for auth in refused {
            for path in ["/pkgs/All/pkg_summary.gz", "/pkgs/All/missing-1.0.tgz", "/"] {
                let (status, headers, body) = g.ask("GET", path, auth, &[]);
                assert_eq!(status, 401, "{auth:?} {path}");
                assert!(
                    header(&headers, "www-authenticate").starts_with("Basic realm="),
                    "{auth:?}"
                );
                assert!(body.is_empty());
            }
        }
        let bearer = [("Authorization", "Bearer bcrypt-pass")];
        assert_eq!(
            g.ask("GET", "/pkgs/All/pkg_summary.gz", None, &bearer).0,
            401
        );

        // Paths outside the prefix, or not a package or summary: 404,
        // never the object.
        let outside = [
            "/pkgs/secret.tgz",
            "/secret/other-1.0.tgz",
            "/pkgs/All/../secret.tgz",
            "/pkgs/All/..%2Fsecret.tgz",
            "/pkgs/All/%2e%2e/secret.tgz",
            "/pkgs/All/%2E%2E%2Fsecret.tgz",
            "/pkgs%2FAll%2Ffoo-1.0.tgz",
            "/pkgs/All/..%5Csecret.tgz",
            "/pkgs/All/.hidden.tgz",
            "/pkgs/All/.pkgsum/status.json",
            "/pkgs/All/",
            "/pkgs/All",
            "/pkgs/All//foo-1.0.tgz",
            "/pkgs/All/foo-1.0.tgz/",
            "/pkgs/All/foo-1.0.tgz%00",
            "/pkgs/All/sub/x.tgz",
            "/pkgs/All/sub%2Fx.tgz",
            "/pkgs/All/sub%2fx.tgz",
            "/pkgs/All/missing-1.0.tgz",
        ];
        for path in outside {
            let (status, _, body) = g.ask("GET", path, ci, &[]);
            assert_eq!(status, 404, "{path}");
            assert!(body.is_empty(), "{path}");
        }
        for method in ["PUT", "DELETE", "POST"] {
            let (status, headers, _) = g.ask(method, "/pkgs/All/foo-1.0.tgz", ci, &[]);
            assert_eq!(status, 405, "{method}");
            assert_eq!(header(&headers, "allow"), "GET, HEAD");
        }
    })
    .await
    .unwrap();
    // Nothing was written through the gateway.
    let (body, _) = store.get("pkgs/All/foo-1.0.tgz").await.unwrap().unwrap();
    assert!(body[..] == package[..]);
}

/// A credentials file that cannot be used stops the gateway at once, with
/// the line named, and exit status 2.
fn a_bad_credentials_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials");
    std::fs::write(&credentials, "ci:plaintext\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_pkgsum"))
        .args(["gateway", "s3://bucket/All/", "--listen", "127.0.0.1:0"])
        .arg("--credentials")
        .arg(&credentials)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.trim(),
        format!(
            "pkgsum: {} line 1: the hash is neither bcrypt ($2b$...) nor Argon2 ($argon2id$...)",
            credentials.display()
        )
    );
}

/// A directory is served as a bucket is: the summary and the packages
/// to a client with credentials, pkgsum's own files and hidden files to
/// nobody.
fn a_directory_is_served_as_a_bucket_is() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("All");
    std::fs::create_dir(&repo).unwrap();
    let package = PackageBuilder::new("foo-1.0").build().unwrap();
    std::fs::write(repo.join("foo-1.0.tgz"), &package).unwrap();
    std::fs::write(repo.join(".hidden.tgz"), b"x").unwrap();
    let index = Command::new(env!("CARGO_BIN_EXE_pkgsum"))
        .arg("index")
        .arg(&repo)
        .output()
        .unwrap();
    assert_eq!(index.status.code(), Some(0), "{index:?}");
    let credentials = dir.path().join("credentials");
    let hash = bcrypt::hash("pass", 4).unwrap();
    std::fs::write(&credentials, format!("ci:{hash}\n")).unwrap();
    let url = format!("file://{}", repo.display());
    let gateway = Gateway::start(&url, &credentials);
    let ci = Some(("ci", "pass"));
    let summary = std::fs::read(repo.join("pkg_summary.gz")).unwrap();
    let (status, headers, body) = gateway.ask("GET", "/pkg_summary.gz", ci, &[]);
    assert_eq!(status, 200);
    assert!(body == summary, "the summary differs");
    assert!(!header(&headers, "last-modified").is_empty());
    let (status, _, body) = gateway.ask("GET", "/foo-1.0.tgz", ci, &[("Range", "bytes=0-9")]);
    assert_eq!((status, &body[..]), (206, &package[..10]));
    for path in ["/foo-1.0.tgz", "/pkg_summary.gz"] {
        assert_eq!(gateway.ask("GET", path, None, &[]).0, 401, "{path}");
    }
    // The vulnerability file beside the summary, for clients' PKGVULNURL.
    std::fs::write(repo.join("pkg-vulnerabilities.gz"), b"vulns").unwrap();
    let (status, _, body) = gateway.ask("GET", "/pkg-vulnerabilities.gz", ci, &[]);
    assert_eq!((status, &body[..]), (200, &b"vulns"[..]));
    std::fs::write(repo.join("notes.txt"), b"x").unwrap();
    assert_eq!(gateway.ask("GET", "/notes.txt", ci, &[]).0, 404);
    // The site: its page at the repository's own URL, and its data.
    let page = std::fs::read(repo.join("index.html")).unwrap();
    for path in ["/", "/index.html"] {
        let (status, headers, body) = gateway.ask("GET", path, ci, &[]);
        assert_eq!(status, 200, "{path}");
        assert!(body == page, "{path}: not the page");
        assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
        let policy = header(&headers, "content-security-policy");
        assert!(policy.starts_with("default-src 'none'"), "{policy}");
    }
    let (status, headers, _) = gateway.ask("GET", "/packages.json", ci, &[]);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), "application/json");
    // The runs' files the page names, under site/, and no other name there.
    let mut runs: Vec<String> = std::fs::read_dir(repo.join("site"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    runs.sort();
    assert_eq!(runs.len(), 3, "{runs:?}");
    for (name, kind) in runs
        .iter()
        .zip(["text/javascript", "text/javascript", "application/json"])
    {
        let (status, headers, body) = gateway.ask("GET", &format!("/site/{name}"), ci, &[]);
        assert_eq!(status, 200, "{name}");
        assert!(header(&headers, "content-type").starts_with(kind), "{name}");
        assert_eq!(body, std::fs::read(repo.join("site").join(name)).unwrap());
    }
    std::fs::write(repo.join("site/notes.js"), b"x").unwrap();
    assert_eq!(gateway.ask("GET", "/site/notes.js", ci, &[]).0, 404);
    assert_eq!(gateway.ask("GET", "/site/../foo-1.0.tgz", ci, &[]).0, 404);
    assert_eq!(
        gateway
            .ask("GET", &format!("/site/site/{}", runs[0]), ci, &[])
            .0,
        404
    );
    assert_eq!(gateway.ask("GET", "/", None, &[]).0, 401);
    for path in [
        "/.pkgsum/status.json",
        "/.pkgsum/state",
        "/.hidden.tgz",
        "/../credentials",
    ] {
        assert_eq!(gateway.ask("GET", path, ci, &[]).0, 404, "{path}");
    }
}

crate::harness::trials![
    s3 pkgin_gets_the_summary_then_the_package_and_nothing_else,
    test a_bad_credentials_file_is_refused,
    test a_directory_is_served_as_a_bucket_is,
];
