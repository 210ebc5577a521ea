//! What every framewire binary needs, written once: Kafka client settings and topic set-up, logging,
//! graceful shutdown, and the Prometheus `/metrics` endpoint.
//!
//! # Layout
//! - [`dead_letter`]: cutting a dead letter down when it is refused as too large.
//! - [`kafka`]: the `--brokers`/`-X`/`--kafka-options` flags, client configs, topic creation, reachability check.
//! - [`redact`]: hiding passwords and tokens in URLs and librdkafka settings before anything prints them.
//! - [`telemetry`]: `tracing` set-up from `RUST_LOG`.
//! - [`shutdown`]: a cancellation token fired by Ctrl-C or SIGTERM.
//! - [`metrics`]: a minimal HTTP server for the Prometheus text format.
//! - [`error`]: this crate's error type.

pub mod dead_letter;
pub mod error;
pub mod kafka;
pub mod metrics;
pub mod redact;
pub mod shutdown;
pub mod telemetry;

pub use error::{Error, Result};
