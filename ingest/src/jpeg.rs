//! JPEG encoding with libjpeg-turbo straight from YUV planes: no RGB round trip. Limited-range 4:2:0 (what
//! most cameras and files send) has its range expanded here, in one vectorised pass, so colours match what
//! an RGB pipeline (OpenCV) would produce; other pixel formats go through swscale to full-range 4:2:0.

use ffmpeg_next::format::Pixel;
use ffmpeg_next::frame::Video as VideoFrame;
use ffmpeg_next::software::scaling::{Context as Scaler, Flags};

use crate::{Error, Result};

/// Reusable encoder: the compressor and the conversion context are built once per stream.
pub struct JpegEncoder {
    compressor: turbojpeg::Compressor,
    scaler: Option<(Scaler, VideoFrame)>,
    expanded: Expanded,
    quality: u8,
}

/// A JPEG that fits the message size limit.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub data: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// How it was made to fit, if the first encoding was too large.
    pub shrunk: Option<Shrink>,
}

/// What was given up to fit a frame into one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shrink {
    /// Re-encoded at this lower quality, full resolution.
    Quality(u8),
    /// Downscaled to this width (and quality [`DOWNSCALED_QUALITY`]).
    Downscaled(u32),
}

/// Lower qualities tried before giving up resolution: a detector needs pixels more than fine texture.
const FALLBACK_QUALITIES: [u8; 3] = [60, 40, 25];
const DOWNSCALED_QUALITY: u8 = 40;
/// Below this width a frame is useless for detection: report it instead of shrinking further.
pub const MIN_WIDTH: u32 = 64;

impl JpegEncoder {
    pub fn new(quality: u8) -> Result<Self> {
        let quality = quality.clamp(1, 100);
        let mut compressor = turbojpeg::Compressor::new().map_err(|e| Error::Jpeg(e.to_string()))?;
        compressor.set_quality(i32::from(quality)).map_err(|e| Error::Jpeg(e.to_string()))?;
        Ok(JpegEncoder { compressor, scaler: None, expanded: Expanded::default(), quality })
    }

    fn use_quality(&mut self, quality: u8) -> Result<()> {
        self.compressor.set_quality(i32::from(quality.clamp(1, 100))).map_err(|e| Error::Jpeg(e.to_string()))
    }

    /// Encodes `frame` in at most `limit` bytes: at the configured quality if it fits, else at lower
    /// qualities, else downscaled by halves. A frame is never silently dropped for its size: if even the
    /// smallest useful size does not fit, that is an error the caller counts and logs.
    pub fn encode_within(&mut self, frame: &VideoFrame, limit: usize) -> Result<Encoded> {
        let (width, height) = (frame.width(), frame.height());
        let data = self.encode(frame)?;
        if data.len() <= limit {
            return Ok(Encoded { data, width, height, shrunk: None });
        }
        let configured = self.quality;
        let mut fitted = None;
        for q in FALLBACK_QUALITIES.into_iter().filter(|q| *q < configured) {
            self.use_quality(q)?;
            let data = self.encode(frame);
            if let Ok(data) = &data
                && data.len() <= limit
            {
                fitted = Some(Encoded { data: data.clone(), width, height, shrunk: Some(Shrink::Quality(q)) });
                break;
            }
            data?;
        }
        if fitted.is_none() {
            fitted = self.downscale_within(frame, limit)?;
        }
        self.use_quality(configured)?;
        fitted.ok_or(Error::TooLarge { width, height, limit, min_width: MIN_WIDTH })
    }

    fn downscale_within(&mut self, frame: &VideoFrame, limit: usize) -> Result<Option<Encoded>> {
        self.use_quality(DOWNSCALED_QUALITY.min(self.quality))?;
        let (mut w, mut h) = (frame.width(), frame.height());
        while w / 2 >= MIN_WIDTH {
            // 4:2:0 needs even sizes.
            w = (w / 2) & !1;
            h = ((h / 2) & !1).max(2);
            let mut scaler =
                Scaler::get(frame.format(), frame.width(), frame.height(), Pixel::YUVJ420P, w, h, Flags::AREA)
                    .map_err(|e| Error::Scale(e.to_string()))?;
            let mut out = VideoFrame::empty();
            scaler.run(frame, &mut out).map_err(|e| Error::Scale(e.to_string()))?;
            let data = compress_yuv420(&mut self.compressor, &out)?;
            if data.len() <= limit {
                return Ok(Some(Encoded { data, width: w, height: h, shrunk: Some(Shrink::Downscaled(w)) }));
            }
        }
        Ok(None)
    }

    /// Encodes a decoded frame of any pixel format.
    pub fn encode(&mut self, frame: &VideoFrame) -> Result<Vec<u8>> {
        let full_range = frame.format() == Pixel::YUVJ420P
            || (frame.format() == Pixel::YUV420P && frame.color_range() == ffmpeg_next::color::Range::JPEG);
        if full_range {
            return compress_yuv420(&mut self.compressor, frame);
        }
        if frame.format() == Pixel::YUV420P {
            // swscale's range conversion takes longer than the JPEG encoding itself; this pass is ~10x faster.
            let (w, h) = (frame.width() as usize, frame.height() as usize);
            let planes = self.expanded.fill(frame, w, h);
            return compress_planes(&mut self.compressor, planes, w, h);
        }
        let (w, h, fmt) = (frame.width(), frame.height(), frame.format());
        let stale = match &self.scaler {
            Some((s, _)) => s.input().format != fmt || s.input().width != w || s.input().height != h,
            None => true,
        };
        if stale {
            let s = Scaler::get(fmt, w, h, Pixel::YUVJ420P, w, h, Flags::BILINEAR)
                .map_err(|e| Error::Scale(e.to_string()))?;
            self.scaler = Some((s, VideoFrame::empty()));
        }
        let Some((scaler, out)) = self.scaler.as_mut() else { unreachable!("scaler was just set") };
        scaler.run(frame, out).map_err(|e| Error::Scale(e.to_string()))?;
        compress_yuv420(&mut self.compressor, out)
    }
}

fn compress_yuv420(c: &mut turbojpeg::Compressor, f: &VideoFrame) -> Result<Vec<u8>> {
    let (w, h) = (f.width() as usize, f.height() as usize);
    let (y_plane, y_stride) = luma_padded_to_even(f.data(0), f.stride(0), w, h);
    let planes = [(y_plane.as_ref(), y_stride), (f.data(1), f.stride(1)), (f.data(2), f.stride(2))];
    compress_planes(c, planes, w, h)
}

fn compress_planes(c: &mut turbojpeg::Compressor, planes: [(&[u8], usize); 3], w: usize, h: usize) -> Result<Vec<u8>> {
    let image = turbojpeg::YuvPlanesImage {
        y_plane: planes[0].0,
        u_plane: planes[1].0,
        v_plane: planes[2].0,
        width: w,
        height: h,
        y_stride: planes[0].1,
        u_stride: planes[1].1,
        v_stride: planes[2].1,
        subsamp: turbojpeg::Subsamp::Sub2x2,
    };
    c.compress_yuv_planes_to_vec(&image).map_err(|e| Error::Jpeg(e.to_string()))
}

/// Full-range copies of a limited-range frame's planes, reused from frame to frame. The luma plane is padded
/// to even dimensions (see [`luma_padded_to_even`]).
#[derive(Default)]
struct Expanded {
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

/// Limited-range luma 16..235 to 0..255: (y - 16) * 255/219, as 149/128 in 16-bit lanes.
#[inline]
fn expand_luma(y: u8) -> u8 {
    ((u16::from(y.saturating_sub(16)) * 149 + 64) >> 7).min(255) as u8
}

/// Limited-range chroma 16..240 around 128 to 0..255: (c - 128) * 255/224, as 146/128.
#[inline]
fn expand_chroma(c: u8) -> u8 {
    ((((i16::from(c) - 128) * 146 + 64) >> 7) + 128).clamp(0, 255) as u8
}

impl Expanded {
    fn fill(&mut self, f: &VideoFrame, w: usize, h: usize) -> [(&[u8], usize); 3] {
        let (pw, ph) = (w.next_multiple_of(2), h.next_multiple_of(2));
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        self.y.resize(pw * ph, 0);
        self.u.resize(cw * ch, 0);
        self.v.resize(cw * ch, 0);
        let (src, stride) = (f.data(0), f.stride(0));
        for row in 0..ph {
            let s = &src[row.min(h - 1) * stride..][..w];
            let d = &mut self.y[row * pw..][..pw];
            for (d, s) in d.iter_mut().zip(s) {
                *d = expand_luma(*s);
            }
            if pw > w {
                d[w] = d[w - 1];
            }
        }
        for (plane, out) in [(1, &mut self.u), (2, &mut self.v)] {
            let (src, stride) = (f.data(plane), f.stride(plane));
            for row in 0..ch {
                for (d, s) in out[row * cw..][..cw].iter_mut().zip(&src[row * stride..][..cw]) {
                    *d = expand_chroma(*s);
                }
            }
        }
        [(&self.y, pw), (&self.u, cw), (&self.v, cw)]
    }
}

/// libjpeg-turbo reads 4:2:0 luma in 2x2 blocks, so an odd width or height needs one more column or row
/// than FFmpeg's plane holds (images often have odd sizes; video rarely does). Such planes are copied with
/// the last column and row repeated; even-sized planes are used in place.
fn luma_padded_to_even(plane: &[u8], stride: usize, w: usize, h: usize) -> (std::borrow::Cow<'_, [u8]>, usize) {
    let (pw, ph) = (w.next_multiple_of(2), h.next_multiple_of(2));
    if plane.len() >= stride * (ph - 1) + pw {
        return (std::borrow::Cow::Borrowed(plane), stride);
    }
    let mut out = vec![0u8; pw * ph];
    for y in 0..ph {
        let src = &plane[y.min(h - 1) * stride..][..w];
        let dst = &mut out[y * pw..][..pw];
        dst[..w].copy_from_slice(src);
        if pw > w {
            dst[w] = src[w - 1];
        }
    }
    (std::borrow::Cow::Owned(out), pw)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame of noise: the worst case for JPEG size.
    fn noise(w: u32, h: u32) -> VideoFrame {
        let mut f = VideoFrame::new(Pixel::YUV420P, w, h);
        let mut x: u32 = 12345;
        for plane in 0..3 {
            for b in f.data_mut(plane) {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                *b = (x >> 16) as u8;
            }
        }
        f
    }

    #[test]
    fn range_expansion_matches_the_standard_formula() {
        for v in 0..=255u8 {
            let want = ((f64::from(v) - 16.0) * 255.0 / 219.0).round().clamp(0.0, 255.0);
            assert!((f64::from(expand_luma(v)) - want).abs() <= 1.0, "luma {v}: {} vs {want}", expand_luma(v));
            let want = ((f64::from(v) - 128.0) * 255.0 / 224.0 + 128.0).round().clamp(0.0, 255.0);
            assert!((f64::from(expand_chroma(v)) - want).abs() <= 1.0, "chroma {v}: {} vs {want}", expand_chroma(v));
        }
        assert_eq!((expand_luma(16), expand_luma(235)), (0, 255));
    }

    #[test]
    fn the_fast_path_matches_swscale() {
        ffmpeg_next::init().unwrap();
        // A gradient, limited range: our expansion and swscale's must give the same picture.
        let (w, h) = (96u32, 64u32);
        let mut f = VideoFrame::new(Pixel::YUV420P, w, h);
        for plane in 0..3 {
            let stride = f.stride(plane);
            for (i, b) in f.data_mut(plane).iter_mut().enumerate() {
                *b = (16 + (i % stride) * 2 + (i / stride)) as u8;
            }
        }
        let ours = JpegEncoder::new(95).unwrap().encode(&f).unwrap();
        let mut scaled = VideoFrame::empty();
        Scaler::get(Pixel::YUV420P, w, h, Pixel::YUVJ420P, w, h, Flags::BILINEAR)
            .unwrap()
            .run(&f, &mut scaled)
            .unwrap();
        let theirs = JpegEncoder::new(95).unwrap().encode(&scaled).unwrap();
        let a = turbojpeg::decompress(&ours, turbojpeg::PixelFormat::RGB).unwrap();
        let b = turbojpeg::decompress(&theirs, turbojpeg::PixelFormat::RGB).unwrap();
        let worst = a.pixels.iter().zip(&b.pixels).map(|(x, y)| x.abs_diff(*y)).max().unwrap();
        assert!(worst <= 6, "pixels differ by up to {worst}");
    }

    #[test]
    fn odd_sized_pictures_encode() {
        ffmpeg_next::init().unwrap();
        let mut enc = JpegEncoder::new(80).unwrap();
        for (w, h) in [(641, 427), (640, 427), (33, 17)] {
            for fmt in [Pixel::YUVJ420P, Pixel::YUV420P] {
                let mut f = VideoFrame::new(fmt, w, h);
                for plane in 0..3 {
                    f.data_mut(plane).fill(128);
                }
                let jpeg = enc.encode(&f).unwrap();
                let img = turbojpeg::decompress(&jpeg, turbojpeg::PixelFormat::RGB).unwrap();
                assert_eq!((img.width as u32, img.height as u32), (w, h), "{fmt:?}");
            }
        }
    }

    #[test]
    fn an_oversized_frame_is_shrunk_until_it_fits() {
        ffmpeg_next::init().unwrap();
        let frame = noise(640, 480);
        let mut enc = JpegEncoder::new(95).unwrap();
        let full = enc.encode(&frame).unwrap().len();

        let roomy = enc.encode_within(&frame, full).unwrap();
        assert_eq!((roomy.shrunk, roomy.width), (None, 640));

        // Just under the full-quality size: a lower quality is enough, resolution is kept.
        let q = enc.encode_within(&frame, full * 3 / 4).unwrap();
        assert!(matches!(q.shrunk, Some(Shrink::Quality(_))), "{:?}", q.shrunk);
        assert!(q.data.len() <= full * 3 / 4);
        assert_eq!((q.width, q.height), (640, 480));

        // Far under: only downscaling fits; the JPEG really has the size it claims.
        let limit = full / 12;
        let small = enc.encode_within(&frame, limit).unwrap();
        assert!(small.data.len() <= limit, "{} > {limit}", small.data.len());
        let Some(Shrink::Downscaled(w)) = small.shrunk else { panic!("{:?}", small.shrunk) };
        let img = turbojpeg::decompress(&small.data, turbojpeg::PixelFormat::RGB).unwrap();
        assert_eq!((img.width as u32, img.height as u32), (w, small.height));
        assert!((MIN_WIDTH..640).contains(&w));

        // Impossible: a clear error, not an empty message.
        let e = enc.encode_within(&frame, 200).unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");

        // The configured quality is restored for the next frame.
        assert_eq!(enc.encode(&frame).unwrap().len(), full);
    }

    #[test]
    fn encodes_a_yuv420p_frame_that_decodes_back_to_its_colour() {
        ffmpeg_next::init().unwrap();
        // A mid-grey limited-range frame: Y=126 (limited) is ~ 128 full-range after expansion.
        let (w, h) = (64u32, 48u32);
        let mut f = VideoFrame::new(Pixel::YUV420P, w, h);
        for (plane, value) in [(0, 126u8), (1, 128), (2, 128)] {
            f.data_mut(plane).fill(value);
        }
        let mut enc = JpegEncoder::new(90).unwrap();
        let jpeg = enc.encode(&f).unwrap();
        assert_eq!(&jpeg[..2], &[0xff, 0xd8], "not a JPEG");
        let img = turbojpeg::decompress(&jpeg, turbojpeg::PixelFormat::RGB).unwrap();
        assert_eq!((img.width, img.height), (64, 48));
        let px = &img.pixels[(24 * img.pitch + 32 * 3)..][..3];
        for c in px {
            assert!((i32::from(*c) - 128).abs() <= 4, "pixel {px:?} not grey");
        }
    }
}
