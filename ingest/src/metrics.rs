//! ingest's Prometheus metrics, named once here.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// Counters per camera.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub decoded: IntCounterVec,
    pub sampled: IntCounterVec,
    pub published: IntCounterVec,
    pub failed: IntCounterVec,
    pub bad_packets: IntCounterVec,
    pub backpressure_waits: IntCounterVec,
    pub jpeg_bytes: IntCounterVec,
    pub encode_seconds: HistogramVec,
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), &["camera"]).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    // Registration fails only for duplicate names, which the fixed list below rules out.
    registry.register(Box::new(c.clone())).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    c
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
        registry.register(Box::new(encode_seconds.clone())).unwrap_or_else(|e| panic!("histogram: {e}"));
        Metrics {
            decoded: counter(&registry, "framewire_ingest_frames_decoded_total", "Frames decoded from the source"),
            sampled: counter(&registry, "framewire_ingest_frames_sampled_total", "Frames kept by --fps sampling"),
            published: counter(&registry, "framewire_ingest_frames_published_total", "Frames acknowledged by Kafka"),
            failed: counter(&registry, "framewire_ingest_frames_failed_total", "Frames Kafka did not acknowledge"),
            bad_packets: counter(
                &registry,
                "framewire_ingest_bad_packets_total",
                "Damaged packets skipped by the decoder",
            ),
            backpressure_waits: counter(
                &registry,
                "framewire_ingest_backpressure_waits_total",
                "Times the producer queue was full and ingest waited",
            ),
            jpeg_bytes: counter(&registry, "framewire_ingest_jpeg_bytes_total", "Bytes of JPEG produced"),
            encode_seconds,
            registry,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
