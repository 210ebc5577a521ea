//! What every framewire binary needs, written once: Kafka client settings and topic set-up, logging,
//! graceful shutdown, and the Prometheus `/metrics` endpoint.
//!
//! # Layout
//! - [`backoff`]: the one retry policy: exponential delays with jitter.
//! - [`dead_letter`]: cutting a dead letter down when it is refused as too large.
//! - [`deliver`]: producing a message (a result or a dead letter) until the broker acknowledges it.
//! - [`failure`]: which Kafka errors pass with time and which need an operator.
//! - [`lag`]: consumer lag per partition, asked of the broker.
//! - [`time`]: wall-clock milliseconds and microseconds since the epoch.
//! - [`kafka`]: the `--brokers`/`-X`/`--kafka-options` flags, client configs, topic creation, reachability check that tells a refusing broker (credentials, TLS) from an absent one.
//! - [`objects`]: object storage (S3/MinIO, GCS, Azure, local directories) named by URL, one client per bucket.
//! - [`redact`]: hiding passwords and tokens in URLs and librdkafka settings before anything prints them.
//! - [`summary`]: the exit summary's format, text or one JSON line.
//! - [`telemetry`]: `tracing` set-up from `RUST_LOG`.
//! - [`shutdown`]: a cancellation token fired by Ctrl-C or SIGTERM.
//! - [`metrics`]: a minimal HTTP server for the Prometheus text format.
//! - [`error`]: this crate's error type.

pub mod backoff;
pub mod dead_letter;
pub mod deliver;
pub mod error;
pub mod failure;
pub mod kafka;
pub mod lag;
pub mod metrics;
pub mod objects;
pub mod redact;
pub mod shutdown;
pub mod summary;
pub mod telemetry;
pub mod time;

pub use error::{Error, Result};
