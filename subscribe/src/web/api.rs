//! The live page's API: figures per camera, recent detections, the server-sent event stream and the cached
//! frames.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::App;
use super::live::{FrameView, RecentView, lock};
use crate::events::web::{ClientConnected, ClientDropped};
use crate::metrics::WebMetrics;
use framewire_common::time::now_ms;

/// The window frames/s is counted over.
const FPS_WINDOW: Duration = Duration::from_secs(5);

/// A JSON response, or a 500 saying why the value could not be written.
pub(super) fn json(v: &impl Serialize) -> Response {
    match serde_json::to_vec(v) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[derive(Serialize)]
struct CameraFigures<'a> {
    camera: &'a str,
    fps: f64,
    frames: u64,
    latency_ms_p50: Option<i64>,
    latest: Option<&'a FrameView>,
}

#[derive(Serialize)]
struct LagView {
    total: i64,
    partitions: Vec<(i32, i64)>,
}

pub(super) async fn state(State(app): State<App>) -> Response {
    let mut s = lock(&app.shared);
    let now = Instant::now();
    for c in s.cameras.values_mut() {
        while c.arrivals.front().is_some_and(|t| now.duration_since(*t) > FPS_WINDOW) {
            c.arrivals.pop_front();
        }
    }
    let cameras: Vec<CameraFigures<'_>> = s
        .cameras
        .iter()
        .map(|(id, c)| {
            let mut l: Vec<i64> = c.latencies.iter().copied().collect();
            l.sort_unstable();
            CameraFigures {
                camera: id,
                fps: c.arrivals.len() as f64 / FPS_WINDOW.as_secs_f64(),
                frames: c.frames,
                latency_ms_p50: l.get(l.len() / 2).copied(),
                latest: c.latest.as_ref(),
            }
        })
        .collect();
    let lag = LagView { total: s.lag.iter().map(|(_, l)| l).sum(), partitions: s.lag.clone() };
    json(
        // The server's clock comes along: the page says how old each picture is by it, not by the browser's.
        &serde_json::json!({ "cameras": cameras, "lag": lag, "recent": s.recent.iter().rev().take(100).collect::<Vec<_>>(),
            "store": app.db.is_some(), "auth": app.token.is_some(), "now_ms": now_ms() }),
    )
}

/// Filters of the recent detections, and of the stored events.
#[derive(Deserialize)]
pub(super) struct RecentQuery {
    pub(super) camera: Option<String>,
    pub(super) label: Option<String>,
    /// Kept as text: a bad value gets an answer that says what `limit` takes, not a parser's message.
    limit: Option<String>,
}

/// The most rows one answer holds: a bigger `?limit=` would only make the page and the database work for
/// rows nobody reads.
const MAX_LIMIT: usize = 500;

impl RecentQuery {
    /// `?limit=`, or `default` without one.
    pub(super) fn limit(&self, default: usize) -> Result<usize, BadLimit> {
        parse_limit(self.limit.as_deref(), default).ok_or(BadLimit)
    }
}

/// A `?limit=` that is not a whole number from 1 up: 400, saying what it takes.
pub(super) struct BadLimit;

impl IntoResponse for BadLimit {
    fn into_response(self) -> Response {
        let msg = format!("limit must be a whole number from 1 to {MAX_LIMIT} (larger is taken as {MAX_LIMIT})\n");
        (StatusCode::BAD_REQUEST, msg).into_response()
    }
}

/// `?limit=` as a row count: at most `MAX_LIMIT`; None for 0, a sign, a fraction or anything not a number.
pub(super) fn parse_limit(given: Option<&str>, default: usize) -> Option<usize> {
    let Some(given) = given.filter(|g| !g.is_empty()) else { return Some(default.min(MAX_LIMIT)) };
    if !given.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Digits only: a number too large for usize is still just "more than the most".
    match given.trim_start_matches('0') {
        "" => None,
        n => Some(n.parse().map_or(MAX_LIMIT, |n: usize| n.min(MAX_LIMIT))),
    }
}

pub(super) async fn recent(State(app): State<App>, Query(q): Query<RecentQuery>) -> Response {
    let limit = match q.limit(100) {
        Ok(l) => l,
        Err(bad) => return bad.into_response(),
    };
    let s = lock(&app.shared);
    let rows: Vec<&RecentView> = s
        .recent
        .iter()
        .rev()
        .filter(|r| q.camera.as_ref().is_none_or(|c| c.is_empty() || *c == r.camera))
        .filter(|r| q.label.as_ref().is_none_or(|l| l.is_empty() || *l == r.label))
        .take(limit)
        .collect();
    json(&rows)
}

/// Counts a browser as connected for as long as its stream lives, however the stream ends.
struct Connected(WebMetrics);

impl Connected {
    fn new(metrics: &WebMetrics) -> Self {
        ClientConnected.emit(metrics);
        Connected(metrics.clone())
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        ClientDropped.emit(&self.0);
    }
}

/// Each browser gets, at most every `MIN_GAP`, the newest frame of each camera that changed: a page shows only
/// the latest frame of a camera, so a browser that reads slower than the cameras send (a phone, a slow link,
/// many cameras) gets less, never a growing backlog or a stale picture.
const MIN_GAP: Duration = Duration::from_millis(100);

/// Adds `v` to a batch going to one browser, replacing an older frame of the same camera.
fn newest_per_camera(batch: &mut Vec<Arc<FrameView>>, v: Arc<FrameView>) {
    match batch.iter_mut().find(|b| b.camera == v.camera) {
        Some(older) => *older = v,
        None => batch.push(v),
    }
}

/// The next batch for one browser: waits for a frame, then takes every frame already waiting. None once the
/// server stops.
async fn next_batch(
    rx: &mut broadcast::Receiver<Arc<FrameView>>,
    stop: &CancellationToken,
) -> Option<Vec<Arc<FrameView>>> {
    let mut batch = Vec::new();
    loop {
        let first = tokio::select! {
            _ = stop.cancelled() => return None,
            m = rx.recv() => m,
        };
        match first {
            Ok(v) => {
                batch.push(v);
                break;
            }
            // Skipped frames are older than those still waiting: nothing the page would have shown.
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
    loop {
        match rx.try_recv() {
            Ok(v) => newest_per_camera(&mut batch, v),
            Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
            Err(_) => return Some(batch),
        }
    }
}

pub(super) async fn stream(State(app): State<App>) -> impl IntoResponse {
    let rx = app.tx.subscribe();
    let connected = Connected::new(&app.metrics);
    let stop = app.shutdown.clone();
    let start = (rx, connected, stop, None::<Instant>);
    let s = futures::stream::unfold(start, |(mut rx, connected, stop, last)| async move {
        if let Some(last) = last {
            tokio::select! {
                _ = stop.cancelled() => return None,
                _ = tokio::time::sleep_until((last + MIN_GAP).into()) => {}
            }
        }
        let batch = next_batch(&mut rx, &stop).await?;
        let views: Vec<&FrameView> = batch.iter().map(|v| &**v).collect();
        let data = serde_json::to_string(&views).unwrap_or_else(|_| "[]".into());
        let event = Ok::<_, Infallible>(Event::default().event("detections").data(data));
        Some((event, (rx, connected, stop, Some(Instant::now()))))
    });
    Sse::new(s).keep_alive(KeepAlive::default())
}

pub(super) async fn frame(State(app): State<App>, Path((camera, seq)): Path<(String, u64)>) -> Response {
    match lock(&app.shared).frame(&camera, seq) {
        Some(jpeg) => {
            ([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "max-age=3600")], jpeg).into_response()
        }
        None => (StatusCode::NOT_FOUND, "frame no longer cached\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(camera: &str, seq: u64) -> Arc<FrameView> {
        let d = framewire_proto::Detections { camera_id: camera.into(), seq, ..Default::default() };
        Arc::new(super::super::live::view(&d, false, 0))
    }

    #[tokio::test]
    async fn a_browser_behind_gets_the_newest_frame_of_each_camera_once() {
        let (tx, mut rx) = broadcast::channel(4);
        let stop = CancellationToken::new();
        // More than the channel holds: the oldest are skipped, and of the rest only each camera's newest goes.
        for seq in 0..6 {
            tx.send(view("a", seq)).unwrap();
            tx.send(view("b", seq)).unwrap();
        }
        let batch = next_batch(&mut rx, &stop).await.unwrap();
        let got: Vec<(&str, u64)> = batch.iter().map(|v| (v.camera.as_str(), v.seq)).collect();
        assert_eq!(got, [("a", 5), ("b", 5)]);
        tx.send(view("b", 6)).unwrap();
        let got: Vec<u64> = next_batch(&mut rx, &stop).await.unwrap().iter().map(|v| v.seq).collect();
        assert_eq!(got, [6]);
        stop.cancel();
        assert!(next_batch(&mut rx, &stop).await.is_none());
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(parse_limit(None, 20), Some(20));
        assert_eq!(parse_limit(Some(""), 20), Some(20));
        assert_eq!(parse_limit(Some("1"), 20), Some(1));
        assert_eq!(parse_limit(Some("007"), 20), Some(7));
        assert_eq!(parse_limit(Some("500"), 20), Some(500));
        assert_eq!(parse_limit(Some("501"), 20), Some(500));
        assert_eq!(parse_limit(Some("99999999999999999999999999"), 20), Some(500));
        for bad in ["0", "000", "-1", "+5", "1.5", "abc", "5 ", "1e3"] {
            assert_eq!(parse_limit(Some(bad), 20), None, "{bad}");
        }
    }
}
