//! The pages and API that read the store's database: one event with its neighbours, and the stored snapshots.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use framewire_common::objects::ObjectError;

use super::App;
use super::api::json;
use super::live::percent;
use super::page::{escape, page, utc};
use crate::events::web::{DbUnavailable, SnapshotUnreadable};
use crate::repo::{Db, EventFilter, Page, PageKey, RepoError};
use crate::snapshot::shown;
use crate::track::EventRow;

/// The store's database, connected on first use: 404 without `--db`, 503 while it cannot be reached. The
/// cause goes to the log only: it may name hosts, users, tables or SQL, none of which a browser needs.
pub(super) async fn with_db<T>(app: &App, f: impl AsyncFnOnce(&mut Db) -> Result<T, RepoError>) -> Result<T, Response> {
    let (Some(db), Some(url)) = (&app.db, &app.db_url) else {
        return Err((StatusCode::NOT_FOUND, "no store: start subscribe web with --db\n").into_response());
    };
    let unavailable = |e: RepoError| {
        DbUnavailable { db: url, error: &e }.emit(&app.metrics);
        (StatusCode::SERVICE_UNAVAILABLE, "the store's database is unavailable\n").into_response()
    };
    let mut guard = db.lock().await;
    let conn = match guard.take() {
        Some(conn) if !conn.is_closed() => conn,
        _ => Db::open_existing(url).await.map_err(unavailable)?,
    };
    f(guard.insert(conn)).await.map_err(unavailable)
}

/// The event and its snapshots, best first.
async fn event_with_snapshots(app: &App, id: &str) -> Result<(EventRow, Vec<String>), Response> {
    let found = with_db(app, async |db| {
        let Some(e) = db.event(id).await? else { return Ok(None) };
        let snaps = db.event_snapshots(&e).await?;
        Ok(Some((e, snaps)))
    })
    .await?;
    found.ok_or_else(|| no_event(id))
}

fn no_event(id: &str) -> Response {
    (StatusCode::NOT_FOUND, format!("no event {id}\n")).into_response()
}

pub(super) async fn event_json(State(app): State<App>, Path(id): Path<String>) -> Response {
    match event_with_snapshots(&app, &id).await {
        Ok((e, snaps)) => {
            let urls: Vec<String> = (0..snaps.len()).map(|i| format!("/snapshots/{}/{i}", e.id)).collect();
            json(&serde_json::json!({ "event": e, "snapshots": urls }))
        }
        Err(r) => r,
    }
}

/// The events of the same camera just before and just after this one, for stepping through a camera's day.
async fn neighbours(app: &App, e: &EventRow) -> Result<(Option<EventRow>, Option<EventRow>), Response> {
    let beside =
        |page| EventFilter { camera: Some(e.camera.clone()), page: Some(page), limit: 1, ..EventFilter::default() };
    let (older, newer) = (beside(Page::Older(PageKey::of(e))), beside(Page::Newer(PageKey::of(e))));
    with_db(app, async |db| Ok((db.events(&older).await?.pop(), db.events(&newer).await?.pop()))).await
}

pub(super) async fn event_page(State(app): State<App>, Path(id): Path<String>) -> Response {
    let (e, snaps) = match event_with_snapshots(&app, &id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (older, newer) = match neighbours(&app, &e).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let images: String = (0..snaps.len())
        .map(|i| format!("<figure><img src=\"/snapshots/{}/{i}\" alt=\"snapshot {i}\"></figure>", escape(&e.id)))
        .collect();
    let step = |id: &str, rel: &str, to: &Option<EventRow>, text: &str| match to {
        Some(t) => format!(
            "<a id=\"{id}\" rel=\"{rel}\" href=\"/events/{}\">{text} ({})</a>",
            escape(&t.id),
            escape(&utc(t.start_ms))
        ),
        None => String::new(),
    };
    let main = format!(
        "<h2>{label} on <a href=\"/cameras/{cam_url}\">{camera}</a></h2>
<nav class=\"steps\" aria-label=\"this camera's events\">{prev}{next}</nav>
<table class=\"facts\"><tr><th>event</th><td>{id}</td></tr><tr><th>camera</th><td>{camera}</td></tr>
<tr><th>label</th><td>{label}</td></tr><tr><th>model</th><td>{model}</td></tr>
<tr><th>start</th><td>{start} (seq {sseq})</td></tr><tr><th>end</th><td>{end} (seq {eseq}){open}</td></tr>
<tr><th>duration</th><td>{dur:.1} s, {frames} frames</td></tr><tr><th>peak score</th><td>{peak:.2}</td></tr></table>
<section class=\"snapshots\">{images}</section>",
        prev = step("prev-event", "prev", &older, "← older"),
        next = step("next-event", "next", &newer, "newer →"),
        id = escape(&e.id),
        cam_url = escape(&percent(&e.camera)),
        camera = escape(&e.camera),
        label = escape(&e.label),
        model = escape(&e.model),
        start = utc(e.start_ms),
        sseq = e.start_seq,
        end = utc(e.end_ms),
        eseq = e.end_seq,
        open = if e.open { ", still open" } else { "" },
        dur = e.duration_ms() as f64 / 1000.0,
        frames = e.frames,
        peak = e.peak_score,
        images = if images.is_empty() { "<p>No snapshots.</p>".to_string() } else { images },
    );
    page(&format!("event {id}"), "event", &main, app.token.is_some()).into_response()
}

pub(super) async fn snapshot_file(State(app): State<App>, Path((id, n)): Path<(String, usize)>) -> Response {
    // The first, which the review page shows for every event, is the best snapshot, or the first of the
    // frames the event spans: one look-up, not the list of all. The event is read once either way.
    let found = with_db(&app, async |db| {
        let Some(e) = db.event(&id).await? else { return Ok(None) };
        let path = match (n, e.best_snapshot.clone()) {
            (0, Some(best)) => Some(best),
            (0, None) => db.first_snapshot(&e).await?,
            _ => db.event_snapshots(&e).await?.into_iter().nth(n),
        };
        Ok(Some(path))
    })
    .await;
    let path = match found {
        Err(r) => return r,
        Ok(None) => return no_event(&id),
        Ok(Some(None)) => return StatusCode::NOT_FOUND.into_response(),
        Ok(Some(Some(path))) => path,
    };
    // An open event's best snapshot changes as a better one comes, and its list grows: asked again each time.
    serve_snapshot(&app, &path, "no-cache").await
}

/// The snapshot of a stored frame: the camera's latest picture when it is not live.
pub(super) async fn frame_snapshot(State(app): State<App>, Path((camera, seq)): Path<(String, i64)>) -> Response {
    match with_db(&app, async |db| db.frame_snapshot(&camera, seq).await).await {
        // A frame's snapshot is written once: the browser may keep it.
        Ok(Some(path)) => serve_snapshot(&app, &path, "private, max-age=86400").await,
        Ok(None) => (StatusCode::NOT_FOUND, "no snapshot of that frame\n").into_response(),
        Err(r) => r,
    }
}

/// A snapshot, from a file path or an object's URL, whichever the store recorded.
async fn serve_snapshot(app: &App, path: &str, cache: &'static str) -> Response {
    match app.objects.read(path).await {
        Ok(b) => ([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, cache)], b).into_response(),
        // Where snapshots are kept is the server's business, not the browser's.
        Err(error) => {
            SnapshotUnreadable { path, error: &shown(&error) }.emit();
            if matches!(error, ObjectError::NotFound { .. }) {
                (StatusCode::NOT_FOUND, "snapshot no longer on disk (removed by retention?)\n").into_response()
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, "the snapshot store is unavailable\n").into_response()
            }
        }
    }
}
