//! detect's outcomes, one type each, in the way of Vector's `internal_events`: an event owns its log line
//! (level, fields, message) and its metric update, so a call site says what happened in one line
//! (`FramePublished { camera }.emit(&metrics)`) and every metric the dashboard reads is changed from here.
//! The metrics themselves are declared in [`crate::metrics`].
//!
//! Start-up and shutdown lines (`detect started`, `draining in-flight frames`, ...) and the diagnostics of a
//! single failed client call (`assign failed`, ...) stay where they happen: they are not outcomes of a frame
//! or of a topic, and no metric goes with them.

use std::time::Duration;

use framewire_proto::Detections;
use tracing::{debug, info, warn};

use crate::metrics::Metrics;

/// The consumer took a message into the pipeline.
pub struct FrameConsumed {
    pub partition: i32,
    pub offset: i64,
}

impl FrameConsumed {
    pub fn emit(&self, m: &Metrics) {
        debug!(partition = self.partition, offset = self.offset, "consumed");
        m.in_flight.inc();
    }
}

/// One inference call ran on `frames` frames; `infer_ms` is its time when it succeeded.
pub struct BatchInferred {
    pub frames: usize,
    pub infer_ms: Option<f32>,
}

impl BatchInferred {
    pub fn emit(&self, m: &Metrics) {
        m.batch_size.observe(self.frames as f64);
        if let Some(ms) = self.infer_ms {
            m.inference_seconds.observe(f64::from(ms) / 1000.0);
        }
    }
}

/// An inference call failed and is tried again.
pub struct InferenceRetried<'a> {
    pub error: &'a crate::Error,
    pub attempt: u32,
}

impl InferenceRetried<'_> {
    pub fn emit(&self) {
        warn!(error = %self.error, attempt = self.attempt, "inference failed, retrying");
    }
}

/// A frame's boxes are known (its result is not yet delivered).
pub struct FrameDetected<'a> {
    pub detections: &'a Detections,
    /// How long the frame spent in detect before its result was ready.
    pub queued_ms: u64,
}

impl FrameDetected<'_> {
    pub fn emit(&self, m: &Metrics) {
        let d = self.detections;
        debug!(camera = %d.camera_id, seq = d.seq, boxes = d.boxes.len(), queued_ms = self.queued_ms, "frame detected");
        for b in &d.boxes {
            m.boxes.with_label_values(&[&b.label]).inc();
        }
        let latency = (d.detected_time_ms - d.capture_time_ms).max(0) as f64 / 1000.0;
        m.latency_seconds.observe(latency);
    }
}

/// A frame's Detections were acknowledged by the broker: the frame is done.
pub struct FramePublished<'a> {
    pub camera: &'a str,
}

impl FramePublished<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.frames.with_label_values(&[self.camera]).inc();
        m.in_flight.dec();
    }
}

/// A message that cannot be processed goes to the dead-letter topic.
pub struct DeadLettering<'a> {
    pub partition: i32,
    pub offset: i64,
    pub reason: &'a str,
    /// The `reason` label of the metric, one of [`crate::metrics::DEAD_LETTER_KINDS`].
    pub kind: &'static str,
}

impl DeadLettering<'_> {
    pub fn emit(&self, m: &Metrics) {
        warn!(partition = self.partition, offset = self.offset, reason = %self.reason, "dead-lettering message");
        m.dead_letters.with_label_values(&[self.kind]).inc();
    }
}

/// A dead letter was acknowledged by the broker: its frame is done.
pub struct DeadLetterPublished;

impl DeadLetterPublished {
    pub fn emit(&self, m: &Metrics) {
        m.in_flight.dec();
    }
}

/// A delivery was refused and will be retried. Every refusal counts; the warning is rate-limited by the
/// caller (one per topic, per change of error or per 10 s), which says with `warn` whether this one logs.
pub struct DeliveryRetried<'a> {
    pub topic: &'a str,
    pub error: &'a rdkafka::error::KafkaError,
    /// Refusals of this topic since it last accepted a delivery.
    pub refused: u64,
    pub retry_in: Duration,
    pub warn: bool,
}

impl DeliveryRetried<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.delivery_retries.inc();
        if self.warn {
            warn!(topic = %self.topic, error = %self.error, refused = self.refused, retry_in = ?self.retry_in,
                "delivery refused; retrying (frames wait, the input is paused once the pipeline is full)");
        }
    }
}

/// A topic that refused deliveries took one.
pub struct TopicAccepting<'a> {
    pub topic: &'a str,
    pub refused: u64,
}

impl TopicAccepting<'_> {
    pub fn emit(&self) {
        info!(topic = %self.topic, refused = self.refused, "topic accepts deliveries again");
    }
}

/// The broker says the output or dead-letter topic does not exist.
pub struct TopicMissing<'a> {
    pub role: &'static str,
    pub topic: &'a str,
}

impl TopicMissing<'_> {
    pub fn emit(&self) {
        warn!(role = self.role, topic = %self.topic,
            "topic does not exist on the broker: deliveries to it wait, and detect stops if it stays missing for --missing-topic-timeout");
    }
}

/// A topic reported missing exists again.
pub struct TopicBack<'a> {
    pub role: &'static str,
    pub topic: &'a str,
}

impl TopicBack<'_> {
    pub fn emit(&self) {
        info!(role = self.role, topic = %self.topic, "topic exists again");
    }
}

/// A finished frame's offset could not be stored (its partition was just revoked).
pub struct OffsetNotStored<'a> {
    pub partition: i32,
    pub offset: i64,
    pub error: &'a rdkafka::error::KafkaError,
}

impl OffsetNotStored<'_> {
    pub fn emit(&self) {
        debug!(partition = self.partition, offset = self.offset, error = %self.error, "offset not stored");
    }
}

/// The group gave this replica partitions.
pub struct PartitionsAssigned<'a> {
    pub partitions: &'a [i32],
}

impl PartitionsAssigned<'_> {
    pub fn emit(&self) {
        info!(partitions = ?self.partitions, "partitions assigned");
    }
}

/// The group takes partitions away; what is finished is committed first.
pub struct PartitionsRevoked<'a> {
    pub partitions: &'a [i32],
}

impl PartitionsRevoked<'_> {
    pub fn emit(&self) {
        info!(partitions = ?self.partitions, "partitions revoked: committing finished frames");
    }
}

/// A rebalance ended in an error.
pub struct RebalanceFailed<'a> {
    pub error: &'a rdkafka::error::KafkaError,
}

impl RebalanceFailed<'_> {
    pub fn emit(&self) {
        warn!(error = %self.error, "rebalance error");
    }
}

/// A replay start position was set on a partition this group never committed.
pub struct ReplayStarted {
    pub partition: i32,
    pub offset: rdkafka::Offset,
}

impl ReplayStarted {
    pub fn emit(&self) {
        info!(partition = self.partition, offset = ?self.offset, "replay start");
    }
}

/// A synchronous commit failed: the frames since the last commit will be processed again.
pub struct OffsetCommitFailed<'a> {
    pub error: &'a rdkafka::error::KafkaError,
}

impl OffsetCommitFailed<'_> {
    pub fn emit(&self) {
        warn!(error = %self.error, "offset commit failed (the frames will be processed again)");
    }
}

/// The consumer reported an error (librdkafka retries by itself; the caller logs one per distinct error or
/// per 10 s).
pub struct ConsumerErrored<'a> {
    pub error: &'a str,
}

impl ConsumerErrored<'_> {
    pub fn emit(&self) {
        warn!(error = %self.error, "consumer error");
    }
}

/// The pipeline holds `--max-pending` frames: the input is paused.
pub struct InputPaused {
    pub in_flight: usize,
}

impl InputPaused {
    pub fn emit(&self) {
        info!(
            in_flight = self.in_flight,
            "pipeline full (results are not being delivered as fast as frames arrive): input paused"
        );
    }
}

/// The pipeline has room again: the input is resumed.
pub struct InputResumed {
    pub in_flight: usize,
}

impl InputResumed {
    pub fn emit(&self) {
        info!(in_flight = self.in_flight, "room in the pipeline again: input resumed");
    }
}

/// Consumer lag of each assigned input partition, as measured now; partitions not in `lags` did not answer
/// and drop out of the gauge.
pub struct LagMeasured<'a> {
    pub lags: &'a [(i32, i64)],
}

impl LagMeasured<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.consumer_lag.reset();
        for (p, lag) in self.lags {
            m.consumer_lag.with_label_values(&[&p.to_string()]).set(*lag);
        }
    }
}

/// The periodic status line.
pub struct StatusReported {
    /// Frames done since start.
    pub frames: u64,
    pub fps: f64,
    pub in_flight: usize,
    /// Total consumer lag over the assigned partitions.
    pub lag: i64,
}

impl StatusReported {
    pub fn emit(&self) {
        info!(
            frames = self.frames,
            fps = format!("{:.1}", self.fps),
            in_flight = self.in_flight,
            lag = self.lag,
            "detect status"
        );
    }
}

/// Shutdown's grace period ended with frames unfinished.
pub struct DrainTimedOut {
    pub timeout: Duration,
}

impl DrainTimedOut {
    pub fn emit(&self) {
        warn!(timeout = ?self.timeout, "drain timed out: unfinished frames will be processed again by the next owner");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge(m: &Metrics, partition: &str) -> Option<i64> {
        use prometheus::core::Collector;
        m.consumer_lag.collect().iter().flat_map(|mf| mf.get_metric().iter()).find_map(|s| {
            s.get_label().iter().any(|l| l.value() == partition).then(|| s.get_gauge().get_value() as i64)
        })
    }

    #[test]
    fn a_frame_counts_in_flight_from_consumed_until_published_or_dead_lettered() {
        let m = Metrics::new();
        FrameConsumed { partition: 0, offset: 1 }.emit(&m);
        FrameConsumed { partition: 0, offset: 2 }.emit(&m);
        assert_eq!(m.in_flight.get(), 2);
        FramePublished { camera: "cam1" }.emit(&m);
        DeadLetterPublished.emit(&m);
        assert_eq!(m.in_flight.get(), 0);
        assert_eq!(m.frames.with_label_values(&["cam1"]).get(), 1);
    }

    #[test]
    fn a_lag_measurement_replaces_the_last_one() {
        let m = Metrics::new();
        LagMeasured { lags: &[(0, 5), (1, 7)] }.emit(&m);
        assert_eq!((gauge(&m, "0"), gauge(&m, "1")), (Some(5), Some(7)));
        // Partition 1 moved to another replica.
        LagMeasured { lags: &[(0, 2)] }.emit(&m);
        assert_eq!((gauge(&m, "0"), gauge(&m, "1")), (Some(2), None));
    }
}
