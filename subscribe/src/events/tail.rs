//! Named outcomes of `subscribe tail`: each owns its log line and its metric.

use tracing::{info, warn};

use framewire_proto::Detections;
use framewire_proto::stages::STAGES;

use crate::metrics::Metrics;

/// A Detections message arrived that was not seen before; it is printed next.
#[derive(Debug)]
pub struct MessageReceived<'a> {
    pub detections: &'a Detections,
    /// Its stages in milliseconds (`framewire_proto::stages`); `None` for a record with no result (skipped).
    pub stages: Option<[Option<f64>; STAGES.len()]>,
}

impl MessageReceived<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.messages.inc();
        m.unchanged.inc_by(u64::from(self.detections.unchanged_before));
        let Some(stages) = self.stages else {
            m.skipped.inc();
            return;
        };
        for (stage, ms) in STAGES.iter().zip(stages) {
            if let Some(ms) = ms {
                m.stage_seconds.with_label_values(&[stage]).observe(ms / 1000.0);
            }
        }
        if let Some(total) = stages[STAGES.len() - 1] {
            m.latency_seconds.observe(total / 1000.0);
        }
    }
}

/// A Detections message seen before (same camera, seq and model version) arrived again: at-least-once
/// delivery. It is printed, but counted apart and kept out of the latency.
#[derive(Debug)]
pub struct DuplicateSeen;

impl DuplicateSeen {
    pub fn emit(&self, m: &Metrics) {
        m.messages.inc();
        m.duplicates.inc();
    }
}

/// A message on the topic is not Detections: skipped.
#[derive(Debug)]
pub struct UndecodableMessage<'a> {
    pub partition: i32,
    pub offset: i64,
    pub error: &'a framewire_proto::DecodeError,
}

impl UndecodableMessage<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.undecodable.inc();
        warn!(partition = self.partition, offset = self.offset, error = %self.error, "skipping message");
    }
}

/// The periodic status line.
#[derive(Debug)]
pub struct TailStatus {
    pub frames: u64,
    pub fps: f64,
    pub duplicates: u64,
    pub undecodable: u64,
    pub skipped: u64,
    pub unchanged: u64,
    pub latency_p50_ms: Option<i64>,
    pub latency_p99_ms: Option<i64>,
}

impl TailStatus {
    pub fn emit(&self) {
        info!(frames = self.frames, fps = format!("{:.1}", self.fps), duplicates = self.duplicates,
            undecodable = self.undecodable, skipped = self.skipped, unchanged = self.unchanged, latency_p50_ms = ?self.latency_p50_ms,
            latency_p99_ms = ?self.latency_p99_ms, "tail status");
    }
}
