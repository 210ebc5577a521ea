//! `detect`: a Kafka consumer group that runs an ONNX object detector on every `Frame` and publishes
//! `Detections`. Delivery is at-least-once: a frame's offset is stored only after its result (or its
//! dead letter) is acknowledged by the broker.
//!
//! The pipeline is four stages joined by small bounded channels, so JPEG decoding and preprocessing
//! overlap with inference and a slow stage slows the ones before it. With `--workers N` the two CPU stages
//! run as N lanes, each with its own model session; a camera is given a lane when first seen and keeps
//! it, so its frames stay in order:
//!
//! ```text
//!                     ,-> lane 0:   preprocess (thread) -> inference (thread) -.
//! consumer (thread) -+    ...                                                   +-> output (async: produce,
//!    by partition     `-> lane N-1: preprocess (thread) -> inference (thread) -'       store offsets)
//!                                        \______ dead letters _______/
//! ```
//!
//! A frame is taken only with one of `--max-pending` permits, given back when its result or dead letter is
//! acknowledged: when the output cannot keep up, the consumer pauses its partitions instead of memory
//! growing. A stage that fails for good (a fatal Kafka error, a panic) stops the replica with an error
//! naming it.
//!
//! With `--max-frame-age`, a frame whose result would be older than that is not run through the model
//! (checked before its JPEG is decoded, and again when its turn comes); it travels on in its place and
//! leaves as a Detections marked skipped (stale), so every frame still has a record, in order. Cameras
//! take turns when not all fresh frames can run. See [`freshness`] and [`turns`].
//!
//! Every Detections carries the Frame's stage times (decoded, encoded, published) and detect's: consumed,
//! inference start and end of its batch's model call, produced (handed to the producer).
//!
//! # Layout
//! - [`config`]: the command line (every flag, its environment variable and its parser).
//! - [`run`](mod@run): one replica from start to stop: connecting, starting the stages, draining, committing.
//! - [`consumer`]: group settings, rebalance handling, and the poll loop that pauses the input when full.
//! - [`offsets`]: in-order offset tracking per partition.
//! - [`lanes`]: `--workers`: starting a lane (preprocess + inference) and routing cameras to lanes.
//! - [`stages`]: the jobs that travel between stages, and the preprocess stage.
//! - [`inference`]: the inference stage: the window of frames, the model call, the records in order.
//! - [`freshness`]: `--max-frame-age`: when a frame is stale; [`turns`]: which fresh frames run when not
//!   all can, so that every camera takes its turn.
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
pub mod freshness;
pub mod inference;
pub mod labels;
pub mod lanes;
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
pub mod turns;
pub mod yolo;

pub use config::{Config, SummaryFormat};
pub use error::{Error, Result};
pub use run::run;
pub use summary::Summary;
