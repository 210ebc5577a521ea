//! One camera at a glance: its latest picture and what is in it now, its events of the last day on a
//! timeline, and its events per label and hour; and the cameras the store knows, for the live page's cards of
//! cameras not seen since the server started.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use framewire_common::time::now_ms;
use serde::{Deserialize, Serialize};

use super::App;
use super::api::json;
use super::chart::{HourGrid, counts_chart, counts_table, timeline};
use super::live::{FrameView, lock, percent};
use super::page::{ago, colour, escape, page, utc};
use super::stored::with_db;
use crate::repo::{EventFilter, StoredCamera};
use crate::track::EventRow;

const DAY_MS: i64 = 86_400_000;
/// Events drawn on the timeline at most: a camera busier than this shows its newest.
const TIMELINE_EVENTS: i64 = 500;

/// A camera the store knows, as the live page gets it.
#[derive(Serialize)]
struct StoredCard {
    camera: String,
    seq: i64,
    capture_ms: i64,
    /// Its newest snapshot, and when that frame was captured.
    snapshot_url: Option<String>,
    snapshot_ms: Option<i64>,
}

fn snapshot_url(c: &StoredCamera) -> Option<String> {
    c.snapshot_seq.map(|seq| format!("/stored/{}/{seq}", percent(&c.camera)))
}

pub(super) async fn cameras_api(State(app): State<App>) -> Response {
    match with_db(&app, async |db| db.stored_cameras().await).await {
        Ok(cams) => json(
            &cams
                .iter()
                .map(|c| StoredCard {
                    camera: c.camera.clone(),
                    seq: c.seq,
                    capture_ms: c.capture_ms,
                    snapshot_url: snapshot_url(c),
                    snapshot_ms: c.snapshot_ms,
                })
                .collect::<Vec<_>>(),
        ),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub(super) struct CountsQuery {
    #[serde(default)]
    hours: String,
}

/// Hours a chart covers at most: a week.
const MAX_HOURS: usize = 168;

pub(super) async fn counts_api(
    State(app): State<App>,
    Path(camera): Path<String>,
    Query(q): Query<CountsQuery>,
) -> Response {
    let hours = match q.hours.as_str() {
        "" => 24,
        h => match h.parse::<usize>() {
            Ok(h @ 1..=MAX_HOURS) => h,
            _ => {
                return (StatusCode::BAD_REQUEST, format!("hours must be a whole number from 1 to {MAX_HOURS}\n"))
                    .into_response();
            }
        },
    };
    match grid(&app, &camera, hours).await {
        Ok(g) => json(&g),
        Err(r) => r,
    }
}

async fn grid(app: &App, camera: &str, hours: usize) -> Result<HourGrid, Response> {
    let now = now_ms();
    let start = HourGrid::window_start(now, hours);
    let counts = with_db(app, async |db| db.event_counts(camera, start).await).await?;
    Ok(HourGrid::new(&counts, now, hours))
}

/// What the camera page shows of the store.
struct History {
    stored: Option<StoredCamera>,
    events: Vec<EventRow>,
    grid: HourGrid,
}

async fn history(app: &App, camera: &str) -> Result<History, Response> {
    let now = now_ms();
    let filter = EventFilter {
        camera: Some(camera.to_string()),
        from_ms: Some(now - DAY_MS),
        limit: TIMELINE_EVENTS,
        ..EventFilter::default()
    };
    let start = HourGrid::window_start(now, 24);
    let (stored, events, counts) = with_db(app, async |db| {
        Ok((db.stored_camera(camera).await?, db.events(&filter).await?, db.event_counts(camera, start).await?))
    })
    .await?;
    Ok(History { stored, events, grid: HourGrid::new(&counts, now, 24) })
}

/// The objects per label in a frame, most first: "person 2 · car 1".
fn counts_now(v: &FrameView) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for b in &v.boxes {
        *counts.entry(b.label.as_str()).or_default() += 1;
    }
    let mut counts: Vec<(&str, usize)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    if counts.is_empty() {
        return "<p class=\"counts\">Nothing detected in the latest frame.</p>".into();
    }
    let spans: Vec<String> =
        counts.iter().map(|(l, n)| format!("<span data-label=\"{l}\">{l} {n}</span>", l = escape(l))).collect();
    format!("<p class=\"counts\">Now: {}</p>", spans.join(" · "))
}

pub(super) async fn camera_page(State(app): State<App>, Path(camera): Path<String>) -> Response {
    let live = {
        let s = lock(&app.shared);
        s.cameras.get(&camera).and_then(|c| c.latest.clone()).map(|mut v| {
            // A frame that fell out of the cache is not offered: the stored snapshot stands in.
            if s.frame(&v.camera, v.seq).is_none() {
                v.frame_url = None;
            }
            v
        })
    };
    let history = if app.db.is_some() { Some(history(&app, &camera).await) } else { None };
    // With the store down, what is live is still shown; without anything live the store's answer is the page.
    let (history, store_down) = match history {
        Some(Ok(h)) => (Some(h), false),
        Some(Err(r)) if live.is_none() => return r,
        Some(Err(_)) => (None, true),
        None => (None, false),
    };
    let stored = history.as_ref().and_then(|h| h.stored.as_ref());
    if live.is_none() && stored.is_none() {
        return (StatusCode::NOT_FOUND, format!("no camera {camera} seen live or stored\n")).into_response();
    }
    let now = now_ms();
    let name = escape(&camera);
    let mut main = format!("<h2>{name}</h2><section class=\"latest\">");
    let picture = match (&live, stored) {
        (Some(v), _) if v.frame_url.is_some() => Some((v.frame_url.clone().unwrap_or_default(), v.capture_ms, "live")),
        (_, Some(s)) => snapshot_url(s).map(|u| (u, s.snapshot_ms.unwrap_or(s.capture_ms), "stored snapshot")),
        _ => None,
    };
    match picture {
        Some((url, at, what)) => {
            let _ = write!(
                main,
                "<figure><img id=\"latest\" src=\"{url}\" alt=\"latest picture of {name}\"><figcaption>{what}, \
                 captured {t} ({age})</figcaption></figure>",
                url = escape(&url),
                t = utc(at),
                age = ago(now - at)
            );
        }
        None => main.push_str("<p>No picture of this camera yet.</p>"),
    }
    match &live {
        Some(v) => main.push_str(&counts_now(v)),
        None => main.push_str("<p class=\"counts\">Not seen live since this page's server started.</p>"),
    }
    main.push_str("</section>");
    match &history {
        Some(h) => {
            let more = if h.events.len() as i64 >= TIMELINE_EVENTS {
                format!(" (the newest {TIMELINE_EVENTS})")
            } else {
                String::new()
            };
            let legend: String = h
                .grid
                .labels
                .keys()
                // A drawn swatch, not a styled element: the page's content policy allows no inline style.
                .map(|l| {
                    format!(
                        "<span><svg class=\"swatch\" viewBox=\"0 0 10 10\" aria-hidden=\"true\"><rect width=\"10\" \
                         height=\"10\" fill=\"{c}\"/></svg>{l}</span>",
                        c = colour(l),
                        l = escape(l)
                    )
                })
                .collect();
            let _ = write!(
                main,
                "<section><h3>Events of the last 24 h{more}</h3>{tl}<p><a href=\"/review?camera={q}\">Review all events \
                 of {name}</a></p></section><section><h3>Events per hour (UTC), last 24 h</h3>{chart}\
                 <p class=\"legend\">{legend}</p><div class=\"scroll\">{table}</div></section>",
                tl = timeline(&h.events, now - DAY_MS, now),
                q = escape(&percent(&camera)),
                chart = counts_chart(&h.grid),
                table = counts_table(&h.grid),
            );
        }
        None if store_down => main.push_str("<p class=\"hint\">The store's database is unavailable: no history.</p>"),
        None => main.push_str("<p class=\"hint\">Start the web view with --db for this camera's history.</p>"),
    }
    page(&camera, "camera-page", &main, app.token.is_some()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::BoxView;

    #[test]
    fn counts_now_lists_labels_most_first() {
        let b = |l: &str| BoxView { label: l.into(), score: 0.9, bbox: [0.0; 4] };
        let v = FrameView {
            camera: "c".into(),
            seq: 1,
            width: 1,
            height: 1,
            capture_ms: 0,
            latency_ms: 0,
            model: String::new(),
            inference_ms: 0.0,
            boxes: vec![b("car"), b("person"), b("person")],
            frame_url: None,
        };
        assert_eq!(
            counts_now(&v),
            "<p class=\"counts\">Now: <span data-label=\"person\">person 2</span> · <span data-label=\"car\">car 1</span></p>"
        );
    }
}
