//! detect's Prometheus metrics, named once here.

use framewire_common::metrics::{counter, counter_vec, gauge, histogram, histogram_vec, register};
use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub frames: IntCounterVec,
    pub dead_letters: IntCounterVec,
    pub boxes: IntCounterVec,
    pub inference_seconds: Histogram,
    pub latency_seconds: Histogram,
    pub batch_size: Histogram,
    pub in_flight: IntGauge,
    pub consumer_lag: prometheus::IntGaugeVec,
    pub delivery_retries: IntCounter,
    pub frames_skipped: IntCounterVec,
    pub stage_seconds: HistogramVec,
    pub worker_frames: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let vec = |name: &str, help: &str, label: &str| counter_vec(&r, name, help, label);
        let hist = |name: &str, help: &str, buckets: Vec<f64>| histogram(&r, name, help, buckets);
        let m = Metrics {
            frames: vec(
                "framewire_detect_frames_total",
                "Frames whose Detections were delivered (results, and records of frames skipped as stale)",
                "camera",
            ),
            frames_skipped: vec(
                "framewire_detect_frames_skipped_total",
                "Frames not run through the model, delivered as records that say why (--max-frame-age)",
                "reason",
            ),
            worker_frames: vec(
                "framewire_detect_worker_frames_total",
                "Frames run through the model by each worker (--workers)",
                "worker",
            ),
            stage_seconds: histogram_vec(
                &r,
                "framewire_detect_stage_seconds",
                "Time a frame spends in each stage of detect: queue (consumed -> inference start), inference \
                 (its batch's model call), output (inference end -> result handed to the producer), delivery \
                 (handed to the producer -> acknowledged)",
                "stage",
                vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
            ),
            dead_letters: vec(
                "framewire_detect_dead_letters_total",
                "Messages sent to the dead-letter topic",
                "reason",
            ),
            boxes: vec("framewire_detect_boxes_total", "Boxes detected", "label"),
            inference_seconds: hist(
                "framewire_detect_inference_seconds",
                "ONNX Runtime time per inference call",
                vec![0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28],
            ),
            batch_size: hist(
                "framewire_detect_batch_size",
                "Frames per inference call",
                vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0],
            ),
            latency_seconds: hist(
                "framewire_detect_latency_seconds",
                "Capture to detection time",
                vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0],
            ),
            consumer_lag: register(
                &r,
                prometheus::IntGaugeVec::new(
                    Opts::new("framewire_detect_consumer_lag", "Frames waiting in each assigned input partition"),
                    &["partition"],
                )
                .unwrap_or_else(|e| panic!("{e}")),
            ),
            in_flight: gauge(&r, "framewire_detect_in_flight", "Frames consumed but not yet committed"),
            delivery_retries: counter(
                &r,
                "framewire_detect_delivery_retries_total",
                "Result deliveries retried after a failure",
            ),
            registry: r,
        };
        // Every dead-letter reason exists at 0 from the start, so `rate()` and dashboards see the series before
        // the first bad message arrives.
        for kind in DEAD_LETTER_KINDS {
            m.dead_letters.with_label_values(&[kind]);
        }
        for reason in SKIP_REASONS {
            m.frames_skipped.with_label_values(&[reason]);
        }
        for stage in DETECT_STAGES {
            m.stage_seconds.with_label_values(&[stage]);
        }
        m
    }

    /// Makes the per-worker series exist at 0 from the start, like the fixed label sets above.
    pub fn workers(&self, workers: usize) {
        for w in 0..workers {
            self.worker_frames.with_label_values(&[&w.to_string()]);
        }
    }
}

/// The `reason` label values of `framewire_detect_frames_skipped_total`.
pub const SKIP_REASONS: [&str; 1] = ["stale"];

/// The `stage` label values of `framewire_detect_stage_seconds`, in the order a frame passes them.
pub const DETECT_STAGES: [&str; 4] = ["detect_queue", "inference", "detect_output", "delivery"];

/// The `reason` label values of `framewire_detect_dead_letters_total`.
pub const DEAD_LETTER_KINDS: [&str; 4] = ["not_a_frame", "schema_version", "bad_image", "inference"];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
