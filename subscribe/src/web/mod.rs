//! `subscribe web`: a live page of every camera's latest frame with its boxes, recent detections, the
//! pipeline's figures and, with `--db`, stored events with their snapshots.
//!
//! Two consumers outside any group read the newest frames and detections; a detection is shown with the
//! very frame it was made on (joined by camera + seq in a small per-camera cache) and pushed to browsers
//! over server-sent events. Every asset is compiled into the binary: the page works with no internet.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use framewire_common::kafka::KafkaArgs;
use framewire_common::metrics::{MetricsArgs, counter, gauge, histogram};
use framewire_proto::json::model_tag;
use framewire_proto::{Detections, names};
use prometheus::{Histogram, IntCounter, IntGauge, Registry};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

mod stored;

use crate::db::Db;
use framewire_common::time::now_ms;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");
const TOKEN_COOKIE: &str = "framewire_token";

#[derive(Debug, Clone, clap::Args)]
pub struct WebArgs {
    /// Address of the web page. Anything but a loopback address needs --token.
    #[arg(long, env = "FRAMEWIRE_WEB_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Access token: give it once as ?token=… (kept in a cookie) or as `Authorization: Bearer …`.
    #[arg(long, env = "FRAMEWIRE_WEB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Topic of Detections.
    #[arg(long, env = "FRAMEWIRE_DETECTIONS_TOPIC", default_value = names::TOPIC_DETECTIONS)]
    pub topic: String,

    /// Topic of frames.
    #[arg(long, env = "FRAMEWIRE_FRAMES_TOPIC", default_value = names::TOPIC_FRAMES)]
    pub frames_topic: String,

    /// The detectors' consumer group, whose lag the page shows.
    #[arg(long, env = "FRAMEWIRE_GROUP", default_value = names::GROUP_DETECT)]
    pub detect_group: String,

    /// The store's database, for events and their snapshots (optional).
    #[arg(long, env = "FRAMEWIRE_DB", hide_env_values = true)]
    pub db: Option<String>,

    /// Recent detections kept for the page.
    #[arg(long, default_value_t = 500)]
    pub recent: usize,
}

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

#[derive(Debug, Clone, Serialize)]
struct RecentView {
    camera: String,
    seq: u64,
    capture_ms: i64,
    label: String,
    score: f32,
}

#[derive(Default)]
struct CameraState {
    latest: Option<FrameView>,
    /// Arrival instants of the last few seconds of frames: frames/s.
    arrivals: VecDeque<Instant>,
    latencies: VecDeque<i64>,
    frames: u64,
}

#[derive(Default)]
struct Shared {
    cameras: BTreeMap<String, CameraState>,
    recent: VecDeque<RecentView>,
    frames: HashMap<String, VecDeque<(u64, Bytes)>>,
    pending: HashMap<String, VecDeque<(Instant, Detections)>>,
    lag: Vec<(i32, i64)>,
}

#[derive(Clone)]
struct WebMetrics {
    registry: Registry,
    messages: IntCounter,
    without_frame: IntCounter,
    clients: IntGauge,
    latency_seconds: Histogram,
}

impl WebMetrics {
    fn new() -> Self {
        let r = Registry::new();
        WebMetrics {
            messages: counter(&r, "framewire_web_messages_total", "Detections received by the web view"),
            without_frame: counter(
                &r,
                "framewire_web_frames_missing_total",
                "Detections shown without their frame (the frame was not seen by the web view in time)",
            ),
            clients: gauge(&r, "framewire_web_clients", "Browsers connected to the live stream"),
            latency_seconds: histogram(
                &r,
                "framewire_web_latency_seconds",
                "Capture time to pushed to the browsers",
                vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
            ),
            registry: r,
        }
    }
}

#[derive(Clone)]
struct App {
    shared: Arc<Mutex<Shared>>,
    tx: broadcast::Sender<String>,
    token: Option<String>,
    db: Option<Arc<tokio::sync::Mutex<Option<Db>>>>,
    db_url: Option<String>,
    metrics: WebMetrics,
    shutdown: CancellationToken,
}

const FRAMES_PER_CAMERA: usize = 64;
const FRAME_WAIT: Duration = Duration::from_secs(2);

fn lock(m: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether the listen address needs a token, and whether one was given.
pub fn check_exposure(listen: &SocketAddr, token: Option<&str>) -> Result<(), String> {
    if listen.ip().is_loopback() || token.is_some_and(|t| !t.is_empty()) {
        Ok(())
    } else {
        Err(format!(
            "refusing to serve the web view on {listen} without --token: anyone who can reach it would see the cameras"
        ))
    }
}

/// Runs the web view until shutdown.
pub async fn run(
    kafka: &KafkaArgs,
    args: &WebArgs,
    metrics_args: &MetricsArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    check_exposure(&args.listen, args.token.as_deref()).map_err(anyhow::Error::msg)?;
    let metrics = WebMetrics::new();
    framewire_common::metrics::serve(metrics_args, metrics.registry.clone(), shutdown.clone()).await;
    let k = kafka.clone();
    tokio::task::spawn_blocking(move || k.wait_reachable()).await??;

    let (tx, _) = broadcast::channel(256);
    let app = App {
        shared: Arc::new(Mutex::new(Shared::default())),
        tx,
        token: args.token.clone().filter(|t| !t.is_empty()),
        db: args.db.as_ref().map(|_| Arc::new(tokio::sync::Mutex::new(None))),
        db_url: args.db.clone(),
        metrics,
        shutdown: shutdown.clone(),
    };

    let consumers = tokio::spawn(consume(kafka.clone(), args.clone(), app.clone()));
    let lag = {
        let (kafka, args, shared, stop) = (kafka.clone(), args.clone(), app.shared.clone(), shutdown.clone());
        tokio::task::spawn_blocking(move || lag_loop(&kafka, &args, &shared, &stop))
    };

    let router = Router::new()
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .route("/app.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], APP_JS) }))
        .route("/style.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE_CSS) }))
        .route("/api/state", get(state))
        .route("/api/recent", get(recent))
        .route("/api/stream", get(stream))
        .route("/api/events", get(stored::events_list))
        .route("/api/events/{id}", get(stored::event_json))
        .route("/events/{id}", get(stored::event_page))
        .route("/snapshots/{id}/{n}", get(stored::snapshot_file))
        .route("/frames/{camera}/{seq}", get(frame))
        .layer(middleware::from_fn_with_state(app.clone(), auth))
        .with_state(app.clone());
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr()?;
    info!(%addr, token = app.token.is_some(), "web view at http://{addr}/");
    let stop = shutdown.clone();
    axum::serve(listener, router).with_graceful_shutdown(async move { stop.cancelled().await }).await?;
    consumers.abort();
    let _ = lag.await;
    Ok(())
}

async fn auth(State(app): State<App>, req: Request, next: Next) -> Response {
    let Some(token) = &app.token else { return next.run(req).await };
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t == token);
    let cookie = cookie_value(req.headers(), TOKEN_COOKIE).is_some_and(|t| t == *token);
    let query = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")))
        .is_some_and(|t| t == token);
    if !(bearer || cookie || query) {
        return (
            StatusCode::UNAUTHORIZED,
            "framewire: a valid token is needed (?token=… or Authorization: Bearer …)\n",
        )
            .into_response();
    }
    let mut resp = next.run(req).await;
    if query
        && !cookie
        && let Ok(v) = HeaderValue::from_str(&format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"))
    {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

fn json(v: &impl Serialize) -> Response {
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

async fn state(State(app): State<App>) -> Response {
    let mut s = lock(&app.shared);
    let now = Instant::now();
    for c in s.cameras.values_mut() {
        while c.arrivals.front().is_some_and(|t| now.duration_since(*t) > Duration::from_secs(5)) {
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
                fps: c.arrivals.len() as f64 / 5.0,
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

#[derive(Deserialize)]
struct RecentQuery {
    camera: Option<String>,
    label: Option<String>,
    limit: Option<usize>,
}

async fn recent(State(app): State<App>, Query(q): Query<RecentQuery>) -> Response {
    let s = lock(&app.shared);
    let rows: Vec<&RecentView> = s
        .recent
        .iter()
        .rev()
        .filter(|r| q.camera.as_ref().is_none_or(|c| c.is_empty() || *c == r.camera))
        .filter(|r| q.label.as_ref().is_none_or(|l| l.is_empty() || *l == r.label))
        .take(q.limit.unwrap_or(100))
        .collect();
    json(&rows)
}

async fn stream(State(app): State<App>) -> impl IntoResponse {
    let rx = app.tx.subscribe();
    app.metrics.clients.inc();
    struct Gone(IntGauge);
    impl Drop for Gone {
        fn drop(&mut self) {
            self.0.dec();
        }
    }
    let gone = Gone(app.metrics.clients.clone());
    let stop = app.shutdown.clone();
    let s = futures::stream::unfold((rx, gone, stop), |(mut rx, gone, stop)| async move {
        loop {
            let msg = tokio::select! {
                _ = stop.cancelled() => return None,
                m = rx.recv() => m,
            };
            match msg {
                Ok(data) => {
                    return Some((
                        Ok::<_, Infallible>(Event::default().event("detections").data(data)),
                        (rx, gone, stop),
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

async fn frame(State(app): State<App>, Path((camera, seq)): Path<(String, u64)>) -> Response {
    let s = lock(&app.shared);
    match s.frames.get(&camera).and_then(|q| q.iter().find(|(s, _)| *s == seq)) {
        Some((_, jpeg)) => {
            ([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "max-age=3600")], jpeg.clone())
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "frame no longer cached\n").into_response(),
    }
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
fn percent(s: &str) -> String {
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

fn publish(app: &App, s: &mut Shared, d: &Detections, has_frame: bool, recent_cap: usize) {
    let v = view(d, has_frame, now_ms());
    app.metrics.messages.inc();
    app.metrics.latency_seconds.observe(v.latency_ms as f64 / 1000.0);
    if !has_frame {
        app.metrics.without_frame.inc();
    }
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
    if let Ok(data) = serde_json::to_string(&v) {
        let _ = app.tx.send(data);
    }
    c.latest = Some(v);
}

fn consumer(kafka: &KafkaArgs, topic: &str) -> anyhow::Result<StreamConsumer> {
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

async fn consume(kafka: KafkaArgs, args: WebArgs, app: App) -> anyhow::Result<()> {
    let frames = consumer(&kafka, &args.frames_topic)?;
    let detections = consumer(&kafka, &args.topic)?;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {
                // Detections whose frame never came are shown without it.
                let mut s = lock(&app.shared);
                let now = Instant::now();
                let mut late = Vec::new();
                for q in s.pending.values_mut() {
                    while q.front().is_some_and(|(t, _)| now.duration_since(*t) > FRAME_WAIT) {
                        if let Some((_, d)) = q.pop_front() {
                            late.push(d);
                        }
                    }
                }
                for d in late {
                    publish(&app, &mut s, &d, false, args.recent);
                }
            }
            m = frames.recv() => {
                let Ok(m) = m else { continue };
                let Ok(f) = framewire_proto::codec::decode_frame(m.payload().unwrap_or_default()) else { continue };
                let mut s = lock(&app.shared);
                let q = s.frames.entry(f.camera_id.clone()).or_default();
                q.push_back((f.seq, Bytes::from(f.image)));
                while q.len() > FRAMES_PER_CAMERA {
                    q.pop_front();
                }
                let waiting = s.pending.get_mut(&f.camera_id).and_then(|p| {
                    let i = p.iter().position(|(_, d)| d.seq == f.seq)?;
                    p.remove(i)
                });
                if let Some((_, d)) = waiting {
                    publish(&app, &mut s, &d, true, args.recent);
                }
            }
            m = detections.recv() => {
                let Ok(m) = m else { continue };
                let d = match framewire_proto::decode_detections(m.payload().unwrap_or_default()) {
                    Ok(d) => d,
                    Err(e) => {
                        warn!(partition = m.partition(), offset = m.offset(), error = %e, "skipping message that is not Detections");
                        continue;
                    }
                };
                let mut s = lock(&app.shared);
                let cached = s.frames.get(&d.camera_id).is_some_and(|q| q.iter().any(|(seq, _)| *seq == d.seq));
                if cached {
                    publish(&app, &mut s, &d, true, args.recent);
                } else {
                    let p = s.pending.entry(d.camera_id.clone()).or_default();
                    p.push_back((Instant::now(), d));
                    while p.len() > FRAMES_PER_CAMERA {
                        p.pop_front();
                    }
                }
            }
        }
    }
}

/// Every few seconds: the detectors' group lag per partition (high watermark minus committed offset).
fn lag_loop(kafka: &KafkaArgs, args: &WebArgs, shared: &Mutex<Shared>, stop: &CancellationToken) {
    let client: Option<BaseConsumer> = kafka
        .config(&[("group.id", &args.detect_group), ("enable.auto.commit", "false")])
        .ok()
        .and_then(|c| c.create().ok());
    let Some(client) = client else { return };
    while !stop.is_cancelled() {
        let timeout = Duration::from_secs(5);
        if let Ok(md) = client.fetch_metadata(Some(&args.frames_topic), timeout) {
            let mut tpl = TopicPartitionList::new();
            for t in md.topics() {
                for p in t.partitions() {
                    tpl.add_partition(&args.frames_topic, p.id());
                }
            }
            if let Ok(committed) = client.committed_offsets(tpl, timeout) {
                let mut lag = Vec::new();
                for e in committed.elements() {
                    let Ok((_, high)) = client.fetch_watermarks(&args.frames_topic, e.partition(), timeout) else {
                        continue;
                    };
                    // A partition the group never committed has no lag to speak of (wrong --detect-group, or
                    // detect not started yet); guessing "everything" would alarm for nothing.
                    let Offset::Offset(done) = e.offset() else { continue };
                    lag.push((e.partition(), (high - done).max(0)));
                }
                lock(shared).lag = lag;
            }
        }
        for _ in 0..20 {
            if stop.is_cancelled() {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposed_addresses_need_a_token() {
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert!(check_exposure(&lo, None).is_ok());
        assert!(check_exposure(&any, None).unwrap_err().contains("--token"));
        assert!(check_exposure(&any, Some("")).is_err());
        assert!(check_exposure(&any, Some("s3cret")).is_ok());
        assert!(check_exposure(&"[::1]:8080".parse().unwrap(), None).is_ok());
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
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; framewire_token=xyz; b=2"));
        assert_eq!(cookie_value(&h, TOKEN_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie_value(&h, "c"), None);
    }
}
