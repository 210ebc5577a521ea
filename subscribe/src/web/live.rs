//! The live view: two consumers outside any group read the newest frames and detections, and a small
//! per-camera cache joins each detection to the very frame it was made on (by camera + seq) before it is
//! pushed to the browsers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use framewire_common::kafka::KafkaArgs;
use framewire_common::time::now_ms;
use framewire_proto::Detections;
use framewire_proto::json::model_tag;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use serde::Serialize;

use super::App;
use crate::events::web::{DetectionsShown, NotDetections};

/// Frames kept per camera, and detections waiting per camera for their frame.
const FRAMES_PER_CAMERA: usize = 64;
/// How long a detection waits for its frame before it is shown without it.
const FRAME_WAIT: Duration = Duration::from_secs(2);

/// One box as the page gets it.
#[derive(Debug, Clone, Serialize)]
pub struct BoxView {
    pub label: String,
    pub score: f32,
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
}

/// One frame's detections as the page gets it.
#[derive(Debug, Clone, Serialize)]
pub struct FrameView {
    pub camera: String,
    pub seq: u64,
    pub width: u32,
    pub height: u32,
    pub capture_ms: i64,
    pub latency_ms: i64,
    pub model: String,
    pub inference_ms: f32,
    pub boxes: Vec<BoxView>,
    /// Where the page loads the frame; absent when the frame was not seen here.
    pub frame_url: Option<String>,
}

/// One box of the recent detections list.
#[derive(Debug, Clone, Serialize)]
pub(super) struct RecentView {
    pub(super) camera: String,
    pub(super) seq: u64,
    pub(super) capture_ms: i64,
    pub(super) label: String,
    pub(super) score: f32,
}

#[derive(Default)]
pub(super) struct CameraState {
    pub(super) latest: Option<FrameView>,
    /// Arrival instants of the last few seconds of frames: frames/s.
    pub(super) arrivals: VecDeque<Instant>,
    pub(super) latencies: VecDeque<i64>,
    pub(super) frames: u64,
}

/// What the consumers learn and the page reads.
#[derive(Default)]
pub(super) struct Shared {
    pub(super) cameras: BTreeMap<String, CameraState>,
    pub(super) recent: VecDeque<RecentView>,
    frames: HashMap<String, VecDeque<(u64, Bytes)>>,
    pending: HashMap<String, VecDeque<(Instant, Detections)>>,
    /// The detectors' lag per partition, written by the lag loop.
    pub(super) lag: Vec<(i32, i64)>,
}

impl Shared {
    /// A cached frame's JPEG.
    pub(super) fn frame(&self, camera: &str, seq: u64) -> Option<Bytes> {
        self.frames.get(camera)?.iter().find(|(s, _)| *s == seq).map(|(_, jpeg)| jpeg.clone())
    }

    /// Caches a frame; gives back the detection that was waiting for it, if any.
    fn cache_frame(&mut self, camera: &str, seq: u64, jpeg: Bytes) -> Option<Detections> {
        let q = self.frames.entry(camera.to_string()).or_default();
        q.push_back((seq, jpeg));
        while q.len() > FRAMES_PER_CAMERA {
            q.pop_front();
        }
        let p = self.pending.get_mut(camera)?;
        let i = p.iter().position(|(_, d)| d.seq == seq)?;
        p.remove(i).map(|(_, d)| d)
    }

    /// Gives the detection back when its frame is cached; otherwise keeps it until the frame comes.
    fn join(&mut self, d: Detections, now: Instant) -> Option<Detections> {
        if self.frame(&d.camera_id, d.seq).is_some() {
            return Some(d);
        }
        let p = self.pending.entry(d.camera_id.clone()).or_default();
        p.push_back((now, d));
        while p.len() > FRAMES_PER_CAMERA {
            p.pop_front();
        }
        None
    }

    /// The detections that waited longer than `FRAME_WAIT` for their frame.
    fn overdue(&mut self, now: Instant) -> Vec<Detections> {
        let mut late = Vec::new();
        for q in self.pending.values_mut() {
            while q.front().is_some_and(|(t, _)| now.duration_since(*t) > FRAME_WAIT) {
                if let Some((_, d)) = q.pop_front() {
                    late.push(d);
                }
            }
        }
        late
    }
}

/// The shared state, even after a panic elsewhere: it holds figures for a page, nothing a panic could leave
/// half-written in a way that matters.
pub(super) fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Builds the page's view of one message.
pub fn view(d: &Detections, has_frame: bool, now_ms: i64) -> FrameView {
    FrameView {
        camera: d.camera_id.clone(),
        seq: d.seq,
        width: d.width,
        height: d.height,
        capture_ms: d.capture_time_ms,
        latency_ms: (now_ms - d.capture_time_ms).max(0),
        model: model_tag(d),
        inference_ms: d.inference_ms,
        boxes: d
            .boxes
            .iter()
            .map(|b| BoxView { label: b.label.clone(), score: b.score, bbox: [b.x1, b.y1, b.x2, b.y2] })
            .collect(),
        frame_url: has_frame.then(|| format!("/frames/{}/{}", percent(&d.camera_id), d.seq)),
    }
}

/// Percent-encodes a path segment.
pub(super) fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Records one frame's detections for the page and pushes them to the browsers.
fn publish(app: &App, s: &mut Shared, d: &Detections, has_frame: bool, recent_cap: usize) {
    let v = view(d, has_frame, now_ms());
    DetectionsShown { latency_ms: v.latency_ms, with_frame: has_frame }.emit(&app.metrics);
    for b in &v.boxes {
        s.recent.push_back(RecentView {
            camera: v.camera.clone(),
            seq: v.seq,
            capture_ms: v.capture_ms,
            label: b.label.clone(),
            score: b.score,
        });
    }
    while s.recent.len() > recent_cap {
        s.recent.pop_front();
    }
    let c = s.cameras.entry(v.camera.clone()).or_default();
    c.frames += 1;
    c.arrivals.push_back(Instant::now());
    while c.arrivals.len() > 1000 {
        c.arrivals.pop_front();
    }
    c.latencies.push_back(v.latency_ms);
    while c.latencies.len() > 100 {
        c.latencies.pop_front();
    }
    // No browser connected is no error: the view is kept for the next one.
    let _ = app.tx.send(std::sync::Arc::new(v.clone()));
    c.latest = Some(v);
}

/// A consumer of the newest messages of `topic`, in a group of its own that commits nothing: the page shows
/// what happens now and must not take partitions from anyone.
pub(super) fn consumer(kafka: &KafkaArgs, topic: &str) -> framewire_common::Result<StreamConsumer> {
    let group = format!("framewire-web-{}-{}", std::process::id(), now_ms());
    let c: StreamConsumer = kafka
        .config(&[
            ("group.id", &group),
            ("enable.auto.commit", "false"),
            ("auto.offset.reset", "latest"),
            ("fetch.wait.max.ms", "10"),
            ("fetch.message.max.bytes", "16777216"),
            ("topic.metadata.refresh.interval.ms", "2000"),
        ])?
        .create()?;
    c.subscribe(&[topic])?;
    Ok(c)
}

/// Joins frames and detections until shutdown.
pub(super) async fn consume(frames: StreamConsumer, detections: StreamConsumer, recent_cap: usize, app: App) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => return,
            _ = tick.tick() => {
                // Detections whose frame never came are shown without it.
                let mut s = lock(&app.shared);
                for d in s.overdue(Instant::now()) {
                    publish(&app, &mut s, &d, false, recent_cap);
                }
            }
            m = frames.recv() => {
                let Ok(m) = m else { continue };
                let Ok(f) = framewire_proto::decode_frame(m.payload().unwrap_or_default()) else { continue };
                let mut s = lock(&app.shared);
                if let Some(d) = s.cache_frame(&f.camera_id, f.seq, Bytes::from(f.image)) {
                    publish(&app, &mut s, &d, true, recent_cap);
                }
            }
            m = detections.recv() => {
                let Ok(m) = m else { continue };
                let d = match framewire_proto::decode_detections(m.payload().unwrap_or_default()) {
                    Ok(d) => d,
                    Err(error) => {
                        NotDetections { partition: m.partition(), offset: m.offset(), error: &error }.emit();
                        continue;
                    }
                };
                // A skipped (stale) frame has no result to show: the card keeps its last one, and its age says
                // how old that is.
                if d.skipped() != framewire_proto::Skipped::None {
                    continue;
                }
                let mut s = lock(&app.shared);
                if let Some(d) = s.join(d, Instant::now()) {
                    publish(&app, &mut s, &d, true, recent_cap);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detections(camera: &str, seq: u64) -> Detections {
        Detections { camera_id: camera.into(), seq, ..Default::default() }
    }

    #[test]
    fn views_carry_frame_urls_and_boxes() {
        let d = Detections {
            camera_id: "door 1".into(),
            seq: 7,
            width: 640,
            height: 480,
            capture_time_ms: 1000,
            boxes: vec![framewire_proto::DetectionBox {
                label: "person".into(),
                score: 0.9,
                x2: 10.0,
                y2: 20.0,
                ..Default::default()
            }],
            ..Default::default()
        };
        let v = view(&d, true, 1250);
        assert_eq!(v.frame_url.as_deref(), Some("/frames/door%201/7"));
        assert_eq!(v.latency_ms, 250);
        assert_eq!(v.boxes[0].bbox, [0.0, 0.0, 10.0, 20.0]);
        assert!(view(&d, false, 0).frame_url.is_none());
    }

    #[test]
    fn detections_meet_their_frame_whichever_comes_first() {
        let mut s = Shared::default();
        let t0 = Instant::now();
        // Frame first: the detection is shown at once.
        assert!(s.cache_frame("a", 1, Bytes::from_static(b"jpeg1")).is_none());
        assert_eq!(s.join(detections("a", 1), t0).map(|d| d.seq), Some(1));
        // Detection first: it waits, and the frame releases it.
        assert!(s.join(detections("a", 2), t0).is_none());
        assert_eq!(s.cache_frame("a", 2, Bytes::from_static(b"jpeg2")).map(|d| d.seq), Some(2));
        assert_eq!(s.frame("a", 2).as_deref(), Some(&b"jpeg2"[..]));
        assert!(s.frame("b", 2).is_none());
    }

    #[test]
    fn detections_whose_frame_never_comes_are_overdue_after_the_wait() {
        let mut s = Shared::default();
        let t0 = Instant::now();
        assert!(s.join(detections("a", 3), t0).is_none());
        assert!(s.overdue(t0 + FRAME_WAIT / 2).is_empty());
        let late = s.overdue(t0 + FRAME_WAIT + Duration::from_millis(1));
        assert_eq!(late.iter().map(|d| d.seq).collect::<Vec<_>>(), [3]);
        assert!(s.overdue(t0 + FRAME_WAIT * 2).is_empty(), "an overdue detection is shown once");
    }

    #[test]
    fn the_frame_cache_keeps_the_newest_frames_per_camera() {
        let mut s = Shared::default();
        for seq in 0..FRAMES_PER_CAMERA as u64 + 10 {
            s.cache_frame("a", seq, Bytes::new());
        }
        assert!(s.frame("a", 9).is_none());
        assert!(s.frame("a", 10).is_some());
    }
}
