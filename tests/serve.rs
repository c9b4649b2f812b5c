//! `pkgsum serve`, the binary, as a store's notifications reach it: Ceph
//! RGW topics and the SeaweedFS filer webhook for real, MinIO and SNS
//! payloads from their documentation with LocalStack as the store, and
//! what a service must survive (bad requests, a store that is down,
//! SIGKILL after answering, SIGTERM).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pkgsum::store::s3::S3Store;
use pkgsum::store::{PutOptions, Store};
use serde_json::{Value, json};

use crate::common;

const TOKEN: &str = "test-webhook-secret-0123456789";

/// A running `pkgsum serve`, killed when dropped.
struct Server {
    child: Child,
    address: String,
    log: Arc<Mutex<String>>,
    spool: PathBuf,
    agent: ureq::Agent,
    /// The secret it was given.
    token: String,
}

impl Server {
    /// Starts `pkgsum serve` serving `repository`, with the environment
    /// of the test plus `env`, and waits until it listens.
    fn start(repository: &str, spool: &Path, env: &[(&str, String)], args: &[&str]) -> Server {
        let listen = env
            .iter()
            .find(|(name, _)| *name == "LISTEN")
            .map_or("127.0.0.1:0".to_owned(), |(_, v)| v.clone());
        let mut command = Command::new(env!("CARGO_BIN_EXE_pkgsum"));
        command
            .args(["serve", "--listen", &listen, "--spool"])
            .arg(spool)
            .args(args)
            .env("PKGSUM_REPOSITORIES", repository)
            .env("PKGSUM_AUTH_TOKEN", TOKEN)
            .env("RUST_LOG", "pkgsum=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in env.iter().filter(|(name, _)| *name != "LISTEN") {
            command.env(name, value);
        }
        let token = env
            .iter()
            .find(|(name, _)| *name == "PKGSUM_AUTH_TOKEN")
            .map_or(TOKEN.to_owned(), |(_, v)| v.clone());
        let mut child = command.spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(rest.split('/').next().unwrap_or_default().to_owned());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let address = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("serve did not start:\n{}", log.lock().unwrap()));
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Server {
            child,
            address,
            log,
            spool: spool.to_owned(),
            agent,
            token,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// POSTs `body` with `headers`; the status and the body of the answer.
    fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
        let mut request = self.agent.post(&self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = request.send(body).unwrap();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (response.status().as_u16(), text)
    }

    /// POSTs a notification with the secret as a bearer token.
    fn notify(&self, event: &Value) -> (u16, String) {
        let bearer = format!("Bearer {}", self.token);
        let headers = [
            ("Authorization", bearer.as_str()),
            ("Content-Type", "application/json"),
        ];
        self.post("/", &headers, event.to_string().as_bytes())
    }

    fn get(&self, path: &str) -> (u16, String) {
        let bearer = format!("Bearer {}", self.token);
        let mut response = self
            .agent
            .get(&self.url(path))
            .header("Authorization", &bearer)
            .call()
            .unwrap();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (response.status().as_u16(), text)
    }

    fn status(&self) -> Value {
        let (code, text) = self.get("/status");
        assert_eq!(code, 200, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Waits until nothing is spooled or pending.
    fn settle(&self) {
        wait_for("the queues to empty", self, Duration::from_secs(60), || {
            let status = self.status();
            let pending: u64 = status["repositories"]
                .as_object()
                .unwrap()
                .values()
                .map(|r| r["pending"].as_u64().unwrap())
                .sum();
            status["spooled"] == 0 && pending == 0
        });
    }

    /// Waits until the repository's first pass (the reconcile at start)
    /// is done.
    fn wait_for_first_pass(&self, repository: &str) {
        wait_for(
            "the reconcile at start",
            self,
            Duration::from_secs(30),
            || self.status()["repositories"][repository]["passes"] != 0,
        );
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to end, at most `limit`.
    fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "serve did not exit:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn spooled(&self) -> usize {
        std::fs::read_dir(&self.spool)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().ends_with(".json")
            })
            .count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `done` until it holds or `limit` passes (then fails with the
/// server's log).
fn wait_for(what: &str, server: &Server, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "timed out waiting for {what}:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The published summaries of every format, decompressed.
async fn summaries(store: &S3Store, prefix: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for format in ["gz", "bz2", "xz"] {
        out.push(common::published(store, &format!("{prefix}pkg_summary.{format}")).await);
    }
    out
}

/// Waits until every format of the summary equals the records of what the
/// store holds, byte for byte.
async fn converge(store: &S3Store, prefix: &str, server: &Server) {
    let start = Instant::now();
    loop {
        let truth = common::truth(store, prefix, ".tgz").await;
        let published = summaries(store, prefix).await;
        if published.iter().all(|p| *p == truth) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "summaries never matched the bucket:\nexpected:\n{}\npublished gz:\n{}\nlog:\n{}",
            String::from_utf8_lossy(&truth),
            String::from_utf8_lossy(&published[0]),
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Uploads the oracle package `name` as `key`.
async fn put_oracle(store: &S3Store, key: &str, name: &str) {
    let body = std::fs::read(common::oracle().join(name)).unwrap();
    store
        .put(key, body.into(), PutOptions::default())
        .await
        .unwrap();
}

fn spool_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// The environment that points `pkgsum serve` at Ceph RGW.
fn rgw_env() -> Vec<(&'static str, String)> {
    let var = |name: &str| std::env::var(name).unwrap();
    vec![
        ("AWS_ENDPOINT_URL", var("PKGSUM_RGW_ENDPOINT")),
        ("AWS_ACCESS_KEY_ID", var("PKGSUM_RGW_ACCESS_KEY")),
        ("AWS_SECRET_ACCESS_KEY", var("PKGSUM_RGW_SECRET_KEY")),
        ("AWS_REGION", "default".to_owned()),
        (
            "AWS_REQUEST_CHECKSUM_CALCULATION",
            "when_required".to_owned(),
        ),
        (
            "AWS_RESPONSE_CHECKSUM_VALIDATION",
            "when_required".to_owned(),
        ),
    ]
}

/// The same for SeaweedFS (with no IAM, any credentials do).
fn seaweedfs_env() -> Vec<(&'static str, String)> {
    vec![
        (
            "AWS_ENDPOINT_URL",
            std::env::var("PKGSUM_SEAWEEDFS_ENDPOINT").unwrap(),
        ),
        ("AWS_ACCESS_KEY_ID", "pkgsum".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "pkgsum".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        (
            "AWS_REQUEST_CHECKSUM_CALCULATION",
            "when_required".to_owned(),
        ),
        (
            "AWS_RESPONSE_CHECKSUM_VALIDATION",
            "when_required".to_owned(),
        ),
    ]
}

/// An RGW topic pushing to `endpoint`, and the bucket's notification of
/// created and removed `.tgz` keys to it. The topic is synchronous (RGW
/// holds each PUT until `serve` answers), as docs/serve.md advises: RGW 16
/// here did not deliver from a persistent topic within minutes.
async fn rgw_notify(store: &S3Store, endpoint: &str) {
    let var = |name: &str| std::env::var(name).unwrap();
    let credentials = aws_sdk_sns::config::Credentials::new(
        var("PKGSUM_RGW_ACCESS_KEY"),
        var("PKGSUM_RGW_SECRET_KEY"),
        None,
        None,
        "tests",
    );
    let config = aws_sdk_sns::config::Builder::new()
        .behavior_version(aws_sdk_sns::config::BehaviorVersion::latest())
        .http_client(pkgsum::store::s3::https_client())
        .endpoint_url(var("PKGSUM_RGW_ENDPOINT"))
        .region(aws_sdk_sns::config::Region::new("default"))
        .credentials_provider(credentials)
        .build();
    let sns = aws_sdk_sns::Client::from_conf(config);
    let topic = sns
        .create_topic()
        .name(format!("{}-topic", store.bucket()))
        .attributes("push-endpoint", endpoint)
        .attributes("persistent", "false")
        .send()
        .await
        .unwrap();
    use aws_sdk_s3::types::{Event, NotificationConfiguration, TopicConfiguration};
    let configuration = TopicConfiguration::builder()
        .id("pkgsum")
        .topic_arn(topic.topic_arn().unwrap())
        .events(Event::from("s3:ObjectCreated:*"))
        .events(Event::from("s3:ObjectRemoved:*"))
        .filter(pkgsum::testing::package_filter())
        .build()
        .unwrap();
    let configuration = NotificationConfiguration::builder()
        .topic_configurations(configuration)
        .build();
    pkgsum::testing::put_notification(store, configuration).await;
}

/// A new RGW bucket whose repository `All/` a running `serve` indexes
/// from a topic's notifications. The reconcile at start is over when this
/// returns: only notifications can index what follows.
async fn rgw_served() -> (S3Store, String, Server, tempfile::TempDir) {
    let store = pkgsum::testing::rgw_bucket().await;
    let spool = spool_dir();
    let repository = format!("s3://{}/All/", store.bucket());
    let server = Server::start(&repository, spool.path(), &rgw_env(), &[]);
    rgw_notify(&store, &server.url(&format!("/hook/{TOKEN}"))).await;
    server.wait_for_first_pass(&repository);
    (store, repository, server, spool)
}

/// Keys that every source encodes differently.
const AWKWARD: [&str; 4] = [
    "All/with space+plus-1.0.tgz",
    "All/per%cent-1.0.tgz",
    "All/ünïcødé-1.0.tgz",
    "All/plain-1.0.tgz",
];

/// Uploads an oracle package under each of [`AWKWARD`].
async fn upload_awkward(store: &S3Store) {
    let names = [
        "compress-gzip-1.0.tgz",
        "compress-bzip2-1.0.tgz",
        "compress-xz-1.0.tgz",
        "comment-multiline-1.0.tgz",
    ];
    for (key, name) in AWKWARD.iter().zip(names) {
        put_oracle(store, key, name).await;
    }
}

/// Uploads, overwrites, a refused PUT and deletes, each time until the
/// summaries equal the bucket's records byte for byte.
async fn upload_overwrite_delete(store: &S3Store, server: &Server) {
    upload_awkward(store).await;
    converge(store, "All/", server).await;
    put_oracle(store, AWKWARD[0], "desc-edge-1.0.tgz").await;
    // A PUT refused with 412: RGW notifies it all the same.
    let refused = store
        .client()
        .put_object()
        .bucket(store.bucket())
        .key(AWKWARD[1])
        .if_none_match("*")
        .body(
            std::fs::read(common::oracle().join("manyfiles-1.0.tgz"))
                .unwrap()
                .into(),
        )
        .send()
        .await;
    assert!(
        refused.is_err(),
        "an overwrite with If-None-Match * was accepted"
    );
    store.delete(AWKWARD[2]).await.unwrap();
    converge(store, "All/", server).await;
    server.settle();
    converge(store, "All/", server).await;
}

/// Ceph RGW: a sync topic whose push endpoint is `pkgsum serve` (the
/// secret in the path, as RGW sends no header): uploads, an overwrite, a
/// refused PUT and a delete; the first upload's latency is printed.
async fn rgw_topic_notifications_are_indexed() {
    let (store, _, server, _spool) = rgw_served().await;

    for (key, name) in [
        ("All/first-1.0.tgz", "compress-none-1.0.tgz"),
        ("All/second-1.0.tgz", "compress-gzip-1.0.tgz"),
    ] {
        let start = Instant::now();
        put_oracle(&store, key, name).await;
        let put = start.elapsed();
        converge(&store, "All/", &server).await;
        eprintln!(
            "serve on RGW: {key} was in pkg_summary {} ms after its PUT began (the PUT took {} ms)",
            start.elapsed().as_millis(),
            put.as_millis()
        );
        server.settle();
    }
    upload_overwrite_delete(&store, &server).await;
    assert!(server.log().contains("If-Match with the ETag unquoted"));
    assert!(!server.log().contains(TOKEN), "the secret was logged");
}

/// 500 uploads at once to RGW (`PKGSUM_SERVE_BURST` for another count):
/// all indexed, in at most 20 summary rewrites. What it prints is the
/// docs/serve.md's figure for `serve`.
async fn rgw_burst_of_uploads_is_coalesced() {
    let count: usize = std::env::var("PKGSUM_SERVE_BURST")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(500);
    let (store, repository, server, _spool) = rgw_served().await;

    let packages: Vec<(String, Vec<u8>)> = (0..count)
        .map(|i| {
            let name = format!("burst{i:04}-1.0");
            let body = pkgsum::create::PackageBuilder::new(&name).build().unwrap();
            (format!("All/{name}.tgz"), body)
        })
        .collect();
    let start = Instant::now();
    let store = Arc::new(store);
    let mut uploads = Vec::new();
    for chunk in packages.chunks(count / 16 + 1) {
        let (store, chunk) = (store.clone(), chunk.to_vec());
        uploads.push(tokio::spawn(async move {
            for (key, body) in chunk {
                store
                    .put(&key, body.into(), PutOptions::default())
                    .await
                    .unwrap();
            }
        }));
    }
    for upload in uploads {
        upload.await.unwrap();
    }
    let uploaded = start.elapsed();
    loop {
        let gz = common::published(&*store, "All/pkg_summary.gz").await;
        if gz.starts_with(b"PKGNAME") && common::split_records(&gz).len() == count {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "not all {count} indexed:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let indexed = start.elapsed();
    server.settle();
    converge(&store, "All/", &server).await;
    let stats = &server.status()["repositories"][&repository];
    let published = stats["published"].as_u64().unwrap();
    eprintln!(
        "serve on RGW: {count} uploads in {} ms, all in pkg_summary {} ms after the last; {published} summary rewrites in {} passes",
        uploaded.as_millis(),
        (indexed - uploaded).as_millis(),
        stats["passes"]
    );
    assert!(published <= 20, "{published} rewrites:\n{stats}");
    let accepted = server.status()["accepted"].as_u64().unwrap();
    assert!(
        accepted >= count as u64,
        "{accepted} notifications for {count} uploads"
    );
}

/// SeaweedFS: the filer webhook (bearer token) posts to `pkgsum serve` on
/// the port `seaweedfs/start.sh` configured.
async fn seaweedfs_webhook_is_indexed() {
    let store = pkgsum::testing::seaweedfs_webhook_bucket().await;
    let spool = spool_dir();
    let repository = format!("s3://{}/All/", store.bucket());
    let var = |name: &str| std::env::var(name).unwrap();
    let mut env = seaweedfs_env();
    env.push(("LISTEN", var("PKGSUM_SEAWEEDFS_WEBHOOK_LISTEN")));
    env.push(("PKGSUM_AUTH_TOKEN", var("PKGSUM_SEAWEEDFS_WEBHOOK_TOKEN")));
    let mut server = Server::start(&repository, spool.path(), &env, &[]);
    upload_awkward(&store).await;
    converge(&store, "All/", &server).await;
    put_oracle(&store, AWKWARD[0], "desc-edge-1.0.tgz").await;
    store.delete(AWKWARD[2]).await.unwrap();
    converge(&store, "All/", &server).await;
    server.settle();
    converge(&store, "All/", &server).await;
    assert!(
        !server.log().contains(&server.token),
        "the secret was logged"
    );
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(30)).success());
}

/// Refusals: no or wrong secret (401), a body that is not JSON or not a
/// notification (400), too big or naming too many keys (413); the
/// accepted forms of the secret; liveness and readiness.
async fn requests_are_authenticated_and_bounded() {
    let store = common::s3_bucket().await;
    let spool = spool_dir();
    let repository = format!("s3://{}/All/", store.bucket());
    let args = ["--max-body", "65536", "--max-keys", "10"];
    let server = Server::start(&repository, spool.path(), &[], &args);
    put_oracle(&store, "All/a b-1.0.tgz", "compress-gzip-1.0.tgz").await;
    let event = common::s3_event(store.bucket(), "ObjectCreated:Put", &["All/a b-1.0.tgz"]);
    let body = event.to_string();

    let refused = [
        server.post("/", &[], body.as_bytes()),
        server.post("/", &[("Authorization", "Bearer wrong")], body.as_bytes()),
        server.post("/hook/wrong", &[], body.as_bytes()),
        server.post(&format!("/x/{TOKEN}"), &[], body.as_bytes()),
    ];
    for (code, text) in &refused {
        assert_eq!(*code, 401, "{text}");
    }
    let (code, text) = server.post("/", &[("Authorization", &format!("Bearer {TOKEN}"))], b"{");
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("not JSON"), "{text}");
    let (code, text) = server.notify(&json!({"hello": "world"}));
    assert_eq!(code, 400, "{text}");
    // A body past --max-body, and (L9) a 10 GB one, are refused from the
    // Content-Length, before any of the body (the 10 GB one used to wait
    // 30 s for it, then say 408). Only the head is sent: a client still
    // sending when the server answers and closes may see the connection
    // reset before it reads the answer.
    for length in [70_000u64, 10_000_000_000] {
        let mut raw = std::net::TcpStream::connect(&server.address).unwrap();
        let head = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Length: {length}\r\n\r\n"
        );
        std::io::Write::write_all(&mut raw, head.as_bytes()).unwrap();
        raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut answer = [0u8; 12];
        std::io::Read::read_exact(&mut raw, &mut answer).unwrap();
        assert_eq!(&answer, b"HTTP/1.1 413", "{length}");
    }
    let keys: Vec<String> = (0..11).map(|i| format!("All/p{i}-1.0.tgz")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let (code, text) = server.notify(&common::s3_event(
        store.bucket(),
        "ObjectCreated:Put",
        &keys,
    ));
    assert_eq!(code, 413, "{text}");
    assert_eq!(server.get("/healthz").0, 200);
    assert_eq!(server.get("/readyz").0, 200);
    assert_eq!(
        server
            .agent
            .get(&server.url("/status"))
            .call()
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    // Nothing refused was queued.
    assert_eq!(server.spooled(), 0);

    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("minio:{TOKEN}"));
    let (code, text) = server.post(
        "/",
        &[("Authorization", &format!("Basic {basic}"))],
        body.as_bytes(),
    );
    assert_eq!(code, 200, "{text}");
    converge(&store, "All/", &server).await;
    store.delete("All/a b-1.0.tgz").await.unwrap();
    put_oracle(&store, "All/c-1.0.tgz", "compress-xz-1.0.tgz").await;
    let event = common::s3_event(
        store.bucket(),
        "ObjectRemoved:Delete",
        &["All/a b-1.0.tgz", "All/c-1.0.tgz", "Other/d-1.0.tgz"],
    );
    let (code, text) = server.post(&format!("/hook/{TOKEN}"), &[], event.to_string().as_bytes());
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("not in a served repository"), "{text}");
    converge(&store, "All/", &server).await;
    assert!(!server.log().contains(TOKEN), "the secret was logged");
}

/// Without a secret, or without a repository, the server does not start.
fn refuses_to_start_without_a_secret_or_repository() {
    let spool = spool_dir();
    let run = |env: &[(&str, &str)], args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pkgsum"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--spool"])
            .arg(spool.path())
            .args(args)
            .env_remove("PKGSUM_AUTH_TOKEN")
            .env_remove("PKGSUM_REPOSITORIES");
        command.envs(env.iter().copied()).output().unwrap()
    };
    let out = run(&[("PKGSUM_REPOSITORIES", "s3://b/All/")], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no secret"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = run(&[("PKGSUM_AUTH_TOKEN", TOKEN)], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no repositories to serve"), "{err}");
    let out = run(
        &[("PKGSUM_AUTH_TOKEN", "two words")],
        &["--repository", "s3://b/"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("PKGSUM_AUTH_TOKEN: the secret holds whitespace"),
        "{err}"
    );
}

/// MinIO's webhook body and SNS HTTP envelopes, as their documentation
/// shows them, with LocalStack as the store; a subscription confirmation
/// is answered and logged, not followed.
async fn minio_and_sns_payloads_are_indexed() {
    let store = common::s3_bucket().await;
    let spool = spool_dir();
    let repository = format!("s3://{}/All/", store.bucket());
    let server = Server::start(&repository, spool.path(), &[], &[]);
    let bucket = store.bucket();
    put_oracle(&store, "All/mini o+1.0.tgz", "compress-gzip-1.0.tgz").await;
    put_oracle(&store, "All/s n%s-1.0.tgz", "compress-bzip2-1.0.tgz").await;

    // MinIO: `Key` is bucket/key, the record's key URL-encoded with %2F.
    let minio = json!({
        "EventName": "s3:ObjectCreated:Put",
        "Key": format!("{bucket}/All/mini o+1.0.tgz"),
        "Records": [{
            "eventVersion": "2.0", "eventSource": "minio:s3", "awsRegion": "",
            "eventTime": "2026-11-29T03:00:00.000Z", "eventName": "s3:ObjectCreated:Put",
            "userIdentity": {"principalId": "minioadmin"},
            "requestParameters": {"principalId": "minioadmin", "region": "", "sourceIPAddress": "127.0.0.1"},
            "responseElements": {"x-amz-id-2": "dd9025bab4ad464b", "x-amz-request-id": "17B0F8A5A4A8E4E6"},
            "s3": {
                "s3SchemaVersion": "1.0", "configurationId": "Config",
                "bucket": {"name": bucket, "ownerIdentity": {"principalId": "minioadmin"}, "arn": format!("arn:aws:s3:::{bucket}")},
                "object": {"key": "All%2Fmini+o%2B1.0.tgz", "size": 1234, "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                           "contentType": "application/octet-stream", "userMetadata": {}, "sequencer": "17B0F8A5A56D1F27"}
            },
            "source": {"host": "127.0.0.1", "port": "", "userAgent": "MinIO (linux; amd64) minio-go/v7.0.70"}
        }]
    });
    let (code, text) = server.notify(&minio);
    assert_eq!(code, 200, "{text}");

    // SNS: the S3 notification as a string in `Message`, sent as text/plain.
    let inner = common::s3_event(bucket, "ObjectCreated:Put", &["All/s n%s-1.0.tgz"]);
    let envelope = json!({
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:us-east-1:000000000000:pkgsum",
        "Subject": "Amazon S3 Notification",
        "Message": inner.to_string(),
        "Timestamp": "2026-11-29T03:00:00.000Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"
    });
    let bearer = format!("Bearer {TOKEN}");
    let headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "text/plain; charset=UTF-8"),
        ("x-amz-sns-message-type", "Notification"),
    ];
    let (code, text) = server.post("/", &headers, envelope.to_string().as_bytes());
    assert_eq!(code, 200, "{text}");
    let confirmation = json!({
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37f",
        "TopicArn": "arn:aws:sns:us-east-1:000000000000:pkgsum",
        "Message": "You have chosen to subscribe to the topic.",
        "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=2336412f37f",
        "Timestamp": "2026-11-29T03:00:00.000Z",
        "SignatureVersion": "1", "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000.pem"
    });
    let (code, text) = server.post("/", &headers, confirmation.to_string().as_bytes());
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("\"queued\":0"), "{text}");
    converge(&store, "All/", &server).await;
    let records = common::split_records(&common::published(&store, "All/pkg_summary.gz").await);
    assert_eq!(records.len(), 2);
    assert!(
        server.log().contains("Action=ConfirmSubscription"),
        "{}",
        server.log()
    );
}

/// A TCP proxy to `target` on `port`, until the task is aborted: the store
/// "comes back" when it starts.
async fn proxy(port: u16, target: String) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    })
}

/// M8: while the store is down, notifications are still spooled and
/// answered 200 (SNS to HTTP, for one, never sends them again), and
/// `/readyz` says 503; once the store is back, they are applied without
/// being sent again.
async fn a_store_that_is_down_still_gets_its_notifications_applied() {
    let store = common::s3_bucket().await;
    put_oracle(&store, "All/late-1.0.tgz", "compress-gzip-1.0.tgz").await;
    let localstack = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let target = localstack
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spool = spool_dir();
    let repository = format!("s3://{}/All/", store.bucket());
    let env = [("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))];
    // No reconcile: only the spooled notification can index the package.
    let server = Server::start(
        &repository,
        spool.path(),
        &env,
        &["--reconcile-every", "0s"],
    );
    let event = common::s3_event(store.bucket(), "ObjectCreated:Put", &["All/late-1.0.tgz"]);
    let (code, text) = server.notify(&event);
    assert_eq!(code, 200, "{text}");
    assert_eq!(server.get("/readyz").0, 503);
    assert_eq!(server.spooled(), 1);

    let up = proxy(port, target).await;
    // Sent once: the spool keeps it until the store answers.
    converge(&store, "All/", &server).await;
    wait_for(
        "/readyz to say the store answers",
        &server,
        Duration::from_secs(10),
        || server.get("/readyz").0 == 200,
    );
    up.abort();
}

/// SIGKILL after the 200 and before the pass: the spool holds the keys,
/// and the next start applies them (reconcile off, so only the spool can).
async fn sigkill_after_answering_loses_nothing() {
    let store = common::s3_bucket().await;
    put_oracle(&store, "All/kept-1.0.tgz", "compress-gzip-1.0.tgz").await;
    let spool = spool_dir();
    let repository = format!("s3://{}/All/", store.bucket());
    let slow = ["--debounce", "10min", "--reconcile-every", "0s"];
    let mut server = Server::start(&repository, spool.path(), &[], &slow);
    let event = common::s3_event(store.bucket(), "ObjectCreated:Put", &["All/kept-1.0.tgz"]);
    assert_eq!(server.notify(&event).0, 200);
    server.signal("KILL");
    server.wait(Duration::from_secs(10));
    assert_eq!(server.spooled(), 1);
    assert!(summaries(&store, "All/").await.iter().all(Vec::is_empty));

    let fast = ["--debounce", "10ms", "--reconcile-every", "0s"];
    let server = Server::start(&repository, spool.path(), &[], &fast);
    converge(&store, "All/", &server).await;
    server.settle();
    assert_eq!(server.spooled(), 0);
    assert!(server.log().contains("spool replayed"), "{}", server.log());
}

/// SIGTERM drains: what was accepted is applied before the process ends.
async fn sigterm_drains_the_queue() {
    let store = common::s3_bucket().await;
    put_oracle(&store, "All/drained-1.0.tgz", "compress-xz-1.0.tgz").await;
    let spool = spool_dir();
    let repository = format!("s3://{}/All/", store.bucket());
    let slow = ["--debounce", "10min", "--reconcile-every", "0s"];
    let mut server = Server::start(&repository, spool.path(), &[], &slow);
    let event = common::s3_event(
        store.bucket(),
        "ObjectCreated:Put",
        &["All/drained-1.0.tgz"],
    );
    assert_eq!(server.notify(&event).0, 200);
    server.signal("TERM");
    let status = server.wait(Duration::from_secs(30));
    assert!(status.success(), "{status}:\n{}", server.log());
    assert_eq!(server.spooled(), 0);
    let truth = common::truth(&store, "All/", ".tgz").await;
    assert!(!truth.is_empty());
    for published in summaries(&store, "All/").await {
        assert_eq!(published, truth);
    }
}

/// A notification for a key outside the served repositories changes
/// nothing there, and the reconcile at start indexes what was uploaded
/// while no notification could arrive.
async fn reconcile_at_start_indexes_what_was_missed() {
    let store = common::s3_bucket().await;
    put_oracle(&store, "All/missed-1.0.tgz", "compress-bzip2-1.0.tgz").await;
    let spool = spool_dir();
    let repository = format!("s3://{}/All/", store.bucket());
    let server = Server::start(&repository, spool.path(), &[], &[]);
    converge(&store, "All/", &server).await;
    // The pass publishes, then reports: its counters follow shortly.
    wait_for(
        "the pass's report",
        &server,
        Duration::from_secs(10),
        || {
            let repositories: BTreeMap<String, Value> =
                serde_json::from_value(server.status()["repositories"].clone()).unwrap();
            repositories[&repository]["packages"] == 1
        },
    );
}

/// Runs the `pkgsum` binary with `env`, off the async runtime.
async fn pkgsum_with(args: Vec<String>, env: Vec<(&'static str, String)>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_pkgsum"))
            .args(&args)
            .envs(env)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

/// `pkgsum push` to Ceph RGW, indexed by `serve` from RGW's topic: ten
/// packages live, published in one generation; held by `pkgsum hold`
/// (push exits 1, saying why), published by `pkgsum resume`.
async fn rgw_push_through_serve_is_live_in_one_generation() {
    let (store, repository, _server, _spool) = rgw_served().await;
    let src = tempfile::tempdir().unwrap();
    let write = |name: &str| {
        let path = src.path().join(format!("{name}.tgz"));
        let body = pkgsum::create::PackageBuilder::new(name).build().unwrap();
        std::fs::write(&path, body).unwrap();
        path.to_str().unwrap().to_owned()
    };
    // `PKGSUM_SERVE_PUSH` pushes another count (docs/benchmarks.md).
    let count: usize = std::env::var("PKGSUM_SERVE_PUSH")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    let files: Vec<String> = (0..count)
        .map(|i| write(&format!("rel{i:05}-1.0")))
        .collect();
    let mut args = vec!["push".to_owned(), repository.clone()];
    args.extend(files);
    args.extend([
        "--json".to_owned(),
        "--timeout".to_owned(),
        "120s".to_owned(),
    ]);
    let (code, out, err) = pkgsum_with(args, rgw_env()).await;
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let live = report["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["state"] == "live");
    assert_eq!(live.count(), count, "{report}");
    eprintln!(
        "push of {count} through serve on RGW: all live {} s after it began",
        report["seconds"]
    );
    let config = pkgsum::config::Config::default();
    // The history entry is written after the summaries it describes.
    let mut history = Vec::new();
    for _ in 0..100 {
        history = pkgsum::repo::Repo::new(&store, "All/", &config)
            .history()
            .await
            .unwrap();
        if history.last().is_some_and(|e| e.packages == count) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // One release: every generation lists none of it or all of it (a
    // first pass may publish the empty repository while members wait).
    let listed: Vec<usize> = history.iter().map(|e| e.packages).collect();
    assert!(listed.iter().all(|&n| n == 0 || n == count), "{listed:?}");
    let last = history.last().unwrap();
    let added = last.changes.added.len() + last.changes.more as usize;
    assert_eq!((last.packages, added), (count, count), "{listed:?}");
    // RGW's notifications name the user that uploaded.
    assert_eq!(last.changes.who, ["pkgsum"], "{:?}", last.changes);

    let (code, _, err) = pkgsum_with(vec!["hold".into(), repository.clone()], rgw_env()).await;
    assert_eq!(code, 0, "{err}");
    let args = vec![
        "push".into(),
        repository.clone(),
        write("late-1.0"),
        "--timeout".into(),
        "60s".into(),
    ];
    let (code, _, err) = pkgsum_with(args, rgw_env()).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("late-1.0.tgz: indexed, but not published: publication is held"),
        "{err}"
    );
    let (code, _, err) = pkgsum_with(vec!["resume".into(), repository], rgw_env()).await;
    assert_eq!(code, 0, "{err}");
    let summary = summaries(&store, "All/").await;
    let text = String::from_utf8_lossy(&summary[0]);
    assert!(text.contains("PKGNAME=late-1.0"), "{text}");
}

crate::harness::trials![
    rgw rgw_push_through_serve_is_live_in_one_generation,
    test refuses_to_start_without_a_secret_or_repository,
    s3 requests_are_authenticated_and_bounded,
    s3 minio_and_sns_payloads_are_indexed,
    s3 a_store_that_is_down_still_gets_its_notifications_applied,
    s3 sigkill_after_answering_loses_nothing,
    s3 sigterm_drains_the_queue,
    s3 reconcile_at_start_indexes_what_was_missed,
    rgw rgw_topic_notifications_are_indexed,
    rgw rgw_burst_of_uploads_is_coalesced,
    seaweedfs seaweedfs_webhook_is_indexed,
];
