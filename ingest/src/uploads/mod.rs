//! Uploads as a source (`ingest --uploads TOPIC`): S3 event notifications consumed from Kafka (MinIO's
//! Kafka target, or S3's events forwarded from SQS, SNS or EventBridge), each created object fetched through
//! the S3 API and published as frames: an image as one frame, a video sampled like a file (`--fps`).
//!
//! - [`notification`]: the notification formats, parsed into the objects to read (pure logic).
//! - [`camera_id`]: the camera an object belongs to, from its bucket and key (`--camera-from`).
//! - [`frames`]: one object decoded into frames, with the seqs its identity gives them.
//! - [`object`]: one object from fetch to acknowledged frames, retried while the cause may pass.
//! - [`run`]: the consumer loop: notification in, frames or a dead letter out, then the offset.
//! - [`events`]: their named outcomes, each with its log line and metric.

pub mod camera_id;
pub mod events;
pub mod frames;
pub mod notification;
pub mod object;
pub mod run;

use std::time::Duration;

use framewire_proto::names;

pub use camera_id::CameraPattern;
pub use run::run;

/// The `ingest --uploads` flags; the rest (`--topic`, `--fps`, `--max-message-bytes`, `--jpeg-quality`,
/// `--s3-*`...) are ingest's own.
#[derive(Debug, Clone, clap::Args)]
pub struct UploadArgs {
    /// Read S3 event notifications (MinIO's Kafka target, or S3 events forwarded from SQS, SNS or
    /// EventBridge) from this topic and publish every uploaded image or video as frames, instead of reading
    /// cameras. Objects are fetched with the `--s3-*` settings and the AWS_* credentials.
    #[arg(id = "uploads", long = "uploads", env = "FRAMEWIRE_UPLOADS_TOPIC", value_name = "TOPIC")]
    pub topic: Option<String>,

    /// Consumer group for --uploads: ingest replicas in one group share the notifications.
    #[arg(long = "uploads-group", env = "FRAMEWIRE_UPLOADS_GROUP", default_value = names::GROUP_INGEST_UPLOADS)]
    pub group: String,

    /// Camera id of an uploaded object, from its bucket and key: `{bucket}`, `{key}`, `{dir}` (the key
    /// without its file name), `{1}`, `{2}`... (the key's folders). A folder the key lacks gives the bucket
    /// name, so the default files `front/img.jpg` under `front` and `img.jpg` under its bucket.
    #[arg(long, env = "FRAMEWIRE_CAMERA_FROM", default_value = "{1}")]
    pub camera_from: CameraPattern,

    /// Dead-letter topic for notifications whose object is gone, unreadable, not an image or video, or that
    /// are not notifications at all. Default: <uploads topic>.dlq.
    #[arg(long = "dlq-topic", env = "FRAMEWIRE_DLQ_TOPIC")]
    pub dlq_topic: Option<String>,

    /// Objects larger than this are dead-lettered instead of read (the object is held in memory while it is
    /// decoded).
    #[arg(long, env = "FRAMEWIRE_MAX_OBJECT_BYTES", default_value_t = 1 << 30)]
    pub max_object_bytes: u64,

    /// Exit when no notification arrived for this long (e.g. 10s); for batch jobs and tests.
    #[arg(long, env = "FRAMEWIRE_IDLE_EXIT", value_parser = humantime::parse_duration)]
    pub idle_exit: Option<Duration>,
}

impl UploadArgs {
    pub fn dlq_topic(&self, uploads_topic: &str) -> String {
        self.dlq_topic.clone().unwrap_or_else(|| names::dlq_topic(uploads_topic))
    }
}

/// Why `ingest --uploads` stopped; each says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Ingest(#[from] crate::Error),
    #[error("consuming {topic}: {reason}: {advice}")]
    Consume { topic: String, reason: String, advice: &'static str },
    #[error(
        "the uploads topic {topic} has been missing for {}s (deleted while ingest ran?): create it again, or point \
         --uploads at the topic the bucket notifies",
        waited.as_secs()
    )]
    TopicGone { topic: String, waited: Duration },
    #[error("writing a dead letter to {topic}: {reason}: {advice}")]
    DeadLetter { topic: String, reason: String, advice: &'static str },
}

impl From<framewire_common::Error> for UploadError {
    fn from(e: framewire_common::Error) -> Self {
        UploadError::Ingest(e.into())
    }
}

impl From<rdkafka::error::KafkaError> for UploadError {
    fn from(e: rdkafka::error::KafkaError) -> Self {
        UploadError::Ingest(e.into())
    }
}

/// Why a notification went to the dead-letter topic: the metric's `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadKind {
    /// The object no longer exists (404).
    Gone,
    /// Fetching failed after the retries (or the bucket refused).
    Unreadable,
    /// No picture could be decoded from it.
    NotMedia,
    /// Larger than `--max-object-bytes`.
    TooBig,
    /// The message is not a notification this reader understands.
    BadNotification,
}

impl DeadKind {
    pub const ALL: [DeadKind; 5] =
        [DeadKind::Gone, DeadKind::Unreadable, DeadKind::NotMedia, DeadKind::TooBig, DeadKind::BadNotification];

    pub fn label(self) -> &'static str {
        match self {
            DeadKind::Gone => "gone",
            DeadKind::Unreadable => "unreadable",
            DeadKind::NotMedia => "not_media",
            DeadKind::TooBig => "too_big",
            DeadKind::BadNotification => "bad_notification",
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use crate::Config;

    #[test]
    fn flags_fit_beside_ingest_s_own() {
        Config::command().debug_assert();
        let c = Config::try_parse_from(["ingest", "--uploads", "notes", "--camera-from", "{bucket}-{1}"]).unwrap();
        assert_eq!(c.uploads.topic.as_deref(), Some("notes"));
        assert_eq!(c.uploads.dlq_topic("notes"), "notes.dlq");
        assert_eq!(c.uploads.camera_from.camera("b", "door/x.jpg"), "b-door");
        assert!(Config::try_parse_from(["ingest", "--uploads", "n", "--camera-from", "{nope}"]).is_err());
    }
}
