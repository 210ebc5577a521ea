//! The periodic status line (frames, skipped, rate, in flight, lag) and the consumer lag gauge behind it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::core::Collector;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio_util::sync::CancellationToken;

use framewire_common::lag::{self, Uncommitted};

use crate::consumer::GroupContext;
use crate::events::{LagMeasured, StatusReported};
use crate::metrics::Metrics;
use crate::offsets::OffsetTracker;

/// How long the broker may take to give one partition's watermarks (or the group's commits).
const LAG_TIMEOUT: Duration = Duration::from_secs(2);

/// What the status loop watches.
pub(crate) struct Status {
    pub consumer: Arc<BaseConsumer<GroupContext>>,
    pub tracker: Arc<Mutex<OffsetTracker>>,
    pub topic: String,
    pub every: Duration,
    pub metrics: Metrics,
}

/// Logs a status line every `every` and keeps the lag gauge current, until `shutdown`.
pub(crate) async fn status_loop(s: Status, shutdown: CancellationToken) {
    let s = Arc::new(s);
    let mut tick = tokio::time::interval(s.every);
    tick.tick().await;
    let mut last = (Instant::now(), 0u64);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let done = frames_done(&s.metrics);
        let fps = (done - last.1) as f64 / last.0.elapsed().as_secs_f64();
        last = (Instant::now(), done);
        let in_flight = s.tracker.lock().map(|t| t.in_flight()).unwrap_or(0);
        // Watermark queries block: keep them off the async workers.
        let measuring = s.clone();
        let lag = match tokio::task::spawn_blocking(move || measure_lag(&measuring)).await {
            Ok(Some(lags)) => {
                LagMeasured { lags: &lags }.emit(&s.metrics);
                lags.iter().map(|(_, lag)| lag).sum()
            }
            // No assignment to measure: the gauge keeps its last values rather than dropping to nothing.
            _ => 0,
        };
        let skipped = s.metrics.frames_skipped.with_label_values(&["stale"]).get();
        StatusReported { frames: done, skipped, fps, in_flight, lag }.emit();
    }
}

/// Lag of each partition assigned to this replica: the high watermark minus its position (the first frame
/// not yet done), or minus the group's commit for a partition it has not consumed from yet. `None` when the
/// assignment cannot be read.
fn measure_lag(s: &Status) -> Option<Vec<(i32, i64)>> {
    let assignment = s.consumer.assignment().ok()?;
    let assigned: Vec<i32> = assignment.elements_for_topic(&s.topic).iter().map(|e| e.partition()).collect();
    let position = |p| s.tracker.lock().ok().and_then(|t| t.position(p));
    Some(lag::measure(s.consumer.as_ref(), &s.topic, &assigned, position, Uncommitted::FromLowWatermark, LAG_TIMEOUT))
}

/// Frames done since start, over all cameras.
fn frames_done(m: &Metrics) -> u64 {
    m.frames.collect().iter().flat_map(|mf| mf.get_metric().iter().map(|m| m.get_counter().get_value() as u64)).sum()
}
