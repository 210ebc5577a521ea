//! `detect`: a Kafka consumer group that runs an ONNX object detector on every `Frame` and publishes
//! `Detections`. Delivery is at-least-once: a frame's offset is stored only after its result (or its
//! dead letter) is acknowledged by the broker.
//!
//! The pipeline is four stages joined by small bounded channels, so JPEG decoding and preprocessing
//! overlap with inference and a slow stage slows the ones before it:
//!
//! ```text
//! consumer (thread) -> preprocess (thread) -> inference (thread) -> output (async: produce, store offsets)
//!                           \___________ dead letters ____________/
//! ```
//!
//! A frame is taken only with one of `--max-pending` permits, given back when its result or dead letter is
//! acknowledged: when the output cannot keep up, the consumer pauses its partitions instead of memory
//! growing. A stage that fails for good (a fatal Kafka error, a panic) stops the replica with an error
//! naming it.
//!
//! # Layout
//! - [`config`]: the command line (every flag, its environment variable and its parser).
//! - [`run`](mod@run): one replica from start to stop: connecting, starting the stages, draining, committing.
//! - [`consumer`]: group settings, rebalance handling, and the poll loop that pauses the input when full.
//! - [`offsets`]: in-order offset tracking per partition.
//! - [`stages`]: the preprocess and inference stages, and the jobs that travel between stages.
//! - [`preprocess`]: JPEG decode, resize, normalise.
//! - [`model`]: the ONNX Runtime session and decoding to boxes; [`runtime`] loading ONNX Runtime and
//!   choosing where it runs; [`spec`] the model's metadata file.
//! - [`ssd`], [`yolo`], [`nms`], [`labels`]: output decoding.
//! - [`output`]: publishing results and dead letters, storing offsets once acknowledged.
//! - [`status`]: the periodic status line and the consumer lag gauge.
//! - [`supervise`]: stage threads and tasks whose failure or panic stops the replica.
//! - [`events`]: every outcome (frame detected, dead letter, delivery retried, ...) with its log line and
//!   metric; [`metrics`] declares the metrics.
//! - [`summary`]: the exit summary, as text or JSON.
//! - [`error`]: this crate's error type.

pub mod config;
pub mod consumer;
pub mod error;
pub mod events;
pub mod labels;
pub mod metrics;
pub mod model;
pub mod nms;
pub mod offsets;
pub mod output;
pub mod preprocess;
pub mod run;
pub mod runtime;
pub mod spec;
pub mod ssd;
pub mod stages;
pub mod status;
pub mod summary;
pub mod supervise;
pub mod yolo;

pub use config::{Config, SummaryFormat};
pub use error::{Error, Result};
pub use run::run;
pub use summary::Summary;
