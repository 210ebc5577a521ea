//! ingest's named outcomes, in the way of Vector's internal events: each type owns its log line and its
//! metric update, so a call site emits one event instead of pairing a counter and a log line by hand, and
//! what the dashboard and the summary read (the counters declared in [`crate::metrics`]) cannot drift from
//! what the log says. Every series is per camera.

use std::time::Duration;

use tracing::{debug, error, info, warn};

use crate::decode::SourceInfo;
use crate::jpeg::Shrink;
use crate::metrics::Metrics;

/// Outcomes of every frame, or nearly: the per-camera counter is their whole record, since a log line each
/// would drown the logs.
macro_rules! counted {
    ($($(#[$doc:meta])* $name:ident => $counter:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name<'a> {
            pub camera: &'a str,
        }

        impl $name<'_> {
            pub fn emit(&self, m: &Metrics) {
                m.$counter.with_label_values(&[self.camera]).inc();
            }
        }
    )*};
}

counted! {
    /// A frame came out of the decoder (before `--fps` sampling).
    FrameDecoded => decoded;
    /// A live camera's queue was full: its oldest frame was dropped to make room (a gap in `seq` shows it).
    FrameDropped => dropped;
    /// Kafka acknowledged a frame.
    FramePublished => published;
    /// librdkafka's queue was full: the producer waits for deliveries, which slows the decoders.
    ProducerBackpressure => backpressure_waits;
    /// `--motion`: a frame was sent only because `--motion-keepalive` had passed (`keepalive = true`).
    FrameKeptAlive => keepalive;
}

/// `--motion`: a sampled frame's picture did not change since the camera's last published frame, so it was
/// left out before JPEG encoding. Not a loss: it takes no seq, and the next Frame counts it in
/// `unchanged_before`. Many a second on a quiet camera, hence debug level.
#[derive(Debug)]
pub struct FrameUnchanged<'a> {
    pub camera: &'a str,
    pub stream_us: i64,
    /// Percent of the picture that changed, under the threshold.
    pub changed_percent: f64,
}

impl FrameUnchanged<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.unchanged.with_label_values(&[self.camera]).inc();
        debug!(camera = %self.camera, stream_us = self.stream_us, changed_percent = self.changed_percent,
            "frame left out: picture unchanged");
    }
}

/// A frame was handed to the producer after `waited` in ingest's queue (encoded -> published).
#[derive(Debug)]
pub struct FrameHandedOff<'a> {
    pub camera: &'a str,
    pub waited: Duration,
}

impl FrameHandedOff<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.stage_seconds.with_label_values(&[self.camera, "ingest_queue"]).observe(self.waited.as_secs_f64());
    }
}

/// A sampled frame was encoded as JPEG within the message size.
#[derive(Debug)]
pub struct FrameEncoded<'a> {
    pub camera: &'a str,
    pub bytes: usize,
    /// The JPEG encoding itself.
    pub took: Duration,
    /// From decoded to encoded (the `jpeg` stage): the encoding, and the motion check before it.
    pub since_decoded: Duration,
}

impl FrameEncoded<'_> {
    pub fn emit(&self, m: &Metrics) {
        let labels = [self.camera];
        m.encode_seconds.with_label_values(&labels).observe(self.took.as_secs_f64());
        m.stage_seconds.with_label_values(&[self.camera, "jpeg"]).observe(self.since_decoded.as_secs_f64());
        m.jpeg_bytes.with_label_values(&labels).inc_by(self.bytes as u64);
        m.sampled.with_label_values(&labels).inc();
    }
}

/// A frame over the message size was re-encoded smaller: published, but with less detail.
#[derive(Debug)]
pub struct FrameShrunk<'a> {
    pub camera: &'a str,
    pub seq: u64,
    pub how: Shrink,
    /// Height of the re-encoded frame, to name the size it was downscaled to.
    pub height: u32,
    pub limit: usize,
}

impl FrameShrunk<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.shrunk.with_label_values(&[self.camera]).inc();
        let how = match self.how {
            Shrink::Quality(q) => format!("quality {q}"),
            Shrink::Downscaled(w) => format!("downscaled to {w}x{}", self.height),
        };
        warn!(camera = %self.camera, seq = self.seq, how = %how, limit = self.limit,
            "frame over the message size limit was re-encoded");
    }
}

/// A frame could not be made to fit the message size: its slot stays empty (a gap in `seq`).
#[derive(Debug)]
pub struct FrameTooLarge<'a> {
    pub camera: &'a str,
    pub seq: u64,
    pub error: &'a crate::Error,
}

impl FrameTooLarge<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.too_large.with_label_values(&[self.camera]).inc();
        warn!(camera = %self.camera, seq = self.seq, error = %self.error, "frame not published");
    }
}

/// A frame was queued for the producer; `queued` is the queue's length after it.
#[derive(Debug)]
pub struct FrameQueued<'a> {
    pub camera: &'a str,
    pub queued: usize,
}

impl FrameQueued<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.queued.with_label_values(&[self.camera]).set(self.queued as i64);
    }
}

/// Kafka did not acknowledge a frame. Only the run's first failure is logged: a broker that is down fails
/// every frame, and one line says so; the counter has them all.
#[derive(Debug)]
pub struct DeliveryFailed<'a> {
    pub camera: &'a str,
    pub reason: &'a str,
    pub first: bool,
}

impl DeliveryFailed<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.failed.with_label_values(&[self.camera]).inc();
        if self.first {
            error!(camera = %self.camera, error = %self.reason, "frame not delivered");
        }
    }
}

/// The producer cannot deliver any more frames; `reason` says what to fix.
#[derive(Debug)]
pub struct ProducerStopped<'a> {
    pub camera: &'a str,
    pub error: &'a rdkafka::error::KafkaError,
    pub reason: &'a str,
}

impl ProducerStopped<'_> {
    pub fn emit(&self) {
        error!(camera = %self.camera, error = %self.error, "{}", self.reason);
    }
}

/// A source was opened for the first time.
#[derive(Debug)]
pub struct SourceOpened<'a> {
    pub camera: &'a str,
    pub info: &'a SourceInfo,
    pub live: bool,
}

impl SourceOpened<'_> {
    pub fn emit(&self, m: &Metrics) {
        let info = self.info;
        info!(camera = %self.camera, source = %info.uri, width = info.width, height = info.height,
            codec = %info.codec, fps = ?info.fps, live = self.live, "source opened");
        m.up.with_label_values(&[self.camera]).set(1);
    }
}

/// A lost live source is back.
#[derive(Debug)]
pub struct SourceReconnected<'a> {
    pub camera: &'a str,
    pub source: &'a str,
    pub down: Duration,
    pub attempts: u32,
}

impl SourceReconnected<'_> {
    pub fn emit(&self, m: &Metrics) {
        info!(camera = %self.camera, source = %self.source, down_s = format!("{:.1}", self.down.as_secs_f64()),
            attempts = self.attempts, "source reconnected");
        m.up.with_label_values(&[self.camera]).set(1);
    }
}

/// A source stopped delivering frames: it ended, failed, or the camera is done.
#[derive(Debug)]
pub struct SourceDown<'a> {
    pub camera: &'a str,
}

impl SourceDown<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.up.with_label_values(&[self.camera]).set(0);
    }
}

/// A live source was lost (ended, stalled, refused). Every loss is counted; `retry_in` is the wait before the
/// next attempt, `None` when the camera gives up (its error is then reported when it stops).
#[derive(Debug)]
pub struct SourceLost<'a> {
    pub camera: &'a str,
    pub source: &'a str,
    pub reason: &'a str,
    pub attempt: u32,
    pub retry_in: Option<Duration>,
}

impl SourceLost<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.reconnects.with_label_values(&[self.camera]).inc();
        if let Some(delay) = self.retry_in {
            warn!(camera = %self.camera, source = %self.source, reason = %self.reason, attempt = self.attempt,
                retry_in_s = format!("{:.1}", delay.as_secs_f64()), "source lost; reconnecting");
        }
    }
}

/// Frames the decoder could not decode because the source sent damaged data.
#[derive(Debug)]
pub struct DamagedData<'a> {
    pub camera: &'a str,
    pub source: &'a str,
    pub frames: u64,
}

impl DamagedData<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.bad_packets.with_label_values(&[self.camera]).inc_by(self.frames);
        warn!(camera = %self.camera, source = %self.source, frames = self.frames,
            "frames could not be decoded: the source sent damaged data");
    }
}

/// A file in an image folder is not a readable image: skipped, the folder goes on.
#[derive(Debug)]
pub struct FileSkipped<'a> {
    pub camera: &'a str,
    pub file: &'a std::path::Path,
    pub error: &'a crate::Error,
}

impl FileSkipped<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.skipped_files.with_label_values(&[self.camera]).inc();
        warn!(camera = %self.camera, file = %self.file.display(), error = %self.error, "skipped: not a readable image");
    }
}

/// A bucket source was listed for the first time: it is read from here on.
#[derive(Debug)]
pub struct BucketOpened<'a> {
    pub camera: &'a str,
    pub source: &'a str,
    pub watch: bool,
}

impl BucketOpened<'_> {
    pub fn emit(&self, m: &Metrics) {
        info!(camera = %self.camera, source = %self.source, watch = self.watch, "reading bucket");
        m.up.with_label_values(&[self.camera]).set(1);
    }
}

/// An object of a bucket source could not be fetched or is not a readable image or video: skipped (not
/// tried again), the bucket goes on. Counted with the skipped files.
#[derive(Debug)]
pub struct ObjectSkipped<'a> {
    pub camera: &'a str,
    /// The object's URL.
    pub object: &'a str,
    pub error: &'a crate::Error,
}

impl ObjectSkipped<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.skipped_files.with_label_values(&[self.camera]).inc();
        warn!(camera = %self.camera, object = %self.object, error = %self.error,
            "skipped: cannot fetch the object, or not a readable image or video");
    }
}

/// A live camera's `seq` starts at the Unix time in ms.
#[derive(Debug)]
pub struct LiveSeqStarted<'a> {
    pub camera: &'a str,
    pub first_seq: u64,
}

impl LiveSeqStarted<'_> {
    pub fn emit(&self) {
        info!(camera = %self.camera, first_seq = self.first_seq, "live camera: seq starts at the Unix time in ms");
    }
}

/// A camera's own clock is too far from ours to be trusted; logged once per camera.
#[derive(Debug)]
pub struct CameraClockOff<'a> {
    pub camera: &'a str,
    pub off: Duration,
}

impl CameraClockOff<'_> {
    pub fn emit(&self) {
        warn!(camera = %self.camera, off_s = self.off.as_secs(), "camera clock is off; using the time of decoding");
    }
}

/// A camera stopped early with an error (the other cameras go on).
#[derive(Debug)]
pub struct CameraFailed<'a> {
    pub camera: &'a str,
    pub error: &'a crate::Error,
}

impl CameraFailed<'_> {
    pub fn emit(&self) {
        error!(camera = %self.camera, error = %self.error, "camera stopped");
    }
}
