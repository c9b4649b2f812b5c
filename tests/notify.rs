//! The real thing on LocalStack: packages uploaded to a bucket, S3's own
//! notifications read from SQS, handled in Lambda-sized batches, and the
//! published summaries compared byte for byte.

use crate::common;

use std::collections::BTreeSet;
use std::fs;
use std::time::{Duration, Instant};

use pkgsum::compression::Compression;
use pkgsum::config::Config;
use pkgsum::create::PackageBuilder;
use pkgsum::dispatch::apply_messages;
use pkgsum::store::s3::S3Store;
use pkgsum::store::{PutOptions, Store};
use pkgsum::testing::{Child, invoke_lambda, lambda_emulator};
use serde_json::{Value, json};

/// Receives messages until `records` S3 records have arrived (the test
/// event included in what is returned, as a real queue delivers it).
async fn receive(sqs: &aws_sdk_sqs::Client, url: &str, records: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut messages, mut seen) = (Vec::new(), 0);
    while seen < records {
        assert!(
            Instant::now() < deadline,
            "only {seen} of {records} notifications arrived"
        );
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for message in out.messages() {
            let body = message.body().unwrap_or_default().to_owned();
            let parsed: Value = serde_json::from_str(&body).unwrap();
            seen += parsed["Records"].as_array().map_or(0, Vec::len);
            messages.push(json!({
                "messageId": message.message_id(),
                "receiptHandle": message.receipt_handle(),
                "eventSource": "aws:sqs",
                "body": body,
            }));
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    messages
}

/// Runs the messages through the handler in batches of ten, as Lambda's
/// SQS event source does by default.
async fn handle_batches(store: &S3Store, messages: Vec<Value>, config: &Config) {
    for batch in messages.chunks(10) {
        let event = json!({ "Records": batch });
        let decoded = pkgsum::event::decode(&event);
        let outcome = apply_messages(&decoded, |_| store.clone(), config).await;
        assert!(outcome.is_success(), "{:?}", outcome.errors);
        assert!(outcome.failed_messages.is_empty());
    }
}

async fn assert_formats(store: &S3Store, prefix: &str, want: &[u8]) {
    for format in [Compression::Gzip, Compression::Bzip2, Compression::Xz] {
        let key = pkgsum::repo::output_key(prefix, format);
        assert!(
            common::published(store, &key).await == want,
            "{key} differs"
        );
        let meta = store.head(&key).await.unwrap().unwrap();
        assert!(meta.metadata.contains_key(pkgsum::repo::GENERATION));
    }
    let zst = pkgsum::repo::output_key(prefix, Compression::Zstd);
    assert!(store.head(&zst).await.unwrap().is_none());
}

async fn uploads_and_deletes_through_real_notifications_give_exact_summaries() {
    let store = common::s3_bucket().await;
    let (sqs, url) = common::subscribe(&store).await;
    let config = Config::default();
    let oracle = common::oracle();

    // Two repositories in one bucket, and a file that is not a package.
    let mut uploads = Vec::new();
    for entry in fs::read_dir(&oracle).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "tgz") {
            uploads.push((
                format!("All/{}", path.file_name().unwrap().to_str().unwrap()),
                path,
            ));
        }
    }
    for name in ["app-1.0.tgz", "libdep-0.9.tgz", "libdep-1.2.tgz"] {
        uploads.push((format!("repo/{name}"), oracle.join("repo").join(name)));
    }
    for (key, path) in &uploads {
        store
            .put(key, fs::read(path).unwrap().into(), PutOptions::default())
            .await
            .unwrap();
    }
    store
        .put(
            "All/README.txt",
            "not a package".into(),
            PutOptions::default(),
        )
        .await
        .unwrap();

    let messages = receive(&sqs, &url, uploads.len()).await;
    handle_batches(&store, messages, &config).await;
    assert_formats(
        &store,
        "All/",
        &fs::read(oracle.join("all.expected")).unwrap(),
    )
    .await;
    assert_formats(
        &store,
        "repo/",
        &fs::read(oracle.join("repo/all.expected")).unwrap(),
    )
    .await;

    // Deletes and an overwrite, through the same path.
    store.delete("All/scripts-3.1.tgz").await.unwrap();
    store.delete("repo/libdep-0.9.tgz").await.unwrap();
    let body = PackageBuilder::new("minimal-1.0")
        .member("+COMMENT", "Overwritten\n")
        .build()
        .unwrap();
    store
        .put("All/minimal-1.0.tgz", body.into(), PutOptions::default())
        .await
        .unwrap();
    let messages = receive(&sqs, &url, 3).await;
    handle_batches(&store, messages, &config).await;
    for prefix in ["All/", "repo/"] {
        let want = common::truth(&store, prefix, ".tgz").await;
        assert_formats(&store, prefix, &want).await;
    }
    let all = common::published(&store, "All/pkg_summary.gz").await;
    let names: BTreeSet<Vec<u8>> = common::split_records(&all)
        .iter()
        .map(|r| pkgsum::record::pkgname(r).unwrap().to_vec())
        .collect();
    assert!(!names.contains(&b"scripts-3.1"[..]));
    assert_eq!(names.len(), 15);
}

/// Sends a payload through `cargo lambda invoke` to the function behind
/// the emulated runtime API and returns its answer.
fn invoke_through_runtime(port: u16, payload: &Value) -> Value {
    let out = invoke_lambda(port, payload);
    assert!(
        out.status.success(),
        "cargo lambda invoke failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "invoke answered {:?}: {e}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

async fn the_function_runs_behind_the_real_lambda_runtime_api() {
    let store = common::s3_bucket().await;
    let (sqs, url) = common::subscribe(&store).await;
    let port = 9100 + (std::process::id() % 500) as u16;
    let _emulator = lambda_emulator(port);
    let logs = tempfile::tempdir().unwrap();
    let function_log = logs.path().join("function.log");
    let _function = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_pkgsum-lambda"))
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("PKGSUM_FORMATS", "gz,bz2,xz")
            .stdout(fs::File::create(&function_log).unwrap())
            .spawn()
            .unwrap(),
    );

    let oracle = common::oracle();
    common::upload_oracle(
        &store,
        "All/",
        &["meta-deps-2.3nb1.tgz", "rich-buildinfo-4.5.6nb2.tgz"],
    )
    .await;
    let mut records = receive(&sqs, &url, 2).await;
    // One message naming a bucket that does not exist: only it fails.
    let bad = common::s3_event(
        "no-such-bucket-pkgsum",
        "ObjectCreated:Put",
        &["All/x-1.tgz"],
    );
    records.push(json!({"messageId": "doomed", "eventSource": "aws:sqs", "body": bad.to_string()}));
    let answer = tokio::task::spawn_blocking(move || {
        invoke_through_runtime(port, &json!({ "Records": records }))
    })
    .await
    .unwrap();
    assert_eq!(
        answer,
        json!({"batchItemFailures": [{"itemIdentifier": "doomed"}]})
    );
    let want = [
        fs::read(oracle.join("meta-deps-2.3nb1.tgz.expected")).unwrap(),
        fs::read(oracle.join("rich-buildinfo-4.5.6nb2.tgz.expected")).unwrap(),
    ]
    .concat();
    assert_formats(&store, "All/", &want).await;

    // The scheduled reconcile payload, after a delete nobody announced.
    store.delete("All/meta-deps-2.3nb1.tgz").await.unwrap();
    let _ = receive(&sqs, &url, 1).await;
    let payload =
        json!({"pkgsum": "reconcile", "repositories": [format!("s3://{}/All/", store.bucket())]});
    let answer = tokio::task::spawn_blocking(move || invoke_through_runtime(port, &payload))
        .await
        .unwrap();
    assert_eq!(answer["reconciled"][0]["removed"], 1, "{answer}");
    assert_eq!(answer["reconciled"][0]["unreadable"], 0, "{answer}");
    assert_eq!(answer["verdict"], "indexed", "{answer}");
    let want = fs::read(oracle.join("rich-buildinfo-4.5.6nb2.tgz.expected")).unwrap();
    assert_formats(&store, "All/", &want).await;

    // A reconcile naming no repository fails by name, in one line, and
    // the function's log holds no Debug dump of it.
    let payload = json!({"pkgsum": "reconcile"});
    let out = tokio::task::spawn_blocking(move || invoke_lambda(port, &payload))
        .await
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr).replace(['\n', '│'], " ");
    let said = said.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(said.contains("pkgsum::NoRepositories"), "{said}");
    assert!(said.contains("reconcile: no repositories given"), "{said}");
    let log = fs::read_to_string(&function_log).unwrap();
    assert!(
        log.contains("pkgsum::NoRepositories: reconcile: no repositories"),
        "{log}"
    );
    assert!(
        !log.contains("Diagnostic {") && !log.contains("alloc::boxed"),
        "{log}"
    );
}

/// `pkgsum poll` on a queue fed by the bucket's own notifications: what
/// can be applied is applied and deleted; what cannot stays for SQS to
/// deliver again; SIGTERM ends it between batches.
async fn poll_consumes_the_queue_as_lambdas_event_source_does() {
    let store = common::s3_bucket().await;
    let (sqs, url) = common::subscribe(&store).await;
    let oracle = common::oracle();
    common::upload_oracle(&store, "All/", &["minimal-1.0.tgz", "scripts-3.1.tgz"]).await;
    store
        .put(
            "All/bad-1.0.tgz",
            b"\x1f\x8bjunk".to_vec().into(),
            PutOptions::default(),
        )
        .await
        .unwrap();
    // A message naming a bucket that does not exist cannot be applied.
    let doomed = common::s3_event(
        "no-such-bucket-pkgsum",
        "ObjectCreated:Put",
        &["All/x-1.tgz"],
    );
    sqs.send_message()
        .queue_url(&url)
        .message_body(doomed.to_string())
        .send()
        .await
        .unwrap();

    let queue = url.clone();
    let poll = move |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_pkgsum"))
            .args(["poll", "--wait", "1", "--visibility-timeout", "3"])
            .args(extra)
            .arg(&queue)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let drain = poll.clone();
    let out = tokio::task::spawn_blocking(move || drain(&["--until-empty"]).wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // The doomed message makes the drain exit 2, after the rest applied.
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bad-1.0.tgz: truncated: the gzip stream ended"),
        "{err}"
    );
    assert!(
        err.contains("the bucket \"no-such-bucket-pkgsum\" does not exist"),
        "{err}"
    );
    assert!(err.contains("1 left for redelivery"), "{err}");
    let want = [
        fs::read(oracle.join("minimal-1.0.tgz.expected")).unwrap(),
        fs::read(oracle.join("scripts-3.1.tgz.expected")).unwrap(),
    ]
    .concat();
    assert_formats(&store, "All/", &want).await;

    // Only the doomed message is left, back once its visibility ends.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let left = sqs
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    let bodies: Vec<&str> = left.messages().iter().filter_map(|m| m.body()).collect();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert!(bodies[0].contains("no-such-bucket-pkgsum"));
    sqs.delete_message()
        .queue_url(&url)
        .receipt_handle(left.messages()[0].receipt_handle().unwrap())
        .send()
        .await
        .unwrap();

    // As a service: SIGTERM stops it, with exit 0.
    let child = poll(&[]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("stopping after the batch at hand"), "{err}");
}

crate::harness::trials![
    s3 uploads_and_deletes_through_real_notifications_give_exact_summaries,
    lambda the_function_runs_behind_the_real_lambda_runtime_api,
    s3 poll_consumes_the_queue_as_lambdas_event_source_does,
];
