//! The subscribers' Prometheus metrics, named once here.

use framewire_common::metrics::register;
use prometheus::{Histogram, HistogramOpts, IntCounter, Registry};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub messages: IntCounter,
    pub duplicates: IntCounter,
    pub undecodable: IntCounter,
    /// Capture time to received here: the whole pipeline's latency as a viewer sees it.
    pub latency_seconds: Histogram,
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let counter = |name: &str, help: &str| {
            register(&r, IntCounter::new(name, help).unwrap_or_else(|e| panic!("{name}: {e}")))
        };
        Metrics {
            messages: counter("framewire_subscribe_messages_total", "Detections messages received"),
            duplicates: counter(
                "framewire_subscribe_duplicates_total",
                "Detections received again (same camera, seq and model version): at-least-once delivery",
            ),
            undecodable: counter("framewire_subscribe_undecodable_total", "Messages that are not Detections"),
            latency_seconds: register(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "framewire_subscribe_latency_seconds",
                        "Capture time to Detections received by the subscriber",
                    )
                    .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
                )
                .unwrap_or_else(|e| panic!("latency: {e}")),
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
