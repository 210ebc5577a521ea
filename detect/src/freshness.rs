//! `--max-frame-age`: when frames arrive faster than detect can run them, which go through the model and
//! which are skipped as stale, so that results stay fresh instead of falling further and further behind.
//!
//! A frame is stale when its result, were it run now, would be older than the maximum age:
//! `now - capture + expected > max_age`, where `expected` is the recent duration of a model call (an
//! exponentially weighted average). The bound is on the age of results, not only on the age at the start of
//! inference. The inference stage checks it when the frame's turn comes. The preprocess stage checks it
//! before decoding the JPEG, counting also the recent time from there to the model call (decoding and
//! waiting): a frame that will be stale by its turn costs no decoding.
//!
//! A frame's age counts from when ingest decoded it (`stage_times.decoded_us`, the ingest host's clock), not
//! from its capture time, which may come from the camera's own clock: cameras run seconds off (ingest trusts
//! a camera clock up to 10 minutes away), and a camera 2 s behind would never have a fresh frame under
//! `--max-frame-age 1s`. Frames from writers that do not record it count from their capture time.
//!
//! The estimates never make a frame stale by themselves: each counts at most half the maximum age. A first
//! call that was slow (ONNX Runtime's first run sets up its arena; a GPU provider tunes kernels for seconds),
//! or one stall, would otherwise make every frame stale, and with no call running the estimate would never
//! come down again.
//!
//! Which of the fresh frames run when not all can is [`crate::turns`].

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// The staleness test of one lane, shared by its two stages: the maximum age, and the lane's recent model
/// call and wait for it, which the inference stage measures.
#[derive(Debug, Clone)]
pub struct Freshness {
    max_age_us: i64,
    expected: Expected,
    wait: Expected,
}

impl Freshness {
    pub fn new(max_age: Duration) -> Self {
        let max_age_us = i64::try_from(max_age.as_micros()).unwrap_or(i64::MAX);
        Freshness { max_age_us, expected: Expected::default(), wait: Expected::default() }
    }

    /// The maximum age of a result, in µs.
    pub fn max_age_us(&self) -> i64 {
        self.max_age_us
    }

    /// The duration a frame is expected to take from the start of its model call to its result.
    pub fn expected(&self) -> &Expected {
        &self.expected
    }

    /// The time a frame run recently took from the preprocess stage's check to the start of its call.
    pub fn wait(&self) -> &Expected {
        &self.wait
    }

    /// Whether a frame born at `capture_ms` (Unix ms, see [`born_ms`]) is stale at `now_us` (Unix µs), its
    /// turn come.
    pub fn is_stale(&self, now_us: i64, capture_ms: i64) -> bool {
        is_stale(now_us, capture_ms, self.ahead(self.expected.get_us()), self.max_age_us)
    }

    /// Whether a frame about to be preprocessed at `now_us` will be stale when its turn comes.
    pub fn stale_by_its_turn(&self, now_us: i64, capture_ms: i64) -> bool {
        let ahead = self.ahead(self.wait.get_us().saturating_add(self.expected.get_us()));
        is_stale(now_us, capture_ms, ahead, self.max_age_us)
    }

    /// An estimate of the time still ahead of a frame, as the staleness test counts it (see the module doc).
    pub fn ahead(&self, estimate_us: i64) -> i64 {
        estimate_us.min(self.max_age_us / 2)
    }
}

/// When `frame` started to age, Unix ms: when ingest decoded it, else its capture time (see the module doc).
pub fn born_ms(frame: &framewire_proto::Frame) -> i64 {
    match frame.stage_times.map_or(0, |t| t.decoded_us / 1000) {
        ms if ms > 0 => ms,
        _ => frame.capture_time_ms,
    }
}

/// Whether a frame captured at `capture_ms` would give a result older than `max_age_us` if its model call
/// started at `now_us` and took `expected_us`. A frame without a capture time is never stale: its age is
/// unknown, and skipping it could never be justified.
pub fn is_stale(now_us: i64, capture_ms: i64, expected_us: i64, max_age_us: i64) -> bool {
    if capture_ms <= 0 {
        return false;
    }
    now_us.saturating_sub(capture_ms.saturating_mul(1000)).saturating_add(expected_us) > max_age_us
}

/// An exponentially weighted average of durations measured in a lane, in µs; 0 until the first.
#[derive(Debug, Clone, Default)]
pub struct Expected(Arc<AtomicI64>);

/// Each new call moves the average by 1/WEIGHT of the difference: a few calls follow a change of load
/// (another process on the cores, a larger batch), one slow call does not.
const WEIGHT: i64 = 4;

impl Expected {
    pub fn get_us(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Adds one measurement. Only the lane's inference thread writes, so load-then-store loses nothing.
    pub fn observe(&self, us: i64) {
        let us = us.max(0);
        let old = self.get_us();
        let new = if old == 0 { us } else { old + (us - old) / WEIGHT };
        self.0.store(new, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1000;

    #[test]
    fn stale_means_the_result_would_be_older_than_the_maximum_age() {
        let capture_ms = 1_000_000;
        let now = capture_ms * MS + 900 * MS;
        // 900 ms old: fresh with a 50 ms call, stale with a 150 ms one (the result would be 1.05 s old).
        assert!(!is_stale(now, capture_ms, 50 * MS, 1000 * MS));
        assert!(is_stale(now, capture_ms, 150 * MS, 1000 * MS));
        assert!(!is_stale(now, capture_ms, 100 * MS, 1000 * MS), "exactly the maximum age is not older than it");
        // Before preprocessing, the wait for the model counts too.
        let f = Freshness::new(Duration::from_secs(1));
        f.expected().observe(50 * MS);
        assert!(!f.stale_by_its_turn(now, capture_ms));
        f.wait().observe(60 * MS);
        assert!(f.stale_by_its_turn(now, capture_ms) && !f.is_stale(now, capture_ms));
        // A capture time in the future (a camera clock ahead) is young, an unknown one never stale.
        assert!(!is_stale(now, capture_ms + 5_000, 50 * MS, 1000 * MS));
        assert!(!is_stale(now, 0, 50 * MS, 1000 * MS));
    }

    #[test]
    fn a_slow_call_never_makes_every_frame_stale() {
        let f = Freshness::new(Duration::from_secs(1));
        // A first call of 2 s (a GPU provider tuning its kernels): a frame just decoded still runs.
        f.expected().observe(2_000 * MS);
        f.wait().observe(3_000 * MS);
        let now = 5_000_000 * MS;
        assert!(!f.is_stale(now, now / MS) && !f.stale_by_its_turn(now, now / MS));
        assert!(f.is_stale(now, now / MS - 600), "but one 600 ms old would give a result past the limit");
    }

    #[test]
    fn age_counts_from_the_decoding_on_the_ingest_host() {
        let mut frame = framewire_proto::Frame { capture_time_ms: 1_000, ..Default::default() };
        assert_eq!(born_ms(&frame), 1_000, "no stage times: the capture time");
        frame.stage_times = Some(framewire_proto::StageTimes { decoded_us: 3_500_000, ..Default::default() });
        assert_eq!(born_ms(&frame), 3_500, "a camera clock 2.5 s behind does not age the frame");
    }

    #[test]
    fn the_expected_call_follows_the_recent_calls() {
        let e = Expected::default();
        assert_eq!(e.get_us(), 0);
        e.observe(40_000);
        assert_eq!(e.get_us(), 40_000, "the first call is taken as it is");
        e.observe(80_000);
        assert_eq!(e.get_us(), 50_000);
        for _ in 0..50 {
            e.observe(80_000);
        }
        assert!((79_000..=80_000).contains(&e.get_us()), "{}", e.get_us());
        // Shared: the preprocess stage of the lane sees what inference observed.
        let f = Freshness::new(Duration::from_secs(1));
        f.clone().expected().observe(30_000);
        assert_eq!(f.expected().get_us(), 30_000);
    }
}
