//! Named outcomes of `subscribe store`: each owns its log line and its metric.
//!
//! Start-up and shutdown lines (`store started`, `store stopping`, ...) and one-off diagnostics stay where
//! they happen: no metric goes with them.

use std::time::Duration;

use rdkafka::error::KafkaError;
use tracing::{error, info, warn};

use crate::metrics::StoreMetrics;
use crate::repo::RepoError;
use crate::store::StoreSummary;

/// A batch's transaction committed: the database is up, and what was new in it is counted.
pub struct BatchWritten<'a> {
    /// Frames stored for the first time (not redeliveries).
    pub frames: u64,
    pub boxes: u64,
    /// Records of skipped (stale) frames in the batch, and frames left out unchanged before its frames.
    pub skipped: u64,
    pub unchanged: u64,
    pub events_started: u64,
    /// The rule of each alert that was new to the database.
    pub alert_rules: &'a [&'a str],
    /// Capture to stored, per frame seen for the first time.
    pub latencies_ms: &'a [i64],
    pub took: Duration,
}

impl BatchWritten<'_> {
    pub fn emit(&self, m: &StoreMetrics) {
        m.write_seconds.observe(self.took.as_secs_f64());
        m.db_up.set(1);
        m.frames_written.inc_by(self.frames);
        m.boxes_written.inc_by(self.boxes);
        m.skipped.inc_by(self.skipped);
        m.unchanged.inc_by(self.unchanged);
        m.events_started.inc_by(self.events_started);
        for rule in self.alert_rules {
            m.alerts.with_label_values(&[rule]).inc();
        }
        for ms in self.latencies_ms {
            m.latency_seconds.observe(*ms as f64 / 1000.0);
        }
    }
}

/// A batch's transaction failed; its offsets wait, and it is written again after `retry_in`.
pub struct DbWriteFailed<'a> {
    pub error: &'a RepoError,
    pub retry_in: Duration,
    pub frames: usize,
}

impl DbWriteFailed<'_> {
    pub fn emit(&self, m: &StoreMetrics) {
        m.db_errors.inc();
        m.db_up.set(0);
        warn!(error = %self.error, retry_in = ?self.retry_in, frames = self.frames, "database write failed; offsets not committed, retrying");
    }
}

/// Shutdown came while a batch waited for the database: nothing of it was committed, so it comes again.
pub struct BatchAbandoned {
    pub frames: usize,
}

impl BatchAbandoned {
    pub fn emit(&self) {
        warn!(frames = self.frames, "stopping with a batch unwritten; it will be redelivered");
    }
}

/// The database answered the store's connection.
pub struct DbConnected;

impl DbConnected {
    pub fn emit(&self, m: &StoreMetrics) {
        m.db_up.set(1);
    }
}

/// The database could not be opened; tried again after `retry_in`.
pub struct DbUnavailable<'a> {
    pub error: &'a RepoError,
    pub retry_in: Duration,
}

impl DbUnavailable<'_> {
    pub fn emit(&self, m: &StoreMetrics) {
        m.db_errors.inc();
        m.db_up.set(0);
        warn!(error = %self.error, retry_in = ?self.retry_in, "database unavailable");
    }
}

/// A Detections delivered again, absorbed by the upserts.
pub struct DuplicateDelivered;

impl DuplicateDelivered {
    pub fn emit(&self, m: &StoreMetrics) {
        m.duplicates.inc();
    }
}

/// A message that is not Detections, on its way to the dead-letter topic.
pub struct DeadLettering<'a> {
    pub partition: i32,
    pub offset: i64,
    pub reason: &'a str,
}

impl DeadLettering<'_> {
    pub fn emit(&self, m: &StoreMetrics) {
        warn!(partition = self.partition, offset = self.offset, reason = %self.reason, "dead-lettering message that is not Detections");
        m.dead_letters.inc();
    }
}

/// The broker did not acknowledge a dead letter; it is sent again (the batch's offsets wait for it).
pub struct DeadLetterRetried<'a> {
    pub error: &'a KafkaError,
}

impl DeadLetterRetried<'_> {
    pub fn emit(&self) {
        warn!(error = %self.error, "dead letter not acknowledged; retrying");
    }
}

/// A snapshot was written.
pub struct SnapshotSaved;

impl SnapshotSaved {
    pub fn emit(&self, m: &StoreMetrics) {
        m.snapshots.inc();
    }
}

/// A snapshot could not be made; the detections are stored without it.
pub struct SnapshotFailed<'a> {
    pub camera: &'a str,
    pub seq: u64,
    /// The metric's reason label: disk_full, read_only, io, upload, frame_unavailable, bad_image.
    pub kind: &'static str,
    pub error: &'a str,
}

impl SnapshotFailed<'_> {
    pub fn emit(&self, m: &StoreMetrics) {
        m.snapshot_errors.with_label_values(&[self.kind]).inc();
        warn!(camera = %self.camera, seq = self.seq, kind = self.kind, error = %self.error, "snapshot not saved; detections are stored without it");
    }
}

/// The retention sweep deleted snapshots.
pub struct SnapshotsDeleted {
    pub deleted: u64,
    pub freed_bytes: u64,
}

impl SnapshotsDeleted {
    pub fn emit(&self, m: &StoreMetrics) {
        m.snapshots_deleted.inc_by(self.deleted);
        info!(deleted = self.deleted, freed_bytes = self.freed_bytes, "snapshot retention");
    }
}

/// The retention sweep failed; it runs again at its next interval.
pub struct SnapshotSweepFailed<'a> {
    /// The directory or bucket URL.
    pub dir: &'a str,
    pub error: &'a dyn std::fmt::Display,
}

impl SnapshotSweepFailed<'_> {
    pub fn emit(&self) {
        warn!(dir = %self.dir, error = %self.error, "snapshot retention sweep failed");
    }
}

/// A rule's track lasted long enough: an alert, stored and announced with the batch (counted once new).
pub struct AlertRaised<'a> {
    pub rule: &'a str,
    pub camera: &'a str,
    pub label: &'a str,
    pub duration_ms: i64,
}

impl AlertRaised<'_> {
    pub fn emit(&self) {
        info!(rule = %self.rule, camera = %self.camera, label = %self.label, duration_ms = self.duration_ms, "alert");
    }
}

/// Rows waiting in the outbox.
pub struct OutboxPending {
    pub rows: usize,
}

impl OutboxPending {
    pub fn emit(&self, m: &StoreMetrics) {
        m.outbox_pending.set(self.rows as i64);
    }
}

/// An outbox record was not acknowledged by the broker; it stays in the outbox.
pub struct OutboxPublishFailed<'a> {
    pub topic: &'a str,
    pub error: &'a KafkaError,
}

impl OutboxPublishFailed<'_> {
    pub fn emit(&self) {
        warn!(topic = %self.topic, error = %self.error, "publishing from the outbox failed; will retry");
    }
}

/// A webhook call succeeded.
pub struct WebhookDelivered;

impl WebhookDelivered {
    pub fn emit(&self, m: &StoreMetrics) {
        m.webhooks.inc();
    }
}

/// A webhook call failed and will be made again.
pub struct WebhookFailed<'a> {
    pub url: &'a str,
    pub attempt: u32,
    pub error: &'a reqwest::Error,
}

impl WebhookFailed<'_> {
    pub fn emit(&self) {
        warn!(url = %self.url, attempt = self.attempt, error = %self.error, "webhook failed; will retry");
    }
}

/// A webhook call failed for the last allowed time: given up.
pub struct WebhookGivenUp<'a> {
    pub url: &'a str,
    pub attempts: u32,
    pub error: &'a reqwest::Error,
}

impl WebhookGivenUp<'_> {
    pub fn emit(&self, m: &StoreMetrics) {
        m.webhook_failures.inc();
        error!(url = %self.url, attempts = self.attempts, error = %self.error, "webhook given up");
    }
}

/// An alert email was accepted by the SMTP server.
pub struct EmailSent<'a> {
    pub alert: &'a str,
    pub to: &'a str,
    pub attempt: u32,
    /// Whether the event's snapshot went with it.
    pub snapshot: bool,
}

impl EmailSent<'_> {
    pub fn emit(&self, m: &StoreMetrics) {
        m.emails.inc();
        info!(alert = %self.alert, to = %self.to, attempt = self.attempt, snapshot = self.snapshot, "alert email sent");
    }
}

/// An alert email could not be sent this time (server unreachable, 4xx): it will be tried again.
pub struct EmailFailed<'a> {
    pub alert: &'a str,
    pub to: &'a str,
    pub attempt: u32,
    pub error: &'a str,
}

impl EmailFailed<'_> {
    pub fn emit(&self) {
        warn!(alert = %self.alert, to = %self.to, attempt = self.attempt, error = %self.error, "alert email failed; will retry");
    }
}

/// An alert email was refused for good (5xx) or failed for the last allowed time: given up.
pub struct EmailGivenUp<'a> {
    pub alert: &'a str,
    pub to: &'a str,
    pub attempts: u32,
    pub error: &'a str,
}

impl EmailGivenUp<'_> {
    pub fn emit(&self, m: &StoreMetrics) {
        m.email_failures.inc();
        error!(alert = %self.alert, to = %self.to, attempts = self.attempts, error = %self.error, "alert email given up");
    }
}

/// The alert's snapshot could not be read in time: the email goes without it, and says so.
pub struct EmailWithoutSnapshot<'a> {
    pub alert: &'a str,
    pub path: &'a str,
    pub error: &'a str,
}

impl EmailWithoutSnapshot<'_> {
    pub fn emit(&self) {
        warn!(alert = %self.alert, snapshot = %self.path, error = %self.error, "alert email sent without its snapshot");
    }
}

/// Committing a stored batch's offsets failed: its messages come again and the upserts absorb them.
pub struct OffsetCommitFailed<'a> {
    pub error: &'a KafkaError,
}

impl OffsetCommitFailed<'_> {
    pub fn emit(&self) {
        warn!(error = %self.error, "committing offsets failed");
    }
}

/// The periodic status line.
pub struct StoreStatus<'a> {
    pub summary: &'a StoreSummary,
    /// Frames stored per second since the last status line.
    pub fps: f64,
}

impl StoreStatus<'_> {
    pub fn emit(&self) {
        let s = self.summary;
        info!(
            frames = s.frames,
            fps = format!("{:.1}", self.fps),
            events = s.events,
            alerts = s.alerts,
            snapshots = s.snapshots,
            db_retries = s.db_retries,
            "store status"
        );
    }
}
