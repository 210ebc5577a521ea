//! Alert emails: the outbox row a rule with `email` adds, and the message built from it at each attempt,
//! with the alert's event's best snapshot attached.
//!
//! Every attempt carries the same `Message-ID: <ALERT_ID@framewire>` and `X-Framewire-Alert-Id: ALERT_ID`:
//! delivery is at least once, and a receiving system can drop repeats by either.
//!
//! The snapshot is saved before the alert's transaction commits, so it is normally there at the first
//! attempt. One that cannot be read yet (an object store still catching up, a failed read) is waited for,
//! without counting attempts, until [`SNAPSHOT_WAIT`] after the alert was stored; then the email goes
//! without it and its body says why. An event with no snapshot at all (its label not in
//! `--snapshot-classes`, snapshots off, or saving it failed) is mailed at once without one.

use std::time::Duration;

use framewire_common::objects::Objects;
use lettre::Message;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use serde::{Deserialize, Serialize};

use crate::alerts::Alert;
use crate::repo::{Db, OutboxKind, OutboxMessage, RepoError};

/// Longest wait, after the alert was stored, for a snapshot that cannot be read yet.
pub const SNAPSHOT_WAIT: Duration = Duration::from_secs(10);

/// An email's outbox payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EmailJob {
    pub to: Vec<String>,
    /// The event (scope "") the alert's object belongs to: where its best snapshot is recorded.
    pub event: Option<String>,
    pub alert: Alert,
}

/// The outbox row that mails `alert` to `to`; `event` is the id of the event of the same object.
pub fn outbox_message(alert: &Alert, event: Option<&str>, to: &[String]) -> OutboxMessage {
    let job = EmailJob { to: to.to_vec(), event: event.map(String::from), alert: alert.clone() };
    // Cannot fail: strings and numbers (a non-finite score is written as null).
    let payload = serde_json::to_string(&job).unwrap_or_default();
    OutboxMessage { kind: OutboxKind::Email, target: to.join(", "), key: alert.camera.clone(), payload }
}

/// The snapshot an attempt attaches, or why it has none.
#[derive(Debug, Clone, PartialEq)]
pub enum Snapshot {
    Attached {
        name: String,
        jpeg: Vec<u8>,
    },
    /// The event has no snapshot.
    None,
    /// It has one, but it could not be read in time.
    Unavailable {
        path: String,
        error: String,
    },
}

/// The event's best snapshot as it is now; `None` while an unreadable one is still worth waiting for.
pub async fn snapshot(
    db: &mut Db,
    objects: &Objects,
    job: &EmailJob,
    created_ms: i64,
    now_ms: i64,
) -> Result<Option<Snapshot>, RepoError> {
    let Some(event) = &job.event else { return Ok(Some(Snapshot::None)) };
    let Some(path) = db.event(event).await?.and_then(|e| e.best_snapshot) else { return Ok(Some(Snapshot::None)) };
    Ok(match objects.read(&path).await {
        Ok(bytes) => {
            let file = path.rsplit(['/', '\\']).next().unwrap_or("snapshot.jpg");
            Some(Snapshot::Attached { name: format!("{}-{file}", job.alert.camera), jpeg: bytes.to_vec() })
        }
        Err(_) if now_ms - created_ms < SNAPSHOT_WAIT.as_millis() as i64 => None,
        Err(e) => Some(Snapshot::Unavailable { path, error: e.to_string() }),
    })
}

/// The message of one attempt. An error is about the row itself (a recipient that is not an address), so
/// another attempt cannot help.
pub fn compose(job: &EmailJob, from: &Mailbox, snapshot: &Snapshot) -> Result<Message, String> {
    let a = &job.alert;
    let mut m = Message::builder()
        .from(from.clone())
        .subject(format!("framewire alert {}: {} on {}", a.rule, a.label, a.camera))
        .message_id(Some(format!("<{}@framewire>", a.id)))
        .header(AlertId(a.id.clone()));
    for to in &job.to {
        m = m.to(to.parse().map_err(|e| format!("recipient {to:?}: {e}"))?);
    }
    let text = SinglePart::plain(body(job, snapshot));
    let built = match snapshot {
        Snapshot::Attached { name, jpeg } => {
            let jpeg_type = ContentType::parse("image/jpeg").map_err(|e| e.to_string())?;
            let file = Attachment::new(name.clone()).body(jpeg.clone(), jpeg_type);
            m.multipart(MultiPart::mixed().singlepart(text).singlepart(file))
        }
        _ => m.singlepart(text),
    };
    built.map_err(|e| e.to_string())
}

fn body(job: &EmailJob, snapshot: &Snapshot) -> String {
    let a = &job.alert;
    let snap = match snapshot {
        Snapshot::Attached { name, .. } => format!("attached ({name})"),
        Snapshot::None => "none".to_string(),
        Snapshot::Unavailable { path, error } => format!("not attached: {path} could not be read: {error}"),
    };
    let event = match &job.event {
        Some(id) => format!("{id} (subscribe show {id})"),
        None => "-".to_string(),
    };
    format!(
        "Alert rule \"{rule}\" fired: {label} on camera {camera}.\n\n\
         Rule:     {rule}\n\
         Camera:   {camera}\n\
         Label:    {label}\n\
         Score:    {score:.2}\n\
         Time:     {time} (UTC, capture time of the frame that raised it)\n\
         Started:  {started}, seen for {seen:.1} s\n\
         Model:    {model}\n\
         Alert:    {id}\n\
         Event:    {event}\n\
         Snapshot: {snap}\n",
        rule = a.rule,
        label = a.label,
        camera = a.camera,
        score = a.score,
        time = utc(a.capture_ms),
        started = utc(a.started_ms),
        seen = a.duration_ms as f64 / 1000.0,
        model = a.model,
        id = a.id,
    )
}

/// ISO 8601 in UTC, to the millisecond.
fn utc(ms: i64) -> String {
    framewire_common::time::rfc3339_ms(ms)
}

/// `X-Framewire-Alert-Id`: the alert's id, the same on every attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertId(pub String);

impl Header for AlertId {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Framewire-Alert-Id")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AlertId(s.trim().to_string()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> EmailJob {
        let alert = Alert {
            id: "0123456789abcdef".into(),
            rule: "door".into(),
            camera: "front".into(),
            label: "person".into(),
            model: "ssd@1".into(),
            score: 0.875,
            seq: 42,
            capture_ms: 1_767_225_600_250,
            started_ms: 1_767_225_598_750,
            duration_ms: 1500,
            bbox: [1.0, 2.0, 3.0, 4.0],
        };
        let m = outbox_message(&alert, Some("fedcba9876543210"), &["ops@example.com".into()]);
        assert_eq!((m.kind, m.target.as_str(), m.key.as_str()), (OutboxKind::Email, "ops@example.com", "front"));
        serde_json::from_str(&m.payload).unwrap()
    }

    fn from() -> Mailbox {
        "framewire@cams.example.com".parse().unwrap()
    }

    #[test]
    fn the_message_has_the_stable_ids_the_alert_and_the_snapshot_attached() {
        let jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 0xFF, 0xD9];
        let snap = Snapshot::Attached { name: "front-42-ssd.jpg".into(), jpeg: jpeg.clone() };
        let text = String::from_utf8(compose(&job(), &from(), &snap).unwrap().formatted()).unwrap();
        for want in [
            "Message-ID: <0123456789abcdef@framewire>",
            "X-Framewire-Alert-Id: 0123456789abcdef",
            "Subject: framewire alert door: person on front",
            "To: ops@example.com",
            "From: framewire@cams.example.com",
            "Content-Type: multipart/mixed",
            "Camera:   front",
            "Label:    person",
            "Score:    0.88",
            "Time:     2026-01-01T00:00:00.250Z (UTC",
            "Event:    fedcba9876543210 (subscribe show fedcba9876543210)",
            "Snapshot: attached (front-42-ssd.jpg)",
            "Content-Type: image/jpeg",
            "Content-Disposition: attachment; filename=\"front-42-ssd.jpg\"",
            "Content-Transfer-Encoding: base64",
            // The bytes above in base64: the JPEG arrives whole.
            "/9j/4AECA//Z",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
    }

    #[test]
    fn without_a_snapshot_the_body_says_why_and_a_bad_recipient_is_refused() {
        let gone = Snapshot::Unavailable { path: "s3://b/front/42.jpg".into(), error: "no such object".into() };
        let text = String::from_utf8(compose(&job(), &from(), &gone).unwrap().formatted()).unwrap();
        assert!(text.contains("Snapshot: not attached: s3://b/front/42.jpg could not be read"), "{text}");
        assert!(!text.contains("multipart"), "{text}");
        let text = String::from_utf8(compose(&job(), &from(), &Snapshot::None).unwrap().formatted()).unwrap();
        assert!(text.contains("Snapshot: none"), "{text}");
        let mut bad = job();
        bad.to.push("nobody at all".into());
        assert!(compose(&bad, &from(), &Snapshot::None).unwrap_err().contains("nobody at all"));
    }
}
