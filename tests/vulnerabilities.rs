//! `pkgsum vulnerabilities` and `pkgsum audit`: a pkg-vulnerabilities
//! file checked as pkg_admin checks it (and its signature when keys are
//! configured) before it is published beside the summaries, and the
//! repository's packages it names. On a directory and on LocalStack (the
//! file fetched over HTTP, through a redirect).

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use pkgsum::vulnerabilities::{Entry, make};

use common::pkgsum;

fn entries() -> Vec<Entry> {
    let e = |p: &str, k: &str, u: &str| Entry {
        pattern: p.into(),
        kind: k.into(),
        url: u.into(),
    };
    vec![
        e(
            "foo<1.2",
            "remote-code-execution",
            "https://example.org/CVE-1",
        ),
        e("old-[0-9]*", "eol", "https://www.pkgsrc.org/pkgsrc-eol"),
        e("absent>=0", "overflow", "https://example.org/CVE-3"),
    ]
}

const FOUND: [&str; 2] = [
    "Package foo-1.1 has a remote-code-execution vulnerability, see https://example.org/CVE-1",
    "Package old-1.0 has reached end-of-life (eol), see https://www.pkgsrc.org/pkgsrc-eol",
];

/// The PKGNAMEs the site (`packages.json`) lists as vulnerable.
fn named_on_site(packages_json: &[u8]) -> Vec<String> {
    let site: serde_json::Value = serde_json::from_slice(packages_json).unwrap();
    site["meta"]["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["pkgname"].as_str().unwrap().to_owned())
        .collect()
}

/// A directory of foo-1.1, foo-1.2 and old-1.0, indexed.
fn repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["foo-1.1", "foo-1.2", "old-1.0"] {
        let body = common::package_for(name, "NetBSD", "x");
        std::fs::write(dir.path().join(format!("{name}.tgz")), body).unwrap();
    }
    assert_eq!(pkgsum(&["index", dir.path().to_str().unwrap()], &[]).0, 0);
    dir
}

/// Checked, published, audited; a damaged file is refused and the one
/// published stays.
fn a_directory_gets_a_checked_file() {
    let repo = repository();
    let path = repo.path().to_str().unwrap();
    let files = tempfile::tempdir().unwrap();
    let good = files.path().join("pkg-vulnerabilities");
    let text = make(&entries());
    std::fs::write(&good, &text).unwrap();
    let (code, out, err) = pkgsum(
        &["vulnerabilities", path, "--from", good.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().collect::<Vec<_>>(), FOUND);
    assert!(
        err.contains("published 3 entries (SHA512 checksum)"),
        "{err}"
    );
    let published = std::fs::read(repo.path().join("pkg-vulnerabilities.gz")).unwrap();
    assert_eq!(common::decompress(&published), text.as_bytes());
    // The site lists them too.
    let site = std::fs::read(repo.path().join("packages.json")).unwrap();
    let named = named_on_site(&site);
    assert_eq!(named, ["foo-1.1", "old-1.0"]);

    let (code, out, err) = pkgsum(&["audit", path], &[]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(out.lines().collect::<Vec<_>>(), FOUND);
    assert!(
        err.contains("2 findings of 3 packages named by 3 entries"),
        "{err}"
    );
    let (code, out, _) = pkgsum(&["audit", path, "--json"], &[]);
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["findings"][0]["pkgname"], "foo-1.1");

    let damaged = files.path().join("damaged");
    std::fs::write(&damaged, text.replace("foo<1.2", "foo<1.3")).unwrap();
    let (code, _, err) = pkgsum(
        &["vulnerabilities", path, "--from", damaged.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("its SHA512 checksum does not match its text"),
        "{err}"
    );
    let after = std::fs::read(repo.path().join("pkg-vulnerabilities.gz")).unwrap();
    assert_eq!(
        after, published,
        "a refused file replaced the published one"
    );
    let (code, _, err) = pkgsum(&["audit", path, "--from", "/nonexistent"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent: No such file"), "{err}");
}

/// With PKGSUM_VULN_KEYRING, only a file clear-signed by one of its keys
/// is published.
fn with_keys_only_a_signed_file_is_published() {
    let repo = repository();
    let path = repo.path().to_str().unwrap();
    let (ours, theirs) = (
        pkgsum::testing::signing::GpgKey::new("Security Team <security@example.org>"),
        pkgsum::testing::signing::GpgKey::new("Mallory <m@example.org>"),
    );
    let keyring = String::from_utf8(ours.public_armored()).unwrap();
    let env = [("PKGSUM_VULN_KEYRING", keyring.as_str())];
    let files = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = files.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let text = make(&entries());
    let plain = write("plain", &text);
    let forged = write("forged", &theirs.clearsign(&text));
    let signed = write("signed", &ours.clearsign(&text));
    let (code, _, err) = pkgsum(&["vulnerabilities", path, "--from", &plain], &env);
    assert_eq!(code, 2);
    assert!(
        err.contains("it is not signed, and PKGSUM_VULN_KEYRING says it must be"),
        "{err}"
    );
    let (code, _, err) = pkgsum(&["vulnerabilities", path, "--from", &forged], &env);
    assert_eq!(code, 2);
    assert!(
        err.contains("no key of the keyring made its OpenPGP signature"),
        "{err}"
    );
    assert!(!repo.path().join("pkg-vulnerabilities.gz").exists());
    let (code, out, err) = pkgsum(&["vulnerabilities", path, "--from", &signed], &env);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("signed by Security Team <security@example.org> ("),
        "{err}"
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), FOUND);
    // The audit checks the published file's signature again.
    let (code, out, _) = pkgsum(&["audit", path], &env);
    assert_eq!((code, out.lines().count()), (1, 2));
}

/// Serves `body` at /real, and a redirect to it at /file, to one client
/// connection per request, for `requests` requests.
fn serve(body: Vec<u8>, requests: usize) -> (String, std::thread::JoinHandle<()>) {
    serve_each(requests, move |request| {
        if request.starts_with("GET /file ") {
            return b"HTTP/1.1 302 Found\r\nLocation: /real\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec();
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        [head.as_bytes(), &body].concat()
    })
}

/// On LocalStack, the file fetched from a URL (through a redirect) is
/// published beside the summaries, gzip-compressed as it came.
async fn s3_a_file_from_a_url_is_published() {
    let store = common::s3_bucket().await;
    for name in ["foo-1.1", "old-1.0"] {
        let body = common::package_for(name, "NetBSD", "x");
        let key = format!("All/{name}.tgz");
        use pkgsum::store::Store as _;
        store
            .put(&key, bytes::Bytes::from(body), Default::default())
            .await
            .unwrap();
    }
    let url = format!("s3://{}/All/", store.bucket());
    let gz = pkgsum::compression::Compression::Gzip
        .compress(make(&entries()).as_bytes())
        .unwrap();
    let (from, server) = serve(gz.clone(), 2);
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        assert_eq!(pkgsum(&["rebuild", &url], &[]).0, 0);
        pkgsum(&["vulnerabilities", &url, "--from", &from], &[])
    })
    .await
    .unwrap();
    server.join().unwrap();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().collect::<Vec<_>>(), FOUND);
    use pkgsum::store::Store as _;
    let (stored, _) = store
        .get("All/pkg-vulnerabilities.gz")
        .await
        .unwrap()
        .unwrap();
    assert!(stored == gz, "not the bytes fetched");

    // The scheduled reconcile audits again: a package uploaded since is
    // named on the site.
    let body = common::package_for("foo-1.0", "NetBSD", "x");
    store
        .put(
            "All/foo-1.0.tgz",
            bytes::Bytes::from(body),
            Default::default(),
        )
        .await
        .unwrap();
    let payload = serde_json::json!({
        "pkgsum": "reconcile",
        "repositories": [format!("s3://{}/All/", store.bucket())],
    });
    let config = pkgsum::config::Config::default();
    let answer = pkgsum::payload::apply_payload(&payload, |_| store.clone(), &config)
        .await
        .unwrap();
    assert_eq!(answer["reconciled"][0]["vulnerable"], 3, "{answer}");
    let (site, _) = store.get("All/packages.json").await.unwrap().unwrap();
    let named = named_on_site(&site);
    assert_eq!(named, ["foo-1.0", "foo-1.1", "old-1.0"]);
}

/// A server that answers `requests` connections with `answer(request
/// line)`, written whole (a failed write ends that answer).
fn serve_each(
    requests: usize,
    answer: impl Fn(&str) -> Vec<u8> + Send + 'static,
) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
            }
            let _ = stream.write_all(&answer(&request));
        }
    });
    (format!("http://127.0.0.1:{port}/file"), handle)
}

/// A source that is too large (a file, an answer) or redirects for ever
/// is refused, in one line, and nothing is published.
fn hostile_sources_are_refused() {
    let repo = repository();
    let path = repo.path().to_str().unwrap();
    let files = tempfile::tempdir().unwrap();
    let huge = files.path().join("huge");
    let limit = pkgsum::advisories::FILE_LIMIT;
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(limit + 1)
        .unwrap();
    let (code, _, err) = pkgsum(
        &["vulnerabilities", path, "--from", huge.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains(&format!("larger than {limit} bytes")), "{err}");

    let (url, server) = serve_each(6, |_| {
        b"HTTP/1.1 302 Found\r\nLocation: /file\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            .to_vec()
    });
    let (code, _, err) = pkgsum(&["vulnerabilities", path, "--from", &url], &[]);
    server.join().unwrap();
    assert_eq!(code, 2);
    assert!(err.contains("more than 5 redirects"), "{err}");

    let (url, server) = serve_each(1, |_| {
        let limit = pkgsum::advisories::FILE_LIMIT as usize;
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", limit + 1);
        [head.as_bytes(), &vec![b'#'; limit + 1]].concat()
    });
    let (code, _, err) = pkgsum(&["vulnerabilities", path, "--from", &url], &[]);
    server.join().unwrap();
    assert_eq!(code, 2);
    assert!(err.contains("reading the answer"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!repo.path().join("pkg-vulnerabilities.gz").exists());
}

crate::harness::trials!(
    test hostile_sources_are_refused,
    test a_directory_gets_a_checked_file,
    test with_keys_only_a_signed_file_is_published,
    s3 s3_a_file_from_a_url_is_published,
);
