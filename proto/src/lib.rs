//! framewire's wire schema: the protobuf messages that travel on Kafka, the names that tie the pipeline
//! together (topics, headers), and conversions to the JSON form printed by `subscribe tail --json`.
//!
//! This crate does no I/O.
//!
//! # Layout
//! - [`v1`]: generated `Frame`, `Box`, `Detections` (from `proto/framewire.proto`).
//! - [`names`]: topic names, header keys, default group ids.
//! - [`json`]: the stable JSON view of `Detections`.
//! - [`codec`]: decoding with schema-version checks.
//! - [`stages`]: a result's latency split by pipeline stage.

pub mod codec;
pub mod json;
pub mod names;
pub mod stages;

/// Generated types for `package framewire.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/framewire.v1.rs"));
}

pub use codec::{DecodeError, decode_detections, decode_frame};
pub use v1::{Box as DetectionBox, CaptureClock, Detections, Encoding, Frame, Skipped, SourceObject, StageTimes};

/// The schema version this build writes, and the newest it reads.
pub const SCHEMA_VERSION: u32 = 1;
