//! detect's outcomes, one type each, in the way of Vector's `internal_events`: an event owns its log line
//! (level, fields, message) and its metric update, so a call site says what happened in one line
//! (`FramePublished { camera }.emit(&metrics)`) and every metric the dashboard reads is changed from here.
//! The metrics themselves are declared in [`crate::metrics`].
//!
//! Start-up and shutdown lines (`detect started`, `draining in-flight frames`, ...) and the diagnostics of a
//! single failed client call (`assign failed`, ...) stay where they happen: they are not outcomes of a frame
//! or of a topic, and no metric goes with them.

use std::time::Duration;

use framewire_proto::{Detections, StageTimes};
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

/// One inference call of worker `worker` ran on `frames` frames; `infer_ms` is its time when it succeeded.
pub struct BatchInferred<'a> {
    pub frames: usize,
    pub infer_ms: Option<f32>,
    /// The lane's number (`--workers`), the metric's label.
    pub worker: &'a str,
}

impl BatchInferred<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.batch_size.observe(self.frames as f64);
        if let Some(ms) = self.infer_ms {
            m.inference_seconds.observe(f64::from(ms) / 1000.0);
            m.worker_frames.with_label_values(&[self.worker]).inc_by(self.frames as u64);
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

/// A frame was not run through the model (`--max-frame-age`); its record says so. Counted when the record
/// is acknowledged ([`FramePublished`]); [`StaleSkipping`] is the line an operator sees.
pub struct FrameSkipped<'a> {
    pub detections: &'a Detections,
    /// Where it was decided: `preprocess` (stale before decoding), `inference` (stale when its turn came),
    /// `yielded` (fresh, but gave its turn to a camera run less recently).
    pub at: &'static str,
}

impl FrameSkipped<'_> {
    pub fn emit(&self) {
        let d = self.detections;
        let age_ms = (d.detected_time_ms - d.capture_time_ms).max(0);
        debug!(camera = %d.camera_id, seq = d.seq, age_ms, at = self.at, "frame skipped as stale");
    }
}

/// Frames are being skipped as stale: one line when it starts and then at most one per interval, with the
/// count, so an overload shows in the log without a line per frame.
pub struct StaleSkipping {
    /// Skipped since the previous line.
    pub skipped: u64,
    /// Skipped since start.
    pub total: u64,
}

impl StaleSkipping {
    pub fn emit(&self) {
        info!(
            skipped = self.skipped,
            total = self.total,
            "frames skipped as stale (older than --max-frame-age by the time a result would be out): frames arrive faster than detect runs them"
        );
    }
}

/// A frame's Detections (its result, or its record as skipped) were acknowledged by the broker: the frame is
/// done.
pub struct FramePublished<'a> {
    pub camera: &'a str,
    /// Not run through the model (`--max-frame-age`).
    pub skipped: bool,
    /// The record's stage times as sent.
    pub times: StageTimes,
    /// When the acknowledgement came (Unix µs).
    pub acked_us: i64,
}

impl FramePublished<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.frames.with_label_values(&[self.camera]).inc();
        m.in_flight.dec();
        if self.skipped {
            m.frames_skipped.with_label_values(&["stale"]).inc();
        }
        for (stage, seconds) in detect_stages(&self.times, self.acked_us) {
            if let Some(s) = seconds {
                m.stage_seconds.with_label_values(&[stage]).observe(s);
            }
        }
    }
}

/// The time a frame spent in each of detect's stages ([`crate::metrics::DETECT_STAGES`]), in seconds;
/// `None` where one of the two moments was not recorded (a skipped frame has no inference).
pub fn detect_stages(t: &StageTimes, acked_us: i64) -> [(&'static str, Option<f64>); 4] {
    let span = |a: i64, b: i64| framewire_proto::stages::span_ms(a, b).map(|ms| ms / 1000.0);
    [
        ("detect_queue", span(t.consumed_us, t.inference_start_us)),
        ("inference", span(t.inference_start_us, t.inference_end_us)),
        ("detect_output", span(t.inference_end_us, t.produced_us)),
        ("delivery", span(t.produced_us, acked_us)),
    ]
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

/// A partition was given to a worker (`--workers`), for the life of the process.
pub struct CameraRouted<'a> {
    pub camera: &'a str,
    pub partition: i32,
    pub worker: usize,
    /// Cameras this worker has now.
    pub cameras: usize,
}

impl CameraRouted<'_> {
    pub fn emit(&self) {
        info!(
            camera = %self.camera,
            partition = self.partition,
            worker = self.worker,
            cameras = self.cameras,
            "camera given to worker"
        );
    }
}

/// A worker is full and has too many frames held back for it: this partition of it is paused until they have
/// gone in, while the other workers' partitions go on being read (`--workers`).
pub struct PartitionHeld {
    pub partition: i32,
    pub worker: usize,
}

impl PartitionHeld {
    pub fn emit(&self) {
        debug!(partition = self.partition, worker = self.worker, "worker full: partition paused");
    }
}

/// The periodic status line.
pub struct StatusReported {
    /// Frames done since start (run or skipped).
    pub frames: u64,
    /// Of those, frames skipped as stale.
    pub skipped: u64,
    pub fps: f64,
    pub in_flight: usize,
    /// Total consumer lag over the assigned partitions.
    pub lag: i64,
}

impl StatusReported {
    pub fn emit(&self) {
        info!(
            frames = self.frames,
            skipped = self.skipped,
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
        FramePublished { camera: "cam1", skipped: false, times: StageTimes::default(), acked_us: 0 }.emit(&m);
        DeadLetterPublished.emit(&m);
        assert_eq!(m.in_flight.get(), 0);
        assert_eq!(m.frames.with_label_values(&["cam1"]).get(), 1);
    }

    #[test]
    fn a_published_frame_is_timed_by_stage_and_a_skipped_one_counted() {
        let m = Metrics::new();
        let times = StageTimes {
            consumed_us: 1_000_000,
            inference_start_us: 1_020_000,
            inference_end_us: 1_050_000,
            produced_us: 1_051_000,
            ..Default::default()
        };
        FramePublished { camera: "cam1", skipped: false, times, acked_us: 1_061_000 }.emit(&m);
        let stage = |s: &str| m.stage_seconds.with_label_values(&[s]);
        assert!((stage("detect_queue").get_sample_sum() - 0.020).abs() < 1e-9);
        assert!((stage("inference").get_sample_sum() - 0.030).abs() < 1e-9);
        assert!((stage("detect_output").get_sample_sum() - 0.001).abs() < 1e-9);
        assert!((stage("delivery").get_sample_sum() - 0.010).abs() < 1e-9);
        assert_eq!(m.frames_skipped.with_label_values(&["stale"]).get(), 0);
        // A skipped frame has no inference: only its delivery is timed.
        let times = StageTimes { consumed_us: 1_000_000, produced_us: 1_001_000, ..Default::default() };
        FramePublished { camera: "cam1", skipped: true, times, acked_us: 1_003_000 }.emit(&m);
        assert_eq!(m.frames_skipped.with_label_values(&["stale"]).get(), 1);
        assert_eq!((stage("detect_queue").get_sample_count(), stage("delivery").get_sample_count()), (1, 2));
        assert_eq!(m.frames.with_label_values(&["cam1"]).get(), 2, "every record counts as a frame done");
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
