//! The jobs that travel between the stages, and the first CPU stage: preprocess (decode the Frame and its
//! JPEG, resize, normalise), on its own thread in each lane. The inference stage is [`crate::inference`]. A
//! message the stage cannot handle leaves as a dead letter, so its offset still advances.

use std::time::Instant;

use rdkafka::message::OwnedHeaders;
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use framewire_common::time::now_us;
use framewire_proto::Detections;

use crate::freshness::Freshness;
use crate::offsets::Ticket;
use crate::preprocess::{Prepared, Preprocessor};

/// A consumed message travelling through the pipeline.
pub(crate) struct Job {
    pub ticket: Ticket,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Option<OwnedHeaders>,
    pub received: Instant,
    /// When the consumer polled the message (Unix µs): the `consumed_us` of its result's stage times.
    pub consumed_us: i64,
    /// Room taken in the pipeline, given back once the frame's result or dead letter is acknowledged.
    pub permit: OwnedSemaphorePermit,
}

/// A decoded frame on its way to inference.
pub(crate) struct PreparedJob {
    pub job: Job,
    /// The Frame without its image (decoded into `prepared`), for the fields its Detections copies.
    pub frame: framewire_proto::Frame,
    /// The model input; `None` for a frame found stale before decoding, which travels on all the same so
    /// that its record leaves the inference stage in its place among the partition's frames.
    pub prepared: Option<Prepared>,
    /// When the preprocess stage took it, before decoding (Unix µs): the time from here to the model call,
    /// decoding included, is what that stage counts on with `--max-frame-age`.
    pub taken_us: i64,
}

/// What the output stage publishes for a job.
pub(crate) enum Outcome {
    Detected { ticket: Ticket, detections: Detections, permit: OwnedSemaphorePermit },
    Dead { job: Job, reason: String, kind: &'static str },
}

/// Decodes and prepares frames until `jobs` closes or a later stage is gone. With `freshness`, a frame
/// that will be stale by its turn is passed on undecoded.
pub(crate) fn preprocess_stage(
    mut pre: Preprocessor,
    freshness: Option<Freshness>,
    mut jobs: mpsc::Receiver<Job>,
    prepared: mpsc::Sender<PreparedJob>,
    out: mpsc::Sender<Outcome>,
) {
    while let Some(job) = jobs.blocking_recv() {
        let mut frame = match framewire_proto::decode_frame(&job.payload) {
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
        // The JPEG is not needed past this point: the window of frames waiting for inference stays small.
        let image = std::mem::take(&mut frame.image);
        let taken_us = now_us();
        let prepared_image =
            if freshness.as_ref().is_some_and(|f| f.stale_by_its_turn(taken_us, crate::freshness::born_ms(&frame))) {
                None
            } else {
                match pre.prepare(&image) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        let reason = format!("camera {} seq {}: {e}", frame.camera_id, frame.seq);
                        if out.blocking_send(Outcome::Dead { job, reason, kind: "bad_image" }).is_err() {
                            return;
                        }
                        continue;
                    }
                }
            };
        let ready = PreparedJob { job, frame, prepared: prepared_image, taken_us };
        if prepared.blocking_send(ready).is_err() {
            return;
        }
    }
}
