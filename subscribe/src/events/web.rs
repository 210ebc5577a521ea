//! Named outcomes of `subscribe web`: each owns its log line and its metric.

use std::net::SocketAddr;

use framewire_common::redact;
use framewire_proto::codec::DecodeError;
use tracing::{debug, info, warn};

use crate::metrics::WebMetrics;
use crate::repo::RepoError;

/// The page is being served.
pub struct WebListening {
    pub addr: SocketAddr,
    /// Whether a token guards the page: the address alone does not say whether it is exposed.
    pub token: bool,
    pub https: bool,
}

impl WebListening {
    pub fn emit(&self) {
        let WebListening { addr, token, https } = *self;
        let scheme = if https { "https" } else { "http" };
        info!(%addr, token, https, "web view at {scheme}://{addr}/");
    }
}

/// A page could not read the store's database. The browser is told only that; the cause is logged here.
pub struct DbUnavailable<'a> {
    /// The `--db` URL as given: whatever of it the error quotes is hidden here.
    pub db: &'a str,
    pub error: &'a RepoError,
}

impl DbUnavailable<'_> {
    pub fn emit(&self, m: &WebMetrics) {
        m.db_errors.inc();
        // The repository hides the URL's password in its errors; the URL is scrubbed whole as well, for an
        // error that quotes it as given (a URL it cannot parse).
        let error = redact::scrub(&self.error.to_string(), [self.db]);
        warn!(db = %redact::url(self.db), %error, "store database unavailable to the web view");
    }
}

/// A stored event's snapshot file could not be read (removed by retention, most likely).
pub struct SnapshotUnreadable<'a> {
    /// The file path or object URL.
    pub path: &'a str,
    pub error: &'a dyn std::fmt::Display,
}

impl SnapshotUnreadable<'_> {
    pub fn emit(&self) {
        debug!(path = self.path, error = %self.error, "snapshot not served");
    }
}

/// A client's TLS handshake failed or stalled (it does not trust the certificate, or it speaks plain HTTP).
/// Debug level: on an exposed address scanners do this all day.
pub struct TlsHandshakeFailed<'a> {
    pub peer: SocketAddr,
    pub error: &'a std::io::Error,
}

impl TlsHandshakeFailed<'_> {
    pub fn emit(&self) {
        debug!(peer = %self.peer, error = %self.error, "TLS handshake failed");
    }
}

/// The listening socket could not accept a connection (out of file descriptors, most likely).
pub struct AcceptFailed<'a> {
    pub error: &'a std::io::Error,
}

impl AcceptFailed<'_> {
    pub fn emit(&self) {
        warn!(error = %self.error, "cannot accept a connection; retrying in 1 s");
    }
}

/// One frame's detections pushed to the browsers, with the very frame they were made on, or without it when
/// that frame did not arrive in time.
pub struct DetectionsShown {
    pub latency_ms: i64,
    pub with_frame: bool,
}

impl DetectionsShown {
    pub fn emit(&self, m: &WebMetrics) {
        m.messages.inc();
        m.latency_seconds.observe(self.latency_ms as f64 / 1000.0);
        if !self.with_frame {
            m.without_frame.inc();
        }
    }
}

/// A message on the detections topic that is not Detections: skipped, the page goes on.
pub struct NotDetections<'a> {
    pub partition: i32,
    pub offset: i64,
    pub error: &'a DecodeError,
}

impl NotDetections<'_> {
    pub fn emit(&self) {
        warn!(partition = self.partition, offset = self.offset, error = %self.error, "skipping message that is not Detections");
    }
}

/// A browser opened the live stream.
pub struct ClientConnected;

impl ClientConnected {
    pub fn emit(&self, m: &WebMetrics) {
        m.clients.inc();
    }
}

/// A browser's live stream ended (closed, or the server shutting down).
pub struct ClientDropped;

impl ClientDropped {
    pub fn emit(&self, m: &WebMetrics) {
        m.clients.dec();
    }
}

/// A request without a valid token. Only at debug level: a refused request is routine on an exposed address,
/// and the token given (right or wrong) is never logged.
pub struct AuthRefused<'a> {
    pub path: &'a str,
}

impl AuthRefused<'_> {
    pub fn emit(&self) {
        debug!(path = self.path, "request refused: no valid token");
    }
}

/// The detectors' lag, asked of the broker.
pub struct LagMeasured {
    pub partitions: usize,
    pub total: i64,
}

impl LagMeasured {
    pub fn emit(&self) {
        debug!(partitions = self.partitions, total = self.total, "detect group lag measured");
    }
}

/// Someone logged in with the token through the login form. The token is never logged.
pub struct LoggedIn;

impl LoggedIn {
    pub fn emit(&self) {
        info!("logged in through the login form");
    }
}
