//! Opening a source with FFmpeg and decoding its best video stream, reporting damage instead of hiding it:
//! ffmpeg-next's packet iterator silently skips read errors, so packets are read one by one here.

use std::path::Path;

use ffmpeg::format::context::Input;
use ffmpeg::frame::Video as VideoFrame;
use ffmpeg::media::Type;
use ffmpeg_next as ffmpeg;
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
    /// Stream time of the last decoded frame.
    pub last_t_us: Option<i64>,
}

/// An open video source.
pub struct VideoSource {
    input: Input,
    decoder: ffmpeg::decoder::Video,
    stream_index: usize,
    time_base: ffmpeg::Rational,
    start_pts: Option<i64>,
    frame_interval_us: i64,
    pub info: SourceInfo,
    pub stats: DecodeStats,
}

/// Strips `user:password@` from URLs so credentials never reach logs or messages.
pub fn redact(uri: &str) -> String {
    if let Some((scheme, rest)) = uri.split_once("://") {
        let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        if let Some((_, host)) = authority.rsplit_once('@') {
            let sep = if rest.contains('/') { "/" } else { "" };
            return format!("{scheme}://{host}{sep}{path}");
        }
    }
    uri.to_string()
}

fn is_url(s: &str) -> bool {
    s.contains("://")
}

impl VideoSource {
    /// Opens `source` (a path or any URL FFmpeg reads) and prepares a decoder for its best video stream.
    pub fn open(source: &str) -> Result<Self> {
        ffmpeg::init().map_err(|e| Error::Open { source_uri: redact(source), reason: e.to_string() })?;
        // FFmpeg's warnings (e.g. swscale's note on yuvj formats) are noise next to our own logs; its errors
        // still print, since they name the damage precisely.
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Error);
        let uri = redact(source);
        if !is_url(source) && !Path::new(source).exists() {
            return Err(Error::NotFound(source.into()));
        }
        let input = ffmpeg::format::input(source).map_err(|e| Error::Open {
            source_uri: uri.clone(),
            reason: match e {
                ffmpeg::Error::InvalidData => {
                    "not a video FFmpeg can read, or cut short before its index (an MP4 still being written?)".into()
                }
                e => e.to_string(),
            },
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
        // Frame threading: decoding is the costliest part of ingest, and FFmpeg parallelises it well.
        ctx.set_threading(ffmpeg::codec::threading::Config::kind(ffmpeg::codec::threading::Type::Frame));
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
            info,
            stats: Default::default(),
        })
    }

    /// Decodes every frame, calling `on_frame(frame, stream_time_us)`; returning `false` stops early.
    /// Frames decoded before a read error are delivered before the error is returned.
    pub fn run(&mut self, mut on_frame: impl FnMut(&VideoFrame, i64) -> Result<bool>) -> Result<End> {
        let mut packet = ffmpeg::Packet::empty();
        let mut frame = VideoFrame::empty();
        let mut read_error = None;
        loop {
            match packet.read(&mut self.input) {
                Ok(()) => {}
                Err(ffmpeg::Error::Eof) => break,
                Err(e) => {
                    read_error = Some(e.to_string());
                    break;
                }
            }
            if packet.stream() != self.stream_index {
                continue;
            }
            if let Err(e) = self.decoder.send_packet(&packet) {
                self.stats.bad_packets += 1;
                warn!(source = %self.info.uri, error = %e, "damaged packet skipped");
                continue;
            }
            if !self.drain(&mut frame, &mut on_frame)? {
                return Ok(End::Stopped);
            }
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

    fn drain(
        &mut self,
        frame: &mut VideoFrame,
        on_frame: &mut impl FnMut(&VideoFrame, i64) -> Result<bool>,
    ) -> Result<bool> {
        while self.decoder.receive_frame(frame).is_ok() {
            let t_us = self.stream_time_us(frame);
            self.stats.frames += 1;
            self.stats.last_t_us = Some(t_us);
            if !on_frame(frame, t_us)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn stream_time_us(&mut self, frame: &VideoFrame) -> i64 {
        match frame.timestamp().or(frame.pts()) {
            Some(ts) => {
                let start = *self.start_pts.get_or_insert(ts);
                rescale_us(ts - start, self.time_base)
            }
            // No timestamps at all (raw streams): assume the nominal rate.
            None => self.stats.frames as i64 * self.frame_interval_us,
        }
    }

    /// A stream that stops well before its declared duration was cut short. The demuxer reports that as a
    /// plain end of file, so it is checked here.
    fn check_complete(&self) -> Result<()> {
        let (Some(declared), Some(last)) = (self.info.duration_us, self.stats.last_t_us) else { return Ok(()) };
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

fn rescale_us(ts: i64, tb: ffmpeg::Rational) -> i64 {
    (i128::from(ts) * i128::from(tb.numerator()) * 1_000_000 / i128::from(tb.denominator().max(1))) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(redact("rtsp://admin:secret@10.0.0.5:554/stream1"), "rtsp://10.0.0.5:554/stream1");
        assert_eq!(redact("rtsp://10.0.0.5/s"), "rtsp://10.0.0.5/s");
        assert_eq!(redact("http://u:p@host"), "http://host");
        assert_eq!(redact("/videos/a@b.mp4"), "/videos/a@b.mp4");
    }

    #[test]
    fn rescales_time_base() {
        assert_eq!(rescale_us(1001, ffmpeg::Rational::new(1, 30000)), 33_366);
        assert_eq!(rescale_us(90_000, ffmpeg::Rational::new(1, 90_000)), 1_000_000);
    }
}
