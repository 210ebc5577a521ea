//! Opening a source with FFmpeg and decoding its best video stream, reporting damage instead of hiding it:
//! ffmpeg-next's packet iterator silently skips read errors, so packets are read one by one here.
//!
//! Every source is opened with an interrupt callback (the [`Watchdog`]): FFmpeg polls it inside blocking
//! network reads, which is the only way to stop a read from a camera that went silent without closing the
//! connection, and to make Ctrl-C immediate while a read is blocked.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ffmpeg::format::context::Input;
use ffmpeg::frame::Video as VideoFrame;
use ffmpeg::media::Type;
use ffmpeg_next as ffmpeg;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::{Error, Result};

/// What is known about a source once it is open.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    /// The source as given, with any credentials removed.
    pub uri: String,
    pub width: u32,
    pub height: u32,
    /// Declared duration, if the container states one (files do, live streams do not).
    pub duration_us: Option<i64>,
    /// Average frame rate, if known.
    pub fps: Option<f64>,
    pub codec: String,
}

/// How decoding ended.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// Reached the end of the stream.
    Eof,
    /// The callback asked to stop (shutdown).
    Stopped,
}

/// Per-stream counters kept while decoding.
#[derive(Debug, Default, Clone)]
pub struct DecodeStats {
    pub frames: u64,
    /// Packets the decoder rejected (damaged data); decoding goes on after them.
    pub bad_packets: u64,
    /// Video packets the decoder accepted: one frame each for the codecs cameras use.
    pub packets: u64,
    /// Stream time of the last decoded frame.
    pub last_t_us: Option<i64>,
    /// Latest stream time the demuxer delivered (frames may be skipped, e.g. keyframes only).
    pub last_packet_t_us: Option<i64>,
}

/// Aborts FFmpeg I/O that makes no progress for `limit`, or at once when shutdown is requested.
pub struct Watchdog {
    epoch: Instant,
    /// Milliseconds since `epoch` at the start of the current read.
    last_ms: AtomicU64,
    /// Zero disables the stall check (files: a slow disk is not a dead camera).
    limit_ms: u64,
    cancel: CancellationToken,
    tripped: AtomicBool,
}

impl Watchdog {
    pub fn new(limit: Option<Duration>, cancel: CancellationToken) -> Arc<Self> {
        Arc::new(Watchdog {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
            limit_ms: limit.map_or(0, |l| l.as_millis().max(1) as u64),
            cancel,
            tripped: AtomicBool::new(false),
        })
    }

    /// Starts the stall clock again: called before each read, so time spent pacing or waiting for the
    /// producer is not mistaken for a silent camera.
    pub fn touch(&self) {
        self.last_ms.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// FFmpeg's interrupt callback: true aborts the blocked operation.
    fn should_abort(&self) -> bool {
        if self.cancel.is_cancelled() {
            return true;
        }
        if self.limit_ms > 0 {
            let idle = (self.epoch.elapsed().as_millis() as u64).saturating_sub(self.last_ms.load(Ordering::Relaxed));
            if idle > self.limit_ms {
                self.tripped.store(true, Ordering::Relaxed);
                return true;
            }
        }
        false
    }

    fn stalled(&self) -> bool {
        self.tripped.load(Ordering::Relaxed) && !self.cancel.is_cancelled()
    }

    fn limit(&self) -> Duration {
        Duration::from_millis(self.limit_ms)
    }
}

/// How to open a source.
pub struct OpenOptions {
    /// FFmpeg demuxer/protocol options, as `-key value` on the FFmpeg command line.
    pub options: BTreeMap<String, String>,
    pub watchdog: Arc<Watchdog>,
    /// Decode only keyframes: a fraction of the CPU for sources sampled far below their frame rate.
    pub keyframes_only: bool,
    /// Hand each picture over as soon as it is decoded (live sources): see [`VideoSource::open`].
    pub low_delay: bool,
}

/// An open video source.
pub struct VideoSource {
    input: Input,
    decoder: ffmpeg::decoder::Video,
    stream_index: usize,
    time_base: ffmpeg::Rational,
    start_pts: Option<i64>,
    frame_interval_us: i64,
    watchdog: Arc<Watchdog>,
    keyframes_only: bool,
    pub info: SourceInfo,
    pub stats: DecodeStats,
}

/// A decoded frame's times.
#[derive(Debug, Clone, Copy)]
pub struct FrameTime {
    /// Stream time from the first frame, µs.
    pub stream_us: i64,
    /// Wall-clock capture time from the camera's own clock (RTCP sender reports), Unix µs, when the
    /// source provides one.
    pub camera_clock_us: Option<i64>,
}

fn is_url(s: &str) -> bool {
    s.contains("://")
}

/// Initialises FFmpeg once: formats, devices (V4L2 webcams) and the log level.
pub fn init() -> Result<()> {
    static INIT: std::sync::OnceLock<std::result::Result<(), String>> = std::sync::OnceLock::new();
    INIT.get_or_init(|| {
        ffmpeg::init().map_err(|e| e.to_string())?;
        ffmpeg::device::register_all();
        // FFmpeg's warnings (e.g. swscale's note on yuvj formats) are noise next to our own logs; its errors
        // still print, since they name the damage precisely.
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Error);
        Ok(())
    })
    .clone()
    .map_err(|reason| Error::Open { source_uri: String::new(), reason })
}

impl DecodeStats {
    /// Frames lost to damaged data: packets the decoder rejected, plus packets it took but produced no
    /// picture for (frame-threaded decoders report damage only that way).
    pub fn damaged(&self) -> u64 {
        self.bad_packets + self.packets.saturating_sub(self.frames)
    }
}

impl VideoSource {
    /// Opens `source` (a path or any URL FFmpeg reads) and prepares a decoder for its best video stream.
    pub fn open(source: &str, opts: OpenOptions) -> Result<Self> {
        init()?;
        // Credentials (`user:password@`, `?token=`) never reach logs, errors or published frames.
        let uri = framewire_common::redact::url(source).into_owned();
        if !is_url(source) && !Path::new(source).exists() {
            return Err(Error::NotFound(source.into()));
        }
        if !is_url(source) && std::fs::metadata(source).is_ok_and(|m| m.is_file() && m.len() == 0) {
            return Err(Error::Open { source_uri: uri, reason: "the file is empty (0 bytes)".into() });
        }
        let mut dict = ffmpeg::Dictionary::new();
        for (k, v) in &opts.options {
            dict.set(k, v);
        }
        let watchdog = opts.watchdog.clone();
        watchdog.touch();
        let input = ffmpeg::format::input_with_interrupt_and_dictionary(source, move || watchdog.should_abort(), dict)
            .map_err(|e| {
                if opts.watchdog.stalled() {
                    return Error::Stalled { source_uri: uri.clone(), after_s: opts.watchdog.limit().as_secs_f64() };
                }
                Error::Open {
                    source_uri: uri.clone(),
                    reason: match e {
                        ffmpeg::Error::InvalidData => {
                            "not a video FFmpeg can read, or cut short before its index (an MP4 still being written?)"
                                .into()
                        }
                        ffmpeg::Error::Exit => "interrupted".into(),
                        e => e.to_string(),
                    },
                }
            })?;
        let stream = input.streams().best(Type::Video).ok_or_else(|| Error::NoVideo(uri.clone()))?;
        let stream_index = stream.index();
        let time_base = stream.time_base();
        let start = stream.start_time();
        let start_pts = (start != ffmpeg::ffi::AV_NOPTS_VALUE).then_some(start);
        let rate = stream.avg_frame_rate();
        let fps = (rate.numerator() > 0 && rate.denominator() > 0).then(|| f64::from(rate));
        let mut ctx = ffmpeg::codec::context::Context::from_parameters(stream.parameters())
            .map_err(|e| Error::Decoder { source_uri: uri.clone(), reason: e.to_string() })?;
        // Frame threading decodes several pictures at once, which files want (decoding is the costliest part
        // of ingest) but which holds every picture back by (threads - 1) frame intervals: 80 ms at 25 fps on
        // 2 cores, measured as most of a live camera's capture-to-decoded time. Live sources get slice
        // threading (parallel within a picture, where the camera encodes slices) and no reordering delay, up
        // to 1080p: most cameras encode one slice per picture, which slice threading decodes on one core, and
        // a larger picture at 25-30 fps is more than one core is sure to keep up with.
        let kind = if opts.low_delay && coded_pixels(&ctx) <= LOW_DELAY_MAX_PIXELS {
            ctx.set_flags(ffmpeg::codec::Flags::LOW_DELAY);
            ffmpeg::codec::threading::Type::Slice
        } else {
            ffmpeg::codec::threading::Type::Frame
        };
        ctx.set_threading(ffmpeg::codec::threading::Config::kind(kind));
        let decoder =
            ctx.decoder().video().map_err(|e| Error::Decoder { source_uri: uri.clone(), reason: e.to_string() })?;
        let container_us = input.duration();
        let stream_us = if stream.duration() > 0 { Some(rescale_us(stream.duration(), time_base)) } else { None };
        let duration_us = if container_us > 0 { Some(container_us) } else { stream_us };
        let info = SourceInfo {
            uri,
            width: decoder.width(),
            height: decoder.height(),
            duration_us,
            fps,
            codec: decoder.codec().map(|c| c.name().to_string()).unwrap_or_else(|| "unknown".into()),
        };
        if info.width == 0 || info.height == 0 {
            return Err(Error::Decoder { source_uri: info.uri, reason: "video stream has no dimensions".into() });
        }
        debug!(?info, "source opened");
        let frame_interval_us = fps.map_or(40_000, |f| (1_000_000.0 / f) as i64);
        Ok(VideoSource {
            input,
            decoder,
            stream_index,
            time_base,
            start_pts,
            frame_interval_us,
            watchdog: opts.watchdog,
            keyframes_only: opts.keyframes_only,
            info,
            stats: Default::default(),
        })
    }

    /// Decodes every frame, calling `on_frame(frame, time)`; returning `false` stops early.
    /// Frames decoded before a read error are delivered before the error is returned.
    pub fn run(&mut self, mut on_frame: impl FnMut(&VideoFrame, FrameTime) -> Result<bool>) -> Result<End> {
        let mut packet = ffmpeg::Packet::empty();
        let mut frame = VideoFrame::empty();
        let mut read_error = None;
        // A live stream can keep sending packets (audio, RTCP) without video: that is a stall too.
        let mut last_frame = Instant::now();
        let stall = self.watchdog.limit();
        loop {
            self.watchdog.touch();
            match packet.read(&mut self.input) {
                Ok(()) => {}
                Err(ffmpeg::Error::Eof) => break,
                Err(_) if self.watchdog.cancel.is_cancelled() => return Ok(End::Stopped),
                Err(e) => {
                    read_error = Some(e.to_string());
                    break;
                }
            }
            if packet.stream() != self.stream_index {
                if !stall.is_zero() && last_frame.elapsed() > stall {
                    return Err(self.stalled_error());
                }
                continue;
            }
            if let Some(pts) = packet.pts() {
                let t = rescale_us(pts - self.start_pts.unwrap_or(pts), self.time_base);
                self.stats.last_packet_t_us = Some(self.stats.last_packet_t_us.map_or(t, |l| l.max(t)));
            }
            if self.keyframes_only && !packet.is_key() {
                continue;
            }
            if let Err(e) = self.decoder.send_packet(&packet) {
                self.stats.bad_packets += 1;
                warn!(source = %self.info.uri, error = %e, "damaged packet skipped");
                continue;
            }
            self.stats.packets += 1;
            let before = self.stats.frames;
            if !self.drain(&mut frame, &mut on_frame)? {
                return Ok(End::Stopped);
            }
            if self.stats.frames > before {
                last_frame = Instant::now();
            } else if !stall.is_zero() && last_frame.elapsed() > stall {
                return Err(self.stalled_error());
            }
        }
        if self.watchdog.stalled() {
            return Err(self.stalled_error());
        }
        // Flush the frames the decoder still holds (frame threading delays output by a few frames).
        if self.decoder.send_eof().is_ok() && !self.drain(&mut frame, &mut on_frame)? {
            return Ok(End::Stopped);
        }
        if let Some(reason) = read_error {
            return Err(Error::Read { source_uri: self.info.uri.clone(), frames: self.stats.frames, reason });
        }
        self.check_complete()?;
        Ok(End::Eof)
    }

    fn stalled_error(&self) -> Error {
        Error::Stalled { source_uri: self.info.uri.clone(), after_s: self.watchdog.limit().as_secs_f64() }
    }

    fn drain(
        &mut self,
        frame: &mut VideoFrame,
        on_frame: &mut impl FnMut(&VideoFrame, FrameTime) -> Result<bool>,
    ) -> Result<bool> {
        while self.decoder.receive_frame(frame).is_ok() {
            let time = self.frame_time(frame);
            self.stats.frames += 1;
            self.stats.last_t_us = Some(time.stream_us);
            if !on_frame(frame, time)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn frame_time(&mut self, frame: &VideoFrame) -> FrameTime {
        match frame.timestamp().or(frame.pts()) {
            Some(ts) => {
                let start = *self.start_pts.get_or_insert(ts);
                let camera_clock_us = start_time_realtime(&self.input).map(|t0| t0 + rescale_us(ts, self.time_base));
                FrameTime { stream_us: rescale_us(ts - start, self.time_base), camera_clock_us }
            }
            // No timestamps at all (raw streams): assume the nominal rate.
            None => FrameTime { stream_us: self.stats.frames as i64 * self.frame_interval_us, camera_clock_us: None },
        }
    }

    /// A stream that stops well before its declared duration was cut short. The demuxer reports that as a
    /// plain end of file, so it is checked here.
    fn check_complete(&self) -> Result<()> {
        let last = self.stats.last_t_us.max(self.stats.last_packet_t_us);
        let (Some(declared), Some(last)) = (self.info.duration_us, last) else { return Ok(()) };
        let ended = last + self.frame_interval_us;
        // Containers round durations and audio may outlast video: allow half a second or 3 frames.
        let slack = (3 * self.frame_interval_us).max(500_000);
        if ended + slack < declared {
            return Err(Error::Truncated {
                source_uri: self.info.uri.clone(),
                ended_s: ended as f64 / 1e6,
                declared_s: declared as f64 / 1e6,
                frames: self.stats.frames,
            });
        }
        Ok(())
    }
}

/// The largest picture (1920x1088, 1080p as coded) decoded with low delay; see [`VideoSource::open`].
const LOW_DELAY_MAX_PIXELS: i64 = 1920 * 1088;

/// Width x height of the stream a codec context was made for (from the stream's parameters, before the
/// decoder opens). ffmpeg-next has no accessor for these before then.
#[allow(unsafe_code)]
fn coded_pixels(ctx: &ffmpeg::codec::context::Context) -> i64 {
    // SAFETY: `ctx` owns a live AVCodecContext filled from the stream's parameters; reading two plain
    // integer fields of it, on the thread that owns it.
    let (w, h) = unsafe { ((*ctx.as_ptr()).width, (*ctx.as_ptr()).height) };
    i64::from(w) * i64::from(h)
}

/// The wall-clock time (Unix µs) of stream time zero, which FFmpeg's RTSP demuxer derives from the camera's
/// first RTCP sender report. ffmpeg-next has no accessor for this field.
#[allow(unsafe_code)]
fn start_time_realtime(input: &Input) -> Option<i64> {
    // SAFETY: `input` owns a live AVFormatContext for as long as the borrow lasts; reading a plain integer
    // field of it does not race with FFmpeg, which only writes it from the reading thread (this one).
    let t = unsafe { (*input.as_ptr()).start_time_realtime };
    (t != ffmpeg::ffi::AV_NOPTS_VALUE && t > 0).then_some(t)
}

fn rescale_us(ts: i64, tb: ffmpeg::Rational) -> i64 {
    (i128::from(ts) * i128::from(tb.numerator()) * 1_000_000 / i128::from(tb.denominator().max(1))) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescales_time_base() {
        assert_eq!(rescale_us(1001, ffmpeg::Rational::new(1, 30000)), 33_366);
        assert_eq!(rescale_us(90_000, ffmpeg::Rational::new(1, 90_000)), 1_000_000);
    }
}
