//! The real thing on LocalStack: packages uploaded to a bucket, S3's own
//! notifications read from SQS, handled in Lambda-sized batches, and the
//! published summaries compared byte for byte.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::time::{Duration, Instant};

use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter,
    QueueConfiguration, S3KeyFilter,
};
use pkgsum::compression::Compression;
use pkgsum::handler::handle;
use pkgsum::repo::Config;
use pkgsum::store::s3::S3Store;
use pkgsum::store::{PutOptions, Store};
use pkgsum::testkit::PackageBuilder;
use serde_json::{Value, json};

/// A queue receiving the bucket's `.tgz` created/removed notifications.
async fn subscribe(store: &S3Store) -> (aws_sdk_sqs::Client, String) {
    let config = aws_config::load_from_env().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let url = sqs
        .create_queue()
        .queue_name(format!("{}-events", store.bucket()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let arn =
        attrs.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
    let filter = NotificationConfigurationFilter::builder()
        .key(
            S3KeyFilter::builder()
                .filter_rules(
                    FilterRule::builder()
                        .name(FilterRuleName::Suffix)
                        .value(".tgz")
                        .build(),
                )
                .build(),
        )
        .build();
    let queue = QueueConfiguration::builder()
        .queue_arn(arn)
        .events(Event::from("s3:ObjectCreated:*"))
        .events(Event::from("s3:ObjectRemoved:*"))
        .filter(filter)
        .build()
        .unwrap();
    store
        .client()
        .put_bucket_notification_configuration()
        .bucket(store.bucket())
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(queue)
                .build(),
        )
        .send()
        .await
        .unwrap();
    (sqs, url)
}

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
        let outcome = handle(&decoded, |_| store.clone(), config).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_and_deletes_through_real_notifications_give_exact_summaries() {
    let Some(store) = common::s3_bucket().await else {
        return;
    };
    let (sqs, url) = subscribe(&store).await;
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
