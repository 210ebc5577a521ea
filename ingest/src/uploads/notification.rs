//! S3 event notifications as they reach Kafka, turned into the objects to read. Pure logic: no I/O.
//!
//! Accepted message values (JSON):
//! - MinIO's Kafka target: `{"EventName":…,"Key":"bucket/key","Records":[…]}`;
//! - the AWS S3 event that S3 sends to SQS, SNS and Lambda: `{"Records":[…]}`, also inside an SNS envelope
//!   `{"Type":"Notification","Message":"<the event as a JSON string>"}`, and S3's `s3:TestEvent`;
//! - EventBridge: `{"detail-type":"Object Created","detail":{"bucket":{…},"object":{…}},"time":…}`.
//!
//! Only object-created events name something to read; every other event (removals, restores, test events)
//! is reported as skipped, which is not an error. Keys in `Records` are URL-encoded the way HTML forms are
//! (`+` for a space, `%XX`), so `photos/my cat.jpg` arrives as `photos/my+cat.jpg`; EventBridge sends keys
//! as they are.

use serde_json::{Map, Value};

/// An object-created event: the object to read, and what identifies the version that was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub bucket: String,
    /// The object key, decoded.
    pub key: String,
    pub size: Option<u64>,
    /// Without quotes.
    pub etag: Option<String>,
    /// Set where the bucket keeps versions.
    pub version_id: Option<String>,
    /// When the object was written (the event time), Unix ms.
    pub event_time_ms: Option<i64>,
}

/// One event of a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Created(Created),
    /// An event with nothing to read (a test event, a removal...), by its name.
    Skipped {
        event: String,
    },
}

/// Why a message is not a notification this reader understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error(
        "not an S3 event notification: expected MinIO's {{\"EventName\",\"Key\",\"Records\"}}, S3's {{\"Records\"}} \
         (or an SNS envelope of it) or an EventBridge event, found {0}"
    )]
    Unknown(String),
    #[error("event {index}: {reason}")]
    BadRecord { index: usize, reason: String },
}

/// The events of one Kafka message's value, in order.
pub fn parse(payload: &[u8]) -> Result<Vec<Entry>, NotificationError> {
    let value: Value = serde_json::from_slice(payload).map_err(|e| NotificationError::NotJson(e.to_string()))?;
    entries(&value, true)
}

fn entries(value: &Value, envelope_allowed: bool) -> Result<Vec<Entry>, NotificationError> {
    let Some(obj) = value.as_object() else {
        return Err(NotificationError::Unknown(format!("a JSON {}", kind(value))));
    };
    if let Some(records) = obj.get("Records") {
        // MinIO sends `"Records": null` for nothing; S3 never sends an empty list, but it is no error.
        let Some(list) = records.as_array().or_else(|| records.is_null().then_some(&EMPTY)) else {
            return Err(NotificationError::Unknown(format!("\"Records\" as a JSON {}", kind(records))));
        };
        return list.iter().enumerate().map(|(index, r)| record(r, index)).collect();
    }
    if envelope_allowed
        && obj.get("Type").and_then(Value::as_str) == Some("Notification")
        && let Some(message) = obj.get("Message").and_then(Value::as_str)
    {
        let inner: Value = serde_json::from_str(message)
            .map_err(|e| NotificationError::NotJson(format!("the SNS envelope's Message: {e}")))?;
        return entries(&inner, false);
    }
    if let (Some(detail_type), Some(detail)) = (obj.get("detail-type").and_then(Value::as_str), obj.get("detail")) {
        return eventbridge(detail_type, detail, obj).map(|e| vec![e]);
    }
    // S3's check when a notification is configured: {"Service":"Amazon S3","Event":"s3:TestEvent",...}.
    if let Some(event) = obj.get("Event").and_then(Value::as_str) {
        return Ok(vec![Entry::Skipped { event: event.to_string() }]);
    }
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).take(6).collect();
    if obj.len() > keys.len() {
        keys.push("…");
    }
    Err(NotificationError::Unknown(format!("an object with keys [{}]", keys.join(", "))))
}

static EMPTY: Vec<Value> = Vec::new();

/// One element of `Records` (AWS and MinIO share the layout).
fn record(r: &Value, index: usize) -> Result<Entry, NotificationError> {
    let bad = |reason: String| NotificationError::BadRecord { index, reason };
    let name = r.get("eventName").and_then(Value::as_str).ok_or_else(|| bad("no eventName".into()))?;
    if !is_created(name) {
        return Ok(Entry::Skipped { event: name.to_string() });
    }
    let s3 = r.get("s3").ok_or_else(|| bad(format!("{name} without an \"s3\" field")))?;
    let bucket = text(s3.pointer("/bucket/name")).ok_or_else(|| bad("no s3.bucket.name".into()))?;
    let raw_key = text(s3.pointer("/object/key")).ok_or_else(|| bad("no s3.object.key".into()))?;
    let key = query_unescape(&raw_key).map_err(|e| bad(format!("object key {raw_key:?}: {e}")))?;
    let object = s3.get("object");
    Ok(Entry::Created(Created {
        bucket,
        key,
        size: object.and_then(|o| o.get("size")).and_then(Value::as_u64),
        etag: object.and_then(|o| text(o.get("eTag"))).map(unquote),
        version_id: object.and_then(|o| text(o.get("versionId"))),
        event_time_ms: r.get("eventTime").and_then(Value::as_str).and_then(time_ms),
    }))
}

fn eventbridge(detail_type: &str, detail: &Value, envelope: &Map<String, Value>) -> Result<Entry, NotificationError> {
    if detail_type != "Object Created" {
        return Ok(Entry::Skipped { event: detail_type.to_string() });
    }
    let bad = |reason: &str| NotificationError::BadRecord { index: 0, reason: reason.into() };
    let object = detail.get("object").ok_or_else(|| bad("no detail.object"))?;
    Ok(Entry::Created(Created {
        bucket: text(detail.pointer("/bucket/name")).ok_or_else(|| bad("no detail.bucket.name"))?,
        key: text(object.get("key")).ok_or_else(|| bad("no detail.object.key"))?,
        size: object.get("size").and_then(Value::as_u64),
        etag: text(object.get("etag")).map(unquote),
        version_id: text(object.get("version-id")),
        event_time_ms: envelope.get("time").and_then(Value::as_str).and_then(time_ms),
    }))
}

/// `s3:ObjectCreated:Put` (MinIO, and S3 itself in the `eventName` of older records) or `ObjectCreated:Put`.
fn is_created(event: &str) -> bool {
    event.strip_prefix("s3:").unwrap_or(event).starts_with("ObjectCreated:")
}

/// A non-empty string field.
fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string)
}

fn unquote(s: String) -> String {
    s.trim_matches('"').to_string()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `2024-05-10T12:00:00.123Z` (S3, MinIO) or `2021-11-12T00:00:00Z` (EventBridge) as Unix ms.
fn time_ms(s: &str) -> Option<i64> {
    framewire_common::time::parse_ms(s).ok()
}

/// Undoes form encoding (Go's `url.QueryEscape`, which MinIO uses, and S3's own): `+` is a space, `%XX` a
/// byte; the bytes must make UTF-8.
pub fn query_unescape(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
                let Some(b) = byte else { return Err(format!("bad escape at byte {i}")) };
                out.push(b);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "the decoded key is not UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIO: &str = r#"{"EventName":"s3:ObjectCreated:Put","Key":"uploads/front/my cat.jpg","Records":[{"eventVersion":"2.0","eventSource":"minio:s3","awsRegion":"","eventTime":"2024-05-10T12:00:00.123Z","eventName":"s3:ObjectCreated:Put","userIdentity":{"principalId":"minioadmin"},"requestParameters":{"principalId":"minioadmin","region":"","sourceIPAddress":"172.18.0.1"},"responseElements":{"content-length":"0"},"s3":{"s3SchemaVersion":"1.0","configurationId":"Config","bucket":{"name":"uploads","ownerIdentity":{"principalId":"minioadmin"},"arn":"arn:aws:s3:::uploads"},"object":{"key":"front%2Fmy+cat.jpg","size":4096,"eTag":"d41d8cd98f00b204e9800998ecf8427e","contentType":"image/jpeg","userMetadata":{"content-type":"image/jpeg"},"sequencer":"17CE4A6C2D3E1F00"}},"source":{"host":"172.18.0.1","port":"","userAgent":"MinIO"}}]}"#;

    fn created(bucket: &str, key: &str) -> Created {
        Created {
            bucket: bucket.into(),
            key: key.into(),
            size: None,
            etag: None,
            version_id: None,
            event_time_ms: None,
        }
    }

    #[test]
    fn minio_kafka_target_record() {
        let e = parse(MINIO.as_bytes()).unwrap();
        assert_eq!(
            e,
            [Entry::Created(Created {
                size: Some(4096),
                etag: Some("d41d8cd98f00b204e9800998ecf8427e".into()),
                event_time_ms: Some(1_715_342_400_123),
                ..created("uploads", "front/my cat.jpg")
            })]
        );
    }

    #[test]
    fn aws_s3_event_with_versions_and_quoted_etag() {
        let v = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventTime":"1970-01-01T00:00:01.000Z",
            "eventName":"ObjectCreated:CompleteMultipartUpload","s3":{"bucket":{"name":"cams"},
            "object":{"key":"yard/clip%281%29.mp4","size":10,"eTag":"\"abc-2\"","versionId":"v7","sequencer":"0A"}}}]}"#;
        let e = parse(v.as_bytes()).unwrap();
        assert_eq!(
            e,
            [Entry::Created(Created {
                size: Some(10),
                etag: Some("abc-2".into()),
                version_id: Some("v7".into()),
                event_time_ms: Some(1000),
                ..created("cams", "yard/clip(1).mp4")
            })]
        );
    }

    #[test]
    fn sns_envelope_carries_the_s3_event_as_a_string() {
        let inner = r#"{"Records":[{"eventName":"ObjectCreated:Put","eventTime":"2024-01-01T00:00:00Z","s3":{"bucket":{"name":"b"},"object":{"key":"a+b%2Bc.png"}}}]}"#;
        let sns = serde_json::json!({"Type": "Notification", "MessageId": "1", "Message": inner}).to_string();
        let e = parse(sns.as_bytes()).unwrap();
        assert_eq!(
            e,
            [Entry::Created(Created { event_time_ms: Some(1_704_067_200_000), ..created("b", "a b+c.png") })]
        );
    }

    #[test]
    fn eventbridge_object_created_keys_are_not_escaped() {
        let v = r#"{"version":"0","id":"1","detail-type":"Object Created","source":"aws.s3","time":"2021-11-12T00:00:00Z",
            "detail":{"version":"0","bucket":{"name":"cams"},"object":{"key":"raw/2023-08-08T14:03:40+1.jpg","size":5,
            "etag":"e1","version-id":"v1","sequencer":"00"},"reason":"PutObject"}}"#;
        let e = parse(v.as_bytes()).unwrap();
        assert_eq!(
            e,
            [Entry::Created(Created {
                size: Some(5),
                etag: Some("e1".into()),
                version_id: Some("v1".into()),
                event_time_ms: Some(1_636_675_200_000),
                ..created("cams", "raw/2023-08-08T14:03:40+1.jpg")
            })]
        );
        let deleted = v.replace("Object Created", "Object Deleted");
        assert_eq!(parse(deleted.as_bytes()).unwrap(), [Entry::Skipped { event: "Object Deleted".into() }]);
    }

    #[test]
    fn test_events_and_other_event_names_are_skipped() {
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-01-01T00:00:00.000Z","Bucket":"b"}"#;
        assert_eq!(parse(test.as_bytes()).unwrap(), [Entry::Skipped { event: "s3:TestEvent".into() }]);
        let removed = MINIO.replace("s3:ObjectCreated:Put", "s3:ObjectRemoved:Delete");
        assert_eq!(parse(removed.as_bytes()).unwrap(), [Entry::Skipped { event: "s3:ObjectRemoved:Delete".into() }]);
        assert_eq!(parse(br#"{"EventName":"s3:ObjectCreated:Put","Key":"b/k","Records":null}"#).unwrap(), []);
    }

    #[test]
    fn garbage_is_an_error_that_says_what_was_expected() {
        assert!(matches!(parse(b"\xff\x00not json"), Err(NotificationError::NotJson(_))));
        let e = parse(br#"{"hello":"world"}"#).unwrap_err();
        assert!(e.to_string().contains("not an S3 event notification") && e.to_string().contains("hello"), "{e}");
        assert!(matches!(parse(b"[1,2]"), Err(NotificationError::Unknown(_))));
        assert!(matches!(parse(br#"{"Records":"x"}"#), Err(NotificationError::Unknown(_))));
        let no_key = r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{}}}]}"#;
        assert_eq!(
            parse(no_key.as_bytes()).unwrap_err(),
            NotificationError::BadRecord { index: 0, reason: "no s3.object.key".into() }
        );
        let bad_escape =
            r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"a%zz"}}}]}"#;
        assert!(matches!(parse(bad_escape.as_bytes()), Err(NotificationError::BadRecord { .. })));
    }

    #[test]
    fn unescapes_form_encoding() {
        assert_eq!(query_unescape("front%2Fmy+cat%C3%A9.jpg").unwrap(), "front/my caté.jpg");
        assert_eq!(query_unescape("plain/key.png").unwrap(), "plain/key.png");
        assert!(query_unescape("cut%2").is_err());
        assert!(query_unescape("%ff").is_err(), "not UTF-8");
    }
}
