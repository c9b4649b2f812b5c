//! Publishing like a release manager: what a summary lists
//! (`PKGSUM_SELECT`), the publish gates (`PKGSUM_MAX_SHRINK`,
//! `PKGSUM_REQUIRED`, `PKGSUM_UNRESOLVED`), and holding and resuming,
//! through the event path on memory and LocalStack, and through the
//! `pkgsum` binary on a directory.

use crate::common;

use std::time::SystemTime;

use bytes::Bytes;
use pkgsum::compression::Compression;
use pkgsum::config::Config;
use pkgsum::create::PackageBuilder;
use pkgsum::dispatch::apply_messages;
use pkgsum::event;
use pkgsum::gate::Unresolved;
use pkgsum::repo::{Repo, output_key, status_key};
use pkgsum::select::Select;
use pkgsum::store::memory::MemoryStore;
use pkgsum::store::{PutOptions, Store};

const BUCKET: &str = "repo-bucket";
const PREFIX: &str = "All/";

/// Versions whose byte order is not pkg_install's dewey order.
const VERSIONS: [&str; 5] = ["1.0alpha", "1.0", "1.0nb1", "1.0.1", "1.0pl1"];

fn package(pkgname: &str, depends: &[&str]) -> Vec<u8> {
    let deps: String = depends.iter().map(|d| format!("@pkgdep {d}\n")).collect();
    let contents = format!("@name {pkgname}\n{deps}");
    PackageBuilder::new(pkgname)
        .member("+CONTENTS", contents)
        .build()
        .unwrap()
}

async fn upload(store: &impl Store, name: &str, body: Vec<u8>) -> String {
    let key = format!("{PREFIX}{name}");
    store
        .put(&key, Bytes::from(body), PutOptions::default())
        .await
        .unwrap();
    key
}

/// Delivers one notification of `event` for `keys`; returns the reports'
/// held reasons.
async fn deliver<S: Store>(
    store: &S,
    event: &str,
    keys: &[String],
    config: &Config,
) -> Vec<String> {
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let messages = event::decode(&common::s3_event(BUCKET, event, &refs));
    let outcome = apply_messages(&messages, |_| store, config).await;
    assert!(outcome.is_success(), "{:?}", outcome.errors);
    outcome
        .reports
        .iter()
        .flat_map(|r| r.held.clone())
        .collect()
}

/// The PKGNAMEs the published gzip summary lists.
async fn listed<S: Store>(store: &S) -> Vec<String> {
    let summary = common::published(store, &output_key(PREFIX, Compression::Gzip)).await;
    let text = String::from_utf8(summary).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("PKGNAME="))
        .map(str::to_owned)
        .collect()
}

async fn status<S: Store>(store: &S) -> serde_json::Value {
    let (body, _) = store.get(&status_key(PREFIX)).await.unwrap().unwrap();
    serde_json::from_slice(&body).unwrap()
}

async fn modified<S: Store>(store: &S) -> SystemTime {
    let key = output_key(PREFIX, Compression::Gzip);
    store
        .head(&key)
        .await
        .unwrap()
        .unwrap()
        .last_modified
        .unwrap()
}

async fn newest_lists_one_version_in_dewey_order<S: Store>(store: &S) {
    let mut keys = Vec::new();
    for version in VERSIONS {
        let name = format!("foo-{version}");
        keys.push(upload(store, &format!("{name}.tgz"), package(&name, &[])).await);
    }
    keys.push(upload(store, "bar-2.tgz", package("bar-2", &[])).await);
    let newest = Config {
        gates: pkgsum::gate::Gates {
            select: Select::Newest,
            ..Default::default()
        },
        ..Config::default()
    };
    // One notification per upload, in the order of the versions.
    for key in &keys {
        let held = deliver(
            store,
            "ObjectCreated:Put",
            std::slice::from_ref(key),
            &newest,
        )
        .await;
        assert!(held.is_empty(), "{held:?}");
    }
    // pl counts as `.`: 1.0pl1 ties with 1.0.1, whose name sorts first.
    assert_eq!(listed(store).await, ["bar-2", "foo-1.0.1"]);
    let status = status(store).await;
    assert_eq!(status["publication"]["unlisted"], 4, "{status}");
    assert_eq!(status["publication"]["select"], "newest", "{status}");
    // The older files stay, for clients that installed them.
    for key in &keys {
        assert!(store.head(key).await.unwrap().is_some(), "{key}");
    }
    // Back to `all`: the next pass lists every version again, though no
    // record changed.
    let all = Config::default();
    deliver(store, "ObjectCreated:Put", &keys[..1], &all).await;
    // Sorted by file name, as every summary is.
    let mut files: Vec<String> = VERSIONS.iter().map(|v| format!("foo-{v}.tgz")).collect();
    files.push("bar-2.tgz".into());
    files.sort();
    let want: Vec<&str> = files.iter().map(|f| f.trim_end_matches(".tgz")).collect();
    assert_eq!(listed(store).await, want);
}

async fn memory_newest_lists_one_version_in_dewey_order() {
    newest_lists_one_version_in_dewey_order(&MemoryStore::new()).await;
}

async fn s3_newest_lists_one_version_in_dewey_order() {
    newest_lists_one_version_in_dewey_order(&common::s3_bucket().await).await;
}

/// Thirty packages published; twelve deleted at once (40%, past the
/// default 25%): the state drops them, the summary stays, the status, the
/// report and `verify` say why; `resume` publishes it, a second later.
async fn a_shrink_is_held_until_resumed<S: Store>(store: &S) {
    let config = Config::default();
    let mut keys = Vec::new();
    for i in 0..30 {
        let name = format!("p{i}-1.0");
        keys.push(upload(store, &format!("{name}.tgz"), package(&name, &[])).await);
    }
    deliver(store, "ObjectCreated:Put", &keys, &config).await;
    assert_eq!(listed(store).await.len(), 30);
    let before = modified(store).await;

    for key in &keys[..12] {
        store.delete(key).await.unwrap();
    }
    let held = deliver(store, "ObjectRemoved:Delete", &keys[..12], &config).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert!(
        held[0].starts_with(
            "the summary would list 18 packages, 40% fewer than the 30 published (PKGSUM_MAX_SHRINK=25%)"
        ),
        "{}",
        held[0]
    );
    assert_eq!(
        listed(store).await.len(),
        30,
        "a held summary was published"
    );
    let status = status(store).await;
    assert_eq!(status["packages"], 18, "the state lost the deletes");
    assert_eq!(status["publication"]["published"], false, "{status}");
    assert_eq!(status["publication"]["held"][0], held[0].as_str());
    let repo = Repo::new(store, PREFIX, &config);
    let drift = pkgsum::reconcile::verify(&repo).await.unwrap();
    assert!(
        drift
            .lines
            .iter()
            .any(|l| l.contains("not published: the summary would list 18")),
        "{:?}",
        drift.lines
    );

    // Another upload still finds it held (19 of 30 is still past 25%).
    let more = upload(store, "q-1.tgz", package("q-1", &[])).await;
    assert_eq!(
        deliver(store, "ObjectCreated:Put", &[more], &config)
            .await
            .len(),
        1
    );

    let published = repo.resume().await.unwrap();
    assert!(published.wrote && published.closed.is_empty());
    assert_eq!(listed(store).await.len(), 19);
    assert!(
        modified(store)
            .await
            .duration_since(before)
            .unwrap()
            .as_secs()
            >= 1,
        "pkgin would keep its cached summary"
    );
    assert!(pkgsum::reconcile::verify(&repo).await.unwrap().is_clean());
    // The published count is the new baseline.
    let next = upload(store, "r-1.tgz", package("r-1", &[])).await;
    assert!(
        deliver(store, "ObjectCreated:Put", &[next], &config)
            .await
            .is_empty()
    );
    assert_eq!(listed(store).await.len(), 20);
}

async fn memory_a_shrink_is_held_until_resumed() {
    a_shrink_is_held_until_resumed(&MemoryStore::new()).await;
}

async fn s3_a_shrink_is_held_until_resumed() {
    a_shrink_is_held_until_resumed(&common::s3_bucket().await).await;
}

/// While held, uploads reach the state and nothing is published; resume
/// publishes the newest state.
async fn a_hold_stops_publication_until_resumed<S: Store>(store: &S) {
    let config = Config::default();
    let first = upload(store, "a-1.tgz", package("a-1", &[])).await;
    deliver(store, "ObjectCreated:Put", &[first], &config).await;
    let repo = Repo::new(store, PREFIX, &config);
    let state = repo.hold("release freeze").await.unwrap();
    assert_eq!(state.hold().unwrap().reason, "release freeze");
    let second = upload(store, "b-1.tgz", package("b-1", &[])).await;
    let held = deliver(store, "ObjectCreated:Put", &[second], &config).await;
    assert!(
        held[0].starts_with("publication is held (release freeze, since "),
        "{held:?}"
    );
    assert_eq!(listed(store).await, ["a-1"]);
    assert_eq!(status(store).await["packages"], 2);
    assert!(!pkgsum::reconcile::verify(&repo).await.unwrap().is_clean());
    repo.resume().await.unwrap();
    assert_eq!(listed(store).await, ["a-1", "b-1"]);
    assert_eq!(
        status(store).await["publication"]["held"],
        serde_json::json!([])
    );
}

async fn memory_a_hold_stops_publication_until_resumed() {
    a_hold_stops_publication_until_resumed(&MemoryStore::new()).await;
}

async fn s3_a_hold_stops_publication_until_resumed() {
    a_hold_stops_publication_until_resumed(&common::s3_bucket().await).await;
}

/// A summary without a required PKGBASE, or with DEPENDS nothing listed
/// satisfies under `hold`, is held until the upload that mends it.
async fn required_and_unresolved_hold_until_mended() {
    let store = MemoryStore::new();
    let config = Config {
        gates: pkgsum::gate::Gates {
            required: vec!["pkg_install".into()],
            unresolved: Unresolved::Hold,
            ..Default::default()
        },
        ..Config::default()
    };
    let app = upload(&store, "app-2.0.tgz", package("app-2.0", &["libdep>=2.0"])).await;
    let held = deliver(&store, "ObjectCreated:Put", &[app], &config).await;
    assert_eq!(held.len(), 2, "{held:?}");
    assert_eq!(
        held[0],
        "the summary would list no pkg_install (PKGSUM_REQUIRED)"
    );
    assert!(
        held[1].starts_with("1 DEPENDS nothing listed satisfies, the first of app-2.0.tgz"),
        "{}",
        held[1]
    );
    assert!(
        store
            .head(&output_key(PREFIX, Compression::Gzip))
            .await
            .unwrap()
            .is_none()
    );
    let tools = upload(
        &store,
        "pkg_install-20250417.tgz",
        package("pkg_install-20250417", &[]),
    )
    .await;
    let held = deliver(&store, "ObjectCreated:Put", &[tools], &config).await;
    assert_eq!(held.len(), 1, "{held:?}");
    let lib = upload(&store, "libdep-2.1.tgz", package("libdep-2.1", &[])).await;
    assert!(
        deliver(&store, "ObjectCreated:Put", &[lib], &config)
            .await
            .is_empty()
    );
    assert_eq!(
        listed(&store).await,
        ["app-2.0", "libdep-2.1", "pkg_install-20250417"]
    );
}

/// A status or summary replaced while read (LocalStack serves such
/// answers torn) is read again at the next poll, not the end of a wait.
async fn a_torn_read_while_waiting_is_read_again() {
    use pkgsum::store::faulty::{Fault, Faulty};
    use pkgsum::store::{ErrorKind, Op};
    let store = Faulty::new(MemoryStore::new());
    let config = Config::default();
    let key = upload(&store, "a-1.tgz", package("a-1", &[])).await;
    deliver(&store, "ObjectCreated:Put", &[key], &config).await;
    let repo = Repo::new(&store, PREFIX, &config);
    let record = repo
        .read_state()
        .await
        .unwrap()
        .package("a-1.tgz")
        .unwrap()
        .record
        .clone();
    for key_contains in ["status.json", "pkg_summary.gz"] {
        store.inject(Fault {
            op: Op::Get,
            key_contains: key_contains.to_owned(),
            skip: 0,
            times: 2,
            kind: ErrorKind::CutShort("torn".to_owned()),
        });
    }
    let watched = [("a-1.tgz".to_owned(), record, 0)];
    let started = std::time::Instant::now();
    let timeout = std::time::Duration::from_secs(10);
    let waited = pkgsum::push::wait::wait(&repo, &watched, started, 0, timeout)
        .await
        .unwrap();
    assert!(
        matches!(waited.fates["a-1.tgz"], pkgsum::push::wait::Fate::Live(_)),
        "{waited:?}"
    );
}

/// The bytes of the published gzip summary.
async fn summary_bytes<S: Store>(store: &S) -> Bytes {
    let key = output_key(PREFIX, Compression::Gzip);
    store.get(&key).await.unwrap().unwrap().0
}

/// Every publication is kept with what it changed; a rollback refuses
/// while a file it lists is gone, then republishes a kept generation's
/// very bytes a second later than the summary it replaces, and holds
/// until `resume`.
async fn history_and_rollback<S: Store>(store: &S) {
    let config = Config::default();
    let repo = Repo::new(store, PREFIX, &config);
    let a = upload(store, "a-1.tgz", package("a-1", &[])).await;
    let b = upload(store, "b-1.tgz", package("b-1", &[])).await;
    deliver(store, "ObjectCreated:Put", &[a, b.clone()], &config).await;
    let c = upload(store, "c-1.tgz", package("c-1", &[])).await;
    deliver(
        store,
        "ObjectCreated:Put",
        std::slice::from_ref(&c),
        &config,
    )
    .await;
    let with_b = summary_bytes(store).await;
    store.delete(&b).await.unwrap();
    deliver(store, "ObjectRemoved:Delete", &[b], &config).await;
    let kept = summary_bytes(store).await;
    let replaced = PackageBuilder::new("c-1")
        .member("+COMMENT", "Rebuilt\n")
        .build()
        .unwrap();
    upload(store, "c-1.tgz", replaced).await;
    deliver(store, "ObjectCreated:Put", &[c], &config).await;

    let history = repo.history().await.unwrap();
    // Each generation as "count +added -removed ~replaced".
    let summary: Vec<String> = history
        .iter()
        .map(|e| {
            let c = &e.changes;
            let list = |sign: char, names: &[String]| {
                names
                    .iter()
                    .map(|n| format!(" {sign}{n}"))
                    .collect::<String>()
            };
            let (added, removed) = (list('+', &c.added), list('-', &c.removed));
            format!("{}{added}{removed}{}", e.packages, list('~', &c.replaced))
        })
        .collect();
    assert_eq!(summary, ["2 +a-1 +b-1", "3 +c-1", "2 -b-1", "2 ~c-1"]);
    assert!(history.iter().all(|e| e.changes.complete));
    let generations: Vec<u64> = history.iter().map(|e| e.generation).collect();

    // Generation two lists b-1.tgz, which is gone.
    let err = repo.rollback(generations[1]).await.unwrap_err().to_string();
    assert!(
        err.ends_with(&format!(
            "generation {} lists 1 file gone from the bucket, so clients could not install them: b-1.tgz",
            generations[1]
        )),
        "{err}"
    );
    assert!(
        summary_bytes(store).await != with_b,
        "a refused rollback published"
    );
    let err = repo.rollback(999).await.unwrap_err().to_string();
    assert!(
        err.contains("generation 999 is not in the history"),
        "{err}"
    );

    let before = modified(store).await;
    let rolled = repo.rollback(generations[2]).await.unwrap();
    assert_eq!(summary_bytes(store).await, kept, "not the kept bytes");
    let after = modified(store).await;
    let seconds = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    assert!(
        seconds(after) > seconds(before),
        "pkgin would keep its cached summary"
    );
    let status = status(store).await;
    assert!(
        status["publication"]["held"][0]
            .as_str()
            .unwrap()
            .starts_with(&format!(
                "publication is held (rolled back to generation {}",
                generations[2]
            )),
        "{status}"
    );
    let last = repo.history().await.unwrap().pop().unwrap();
    assert_eq!(last.generation, rolled.generation);
    assert_eq!(
        last.note.as_deref(),
        Some(&*format!("rollback to generation {}", generations[2]))
    );

    // The next upload does not undo it; resume publishes the newest state.
    let d = upload(store, "d-1.tgz", package("d-1", &[])).await;
    assert_eq!(
        deliver(store, "ObjectCreated:Put", &[d], &config)
            .await
            .len(),
        1
    );
    assert_eq!(summary_bytes(store).await, kept);
    repo.resume().await.unwrap();
    assert_eq!(listed(store).await, ["a-1", "c-1", "d-1"]);
    assert!(
        common::published(store, &output_key(PREFIX, Compression::Gzip))
            .await
            .windows(15)
            .any(|w| w == b"COMMENT=Rebuilt")
    );
}

async fn memory_history_and_rollback() {
    history_and_rollback(&MemoryStore::new()).await;
}

async fn s3_history_and_rollback() {
    history_and_rollback(&common::s3_bucket().await).await;
}

/// Ceph RGW, once probed: gates, hold, history and rollback (RGW ignores
/// `x-amz-copy-source-if-match`; the copy's ETag is checked instead).
async fn rgw_gates_history_and_rollback() {
    let rgw = async || {
        let store = pkgsum::testing::rgw_bucket().await;
        let found = store.probe("").await.unwrap();
        store.with_probed(found)
    };
    // Boxed: both inline overflow a test thread's stack in debug builds.
    Box::pin(a_shrink_is_held_until_resumed(&rgw().await)).await;
    Box::pin(history_and_rollback(&rgw().await)).await;
}

/// SeaweedFS: history and rollback.
async fn seaweedfs_history_and_rollback() {
    history_and_rollback(&pkgsum::testing::seaweedfs_bucket().await).await;
}

/// `PKGSUM_HISTORY` generations are kept, no more.
async fn the_history_keeps_the_newest_generations() {
    let store = MemoryStore::new();
    let config = Config {
        history: 3,
        ..Config::default()
    };
    for i in 0..6 {
        let name = format!("p{i}-1");
        let key = upload(&store, &format!("{name}.tgz"), package(&name, &[])).await;
        deliver(&store, "ObjectCreated:Put", &[key], &config).await;
    }
    let repo = Repo::new(&store, PREFIX, &config);
    let kept: Vec<usize> = repo
        .history()
        .await
        .unwrap()
        .iter()
        .map(|e| e.packages)
        .collect();
    assert_eq!(kept, [4, 5, 6]);
    let files = store
        .list(&pkgsum::repo::history_prefix(PREFIX))
        .await
        .unwrap();
    // An entry and three summaries for each generation kept.
    assert_eq!(files.len(), 3 * 4, "{files:?}");
}

/// Uploads `name` as a member of release `tag` (`ID/COUNT`).
async fn upload_member(store: &impl Store, name: &str, tag: &str) -> String {
    let key = format!("{PREFIX}{name}.tgz");
    let options = PutOptions {
        metadata: [("pkgsum-release".to_owned(), tag.to_owned())].into(),
        ..PutOptions::default()
    };
    store
        .put(&key, Bytes::from(package(name, &[])), options)
        .await
        .unwrap();
    key
}

/// How many of the release's members (`m00-1` ...) a summary lists.
fn members_in(summary: &[u8]) -> usize {
    let text = String::from_utf8_lossy(summary);
    text.lines().filter(|l| l.starts_with("PKGNAME=m")).count()
}

/// A 50-package release whose notifications arrive one per pass,
/// shuffled and duplicated: every summary published lists none of it or
/// all of it, and the generation that lists it is one. A malformed tag is
/// ignored with a warning.
async fn a_release_is_published_whole<S: Store>(store: &S) -> u64 {
    let config = Config::default();
    let base = upload(store, "base-1.tgz", package("base-1", &[])).await;
    deliver(store, "ObjectCreated:Put", &[base], &config).await;
    let mut keys = Vec::new();
    for i in 0..50 {
        keys.push(upload_member(store, &format!("m{i:02}-1"), "ci-7/50").await);
    }
    let mut deliveries: Vec<String> = keys.clone();
    deliveries.extend(keys.iter().step_by(7).cloned());
    // Its own generator: seeding the thread's would make the bucket names
    // of later tests on this thread repeat.
    fastrand::Rng::with_seed(22).shuffle(&mut deliveries);
    let mut published_with = None;
    for (i, key) in deliveries.iter().enumerate() {
        deliver(
            store,
            "ObjectCreated:Put",
            std::slice::from_ref(key),
            &config,
        )
        .await;
        let summary = common::published(store, &output_key(PREFIX, Compression::Gzip)).await;
        let members = members_in(&summary);
        assert!(
            members == 0 || members == 50,
            "pass {i}: {members} of 50 published"
        );
        if members == 50 && published_with.is_none() {
            published_with = Some(status(store).await["generation"].as_u64().unwrap());
        } else if members == 0 {
            let waiting = &status(store).await["releases"];
            assert_eq!(waiting[0]["id"], "ci-7", "{waiting}");
        }
    }
    let status = status(store).await;
    assert_eq!(status["packages"], 51, "{status}");
    assert_eq!(status["releases"], serde_json::json!([]));
    // A malformed tag: published on its own, with a warning.
    let odd = upload_member(store, "odd-1", "../../x/0").await;
    deliver(store, "ObjectCreated:Put", &[odd], &config).await;
    assert!(listed(store).await.contains(&"odd-1".to_owned()));
    let warned = serde_json::to_string(&self::status(store).await["warnings"]).unwrap();
    assert!(warned.contains("is not ID/COUNT"), "{warned}");
    published_with.unwrap()
}

async fn memory_a_release_is_published_whole() {
    a_release_is_published_whole(&MemoryStore::new()).await;
}

/// On LocalStack, in a versioned bucket: every version of every summary
/// ever published lists none or all of the release.
async fn s3_a_release_is_published_whole() {
    let store = common::s3_bucket().await;
    let client = store.client().clone();
    let versioning = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
        .build();
    client
        .put_bucket_versioning()
        .bucket(store.bucket())
        .versioning_configuration(versioning)
        .send()
        .await
        .unwrap();
    a_release_is_published_whole(&store).await;
    for format in [Compression::Gzip, Compression::Bzip2, Compression::Xz] {
        let key = output_key(PREFIX, format);
        let versions = client
            .list_object_versions()
            .bucket(store.bucket())
            .prefix(&key)
            .send()
            .await
            .unwrap();
        let ids: Vec<String> = versions
            .versions()
            .iter()
            .filter(|v| v.key() == Some(key.as_str()))
            .filter_map(|v| v.version_id().map(str::to_owned))
            .collect();
        assert!(ids.len() >= 3, "{key}: {} versions", ids.len());
        let mut with_release = 0;
        for id in &ids {
            let got = client
                .get_object()
                .bucket(store.bucket())
                .key(&key)
                .version_id(id)
                .send()
                .await
                .unwrap();
            let body = got.body.collect().await.unwrap().into_bytes();
            let members = members_in(&common::decompress(&body));
            assert!(
                members == 0 || members == 50,
                "{key} version {id}: {members} of 50"
            );
            with_release += usize::from(members == 50);
        }
        assert!(with_release >= 1, "{key}: never published the release");
    }
}

/// A release that stays incomplete past `PKGSUM_RELEASE_TIMEOUT` is
/// reported by the pass and by `verify`, and not published.
async fn an_incomplete_release_is_reported_after_the_timeout() {
    let store = MemoryStore::new();
    let config = Config {
        release_timeout: std::time::Duration::ZERO,
        ..Config::default()
    };
    let base = upload(&store, "base-1.tgz", package("base-1", &[])).await;
    deliver(&store, "ObjectCreated:Put", &[base], &config).await;
    let key = upload_member(&store, "m00-1", "late/3").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let refs = [key.as_str()];
    let messages = event::decode(&common::s3_event(BUCKET, "ObjectCreated:Put", &refs));
    let outcome = apply_messages(&messages, |_| &store, &config).await;
    let stalled = &outcome.reports[0].stalled;
    assert_eq!(stalled.len(), 1, "{stalled:?}");
    assert!(
        stalled[0].starts_with("release late has 1 of its 3 packages"),
        "{}",
        stalled[0]
    );
    assert!(stalled[0].ends_with("past PKGSUM_RELEASE_TIMEOUT, it is not published"));
    assert_eq!(outcome.verdict(), pkgsum::verdict::Verdict::Incomplete);
    assert_eq!(listed(&store).await, ["base-1"]);
    let repo = Repo::new(&store, PREFIX, &config);
    let drift = pkgsum::reconcile::verify(&repo).await.unwrap();
    assert!(
        drift
            .lines
            .iter()
            .any(|l| l.contains("release late has 1 of its 3")),
        "{:?}",
        drift.lines
    );
}

/// `pkgsum push` to a directory: every file is checked before anything
/// is copied; renamed to PKGNAME.tgz; a different file at a key refused
/// unless `--replace`; the same bytes a no-op; each live at once.
fn push_checks_before_it_copies() {
    let src = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    let dest = repo.path().to_str().unwrap();
    let file = |name: &str, body: Vec<u8>| {
        let path = src.path().join(name);
        std::fs::write(&path, body).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let good = file("local-name.tgz", package("app-2.0", &["libdep>=2.0"]));
    let lib = file("libdep-2.0.tgz", package("libdep-2.0", &[]));
    let garbage = file("garbage.tgz", b"not a package".to_vec());
    let linux = file(
        "other-1.0.tgz",
        common::package_for("other-1.0", "Linux", "The other test package"),
    );

    let (code, _, err) = pkgsum(&["push", dest, &good, &lib, &garbage, &linux], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("garbage.tgz: "), "{err}");
    assert!(err.contains("other-1.0.tgz: built for OPSYS=Linux MACHINE_ARCH=x86_64 OS_VERSION=10.1, but the repository is OPSYS=NetBSD"), "{err}");
    assert!(
        err.contains("nothing uploaded: 2 of 4 failed the checks"),
        "{err}"
    );
    let listed = |dir: &std::path::Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    assert!(listed(repo.path()).is_empty(), "{:?}", listed(repo.path()));

    let (code, out, err) = pkgsum(
        &["push", dest, &good, &garbage, "--skip-bad", "--json"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("local-name.tgz: uploaded as app-2.0.tgz (pkgin downloads PKGNAME.tgz)"),
        "{err}"
    );
    assert!(
        err.contains("app-2.0.tgz: warning: DEPENDS libdep>=2.0"),
        "{err}"
    );
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["verdict"], "indexed", "{report}");
    let states: Vec<&str> = report["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["refused", "live"]);
    assert!(listed(repo.path()).contains(&"app-2.0.tgz".to_owned()));

    // Another build of app-2.0: refused, then replaced.
    let rebuilt = file(
        "app-again.tgz",
        PackageBuilder::new("app-2.0")
            .member("+COMMENT", "Rebuilt\n")
            .build()
            .unwrap(),
    );
    let (code, _, err) = pkgsum(&["push", dest, &rebuilt], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("app-2.0.tgz holds another file"), "{err}");
    assert!(
        err.contains("not overwritten (--replace replaces it)"),
        "{err}"
    );
    let (code, _, err) = pkgsum(&["push", dest, &rebuilt, &lib, "--replace"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning: DEPENDS"), "{err}");
    let summary = common::decompress(&std::fs::read(repo.path().join("pkg_summary.gz")).unwrap());
    assert!(
        String::from_utf8(summary)
            .unwrap()
            .contains("COMMENT=Rebuilt")
    );
    // The same bytes again: nothing to do, and live.
    let (code, _, err) = pkgsum(&["push", dest, &lib], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("the same bytes are there already"), "{err}");

    // Four files: one listing, not a HEAD each, finds what is taken; the
    // verdicts are the same.
    let other = file(
        "app-third.tgz",
        PackageBuilder::new("app-2.0")
            .member("+COMMENT", "Third\n")
            .build()
            .unwrap(),
    );
    let new_a = file("new-a.tgz", package("new-a-1.0", &[]));
    let new_b = file("new-b.tgz", package("new-b-1.0", &[]));
    let four = ["push", dest, &other, &lib, &new_a, &new_b];
    let (code, _, err) = pkgsum(&four, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("app-2.0.tgz holds another file"), "{err}");
    assert!(!listed(repo.path()).contains(&"new-a-1.0.tgz".to_owned()));
    let (code, _, err) = pkgsum(&[&four[..], &["--skip-bad"]].concat(), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("libdep-2.0.tgz: the same bytes are there already"),
        "{err}"
    );
    assert!(listed(repo.path()).contains(&"new-b-1.0.tgz".to_owned()));
}

/// `pkgsum poll` on a queue, stopped when dropped (a failed assertion
/// included: a poller left running would hold the test output open).
struct Poller(std::process::Child);

impl Poller {
    fn start(queue: &str) -> Poller {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_pkgsum"))
            .args(["poll", "--wait", "1", queue])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Poller(child)
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// Pushes `files` with the `pkgsum` binary, off the async runtime.
async fn push_with_binary(
    dest: String,
    files: Vec<String>,
    extra: &[&str],
) -> (i32, String, String) {
    let extra: Vec<String> = extra.iter().map(|e| (*e).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let mut args: Vec<&str> = vec!["push", &dest];
        args.extend(files.iter().map(String::as_str));
        args.extend(extra.iter().map(String::as_str));
        pkgsum(&args, &[])
    })
    .await
    .unwrap()
}

/// On LocalStack, with `pkgsum poll` indexing the bucket's real
/// notifications: a push of 20 packages is live, in one generation.
async fn s3_push_is_live_in_one_generation() {
    let store = common::s3_bucket().await;
    let (_sqs, queue) = pkgsum::testing::subscribe(&store).await;
    let poller = Poller::start(&queue);
    let src = tempfile::tempdir().unwrap();
    let files: Vec<String> = (0..20)
        .map(|i| {
            let path = src.path().join(format!("p{i:02}-1.0.tgz"));
            std::fs::write(&path, package(&format!("p{i:02}-1.0"), &[])).unwrap();
            path.to_str().unwrap().to_owned()
        })
        .collect();
    let dest = format!("s3://{}/{PREFIX}", store.bucket());
    let (code, out, err) =
        push_with_binary(dest.clone(), files, &["--json", "--timeout", "60s"]).await;
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let packages = report["packages"].as_array().unwrap();
    assert_eq!(packages.len(), 20);
    assert!(
        packages
            .iter()
            .all(|p| p["state"] == "live" && p["seconds"].as_f64().is_some()),
        "{report}"
    );
    assert!(
        report["release"].as_str().unwrap().ends_with("/20"),
        "{report}"
    );
    // The history entry is written after the summaries: the push may
    // have seen them live a moment before it.
    let config = Config::default();
    let mut history = Vec::new();
    for _ in 0..100 {
        history = Repo::new(&store, PREFIX, &config).history().await.unwrap();
        if !history.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    drop(poller);
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].changes.added.len(), 20);
    // Each object carries its checksum and the release.
    let meta = store
        .head(&format!("{PREFIX}p00-1.0.tgz"))
        .await
        .unwrap()
        .unwrap();
    assert!(meta.metadata.contains_key("pkgsum-sha256"), "{meta:?}");
}

/// A file above `--part-size` goes in a multipart upload (each part
/// checked by the store): stored whole, tagged with its SHA-256 (so the
/// same bytes again are known), replaced only with `--replace` (the
/// completion conditional on the ETag checked), and live.
async fn s3_a_large_file_goes_in_parts() {
    let store = common::s3_bucket().await;
    let (_sqs, queue) = pkgsum::testing::subscribe(&store).await;
    let poller = Poller::start(&queue);
    let src = tempfile::tempdir().unwrap();
    let large = |seed: u64| {
        let mut rng = fastrand::Rng::with_seed(seed);
        let payload: Vec<u8> = (0..11 << 20).map(|_| rng.u8(..)).collect();
        let body = PackageBuilder::new("large-1.0")
            .file("share/large/blob", payload)
            .build()
            .unwrap();
        let path = src.path().join(format!("large-{seed}.tgz"));
        std::fs::write(&path, &body).unwrap();
        (path.to_str().unwrap().to_owned(), body)
    };
    let (first, first_body) = large(1);
    let dest = format!("s3://{}/{PREFIX}", store.bucket());
    let parts = ["--part-size", "5", "--timeout", "60s"];
    let (code, _, err) = push_with_binary(dest.clone(), vec![first.clone()], &parts).await;
    assert_eq!(code, 0, "{err}");
    let key = format!("{PREFIX}large-1.0.tgz");
    let (stored, meta) = store.get(&key).await.unwrap().unwrap();
    assert!(stored == first_body, "the parts were not stored whole");
    assert!(meta.etag.ends_with("-3"), "not three parts: {}", meta.etag);
    let sha256 = pkgsum::store::Checksum::of(&first_body).sha256_hex();
    assert_eq!(meta.metadata.get("pkgsum-sha256"), Some(&sha256));
    // The same bytes again: nothing sent.
    let (code, _, err) = push_with_binary(dest.clone(), vec![first], &parts).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("the same bytes are there already"), "{err}");
    // Other bytes: refused, then replaced.
    let (second, second_body) = large(2);
    let (code, _, err) = push_with_binary(dest.clone(), vec![second.clone()], &parts).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("holds another file"), "{err}");
    let replace = [&parts[..], &["--replace"]].concat();
    let (code, _, err) = push_with_binary(dest, vec![second], &replace).await;
    drop(poller);
    assert_eq!(code, 0, "{err}");
    let (stored, _) = store.get(&key).await.unwrap().unwrap();
    assert!(stored == second_body, "not replaced");
}

/// With no indexer running, the push says what is likely wrong and
/// exits 2.
async fn s3_push_without_an_indexer_says_so() {
    let store = common::s3_bucket().await;
    let src = tempfile::tempdir().unwrap();
    let path = src.path().join("lonely-1.0.tgz");
    std::fs::write(&path, package("lonely-1.0", &[])).unwrap();
    let dest = format!("s3://{}/{PREFIX}", store.bucket());
    let files = vec![path.to_str().unwrap().to_owned()];
    let (code, _, err) = push_with_binary(dest, files, &["--timeout", "2s"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no indexer answered within 2 s: is the function or `pkgsum serve` running? `pkgsum rebuild` indexes now"),
        "{err}"
    );
    assert!(
        err.contains("lonely-1.0.tgz: not in the published summary after 2 s"),
        "{err}"
    );
}

/// A status planted in the bucket (anyone who may write it can) is read
/// bounded and printed escaped: a failure naming the pushed file with a
/// megabyte of terminal escapes becomes one short, escaped line.
async fn s3_a_planted_status_is_bounded_and_escaped() {
    let store = common::s3_bucket().await;
    let src = tempfile::tempdir().unwrap();
    let body = package("planted-1.0", &[]);
    let path = src.path().join("planted-1.0.tgz");
    std::fs::write(&path, &body).unwrap();
    let hostile = format!(
        "\u{1b}[2J\u{1b}]0;owned\u{7}{}",
        "\u{1b}[31mred".repeat(100_000)
    );
    let status = serde_json::json!({
        "generation": 1,
        "failures": [{"file": "planted-1.0.tgz", "size": body.len(), "error": hostile}],
        "publication": {"held": [hostile]},
    });
    let key = format!("{PREFIX}.pkgsum/status.json");
    let planted = bytes::Bytes::from(status.to_string());
    store
        .put(&key, planted, PutOptions::default())
        .await
        .unwrap();
    let dest = format!("s3://{}/{PREFIX}", store.bucket());
    let files = vec![path.to_str().unwrap().to_owned()];
    let (code, out, err) = push_with_binary(dest, files, &["--timeout", "5s", "--json"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        !err.contains('\u{1b}') && !out.contains('\u{1b}'),
        "an escape got through"
    );
    let line = err
        .lines()
        .find(|l| l.contains("uploaded, but the indexer cannot read it: "))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(line.contains("\\u{1b}[2J"), "{line}");
    assert!(line.len() < 8 * 1024, "{} bytes", line.len());
    assert!(out.len() < 16 * 1024, "{} bytes of JSON", out.len());
}

/// Two pushers racing on one key: both checked it absent, one write wins,
/// the other is refused and says why; nothing is clobbered.
async fn two_pushers_racing_on_one_key() {
    use pkgsum::push::upload::{DEFAULT_PART, Sending, Sent, upload};
    let store = common::s3_bucket().await;
    let src = tempfile::tempdir().unwrap();
    let checked = |comment: &str| {
        let body = PackageBuilder::new("race-1.0")
            .member("+COMMENT", format!("{comment}\n"))
            .build()
            .unwrap();
        let path = src.path().join(format!("{comment}.tgz"));
        std::fs::write(&path, &body).unwrap();
        pkgsum::push::Checked {
            path,
            name: "race-1.0.tgz".into(),
            pkgname: "race-1.0".into(),
            record: Vec::new(),
            size: body.len() as u64,
            verdict: None,
            present: false,
            replaces: None,
        }
    };
    let (a, b) = ([checked("first")], [checked("second")]);
    let sending = Sending {
        release: None,
        concurrency: 1,
        part_size: DEFAULT_PART,
    };
    let (sent_a, sent_b) = tokio::join!(
        upload(&store, PREFIX, &a, sending, &()),
        upload(&store, PREFIX, &b, sending, &())
    );
    let outcomes = [&sent_a[0], &sent_b[0]];
    let won = outcomes
        .iter()
        .filter(|s| matches!(s, Sent::Uploaded(_)))
        .count();
    assert_eq!(won, 1, "{outcomes:?}");
    let lost = outcomes.iter().find_map(|s| match s {
        Sent::Failed(why) => Some(why.clone()),
        _ => None,
    });
    assert!(
        lost.unwrap()
            .ends_with("changed since it was checked (another push?): not overwritten")
    );
}

/// A new repository's first pass is a listing, which carries no object
/// metadata: the release tag must still hold the members back.
async fn a_release_is_held_by_a_listing_pass_too() {
    let store = MemoryStore::new();
    let config = Config::default();
    let mut keys = Vec::new();
    for i in 0..5 {
        keys.push(upload_member(&store, &format!("m{i:02}-1"), "first/10").await);
    }
    deliver(&store, "ObjectCreated:Put", &keys[..1], &config).await;
    // That pass listed the bucket (there was no state) and held all five.
    assert_eq!(status(&store).await["releases"][0]["have"], 5);
    assert!(listed(&store).await.is_empty());
    for i in 5..10 {
        keys.push(upload_member(&store, &format!("m{i:02}-1"), "first/10").await);
    }
    deliver(&store, "ObjectCreated:Put", &keys[5..], &config).await;
    assert_eq!(listed(&store).await.len(), 10);
}

/// The same hold from `pkgsum poll`'s passes over real LocalStack
/// notifications: a push while held is indexed but not published (exit
/// 1, saying why), and `resume` publishes it.
async fn s3_a_hold_holds_the_poll_path_too() {
    let store = common::s3_bucket().await;
    let (_sqs, queue) = pkgsum::testing::subscribe(&store).await;
    let poller = Poller::start(&queue);
    let src = tempfile::tempdir().unwrap();
    let file = |name: &str| {
        let path = src.path().join(format!("{name}.tgz"));
        std::fs::write(&path, package(name, &[])).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let dest = format!("s3://{}/{PREFIX}", store.bucket());
    let first = push_with_binary(dest.clone(), vec![file("a-1.0")], &["--timeout", "60s"]).await;
    assert_eq!(first.0, 0, "{}", first.2);
    let config = Config::default();
    Repo::new(&store, PREFIX, &config)
        .hold("poll test")
        .await
        .unwrap();
    let held = push_with_binary(dest.clone(), vec![file("b-1.0")], &["--timeout", "60s"]).await;
    let resumed = Repo::new(&store, PREFIX, &config).resume().await;
    let summary = listed(&store).await;
    let history = Repo::new(&store, PREFIX, &config).history().await.unwrap();
    drop(poller);
    // Who uploaded, as LocalStack's notifications name the principal.
    let who: Vec<&Vec<String>> = history.iter().map(|e| &e.changes.who).collect();
    eprintln!("who: {who:?}");
    assert!(
        !who.is_empty() && who.iter().all(|w| w.len() == 1),
        "{history:?}"
    );
    assert_eq!(held.0, 1, "{}", held.2);
    assert!(
        held.2
            .contains("b-1.0.tgz: indexed, but not published: publication is held (poll test"),
        "{}",
        held.2
    );
    assert!(resumed.unwrap().closed.is_empty());
    assert_eq!(summary, ["a-1.0", "b-1.0"]);
}

/// Files planted under `.pkgsum/history/` (anyone with write access can)
/// are read bounded and quoted escaped: a garbage entry, one over 1 MiB,
/// one whose key and generation disagree are skipped; control characters
/// in names print escaped; a rollback to a planted generation with no
/// kept summary is refused, naming the file.
fn planted_history_is_bounded_and_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    std::fs::write(dir.path().join("a-1.tgz"), package("a-1", &[])).unwrap();
    assert_eq!(pkgsum(&["index", path], &[]).0, 0);
    let history = dir.path().join(".pkgsum/history");
    let entry = |generation: u64, added: &str| {
        serde_json::json!({
            "generation": generation, "time": 0, "packages": 1, "select": "all",
            "previous": 0, "note": null,
            "changes": {"added": [added], "removed": [], "replaced": [], "more": 0, "complete": true},
        })
        .to_string()
    };
    std::fs::write(history.join(format!("{:020}.json", 90)), b"{not json").unwrap();
    let huge = entry(91, &"x".repeat(2 << 20));
    std::fs::write(history.join(format!("{:020}.json", 91)), huge).unwrap();
    std::fs::write(history.join(format!("{:020}.json", 92)), entry(7, "liar-1")).unwrap();
    std::fs::write(
        history.join(format!("{:020}.json", 93)),
        entry(93, "evil\u{1b}[2J\nINFO forged"),
    )
    .unwrap();
    std::fs::write(history.join("93.json"), entry(93, "short-key")).unwrap();
    let (code, out, err) = pkgsum(&["history", path], &[]);
    assert_eq!(code, 0, "{err}");
    let generations: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("generation "))
        .collect();
    assert_eq!(generations.len(), 2, "{out}");
    assert!(
        !out.contains('\u{1b}') && !out.contains("\nINFO forged"),
        "{out}"
    );
    assert!(out.contains(r"evil\u{1b}[2J\nINFO forged"), "{out}");
    assert!(
        !out.contains("liar-1") && !out.contains("short-key"),
        "{out}"
    );
    let (code, _, err) = pkgsum(&["rollback", path, "--to", "93"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("the history of generation 93 has no pkg_summary.gz"),
        "{err}"
    );
}

use common::pkgsum;

/// The same from the command line on a directory: `hold`, `index` (exit
/// 1, saying why), `verify` (exit 1), `resume`, then all clean.
fn a_directory_is_held_and_resumed_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    for name in ["a-1", "b-1"] {
        std::fs::write(dir.path().join(format!("{name}.tgz")), package(name, &[])).unwrap();
    }
    let (code, _, err) = pkgsum(&["index", path], &[]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = pkgsum(&["hold", path, "--reason", "freeze"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("held at generation"), "{err}");
    std::fs::write(dir.path().join("c-1.tgz"), package("c-1", &[])).unwrap();
    let (code, _, err) = pkgsum(&["index", path], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("not published: publication is held (freeze, since "),
        "{err}"
    );
    let (code, out, _) = pkgsum(&["verify", path], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not published: publication is held"), "{out}");
    let summary = std::fs::read(dir.path().join("pkg_summary.gz")).unwrap();
    assert!(
        !String::from_utf8(common::decompress(&summary))
            .unwrap()
            .contains("c-1")
    );
    let (code, _, err) = pkgsum(&["resume", path], &[]);
    assert_eq!(code, 0, "{err}");
    let summary = std::fs::read(dir.path().join("pkg_summary.gz")).unwrap();
    assert!(
        String::from_utf8(common::decompress(&summary))
            .unwrap()
            .contains("PKGNAME=c-1")
    );
    let (code, out, err) = pkgsum(&["verify", path], &[]);
    assert_eq!(code, 0, "{out}{err}");
    // A setting out of range is refused, naming it.
    let (code, _, err) = pkgsum(&["index", path], &[("PKGSUM_MAX_SHRINK", "250")]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("PKGSUM_MAX_SHRINK=\"250\": expected a percentage, 0 to 100"),
        "{err}"
    );
    // Holding a directory never indexed is refused.
    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = pkgsum(&["hold", empty.path().to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no state to hold or resume"), "{err}");
}

/// `pkgsum history` and `pkgsum rollback` on a directory: the rolled-back
/// summary is the kept one, with an mtime a second later than the one it
/// replaces; a refused rollback names the missing file and exits 2.
fn a_directory_is_rolled_back_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let write = |name: &str, body: Vec<u8>| {
        std::fs::write(dir.path().join(format!("{name}.tgz")), body).unwrap()
    };
    write("a-1", package("a-1", &[]));
    assert_eq!(pkgsum(&["index", path], &[]).0, 0);
    write("b-1", package("b-1", &[]));
    assert_eq!(pkgsum(&["index", path], &[]).0, 0);
    let kept = std::fs::read(dir.path().join("pkg_summary.gz")).unwrap();
    write("c-1", package("c-1", &[]));
    assert_eq!(pkgsum(&["index", path], &[]).0, 0);
    let (code, out, err) = pkgsum(&["history", path], &[]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("generation "))
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[1].contains("2 packages  +1 -0 ~0"), "{out}");
    assert!(out.contains("  added: b-1\n"), "{out}");
    let generation = |line: &str| line.split_whitespace().nth(1).unwrap().to_owned();
    let second = generation(lines[1]);
    let (code, json, _) = pkgsum(&["history", path, "--json", "--last", "1"], &[]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json[0]["changes"]["added"], serde_json::json!(["c-1"]));

    let mtime = |p: &std::path::Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let summary = dir.path().join("pkg_summary.gz");
    let before = mtime(&summary);
    let (code, _, err) = pkgsum(&["rollback", path, "--to", &second], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("publication is held until `pkgsum resume`"),
        "{err}"
    );
    assert_eq!(std::fs::read(&summary).unwrap(), kept);
    let seconds = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    assert!(
        seconds(mtime(&summary)) > seconds(before),
        "pkgin would keep its cached summary"
    );
    assert_eq!(pkgsum(&["verify", path], &[]).0, 1);

    std::fs::remove_file(dir.path().join("a-1.tgz")).unwrap();
    let (code, _, err) = pkgsum(&["rollback", path, "--to", &second], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "lists 1 file gone from the bucket, so clients could not install them: a-1.tgz"
        ),
        "{err}"
    );
}

crate::harness::trials![
    test planted_history_is_bounded_and_escaped,
    s3 s3_a_hold_holds_the_poll_path_too,
    tokio a_release_is_held_by_a_listing_pass_too,
    test push_checks_before_it_copies,
    s3 s3_push_is_live_in_one_generation,
    s3 s3_a_large_file_goes_in_parts,
    s3 s3_push_without_an_indexer_says_so,
    s3 s3_a_planted_status_is_bounded_and_escaped,
    s3 two_pushers_racing_on_one_key,
    tokio memory_a_release_is_published_whole,
    s3 s3_a_release_is_published_whole,
    tokio an_incomplete_release_is_reported_after_the_timeout,
    test a_directory_is_rolled_back_from_the_command_line,
    tokio memory_history_and_rollback,
    tokio a_torn_read_while_waiting_is_read_again,
    s3 s3_history_and_rollback,
    tokio the_history_keeps_the_newest_generations,
    rgw rgw_gates_history_and_rollback,
    seaweedfs seaweedfs_history_and_rollback,
    tokio memory_newest_lists_one_version_in_dewey_order,
    s3 s3_newest_lists_one_version_in_dewey_order,
    tokio memory_a_shrink_is_held_until_resumed,
    s3 s3_a_shrink_is_held_until_resumed,
    tokio memory_a_hold_stops_publication_until_resumed,
    s3 s3_a_hold_stops_publication_until_resumed,
    tokio required_and_unresolved_hold_until_mended,
    test a_directory_is_held_and_resumed_from_the_command_line,
];
