//! The pages and API that read the store's database: the event list, one event, its snapshots.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use framewire_common::objects::ObjectError;

use super::{App, RecentQuery, escape, json};
use crate::events::web::{DbUnavailable, SnapshotUnreadable};
use crate::query::time;
use crate::repo::{Db, EventFilter, RepoError};
use crate::snapshot::shown;
use crate::track::EventRow;

/// The store's database, connected on first use: 404 without `--db`, 503 while it cannot be reached. The
/// cause goes to the log only: it may name hosts, users, tables or SQL, none of which a browser needs.
async fn with_db<T>(app: &App, f: impl AsyncFnOnce(&mut Db) -> Result<T, RepoError>) -> Result<T, Response> {
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

pub(super) async fn events_list(State(app): State<App>, Query(q): Query<RecentQuery>) -> Response {
    let limit = match q.limit(20) {
        Ok(l) => l,
        Err(bad) => return bad.into_response(),
    };
    let filter = EventFilter {
        camera: q.camera.filter(|c| !c.is_empty()),
        label: q.label.filter(|l| !l.is_empty()),
        limit: limit as i64,
        ..EventFilter::default()
    };
    match with_db(&app, async |db| db.events(&filter).await).await {
        Ok(rows) => json(&rows),
        Err(r) => r,
    }
}

/// The event and its snapshots, best first.
async fn event_with_snapshots(app: &App, id: &str) -> Result<(EventRow, Vec<String>), Response> {
    let found = with_db(app, async |db| {
        let Some(e) = db.event(id).await? else { return Ok(None) };
        let snaps = db.event_snapshots(&e).await?;
        Ok(Some((e, snaps)))
    })
    .await?;
    found.ok_or_else(|| (StatusCode::NOT_FOUND, format!("no event {id}\n")).into_response())
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

pub(super) async fn event_page(State(app): State<App>, Path(id): Path<String>) -> Response {
    let (e, snaps) = match event_with_snapshots(&app, &id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let images: String = (0..snaps.len())
        .map(|i| format!("<figure><img src=\"/snapshots/{}/{i}\" alt=\"snapshot {i}\"></figure>", escape(&e.id)))
        .collect();
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>event {id}</title><link rel=\"stylesheet\" href=\"/style.css\"></head>
<body class=\"event\"><header><h1><a href=\"/\">framewire</a> · event {id}</h1></header><main>
<table class=\"facts\"><tr><th>camera</th><td>{camera}</td></tr><tr><th>label</th><td>{label}</td></tr>
<tr><th>model</th><td>{model}</td></tr><tr><th>start</th><td>{start} (seq {sseq})</td></tr>
<tr><th>end</th><td>{end} (seq {eseq}){open}</td></tr><tr><th>duration</th><td>{dur:.1} s, {frames} frames</td></tr>
<tr><th>peak score</th><td>{peak:.2}</td></tr></table>
<section class=\"snapshots\">{images}</section></main></body></html>",
        id = escape(&e.id),
        camera = escape(&e.camera),
        label = escape(&e.label),
        model = escape(&e.model),
        start = time(e.start_ms),
        sseq = e.start_seq,
        end = time(e.end_ms),
        eseq = e.end_seq,
        open = if e.open { ", still open" } else { "" },
        dur = e.duration_ms() as f64 / 1000.0,
        frames = e.frames,
        peak = e.peak_score,
        images = if images.is_empty() { "<p>No snapshots.</p>".to_string() } else { images },
    ))
    .into_response()
}

pub(super) async fn snapshot_file(State(app): State<App>, Path((id, n)): Path<(String, usize)>) -> Response {
    let (_, snaps) = match event_with_snapshots(&app, &id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(path) = snaps.get(n) else { return StatusCode::NOT_FOUND.into_response() };
    // A file path or an object's URL, whichever the store recorded.
    match app.objects.read(path).await {
        Ok(b) => ([(header::CONTENT_TYPE, "image/jpeg")], b).into_response(),
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
