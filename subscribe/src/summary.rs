//! Running totals for `tail --summary`: frames, cameras, label counts, duplicates (at-least-once delivery
//! means the same result can arrive twice; its identity is camera + seq + model version).

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use framewire_proto::Detections;

#[derive(Debug, Default)]
pub struct Summary {
    pub messages: u64,
    pub duplicates: u64,
    pub undecodable: u64,
    seen: HashSet<(String, u64, String)>,
    labels: BTreeMap<String, u64>,
    cameras: HashSet<String>,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Summary {
    /// Counts a message; returns false if it is a duplicate of one already seen.
    pub fn add(&mut self, d: &Detections, now: Instant) -> bool {
        self.messages += 1;
        self.first.get_or_insert(now);
        self.last = Some(now);
        if !self.seen.insert((d.camera_id.clone(), d.seq, d.model_version.clone())) {
            self.duplicates += 1;
            return false;
        }
        self.cameras.insert(d.camera_id.clone());
        for b in &d.boxes {
            *self.labels.entry(b.label.clone()).or_default() += 1;
        }
        true
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

    pub fn render(&self) -> String {
        let labels: Vec<String> = self.top_labels(5).iter().map(|(l, c)| format!("{l} {c}")).collect();
        let rate = self.rate().map_or_else(|| "n/a".to_string(), |r| format!("{r:.1}"));
        format!(
            "summary: {} frames detected from {} camera(s), {} duplicate(s), {} undecodable; top labels: {}; {} frames/s",
            self.frames(),
            self.cameras.len(),
            self.duplicates,
            self.undecodable,
            if labels.is_empty() { "none".to_string() } else { labels.join(", ") },
            rate
        )
    }
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
    }
}
