//! A result's latency split by stage, from the `StageTimes` it carries. Shared by every reader that reports
//! it (`subscribe tail --summary`, its metrics, the benchmarks), so the stages are named and cut one way.

use crate::{Detections, Skipped};

/// The stages of a result's way from capture to a subscriber, in order. Each is the time between two
/// recorded moments; the names are stable (JSON keys, metric labels).
pub const STAGES: [&str; 9] = [
    "decode",
    "jpeg",
    "ingest_queue",
    "kafka_frames",
    "detect_queue",
    "inference",
    "detect_output",
    "kafka_results",
    "total",
];

/// What each stage spans, for help texts and reports.
pub const STAGE_SPANS: [&str; 9] = [
    "capture -> decoded (camera, network, demuxer, decoder)",
    "decoded -> JPEG encoded",
    "encoded -> handed to the producer (ingest's queue)",
    "published -> consumed by detect (producer, broker, fetch)",
    "consumed -> inference start (detect's queue, preprocessing, batching)",
    "inference start -> end (the model)",
    "inference end -> result handed to the producer",
    "result produced -> received by the subscriber",
    "capture -> received by the subscriber",
];

/// Each stage's duration in milliseconds for one result received at `received_us` (Unix µs), in the order of
/// [`STAGES`]; `None` where one of its two moments was not recorded (an older writer, a skipped frame's
/// inference) or the clocks of two hosts put it below zero by more than clock noise.
pub fn breakdown(d: &Detections, received_us: i64) -> [Option<f64>; 9] {
    let t = d.stage_times.unwrap_or_default();
    let capture_us = if d.capture_time_ms > 0 { d.capture_time_ms * 1000 } else { 0 };
    let inferred = d.skipped() == Skipped::None;
    let (start, end) = if inferred { (t.inference_start_us, t.inference_end_us) } else { (0, 0) };
    let span = span_ms;
    [
        span(capture_us, t.decoded_us),
        span(t.decoded_us, t.encoded_us),
        span(t.encoded_us, t.published_us),
        span(t.published_us, t.consumed_us),
        span(t.consumed_us, start),
        span(start, end),
        span(end, t.produced_us),
        span(t.produced_us, received_us),
        span(capture_us, received_us),
    ]
}

/// Milliseconds from `from_us` to `to_us` (Unix µs); `None` if either was not recorded (0), or if the clocks of
/// two hosts put it below zero by more than clock noise. Capture times have millisecond resolution and stages
/// may run on hosts whose clocks differ a little: a slightly negative span is rounding (read as 0), a large
/// one is a clock that is off.
pub fn span_ms(from_us: i64, to_us: i64) -> Option<f64> {
    if from_us <= 0 || to_us <= 0 {
        return None;
    }
    let ms = (to_us - from_us) as f64 / 1000.0;
    (ms > -5.0).then_some(ms.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StageTimes;

    fn result(skipped: Skipped) -> Detections {
        let mut d = Detections {
            capture_time_ms: 1_000,
            stage_times: Some(StageTimes {
                decoded_us: 1_040_000,
                encoded_us: 1_043_000,
                published_us: 1_044_000,
                consumed_us: 1_050_000,
                inference_start_us: 1_052_000,
                inference_end_us: 1_066_000,
                produced_us: 1_067_000,
            }),
            ..Default::default()
        };
        d.set_skipped(skipped);
        d
    }

    #[test]
    fn every_stage_is_the_time_between_its_two_moments() {
        let b = breakdown(&result(Skipped::None), 1_070_000);
        assert_eq!(
            b,
            [Some(40.0), Some(3.0), Some(1.0), Some(6.0), Some(2.0), Some(14.0), Some(1.0), Some(3.0), Some(70.0)]
        );
        let sum: f64 = b[..8].iter().map(|s| s.unwrap()).sum();
        assert_eq!(sum, b[8].unwrap());
    }

    #[test]
    fn a_skipped_frame_has_no_inference_and_a_missing_moment_no_stage() {
        let b = breakdown(&result(Skipped::Stale), 1_070_000);
        assert_eq!((b[4], b[5], b[6]), (None, None, None));
        assert_eq!(b[8], Some(70.0));
        let old = Detections { capture_time_ms: 1_000, ..Default::default() };
        assert_eq!(breakdown(&old, 1_070_000)[..8], [None; 8]);
        assert_eq!(breakdown(&old, 1_070_000)[8], Some(70.0));
    }

    #[test]
    fn clocks_a_little_apart_read_as_zero_and_far_apart_as_unknown() {
        let mut d = result(Skipped::None);
        d.stage_times.as_mut().unwrap().consumed_us = 1_043_000;
        assert_eq!(breakdown(&d, 1_070_000)[3], Some(0.0));
        d.stage_times.as_mut().unwrap().consumed_us = 1_000_000;
        assert_eq!(breakdown(&d, 1_070_000)[3], None);
    }
}
