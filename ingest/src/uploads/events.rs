//! `ingest --uploads`'s named outcomes (see [`crate::events`]): notifications in, objects fetched, frames
//! out or a dead letter. Logged one line per notification and object: uploads come far slower than frames.

use std::time::Duration;

use tracing::{info, warn};

use super::{CameraPattern, DeadKind};
use crate::metrics::{Metrics, UploadFigures};

/// `ingest --uploads` is consuming.
#[derive(Debug)]
pub struct UploadsStarted<'a> {
    pub topic: &'a str,
    pub group: &'a str,
    pub frames: &'a str,
    pub dlq: &'a str,
    pub pattern: &'a CameraPattern,
}

impl UploadsStarted<'_> {
    pub fn emit(&self) {
        info!(topic = %self.topic, group = %self.group, frames_topic = %self.frames, dlq_topic = %self.dlq,
            camera_from = %self.pattern, "reading upload notifications");
    }
}

/// A notification was read from the uploads topic; `records` is its events (0 when it could not be parsed).
#[derive(Debug)]
pub struct UploadNotificationReceived {
    pub partition: i32,
    pub offset: i64,
    pub records: usize,
}

impl UploadNotificationReceived {
    pub fn emit(&self, m: &Metrics) {
        m.upload_notifications.inc();
        info!(partition = self.partition, offset = self.offset, records = self.records, "upload notification");
    }
}

/// An event with nothing to read (a test event, a removal...): skipped, not an error.
#[derive(Debug)]
pub struct UploadRecordSkipped<'a> {
    pub partition: i32,
    pub offset: i64,
    pub event: &'a str,
}

impl UploadRecordSkipped<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.upload_skipped.inc();
        info!(partition = self.partition, offset = self.offset, event = %self.event,
            "skipped: not an object-created event");
    }
}

/// An uploaded object was read from object storage.
#[derive(Debug)]
pub struct UploadObjectFetched<'a> {
    pub camera: &'a str,
    pub uri: &'a str,
    pub bytes: u64,
    pub took: Duration,
}

impl UploadObjectFetched<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.upload_objects.inc();
        m.upload_bytes.inc_by(self.bytes);
        info!(camera = %self.camera, object = %self.uri, bytes = self.bytes,
            took_ms = self.took.as_millis() as u64, "object fetched");
    }
}

/// Every frame of an object was acknowledged. `error` is set when decoding stopped part way (a damaged or
/// cut video): the frames before it were published.
#[derive(Debug)]
pub struct UploadFramesPublished<'a> {
    pub camera: &'a str,
    pub uri: &'a str,
    pub frames: u32,
    pub first_seq: u64,
    pub error: Option<&'a crate::Error>,
}

impl UploadFramesPublished<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.upload_frames.inc_by(u64::from(self.frames));
        match self.error {
            None => info!(camera = %self.camera, object = %self.uri, frames = self.frames, first_seq = self.first_seq,
                "object published"),
            Some(e) => warn!(camera = %self.camera, object = %self.uri, frames = self.frames,
                first_seq = self.first_seq, error = %e, "object published up to damage"),
        }
    }
}

/// An object had more sampled frames than a seq leaves room for: the rest were not published.
#[derive(Debug)]
pub struct UploadFramesOverLimit<'a> {
    pub camera: &'a str,
    pub uri: &'a str,
    pub left_out: u64,
    pub fps: Option<f64>,
}

impl UploadFramesOverLimit<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.upload_over_limit.inc_by(self.left_out);
        let limit = super::frames::MAX_FRAMES;
        warn!(camera = %self.camera, object = %self.uri, left_out = self.left_out, fps = ?self.fps,
            "object has more than {limit} sampled frames: the rest were not published; lower --fps");
    }
}

/// A notification went to the dead-letter topic.
#[derive(Debug)]
pub struct UploadDeadLettered<'a> {
    /// `topic/partition/offset` of the notification.
    pub source: &'a str,
    pub kind: DeadKind,
    pub reason: &'a str,
}

impl UploadDeadLettered<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.upload_dead_letters.with_label_values(&[self.kind.label()]).inc();
        warn!(source = %self.source, kind = self.kind.label(), reason = %self.reason,
            "upload notification dead-lettered");
    }
}

/// An object's frames could not all be delivered (or its copy written): it is read and published again
/// after `retry_in`, with the same seqs.
#[derive(Debug)]
pub struct UploadRetrying<'a> {
    pub uri: &'a str,
    pub reason: &'a str,
    pub attempt: u32,
    pub retry_in: Duration,
}

impl UploadRetrying<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.upload_retries.inc();
        warn!(object = %self.uri, reason = %self.reason, attempt = self.attempt,
            retry_in_s = format!("{:.1}", self.retry_in.as_secs_f64()), "object will be published again");
    }
}

/// The consumer or the dead-letter producer hit an error that may pass; it is waited out. `warn` is false
/// for repeats of the same error.
#[derive(Debug)]
pub struct UploadKafkaRetry<'a> {
    pub error: &'a rdkafka::error::KafkaError,
    pub retry_in: Option<Duration>,
    pub warn: bool,
}

impl UploadKafkaRetry<'_> {
    pub fn emit(&self) {
        if self.warn {
            warn!(error = %self.error, retry_in_s = self.retry_in.map(|d| format!("{:.1}", d.as_secs_f64())),
                "Kafka error; retrying");
        }
    }
}

/// A notification's offset could not be stored or committed (its partition was just revoked): the
/// partition's next owner reads it again and republishes the same seqs.
#[derive(Debug)]
pub struct UploadOffsetNotStored<'a> {
    pub partition: i32,
    pub offset: i64,
    pub error: &'a rdkafka::error::KafkaError,
}

impl UploadOffsetNotStored<'_> {
    pub fn emit(&self) {
        warn!(partition = self.partition, offset = self.offset, error = %self.error, "upload offset not stored");
    }
}

/// `ingest --uploads` stopped.
#[derive(Debug)]
pub struct UploadsStopped<'a> {
    pub figures: &'a UploadFigures,
    pub elapsed: Duration,
}

impl UploadsStopped<'_> {
    pub fn emit(&self) {
        let f = self.figures;
        let elapsed_s = format!("{:.1}", self.elapsed.as_secs_f64());
        info!(
            notifications = f.notifications,
            objects = f.objects,
            frames = f.frames,
            skipped = f.skipped,
            dead_letters = f.dead_letters,
            elapsed_s,
            "uploads done"
        );
    }
}
