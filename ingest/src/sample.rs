//! Frame-rate sampling by stream time: `--fps N` keeps the first frame at or after each 1/N s tick, so a
//! 30 fps camera at `--fps 5` yields evenly spaced frames, and a variable-rate stream is not over-sampled
//! after a burst.

/// Decides which decoded frames to keep.
#[derive(Debug, Clone)]
pub struct FpsSampler {
    /// Tick length in µs; `None` keeps every frame.
    interval_us: Option<i64>,
    /// Stream time (µs) of the next tick; `None` until the first frame.
    next_due_us: Option<i64>,
}

/// Timestamps within this much before a tick count as on it: container timestamps are rounded to the time
/// base (e.g. 33366 µs for a 33333 µs frame), and a frame 1 µs early must not slip to the next frame.
const TOLERANCE_US: i64 = 1_000;

impl FpsSampler {
    /// `fps` of `None` or `<= 0` keeps every frame.
    pub fn new(fps: Option<f64>) -> Self {
        let interval_us = fps.filter(|f| *f > 0.0).map(|f| (1_000_000.0 / f).round() as i64);
        FpsSampler { interval_us, next_due_us: None }
    }

    /// Whether to keep a frame with stream time `t_us`.
    pub fn keep(&mut self, t_us: i64) -> bool {
        let Some(interval) = self.interval_us else { return true };
        match self.next_due_us {
            None => {
                self.next_due_us = Some(t_us + interval);
                true
            }
            Some(due) if t_us + TOLERANCE_US >= due => {
                // Skip ticks already passed (a gap in the stream) instead of emitting a burst to catch up.
                let missed = (t_us + TOLERANCE_US - due) / interval;
                self.next_due_us = Some(due + (missed + 1) * interval);
                true
            }
            Some(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(fps: Option<f64>, times: impl IntoIterator<Item = i64>) -> Vec<i64> {
        let mut s = FpsSampler::new(fps);
        times.into_iter().filter(|t| s.keep(*t)).collect()
    }

    #[test]
    fn no_fps_keeps_everything() {
        assert_eq!(kept(None, [0, 10, 20]), vec![0, 10, 20]);
        assert_eq!(kept(Some(0.0), [0, 10, 20]), vec![0, 10, 20]);
    }

    #[test]
    fn thirty_to_five_is_evenly_spaced() {
        // 30 fps with container rounding (ms timestamps).
        let times: Vec<i64> = (0..90).map(|i| (i as f64 * 1_000_000.0 / 30.0 / 1000.0).round() as i64 * 1000).collect();
        let k = kept(Some(5.0), times);
        assert_eq!(k.len(), 15, "{k:?}");
        for w in k.windows(2) {
            assert!((w[1] - w[0] - 200_000).abs() <= 1_000, "uneven spacing {k:?}");
        }
    }

    #[test]
    fn a_gap_does_not_cause_a_burst() {
        // 10 fps source, 2 fps target, 3 s gap in the middle.
        let mut times: Vec<i64> = (0..10).map(|i| i * 100_000).collect();
        times.extend((40..50).map(|i| i * 100_000));
        let k = kept(Some(2.0), times);
        assert_eq!(k, vec![0, 500_000, 4_000_000, 4_500_000]);
    }

    #[test]
    fn higher_target_than_source_keeps_all() {
        let times: Vec<i64> = (0..25).map(|i| i * 40_000).collect();
        assert_eq!(kept(Some(60.0), times.clone()), times);
    }
}
