//! The subscribers' Prometheus metrics, named once here.

use framewire_common::metrics::{counter, counter_vec, gauge, histogram, histogram_vec};
use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, Registry};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub messages: IntCounter,
    pub duplicates: IntCounter,
    pub undecodable: IntCounter,
    /// Capture time to received here: the whole pipeline's latency as a viewer sees it.
    pub latency_seconds: Histogram,
    /// The same latency by pipeline stage (`framewire_proto::stages::STAGES`).
    pub stage_seconds: HistogramVec,
    /// Records of frames detect skipped as stale (`--max-frame-age`).
    pub skipped: IntCounter,
    /// Frames ingest left out as unchanged (motion gating), as reported by the records after them.
    pub unchanged: IntCounter,
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let counter = |name: &str, help: &str| counter(&r, name, help);
        Metrics {
            messages: counter("framewire_subscribe_messages_total", "Detections messages received"),
            duplicates: counter(
                "framewire_subscribe_duplicates_total",
                "Detections received again (same camera, seq and model version): at-least-once delivery",
            ),
            undecodable: counter("framewire_subscribe_undecodable_total", "Messages that are not Detections"),
            latency_seconds: histogram(
                &r,
                "framewire_subscribe_latency_seconds",
                "Capture time to Detections received by the subscriber",
                vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0],
            ),
            stage_seconds: histogram_vec(
                &r,
                "framewire_subscribe_stage_seconds",
                "Time a result spent in each pipeline stage (decode, jpeg, ingest_queue, kafka_frames, detect_queue, inference, detect_output, kafka_results, total)",
                "stage",
                vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
            ),
            skipped: counter(
                "framewire_subscribe_skipped_total",
                "Records of frames detect did not run through the model because they were stale (--max-frame-age)",
            ),
            unchanged: counter(
                "framewire_subscribe_frames_unchanged_total",
                "Frames ingest left out because nothing changed (motion gating): not losses",
            ),
            registry: r,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Metrics of `subscribe store`.
#[derive(Clone)]
pub struct StoreMetrics {
    pub registry: Registry,
    pub frames_written: IntCounter,
    /// Records of frames detect skipped as stale: counted, not stored.
    pub skipped: IntCounter,
    pub unchanged: IntCounter,
    pub boxes_written: IntCounter,
    pub duplicates: IntCounter,
    pub dead_letters: IntCounter,
    pub write_seconds: Histogram,
    pub db_errors: IntCounter,
    pub db_up: IntGauge,
    pub snapshots: IntCounter,
    pub snapshot_errors: IntCounterVec,
    pub snapshots_deleted: IntCounter,
    pub events_started: IntCounter,
    pub alerts: IntCounterVec,
    pub webhooks: IntCounter,
    pub webhook_failures: IntCounter,
    pub emails: IntCounter,
    pub email_failures: IntCounter,
    pub outbox_pending: IntGauge,
    /// Capture time to stored: what a user looking things up sees.
    pub latency_seconds: Histogram,
}

impl StoreMetrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let counter = |name: &str, help: &str| counter(&r, name, help);
        let gauge = |name: &str, help: &str| gauge(&r, name, help);
        let vec = |name: &str, help: &str, label: &str| counter_vec(&r, name, help, label);
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| histogram(&r, name, help, buckets);
        let snapshot_errors = vec(
            "framewire_store_snapshot_errors_total",
            "Snapshots not saved, by reason (disk_full, read_only, io, upload, frame_unavailable, bad_image)",
            "reason",
        );
        for reason in ["disk_full", "read_only", "io", "upload", "frame_unavailable", "bad_image"] {
            snapshot_errors.with_label_values(&[reason]);
        }
        StoreMetrics {
            frames_written: counter("framewire_store_frames_total", "Frames (Detections) stored for the first time"),
            skipped: counter(
                "framewire_store_skipped_total",
                "Records of frames detect did not run through the model (stale, --max-frame-age): counted, not stored",
            ),
            unchanged: counter(
                "framewire_store_frames_unchanged_total",
                "Frames ingest left out because nothing changed (motion gating): not losses",
            ),
            boxes_written: counter("framewire_store_boxes_total", "Boxes written"),
            duplicates: counter(
                "framewire_store_duplicates_total",
                "Detections delivered again and absorbed by upserts",
            ),
            dead_letters: counter(
                "framewire_store_dead_letters_total",
                "Messages that are not Detections, dead-lettered",
            ),
            write_seconds: histogram(
                "framewire_store_write_seconds",
                "Time of one database transaction (a batch of Detections)",
                vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
            ),
            db_errors: counter("framewire_store_db_errors_total", "Failed database transactions (each retried)"),
            db_up: gauge("framewire_store_db_up", "1 while the last database transaction succeeded"),
            snapshots: counter("framewire_store_snapshots_total", "Snapshots saved"),
            snapshot_errors,
            snapshots_deleted: counter("framewire_store_snapshots_deleted_total", "Snapshots deleted by retention"),
            events_started: counter("framewire_store_events_total", "Events started"),
            alerts: vec("framewire_store_alerts_total", "Alerts raised, by rule", "rule"),
            webhooks: counter("framewire_store_webhooks_total", "Webhook calls delivered"),
            webhook_failures: counter("framewire_store_webhook_failures_total", "Webhook calls given up after retries"),
            emails: counter("framewire_store_emails_total", "Alert emails accepted by the SMTP server"),
            email_failures: counter(
                "framewire_store_email_failures_total",
                "Alert emails given up (refused for good, or after retries)",
            ),
            outbox_pending: gauge("framewire_store_outbox_pending", "Event/alert records waiting to be delivered"),
            latency_seconds: histogram(
                "framewire_store_latency_seconds",
                "Capture time to Detections stored",
                vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0],
            ),
            registry: r,
        }
    }
}

impl Default for StoreMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Metrics of `subscribe web`.
#[derive(Clone)]
pub struct WebMetrics {
    pub registry: Registry,
    pub messages: IntCounter,
    /// Detections whose frame did not arrive in time: many of them mean the page lags the frames topic.
    pub without_frame: IntCounter,
    pub clients: IntGauge,
    /// Capture time to pushed to the browsers: the latency a viewer of the page sees.
    pub latency_seconds: Histogram,
    /// Pages answered 503 because the store's database could not be read: the cause is only in the log.
    pub db_errors: IntCounter,
}

impl WebMetrics {
    pub fn new() -> Self {
        let r = Registry::new();
        WebMetrics {
            messages: counter(&r, "framewire_web_messages_total", "Detections received by the web view"),
            without_frame: counter(
                &r,
                "framewire_web_frames_missing_total",
                "Detections shown without their frame (the frame was not seen by the web view in time)",
            ),
            clients: gauge(&r, "framewire_web_clients", "Browsers connected to the live stream"),
            latency_seconds: histogram(
                &r,
                "framewire_web_latency_seconds",
                "Capture time to pushed to the browsers",
                vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
            ),
            db_errors: counter(
                &r,
                "framewire_web_db_errors_total",
                "Pages not served because the store's database could not be read",
            ),
            registry: r,
        }
    }
}

impl Default for WebMetrics {
    fn default() -> Self {
        Self::new()
    }
}
