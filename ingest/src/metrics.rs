//! ingest's Prometheus metrics, named once here. Every series is per camera. What updates them is in
//! [`crate::events`].

use framewire_common::metrics::{counter_vec, register};
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub decoded: IntCounterVec,
    pub sampled: IntCounterVec,
    pub published: IntCounterVec,
    pub failed: IntCounterVec,
    pub dropped: IntCounterVec,
    pub shrunk: IntCounterVec,
    pub too_large: IntCounterVec,
    pub skipped_files: IntCounterVec,
    pub reconnects: IntCounterVec,
    pub up: IntGaugeVec,
    pub queued: IntGaugeVec,
    pub bad_packets: IntCounterVec,
    pub backpressure_waits: IntCounterVec,
    pub jpeg_bytes: IntCounterVec,
    pub encode_seconds: HistogramVec,
    /// By `camera` and `stage`: `jpeg` (decoded -> encoded), `queue` (encoded -> handed to the producer).
    pub stage_seconds: HistogramVec,
    /// `--motion`: frames left out because nothing changed, and frames sent only as keep-alives.
    pub unchanged: IntCounterVec,
    pub keepalive: IntCounterVec,
    /// `--uploads`: one series each (per object, not per camera, except the frames' own counters above).
    pub upload_notifications: IntCounter,
    pub upload_skipped: IntCounter,
    pub upload_objects: IntCounter,
    pub upload_bytes: IntCounter,
    pub upload_frames: IntCounter,
    pub upload_over_limit: IntCounter,
    pub upload_retries: IntCounter,
    /// By `reason` ([`crate::uploads::DeadKind`]).
    pub upload_dead_letters: IntCounterVec,
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), &["camera"]).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    register(registry, g)
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let encode_seconds = HistogramVec::new(
            HistogramOpts::new("framewire_ingest_jpeg_encode_seconds", "Time to convert and JPEG-encode one frame")
                .buckets(vec![0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064]),
            &["camera"],
        )
        .unwrap_or_else(|e| panic!("histogram: {e}"));
        let encode_seconds = register(&registry, encode_seconds);
        let stage_seconds = HistogramVec::new(
            HistogramOpts::new(
                "framewire_ingest_stage_seconds",
                "Time a frame spent in ingest's stages: jpeg (decoded -> JPEG encoded, motion check included), \
                 queue (encoded -> handed to the producer)",
            )
            .buckets(vec![0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0]),
            &["camera", "stage"],
        )
        .unwrap_or_else(|e| panic!("histogram: {e}"));
        let stage_seconds = register(&registry, stage_seconds);
        let counter = |name: &str, help: &str| counter_vec(&registry, name, help, "camera");
        let upload = |name: &str, help: &str| framewire_common::metrics::counter(&registry, name, help);
        Metrics {
            decoded: counter("framewire_ingest_frames_decoded_total", "Frames decoded from the source"),
            sampled: counter("framewire_ingest_frames_sampled_total", "Frames kept by --fps sampling"),
            published: counter("framewire_ingest_frames_published_total", "Frames acknowledged by Kafka"),
            failed: counter("framewire_ingest_frames_failed_total", "Frames Kafka did not acknowledge"),
            dropped: counter(
                "framewire_ingest_frames_dropped_total",
                "Frames of live sources dropped (oldest first) because the producer fell behind",
            ),
            shrunk: counter(
                "framewire_ingest_frames_shrunk_total",
                "Frames re-encoded at lower quality or size to fit the maximum message size",
            ),
            too_large: counter(
                "framewire_ingest_frames_too_large_total",
                "Frames that could not be made to fit the maximum message size",
            ),
            skipped_files: counter(
                "framewire_ingest_files_skipped_total",
                "Files in an image folder, or objects in a bucket source, that could not be read as images",
            ),
            reconnects: counter(
                "framewire_ingest_reconnects_total",
                "Times a live source was lost (ended, stalled, refused) and reconnection began",
            ),
            up: gauge(&registry, "framewire_ingest_source_up", "1 while the source is open and delivering frames"),
            queued: gauge(&registry, "framewire_ingest_queue_frames", "Frames waiting for the producer"),
            bad_packets: counter(
                "framewire_ingest_bad_packets_total",
                "Frames lost to damaged data (packets the decoder rejected or could not turn into a picture)",
            ),
            backpressure_waits: counter(
                "framewire_ingest_backpressure_waits_total",
                "Times the producer queue was full and ingest waited",
            ),
            jpeg_bytes: counter("framewire_ingest_jpeg_bytes_total", "Bytes of JPEG produced"),
            encode_seconds,
            stage_seconds,
            unchanged: counter(
                "framewire_ingest_frames_unchanged_total",
                "Sampled frames left out by --motion because the picture had not changed (not losses: they take no seq)",
            ),
            keepalive: counter(
                "framewire_ingest_frames_keepalive_total",
                "Frames sent by --motion only because --motion-keepalive had passed since the camera's last frame",
            ),
            upload_notifications: upload("framewire_ingest_upload_notifications_total", "Upload notifications read"),
            upload_skipped: upload(
                "framewire_ingest_upload_events_skipped_total",
                "Events in upload notifications with nothing to read (test events, removals...)",
            ),
            upload_objects: upload("framewire_ingest_upload_objects_total", "Uploaded objects fetched"),
            upload_bytes: upload("framewire_ingest_upload_bytes_total", "Bytes of uploaded objects fetched"),
            upload_frames: upload(
                "framewire_ingest_upload_frames_total",
                "Frames of uploaded objects acknowledged by Kafka (objects done)",
            ),
            upload_over_limit: upload(
                "framewire_ingest_upload_frames_over_limit_total",
                "Sampled frames left out because an object had more than a seq leaves room for",
            ),
            upload_retries: upload(
                "framewire_ingest_upload_retries_total",
                "Times an object was published again because a frame was not delivered",
            ),
            upload_dead_letters: counter_vec(
                &registry,
                "framewire_ingest_upload_dead_letters_total",
                "Upload notifications sent to the dead-letter topic, by reason",
                "reason",
            ),
            registry,
        }
    }
}

/// One camera's running totals, read back from the counters (the one place they are kept).
#[derive(Debug, Clone, Copy, Default)]
pub struct Figures {
    pub decoded: u64,
    pub published: u64,
    pub dropped: u64,
    pub reconnects: u64,
    pub skipped_files: u64,
    pub damaged: u64,
    pub unchanged: u64,
    pub keepalive: u64,
}

impl Metrics {
    /// Creates every series of `camera` at 0, so that `rate()` and dashboards see a camera's drops or
    /// reconnects from the first one.
    pub fn add_camera(&self, camera: &str) {
        let labels = [camera];
        for c in [&self.decoded, &self.sampled, &self.published, &self.failed, &self.dropped, &self.shrunk]
            .into_iter()
            .chain([&self.too_large, &self.skipped_files, &self.reconnects, &self.bad_packets])
            .chain([&self.backpressure_waits, &self.jpeg_bytes, &self.unchanged, &self.keepalive])
        {
            c.with_label_values(&labels);
        }
        for stage in ["jpeg", "ingest_queue"] {
            self.stage_seconds.with_label_values(&[camera, stage]);
        }
        self.up.with_label_values(&labels).set(0);
        self.queued.with_label_values(&labels).set(0);
    }

    pub fn figures(&self, camera: &str) -> Figures {
        let get = |c: &IntCounterVec| c.with_label_values(&[camera]).get();
        Figures {
            decoded: get(&self.decoded),
            published: get(&self.published),
            dropped: get(&self.dropped),
            reconnects: get(&self.reconnects),
            skipped_files: get(&self.skipped_files),
            damaged: get(&self.bad_packets),
            unchanged: get(&self.unchanged),
            keepalive: get(&self.keepalive),
        }
    }
}

/// What `--uploads` did, read back from its counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct UploadFigures {
    pub notifications: u64,
    pub objects: u64,
    pub frames: u64,
    pub skipped: u64,
    pub dead_letters: u64,
}

impl Metrics {
    pub fn upload_figures(&self) -> UploadFigures {
        let dead = crate::uploads::DeadKind::ALL.iter();
        UploadFigures {
            notifications: self.upload_notifications.get(),
            objects: self.upload_objects.get(),
            frames: self.upload_frames.get(),
            skipped: self.upload_skipped.get(),
            dead_letters: dead.map(|k| self.upload_dead_letters.with_label_values(&[k.label()]).get()).sum(),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
