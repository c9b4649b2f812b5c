//! Event decoding: from any notification shape to the keys to look at.
//!
//! An event only says which key to look at again; what happened is read
//! from the bucket (level-triggered), so the event name is kept for logs
//! only. Shapes understood: S3 notifications (AWS, MinIO, Ceph RGW), SQS
//! batches whose bodies are S3 notifications, EventBridge events, or SNS
//! envelopes of those, EventBridge events delivered directly, and
//! SeaweedFS filer webhooks. `s3:TestEvent`, SNS subscription
//! confirmations and anything else are reported as ignored.
//!
//! Every source encodes keys its own way: AWS form-encodes them, LocalStack
//! and moto percent-encode them, MinIO encodes `/` too, Ceph RGW and
//! SeaweedFS send them as they are. Where the source does not settle it,
//! every plausible reading becomes a target: looking at a key that does
//! not exist costs one HEAD and changes nothing, so the bucket decides.

use percent_encoding::percent_decode_str;
use serde_json::Value;

/// A key to look at again.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub bucket: String,
    pub key: String,
    /// The event name, for logs ("ObjectCreated:Put", "Object Deleted").
    pub event: String,
    /// Who made the change, where the event says: `userIdentity.
    /// principalId` (AWS, MinIO, Ceph RGW) or EventBridge's `requester`.
    /// Cut to [`crate::changelog::WHO_BYTES`]; for the history only, never trusted.
    pub who: Option<String>,
}

/// A principal the event names, as the change log keeps it.
fn principal(value: Option<&str>) -> Option<String> {
    value.and_then(crate::changelog::principal)
}

/// What one delivery unit holds: the whole event, or one SQS message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// The SQS message id, for partial batch failure reports.
    pub id: Option<String>,
    pub targets: Vec<Target>,
    /// Why parts of it were ignored.
    pub ignored: Vec<String>,
}

/// Why a body was ignored when it is no event shape pkgsum knows.
pub const UNRECOGNIZED: &str = "not an S3 event";

/// Decodes an event of any supported shape into delivery units.
pub fn decode(event: &Value) -> Vec<Message> {
    let records = event.get("Records").and_then(Value::as_array);
    match records {
        Some(records) if records.iter().any(is_sqs_record) => {
            records.iter().map(decode_sqs_record).collect()
        }
        // `aws sqs receive-message` output: {"Messages": [{"MessageId", "Body"}]}.
        _ if event.get("Messages").is_some_and(Value::is_array) => event["Messages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| decode_queue_message(m.get("MessageId"), m.get("Body")))
            .collect(),
        _ => {
            let mut message = Message::default();
            decode_body(event, &mut message);
            vec![message]
        }
    }
}

/// Decodes an event given as JSON text.
pub fn decode_str(text: &str) -> Result<Vec<Message>, serde_json::Error> {
    Ok(decode(&serde_json::from_str(text)?))
}

fn is_sqs_record(record: &Value) -> bool {
    record.get("eventSource").and_then(Value::as_str) == Some("aws:sqs")
}

fn decode_sqs_record(record: &Value) -> Message {
    decode_queue_message(record.get("messageId"), record.get("body"))
}

/// One SQS message, whichever spelling its id and body fields have.
fn decode_queue_message(id: Option<&Value>, body: Option<&Value>) -> Message {
    let mut message = Message {
        id: id.and_then(Value::as_str).map(str::to_owned),
        ..Message::default()
    };
    match body.and_then(Value::as_str) {
        None => message
            .ignored
            .push("SQS message without a body".to_owned()),
        Some(body) => match serde_json::from_str::<Value>(body) {
            Ok(body) => decode_body(&body, &mut message),
            Err(err) => message
                .ignored
                .push(format!("SQS message body is not JSON: {err}")),
        },
    }
    message
}

/// Adds the targets of one event body (not an SQS batch) to `message`.
fn decode_body(body: &Value, message: &mut Message) {
    if body.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        message.ignored.push("s3:TestEvent".to_owned());
    } else if let Some(records) = body.get("Records").and_then(Value::as_array) {
        for record in records {
            decode_s3_record(record, message);
        }
    } else if body.get("detail-type").is_some() && body.get("detail").is_some() {
        decode_eventbridge(body, message);
    } else if body.get("event_type").is_some() && body.get("key").is_some() {
        decode_filer(body, message);
    } else if body.get("Type").and_then(Value::as_str) == Some("SubscriptionConfirmation") {
        let url = str_at(body, &["SubscribeURL"]).unwrap_or("(no SubscribeURL)");
        message.ignored.push(format!(
            "SNS subscription confirmation, not followed (confirm it at {url})"
        ));
    } else if body.get("Type").and_then(Value::as_str) == Some("Notification") {
        // SNS envelope: the real event is the Message string.
        match body
            .get("Message")
            .and_then(Value::as_str)
            .map(serde_json::from_str::<Value>)
        {
            Some(Ok(inner)) => decode_body(&inner, message),
            _ => message
                .ignored
                .push("SNS envelope without a JSON Message".to_owned()),
        }
    } else {
        message.ignored.push(UNRECOGNIZED.to_owned());
    }
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |v, name| v.get(name))
        .and_then(Value::as_str)
}

fn decode_s3_record(record: &Value, message: &mut Message) {
    let event = record
        .get("eventName")
        .and_then(Value::as_str)
        .unwrap_or("");
    // MinIO keeps the "s3:" prefix, AWS drops it.
    let event = event.strip_prefix("s3:").unwrap_or(event).to_owned();
    let bucket = str_at(record, &["s3", "bucket", "name"]);
    let key = str_at(record, &["s3", "object", "key"]);
    let (Some(bucket), Some(key)) = (bucket, key) else {
        message.ignored.push(format!(
            "record {event:?} without s3.bucket.name and s3.object.key"
        ));
        return;
    };
    if !(event.starts_with("ObjectCreated") || event.starts_with("ObjectRemoved")) {
        message.ignored.push(format!("event {event} on {key}"));
        return;
    }
    // AWS documents form encoding (LocalStack's and moto's percent
    // encoding decode the same way); other sources settle nothing.
    let readings = if str_at(record, &["eventSource"]) == Some("aws:s3") {
        form_decode(key).into_iter().collect()
    } else {
        readings(key)
    };
    if readings.is_empty() {
        message
            .ignored
            .push(format!("key {key:?} does not decode to UTF-8"));
    }
    let who = principal(str_at(record, &["userIdentity", "principalId"]));
    for key in readings {
        message.targets.push(Target {
            bucket: bucket.to_owned(),
            key,
            event: event.clone(),
            who: who.clone(),
        });
    }
}

/// A SeaweedFS filer webhook: `{"event_type", "key": "/buckets/B/K",
/// "message": {"new_entry", "old_entry", "new_parent_path"}}`. Keys are
/// paths as they are. Directories and multipart parts (under `.uploads/`)
/// are not objects.
fn decode_filer(body: &Value, message: &mut Message) {
    let event = str_at(body, &["event_type"]).unwrap_or("").to_owned();
    let entry_is_dir = |name: &str| {
        body.get("message")
            .and_then(|m| m.get(name))
            .and_then(|e| e.get("is_directory"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    if entry_is_dir("new_entry") || entry_is_dir("old_entry") {
        message
            .ignored
            .push(format!("filer {event} of a directory"));
        return;
    }
    let mut paths = vec![str_at(body, &["key"]).unwrap_or("").to_owned()];
    // A rename names the old path in `key` and the new one apart.
    let new_parent = str_at(body, &["message", "new_parent_path"]);
    let new_name = str_at(body, &["message", "new_entry", "name"]);
    if let (Some(parent), Some(name)) = (new_parent, new_name) {
        let new = format!("{}/{name}", parent.trim_end_matches('/'));
        if !paths.contains(&new) {
            paths.push(new);
        }
    }
    for path in paths {
        let bucket_and_key = path
            .strip_prefix("/buckets/")
            .and_then(|r| r.split_once('/'));
        match bucket_and_key {
            Some((_, key)) if key.starts_with(".uploads/") || key.contains("/.uploads/") => {
                message
                    .ignored
                    .push(format!("filer {event} of a multipart part"));
            }
            Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
                message.targets.push(Target {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    event: event.clone(),
                    who: None,
                });
            }
            _ => message
                .ignored
                .push(format!("filer {event} of {path:?}, not under /buckets/")),
        }
    }
}

/// Every plausible reading of a key whose encoding is unknown, in order:
/// form-decoded, percent-decoded only, and as it is (duplicates and
/// readings that are not UTF-8 left out).
fn readings(key: &str) -> Vec<String> {
    let percent = percent_decode_str(key)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned());
    let mut out: Vec<String> = Vec::with_capacity(3);
    for reading in [form_decode(key), percent, Some(key.to_owned())]
        .into_iter()
        .flatten()
    {
        if !out.contains(&reading) {
            out.push(reading);
        }
    }
    out
}

fn decode_eventbridge(body: &Value, message: &mut Message) {
    let detail_type = body
        .get("detail-type")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !matches!(detail_type, "Object Created" | "Object Deleted") {
        message.ignored.push(format!("EventBridge {detail_type:?}"));
        return;
    }
    let detail = &body["detail"];
    let bucket = str_at(detail, &["bucket", "name"]);
    let key = str_at(detail, &["object", "key"]);
    let (Some(bucket), Some(key)) = (bucket, key) else {
        message
            .ignored
            .push("EventBridge event without bucket.name and object.key".to_owned());
        return;
    };
    // Whether EventBridge encodes keys is not documented.
    let who = principal(str_at(body, &["detail", "requester"]));
    for key in readings(key) {
        message.targets.push(Target {
            bucket: bucket.to_owned(),
            key,
            event: detail_type.to_owned(),
            who: who.clone(),
        });
    }
}

/// Form decoding as S3 notifications need: `+` is a space, then `%xx`.
pub fn form_decode(key: &str) -> Option<String> {
    let spaced = key.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changelog::WHO_BYTES;
    use serde_json::json;

    fn s3_record(event: &str, key: &str) -> Value {
        json!({
            "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": event,
            "s3": {"bucket": {"name": "b"}, "object": {"key": key, "size": 7}}
        })
    }

    fn keys(messages: &[Message]) -> Vec<String> {
        messages
            .iter()
            .flat_map(|m| m.targets.iter().map(|t| t.key.clone()))
            .collect()
    }

    #[test]
    fn direct_notification_keys_are_form_decoded() {
        let event = json!({"Records": [
            s3_record("ObjectCreated:Put", "All/gtk2%2B-2.24.tgz"),
            s3_record("ObjectRemoved:Delete", "All/red+flower-1.0.tgz"),
            s3_record("ObjectCreated:Put", "All/%C3%BC-1.tgz"),
        ]});
        let messages = decode(&event);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].id, None);
        assert_eq!(
            keys(&messages),
            [
                "All/gtk2+-2.24.tgz",
                "All/red flower-1.0.tgz",
                "All/ü-1.tgz"
            ]
        );
        assert_eq!(messages[0].targets[1].event, "ObjectRemoved:Delete");
    }

    #[test]
    fn sqs_messages_stay_separate_for_batch_failures() {
        let body = json!({"Records": [s3_record("ObjectCreated:Put", "a-1.tgz")]}).to_string();
        let test_event = json!({"Service": "Amazon S3", "Event": "s3:TestEvent"}).to_string();
        let event = json!({"Records": [
            {"messageId": "m1", "eventSource": "aws:sqs", "body": body},
            {"messageId": "m2", "eventSource": "aws:sqs", "body": test_event},
            {"messageId": "m3", "eventSource": "aws:sqs", "body": "{not json"},
        ]});
        let messages = decode(&event);
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[0].id.as_deref(), Some("m1"));
        assert_eq!(keys(&messages[..1]), ["a-1.tgz"]);
        assert_eq!(messages[1].ignored, ["s3:TestEvent"]);
        assert!(messages[2].ignored[0].starts_with("SQS message body is not JSON"));
    }

    #[test]
    fn aws_cli_receive_message_output_is_a_batch() {
        let body = json!({"Records": [s3_record("ObjectCreated:Put", "All/a-1.tgz")]}).to_string();
        let output = json!({"Messages": [
            {"MessageId": "m1", "ReceiptHandle": "r", "MD5OfBody": "x", "Body": body},
        ]});
        let messages = decode(&output);
        assert_eq!(messages[0].id.as_deref(), Some("m1"));
        assert_eq!(keys(&messages), ["All/a-1.tgz"]);
    }

    #[test]
    fn minio_keeps_the_prefix_and_encodes_slashes() {
        let event = json!({
            "EventName": "s3:ObjectCreated:Put", "Key": "bucket/All/x-1.tgz",
            "Records": [{
                "eventSource": "minio:s3", "eventName": "s3:ObjectCreated:Put",
                "s3": {"bucket": {"name": "bucket"}, "object": {"key": "All%2Fx-1.tgz"}}
            }]
        });
        let messages = decode(&event);
        // MinIO's encoding is documented, not measured: both readings.
        assert_eq!(keys(&messages), ["All/x-1.tgz", "All%2Fx-1.tgz"]);
        assert_eq!(messages[0].targets[0].event, "ObjectCreated:Put");
    }

    #[test]
    fn ceph_keys_arrive_as_they_are_and_are_read_every_way() {
        // As Ceph RGW 16 POSTs them: eventSource "ceph:s3", key not encoded.
        let event = json!({"Records": [{
            "eventVersion": "2.2", "eventSource": "ceph:s3", "awsRegion": "",
            "eventName": "ObjectCreated:Put", "opaqueData": "",
            "s3": {"bucket": {"name": "b"},
                   "object": {"key": "All/with space+plus%.tgz", "metadata": [], "versionId": ""}}
        }]});
        let got = keys(&decode(&event));
        assert!(
            got.contains(&"All/with space+plus%.tgz".to_owned()),
            "{got:?}"
        );
        let plain = json!({"Records": [{
            "eventSource": "ceph:s3", "eventName": "ObjectRemoved:Delete",
            "s3": {"bucket": {"name": "b"}, "object": {"key": "All/a-1.tgz"}}
        }]});
        assert_eq!(keys(&decode(&plain)), ["All/a-1.tgz"]);
    }

    #[test]
    fn seaweedfs_filer_webhooks() {
        let create = json!({
            "event_type": "create", "key": "/buckets/b/All/with space+plus.tgz",
            "message": {"new_entry": {"name": "with space+plus.tgz", "is_directory": false},
                        "new_parent_path": "/buckets/b/All"}
        });
        let messages = decode(&create);
        assert_eq!(messages[0].targets[0].bucket, "b");
        // The new entry restates the same path: one target.
        assert_eq!(keys(&messages), ["All/with space+plus.tgz"]);
        let rename = json!({
            "event_type": "rename", "key": "/buckets/b/All/.part-1.tgz",
            "message": {"old_entry": {"name": ".part-1.tgz"},
                        "new_entry": {"name": "a-1.tgz"}, "new_parent_path": "/buckets/b/All/"}
        });
        assert_eq!(keys(&decode(&rename)), ["All/.part-1.tgz", "All/a-1.tgz"]);
        let delete = json!({"event_type": "delete", "key": "/buckets/b/All/a-1.tgz",
                            "message": {"old_entry": {"name": "a-1.tgz"}}});
        assert_eq!(keys(&decode(&delete)), ["All/a-1.tgz"]);
        let dir = json!({"event_type": "create", "key": "/buckets/b/All",
                         "message": {"new_entry": {"name": "All", "is_directory": true}}});
        assert!(decode(&dir)[0].targets.is_empty());
        let part = json!({"event_type": "create", "key": "/buckets/b/.uploads/x/0001.part",
                          "message": {}});
        assert!(decode(&part)[0].targets.is_empty());
        let outside = json!({"event_type": "create", "key": "/etc/passwd", "message": {}});
        assert!(decode(&outside)[0].ignored[0].contains("not under /buckets/"));
    }

    #[test]
    fn sns_subscription_confirmations_are_not_followed() {
        let confirm = json!({
            "Type": "SubscriptionConfirmation", "MessageId": "m", "Token": "t",
            "SubscribeURL": "https://sns.example/?Action=ConfirmSubscription&Token=t"
        });
        let messages = decode(&confirm);
        assert!(messages[0].targets.is_empty());
        assert!(
            messages[0].ignored[0].contains("https://sns.example/?Action=ConfirmSubscription"),
            "{:?}",
            messages[0].ignored
        );
    }

    #[test]
    fn eventbridge_direct_and_through_sqs() {
        let eb = json!({
            "version": "0", "detail-type": "Object Deleted", "source": "aws.s3",
            "detail": {"bucket": {"name": "b"}, "object": {"key": "All/a+b-1.tgz"}}
        });
        assert_eq!(keys(&decode(&eb)), ["All/a b-1.tgz", "All/a+b-1.tgz"]);
        let sqs = json!({"Records": [
            {"messageId": "x", "eventSource": "aws:sqs", "body": eb.to_string()}
        ]});
        assert_eq!(keys(&decode(&sqs)), ["All/a b-1.tgz", "All/a+b-1.tgz"]);
        let other = json!({"detail-type": "Object Restore Completed", "detail": {}});
        assert!(decode(&other)[0].targets.is_empty());
    }

    /// The principal is kept for the history, bounded: a long one is cut,
    /// a non-string or empty one is nobody, and it never changes a key.
    #[test]
    fn who_comes_from_the_event_bounded() {
        let mut record = s3_record("ObjectCreated:Put", "All/a-1.tgz");
        record["userIdentity"] = json!({"principalId": "AWS:AROAEXAMPLE:ci-run-42"});
        let mut long = s3_record("ObjectCreated:Put", "All/b-1.tgz");
        let huge = format!("{}\u{1b}[31m", "é".repeat(50_000));
        long["userIdentity"] = json!({ "principalId": huge });
        let mut odd = s3_record("ObjectCreated:Put", "All/c-1.tgz");
        odd["userIdentity"] = json!({"principalId": {"nested": true}});
        let mut empty = s3_record("ObjectCreated:Put", "All/d-1.tgz");
        empty["userIdentity"] = json!({"principalId": ""});
        let messages = decode(&json!({ "Records": [record, long, odd, empty] }));
        let who: Vec<Option<&str>> = messages[0]
            .targets
            .iter()
            .map(|t| t.who.as_deref())
            .collect();
        assert_eq!(who[0], Some("AWS:AROAEXAMPLE:ci-run-42"));
        let cut = who[1].unwrap();
        assert!(
            cut.len() <= WHO_BYTES && cut.len() >= WHO_BYTES - 1,
            "{}",
            cut.len()
        );
        assert_eq!(&who[2..], [None, None]);
        assert_eq!(
            keys(&messages),
            ["All/a-1.tgz", "All/b-1.tgz", "All/c-1.tgz", "All/d-1.tgz"]
        );

        let eb = json!({
            "detail-type": "Object Created", "source": "aws.s3",
            "detail": {"bucket": {"name": "b"}, "object": {"key": "All/e-1.tgz"}, "requester": "123456789012"}
        });
        assert_eq!(
            decode(&eb)[0].targets[0].who.as_deref(),
            Some("123456789012")
        );
    }

    #[test]
    fn test_events_and_strangers_are_ignored() {
        let test_event = json!({"Service": "Amazon S3", "Event": "s3:TestEvent"});
        assert_eq!(decode(&test_event)[0].ignored, ["s3:TestEvent"]);
        assert_eq!(decode(&json!({"hello": 1}))[0].ignored, [UNRECOGNIZED]);
        let bad = json!({"Records": [s3_record("ObjectCreated:Put", "%FF%FE.tgz")]});
        assert!(decode(&bad)[0].ignored[0].contains("does not decode"));
        let restore = json!({"Records": [s3_record("ObjectRestore:Completed", "a.tgz")]});
        assert!(decode(&restore)[0].targets.is_empty());
    }
}
