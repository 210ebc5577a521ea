//! `subscribe store`: every `Detections` into a database, with snapshots, events and alerts.
//!
//! ```text
//!  processed_images ──batch──► snapshots (frame read back from raw_video_frames by offset, boxes drawn)
//!                              trackers (events; one per alert rule)
//!                              one DB transaction: frames, boxes, events, alerts, cursors, outbox
//!                              ──commit──► Kafka offsets committed
//!  outbox ──► `events` / `alerts` topics, webhooks, emails (rows deleted once delivered)
//! ```
//!
//! Offsets are committed only after the transaction commits, so a crash or a database outage loses
//! nothing: the batch comes again and the upserts (keyed by camera + seq + model) make it land once.
//! Tracker state is part of the same transaction (open events and per-camera cursors), so a redelivered
//! frame neither extends an event twice nor starts a second one. Topic records and webhooks go through an
//! outbox table written in that transaction: they are sent at least once, even across a crash.
//!
//! # Layout
//! - `run`: start-up, the consume → write → commit loop, shutdown.
//! - `batch`: one message's rows (trackers, alerts, event records) and the batch they add up to.
//! - `snapshots`: reading a frame back and saving it annotated; the retention sweep.
//! - `writer`: connecting, writing a batch with retries while the database is down, restoring trackers.
//! - `dead_letter`: messages that are not Detections, to the dead-letter topic.
//! - `outbox`: delivering the outbox's records, webhooks and emails.
//! - `email`: an alert email's outbox row, and its message with the snapshot attached.
//! - `smtp`: `--smtp-url` and the transport it makes; what an SMTP answer means (retry or give up).
//! - `error`: [`StoreError`], why the store stopped.
//! - SQL lives in [`crate::repo`]; outcomes (log line + metric) in [`crate::events::store`].

mod batch;
mod dead_letter;
mod email;
mod error;
mod outbox;
mod run;
mod smtp;
mod snapshots;
mod writer;

use std::path::PathBuf;
use std::time::Duration;

use framewire_proto::names;
use serde::Serialize;

use crate::snapshot::SnapshotArgs;
pub use error::StoreError;
use framewire_common::summary::Format;
pub use run::run;
pub use smtp::SmtpArgs;

#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Database: sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DB (TLS as libpq:
    /// ?sslmode=verify-full&sslrootcert=CA.pem).
    #[arg(long, env = "FRAMEWIRE_DB", hide_env_values = true, default_value = "sqlite://framewire.db")]
    pub db: String,

    /// Topic of Detections to store.
    #[arg(long, env = "FRAMEWIRE_DETECTIONS_TOPIC", default_value = names::TOPIC_DETECTIONS)]
    pub topic: String,

    /// Topic the frames came from (used when a Detections message does not name it).
    #[arg(long, env = "FRAMEWIRE_FRAMES_TOPIC", default_value = names::TOPIC_FRAMES)]
    pub frames_topic: String,

    /// Consumer group; replicas of `store` with one group share the partitions.
    #[arg(long, env = "FRAMEWIRE_STORE_GROUP", default_value = "framewire-store")]
    pub group: String,

    /// Static group membership (group.instance.id): a restarted replica gets its partitions back at once
    /// instead of after the session timeout. Give every replica its own.
    #[arg(long, env = "FRAMEWIRE_INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// Topic for event records (JSON: started / ended).
    #[arg(long, env = "FRAMEWIRE_EVENTS_TOPIC", default_value = "events")]
    pub events_topic: String,

    /// Topic for alert records (JSON).
    #[arg(long, env = "FRAMEWIRE_ALERTS_TOPIC", default_value = "alerts")]
    pub alerts_topic: String,

    /// Dead-letter topic for messages that are not Detections. Default: <topic>.dlq.
    #[arg(long, env = "FRAMEWIRE_STORE_DLQ_TOPIC")]
    pub dlq_topic: Option<String>,

    /// Partitions for the events, alerts and dead-letter topics if store has to create them.
    #[arg(long, env = "FRAMEWIRE_PARTITIONS", default_value_t = 4)]
    pub partitions: i32,

    /// Alert rules (TOML, `[[rule]]` tables).
    #[arg(long, env = "FRAMEWIRE_ALERT_RULES")]
    pub rules: Option<PathBuf>,

    /// Least overlap (IoU) for a box to continue a track.
    #[arg(long, env = "FRAMEWIRE_TRACK_IOU", default_value_t = 0.2)]
    pub track_iou: f32,

    /// An event ends when its object has not been seen for this long.
    #[arg(long, env = "FRAMEWIRE_EVENT_GAP", default_value = "3s", value_parser = humantime::parse_duration)]
    pub event_gap: Duration,

    /// Most messages per database transaction.
    #[arg(long, env = "FRAMEWIRE_STORE_MAX_BATCH", default_value_t = 500)]
    pub max_batch: usize,

    /// Longest wait to fill a batch.
    #[arg(long, env = "FRAMEWIRE_STORE_BATCH_WAIT", default_value = "200ms", value_parser = humantime::parse_duration)]
    pub batch_wait: Duration,

    /// Longest pause between retries while the database is down.
    #[arg(long, env = "FRAMEWIRE_DB_RETRY_MAX", default_value = "10s", value_parser = humantime::parse_duration)]
    pub retry_max: Duration,

    /// Attempts to deliver a webhook before it is given up (logged and counted).
    #[arg(long, env = "FRAMEWIRE_WEBHOOK_RETRIES", default_value_t = 5)]
    pub webhook_retries: u32,

    /// Alert emails: the SMTP server, the sender, retries.
    #[command(flatten)]
    pub smtp: SmtpArgs,

    /// A new group starts at the newest message instead of the oldest retained one.
    #[arg(long)]
    pub from_latest: bool,

    /// Exit when no message arrived for this long (e.g. 10s); for batch jobs and tests.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub idle_exit: Option<Duration>,

    /// How often to log a status line.
    #[arg(long, env = "FRAMEWIRE_STATUS_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub status_interval: Duration,

    /// Exit summary: `text` (one line) or `json` (one JSON object on one line, for scripts).
    #[arg(long, env = "FRAMEWIRE_SUMMARY_FORMAT", value_enum, default_value = "text")]
    pub summary_format: Format,

    #[command(flatten)]
    pub snapshots: SnapshotArgs,

    /// Object storage for snapshots given as URLs (`s3://…`): endpoint, region, retries.
    #[command(flatten)]
    pub objects: framewire_common::objects::ObjectStoreArgs,
}

impl StoreArgs {
    fn dlq_topic(&self) -> String {
        self.dlq_topic.clone().unwrap_or_else(|| names::dlq_topic(&self.topic))
    }
}

/// Figures of a finished run.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct StoreSummary {
    pub messages: u64,
    pub frames: u64,
    pub boxes: u64,
    pub duplicates: u64,
    pub dead_letters: u64,
    pub snapshots: u64,
    pub snapshot_errors: u64,
    pub events: u64,
    pub alerts: u64,
    pub db_retries: u64,
    /// Records of frames detect skipped as stale (`--max-frame-age`): counted, not stored.
    pub skipped: u64,
    /// Frames ingest left out as unchanged (motion gating) before the frames stored.
    pub unchanged: u64,
}

impl StoreSummary {
    /// The summary as `format` prints it: one line either way.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => self.text(),
            Format::Json => framewire_common::summary::json("store", self),
        }
    }

    fn text(&self) -> String {
        format!(
            "stored {} frames ({} boxes) from {} messages; {} redelivered, {} dead-lettered, {} skipped as stale, {} left out unchanged; {} snapshots ({} failed), {} events, {} alerts; {} database retries",
            self.frames,
            self.boxes,
            self.messages,
            self.duplicates,
            self.dead_letters,
            self.skipped,
            self.unchanged,
            self.snapshots,
            self.snapshot_errors,
            self.events,
            self.alerts,
            self.db_retries
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_reads_the_same_as_text_and_as_json() {
        let s =
            StoreSummary { messages: 21, frames: 20, boxes: 31, dead_letters: 1, db_retries: 2, ..Default::default() };
        assert_eq!(
            s.render(Format::Text),
            "stored 20 frames (31 boxes) from 21 messages; 0 redelivered, 1 dead-lettered, 0 skipped as stale, 0 left out unchanged; 0 snapshots (0 failed), 0 events, 0 alerts; 2 database retries"
        );
        assert_eq!(
            s.render(Format::Json),
            r#"{"summary":"store","messages":21,"frames":20,"boxes":31,"duplicates":0,"dead_letters":1,"snapshots":0,"snapshot_errors":0,"events":0,"alerts":0,"db_retries":2,"skipped":0,"unchanged":0}"#
        );
    }
}
