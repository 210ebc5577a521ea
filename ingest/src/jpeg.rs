//! JPEG encoding with libjpeg-turbo straight from YUV planes: no RGB round trip. Sources that are not
//! full-range 4:2:0 (most video is limited-range yuv420p) go through one swscale pass to `yuvj420p`, which
//! also expands the range so colours match what an RGB pipeline (OpenCV) would produce.

use ffmpeg_next::format::Pixel;
use ffmpeg_next::frame::Video as VideoFrame;
use ffmpeg_next::software::scaling::{Context as Scaler, Flags};

use crate::{Error, Result};

/// Reusable encoder: the compressor and the conversion context are built once per stream.
pub struct JpegEncoder {
    compressor: turbojpeg::Compressor,
    scaler: Option<(Scaler, VideoFrame)>,
}

impl JpegEncoder {
    pub fn new(quality: u8) -> Result<Self> {
        let mut compressor = turbojpeg::Compressor::new().map_err(|e| Error::Jpeg(e.to_string()))?;
        compressor.set_quality(i32::from(quality.clamp(1, 100))).map_err(|e| Error::Jpeg(e.to_string()))?;
        Ok(JpegEncoder { compressor, scaler: None })
    }

    pub fn set_quality(&mut self, quality: u8) -> Result<()> {
        self.compressor.set_quality(i32::from(quality.clamp(1, 100))).map_err(|e| Error::Jpeg(e.to_string()))
    }

    /// Encodes a decoded frame of any pixel format.
    pub fn encode(&mut self, frame: &VideoFrame) -> Result<Vec<u8>> {
        if frame.format() == Pixel::YUVJ420P {
            return compress_yuv420(&mut self.compressor, frame);
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
    let image = turbojpeg::YuvPlanesImage {
        y_plane: f.data(0),
        u_plane: f.data(1),
        v_plane: f.data(2),
        width: w,
        height: h,
        y_stride: f.stride(0),
        u_stride: f.stride(1),
        v_stride: f.stride(2),
        subsamp: turbojpeg::Subsamp::Sub2x2,
    };
    c.compress_yuv_planes_to_vec(&image).map_err(|e| Error::Jpeg(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
