//! `subscribe`: readers of the `Detections` stream.
//!
//! # Layout
//! - [`tail`]: print detections as they arrive (human-readable or JSON lines), with a run summary (a line of
//!   text or one JSON object); its outcomes are in [`events::tail`].
//! - [`summary`]: counting frames, labels, duplicates and latency for the summary; [`latency`] the latency
//!   by pipeline stage.
//! - [`metrics`]: Prometheus metrics.
//! - [`store`]: `subscribe store`, the durable store ([`snapshot`]s in a directory or a bucket, [`annotate`]
//!   drawing, [`frames`] frames read back by offset, [`track`] events, [`alerts`] rules); its outcomes are in
//!   [`events::store`].
//! - [`repo`]: the store's database (SQLite/PostgreSQL): all its SQL, typed rows, migrations, and the
//!   [`repo::EventFilter`] that `query` and `web` look things up with.
//! - [`web`]: `subscribe web`, the live page (assets in `src/web/`): token check, live API, the Kafka join of
//!   frames and detections, the detectors' lag, and the stored events' pages.
//! - [`query`]: `subscribe query` and `subscribe show`.

pub mod alerts;
pub mod annotate;
pub mod events;
pub mod frames;
pub mod latency;
pub mod metrics;
pub mod query;
pub mod repo;
pub mod snapshot;
pub mod store;
pub mod summary;
pub mod tail;
pub mod track;
pub mod web;

use framewire_common::kafka::KafkaArgs;

/// Command line of `subscribe`.
#[derive(Debug, clap::Parser)]
#[command(name = "subscribe", version, about = "Watch and store framewire detections")]
pub struct Cli {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub metrics: framewire_common::metrics::MetricsArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print one line per Detections message.
    Tail(tail::TailArgs),
    /// Write every Detections to a database, with snapshots, events and alerts.
    Store(Box<store::StoreArgs>),
    /// List stored detections or events.
    Query(query::QueryArgs),
    /// Print one event and write its snapshot images.
    Show(query::ShowArgs),
    /// Serve the live web view.
    Web(web::WebArgs),
}

/// Errors of the subscribers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Common(#[from] framewire_common::Error),
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
