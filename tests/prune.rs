//! `pkgsum prune`: retention that cannot break a client, on memory,
//! LocalStack and a directory (through the binary). The corpus's string
//! order is not dewey order, one package stays only because a package
//! that stays depends on it, one only because a generation within the
//! grace window listed it, and one is written again between the
//! judgement and the delete.

use crate::common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use pkgsum::config::Config;
use pkgsum::create::PackageBuilder;
use pkgsum::dispatch::apply_messages;
use pkgsum::event;
use pkgsum::prune::{self, PruneOptions};
use pkgsum::repo::Repo;
use pkgsum::retention::{Reason, Rules};
use pkgsum::select::Select;
use pkgsum::store::memory::MemoryStore;
use pkgsum::store::{PutOptions, Store};

const BUCKET: &str = "repo-bucket";
const PREFIX: &str = "All/";
const DAY: u64 = 86_400;

/// A package whose +BUILD_INFO says `date`, depending on `depends`, with
/// `comment` (to make other bytes of the same package).
fn package(pkgname: &str, date: &str, depends: &[&str], comment: &str) -> Vec<u8> {
    let base = pkgname.rsplit_once('-').map_or(pkgname, |(b, _)| b);
    let deps: String = depends.iter().map(|d| format!("@pkgdep {d}\n")).collect();
    let build_info = format!(
        "BUILD_DATE={date}\nMACHINE_ARCH=x86_64\nOPSYS=NetBSD\nOS_VERSION=10.1\n\
         PKGPATH=misc/{base}\nPKGTOOLS_VERSION=20250417\n"
    );
    PackageBuilder::new(pkgname)
        .member("+CONTENTS", format!("@name {pkgname}\n{deps}"))
        .member("+BUILD_INFO", build_info)
        .member("+COMMENT", format!("{comment}\n"))
        .build()
        .unwrap()
}

const EARLY: &str = "2026-01-01 00:00:00 +0000";
const LATE: &str = "2026-02-01 00:00:00 +0000";

/// The first upload: versions of foo, two of lib, and app needing the
/// older lib. Under `newest` the summary lists foo-1.0nb1, lib-2.0 and
/// app-1.0.
fn first_batch() -> Vec<(String, Vec<u8>)> {
    let mut batch: Vec<(String, Vec<u8>)> = ["1.0alpha", "1.0", "1.0nb1"]
        .iter()
        .map(|v| {
            let name = format!("foo-{v}");
            (format!("{name}.tgz"), package(&name, EARLY, &[], "foo"))
        })
        .collect();
    batch.push(("lib-1.0.tgz".into(), package("lib-1.0", EARLY, &[], "lib")));
    batch.push(("lib-2.0.tgz".into(), package("lib-2.0", EARLY, &[], "lib")));
    let app = package("app-1.0", EARLY, &["lib<2"], "app");
    batch.push(("app-1.0.tgz".into(), app));
    batch
}

/// The second: 1.0.1 and 1.0pl1, equal in dewey order, the later
/// BUILD_DATE on 1.0pl1.
fn second_batch() -> Vec<(String, Vec<u8>)> {
    vec![
        (
            "foo-1.0.1.tgz".into(),
            package("foo-1.0.1", EARLY, &[], "foo"),
        ),
        (
            "foo-1.0pl1.tgz".into(),
            package("foo-1.0pl1", LATE, &[], "foo"),
        ),
    ]
}

/// Uploads `batch` and delivers one notification of it.
async fn publish<S: Store>(store: &S, batch: Vec<(String, Vec<u8>)>, config: &Config) {
    let mut keys = Vec::new();
    for (name, body) in batch {
        let key = format!("{PREFIX}{name}");
        store
            .put(&key, Bytes::from(body), PutOptions::default())
            .await
            .unwrap();
        keys.push(key);
    }
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let messages = event::decode(&common::s3_event(BUCKET, "ObjectCreated:Put", &refs));
    let outcome = apply_messages(&messages, |_| store, config).await;
    assert!(outcome.is_success(), "{:?}", outcome.errors);
}

fn newest() -> Config {
    let mut config = Config::default();
    config.gates.select = Select::Newest;
    config
}

fn keep(n: usize, grace_days: u64) -> PruneOptions {
    PruneOptions {
        rules: Rules {
            keep: Some(n),
            older_than: None,
        },
        grace: Duration::from_secs(grace_days * DAY),
    }
}

/// Each file and why, as "name: goes|stays (reason)".
fn verdicts(plan: &prune::Plan) -> BTreeMap<String, (bool, Reason)> {
    plan.judged
        .iter()
        .map(|j| (j.name.clone(), (j.goes, j.why.clone())))
        .collect()
}

async fn retention_keeps_what_clients_need<S: Store>(store: &S) {
    let config = newest();
    let repo = Repo::new(store, PREFIX, &config);
    publish(store, first_batch(), &config).await;
    publish(store, second_batch(), &config).await;

    let plan = prune::judge(&repo, keep(1, 30), SystemTime::now())
        .await
        .unwrap();
    let found = verdicts(&plan);
    let going: Vec<&str> = plan.going().map(|j| j.name.as_str()).collect();
    assert_eq!(going, ["foo-1.0.tgz", "foo-1.0alpha.tgz"], "{found:#?}");
    assert!(matches!(
        &found["foo-1.0pl1.tgz"],
        (false, Reason::Newest { rank: 1, .. })
    ));
    // Equal in dewey order to 1.0pl1; the summary lists it.
    assert_eq!(found["foo-1.0.1.tgz"], (false, Reason::Listed));
    assert!(matches!(
        &found["foo-1.0nb1.tgz"],
        (false, Reason::Grace { .. })
    ));
    assert_eq!(
        found["lib-1.0.tgz"],
        (
            false,
            Reason::Needed {
                by: "app-1.0.tgz".into(),
                pattern: "lib<2".into()
            }
        )
    );
    let sizes: u64 = plan.going().map(|j| j.size).sum();
    assert_eq!(plan.bytes(), sizes);
    assert!(sizes > 0);
    // A dry run deletes nothing.
    for name in going {
        let key = format!("{PREFIX}{name}");
        assert!(store.head(&key).await.unwrap().is_some(), "{name}");
    }

    // foo-1.0 is written again between the judgement and the delete.
    let rebuilt = package("foo-1.0", EARLY, &[], "foo, rebuilt");
    let key = format!("{PREFIX}foo-1.0.tgz");
    store
        .put(&key, Bytes::from(rebuilt), PutOptions::default())
        .await
        .unwrap();
    let pruned = prune::apply(&repo, &plan, &()).await.unwrap();
    assert_eq!(pruned.deleted, ["foo-1.0alpha.tgz"]);
    assert_eq!(
        pruned.kept,
        [(
            "foo-1.0.tgz".to_owned(),
            "written again since it was judged".to_owned()
        )]
    );
    assert!(store.head(&key).await.unwrap().is_some());
    let gone = format!("{PREFIX}foo-1.0alpha.tgz");
    assert!(store.head(&gone).await.unwrap().is_none());
    // The deletes reached the index.
    let state = repo.read_state().await.unwrap();
    assert!(state.package("foo-1.0alpha.tgz").is_none());
    assert!(state.package("foo-1.0.tgz").is_some());

    // Not indexed as it is now: judged once the indexer has read it.
    let plan = prune::judge(&repo, keep(1, 0), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(verdicts(&plan)["foo-1.0.tgz"], (false, Reason::Changed));
    // Indexed, and with no grace window, what only the history kept goes.
    repo.apply(
        pkgsum::repo::Scope::Names(&["foo-1.0.tgz".to_owned()].into()),
        &(),
    )
    .await
    .unwrap();
    let plan = prune::judge(&repo, keep(1, 0), SystemTime::now())
        .await
        .unwrap();
    let going: Vec<&str> = plan.going().map(|j| j.name.as_str()).collect();
    assert_eq!(going, ["foo-1.0.tgz", "foo-1.0nb1.tgz"]);
    let pruned = prune::apply(&repo, &plan, &()).await.unwrap();
    assert_eq!(pruned.deleted, ["foo-1.0.tgz", "foo-1.0nb1.tgz"]);
    // What clients need is all still there.
    for name in ["foo-1.0pl1", "foo-1.0.1", "lib-1.0", "lib-2.0", "app-1.0"] {
        let key = format!("{PREFIX}{name}.tgz");
        assert!(store.head(&key).await.unwrap().is_some(), "{name}");
    }
}

async fn memory_retention_keeps_what_clients_need() {
    retention_keeps_what_clients_need(&MemoryStore::new()).await;
}

async fn s3_retention_keeps_what_clients_need() {
    Box::pin(retention_keeps_what_clients_need(
        &common::s3_bucket().await,
    ))
    .await;
}

/// A history that does not reach back over the grace window keeps every
/// file uploaded before it begins.
async fn a_short_history_keeps_older_files() {
    let store = MemoryStore::new();
    let mut config = newest();
    config.history = 1;
    let repo = Repo::new(&store, PREFIX, &config);
    publish(&store, first_batch(), &config).await;
    publish(&store, second_batch(), &config).await;
    let plan = prune::judge(&repo, keep(1, 30), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(plan.going().count(), 0);
    assert!(matches!(
        verdicts(&plan)["foo-1.0alpha.tgz"],
        (false, Reason::Unknown { .. })
    ));
}

/// The scheduled reconcile prunes when a rule is set, and not otherwise.
async fn s3_the_scheduled_reconcile_prunes_when_told() {
    let store = common::s3_bucket().await;
    let mut config = newest();
    publish(&store, first_batch(), &config).await;
    publish(&store, second_batch(), &config).await;
    let payload = serde_json::json!({
        "pkgsum": "reconcile",
        "repositories": [format!("s3://{}/{PREFIX}", store.bucket())],
    });
    let answer = pkgsum::payload::apply_payload(&payload, |_| store.clone(), &config)
        .await
        .unwrap();
    assert_eq!(answer["reconciled"][0]["pruned"], serde_json::Value::Null);
    config.prune = keep(1, 30);
    let answer = pkgsum::payload::apply_payload(&payload, |_| store.clone(), &config)
        .await
        .unwrap();
    let pruned = &answer["reconciled"][0]["pruned"];
    assert_eq!(
        pruned["deleted"],
        serde_json::json!(["foo-1.0.tgz", "foo-1.0alpha.tgz"]),
        "{answer}"
    );
    assert_eq!(pruned["kept"], 3, "{answer}");
    let gone = format!("{PREFIX}foo-1.0.tgz");
    assert!(store.head(&gone).await.unwrap().is_none());
}

fn pkgsum(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pkgsum"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// A directory is judged, pruned and indexed by the binary in one run.
fn directory_is_pruned_and_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let env = [("PKGSUM_SELECT", "newest")];
    for (name, body) in first_batch().into_iter().chain(second_batch()) {
        std::fs::write(dir.path().join(name), body).unwrap();
    }
    let out = pkgsum(&["index", path], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let none = pkgsum(&["prune", path], &env);
    assert_eq!(none.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&none.stderr);
    assert!(
        stderr.contains("--keep N, --older-than DURATION"),
        "{stderr}"
    );

    let dry = pkgsum(&["prune", path, "--keep", "1", "--grace", "0s"], &env);
    assert_eq!(dry.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&dry.stdout);
    let going: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("would go"))
        .collect();
    assert_eq!(going.len(), 3, "{stdout}");
    assert!(
        going[0].starts_with("would go: foo-1.0.tgz (")
            && going[0].ends_with("): version 4 of misc/foo, past the newest 1"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "kept: lib-1.0.tgz: the newest package left satisfying DEPENDS lib<2 of app-1.0.tgz"
        ),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&dry.stderr);
    assert!(stderr.contains("3 files would go"), "{stderr}");
    assert!(dir.path().join("foo-1.0alpha.tgz").exists());

    // Nothing is old enough under --older-than as well.
    let young = pkgsum(
        &[
            "prune",
            path,
            "--keep",
            "1",
            "--older-than",
            "1d",
            "--apply",
        ],
        &env,
    );
    assert_eq!(young.status.code(), Some(0));
    assert!(dir.path().join("foo-1.0alpha.tgz").exists());

    let json = pkgsum(
        &[
            "prune", path, "--keep", "1", "--grace", "0s", "--apply", "--json",
        ],
        &env,
    );
    assert_eq!(
        json.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        answer["deleted"],
        serde_json::json!(["foo-1.0.tgz", "foo-1.0alpha.tgz", "foo-1.0nb1.tgz"])
    );
    for name in ["foo-1.0.tgz", "foo-1.0alpha.tgz", "foo-1.0nb1.tgz"] {
        assert!(!dir.path().join(name).exists(), "{name}");
    }
    // The index agrees with the directory.
    let verify = pkgsum(&["verify", path], &env);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}

crate::harness::trials!(
    tokio memory_retention_keeps_what_clients_need,
    s3 s3_retention_keeps_what_clients_need,
    tokio a_short_history_keeps_older_files,
    s3 s3_the_scheduled_reconcile_prunes_when_told,
    test directory_is_pruned_and_indexed,
);
