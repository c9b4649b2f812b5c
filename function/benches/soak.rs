//! `localstack/run-with cargo bench --bench soak`: `pkgsum serve` and
//! `pkgsum gateway` (the release binary) under steady load for a while,
//! beside clients that hold connections open, against LocalStack's S3 on
//! 127.0.0.1. Figures and an RSS curve for docs/benchmarks.md; not pass/fail,
//! except that nothing may be lost.
//!
//! - serve: a bounded load generator uploads (or overwrites, or deletes)
//!   a package and POSTs its notification, `PKGSUM_SOAK_RATE` a second
//!   (default 4), with at most 8 in flight; beside it 100 idle connections
//!   are held open (opened again as the server closes them). At the end,
//!   the summary must equal what the bucket lists.
//! - gateway: 8 clients download packages and summaries in a loop, 10
//!   slow readers take 64 KiB a second of a 4 MiB package, 100 idle
//!   connections are held.
//!
//! Each phase runs `PKGSUM_SOAK_SECONDS` (default 600). The server's RSS
//! is sampled every 5 s; answer times are kept for p50 and p99. Writes
//! `target/soak-serve.csv` and `target/soak-gateway.csv` (seconds, RSS
//! in KiB) for `scripts/plot-soak.py`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pkgsum::create::{PackageBuilder, noise};
use pkgsum::store::s3::S3Store;
use pkgsum::store::{PutOptions, Store};

const TOKEN: &str = "soak-secret";
const IDLE: usize = 100;

fn seconds() -> u64 {
    std::env::var("PKGSUM_SOAK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600)
}

fn main() {
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
        eprintln!("soak: needs LocalStack: localstack/run-with cargo bench --bench soak");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let phases = std::env::var("PKGSUM_SOAK_PHASES").unwrap_or("stalled,serve,gateway".to_owned());
    if phases.contains("stalled") {
        runtime.block_on(stalled_downloads());
    }
    if phases.contains("serve") {
        runtime.block_on(soak_serve());
    }
    if phases.contains("gateway") {
        runtime.block_on(soak_gateway());
    }
}

/// A free port on 127.0.0.1.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    listener.local_addr().expect("its address").port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `pkgsum gateway` on the repository `All/` of `store`, for the user
/// `soak` (password `soak`), logging to `log` in the temporary directory;
/// answers once it listens. The directory holds the credentials file.
fn start_gateway(store: &S3Store, log: &str) -> (Child, u16, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a directory");
    let credentials = dir.path().join("users");
    let hash = bcrypt::hash("soak", 6).expect("a hash");
    std::fs::write(&credentials, format!("soak:{hash}\n")).expect("the credentials");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let url = format!("s3://{}/All/", store.bucket());
    let log = std::env::temp_dir().join(log);
    let server = start(
        &[
            "gateway",
            &url,
            "--listen",
            &listen,
            "--credentials",
            credentials.to_str().unwrap_or_default(),
        ],
        &[],
        &log,
    );
    wait_for_port(port);
    (server, port, dir)
}

/// The release `pkgsum` with `args`, its log to a file.
fn start(args: &[&str], env: &[(&str, &str)], log: &std::path::Path) -> Child {
    let log = std::fs::File::create(log).expect("a log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_pkgsum"));
    command
        .args(args)
        .env("RUST_LOG", "pkgsum=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    for (name, value) in env {
        command.env(name, value);
    }
    command.spawn().expect("pkgsum")
}

/// RSS of `pid` in KiB, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Samples `pid`'s RSS every 5 s until `stop`, as (seconds, KiB).
fn sample_rss(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<(u64, u64)>> {
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut samples = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            samples.push((start.elapsed().as_secs(), rss_kib(pid)));
            for _ in 0..50 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        samples.push((start.elapsed().as_secs(), rss_kib(pid)));
        samples
    })
}

/// Holds `count` idle connections to `port` open until `stop`, opening
/// each again when the server closes it; returns how many were opened.
fn hold_idle(port: u16, count: usize, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut opened = 0u64;
        let mut held: Vec<TcpStream> = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            held.retain(is_open);
            while held.len() < count {
                let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else {
                    break;
                };
                let _ = stream.set_nonblocking(true);
                opened += 1;
                held.push(stream);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        opened
    })
}

/// Whether the server still holds `stream` open (a read would wait).
fn is_open(stream: &TcpStream) -> bool {
    let mut one = [0u8; 1];
    matches!(stream.peek(&mut one), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let at = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[at]
}

fn write_csv(name: &str, samples: &[(u64, u64)]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    let _ = std::fs::create_dir_all(&dir);
    let mut text = String::from("seconds,rss_kib\n");
    for (s, kib) in samples {
        text.push_str(&format!("{s},{kib}\n"));
    }
    std::fs::write(dir.join(name), text).expect("the CSV");
}

fn summary(what: &str, samples: &[(u64, u64)], times: &mut [Duration], extra: &str) {
    times.sort();
    let rss: Vec<u64> = samples.iter().map(|(_, k)| *k).collect();
    let first = rss.first().copied().unwrap_or(0);
    let max = rss.iter().copied().max().unwrap_or(0);
    let last = rss.last().copied().unwrap_or(0);
    println!(
        "{what}: {} answers, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; RSS {} MiB at start, {} MiB at most, {} MiB at the end; {extra}",
        times.len(),
        percentile(times, 0.5).as_secs_f64() * 1000.0,
        percentile(times, 0.99).as_secs_f64() * 1000.0,
        times.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
        first / 1024,
        max / 1024,
        last / 1024,
    );
}

async fn put(store: &S3Store, key: &str, body: Vec<u8>) {
    store
        .put(key, Bytes::from(body), PutOptions::default())
        .await
        .expect("an upload");
}

async fn soak_serve() {
    let store = pkgsum::testing::s3_bucket().await;
    for i in 0..200 {
        let body = PackageBuilder::new(&format!("base{i}-1.0"))
            .build()
            .expect("a package");
        put(&store, &format!("All/base{i}-1.0.tgz"), body).await;
    }
    let port = free_port();
    let spool = tempfile::tempdir().expect("a spool");
    let listen = format!("127.0.0.1:{port}");
    let repository = format!("s3://{}/All/", store.bucket());
    let log = std::env::temp_dir().join("pkgsum-soak-serve.log");
    let spool_dir = spool.path().to_str().unwrap_or_default();
    let mut server = start(
        &[
            "serve",
            "--listen",
            &listen,
            "--spool",
            spool_dir,
            "--debounce",
            "200ms",
            "--reconcile-every",
            "0s",
        ],
        &[
            ("PKGSUM_REPOSITORIES", &repository),
            ("PKGSUM_AUTH_TOKEN", TOKEN),
        ],
        &log,
    );
    wait_for_port(port);
    let stop = Arc::new(AtomicBool::new(false));
    let rss = sample_rss(server.id(), stop.clone());
    let idle = hold_idle(port, IDLE, stop.clone());
    let rate: u64 = std::env::var("PKGSUM_SOAK_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let times = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(AtomicU64::new(0));
    let in_flight = Arc::new(tokio::sync::Semaphore::new(8));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / rate.max(1)));
    let mut n = 0u64;
    let mut tasks = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds()) {
        tick.tick().await;
        n += 1;
        let permit = in_flight.clone().acquire_owned().await.expect("a permit");
        let (store, agent, times, refused) =
            (store.clone(), agent.clone(), times.clone(), refused.clone());
        let url = format!("http://{listen}/");
        let bucket = store.bucket().to_owned();
        tasks.push(tokio::spawn(async move {
            let key = format!("All/load{}-1.0.tgz", n % 300);
            let event = if n.is_multiple_of(5) {
                store.delete(&key).await.expect("a delete");
                "ObjectRemoved:Delete"
            } else {
                let name = format!("load{}-1.0", n % 300);
                let body = PackageBuilder::new(&name)
                    .member("+COMMENT", format!("upload {n}\n"))
                    .build()
                    .expect("a package");
                put(&store, &key, body).await;
                "ObjectCreated:Put"
            };
            let body = serde_json::json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3",
                "eventName": event, "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}]});
            let answer = tokio::task::spawn_blocking(move || {
                let start = Instant::now();
                let response = agent
                    .post(&url)
                    .header("Authorization", &format!("Bearer {TOKEN}"))
                    .header("Content-Type", "application/json")
                    .send(body.to_string().as_bytes());
                (start.elapsed(), response.map(|r| r.status().as_u16()))
            })
            .await
            .expect("a request");
            match answer {
                (took, Ok(200)) => times.lock().expect("times").push(took),
                _ => _ = refused.fetch_add(1, Ordering::SeqCst),
            }
            drop(permit);
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    // Nothing lost: the summary comes to say what the bucket lists.
    let deadline = Instant::now() + Duration::from_secs(120);
    let converged = loop {
        let want = truth(&store).await;
        let have = published(&store).await;
        if want == have {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    stop.store(true, Ordering::SeqCst);
    let samples = rss.join().expect("the sampler");
    let reopened = idle.join().expect("the idle clients");
    let _ = server.kill();
    let _ = server.wait();
    write_csv("soak-serve.csv", &samples);
    let mut times = std::mem::take(&mut *times.lock().expect("times"));
    let extra = format!(
        "{n} notifications ({} not answered 200), {reopened} idle connections opened, summary {}",
        refused.load(Ordering::SeqCst),
        if converged {
            "equal to the listing"
        } else {
            "NOT equal to the listing"
        }
    );
    summary("serve", &samples, &mut times, &extra);
    assert!(converged, "serve lost a change; its log: {}", log.display());
}

/// The records of what the bucket lists, in order.
async fn truth(store: &S3Store) -> Vec<u8> {
    let mut out = Vec::new();
    for meta in store.list("All/").await.expect("a listing") {
        let name = &meta.key["All/".len()..];
        if name.contains('/') || !name.ends_with(".tgz") {
            continue;
        }
        let Some((body, _)) = store.get(&meta.key).await.expect("a GET") else {
            continue;
        };
        let limits = pkgsum::limit::Limits::default();
        let header = pkgsum::header::read_header(&body[..], &limits).expect("a header");
        let info = pkgsum::record::FileInfo {
            name: name.as_bytes(),
            size: body.len() as u64,
        };
        out.extend(pkgsum::record::render(&header.metadata, Some(info)));
    }
    out
}

/// The published gzip summary, decompressed.
async fn published(store: &S3Store) -> Vec<u8> {
    let Some((body, _)) = store.get("All/pkg_summary.gz").await.expect("a GET") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut decoder = pkgsum::compression::Compression::Gzip
        .decoder(&body[..])
        .expect("a decoder");
    decoder.read_to_end(&mut out).expect("a summary");
    out
}

/// M6: what 60 authenticated downloads of a 20 MiB package that are
/// never read cost the gateway (8 MiB parts made it 11.6 MiB each).
async fn stalled_downloads() {
    let store = pkgsum::testing::s3_bucket().await;
    let body = PackageBuilder::new("huge-1.0")
        .file("payload", noise(5, 20 << 20))
        .build()
        .expect("a package");
    put(&store, "All/huge-1.0.tgz", body).await;
    let (mut server, port, _dir) = start_gateway(&store, "pkgsum-soak-stalled.log");
    let listen = format!("127.0.0.1:{port}");
    std::thread::sleep(Duration::from_secs(1));
    let before = rss_kib(server.id());
    let mut held = Vec::new();
    for _ in 0..60 {
        let mut stream = TcpStream::connect(&listen).expect("a connection");
        let request = "GET /All/huge-1.0.tgz HTTP/1.1\r\nHost: soak\r\n\
                       Authorization: Basic c29hazpzb2Fr\r\n\r\n";
        stream.write_all(request.as_bytes()).expect("a request");
        // Read the head only, then stop reading.
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).expect("an answer");
        held.push(stream);
    }
    std::thread::sleep(Duration::from_secs(10));
    let after = rss_kib(server.id());
    drop(held);
    let _ = server.kill();
    let _ = server.wait();
    println!(
        "gateway, 60 downloads of a 20 MiB package never read: RSS {} MiB before, {} MiB with them ({:.1} MiB each)",
        before / 1024,
        after / 1024,
        (after.saturating_sub(before)) as f64 / 1024.0 / 60.0
    );
}

async fn soak_gateway() {
    let store = pkgsum::testing::s3_bucket().await;
    let mut names = Vec::new();
    for i in 0..20 {
        let size = if i == 0 { 4 << 20 } else { 64 << 10 };
        let name = format!("dl{i}-1.0");
        let body = PackageBuilder::new(&name)
            .file("payload", noise(i, size))
            .build()
            .expect("a package");
        put(&store, &format!("All/{name}.tgz"), body).await;
        names.push(format!("{name}.tgz"));
    }
    names.push("pkg_summary.gz".to_owned());
    let config = pkgsum::config::Config::default();
    pkgsum::repo::Repo::new(&store, "All/", &config)
        .apply(pkgsum::repo::Scope::Listing, &())
        .await
        .expect("an index");
    let (mut server, port, _dir) = start_gateway(&store, "pkgsum-soak-gateway.log");
    let listen = format!("127.0.0.1:{port}");
    let stop = Arc::new(AtomicBool::new(false));
    let rss = sample_rss(server.id(), stop.clone());
    let idle = hold_idle(port, IDLE, stop.clone());
    let times = Arc::new(Mutex::new(Vec::new()));
    let failed = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for c in 0..8 {
        let (stop, times, failed, bytes, names) = (
            stop.clone(),
            times.clone(),
            failed.clone(),
            bytes.clone(),
            names.clone(),
        );
        let listen = listen.clone();
        clients.push(std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(60)))
                .build()
                .into();
            let mut i = c;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let name = &names[i % names.len()];
                let start = Instant::now();
                let response = agent
                    .get(&format!("http://soak:soak@{listen}/All/{name}"))
                    .call();
                match response {
                    Ok(mut r) if r.status() == 200 => {
                        let body = r.body_mut().with_config().limit(64 << 20).read_to_vec();
                        match body {
                            Ok(body) => {
                                bytes.fetch_add(body.len() as u64, Ordering::SeqCst);
                                times.lock().expect("times").push(start.elapsed());
                            }
                            Err(_) => _ = failed.fetch_add(1, Ordering::SeqCst),
                        }
                    }
                    _ => _ = failed.fetch_add(1, Ordering::SeqCst),
                }
            }
        }));
    }
    let mut slow = Vec::new();
    for _ in 0..10 {
        let (stop, listen) = (stop.clone(), listen.clone());
        slow.push(std::thread::spawn(move || {
            let mut finished = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let Ok(mut stream) = TcpStream::connect(&listen) else {
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                };
                let request = "GET /All/dl0-1.0.tgz HTTP/1.1\r\nHost: soak\r\n\
                               Authorization: Basic c29hazpzb2Fr\r\nConnection: close\r\n\r\n";
                if stream.write_all(request.as_bytes()).is_err() {
                    continue;
                }
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut chunk = vec![0u8; 64 << 10];
                loop {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    match stream.read(&mut chunk) {
                        Ok(0) => {
                            finished += 1;
                            break;
                        }
                        Ok(_) => std::thread::sleep(Duration::from_secs(1)),
                        Err(_) => break,
                    }
                }
            }
            finished
        }));
    }
    std::thread::sleep(Duration::from_secs(seconds()));
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        let _ = client.join();
    }
    let slow_done: u64 = slow.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    let samples = rss.join().expect("the sampler");
    let reopened = idle.join().expect("the idle clients");
    let _ = server.kill();
    let _ = server.wait();
    write_csv("soak-gateway.csv", &samples);
    let mut times = std::mem::take(&mut *times.lock().expect("times"));
    let extra = format!(
        "{} MiB served, {} failed downloads, {slow_done} slow downloads finished, {reopened} idle connections opened",
        bytes.load(Ordering::SeqCst) >> 20,
        failed.load(Ordering::SeqCst)
    );
    summary("gateway", &samples, &mut times, &extra);
}
