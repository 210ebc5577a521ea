//! `subscribe web`: a live page of every camera's latest frame with its boxes, recent detections, the
//! pipeline's figures and, with `--db`, stored events with their snapshots.
//!
//! Every asset is compiled into the binary: the page works with no internet.
//!
//! # Layout
//! - `auth`: the token an exposed address needs, checked on every request.
//! - `api`: the live page's JSON, its server-sent event stream and the cached frames.
//! - `live`: the Kafka consumers and the cache that joins each detection to its frame.
//! - `lag`: the detectors' consumer lag, as the page shows it.
//! - `stored`: the pages that read the store's database.
//! - `error`: why the page could not be served.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::header;
use axum::middleware;
use axum::response::Html;
use axum::routing::get;
use framewire_common::kafka::KafkaArgs;
use framewire_common::metrics::MetricsArgs;
use framewire_proto::names;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

mod api;
mod auth;
mod error;
mod lag;
mod live;
mod stored;

pub use auth::check_exposure;
pub use error::{Error, Result};
pub use live::{BoxView, FrameView, view};

use crate::events::web::WebListening;
use crate::metrics::WebMetrics;
use crate::repo::Db;
// The pages of `stored` answer in the same JSON and take the same filters as the live API.
use api::{RecentQuery, json};
use live::Shared;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");

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

/// What every request handler shares.
#[derive(Clone)]
struct App {
    shared: Arc<Mutex<Shared>>,
    /// Each frame's view as JSON, to every browser's live stream.
    tx: broadcast::Sender<String>,
    /// None on a loopback address started without one: then every request is let through.
    token: Option<String>,
    /// The store's database, connected on first use so that the page starts without it.
    db: Option<Arc<tokio::sync::Mutex<Option<Db>>>>,
    db_url: Option<String>,
    metrics: WebMetrics,
    /// Ends the browsers' streams, so that a graceful shutdown does not wait for them.
    shutdown: CancellationToken,
}

/// Runs the web view until shutdown.
pub async fn run(
    kafka: &KafkaArgs,
    args: &WebArgs,
    metrics_args: &MetricsArgs,
    shutdown: CancellationToken,
) -> Result<()> {
    check_exposure(&args.listen, args.token.as_deref())?;
    // Listening first: an address in use is the commonest start-up error, and it must end the process
    // before any background loop starts.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| Error::Listen { addr: args.listen, source })?;
    let addr = listener.local_addr().map_err(|source| Error::Listen { addr: args.listen, source })?;
    // Whatever way this returns, the blocking lag loop must hear it: the runtime waits for blocking
    // threads before the process can exit.
    let _stop_on_return = shutdown.clone().drop_guard();
    let metrics = WebMetrics::new();
    framewire_common::metrics::serve(metrics_args, metrics.registry.clone(), shutdown.clone()).await;
    let k = kafka.clone();
    tokio::task::spawn_blocking(move || k.wait_reachable()).await.map_err(Error::Internal)??;

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

    let frames = live::consumer(kafka, &args.frames_topic)?;
    let detections = live::consumer(kafka, &args.topic)?;
    let consumers = tokio::spawn(live::consume(frames, detections, args.recent, app.clone()));
    let lag = {
        let (kafka, args, shared, stop) = (kafka.clone(), args.clone(), app.shared.clone(), shutdown.clone());
        tokio::task::spawn_blocking(move || lag::lag_loop(&kafka, &args, &shared, &stop))
    };

    WebListening { addr, token: app.token.is_some() }.emit();
    let stop = shutdown.clone();
    axum::serve(listener, router(app))
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
        .map_err(Error::Serve)?;
    consumers.abort();
    lag.await.map_err(Error::Internal)
}

fn router(app: App) -> Router {
    Router::new()
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .route("/app.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], APP_JS) }))
        .route("/style.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE_CSS) }))
        .route("/api/state", get(api::state))
        .route("/api/recent", get(api::recent))
        .route("/api/stream", get(api::stream))
        .route("/api/events", get(stored::events_list))
        .route("/api/events/{id}", get(stored::event_json))
        .route("/events/{id}", get(stored::event_page))
        .route("/snapshots/{id}/{n}", get(stored::snapshot_file))
        .route("/frames/{camera}/{seq}", get(api::frame))
        .layer(middleware::from_fn_with_state(app.clone(), auth::auth))
        .with_state(app)
}
