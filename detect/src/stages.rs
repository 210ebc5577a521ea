//! The two CPU stages between the consumer and the output, each on its own thread: preprocess (decode the
//! Frame and its JPEG, resize, normalise) and inference (batch, run the model, build the Detections). A
//! message either stage cannot handle leaves as a dead letter, so its offset still advances.

use std::time::{Duration, Instant};

use rdkafka::message::OwnedHeaders;
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use framewire_common::backoff::Backoff;
use framewire_common::time::now_ms;
use framewire_proto::{DetectionBox, Detections, SCHEMA_VERSION};

use crate::Result;
use crate::events::{BatchInferred, FrameDetected, InferenceRetried};
use crate::metrics::Metrics;
use crate::model::Detector;
use crate::offsets::Ticket;
use crate::preprocess::{Prepared, Preprocessor};

/// Each frame's boxes, and the inference time of the call in milliseconds.
type Inferred = (Vec<Vec<DetectionBox>>, f32);

/// A consumed message travelling through the pipeline.
pub(crate) struct Job {
    pub ticket: Ticket,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Option<OwnedHeaders>,
    pub received: Instant,
    /// Room taken in the pipeline, given back once the frame's result or dead letter is acknowledged.
    pub permit: OwnedSemaphorePermit,
}

/// A frame ready for inference.
pub(crate) struct PreparedJob {
    job: Job,
    frame: framewire_proto::Frame,
    prepared: Prepared,
}

/// What the output stage publishes for a job.
pub(crate) enum Outcome {
    Detected { ticket: Ticket, detections: Detections, permit: OwnedSemaphorePermit },
    Dead { job: Job, reason: String, kind: &'static str },
}

/// Decodes and prepares frames until `jobs` closes or a later stage is gone.
pub(crate) fn preprocess_stage(
    mut pre: Preprocessor,
    mut jobs: mpsc::Receiver<Job>,
    prepared: mpsc::Sender<PreparedJob>,
    out: mpsc::Sender<Outcome>,
) {
    while let Some(job) = jobs.blocking_recv() {
        let frame = match framewire_proto::decode_frame(&job.payload) {
            Ok(f) => f,
            Err(e) => {
                let kind = match e {
                    framewire_proto::DecodeError::UnsupportedVersion { .. } => "schema_version",
                    _ => "not_a_frame",
                };
                if out.blocking_send(Outcome::Dead { job, reason: e.to_string(), kind }).is_err() {
                    return;
                }
                continue;
            }
        };
        match pre.prepare(&frame.image) {
            Ok(p) => {
                if prepared.blocking_send(PreparedJob { job, frame, prepared: p }).is_err() {
                    return;
                }
            }
            Err(e) => {
                let reason = format!("camera {} seq {}: {e}", frame.camera_id, frame.seq);
                if out.blocking_send(Outcome::Dead { job, reason, kind: "bad_image" }).is_err() {
                    return;
                }
            }
        }
    }
}

/// What the inference stage needs besides its channels.
pub(crate) struct Inference {
    pub detector: Detector,
    pub metrics: Metrics,
    /// Attempts per batch before its frames are dead-lettered.
    pub retries: u32,
    /// How long a partial batch waits for more frames.
    pub batch_wait: Duration,
}

/// Runs the model on batches of prepared frames until `prepared` closes or the output is gone.
pub(crate) fn inference_stage(
    mut inf: Inference,
    mut prepared: mpsc::Receiver<PreparedJob>,
    out: mpsc::Sender<Outcome>,
) {
    // A failed call is most often the device being busy or short of memory for a moment: wait a little,
    // growing, and differently in each replica so they do not all retry at once.
    let mut backoff = Backoff::jittered(Duration::from_millis(50), Duration::from_secs(1));
    while let Some(first) = prepared.blocking_recv() {
        let batch = gather(first, &mut prepared, inf.detector.max_batch, inf.batch_wait);
        let (result, attempts) = infer(&mut inf, &batch, &mut backoff);
        BatchInferred { frames: batch.len(), infer_ms: result.as_ref().ok().map(|(_, ms)| *ms) }.emit(&inf.metrics);
        let sent = match result {
            Ok((boxes, infer_ms)) => publish(&inf, batch, boxes, infer_ms, &out),
            Err(e) => batch.into_iter().all(|j| {
                let reason =
                    format!("camera {} seq {}: {e} (after {attempts} attempts)", j.frame.camera_id, j.frame.seq);
                out.blocking_send(Outcome::Dead { job: j.job, reason, kind: "inference" }).is_ok()
            }),
        };
        if !sent {
            return;
        }
    }
}

/// Runs the model on `batch`, up to `--retries` times. Returns the last result and the attempts made.
fn infer(inf: &mut Inference, batch: &[PreparedJob], backoff: &mut Backoff) -> (Result<Inferred>, u32) {
    backoff.reset();
    let refs: Vec<&Prepared> = batch.iter().map(|j| &j.prepared).collect();
    let mut attempt = 1;
    loop {
        match inf.detector.detect(&refs) {
            Ok(r) => return (Ok(r), attempt),
            Err(error) if attempt < inf.retries.max(1) => {
                InferenceRetried { error: &error, attempt }.emit();
                std::thread::sleep(backoff.next_delay());
                attempt += 1;
            }
            Err(e) => return (Err(e), attempt),
        }
    }
}

/// `first` and what else arrives within `wait`, up to `max` frames.
fn gather(
    first: PreparedJob,
    prepared: &mut mpsc::Receiver<PreparedJob>,
    max: usize,
    wait: Duration,
) -> Vec<PreparedJob> {
    let mut batch = vec![first];
    let deadline = Instant::now() + wait;
    while batch.len() < max {
        match prepared.try_recv() {
            Ok(j) => batch.push(j),
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            // Polling in short naps: a blocking receive with a deadline does not exist for this channel.
            Err(mpsc::error::TryRecvError::Empty) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) => std::thread::sleep(left.min(Duration::from_micros(500))),
                None => break,
            },
        }
    }
    batch
}

/// Sends each frame's Detections to the output. False when the output is gone.
fn publish(
    inf: &Inference,
    batch: Vec<PreparedJob>,
    boxes: Vec<Vec<DetectionBox>>,
    infer_ms: f32,
    out: &mpsc::Sender<Outcome>,
) -> bool {
    let per_frame_ms = infer_ms / batch.len() as f32;
    for (j, boxes) in batch.into_iter().zip(boxes) {
        let f = &j.frame;
        let detections = Detections {
            schema_version: SCHEMA_VERSION,
            camera_id: f.camera_id.clone(),
            seq: f.seq,
            capture_time_ms: f.capture_time_ms,
            stream_time_us: f.stream_time_us,
            width: j.prepared.src_width,
            height: j.prepared.src_height,
            model_name: inf.detector.name.clone(),
            model_version: inf.detector.version.clone(),
            inference_ms: per_frame_ms,
            boxes,
            detected_time_ms: now_ms(),
            source_topic: String::new(),
            source_partition: j.job.ticket.partition,
            source_offset: j.job.ticket.offset,
        };
        FrameDetected { detections: &detections, queued_ms: j.job.received.elapsed().as_millis() as u64 }
            .emit(&inf.metrics);
        let (ticket, permit) = (j.job.ticket, j.job.permit);
        if out.blocking_send(Outcome::Detected { ticket, detections, permit }).is_err() {
            return false;
        }
    }
    true
}
