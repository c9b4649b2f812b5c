//! The browsable site as a person sees it: the page `pkgsum index` writes,
//! opened from `file://` in Debian's headless Chromium and driven through
//! its WebDriver (`chromedriver`, spoken to over plain HTTP here): the
//! rows, typing in the filter, the detail view, the links, and packages
//! whose text is markup, which must show as text and run nothing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A running chromedriver, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
    session: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Driver {
    /// Starts chromedriver on a free port, and a headless Chromium session
    /// with the flags this machine's closed network needs.
    fn start(profile: &Path) -> Driver {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let child = Command::new("chromedriver")
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut driver = Driver {
            child,
            port,
            session: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while driver.call("GET", "/status", None).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let flags = pkgsum::testing::CHROMIUM_FLAGS;
        let mut args: Vec<String> = flags.iter().map(|a| (*a).to_owned()).collect();
        args.push("--window-size=1280,900".to_owned());
        args.push(format!("--user-data-dir={}", profile.display()));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}});
        let answer = driver.call("POST", "/session", Some(capabilities)).unwrap();
        driver.session = answer["sessionId"].as_str().unwrap().to_owned();
        driver
    }

    /// One WebDriver request; the answer's `value`, or its error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Value> {
        let mut stream =
            TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| json!(e.to_string()))?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| json!(e.to_string()))?;
        // Read by Content-Length: chromedriver keeps the connection open.
        let mut answer = Vec::new();
        let mut chunk = [0u8; 65536];
        let (head_end, length) = loop {
            let n = stream.read(&mut chunk).map_err(|e| json!(e.to_string()))?;
            if n == 0 {
                return Err(json!("the connection closed"));
            }
            answer.extend_from_slice(&chunk[..n]);
            if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&answer[..end]).to_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                break (end + 4, length);
            }
        };
        while answer.len() < head_end + length {
            let n = stream.read(&mut chunk).map_err(|e| json!(e.to_string()))?;
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&chunk[..n]);
        }
        let ok = answer.starts_with(b"HTTP/1.1 200");
        let body = &answer[head_end..];
        let value: Value = serde_json::from_slice(body).map_err(|e| json!(e.to_string()))?;
        match ok {
            true => Ok(value["value"].clone()),
            false => Err(value["value"].clone()),
        }
    }

    fn session(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.call(method, &path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    fn open(&self, url: &str) {
        self.session("POST", "/url", Some(json!({"url": url})));
    }

    /// Runs `script` in the page; its value.
    fn run(&self, script: &str) -> Value {
        self.session(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Waits until `script` returns true (up to 20 s).
    fn wait_until(&self, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.run(script) != json!(true) {
            assert!(Instant::now() < deadline, "never true: {script}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the detail view has its package's details (or says
    /// they could not be loaded).
    fn wait_for_detail(&self) {
        self.wait_until("return !!document.getElementById('detail').dataset.ready");
    }

    /// Waits for `pkgname`'s detail: after a click within the page the
    /// one shown before stays ready until the hash change is handled.
    fn wait_for_detail_of(&self, pkgname: &str) {
        let name = serde_json::to_string(pkgname).unwrap();
        self.wait_until(&format!(
            "const d = document.getElementById('detail'); \
             return !!d.dataset.ready && d.querySelector('h2')?.textContent === {name}"
        ));
    }

    /// The element `css` selects.
    fn find(&self, css: &str) -> String {
        let found = self.session(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        found
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.session("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    /// Types `text` into the element `css` selects, key by key.
    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.session(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        );
    }

    /// An alert is open (a payload ran).
    fn alert_open(&self) -> bool {
        let path = format!("/session/{}/alert/text", self.session);
        self.call("GET", &path, None).is_ok()
    }
}

/// A package of `pkgname` with `comment`, DEPENDS and +BUILD_INFO lines.
fn package(pkgname: &str, comment: &str, depends: &[&str], extra: &str) -> Vec<u8> {
    let base = pkgname.rsplit_once('-').map_or(pkgname, |(b, _)| b);
    let deps: String = depends.iter().map(|d| format!("@pkgdep {d}\n")).collect();
    let build_info = format!(
        "BUILD_DATE=2026-11-25 12:00:00 +0000\nMACHINE_ARCH=x86_64\nOPSYS=NetBSD\n\
         OS_VERSION=10.1\nPKGPATH=misc/{base}\nLICENSE=modified-bsd\n{extra}"
    );
    pkgsum::create::PackageBuilder::new(pkgname)
        .member("+CONTENTS", format!("@name {pkgname}\n{deps}"))
        .member("+COMMENT", format!("{comment}\n"))
        .member("+BUILD_INFO", build_info)
        .build()
        .unwrap()
}

const SCRIPT: &str = "<script>alert(1)</script>";
const IMAGE: &str = "\"><img src=x onerror=alert(1)>";

/// A repository of 40 packages, two whose text is markup, and an app
/// whose DEPENDS only the older lib satisfies; indexed.
fn repository(dir: &Path) {
    let write =
        |name: &str, body: Vec<u8>| std::fs::write(dir.join(format!("{name}.tgz")), body).unwrap();
    for i in 0..35 {
        let name = format!("p{i:02}-1.0");
        write(
            &name,
            package(&name, &format!("Filler package number {i}"), &[], ""),
        );
    }
    write("lib-1.5", package("lib-1.5", "The older lib", &[], ""));
    write("lib-2.0", package("lib-2.0", "The newer lib", &[], ""));
    write(
        "app-1.0",
        package(
            "app-1.0",
            "An app",
            &["lib>=1<2"],
            "HOMEPAGE=https://example.org/app/\n",
        ),
    );
    write(
        "evil-1.0",
        package("evil-1.0", SCRIPT, &[], "HOMEPAGE=javascript:alert(1)\n"),
    );
    write(
        "evil2-1.0",
        package(
            "evil2-1.0",
            IMAGE,
            &["lib>=9"],
            &format!("HOMEPAGE={IMAGE}\n"),
        ),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_pkgsum"))
        .arg("index")
        .arg(dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The rows, typing in the filter, the detail view, the links, and the
/// payloads shown as text; a screenshot (kept as docs/site.png when
/// PKGSUM_SCREENSHOT names that path).
fn the_page_works_as_a_person_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("All");
    std::fs::create_dir(&repo).unwrap();
    repository(&repo);
    let profile = dir.path().join("profile");
    let driver = Driver::start(&profile);
    let page = format!("file://{}/index.html", repo.display());
    driver.open(&page);
    driver.wait_until("return !!document.body.dataset.ready");

    // Every package is a row; the header says how many and which
    // generation; repositories.conf gets the directory's URL.
    assert_eq!(
        driver.run("return document.querySelectorAll('#rows tr').length"),
        40
    );
    let summary = driver.run("return document.getElementById('summary').textContent");
    assert!(
        summary
            .as_str()
            .unwrap()
            .starts_with("40 packages · generation "),
        "{summary}"
    );
    assert_eq!(
        driver.run("return document.getElementById('url').textContent"),
        format!("file://{}/", repo.display())
    );

    // The payloads are text: the cells hold them as written, no element
    // was made of them, nothing ran.
    let cell = |file: &str| {
        driver.run(&format!(
            "return document.querySelector('tr[data-file=\"{file}\"] td:nth-child(3)').textContent"
        ))
    };
    assert_eq!(cell("evil-1.0.tgz"), SCRIPT);
    assert_eq!(cell("evil2-1.0.tgz"), IMAGE);
    assert_eq!(
        driver.run("return document.querySelectorAll('img, #rows script').length"),
        0
    );
    assert!(!driver.alert_open(), "a payload ran");

    // Typing filters as one types: "lib" leaves the two libs.
    driver.type_into("#q", "lib");
    let files =
        driver.run("return [...document.querySelectorAll('#rows tr')].map(r => r.dataset.file)");
    assert_eq!(files, json!(["lib-1.5.tgz", "lib-2.0.tgz"]));
    assert_eq!(
        driver.run("return document.getElementById('count').textContent"),
        "2 of 40 packages"
    );
    // Words narrow together: filler packages with a 3 (3, 13, 23, 30-34).
    driver.type_into("#q", "\u{0008}\u{0008}\u{0008}filler 3");
    assert_eq!(
        driver.run("return document.querySelectorAll('#rows tr').length"),
        8
    );

    // The detail view: DESCRIPTION, HOMEPAGE, DEPENDS linked to the
    // package here that satisfies them, and the file.
    driver.open(&format!("{page}#q=app"));
    driver.click("tr[data-file=\"app-1.0.tgz\"] a");
    driver.wait_for_detail_of("app-1.0");
    let detail = driver.run("return document.getElementById('detail').innerText");
    let detail = detail.as_str().unwrap();
    assert!(
        detail.contains("app-1.0") && detail.contains("app exists to be indexed."),
        "{detail}"
    );
    assert_eq!(
        driver.run("return document.querySelector('#detail a.file').href"),
        format!("file://{}/app-1.0.tgz", repo.display())
    );
    assert_eq!(
        driver.run("return document.querySelector('#detail a.home').href"),
        "https://example.org/app/"
    );
    driver.click("#detail .depends a");
    driver.wait_for_detail_of("lib-1.5");
    let detail = driver.run("return document.querySelector('#detail h2').textContent");
    assert_eq!(detail, "lib-1.5");

    // A hostile package's detail: its javascript: HOMEPAGE is no link,
    // its markup is text, a DEPENDS nothing satisfies says so.
    driver.open(&format!("{page}#p=evil-1.0.tgz"));
    driver.wait_for_detail();
    assert_eq!(
        driver.run("return document.querySelectorAll('#detail a.home').length"),
        0
    );
    driver.open(&format!("{page}#p=evil2-1.0.tgz"));
    driver.wait_for_detail();
    let text = driver.run("return document.getElementById('detail').innerText");
    assert!(text.as_str().unwrap().contains(IMAGE), "{text}");
    assert!(
        text.as_str()
            .unwrap()
            .contains("lib>=9 (satisfied by no package here)"),
        "{text}"
    );
    assert_eq!(
        driver.run("return document.querySelectorAll('img').length"),
        0
    );
    assert!(!driver.alert_open(), "a payload ran");

    // The policy allows the page's own script and style only.
    let policy = driver.run(
        "return document.querySelector('meta[http-equiv=\"Content-Security-Policy\"]').content",
    );
    let policy = policy.as_str().unwrap();
    assert!(
        policy.starts_with("default-src 'none'; script-src 'sha256-"),
        "{policy}"
    );
    assert!(!policy.contains("unsafe"), "{policy}");

    driver.open(&format!("{page}#q=lib&p=app-1.0.tgz"));
    driver.wait_for_detail();
    let shot = driver.session("GET", "/screenshot", None);
    use base64::Engine as _;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot.as_str().unwrap())
        .unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    if let Some(path) = std::env::var_os("PKGSUM_SCREENSHOT") {
        std::fs::write(path, &png).unwrap();
    }

    // Through `pkgsum gateway`, behind its Basic credentials: the page at
    // the repository's own URL loads its runs and details the same way.
    let credentials = dir.path().join("credentials");
    let hash = bcrypt::hash("pass", 4).unwrap();
    std::fs::write(&credentials, format!("ci:{hash}\n")).unwrap();
    let gateway =
        crate::gateway::Gateway::start(&format!("file://{}", repo.display()), &credentials);
    let served = gateway.host().replacen("http://", "http://ci:pass@", 1);
    driver.open(&format!("{served}/#p=app-1.0.tgz"));
    driver.wait_until("return !!document.body.dataset.ready");
    assert_eq!(
        driver.run("return document.querySelectorAll('#rows tr').length"),
        40
    );
    driver.wait_for_detail();
    let detail = driver.run("return document.getElementById('detail').innerText");
    assert!(
        detail
            .as_str()
            .unwrap()
            .contains("app exists to be indexed."),
        "{detail}"
    );
    drop(gateway);

    // A run's details gone (a page older than an hour): the view says so;
    // its table gone too: the page says how many parts it lacks.
    for entry in std::fs::read_dir(repo.join("site")).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".details.js") {
            std::fs::remove_file(path).unwrap();
        }
    }
    driver.open("about:blank");
    driver.open(&format!("{page}#p=lib-2.0.tgz"));
    driver.wait_for_detail();
    assert_eq!(
        driver.run("return document.getElementById('detail').dataset.ready"),
        "failed"
    );
    let text = driver.run("return document.getElementById('detail').innerText");
    assert!(
        text.as_str().unwrap().contains("could not be loaded"),
        "{text}"
    );
    for entry in std::fs::read_dir(repo.join("site")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    driver.open("about:blank");
    driver.open(&page);
    driver.wait_until("return !!document.body.dataset.ready");
    let summary = driver.run("return document.getElementById('summary').textContent");
    assert!(
        summary
            .as_str()
            .unwrap()
            .contains("0 packages · generation ")
            && summary
                .as_str()
                .unwrap()
                .contains("1 of 1 parts could not be loaded"),
        "{summary}"
    );
}

/// Uploads `names` (built as test packages) and delivers their
/// notification; the reports.
async fn upload<S: pkgsum::store::Store>(
    store: &S,
    names: &[String],
    config: &pkgsum::config::Config,
) -> Vec<pkgsum::repo::Report> {
    let mut keys = Vec::new();
    for name in names {
        let key = format!("All/{name}.tgz");
        let description = format!("{name} is described at length.\n").repeat(40);
        let body = pkgsum::create::PackageBuilder::new(name)
            .member("+DESC", description)
            .build()
            .unwrap();
        store
            .put(&key, bytes::Bytes::from(body), Default::default())
            .await
            .unwrap();
        keys.push(key);
    }
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let payload = crate::common::s3_event("b", "ObjectCreated:Put", &refs);
    let messages = pkgsum::event::decode(&payload);
    let outcome = pkgsum::dispatch::apply_messages(&messages, |_| store, config).await;
    assert!(outcome.is_success(), "{:?}", outcome.errors);
    outcome.reports
}

/// `packages.json`'s facts, the parts it names, and every package in them.
async fn published<S: pkgsum::store::Store>(store: &S) -> (Value, Vec<String>, Vec<Value>) {
    let json = |body: bytes::Bytes| serde_json::from_slice::<Value>(&body).unwrap();
    let (body, meta) = store.get("All/packages.json").await.unwrap().unwrap();
    let site = json(body);
    assert_eq!(
        meta.metadata["pkgsum-generation"],
        site["meta"]["generation"].to_string()
    );
    let parts: Vec<String> = site["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    let mut packages = Vec::new();
    for part in &parts {
        let (body, _) = store.get(&format!("All/{part}")).await.unwrap().unwrap();
        packages.extend(json(body).as_array().unwrap().iter().cloned());
    }
    assert_eq!(site["meta"]["count"], packages.len());
    (site["meta"].clone(), parts, packages)
}

/// The site follows each generation, an update renders only the run it
/// changed and names the others again, a planted layout is not trusted,
/// files no page names are removed once old, and `PKGSUM_SITE=0`
/// publishes none.
async fn the_site_follows_each_generation<S: pkgsum::store::Store>(store: &S) {
    let config = pkgsum::config::Config::default();
    // Large DESCRIPTIONs make several runs of a few hundred packages.
    let names: Vec<String> = (0..600).map(|i| format!("p{i:03}-1.0")).collect();
    upload(store, &names, &config).await;
    let (meta, parts, packages) = published(store).await;
    assert_eq!(packages.len(), 600);
    assert!(parts.len() >= 3, "{parts:?}");
    let generation = meta["generation"].as_u64().unwrap();
    let (page, _) = store.get("All/index.html").await.unwrap().unwrap();
    assert!(page.starts_with(b"<!doctype html>"));
    // The page names the runs' scripts, and stays small.
    let stems: Vec<&str> = parts.iter().map(|p| &p[5..p.len() - 5]).collect();
    for stem in &stems {
        let named = format!("\"{stem}\"");
        assert!(page.windows(named.len()).any(|w| w == named.as_bytes()));
        for suffix in [".js", ".details.js"] {
            let key = format!("All/site/{stem}{suffix}");
            assert!(store.head(&key).await.unwrap().is_some(), "{key}");
        }
    }
    assert!(page.len() < 64 << 10, "{} bytes", page.len());

    let reports = upload(store, &["p300-2.0".to_owned()], &config).await;
    assert!(reports[0].published);
    assert_eq!(reports[0].site_rendered, 1, "{:?}", reports[0]);
    assert!(reports[0].site_copied >= 2, "{:?}", reports[0]);
    let (second, later_parts, after) = published(store).await;
    assert_eq!(after.len(), 601);
    assert!(second["generation"].as_u64().unwrap() > generation);
    // One part is new; the others are the same files, named again.
    let kept = later_parts.iter().filter(|p| parts.contains(p)).count();
    assert_eq!(kept, later_parts.len() - 1, "{parts:?} {later_parts:?}");
    assert_eq!(packages[0], after[0]);
    assert_eq!(packages[599], after[600]);

    // A run's file deleted from outside: the next update renders that run
    // again (and only it, with the one it changes), so the page names no
    // missing file.
    let lost = format!("All/{}", later_parts[0].replace(".json", ".details.js"));
    store.delete(&lost).await.unwrap();
    let reports = upload(store, &["p599-2.0".to_owned()], &config).await;
    assert_eq!(reports[0].site_rendered, 2, "{:?}", reports[0]);
    let (_, healed, _) = published(store).await;
    assert!(!healed.contains(&later_parts[0]), "{healed:?}");
    for part in &healed {
        for suffix in [".js", ".details.js"] {
            let key = format!("All/{}", part.replace(".json", suffix));
            assert!(store.head(&key).await.unwrap().is_some(), "{key}");
        }
    }

    // A planted layout for the file there, its stems not pkgsum's: the
    // next update renders every run instead of naming those.
    let (layout, _) = store.get("All/.pkgsum/site.json").await.unwrap().unwrap();
    let mut planted: Value = serde_json::from_slice(&layout).unwrap();
    for (i, run) in planted["runs"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        run["stem"] = json!(["../index", "1-ZZZZZZZZZZZZZZZZ", "1-0123"][i % 3]);
    }
    let put = store.put(
        "All/.pkgsum/site.json",
        bytes::Bytes::from(planted.to_string()),
        Default::default(),
    );
    put.await.unwrap();
    let reports = upload(store, &["p301-3.0".to_owned()], &config).await;
    assert_eq!(reports[0].site_copied, 0, "{:?}", reports[0]);
    assert!(reports[0].site_rendered >= 3, "{:?}", reports[0]);
    let (_, _, packages) = published(store).await;
    assert_eq!(packages.len(), 603);

    // Files under site/ that no page names: removed once an hour old
    // (where the store keeps the time it is given), kept while younger.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    let plant = |key: &'static str, modified| async move {
        let options = pkgsum::store::PutOptions {
            modified,
            ..Default::default()
        };
        store
            .put(key, bytes::Bytes::from_static(b"x"), options)
            .await
            .unwrap();
    };
    plant("All/site/1-00000000000000aa.js", Some(old)).await;
    plant("All/site/notes.txt", Some(old)).await;
    plant("All/site/1-00000000000000bb.json", None).await;
    let aged = store.head("All/site/notes.txt").await.unwrap().unwrap();
    let dated = aged
        .last_modified
        .is_some_and(|t| t <= old + std::time::Duration::from_secs(60));
    upload(store, &["p302-3.0".to_owned()], &config).await;
    let (_, parts, _) = published(store).await;
    for part in &parts {
        assert!(
            store.head(&format!("All/{part}")).await.unwrap().is_some(),
            "{part}"
        );
    }
    assert!(
        store
            .head("All/site/1-00000000000000bb.json")
            .await
            .unwrap()
            .is_some()
    );
    if dated {
        for key in ["All/site/1-00000000000000aa.js", "All/site/notes.txt"] {
            assert!(store.head(key).await.unwrap().is_none(), "{key} stayed");
        }
    }

    let off = pkgsum::config::Config {
        site: false,
        ..pkgsum::config::Config::default()
    };
    upload(store, &["q-1.0".to_owned()], &off).await;
    let (_, _, packages) = published(store).await;
    assert_eq!(packages.len(), 604, "PKGSUM_SITE=0 wrote it");
}

async fn memory_the_site_follows_each_generation() {
    the_site_follows_each_generation(&pkgsum::store::memory::MemoryStore::new()).await;
}

async fn s3_the_site_follows_each_generation() {
    Box::pin(the_site_follows_each_generation(
        &crate::common::s3_bucket().await,
    ))
    .await;
}

crate::harness::trials!(
    chromium the_page_works_as_a_person_uses_it,
    tokio memory_the_site_follows_each_generation,
    s3 s3_the_site_follows_each_generation,
);
