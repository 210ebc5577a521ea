//! Names shared by every stage. Changing one here changes it everywhere.

/// Input topic: `Frame` messages keyed by camera id.
pub const TOPIC_FRAMES: &str = "raw_video_frames";
/// Output topic: `Detections` messages keyed by camera id.
pub const TOPIC_DETECTIONS: &str = "processed_images";
/// Suffix of the dead-letter topic for a given input topic (`raw_video_frames.dlq`).
pub const DLQ_SUFFIX: &str = ".dlq";
/// Default consumer group of the `detect` replicas.
pub const GROUP_DETECT: &str = "framewire-detect";
/// Default consumer group of `ingest --uploads` (upload notifications from a bucket).
pub const GROUP_INGEST_UPLOADS: &str = "framewire-ingest-uploads";

/// Header carrying the schema version of the payload, so a reader can reject a message without decoding it.
pub const HEADER_SCHEMA: &str = "framewire-schema";
/// Header carrying the protobuf message type of the payload.
pub const HEADER_TYPE: &str = "framewire-type";
/// Dead-letter header: why the message could not be processed.
pub const HEADER_DLQ_REASON: &str = "framewire-dlq-reason";
/// Dead-letter header: `topic/partition/offset` the message was read from.
pub const HEADER_DLQ_SOURCE: &str = "framewire-dlq-source";

/// Value of [`HEADER_TYPE`] for a `Frame`.
pub const TYPE_FRAME: &str = "framewire.v1.Frame";
/// Value of [`HEADER_TYPE`] for `Detections`.
pub const TYPE_DETECTIONS: &str = "framewire.v1.Detections";

/// The dead-letter topic for `input_topic`.
pub fn dlq_topic(input_topic: &str) -> String {
    format!("{input_topic}{DLQ_SUFFIX}")
}
