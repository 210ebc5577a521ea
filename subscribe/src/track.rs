//! Grouping detections into events with a small IoU tracker.
//!
//! Per camera and model, every box is matched to the open track of the same label whose last box overlaps
//! it most (IoU at least `iou`); unmatched boxes open new tracks. A track ends when its camera has not shown
//! it for `gap` of capture time, or, for a camera that went quiet, of wall time. A track is an event: start,
//! end, peak score, best snapshot. Alert rules run their own trackers over the boxes they accept (a
//! `scope` per rule), so "a person in the zone for 5 s" is one track that alerts once.

use std::collections::HashMap;

use framewire_proto::{DetectionBox, Detections};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// One event (or one alert rule's track) as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EventRow {
    pub id: String,
    /// "" for events; an alert rule's name for its tracks.
    pub scope: String,
    pub camera: String,
    pub model: String,
    pub label: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub start_seq: u64,
    pub end_seq: u64,
    pub frames: u64,
    pub peak_score: f32,
    pub peak_seq: u64,
    pub best_snapshot: Option<String>,
    pub best_score: f32,
    pub open: bool,
    pub alerted: bool,
    /// The last box seen, `[x1, y1, x2, y2]` in frame pixels.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
}

impl EventRow {
    pub fn duration_ms(&self) -> i64 {
        self.end_ms - self.start_ms
    }
}

/// A stable id, so that replaying the same detections gives the same events.
/// Two objects that appear in the same frame differ by the index of their box.
pub fn event_id(scope: &str, camera: &str, model: &str, label: &str, start_seq: u64, box_index: usize) -> String {
    let mut h = Sha256::new();
    for part in [scope, camera, model, label, &start_seq.to_string(), &box_index.to_string()] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// What one frame did to the tracks.
#[derive(Debug, Default)]
pub struct Observed {
    pub started: Vec<String>,
    pub ended: Vec<EventRow>,
    /// Every track this frame touched (new, extended or ended), latest state.
    pub touched: Vec<EventRow>,
    /// (index of the box in the frame, id of its track).
    pub matches: Vec<(usize, String)>,
}

#[derive(Clone)]
struct Track {
    row: EventRow,
    /// Wall-clock ms of the last update: closes tracks of cameras that stopped sending.
    seen_wall_ms: i64,
}

/// The trackers of one scope.
#[derive(Clone)]
pub struct Tracker {
    scope: String,
    iou: f32,
    gap_ms: i64,
    tracks: HashMap<(String, String), Vec<Track>>,
    last_seq: HashMap<(String, String), u64>,
}

impl Tracker {
    pub fn new(scope: &str, iou: f32, gap_ms: i64) -> Self {
        Tracker { scope: scope.to_string(), iou, gap_ms, tracks: HashMap::new(), last_seq: HashMap::new() }
    }

    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// Restores an open track (after a restart) from its stored row.
    pub fn restore(&mut self, row: EventRow, now_wall_ms: i64) {
        let key = (row.camera.clone(), row.model.clone());
        self.tracks.entry(key).or_default().push(Track { row, seen_wall_ms: now_wall_ms });
    }

    /// Restores the last frame seen of a camera, so redelivered frames are recognised after a restart.
    pub fn restore_cursor(&mut self, camera: &str, model: &str, last_seq: u64) {
        let e = self.last_seq.entry((camera.to_string(), model.to_string())).or_insert(0);
        *e = (*e).max(last_seq);
    }

    /// The last frame seen per (camera, model).
    pub fn cursors(&self) -> impl Iterator<Item = (&str, &str, u64)> {
        self.last_seq.iter().map(|((c, m), s)| (c.as_str(), m.as_str(), *s))
    }

    pub fn open_tracks(&self) -> impl Iterator<Item = &EventRow> {
        self.tracks.values().flatten().map(|t| &t.row)
    }

    /// Moves the camera's cursor past a frame that has no boxes to feed (skipped by detect). False if it was
    /// seen before (a redelivery).
    pub fn pass(&mut self, d: &Detections, model: &str) -> bool {
        let key = (d.camera_id.clone(), model.to_string());
        if let Some(&last) = self.last_seq.get(&key)
            && d.seq <= last
        {
            return false;
        }
        self.last_seq.insert(key, d.seq);
        true
    }

    /// Feeds one frame's boxes that `accept` lets through. Returns `None` for a frame already seen (a
    /// redelivery), which must not extend or restart anything.
    pub fn observe(
        &mut self,
        d: &Detections,
        model: &str,
        now_wall_ms: i64,
        accept: impl Fn(&DetectionBox) -> bool,
    ) -> Option<Observed> {
        let key = (d.camera_id.clone(), model.to_string());
        if let Some(&last) = self.last_seq.get(&key)
            && d.seq <= last
        {
            return None;
        }
        self.last_seq.insert(key.clone(), d.seq);
        let mut out = Observed::default();
        let tracks = self.tracks.entry(key).or_default();

        // Tracks not seen for longer than the gap (in stream time) ended before this frame.
        let gap = self.gap_ms;
        let (ended, kept): (Vec<Track>, Vec<Track>) =
            std::mem::take(tracks).into_iter().partition(|t| d.capture_time_ms - t.row.end_ms > gap);
        *tracks = kept;
        for mut t in ended {
            t.row.open = false;
            out.touched.push(t.row.clone());
            out.ended.push(t.row);
        }

        let mut order: Vec<usize> = (0..d.boxes.len()).filter(|&i| accept(&d.boxes[i])).collect();
        order.sort_by(|&a, &b| d.boxes[b].score.total_cmp(&d.boxes[a].score));
        let mut used = vec![false; tracks.len()];
        for i in order {
            let b = &d.boxes[i];
            let bb = [b.x1, b.y1, b.x2, b.y2];
            let best = tracks
                .iter()
                .enumerate()
                .filter(|(j, t)| !used[*j] && t.row.label == b.label)
                .map(|(j, t)| (j, iou(&t.row.bbox, &bb)))
                .filter(|(_, o)| *o >= self.iou)
                .max_by(|a, b| a.1.total_cmp(&b.1));
            let j = match best {
                Some((j, _)) => j,
                None => {
                    let id = event_id(&self.scope, &d.camera_id, model, &b.label, d.seq, i);
                    out.started.push(id.clone());
                    tracks.push(Track {
                        row: EventRow {
                            id,
                            scope: self.scope.clone(),
                            camera: d.camera_id.clone(),
                            model: model.to_string(),
                            label: b.label.clone(),
                            start_ms: d.capture_time_ms,
                            end_ms: d.capture_time_ms,
                            start_seq: d.seq,
                            end_seq: d.seq,
                            frames: 0,
                            peak_score: b.score,
                            peak_seq: d.seq,
                            best_snapshot: None,
                            best_score: 0.0,
                            open: true,
                            alerted: false,
                            bbox: bb,
                        },
                        seen_wall_ms: now_wall_ms,
                    });
                    used.push(false);
                    tracks.len() - 1
                }
            };
            used[j] = true;
            let t = &mut tracks[j];
            t.row.end_ms = d.capture_time_ms;
            t.row.end_seq = d.seq;
            t.row.frames += 1;
            t.row.bbox = bb;
            t.seen_wall_ms = now_wall_ms;
            if b.score > t.row.peak_score {
                t.row.peak_score = b.score;
                t.row.peak_seq = d.seq;
            }
            out.matches.push((i, t.row.id.clone()));
            out.touched.push(t.row.clone());
        }
        Some(out)
    }

    /// Ends tracks whose camera has sent nothing for `gap` plus `grace` of wall time.
    pub fn expire(&mut self, now_wall_ms: i64, grace_ms: i64) -> Vec<EventRow> {
        let limit = self.gap_ms + grace_ms;
        let mut ended = Vec::new();
        for tracks in self.tracks.values_mut() {
            let (gone, kept): (Vec<Track>, Vec<Track>) =
                std::mem::take(tracks).into_iter().partition(|t| now_wall_ms - t.seen_wall_ms > limit);
            *tracks = kept;
            ended.extend(gone.into_iter().map(|mut t| {
                t.row.open = false;
                t.row
            }));
        }
        ended
    }

    /// Changes an open track in place (alerted flag, best snapshot).
    pub fn update(&mut self, id: &str, f: impl FnOnce(&mut EventRow)) -> Option<EventRow> {
        let t = self.tracks.values_mut().flatten().find(|t| t.row.id == id)?;
        f(&mut t.row);
        Some(t.row.clone())
    }
}

/// Intersection over union of two `[x1, y1, x2, y2]` boxes.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64, t: i64, boxes: &[(&str, f32, [f32; 4])]) -> Detections {
        Detections {
            camera_id: "door".into(),
            seq,
            capture_time_ms: t,
            width: 640,
            height: 480,
            boxes: boxes
                .iter()
                .map(|(l, s, b)| DetectionBox {
                    label: (*l).into(),
                    score: *s,
                    x1: b[0],
                    y1: b[1],
                    x2: b[2],
                    y2: b[3],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn overlapping_boxes_form_one_event_until_the_gap() {
        let mut tr = Tracker::new("", 0.3, 1000);
        let all = |_: &DetectionBox| true;
        let o = tr.observe(&frame(1, 0, &[("person", 0.6, [0., 0., 100., 200.])]), "m", 0, all).unwrap();
        assert_eq!(o.started.len(), 1);
        let id = o.started[0].clone();
        let o = tr.observe(&frame(2, 200, &[("person", 0.9, [10., 0., 110., 200.])]), "m", 0, all).unwrap();
        assert!(o.started.is_empty());
        assert_eq!(o.matches, vec![(0, id.clone())]);
        // Nothing for 500 ms: still the same event.
        let o = tr.observe(&frame(3, 700, &[("person", 0.7, [20., 0., 120., 200.])]), "m", 0, all).unwrap();
        assert_eq!(o.matches[0].1, id);
        let row = tr.open_tracks().next().unwrap().clone();
        assert_eq!((row.frames, row.peak_score, row.peak_seq, row.start_ms, row.end_ms), (3, 0.9, 2, 0, 700));
        // 1.5 s later: the old event ended and a new one starts.
        let o = tr.observe(&frame(4, 2200, &[("person", 0.7, [20., 0., 120., 200.])]), "m", 0, all).unwrap();
        assert_eq!(o.ended.len(), 1);
        assert_eq!(o.ended[0].id, id);
        assert!(!o.ended[0].open);
        assert_eq!(o.started.len(), 1);
        assert_ne!(o.started[0], id);
    }

    #[test]
    fn separate_objects_and_labels_get_separate_events() {
        let mut tr = Tracker::new("", 0.3, 1000);
        let all = |_: &DetectionBox| true;
        let boxes = [
            ("person", 0.8, [0., 0., 100., 200.]),
            ("person", 0.7, [300., 0., 400., 200.]),
            ("car", 0.9, [0., 0., 100., 200.]),
        ];
        let o = tr.observe(&frame(1, 0, &boxes), "m", 0, all).unwrap();
        assert_eq!(o.started.len(), 3);
        let o = tr.observe(&frame(2, 100, &boxes), "m", 0, all).unwrap();
        assert!(o.started.is_empty());
        let mut ids: Vec<_> = o.matches.iter().map(|m| m.1.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 3);
    }

    #[test]
    fn redelivered_frames_change_nothing() {
        let mut tr = Tracker::new("", 0.3, 1000);
        let all = |_: &DetectionBox| true;
        tr.observe(&frame(5, 0, &[("person", 0.6, [0., 0., 100., 200.])]), "m", 0, all).unwrap();
        assert!(tr.observe(&frame(5, 0, &[("person", 0.6, [0., 0., 100., 200.])]), "m", 0, all).is_none());
        assert!(tr.observe(&frame(4, 0, &[("person", 0.6, [0., 0., 100., 200.])]), "m", 0, all).is_none());
        assert_eq!(tr.open_tracks().next().unwrap().frames, 1);
        // A restored cursor does the same after a restart.
        let mut fresh = Tracker::new("", 0.3, 1000);
        fresh.restore_cursor("door", "m", 5);
        assert!(fresh.observe(&frame(5, 0, &[]), "m", 0, all).is_none());
    }

    #[test]
    fn ids_are_stable_and_quiet_cameras_expire() {
        let mut a = Tracker::new("", 0.3, 1000);
        let mut b = Tracker::new("", 0.3, 1000);
        let f = frame(7, 0, &[("person", 0.6, [0., 0., 100., 200.])]);
        let all = |_: &DetectionBox| true;
        assert_eq!(a.observe(&f, "m", 0, all).unwrap().started, b.observe(&f, "m", 0, all).unwrap().started);
        assert!(a.expire(2000, 5000).is_empty());
        let ended = a.expire(7000, 5000);
        assert_eq!(ended.len(), 1);
        assert!(a.open_tracks().next().is_none());
    }

    #[test]
    fn filtered_boxes_are_ignored() {
        let mut tr = Tracker::new("rule", 0.3, 1000);
        let o = tr
            .observe(&frame(1, 0, &[("person", 0.3, [0., 0., 10., 10.])]), "m", 0, |b: &DetectionBox| b.score > 0.5)
            .unwrap();
        assert!(o.started.is_empty());
        assert!(tr.open_tracks().next().is_none());
    }

    #[test]
    fn iou_of_known_boxes() {
        assert_eq!(iou(&[0., 0., 10., 10.], &[0., 0., 10., 10.]), 1.0);
        assert_eq!(iou(&[0., 0., 10., 10.], &[20., 20., 30., 30.]), 0.0);
        assert!((iou(&[0., 0., 10., 10.], &[5., 0., 15., 10.]) - 50.0 / 150.0).abs() < 1e-6);
    }
}
