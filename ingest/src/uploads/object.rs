//! One uploaded object from fetch to acknowledged frames: fetch it (object_store retries transient errors
//! `--s3-retries` times), decode it on a blocking thread, produce its frames with backpressure, and wait
//! until the broker has acknowledged every one. An object that cannot be had or decoded becomes a dead
//! letter; a delivery that failed for a cause that may pass retries the whole object, which is safe
//! because its frames' seqs come from the object, not from a counter.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use prost::Message as _;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use framewire_common::backoff::Backoff;
use framewire_common::objects::{ObjectError, Objects};
use framewire_proto::{Frame, SourceObject, names};

use super::events::{UploadFramesOverLimit, UploadFramesPublished, UploadObjectFetched, UploadRetrying};
use super::frames::{self, Job};
use super::notification::Created;
use super::{CameraPattern, DeadKind, UploadError};
use crate::events::{DeliveryFailed, FramePublished, ProducerBackpressure};
use crate::metrics::Metrics;

/// What one object came to.
#[derive(Debug)]
pub enum Outcome {
    /// Every frame was acknowledged.
    Published { frames: u32 },
    /// The notification goes to the dead-letter topic with this reason.
    Dead { kind: DeadKind, reason: String },
    /// Shutdown came first: the notification stays uncommitted, to be read again.
    Stopped,
}

/// Why one attempt failed.
enum Failure {
    /// May pass (a delivery timed out, the disk was full): the object is tried again after a backoff.
    Retry(String),
    Fatal(UploadError),
}

/// What every object needs; built once per run.
pub struct Context {
    pub objects: Objects,
    pub producer: FutureProducer,
    /// The frames topic.
    pub topic: String,
    pub pattern: CameraPattern,
    pub metrics: Metrics,
    pub shutdown: CancellationToken,
    pub fps: Option<f64>,
    pub keyframes_only: bool,
    pub options: std::collections::BTreeMap<String, String>,
    pub jpeg_quality: u8,
    pub max_image_bytes: usize,
    pub max_object_bytes: u64,
    /// Frames between the decoder and the producer.
    pub queue_frames: usize,
    /// For the dead-letter reason of an object that could not be fetched.
    pub s3_retries: usize,
}

/// Reads `c` and publishes its frames, retrying failed deliveries until they pass or turn out fatal.
pub async fn process(cx: &Context, c: &Created) -> Result<Outcome, UploadError> {
    let uri = format!("s3://{}/{}", c.bucket, c.key);
    let mut backoff = Backoff::jittered(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        match attempt(cx, c, &uri).await {
            Ok(outcome) => return Ok(outcome),
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Retry(reason)) => {
                let retry_in = backoff.next_delay();
                let attempt = backoff.attempts();
                UploadRetrying { uri: &uri, reason: &reason, attempt, retry_in }.emit(&cx.metrics);
                tokio::select! {
                    _ = cx.shutdown.cancelled() => return Ok(Outcome::Stopped),
                    _ = tokio::time::sleep(retry_in) => {}
                }
            }
        }
    }
}

async fn attempt(cx: &Context, c: &Created, uri: &str) -> Result<Outcome, Failure> {
    let dead = |kind, reason: String| Ok(Outcome::Dead { kind, reason });
    let too_big = |size: u64| {
        format!(
            "{uri}: {size} bytes is more than --max-object-bytes {}: raise it to read this object",
            cx.max_object_bytes
        )
    };
    if let Some(size) = c.size.filter(|s| *s > cx.max_object_bytes) {
        return dead(DeadKind::TooBig, too_big(size));
    }
    let bucket = match cx.objects.open(&format!("s3://{}", c.bucket)) {
        Ok(b) => b,
        Err(e) => return dead(DeadKind::Unreadable, e.to_string()),
    };
    let started = Instant::now();
    let fetched = tokio::select! {
        _ = cx.shutdown.cancelled() => return Ok(Outcome::Stopped),
        f = bucket.get(&c.key) => f,
    };
    let fetched = match fetched {
        Ok(f) => f,
        Err(ObjectError::NotFound { url }) => {
            return dead(DeadKind::Gone, format!("{url}: no such object (404): deleted before ingest could read it"));
        }
        Err(e) => {
            let reason = format!("{e} (after {} retries; see --s3-retries and --s3-timeout)", cx.s3_retries);
            return dead(DeadKind::Unreadable, reason);
        }
    };
    let size = fetched.bytes.len() as u64;
    if size > cx.max_object_bytes {
        return dead(DeadKind::TooBig, too_big(size));
    }
    let camera: Arc<str> = cx.pattern.camera(&c.bucket, &c.key).into();
    UploadObjectFetched { camera: &camera, uri, bytes: size, took: started.elapsed() }.emit(&cx.metrics);

    // The notification's identity of the version comes first: a redelivery must give the same seqs even if
    // the object was overwritten meanwhile.
    let version = c.version_id.clone().or_else(|| fetched.version.clone()).unwrap_or_default();
    let etag = c.etag.clone().or_else(|| fetched.e_tag.clone()).unwrap_or_default();
    let identity = format!("{}/{}/{}", c.bucket, c.key, if version.is_empty() { &etag } else { &version });
    let object = SourceObject {
        bucket: c.bucket.clone(),
        key: c.key.clone(),
        version_id: version,
        etag,
        frame_index: 0,
        event_time_ms: c.event_time_ms.unwrap_or(fetched.modified_ms),
    };

    // FFmpeg reads files: the bytes go to a temporary file, removed when `copy` drops.
    let bytes = fetched.bytes;
    let copy = tokio::task::spawn_blocking(move || -> std::io::Result<tempfile::TempPath> {
        let mut f = tempfile::Builder::new().prefix("framewire-upload-").tempfile()?;
        f.write_all(&bytes)?;
        f.flush()?;
        Ok(f.into_temp_path())
    })
    .await;
    let copy = match copy {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return Err(Failure::Retry(format!("cannot write a temporary copy of {uri}: {e}"))),
        Err(e) => return Err(Failure::Retry(format!("temporary copy of {uri}: {e}"))),
    };

    let job = Job {
        camera: camera.clone(),
        uri: uri.to_string(),
        object,
        identity,
        fps: cx.fps,
        keyframes_only: cx.keyframes_only,
        options: cx.options.clone(),
        jpeg_quality: cx.jpeg_quality,
        max_image_bytes: cx.max_image_bytes,
        shutdown: cx.shutdown.clone(),
        metrics: cx.metrics.clone(),
    };
    let (tx, mut rx) = mpsc::channel::<Frame>(cx.queue_frames.max(1));
    let decoder = tokio::task::spawn_blocking(move || {
        let decoded = frames::decode(&job, &copy, &tx);
        drop(copy);
        decoded
    });

    let mut out = Deliveries::new(cx, camera.clone());
    let mut first_seq = None;
    let mut failure = None;
    while let Some(mut frame) = rx.recv().await {
        first_seq.get_or_insert(frame.seq);
        if let Err(f) = out.send(&mut frame).await {
            failure = Some(f);
            // Dropping the receiver stops the decoder at its next frame.
            break;
        }
    }
    drop(rx);
    let decoded = decoder.await.map_err(|e| Failure::Retry(format!("decoding {uri}: {e}")))?;
    if let Some(f) = failure {
        return Err(f);
    }
    out.finish().await?;
    if decoded.stopped && cx.shutdown.is_cancelled() {
        return Ok(Outcome::Stopped);
    }
    if decoded.over_limit > 0 {
        UploadFramesOverLimit { camera: &camera, uri, left_out: decoded.over_limit, fps: cx.fps }.emit(&cx.metrics);
    }
    match decoded.error {
        // Not one picture: not an image or video, whatever its name says.
        Some(e) if decoded.pictures == 0 => dead(DeadKind::NotMedia, e.to_string()),
        error => {
            let frames = decoded.frames;
            let first_seq = first_seq.unwrap_or_default();
            UploadFramesPublished { camera: &camera, uri, frames, first_seq, error: error.as_ref() }.emit(&cx.metrics);
            Ok(Outcome::Published { frames })
        }
    }
}

/// Frames produced and not yet acknowledged.
struct Deliveries<'a> {
    cx: &'a Context,
    camera: Arc<str>,
    headers: OwnedHeaders,
    pending: FuturesUnordered<DeliveryFuture>,
    /// Whether a failure was logged already (one line per object is enough; the counter has them all).
    logged: bool,
}

impl<'a> Deliveries<'a> {
    fn new(cx: &'a Context, camera: Arc<str>) -> Self {
        let headers = OwnedHeaders::new()
            .insert(Header { key: names::HEADER_SCHEMA, value: Some(&framewire_proto::SCHEMA_VERSION.to_string()) })
            .insert(Header { key: names::HEADER_TYPE, value: Some(names::TYPE_FRAME) });
        Deliveries { cx, camera, headers, pending: FuturesUnordered::new(), logged: false }
    }

    /// Queues one frame, waiting while librdkafka's queue is full (backpressure to the decoder).
    async fn send(&mut self, frame: &mut Frame) -> Result<(), Failure> {
        crate::publish::stamp_published(frame, &self.cx.metrics);
        let payload = frame.encode_to_vec();
        let (cx, camera) = (self.cx, self.camera.clone());
        let key: &str = &camera;
        let mut record = FutureRecord::to(&cx.topic).key(key).payload(&payload).headers(self.headers.clone());
        loop {
            match cx.producer.send_result(record) {
                Ok(delivery) => {
                    self.pending.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    ProducerBackpressure { camera: key }.emit(&cx.metrics);
                    tokio::select! {
                        Some(d) = self.pending.next() => self.delivered(d)?,
                        _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                    }
                }
                Err((e, _)) => return Err(self.failed(&e)),
            }
        }
        // Completed deliveries are taken as they come, so a failure stops the object early.
        while let Some(Some(d)) = self.pending.next().now_or_never() {
            self.delivered(d)?;
        }
        Ok(())
    }

    /// Waits for every queued frame's acknowledgement.
    async fn finish(mut self) -> Result<(), Failure> {
        while let Some(d) = self.pending.next().await {
            self.delivered(d)?;
        }
        Ok(())
    }

    fn delivered(&mut self, d: <DeliveryFuture as std::future::Future>::Output) -> Result<(), Failure> {
        match d {
            Ok(Ok(_)) => {
                FramePublished { camera: &self.camera }.emit(&self.cx.metrics);
                Ok(())
            }
            Ok(Err((e, _))) => Err(self.failed(&e)),
            Err(_) => Err(Failure::Retry("the producer dropped a delivery report".into())),
        }
    }

    fn failed(&mut self, e: &KafkaError) -> Failure {
        let reason = e.to_string();
        let first = !std::mem::replace(&mut self.logged, true);
        DeliveryFailed { camera: &self.camera, reason: &reason, first }.emit(&self.cx.metrics);
        let fatal = e
            .rdkafka_error_code()
            .and_then(|code| crate::publish::fatal(code, &self.cx.topic, || self.cx.producer.client().fatal_error()));
        match fatal {
            Some(reason) => Failure::Fatal(UploadError::Ingest(crate::Error::Producer { reason })),
            None => Failure::Retry(format!("a frame was not delivered: {reason}")),
        }
    }
}
