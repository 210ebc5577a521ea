use std::path::PathBuf;

/// Why ingest could not do its job. Messages name the input and what to check.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("source {0} does not exist")]
    NotFound(PathBuf),
    #[error("cannot open {source_uri} as video: {reason}")]
    Open { source_uri: String, reason: String },
    #[error("cannot read the bucket source {source_uri}: {reason}")]
    Bucket { source_uri: String, reason: String },
    #[error("{0} has no video stream")]
    NoVideo(String),
    #[error("cannot decode video in {source_uri}: {reason}")]
    Decoder { source_uri: String, reason: String },
    #[error("reading {source_uri} failed after {frames} frames: {reason} (the file is damaged or truncated)")]
    Read { source_uri: String, frames: u64, reason: String },
    #[error(
        "{source_uri} ends at {ended_s:.2}s but declares {declared_s:.2}s: the file is truncated ({frames} frames before the cut were published)"
    )]
    Truncated { source_uri: String, ended_s: f64, declared_s: f64, frames: u64 },
    #[error("{source_uri}: no data for {after_s:.1}s (stalled; see --stall-timeout)")]
    Stalled { source_uri: String, after_s: f64 },
    #[error("{source_uri}: gave up after {attempts} failed attempts (last: {last})")]
    GaveUp { source_uri: String, attempts: u32, last: String },
    #[error("config {}: {reason}", path.display())]
    Config { path: PathBuf, reason: String },
    #[error("a {width}x{height} frame cannot be encoded under {limit} bytes even at {min_width}px wide")]
    TooLarge { width: u32, height: u32, limit: usize, min_width: u32 },
    #[error("JPEG encoding failed: {0}")]
    Jpeg(String),
    #[error("pixel format conversion failed: {0}")]
    Scale(String),
    #[error("{failed} of {total} frames were not acknowledged by Kafka (first error: {first})")]
    Undelivered { failed: u64, total: u64, first: String },
    /// The producer cannot deliver any more frames; `reason` says what to fix.
    #[error("Kafka producer stopped: {reason}")]
    Producer { reason: String },
    #[error(transparent)]
    Common(#[from] framewire_common::Error),
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
