//! Named outcomes of `subscribe web`: each owns its log line and its metric.

use std::net::SocketAddr;

use framewire_proto::codec::DecodeError;
use tracing::{debug, info, warn};

use crate::metrics::WebMetrics;

/// The page is being served.
pub struct WebListening {
    pub addr: SocketAddr,
    /// Whether a token guards the page: the address alone does not say whether it is exposed.
    pub token: bool,
}

impl WebListening {
    pub fn emit(&self) {
        let WebListening { addr, token } = *self;
        info!(%addr, token, "web view at http://{addr}/");
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
