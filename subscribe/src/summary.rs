//! Running totals for `tail --summary`: frames, cameras, label counts, duplicates (at-least-once delivery
//! means the same result can arrive twice; its identity is camera + seq + model version), printed at exit as
//! one line of text or one JSON object.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Instant;

use serde::Serialize;

use framewire_proto::stages::STAGES;
use framewire_proto::{Detections, Skipped};

use crate::latency::{Latencies, StageQuantiles};

pub use framewire_common::summary::Format;

#[derive(Debug, Default)]
pub struct Summary {
    pub messages: u64,
    pub duplicates: u64,
    pub undecodable: u64,
    /// Distinct records of frames detect did not run through the model (`--max-frame-age`).
    pub skipped: u64,
    /// Frames ingest left out as unchanged (motion gating), as the records that follow them report.
    pub unchanged: u64,
    /// Recent seqs per (camera, model version).
    seen: HashMap<(String, String), Recent>,
    labels: BTreeMap<String, u64>,
    first: Option<Instant>,
    last: Option<Instant>,
    /// Latency by stage of the results detected (skipped records excluded).
    latencies: Latencies,
}

/// Seqs remembered per camera and model to recognise a repeat. At-least-once repeats arrive within the
/// in-flight and not-yet-committed window (seconds of frames), far inside this; older seqs are forgotten so
/// that a tail running for months stays bounded (about 1 MB per camera and model).
const REMEMBERED: usize = 65_536;

/// The last [`REMEMBERED`] distinct seqs of one camera and model.
#[derive(Debug, Default)]
struct Recent {
    seqs: HashSet<u64>,
    order: VecDeque<u64>,
}

impl Recent {
    /// False if `seq` is among the remembered ones.
    fn insert(&mut self, seq: u64) -> bool {
        if !self.seqs.insert(seq) {
            return false;
        }
        self.order.push_back(seq);
        if self.order.len() > REMEMBERED
            && let Some(old) = self.order.pop_front()
        {
            self.seqs.remove(&old);
        }
        true
    }
}

impl Summary {
    /// Counts a message; returns false if it is a duplicate of one already seen.
    pub fn add(&mut self, d: &Detections, now: Instant) -> bool {
        self.messages += 1;
        self.first.get_or_insert(now);
        self.last = Some(now);
        if !self.seen.entry((d.camera_id.clone(), d.model_version.clone())).or_default().insert(d.seq) {
            self.duplicates += 1;
            return false;
        }
        for b in &d.boxes {
            *self.labels.entry(b.label.clone()).or_default() += 1;
        }
        if d.skipped() != Skipped::None {
            self.skipped += 1;
        }
        self.unchanged += u64::from(d.unchanged_before);
        true
    }

    /// Samples the latency, by stage, of a distinct result received at `received_us` (Unix µs); a skipped
    /// record has no result to time. Returns the stages (ms), for metrics.
    pub fn add_timing(&mut self, d: &Detections, received_us: i64) -> Option<[Option<f64>; STAGES.len()]> {
        (d.skipped() == Skipped::None).then(|| self.latencies.add(d, received_us))
    }

    /// Capture-to-here latency p50 and p99 (ms), and the median inference time (ms).
    pub fn latency(&self) -> Option<(i64, i64, f32)> {
        self.latencies.total()
    }

    /// p50/p99 of each stage the results recorded.
    pub fn stages(&self) -> Vec<StageQuantiles> {
        self.latencies.stages()
    }

    /// Distinct frames (duplicates excluded).
    pub fn frames(&self) -> u64 {
        self.messages - self.duplicates
    }

    /// Labels by count, most frequent first.
    pub fn top_labels(&self, n: usize) -> Vec<(&str, u64)> {
        let mut v: Vec<(&str, u64)> = self.labels.iter().map(|(k, c)| (k.as_str(), *c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v.truncate(n);
        v
    }

    /// Frames per second between the first and the last message.
    pub fn rate(&self) -> Option<f64> {
        let (first, last) = (self.first?, self.last?);
        let secs = last.duration_since(first).as_secs_f64();
        (secs > 0.0 && self.frames() > 1).then(|| (self.frames() - 1) as f64 / secs)
    }

    /// Cameras seen. A camera's first message is never a duplicate, so every camera seen has a window.
    pub fn cameras(&self) -> usize {
        self.seen.keys().map(|(camera, _)| camera).collect::<HashSet<_>>().len()
    }

    /// The summary in `format`, as one line (without its newline).
    pub fn render_as(&self, format: Format) -> String {
        match format {
            Format::Text => self.render(),
            Format::Json => self.render_json(),
        }
    }

    pub fn render(&self) -> String {
        let labels: Vec<String> = self.top_labels(5).iter().map(|(l, c)| format!("{l} {c}")).collect();
        let rate = self.rate().map_or_else(|| "n/a".to_string(), |r| format!("{r:.1}"));
        let latency = self.latency().map_or_else(
            || "n/a".to_string(),
            |(p50, p99, inf)| format!("p50 {p50} ms, p99 {p99} ms (inference p50 {inf:.1} ms)"),
        );
        let stages: Vec<String> =
            self.stages().iter().map(|s| format!("{} {:.1}/{:.1}", s.stage, s.p50_ms, s.p99_ms)).collect();
        let stages = if stages.is_empty() { "n/a".to_string() } else { stages.join(", ") };
        // The rate stays last: scripts read it from the end of the line.
        format!(
            "summary: {} frames detected from {} camera(s), {} duplicate(s), {} undecodable, {} skipped as stale, {} left out unchanged; top labels: {}; latency capture to here {}; by stage p50/p99 ms: {}; {} frames/s",
            self.frames(),
            self.cameras(),
            self.duplicates,
            self.undecodable,
            self.skipped,
            self.unchanged,
            if labels.is_empty() { "none".to_string() } else { labels.join(", ") },
            latency,
            stages,
            rate
        )
    }

    /// The same figures as [`Summary::render`], as one JSON object: `{"summary":"tail",...}`.
    pub fn render_json(&self) -> String {
        let latency = self.latency();
        let json = Json {
            frames: self.frames(),
            cameras: self.cameras(),
            duplicates: self.duplicates,
            undecodable: self.undecodable,
            skipped: self.skipped,
            unchanged: self.unchanged,
            top_labels: self.top_labels(5).into_iter().map(|(label, count)| Label { label, count }).collect(),
            latency_p50_ms: latency.map(|l| l.0),
            latency_p99_ms: latency.map(|l| l.1),
            inference_p50_ms: latency.map(|l| l.2),
            stages: self.stages(),
            frames_per_s: self.rate(),
        };
        framewire_common::summary::json("tail", &json)
    }
}

/// The JSON form of a tail summary; field order is the output's.
#[derive(Serialize)]
struct Json<'a> {
    frames: u64,
    cameras: usize,
    duplicates: u64,
    undecodable: u64,
    skipped: u64,
    unchanged: u64,
    /// Most frequent first, at most five.
    top_labels: Vec<Label<'a>>,
    latency_p50_ms: Option<i64>,
    latency_p99_ms: Option<i64>,
    inference_p50_ms: Option<f32>,
    /// Pipeline order; only the stages the results recorded.
    stages: Vec<StageQuantiles>,
    frames_per_s: Option<f64>,
}

#[derive(Serialize)]
struct Label<'a> {
    label: &'a str,
    count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use framewire_proto::DetectionBox;
    use std::time::Duration;

    fn det(camera: &str, seq: u64, labels: &[&str]) -> Detections {
        Detections {
            camera_id: camera.into(),
            seq,
            model_version: "v1".into(),
            boxes: labels.iter().map(|l| DetectionBox { label: (*l).into(), ..Default::default() }).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn counts_labels_duplicates_and_rate() {
        let mut s = Summary::default();
        let t0 = Instant::now();
        assert!(s.add(&det("a", 0, &["person", "car"]), t0));
        assert!(s.add(&det("a", 1, &["person"]), t0 + Duration::from_millis(500)));
        assert!(!s.add(&det("a", 1, &["person"]), t0 + Duration::from_millis(600)), "duplicate");
        assert!(s.add(&det("b", 1, &[]), t0 + Duration::from_secs(1)));
        assert_eq!(s.frames(), 3);
        assert_eq!(s.duplicates, 1);
        assert_eq!(s.top_labels(5), vec![("person", 2), ("car", 1)]);
        assert!((s.rate().unwrap() - 2.0).abs() < 1e-9);
        let text = s.render();
        assert!(text.contains("3 frames detected from 2 camera(s), 1 duplicate(s)"), "{text}");
        assert!(text.contains("person 2, car 1"), "{text}");
        assert!(text.contains("latency capture to here n/a") && text.ends_with("2.0 frames/s"), "{text}");
        assert_eq!(s.render_as(Format::Text), text);
    }

    #[test]
    fn json_holds_the_same_figures_on_one_line() {
        let mut s = Summary::default();
        let t0 = Instant::now();
        s.add(&det("a", 0, &["person", "car"]), t0);
        s.add(&det("a", 0, &["person", "car"]), t0);
        s.add(&det("b", 1, &["person"]), t0 + Duration::from_secs(1));
        assert_eq!(
            s.render_as(Format::Json),
            r#"{"summary":"tail","frames":2,"cameras":2,"duplicates":1,"undecodable":0,"skipped":0,"unchanged":0,"top_labels":[{"label":"person","count":2},{"label":"car","count":1}],"latency_p50_ms":null,"latency_p99_ms":null,"inference_p50_ms":null,"stages":[],"frames_per_s":1.0}"#
        );
        let d = Detections { capture_time_ms: 1_000, inference_ms: 20.5, ..det("b", 2, &[]) };
        s.add(&d, t0);
        assert!(s.add_timing(&d, 1_040_000).is_some());
        let v: serde_json::Value = serde_json::from_str(&s.render_json()).unwrap();
        assert_eq!((v["latency_p50_ms"].as_i64(), v["inference_p50_ms"].as_f64()), (Some(40), Some(20.5)));
        assert_eq!(v["stages"], serde_json::json!([{"stage": "total", "p50_ms": 40.0, "p99_ms": 40.0}]));
    }

    #[test]
    fn repeats_are_recognised_within_a_bounded_window_per_camera_and_model() {
        let mut s = Summary::default();
        let t0 = Instant::now();
        for seq in 0..=REMEMBERED as u64 {
            assert!(s.add(&det("a", seq, &[]), t0));
        }
        // The newest seqs are remembered, the oldest one forgotten: memory stays bounded.
        assert!(!s.add(&det("a", REMEMBERED as u64, &[]), t0), "a recent repeat is a duplicate");
        assert!(!s.add(&det("a", 1, &[]), t0), "still inside the window");
        assert!(s.add(&det("a", 0, &[]), t0), "forgotten");
        let recent = &s.seen[&("a".to_string(), "v1".to_string())];
        assert_eq!((recent.seqs.len(), recent.order.len()), (REMEMBERED, REMEMBERED));
        // Another camera has its own window.
        assert!(s.add(&det("b", 1, &[]), t0));
        assert_eq!(s.duplicates, 2);
    }

    #[test]
    fn skipped_records_are_counted_apart_and_not_timed() {
        let mut s = Summary::default();
        let t0 = Instant::now();
        let mut stale = Detections { capture_time_ms: 1_000, unchanged_before: 4, ..det("a", 0, &[]) };
        stale.set_skipped(Skipped::Stale);
        assert!(s.add(&stale, t0));
        assert_eq!(s.add_timing(&stale, 9_000_000), None);
        assert!(!s.add(&stale, t0), "a repeat is a duplicate, not a second skip");
        let d = Detections { capture_time_ms: 1_000, unchanged_before: 2, ..det("a", 1, &["person"]) };
        assert!(s.add(&d, t0));
        assert!(s.add_timing(&d, 1_030_000).is_some());
        assert_eq!((s.frames(), s.skipped, s.unchanged), (2, 1, 6));
        assert_eq!(s.latency().map(|l| l.0), Some(30), "the stale record's 8 s is not a result's latency");
        let text = s.render();
        assert!(text.contains("1 skipped as stale, 6 left out unchanged"), "{text}");
        assert!(text.contains("by stage p50/p99 ms: total 30.0/30.0"), "{text}");
    }
}
