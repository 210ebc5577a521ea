//! The live page's API: figures per camera, recent detections, the server-sent event stream and the cached
//! frames.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::App;
use super::live::{FrameView, RecentView, lock};
use crate::events::web::{ClientConnected, ClientDropped};
use crate::metrics::WebMetrics;

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
        &serde_json::json!({ "cameras": cameras, "lag": lag, "recent": s.recent.iter().rev().take(100).collect::<Vec<_>>(), "store": app.db.is_some() }),
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
fn parse_limit(given: Option<&str>, default: usize) -> Option<usize> {
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

pub(super) async fn stream(State(app): State<App>) -> impl IntoResponse {
    let rx = app.tx.subscribe();
    let connected = Connected::new(&app.metrics);
    let stop = app.shutdown.clone();
    let s = futures::stream::unfold((rx, connected, stop), |(mut rx, connected, stop)| async move {
        loop {
            let msg = tokio::select! {
                _ = stop.cancelled() => return None,
                m = rx.recv() => m,
            };
            match msg {
                Ok(data) => {
                    return Some((
                        Ok::<_, Infallible>(Event::default().event("detections").data(data)),
                        (rx, connected, stop),
                    ));
                }
                // A slow browser skips frames rather than holding everyone up.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
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
