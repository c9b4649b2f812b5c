//! `infra/sam/template.yaml` deployed on LocalStack's CloudFormation, as a
//! user would deploy it: the test reads back what the stack made (bucket
//! notification, queue and redrive, event source mapping, function, IAM
//! policy), then uploads packages and waits for the stack's own wiring
//! (S3 -> SQS -> LocalStack's SQS poller -> the function's `bootstrap`)
//! to publish the summary. LocalStack runs the function as a host process
//! (localstack/executor), so the code that runs is this build's
//! `pkgsum-lambda`.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::types::{Capability, Parameter};
use aws_sdk_sqs::types::QueueAttributeName;
use bytes::Bytes;
use pkgsum::compression::Compression;
use pkgsum::config::Config;
use pkgsum::repo::{output_key, state_key};
use pkgsum::store::s3::S3Store;
use pkgsum::store::{PutOptions, Store};
use serde_json::{Value, json};

const CODE_URI: &str = "CodeUri: ../../target/lambda/pkgsum-lambda/bootstrap.zip";
const PREFIX: &str = "All/";

/// The services a stack is read back from (LocalStack through
/// `localstack/run-with`'s AWS_ENDPOINT_URL).
struct Clients {
    cfn: aws_sdk_cloudformation::Client,
    lambda: aws_sdk_lambda::Client,
    iam: aws_sdk_iam::Client,
    sqs: aws_sdk_sqs::Client,
}

impl Clients {
    async fn new() -> Clients {
        let config = pkgsum::store::s3::sdk_config().await;
        Clients {
            cfn: aws_sdk_cloudformation::Client::new(&config),
            lambda: aws_sdk_lambda::Client::new(&config),
            iam: aws_sdk_iam::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
        }
    }
}

/// The function's code package: this build's `pkgsum-lambda` as `bootstrap`.
fn code_zip() -> &'static [u8] {
    static ZIP: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    ZIP.get_or_init(make_zip)
}

/// Zips the binary as `bootstrap` (mode 0755) with Python's own zipfile
/// module, which keeps the file mode as Lambda needs it.
fn make_zip() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = dir.path().join("bootstrap");
    std::fs::copy(env!("CARGO_BIN_EXE_pkgsum-lambda"), &bootstrap).unwrap();
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755)).unwrap();
    let status = std::process::Command::new("python3")
        .args(["-m", "zipfile", "-c", "bootstrap.zip", "bootstrap"])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "python3 -m zipfile failed");
    std::fs::read(dir.path().join("bootstrap.zip")).unwrap()
}

/// The template as `sam package` would leave it: code in a bucket.
fn packaged_template(code_bucket: &str) -> String {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/sam/template.yaml"),
    )
    .unwrap();
    assert!(text.contains(CODE_URI), "the template's CodeUri moved");
    text.replace(
        CODE_URI,
        &format!("CodeUri: s3://{code_bucket}/bootstrap.zip"),
    )
}

fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "x86_64",
    }
}

/// Puts the code into `artifacts`, creates a stack for this machine's
/// architecture and waits for it; returns its name and outputs.
async fn deploy(
    cfn: &aws_sdk_cloudformation::Client,
    artifacts: &S3Store,
    parameters: &[(&str, &str)],
) -> (String, BTreeMap<String, String>) {
    artifacts
        .put(
            "bootstrap.zip",
            Bytes::from_static(code_zip()),
            PutOptions::default(),
        )
        .await
        .unwrap();
    let name = format!("pkgsum-{:08x}", fastrand::u32(..));
    let mut request = cfn
        .create_stack()
        .stack_name(&name)
        .template_body(packaged_template(artifacts.bucket()))
        .capabilities(Capability::CapabilityIam)
        .capabilities(Capability::CapabilityAutoExpand);
    let architecture = [("Architecture", host_architecture())];
    for (key, value) in architecture.iter().chain(parameters) {
        request = request.parameters(
            Parameter::builder()
                .parameter_key(*key)
                .parameter_value(*value)
                .build(),
        );
    }
    request.send().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let stacks = cfn
            .describe_stacks()
            .stack_name(&name)
            .send()
            .await
            .unwrap();
        let stack = &stacks.stacks()[0];
        let status = stack.stack_status().unwrap().as_str().to_owned();
        if status == "CREATE_COMPLETE" {
            let outputs = stack
                .outputs()
                .iter()
                .map(|o| {
                    (
                        o.output_key().unwrap().to_owned(),
                        o.output_value().unwrap().to_owned(),
                    )
                })
                .collect();
            return (name, outputs);
        }
        if !status.ends_with("IN_PROGRESS") || Instant::now() > deadline {
            let events = cfn
                .describe_stack_events()
                .stack_name(&name)
                .send()
                .await
                .unwrap();
            let failures: Vec<String> = events
                .stack_events()
                .iter()
                .filter(|e| {
                    e.resource_status()
                        .is_some_and(|s| s.as_str().contains("FAILED"))
                })
                .map(|e| {
                    format!(
                        "{}: {}",
                        e.logical_resource_id().unwrap_or_default(),
                        e.resource_status_reason().unwrap_or_default()
                    )
                })
                .collect();
            panic!("stack {name} ended {status}: {failures:#?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Logical id -> physical id of the stack's resources.
async fn resources(
    cfn: &aws_sdk_cloudformation::Client,
    name: &str,
) -> BTreeMap<String, (String, String)> {
    cfn.describe_stack_resources()
        .stack_name(name)
        .send()
        .await
        .unwrap()
        .stack_resources()
        .iter()
        .map(|r| {
            (
                r.logical_resource_id().unwrap_or_default().to_owned(),
                (
                    r.resource_type().unwrap_or_default().to_owned(),
                    r.physical_resource_id().unwrap_or_default().to_owned(),
                ),
            )
        })
        .collect()
}

async fn queue_attributes(sqs: &aws_sdk_sqs::Client, url: &str) -> BTreeMap<String, String> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
        .collect()
}

/// IAM returns policy documents URL-encoded; LocalStack may not.
fn policy_json(document: &str) -> Value {
    let text = if document.trim_start().starts_with('{') {
        document.to_owned()
    } else {
        percent_encoding::percent_decode_str(document)
            .decode_utf8()
            .unwrap()
            .into_owned()
    };
    serde_json::from_str(&text).unwrap()
}

fn as_list(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect(),
        other => panic!("not a string or list: {other}"),
    }
}

/// Every (action, resource) the policy allows; fails on anything but a
/// plain Allow.
fn grants(policy: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for statement in policy["Statement"].as_array().unwrap() {
        assert_eq!(statement["Effect"], "Allow", "{statement}");
        assert!(statement.get("NotAction").is_none() && statement.get("NotResource").is_none());
        for action in as_list(&statement["Action"]) {
            for resource in as_list(&statement["Resource"]) {
                out.insert((action.clone(), resource));
            }
        }
    }
    out
}

/// What the function may do, and nothing else.
fn expected_grants(
    bucket: &str,
    queue_arn: &str,
    log_group_arn: &str,
) -> BTreeSet<(String, String)> {
    let object = |suffix: &str| format!("arn:aws:s3:::{bucket}/{PREFIX}{suffix}");
    let summaries = ["gz", "bz2", "xz", "zst"].map(|ext| object(&format!("*pkg_summary.{ext}")));
    let mut out = BTreeSet::new();
    out.insert(("s3:GetObject".to_owned(), object("*")));
    // Under .pkgsum/: the state's manifest and pieces, the layouts, the
    // status report. The site: its page, its data and its run files.
    let site = [
        object("*index.html"),
        object("*packages.json"),
        object("*site/*"),
    ];
    for key in summaries
        .iter()
        .cloned()
        .chain([object("*.pkgsum/*")])
        .chain(site)
    {
        out.insert(("s3:PutObject".to_owned(), key));
    }
    let own = [
        object("*.pkgsum/pieces/*"),
        object("*.pkgsum/history/*"),
        object("*.pkgsum/splice/*"),
        object("*site/*"),
    ];
    for key in summaries.iter().cloned().chain(own) {
        out.insert(("s3:DeleteObject".to_owned(), key));
    }
    // A spliced summary's failed upload is aborted.
    for key in summaries.into_iter().chain([object("*.pkgsum/*")]) {
        out.insert(("s3:AbortMultipartUpload".to_owned(), key));
    }
    out.insert(("s3:ListBucket".to_owned(), format!("arn:aws:s3:::{bucket}")));
    for action in [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    ] {
        out.insert((action.to_owned(), queue_arn.to_owned()));
    }
    for action in ["logs:CreateLogStream", "logs:PutLogEvents"] {
        out.insert((action.to_owned(), log_group_arn.to_owned()));
    }
    out
}

/// What a role is made of, as IAM reads it back.
struct RolePolicies {
    /// The trust (assume-role) policy document.
    trust: Value,
    /// The ARNs of its attached managed policies.
    attached: Vec<String>,
    /// The names of its inline policies.
    inline: Vec<String>,
}

async fn role_policies(iam: &aws_sdk_iam::Client, role: &str) -> RolePolicies {
    let got = iam.get_role().role_name(role).send().await.unwrap();
    let trust = policy_json(got.role().unwrap().assume_role_policy_document().unwrap());
    let attached = iam
        .list_attached_role_policies()
        .role_name(role)
        .send()
        .await
        .unwrap();
    let inline = iam
        .list_role_policies()
        .role_name(role)
        .send()
        .await
        .unwrap();
    RolePolicies {
        trust,
        attached: attached
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn().map(str::to_owned))
            .collect(),
        inline: inline.policy_names().to_vec(),
    }
}

/// The role has one inline policy, nothing attached, and the policy
/// grants exactly [`expected_grants`].
async fn assert_least_privilege(
    iam: &aws_sdk_iam::Client,
    role: &str,
    bucket: &str,
    queue_arn: &str,
    log_group: &str,
) {
    let policies = role_policies(iam, role).await;
    assert!(policies.attached.is_empty(), "{:?}", policies.attached);
    assert_eq!(policies.inline, ["pkgsum-index"]);
    let policy = iam
        .get_role_policy()
        .role_name(role)
        .policy_name("pkgsum-index")
        .send()
        .await
        .unwrap();
    let log_group_arn = format!("arn:aws:logs:us-east-1:000000000000:log-group:{log_group}:*");
    assert_eq!(
        grants(&policy_json(policy.policy_document())),
        expected_grants(bucket, queue_arn, &log_group_arn)
    );
}

/// The uploader policy the stack made grants PutObject on the
/// repository's package keys, and GetObject on what `pkgsum push` reads
/// (package keys, summaries, the status), and nothing else.
async fn assert_uploader_policy(iam: &aws_sdk_iam::Client, arn: &str, bucket: &str) {
    let policy = iam.get_policy().policy_arn(arn).send().await.unwrap();
    let version = policy
        .policy()
        .and_then(|p| p.default_version_id())
        .unwrap();
    let document = iam
        .get_policy_version()
        .policy_arn(arn)
        .version_id(version)
        .send()
        .await
        .unwrap();
    let document = document
        .policy_version()
        .and_then(|v| v.document())
        .unwrap();
    let policy = policy_json(document);
    let (allows, denies): (Vec<&Value>, Vec<&Value>) = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .partition(|s| s["Effect"] == "Allow");
    let key = |suffix: &str| format!("arn:aws:s3:::{bucket}/{PREFIX}{suffix}");
    let want = BTreeSet::from([
        ("s3:PutObject".to_owned(), key("*.tgz")),
        ("s3:GetObject".to_owned(), key("*.tgz")),
        ("s3:GetObject".to_owned(), key("*pkg_summary.*")),
        ("s3:GetObject".to_owned(), key("*.pkgsum/status.json")),
    ]);
    let allowed = serde_json::json!({ "Statement": allows });
    assert_eq!(grants(&allowed), want);
    // Whatever the suffix: never a summary, nothing under .pkgsum/, no
    // object with a customer's key (SSE-C).
    let object = |suffix: &str| format!("arn:aws:s3:::{bucket}/{PREFIX}{suffix}");
    let mut denied = BTreeSet::new();
    for statement in &denies {
        assert_eq!(statement["Action"], "s3:PutObject", "{statement}");
        let condition = statement.get("Condition").map(Value::to_string);
        for resource in as_list(&statement["Resource"]) {
            denied.insert((resource, condition.clone()));
        }
    }
    let sse_c = r#"{"Null":{"s3:x-amz-server-side-encryption-customer-algorithm":"false"}}"#;
    let want = BTreeSet::from([
        (object("*pkg_summary.*"), None),
        (object("*.pkgsum/*"), None),
        (object("*"), Some(sse_c.to_owned())),
    ]);
    assert_eq!(denied, want);
}

/// Waits until the repository's pkg_summary.gz says `want`.
async fn wait_for_summary(store: &S3Store, want: &[u8], what: &str) {
    let key = output_key(PREFIX, Compression::Gzip);
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let have = common::published(store, &key).await;
        if have == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {key} never became the expected summary; it holds {} bytes:\n{}",
            have.len(),
            String::from_utf8_lossy(&have)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Deletes the repository's state and summaries (the formats the stack
/// publishes by default), as a lost index.
async fn forget_index(store: &S3Store) {
    let summaries = Config::default()
        .formats
        .into_iter()
        .map(|format| output_key(PREFIX, format));
    for key in summaries.chain([state_key(PREFIX)]) {
        store.delete(&key).await.unwrap();
    }
}

/// The oracle's `pkg_info -X` records of `names`, in that order.
fn records(names: &[&str]) -> Vec<u8> {
    let oracle = common::oracle();
    names
        .iter()
        .flat_map(|n| std::fs::read(oracle.join(format!("{n}.expected"))).unwrap())
        .collect()
}

async fn the_sam_stack_deploys_with_least_privilege_and_indexes_uploads() {
    // A bucket of its own for the code, as `sam deploy` uses.
    let artifacts = common::s3_bucket().await;
    let Clients {
        cfn,
        lambda,
        iam,
        sqs,
    } = Clients::new().await;

    let (stack, outputs) = deploy(
        &cfn,
        &artifacts,
        &[
            ("Access", "public"),
            ("BatchSize", "20"),
            ("BatchingWindow", "1"),
            ("MaximumConcurrency", "3"),
            ("ReconcileSchedule", "rate(1 minute)"),
        ],
    )
    .await;
    let bucket = outputs["BucketName"].clone();
    let store = S3Store::new(artifacts.client().clone(), &bucket);
    let resources = resources(&cfn, &stack).await;
    assert_eq!(outputs["RepositoryS3Url"], format!("s3://{bucket}/All/"));
    // LocalStack's AWS::URLSuffix is its own host, not amazonaws.com.
    let url = &outputs["RepositoryUrl"];
    assert!(
        url.starts_with(&format!("https://{bucket}.s3.us-east-1.")) && url.ends_with("/All"),
        "{url}: pkgin appends /PKGNAME.tgz, so no trailing slash"
    );

    // The queue, its dead-letter queue and the redrive between them.
    let queue = queue_attributes(&sqs, &outputs["EventQueueUrl"]).await;
    let dlq = queue_attributes(&sqs, &outputs["DeadLetterQueueUrl"]).await;
    let redrive: Value = serde_json::from_str(&queue["RedrivePolicy"]).unwrap();
    assert_eq!(redrive["deadLetterTargetArn"], dlq["QueueArn"].as_str());
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "5"
    );
    assert_eq!(queue["SqsManagedSseEnabled"], "true");
    assert_eq!(queue["VisibilityTimeout"], "2100");
    let queue_policy: Value = serde_json::from_str(&queue["Policy"]).unwrap();
    let statement = &queue_policy["Statement"][0];
    assert_eq!(statement["Principal"]["Service"], "s3.amazonaws.com");
    assert_eq!(statement["Action"], "sqs:SendMessage");
    assert_eq!(
        statement["Condition"]["ArnEquals"]["aws:SourceArn"],
        format!("arn:aws:s3:::{bucket}")
    );

    // The bucket: notifications for package keys under the prefix only,
    // encryption, public access blocked but for the repository policy.
    let s3 = artifacts.client();
    let notifications = s3
        .get_bucket_notification_configuration()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let mut events = BTreeSet::new();
    for config in notifications.queue_configurations() {
        assert_eq!(config.queue_arn(), queue["QueueArn"]);
        let rules: BTreeMap<String, String> = config
            .filter()
            .and_then(|f| f.key())
            .map(|k| k.filter_rules())
            .unwrap_or_default()
            .iter()
            .map(|r| {
                (
                    r.name().unwrap().as_str().to_ascii_lowercase(),
                    r.value().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            rules,
            BTreeMap::from([
                ("prefix".to_owned(), PREFIX.to_owned()),
                ("suffix".to_owned(), ".tgz".to_owned())
            ])
        );
        events.extend(config.events().iter().map(|e| e.as_str().to_owned()));
    }
    assert_eq!(
        events,
        BTreeSet::from([
            "s3:ObjectCreated:*".to_owned(),
            "s3:ObjectRemoved:*".to_owned()
        ])
    );
    let encryption = s3
        .get_bucket_encryption()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let rule = &encryption
        .server_side_encryption_configuration()
        .unwrap()
        .rules()[0];
    assert_eq!(
        rule.apply_server_side_encryption_by_default()
            .unwrap()
            .sse_algorithm()
            .as_str(),
        "AES256"
    );
    let block = s3
        .get_public_access_block()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let block = block.public_access_block_configuration().unwrap();
    assert_eq!(block.block_public_acls(), Some(true));
    assert_eq!(block.ignore_public_acls(), Some(true));
    let bucket_policy = s3.get_bucket_policy().bucket(&bucket).send().await.unwrap();
    let bucket_policy: Value = serde_json::from_str(bucket_policy.policy().unwrap()).unwrap();
    assert_eq!(
        grants(&bucket_policy),
        BTreeSet::from([(
            "s3:GetObject".to_owned(),
            format!("arn:aws:s3:::{bucket}/All/*")
        )]),
        "public read of the repository prefix and nothing else"
    );

    // The function and its event source mapping.
    let function = &outputs["FunctionName"];
    let configuration = lambda
        .get_function_configuration()
        .function_name(function)
        .send()
        .await
        .unwrap();
    assert_eq!(configuration.runtime().unwrap().as_str(), "provided.al2023");
    assert_eq!(configuration.handler(), Some("bootstrap"));
    assert_eq!(
        configuration.architectures()[0].as_str(),
        host_architecture()
    );
    let env = configuration.environment().unwrap().variables().unwrap();
    assert_eq!(env["PKGSUM_REPOSITORIES"], format!("s3://{bucket}/All/"));
    assert_eq!(env["PKGSUM_SUFFIXES"], ".tgz");
    assert_eq!(env["PKGSUM_FORMATS"], "gz,bz2,xz");
    let mappings = lambda
        .list_event_source_mappings()
        .function_name(function)
        .send()
        .await
        .unwrap();
    let [mapping] = mappings.event_source_mappings() else {
        panic!("expected one event source mapping: {mappings:?}");
    };
    assert_eq!(mapping.event_source_arn(), Some(queue["QueueArn"].as_str()));
    assert_eq!(mapping.batch_size(), Some(20));
    assert_eq!(mapping.maximum_batching_window_in_seconds(), Some(1));
    assert_eq!(
        mapping
            .function_response_types()
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>(),
        ["ReportBatchItemFailures"]
    );
    assert_eq!(
        mapping
            .scaling_config()
            .and_then(|s| s.maximum_concurrency()),
        Some(3)
    );

    // The role: one inline policy, nothing attached, nothing more.
    let role_arn = configuration.role().unwrap();
    assert_eq!(role_arn, outputs["FunctionRoleArn"]);
    let role = role_arn.rsplit('/').next().unwrap();
    let log_group = &resources["FunctionLogGroup"].1;
    assert_least_privilege(&iam, role, &bucket, &queue["QueueArn"], log_group).await;
    let trust = role_policies(&iam, role).await.trust;
    assert_eq!(
        trust["Statement"][0]["Principal"]["Service"],
        "lambda.amazonaws.com"
    );
    // Uploads: a policy to attach, and no role without a principal.
    assert_uploader_policy(&iam, &outputs["UploaderPolicyArn"], &bucket).await;
    assert!(!outputs.contains_key("UploaderRoleArn"));
    assert!(!resources.contains_key("UploaderRole"));
    for (logical, kind) in [
        ("ReconcileRule", "AWS::Events::Rule"),
        ("ReconcilePermission", "AWS::Lambda::Permission"),
        ("DeadLetterAlarm", "AWS::CloudWatch::Alarm"),
        ("RepositoryReadPolicy", "AWS::S3::BucketPolicy"),
    ] {
        assert_eq!(resources[logical].0, kind, "{logical}");
    }

    // Uploads, through S3 -> SQS -> the poller -> bootstrap. Keys outside
    // the prefix or without the suffix are not the repository's.
    let names = [
        "meta-deps-2.3nb1.tgz",
        "rich-buildinfo-4.5.6nb2.tgz",
        "scripts-3.1.tgz",
    ];
    common::upload_oracle(&store, PREFIX, &names).await;
    common::upload_oracle(&store, "Other/", &names[2..]).await;
    store
        .put(
            &format!("{PREFIX}README.txt"),
            "no package".into(),
            PutOptions::default(),
        )
        .await
        .unwrap();
    wait_for_summary(&store, &records(&names), "after three uploads").await;

    // A delete, through the same wiring.
    store
        .delete(&format!("{PREFIX}scripts-3.1.tgz"))
        .await
        .unwrap();
    let want = records(&names[..2]);
    wait_for_summary(&store, &want, "after a delete").await;
    let other = output_key("Other/", Compression::Gzip);
    assert!(store.head(&other).await.unwrap().is_none());

    // The reconcile payload repairs a repository whose state and
    // summaries were lost: once invoked directly, once by the stack's
    // own schedule (every minute here, daily by default).
    forget_index(&store).await;
    let answer = lambda
        .invoke()
        .function_name(function)
        .payload(aws_sdk_lambda::primitives::Blob::new(
            json!({"pkgsum": "reconcile"}).to_string(),
        ))
        .send()
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(answer.payload().unwrap().as_ref()).unwrap();
    assert!(answer.function_error().is_none(), "{body}");
    assert_eq!(
        body["reconciled"][0]["repository"],
        format!("s3://{bucket}/All/")
    );
    wait_for_summary(&store, &want, "after the reconcile").await;
    forget_index(&store).await;
    wait_for_summary(&store, &want, "after the scheduled reconcile").await;
    // Stops the stack's poller and function process (the bucket is kept).
    cfn.delete_stack().stack_name(&stack).send().await.unwrap();
}

/// With ExistingBucketName the stack leaves the bucket's settings alone and
/// takes its events from EventBridge, which the owner turned on.
async fn an_existing_bucket_is_indexed_through_eventbridge_and_left_as_it_was() {
    let artifacts = common::s3_bucket().await;
    let store = common::s3_bucket().await;
    let Clients { cfn, iam, sqs, .. } = Clients::new().await;
    let bucket = store.bucket().to_owned();
    let s3 = store.client();
    s3.put_bucket_notification_configuration()
        .bucket(&bucket)
        .notification_configuration(
            aws_sdk_s3::types::NotificationConfiguration::builder()
                .event_bridge_configuration(
                    aws_sdk_s3::types::EventBridgeConfiguration::builder().build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let uploader = "arn:aws:iam::000000000000:role/package-builds";
    let (stack, outputs) = deploy(
        &cfn,
        &artifacts,
        &[
            ("ExistingBucketName", &bucket),
            ("BatchingWindow", "1"),
            ("UploaderPrincipalArn", uploader),
        ],
    )
    .await;
    assert_eq!(outputs["BucketName"], bucket);
    let resources = resources(&cfn, &stack).await;
    for logical in ["PackageBucket", "RepositoryReadPolicy"] {
        assert!(!resources.contains_key(logical), "{logical} was created");
    }
    let rule_arn = &resources["PackageEventRule"].1;

    // Only EventBridge may send, and only through the stack's rule.
    let queue = queue_attributes(&sqs, &outputs["EventQueueUrl"]).await;
    let queue_policy: Value = serde_json::from_str(&queue["Policy"]).unwrap();
    let statement = &queue_policy["Statement"][0];
    assert_eq!(statement["Principal"]["Service"], "events.amazonaws.com");
    let source = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
        .as_str()
        .unwrap();
    assert!(
        source == rule_arn || source.ends_with(&format!("/{rule_arn}")),
        "{source} is not the rule {rule_arn}"
    );

    // The same least privilege, on the existing bucket.
    let role = outputs["FunctionRoleArn"].rsplit('/').next().unwrap();
    let log_group = &resources["FunctionLogGroup"].1;
    assert_least_privilege(&iam, role, &bucket, &queue["QueueArn"], log_group).await;

    // The uploader role: assumable by the principal given, holding the
    // uploader policy and nothing else.
    let policy = &outputs["UploaderPolicyArn"];
    assert_uploader_policy(&iam, policy, &bucket).await;
    let role = outputs["UploaderRoleArn"].rsplit('/').next().unwrap();
    let policies = role_policies(&iam, role).await;
    assert_eq!(policies.trust["Statement"][0]["Principal"]["AWS"], uploader);
    assert_eq!(policies.attached, [policy.as_str()]);
    assert!(policies.inline.is_empty());

    let names = ["meta-deps-2.3nb1.tgz", "rich-buildinfo-4.5.6nb2.tgz"];
    common::upload_oracle(&store, PREFIX, &names).await;
    common::upload_oracle(&store, "Other/", &names[..1]).await;
    let want = records(&names);
    wait_for_summary(&store, &want, "after two uploads through EventBridge").await;
    let other = output_key("Other/", Compression::Gzip);
    assert!(store.head(&other).await.unwrap().is_none());

    // The bucket's own settings are as the owner left them.
    let notifications = s3
        .get_bucket_notification_configuration()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(notifications.event_bridge_configuration().is_some());
    assert!(notifications.queue_configurations().is_empty());
    assert!(s3.get_bucket_policy().bucket(&bucket).send().await.is_err());
    cfn.delete_stack().stack_name(&stack).send().await.unwrap();
}

/// The CloudFront Function of `Access=private` (the code both templates
/// deploy), under Node with CloudFront's viewer-request event shape and a
/// KeyValueStore stand-in: good credentials pass the request on without
/// them; missing, wrong, unknown and malformed ones get 401 with a
/// challenge; paths outside the repository get 404; only GET and HEAD.
fn the_cloudfront_function_admits_only_good_credentials() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../infra/cloudfront/basic-auth.test.mjs");
    let output = std::process::Command::new("node")
        .arg(&script)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Every case ran, and none was skipped.
    for line in ["# tests 5", "# pass 5", "# fail 0", "# skipped 0"] {
        assert!(
            stdout.lines().any(|l| l == line),
            "no {line:?} in\n{stdout}"
        );
    }
}

crate::harness::trials![
    node the_cloudfront_function_admits_only_good_credentials,
    s3 the_sam_stack_deploys_with_least_privilege_and_indexes_uploads,
    s3 an_existing_bucket_is_indexed_through_eventbridge_and_left_as_it_was,
];
