//! What only tests and benchmarks use, behind the `testing` feature: the
//! LocalStack, Ceph RGW and SeaweedFS helpers below, and [`signing`]
//! (keys, certificates and signed packages made on the spot). The store conformance suite and the store
//! wrappers that count or fail requests are in [`crate::store`], beside
//! the trait, under the same feature.
//!
//! Panics rather than returning errors: a failure here is a broken test
//! setup, to be seen at once.

pub mod hostile;
pub mod signing;

/// The flags headless Chromium is started with in tests and benchmarks:
/// no sandbox (it runs as root here), and nothing that reaches for the
/// network on its own (this machine's network is closed to it).
pub const CHROMIUM_FLAGS: [&str; 8] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// Seeds the repository at `prefix` of `store` with `count` packages,
/// the `i`th record made by `record(i)`: its state and its published
/// outputs, as earlier events would have left them. The state, for what
/// a benchmark does next.
pub async fn seed<S: crate::store::Store>(
    store: &S,
    prefix: &str,
    count: usize,
    record: impl Fn(usize) -> (String, Vec<u8>),
    config: &crate::config::Config,
) -> crate::state::State {
    use crate::state::{Change, Package, State};
    let mut state = State::default();
    state.apply((0..count).map(|i| {
        let (name, record) = record(i);
        Change::Indexed {
            name,
            package: Package {
                size: 4096 + i as u64,
                record,
                token: format!("{i:032x}"),
                warnings: Vec::new(),
            },
            verdict: None,
        }
    }));
    let repo = crate::repo::Repo::new(store, prefix, config);
    repo.replace_state(&mut state).await.expect("seed state");
    repo.publish(&mut state).await.expect("seed outputs");
    state
}

/// A fresh bucket on the S3 endpoint `scripts/test` provides (LocalStack;
/// the harness runs S3 tests only there).
pub async fn s3_bucket() -> crate::store::s3::S3Store {
    new_bucket(
        crate::store::s3::client_from_env().await,
        "LocalStack",
        "pkgsum-test",
    )
    .await
}

/// Creates a bucket named `stem` and a random suffix through `client`;
/// `server` names the store in the panic message.
async fn new_bucket(
    client: aws_sdk_s3::Client,
    server: &str,
    stem: &str,
) -> crate::store::s3::S3Store {
    let bucket = format!("{stem}-{:016x}", fastrand::u64(..));
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating bucket {bucket} on {server}: {e:?}"));
    crate::store::s3::S3Store::new(client, bucket)
}

/// A new queue receiving the bucket's `.tgz` created/removed notifications,
/// as S3 itself sends them (the queue's first message is `s3:TestEvent`).
pub async fn subscribe(store: &crate::store::s3::S3Store) -> (aws_sdk_sqs::Client, String) {
    let config = crate::store::s3::sdk_config().await;
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
    use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
    let queue = QueueConfiguration::builder()
        .queue_arn(arn)
        .events(Event::from("s3:ObjectCreated:*"))
        .events(Event::from("s3:ObjectRemoved:*"))
        .filter(package_filter())
        .build()
        .unwrap();
    let configuration = NotificationConfiguration::builder()
        .queue_configurations(queue)
        .build();
    put_notification(store, configuration).await;
    (sqs, url)
}

/// Sets the bucket's notification configuration.
pub async fn put_notification(
    store: &crate::store::s3::S3Store,
    configuration: aws_sdk_s3::types::NotificationConfiguration,
) {
    store
        .client()
        .put_bucket_notification_configuration()
        .bucket(store.bucket())
        .notification_configuration(configuration)
        .send()
        .await
        .unwrap_or_else(|e| panic!("configuring {}'s notifications: {e:?}", store.bucket()));
}

/// A bucket notification filter on the `.tgz` suffix.
pub fn package_filter() -> aws_sdk_s3::types::NotificationConfigurationFilter {
    use aws_sdk_s3::types::{
        FilterRule, FilterRuleName, NotificationConfigurationFilter, S3KeyFilter,
    };
    let suffix = FilterRule::builder()
        .name(FilterRuleName::Suffix)
        .value(".tgz")
        .build();
    NotificationConfigurationFilter::builder()
        .key(S3KeyFilter::builder().filter_rules(suffix).build())
        .build()
}

/// A fresh bucket on the Ceph RGW that `ceph/start.sh` runs
/// (`PKGSUM_RGW_ENDPOINT`, `PKGSUM_RGW_ACCESS_KEY`, `PKGSUM_RGW_SECRET_KEY`).
pub async fn rgw_bucket() -> crate::store::s3::S3Store {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    compatible_bucket(
        &var("PKGSUM_RGW_ENDPOINT"),
        &var("PKGSUM_RGW_ACCESS_KEY"),
        &var("PKGSUM_RGW_SECRET_KEY"),
        "default",
        "pkgsum-test",
    )
    .await
}

/// A fresh bucket on the SeaweedFS that `seaweedfs/start.sh` runs
/// (`PKGSUM_SEAWEEDFS_ENDPOINT`; with no IAM, any credentials do).
pub async fn seaweedfs_bucket() -> crate::store::s3::S3Store {
    seaweedfs_bucket_named("pkgsum-test").await
}

/// A fresh SeaweedFS bucket whose filer events go to the webhook that
/// `seaweedfs/start.sh` configured (`PKGSUM_SEAWEEDFS_WEBHOOK_LISTEN`).
pub async fn seaweedfs_webhook_bucket() -> crate::store::s3::S3Store {
    seaweedfs_bucket_named("pkgsum-serve").await
}

async fn seaweedfs_bucket_named(stem: &str) -> crate::store::s3::S3Store {
    let endpoint = std::env::var("PKGSUM_SEAWEEDFS_ENDPOINT")
        .unwrap_or_else(|_| panic!("PKGSUM_SEAWEEDFS_ENDPOINT is not set"));
    compatible_bucket(&endpoint, "pkgsum", "pkgsum", "us-east-1", stem).await
}

/// A fresh bucket on an S3-compatible server, through a client of its
/// own: the LocalStack settings in the environment do not apply to it.
async fn compatible_bucket(
    endpoint: &str,
    access_key: &str,
    secret_key: &str,
    region: &'static str,
    stem: &str,
) -> crate::store::s3::S3Store {
    let credentials =
        aws_sdk_s3::config::Credentials::new(access_key, secret_key, None, None, "tests");
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .http_client(crate::store::s3::https_client())
        // A server that stops answering (Ceph's OSD when its memory is
        // full) fails the test within a minute instead of hanging it.
        .timeout_config(crate::store::s3::timeouts())
        .endpoint_url(endpoint)
        .region(aws_sdk_s3::config::Region::new(region))
        .credentials_provider(credentials)
        .force_path_style(true)
        // Ceph RGW 16 predates the SDK's default request checksums.
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
        .build();
    new_bucket(aws_sdk_s3::Client::from_conf(config), endpoint, stem).await
}

/// A child process killed (and reaped) when dropped, so a failing test or
/// benchmark leaves nothing running.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (up to a minute) until something accepts connections on the
/// port of 127.0.0.1.
pub fn wait_for_port(port: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listens on {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// cargo-lambda's emulation of the Lambda runtime API on 127.0.0.1:`port`,
/// once it listens; a function started with `AWS_LAMBDA_RUNTIME_API` set
/// to `http://127.0.0.1:PORT/.rt` takes its invocations from it.
pub fn lambda_emulator(port: u16) -> Child {
    let child = std::process::Command::new("cargo")
        .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1"])
        .args(["-P", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("cargo lambda watch (scripts/tools.sh installs it)");
    let child = Child(child);
    wait_for_port(port);
    child
}

/// `cargo lambda invoke` through the emulator on `port`, whatever the
/// function answers (its answer as JSON on stdout).
pub fn invoke_lambda(port: u16, payload: &serde_json::Value) -> std::process::Output {
    std::process::Command::new("cargo")
        .args(["lambda", "invoke", "_", "-A", "127.0.0.1"])
        .args(["-P", &port.to_string(), "--output-format", "json"])
        .args(["--data-ascii", &payload.to_string()])
        .output()
        .expect("cargo lambda invoke")
}
