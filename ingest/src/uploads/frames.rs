//! One fetched object decoded into `Frame`s, on a blocking thread: FFmpeg opens the bytes from a temporary
//! file, `--fps` samples a video, JPEG encoding fits each frame into a message, and every frame gets the seq
//! the object's identity gives it (see [`seq`]), so a redelivered notification republishes the same seqs.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use framewire_common::time::now_us;
use framewire_proto::{CaptureClock, Encoding, Frame, SCHEMA_VERSION, SourceObject, StageTimes};

use crate::Error;
use crate::decode::{End, OpenOptions, VideoSource, Watchdog};
use crate::events::{FrameDecoded, FrameEncoded, FrameShrunk, FrameTooLarge};
use crate::jpeg::JpegEncoder;
use crate::metrics::Metrics;
use crate::sample::FpsSampler;

/// Frames one object may publish: the seq leaves 12 bits for the frame index.
pub const MAX_FRAMES: u32 = 1 << 12;

/// The seq of frame `frame_index` of an object: `event_time_ms * 2^20 + (FNV-1a(identity) mod 2^8) * 2^12 +
/// frame_index` (framewire.proto, `SourceObject`). The time keeps a camera's objects in upload order; the
/// hash keeps two objects uploaded in the same millisecond apart.
pub fn seq(event_time_ms: i64, identity: &str, frame_index: u32) -> u64 {
    // 44 bits of milliseconds reach the year 2527.
    let time = (event_time_ms.max(0) as u64) & ((1 << 44) - 1);
    (time << 20) | ((fnv1a(identity.as_bytes()) & 0xff) << 12) | u64::from(frame_index.min(MAX_FRAMES - 1))
}

/// 64-bit FNV-1a: a fixed, documented hash, so any reader can recompute a seq.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// What the decoder needs to know about one object.
pub struct Job {
    pub camera: Arc<str>,
    /// `s3://bucket/key`, for frames and messages.
    pub uri: String,
    /// The object's fields, `frame_index` 0.
    pub object: SourceObject,
    /// `bucket/key/version-or-etag`: what the seqs are derived from.
    pub identity: String,
    pub fps: Option<f64>,
    pub keyframes_only: bool,
    pub options: std::collections::BTreeMap<String, String>,
    pub jpeg_quality: u8,
    pub max_image_bytes: usize,
    pub shutdown: CancellationToken,
    pub metrics: Metrics,
}

/// How decoding an object went.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Frames handed to the producer.
    pub frames: u32,
    /// Pictures the decoder produced.
    pub pictures: u64,
    /// Sampled frames past [`MAX_FRAMES`], not published.
    pub over_limit: u64,
    /// Shutdown (or the receiver going away) stopped decoding part way.
    pub stopped: bool,
    /// Why the object could not be decoded (or not to its end), with its `s3://` name in the message.
    pub error: Option<Error>,
}

/// Decodes the object in `path`, sending each frame to `frames` (bounded: waits while the producer is
/// behind).
pub fn decode(job: &Job, path: &Path, frames: &mpsc::Sender<Frame>) -> Decoded {
    let mut out = Decoded::default();
    let path_str = path.to_string_lossy().into_owned();
    // FFmpeg's messages name the file it read: name the object instead.
    let named = |e: Error| rename(e, &path_str, &job.uri);
    let opts = OpenOptions {
        options: job.options.clone(),
        watchdog: Watchdog::new(None, job.shutdown.clone()),
        keyframes_only: job.keyframes_only,
        low_delay: false,
    };
    let mut source = match VideoSource::open(&path_str, opts) {
        Ok(s) => s,
        Err(e) => {
            out.error = Some(named(e));
            return out;
        }
    };
    let mut encoder = match JpegEncoder::new(job.jpeg_quality) {
        Ok(e) => e,
        Err(e) => {
            out.error = Some(e);
            return out;
        }
    };
    let mut sampler = FpsSampler::new(job.fps);
    let mut index: u32 = 0;
    let (camera, metrics) = (&*job.camera, &job.metrics);
    let end = source.run(|picture, time| {
        out.pictures += 1;
        FrameDecoded { camera }.emit(metrics);
        if job.shutdown.is_cancelled() {
            return Ok(false);
        }
        if !sampler.keep(time.stream_us) {
            return Ok(true);
        }
        if index >= MAX_FRAMES {
            // Decoding goes on only to count what is left out, for the message that says to lower --fps.
            out.over_limit += 1;
            return Ok(true);
        }
        let frame_index = index;
        index += 1;
        let seq = seq(job.object.event_time_ms, &job.identity, frame_index);
        let (decoded_us, started) = (now_us(), Instant::now());
        let encoded = match encoder.encode_within(picture, job.max_image_bytes) {
            Ok(e) => e,
            Err(error @ Error::TooLarge { .. }) => {
                // Its frame index stays unused: the gap in seq shows the loss.
                FrameTooLarge { camera, seq, error: &error }.emit(metrics);
                return Ok(true);
            }
            Err(e) => return Err(e),
        };
        let encoded_us = now_us();
        if let Some(how) = encoded.shrunk {
            FrameShrunk { camera, seq, how, height: encoded.height, limit: job.max_image_bytes }.emit(metrics);
        }
        let took = started.elapsed();
        FrameEncoded { camera, bytes: encoded.data.len(), took, since_decoded: took }.emit(metrics);
        let frame = Frame {
            schema_version: SCHEMA_VERSION,
            camera_id: job.camera.to_string(),
            seq,
            capture_time_ms: job.object.event_time_ms + time.stream_us / 1000,
            stream_time_us: time.stream_us,
            width: encoded.width,
            height: encoded.height,
            encoding: Encoding::Jpeg as i32,
            image: encoded.data,
            source_uri: job.uri.clone(),
            // The time is the upload's, from the storage server's clock: neither ingest's nor a camera's.
            capture_clock: CaptureClock::Unspecified as i32,
            object: Some(SourceObject { frame_index, ..job.object.clone() }),
            stage_times: Some(StageTimes { decoded_us, encoded_us, ..StageTimes::default() }),
            // Uploads are not gated: every sampled frame of an object is published.
            unchanged_before: 0,
            keepalive: false,
        };
        if frames.blocking_send(frame).is_err() {
            return Ok(false);
        }
        out.frames += 1;
        Ok(true)
    });
    match end {
        Ok(End::Eof) => {}
        Ok(End::Stopped) => out.stopped = true,
        Err(e) => out.error = Some(named(e)),
    }
    if out.pictures == 0 && out.error.is_none() && !out.stopped {
        out.error = Some(Error::Decoder { source_uri: job.uri.clone(), reason: "no picture decoded".into() });
    }
    out
}

/// `e` with the temporary file's path replaced by the object's name.
fn rename(e: Error, path: &str, uri: &str) -> Error {
    let fix = |s: String| s.replace(path, uri);
    match e {
        Error::NotFound(_) => {
            Error::Open { source_uri: uri.to_string(), reason: "the downloaded copy vanished".into() }
        }
        Error::Open { source_uri, reason } => Error::Open { source_uri: fix(source_uri), reason: fix(reason) },
        Error::NoVideo(s) => Error::NoVideo(fix(s)),
        Error::Decoder { source_uri, reason } => Error::Decoder { source_uri: fix(source_uri), reason: fix(reason) },
        Error::Read { source_uri, frames, reason } => Error::Read { source_uri: fix(source_uri), frames, reason },
        Error::Truncated { source_uri, ended_s, declared_s, frames } => {
            Error::Truncated { source_uri: fix(source_uri), ended_s, declared_s, frames }
        }
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_layout_follows_the_schema() {
        let t = 1_715_342_400_123;
        let id = "uploads/front/a.jpg/etag1";
        let s = seq(t, id, 0);
        assert_eq!(s >> 20, t as u64, "time in the top bits");
        assert_eq!((s >> 12) & 0xff, fnv1a(id.as_bytes()) & 0xff);
        assert_eq!(seq(t, id, 7), s + 7);
        assert_eq!(seq(t, id, 0), s, "the same object gets the same seqs");
        assert!(seq(t + 1, "other", 0) > seq(t, id, MAX_FRAMES - 1), "later uploads sort after");
    }

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
