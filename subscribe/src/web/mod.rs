//! `subscribe web`: a live page of every camera's latest frame with its boxes, recent detections, the
//! pipeline's figures and, with `--db`, stored events with their snapshots.
//!
//! Every asset is compiled into the binary: the page works with no internet.
//!
//! # Layout
//! - `auth`: the token an exposed address needs, checked on every request.
//! - `tls`: HTTPS, with the certificate and key given.
//! - `api`: the live page's JSON, its server-sent event stream and the cached frames.
//! - `live`: the Kafka consumers and the cache that joins each detection to its frame.
//! - `lag`: the detectors' consumer lag, as the page shows it.
//! - `login`: the login form for the token, and logging out.
//! - `page`: what every server-rendered page shares (its frame, times, colours).
//! - `stored`: one stored event and the stored snapshots; `review`: the events, filtered and paged;
//!   `camera`: one camera's page and the cameras the store knows; `chart`: its timeline and counts, as SVG.
//! - `error`: why the page could not be served.

use std::fmt::Debug;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::middleware;
use axum::response::{Html, Response};
use axum::routing::get;
use framewire_common::kafka::KafkaArgs;
use framewire_common::metrics::MetricsArgs;
use framewire_proto::names;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

mod api;
mod auth;
mod camera;
mod chart;
mod error;
mod lag;
mod live;
mod login;
mod page;
mod review;
mod stored;
mod tls;

pub use auth::check_exposure;
pub use error::{Error, Result};
pub use live::{BoxView, FrameView, view};

use crate::events::web::WebListening;
use crate::metrics::WebMetrics;
use crate::repo::Db;
use auth::Token;
use live::Shared;
use page::escape;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");

#[derive(Debug, Clone, clap::Args)]
pub struct WebArgs {
    /// Address of the web page. Anything but a loopback address needs --token.
    #[arg(long, env = "FRAMEWIRE_WEB_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Access token: give it once as ?token=… (percent-encoded; then kept in a cookie) or as
    /// `Authorization: Bearer …`.
    #[arg(long, env = "FRAMEWIRE_WEB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Serve HTTPS with this certificate chain (PEM), together with --tls-key. An exposed address still
    /// needs --token.
    #[arg(long, env = "FRAMEWIRE_WEB_TLS_CERT", value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, RSA or EC).
    #[arg(long, env = "FRAMEWIRE_WEB_TLS_KEY", value_name = "PATH")]
    pub tls_key: Option<PathBuf>,

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

    /// Object storage for snapshots given as URLs (`s3://…`): endpoint, region, retries.
    #[command(flatten)]
    pub objects: framewire_common::objects::ObjectStoreArgs,
}

/// What every request handler shares.
#[derive(Clone)]
struct App {
    shared: Arc<Mutex<Shared>>,
    /// Each frame's view, to every browser's live stream.
    tx: broadcast::Sender<Arc<FrameView>>,
    /// None on a loopback address started without one: then every request is let through.
    token: Option<Token>,
    /// Served over HTTPS: the token's cookie is then marked `Secure`.
    https: bool,
    /// The store's database, connected on first use so that the page starts without it.
    db: Option<Arc<tokio::sync::Mutex<Option<Db>>>>,
    db_url: Option<String>,
    /// Reads stored snapshots back, from files or object storage (their URLs are in the database).
    objects: framewire_common::objects::Objects,
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
    // A certificate or key that cannot serve ends the process before anything starts, like a bad address.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
        (None, None) => None,
        _ => return Err(Error::TlsPair),
    };
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
        token: args.token.as_deref().filter(|t| !t.is_empty()).map(Token::new),
        https: tls.is_some(),
        db: args.db.as_ref().map(|_| Arc::new(tokio::sync::Mutex::new(None))),
        db_url: args.db.clone(),
        objects: framewire_common::objects::Objects::new(&args.objects),
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

    WebListening { addr, token: app.token.is_some(), https: tls.is_some() }.emit();
    let router = router(app);
    match tls {
        Some(config) => serve(tls::TlsListener::new(listener, config), router, shutdown.clone()).await?,
        None => serve(listener, router, shutdown.clone()).await?,
    }
    consumers.abort();
    lag.await.map_err(Error::Internal)
}

/// Serves until shutdown; the browsers' streams end on the same token, so nothing holds the exit up.
async fn serve<L>(listener: L, router: Router, stop: CancellationToken) -> Result<()>
where
    L: axum::serve::Listener,
    L::Addr: Debug,
{
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
        .map_err(Error::Serve)
}

/// Only this server's own files: the page has no inline script or style, and loads nothing from elsewhere.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// Headers every answer carries, refusals and errors too: no guessing of content types (a plain-text error
/// or an image is never run as a script), no `Referer` leaving the page (a URL may have carried the
/// token), and a policy that keeps the page to its own files.
async fn harden(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    resp
}

fn router(app: App) -> Router {
    Router::new()
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .route("/app.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], APP_JS) }))
        .route("/style.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE_CSS) }))
        .route("/api/state", get(api::state))
        .route("/api/recent", get(api::recent))
        .route("/api/stream", get(api::stream))
        .route("/login", get(login::login_page).post(login::login_post))
        .route("/logout", axum::routing::post(login::logout))
        .route("/review", get(review::review_page))
        .route("/api/events", get(review::events_api))
        .route("/api/events/{id}", get(stored::event_json))
        .route("/events/{id}", get(stored::event_page))
        .route("/snapshots/{id}/{n}", get(stored::snapshot_file))
        .route("/cameras/{camera}", get(camera::camera_page))
        .route("/api/cameras", get(camera::cameras_api))
        .route("/api/cameras/{camera}/counts", get(camera::counts_api))
        .route("/stored/{camera}/{seq}", get(stored::frame_snapshot))
        .route("/frames/{camera}/{seq}", get(api::frame))
        .layer(middleware::from_fn_with_state(app.clone(), auth::auth))
        .layer(middleware::map_response(harden))
        .with_state(app)
}
