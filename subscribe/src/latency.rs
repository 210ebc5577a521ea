//! Latency by stage for `tail`: a bounded uniform sample (reservoir) of each result's stage durations, from
//! the stage times it carries (`framewire_proto::stages`), and their quantiles.

use serde::Serialize;

use framewire_proto::Detections;
use framewire_proto::stages::{STAGES, breakdown};

/// Results sampled: bounded however long the tail runs (about 4 MB).
pub const RESERVOIR: usize = 100_000;

/// The stages, then the model's own per-frame time (`inference_ms`, a batch's time shared by its frames).
const COLUMNS: usize = STAGES.len() + 1;
const TOTAL: usize = STAGES.len() - 1;
const INFERENCE_MS: usize = STAGES.len();

#[derive(Debug, Default)]
pub struct Latencies {
    /// Milliseconds; NaN where the result did not record the stage.
    samples: Vec<[f32; COLUMNS]>,
    seen: u64,
    rng: u64,
}

/// One stage's quantiles, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageQuantiles {
    pub stage: &'static str,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// The `q` quantile (0..=1) of `values`, nearest rank.
pub fn quantile<T: Copy + PartialOrd>(values: &[T], q: f64) -> Option<T> {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    nearest_rank(&v, q)
}

/// The `q` quantile (0..=1) of values already sorted, nearest rank.
fn nearest_rank<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

impl Latencies {
    /// Samples one result received at `received_us` (Unix µs). Returns its stages (see
    /// [`framewire_proto::stages::breakdown`]), for metrics.
    pub fn add(&mut self, d: &Detections, received_us: i64) -> [Option<f64>; STAGES.len()] {
        let stages = breakdown(d, received_us);
        let mut row = [f32::NAN; COLUMNS];
        for (cell, s) in row.iter_mut().zip(stages) {
            *cell = s.map_or(f32::NAN, |ms| ms as f32);
        }
        row[INFERENCE_MS] = d.inference_ms;
        self.seen += 1;
        if self.samples.len() < RESERVOIR {
            self.samples.push(row);
            return stages;
        }
        // xorshift64: a uniform enough pick for a reservoir.
        self.rng = if self.rng == 0 { 0x9e37_79b9_7f4a_7c15 } else { self.rng };
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let j = (self.rng % self.seen) as usize;
        if j < RESERVOIR {
            self.samples[j] = row;
        }
        stages
    }

    /// p50 and p99 of column `c`, from one sort of its recorded values.
    fn column(&self, c: usize) -> Option<(f64, f64)> {
        let mut v: Vec<f32> = self.samples.iter().map(|r| r[c]).filter(|x| !x.is_nan()).collect();
        v.sort_by(f32::total_cmp);
        Some((f64::from(nearest_rank(&v, 0.5)?), f64::from(nearest_rank(&v, 0.99)?)))
    }

    /// Capture-to-here latency p50 and p99 (ms), and the model's median per-frame time (ms).
    pub fn total(&self) -> Option<(i64, i64, f32)> {
        let (p50, p99) = self.column(TOTAL)?;
        Some((p50.round() as i64, p99.round() as i64, self.column(INFERENCE_MS)?.0 as f32))
    }

    /// p50 and p99 of every stage the sampled results recorded, in pipeline order.
    pub fn stages(&self) -> Vec<StageQuantiles> {
        STAGES
            .iter()
            .enumerate()
            .filter_map(|(c, stage)| {
                let (p50_ms, p99_ms) = self.column(c)?;
                Some(StageQuantiles { stage, p50_ms, p99_ms })
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use framewire_proto::StageTimes;

    fn result(capture_ms: i64, inference_ms: f32) -> Detections {
        Detections { capture_time_ms: capture_ms, inference_ms, ..Default::default() }
    }

    #[test]
    fn quantiles_come_from_a_bounded_sample() {
        let mut l = Latencies::default();
        for i in 1..=100 {
            l.add(&result(1_000, 20.0), (1_000 + i) * 1000);
        }
        assert_eq!(l.total(), Some((50, 99, 20.0)));
        for i in 0..(RESERVOIR as i64 + 5000) {
            l.add(&result(1_000, 20.0), (2_000 + i % 10) * 1000);
        }
        assert_eq!(l.len(), RESERVOIR);
        let (p50, _, _) = l.total().unwrap();
        assert!((1000..1010).contains(&p50), "the reservoir follows the stream: {p50}");
        assert_eq!(quantile::<i64>(&[], 0.5), None);
    }

    #[test]
    fn stages_are_reported_only_where_recorded() {
        let mut l = Latencies::default();
        assert!(l.stages().is_empty() && l.total().is_none());
        // An older writer: only the total is known.
        l.add(&result(1_000, 10.0), 1_050_000);
        assert_eq!(l.stages().iter().map(|s| s.stage).collect::<Vec<_>>(), ["total"]);
        for i in 0..10 {
            let mut d = result(1_000, 10.0);
            d.stage_times = Some(StageTimes {
                decoded_us: 1_010_000,
                encoded_us: 1_012_000,
                published_us: 1_013_000,
                consumed_us: 1_020_000,
                inference_start_us: 1_021_000,
                inference_end_us: 1_031_000 + i * 1000,
                produced_us: 1_041_000,
            });
            l.add(&d, 1_045_000);
        }
        let stages = l.stages();
        assert_eq!(stages.len(), 9);
        let inference = stages.iter().find(|s| s.stage == "inference").unwrap();
        assert_eq!((inference.p50_ms, inference.p99_ms), (14.0, 19.0));
        assert_eq!(stages.iter().find(|s| s.stage == "decode").unwrap().p50_ms, 10.0);
        assert_eq!(stages.last().unwrap().stage, "total");
    }
}
