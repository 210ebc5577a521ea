//! From JPEG bytes to the model's input tensor: decode with libjpeg-turbo (using its DCT scaling to skip
//! pixels the model will never see), resize (stretch or letterbox), normalise, lay out as NHWC or NCHW.

use crate::nms::Rect;
use crate::spec::{InputSpec, Layout, Resize};
use crate::{Error, Result};

/// Maps model-input pixels back to source-frame pixels: `src = (model - pad) / scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transform {
    pub sx: f32,
    pub sy: f32,
    pub pad_x: f32,
    pub pad_y: f32,
}

impl Transform {
    pub fn to_source(&self, r: &Rect) -> Rect {
        Rect {
            x1: (r.x1 - self.pad_x) / self.sx,
            y1: (r.y1 - self.pad_y) / self.sy,
            x2: (r.x2 - self.pad_x) / self.sx,
            y2: (r.y2 - self.pad_y) / self.sy,
        }
    }
}

/// A frame ready for inference.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// One image's worth of input tensor, in the model's layout.
    pub tensor: Vec<f32>,
    pub src_width: u32,
    pub src_height: u32,
    pub transform: Transform,
}

/// Largest JPEG accepted: 8K video is 33 MP, so twice that leaves room for panoramic cameras.
const MAX_PIXELS: usize = 64_000_000;

/// Letterbox padding value (YOLO's grey).
const PAD: u8 = 114;

pub struct Preprocessor {
    spec: InputSpec,
    decompressor: turbojpeg::Decompressor,
    rgb: Vec<u8>,
    /// Normalised value of each 8-bit level per channel: normalising becomes a lookup.
    lut: [[f32; 256]; 3],
}

impl Preprocessor {
    pub fn new(spec: InputSpec) -> Result<Self> {
        let decompressor = turbojpeg::Decompressor::new().map_err(|e| Error::Jpeg(e.to_string()))?;
        let mut lut = [[0f32; 256]; 3];
        for (c, table) in lut.iter_mut().enumerate() {
            for (v, out) in table.iter_mut().enumerate() {
                *out = (v as f32 * spec.scale - spec.mean[c]) / spec.std[c];
            }
        }
        Ok(Preprocessor { spec, decompressor, rgb: Vec::new(), lut })
    }

    pub fn prepare(&mut self, jpeg: &[u8]) -> Result<Prepared> {
        let header = self.decompressor.read_header(jpeg).map_err(|e| Error::Jpeg(e.to_string()))?;
        let (sw, sh) = (header.width, header.height);
        if sw == 0 || sh == 0 {
            return Err(Error::Jpeg("image has no pixels".into()));
        }
        // A forged header must not make us allocate gigabytes (65535 x 65535 x 3 bytes).
        if sw * sh > MAX_PIXELS {
            return Err(Error::Jpeg(format!("{sw}x{sh} exceeds the {} megapixel limit", MAX_PIXELS / 1_000_000)));
        }
        let (dw, dh) = (self.spec.width as usize, self.spec.height as usize);
        // The smallest DCT scale that still leaves at least the model's resolution.
        let factor = turbojpeg::Decompressor::supported_scaling_factors()
            .into_iter()
            .filter(|f| f.num() <= f.denom() && f.scale(sw) >= dw.min(sw) && f.scale(sh) >= dh.min(sh))
            .min_by_key(|f| f.scale(sw) * f.scale(sh))
            .unwrap_or(turbojpeg::ScalingFactor::ONE);
        self.decompressor.set_scaling_factor(factor).map_err(|e| Error::Jpeg(e.to_string()))?;
        let (w, h) = (factor.scale(sw), factor.scale(sh));
        let pitch = w * 3;
        self.rgb.resize(pitch * h, 0);
        let image = turbojpeg::Image {
            pixels: &mut self.rgb[..],
            width: w,
            pitch,
            height: h,
            format: turbojpeg::PixelFormat::RGB,
        };
        self.decompressor.decompress(jpeg, image).map_err(|e| Error::Jpeg(e.to_string()))?;

        let (fit_w, fit_h, pad_x, pad_y) = fit(w, h, dw, dh, self.spec.resize);
        let src = RgbView { pixels: &self.rgb, width: w, height: h, pitch };
        // Resize and normalise in one pass, straight into the tensor: no intermediate image.
        let lut = &self.lut;
        let mut tensor = vec![0f32; dw * dh * 3];
        let plane = dw * dh;
        match self.spec.layout {
            Layout::Nhwc => {
                if (fit_w, fit_h) != (dw, dh) {
                    for px in tensor.chunks_exact_mut(3) {
                        px.copy_from_slice(&[lut[0][PAD as usize], lut[1][PAD as usize], lut[2][PAD as usize]]);
                    }
                }
                bilinear(src, (fit_w, fit_h), |x, y, rgb| {
                    let i = ((pad_y + y) * dw + pad_x + x) * 3;
                    tensor[i] = lut[0][rgb[0] as usize];
                    tensor[i + 1] = lut[1][rgb[1] as usize];
                    tensor[i + 2] = lut[2][rgb[2] as usize];
                });
            }
            Layout::Nchw => {
                if (fit_w, fit_h) != (dw, dh) {
                    for c in 0..3 {
                        tensor[c * plane..(c + 1) * plane].fill(lut[c][PAD as usize]);
                    }
                }
                bilinear(src, (fit_w, fit_h), |x, y, rgb| {
                    let i = (pad_y + y) * dw + pad_x + x;
                    tensor[i] = lut[0][rgb[0] as usize];
                    tensor[plane + i] = lut[1][rgb[1] as usize];
                    tensor[2 * plane + i] = lut[2][rgb[2] as usize];
                });
            }
        }
        // Scale relative to the full-size source, not the DCT-scaled image.
        let transform = Transform {
            sx: fit_w as f32 / sw as f32,
            sy: fit_h as f32 / sh as f32,
            pad_x: pad_x as f32,
            pad_y: pad_y as f32,
        };
        Ok(Prepared { tensor, src_width: sw as u32, src_height: sh as u32, transform })
    }
}

/// Size of the resized image inside the `dw x dh` input and its offset.
pub fn fit(sw: usize, sh: usize, dw: usize, dh: usize, mode: Resize) -> (usize, usize, usize, usize) {
    match mode {
        Resize::Stretch => (dw, dh, 0, 0),
        Resize::Letterbox => {
            let s = (dw as f64 / sw as f64).min(dh as f64 / sh as f64);
            let fw = ((sw as f64 * s).round() as usize).clamp(1, dw);
            let fh = ((sh as f64 * s).round() as usize).clamp(1, dh);
            (fw, fh, (dw - fw) / 2, (dh - fh) / 2)
        }
    }
}

/// A borrowed packed RGB image; rows are `pitch` bytes apart.
#[derive(Debug, Clone, Copy)]
pub struct RgbView<'a> {
    pub pixels: &'a [u8],
    pub width: usize,
    pub height: usize,
    pub pitch: usize,
}

/// Bilinear resize (half-pixel centres, as OpenCV's INTER_LINEAR) of an RGB image into the `fit` rectangle
/// at `offset` of an RGB destination `dst_w` pixels wide.
pub fn resize_bilinear(src: RgbView<'_>, dst: &mut [u8], dst_w: usize, offset: (usize, usize), fit: (usize, usize)) {
    let (ox, oy) = offset;
    bilinear(src, fit, |x, y, rgb| {
        let i = ((oy + y) * dst_w + ox + x) * 3;
        dst[i..i + 3].copy_from_slice(&rgb);
    });
}

/// Computes the `fit`-sized bilinear resize of `src` (half-pixel centres, as OpenCV's INTER_LINEAR) in 8-bit
/// fixed point, as OpenCV does, handing each pixel to `put(x, y, rgb)` row by row. Generic over `put` so that
/// the caller's store is inlined into the loop.
#[inline]
fn bilinear(src: RgbView<'_>, fit: (usize, usize), mut put: impl FnMut(usize, usize, [u8; 3])) {
    let RgbView { pixels, width: sw, height: sh, pitch } = src;
    let (fw, fh) = fit;
    let rx = sw as f32 / fw as f32;
    let ry = sh as f32 / fh as f32;
    let weight = |f: f32| (f * 256.0).round() as u32;
    // Column sample positions and weights are the same for every row: compute once.
    let cols: Vec<(usize, usize, u32)> = (0..fw)
        .map(|x| {
            let fx = ((x as f32 + 0.5) * rx - 0.5).clamp(0.0, (sw - 1) as f32);
            let x0 = fx as usize;
            (x0 * 3, (x0 + 1).min(sw - 1) * 3, weight(fx - x0 as f32))
        })
        .collect();
    // Vertical pass first, over whole source rows: contiguous, so the compiler vectorises it, and it halves
    // the multiplies of the gather that follows. (a·(256-wx) + b·wx) and (top·(256-wy) + bottom·wy) commute,
    // so the result is bit for bit that of interpolating each pixel in both directions at once. A blended
    // value is at most 255·256, which fits u16.
    let mut row = vec![0u16; sw * 3];
    for y in 0..fh {
        let fy = ((y as f32 + 0.5) * ry - 0.5).clamp(0.0, (sh - 1) as f32);
        let y0 = fy as usize;
        let y1 = (y0 + 1).min(sh - 1);
        let wy = weight(fy - y0 as f32) as u16;
        let (r0, r1) = (&pixels[y0 * pitch..][..sw * 3], &pixels[y1 * pitch..][..sw * 3]);
        for ((v, &top), &bottom) in row.iter_mut().zip(r0).zip(r1) {
            *v = u16::from(top) * (256 - wy) + u16::from(bottom) * wy;
        }
        for (x, &(a, b, wx)) in cols.iter().enumerate() {
            let mut rgb = [0u8; 3];
            for (c, out) in rgb.iter_mut().enumerate() {
                let v = u32::from(row[a + c]) * (256 - wx) + u32::from(row[b + c]) * wx;
                *out = ((v + (1 << 15)) >> 16) as u8;
            }
            put(x, y, rgb);
        }
    }
}

/// Normalises an HWC RGB image into the model's layout.
pub fn to_tensor(hwc: &[u8], w: usize, h: usize, spec: &InputSpec) -> Vec<f32> {
    let mut out = vec![0f32; w * h * 3];
    let (scale, mean, std) = (spec.scale, spec.mean, spec.std);
    let norm = |v: u8, c: usize| (f32::from(v) * scale - mean[c]) / std[c];
    match spec.layout {
        Layout::Nhwc => {
            for (i, v) in hwc.iter().enumerate() {
                out[i] = norm(*v, i % 3);
            }
        }
        Layout::Nchw => {
            let plane = w * h;
            for (p, px) in hwc.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    out[c * plane + p] = norm(px[c], c);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(layout: Layout, resize: Resize, w: u32, h: u32) -> InputSpec {
        InputSpec { name: None, layout, width: w, height: h, resize, scale: 1.0, mean: [0.0; 3], std: [1.0; 3] }
    }

    #[test]
    fn letterbox_fits_and_centres() {
        assert_eq!(fit(1280, 720, 640, 640, Resize::Letterbox), (640, 360, 0, 140));
        assert_eq!(fit(720, 1280, 640, 640, Resize::Letterbox), (360, 640, 140, 0));
        assert_eq!(fit(1280, 720, 300, 300, Resize::Stretch), (300, 300, 0, 0));
    }

    #[test]
    fn transform_maps_model_boxes_back_to_source_pixels() {
        // 1280x720 letterboxed into 640x640: scale 0.5, 140 px of padding on top.
        let t = Transform { sx: 0.5, sy: 0.5, pad_x: 0.0, pad_y: 140.0 };
        let r = t.to_source(&Rect { x1: 10.0, y1: 150.0, x2: 20.0, y2: 160.0 });
        assert_eq!(r, Rect { x1: 20.0, y1: 20.0, x2: 40.0, y2: 40.0 });
    }

    #[test]
    fn resize_of_a_constant_image_is_constant_and_keeps_padding() {
        let src = vec![200u8; 8 * 4 * 3];
        let mut dst = vec![PAD; 6 * 6 * 3];
        resize_bilinear(RgbView { pixels: &src, width: 8, height: 4, pitch: 24 }, &mut dst, 6, (0, 1), (6, 3));
        assert!(dst[..18].iter().all(|v| *v == PAD), "top padding row untouched");
        assert!(dst[18..18 * 4].iter().all(|v| *v == 200));
        assert!(dst[18 * 4..].iter().all(|v| *v == PAD));
    }

    #[test]
    fn resize_preserves_a_horizontal_gradient_direction() {
        let mut src = Vec::new();
        for _y in 0..2 {
            for x in 0..4u8 {
                src.extend_from_slice(&[x * 60, 0, 0]);
            }
        }
        let mut dst = vec![0u8; 2 * 3];
        resize_bilinear(RgbView { pixels: &src, width: 4, height: 2, pitch: 12 }, &mut dst, 2, (0, 0), (2, 1));
        assert!(dst[0] < dst[3], "left darker than right: {dst:?}");
        assert_eq!((dst[0], dst[3]), (30, 150));
    }

    #[test]
    fn the_two_pass_resize_equals_interpolating_each_pixel_in_both_directions() {
        // The textbook per-pixel form of the same fixed-point bilinear filter, as OpenCV computes it.
        fn reference(src: &[u8], sw: usize, sh: usize, fw: usize, fh: usize) -> Vec<u8> {
            let w = |f: f32| (f * 256.0).round() as u32;
            let mut out = vec![];
            for y in 0..fh {
                let fy = ((y as f32 + 0.5) * sh as f32 / fh as f32 - 0.5).clamp(0.0, (sh - 1) as f32);
                let (y0, wy) = (fy as usize, w(fy - (fy as usize) as f32));
                let y1 = (y0 + 1).min(sh - 1);
                for x in 0..fw {
                    let fx = ((x as f32 + 0.5) * sw as f32 / fw as f32 - 0.5).clamp(0.0, (sw - 1) as f32);
                    let (x0, wx) = (fx as usize, w(fx - (fx as usize) as f32));
                    let x1 = (x0 + 1).min(sw - 1);
                    for c in 0..3 {
                        let p = |x: usize, y: usize| u32::from(src[(y * sw + x) * 3 + c]);
                        let top = p(x0, y0) * (256 - wx) + p(x1, y0) * wx;
                        let bottom = p(x0, y1) * (256 - wx) + p(x1, y1) * wx;
                        out.push(((top * (256 - wy) + bottom * wy + (1 << 15)) >> 16) as u8);
                    }
                }
            }
            out
        }
        let (sw, sh) = (37, 23);
        let src: Vec<u8> = (0..sw * sh * 3).map(|i| (i * 131 % 256) as u8).collect();
        // Down, up, mixed, and to a single pixel.
        for (fw, fh) in [(10, 7), (80, 51), (50, 9), (1, 1), (37, 23)] {
            let mut dst = vec![0u8; fw * fh * 3];
            resize_bilinear(
                RgbView { pixels: &src, width: sw, height: sh, pitch: sw * 3 },
                &mut dst,
                fw,
                (0, 0),
                (fw, fh),
            );
            assert_eq!(dst, reference(&src, sw, sh, fw, fh), "{fw}x{fh}");
        }
    }

    #[test]
    fn the_fused_path_equals_resize_then_normalise() {
        // A real photo through `prepare` must give exactly what the two separate steps give.
        let jpeg = turbojpeg::compress(
            turbojpeg::Image {
                pixels: &(0..64 * 48 * 3).map(|i| (i * 7 % 251) as u8).collect::<Vec<u8>>()[..],
                width: 64,
                pitch: 64 * 3,
                height: 48,
                format: turbojpeg::PixelFormat::RGB,
            },
            95,
            turbojpeg::Subsamp::None,
        )
        .unwrap();
        let rgb = turbojpeg::decompress(&jpeg, turbojpeg::PixelFormat::RGB).unwrap();
        for layout in [Layout::Nhwc, Layout::Nchw] {
            for resize in [Resize::Stretch, Resize::Letterbox] {
                // 60x60: larger than the picture's height, so no DCT scaling, as in the reference below.
                let mut s = spec(layout, resize, 60, 60);
                (s.scale, s.mean, s.std) = (1.0 / 255.0, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);
                let got = Preprocessor::new(s.clone()).unwrap().prepare(&jpeg).unwrap().tensor;
                let (fw, fh, px, py) = fit(64, 48, 60, 60, resize);
                let mut resized = vec![PAD; 60 * 60 * 3];
                let view = RgbView { pixels: &rgb.pixels, width: 64, height: 48, pitch: rgb.pitch };
                resize_bilinear(view, &mut resized, 60, (px, py), (fw, fh));
                let want = to_tensor(&resized, 60, 60, &s);
                let diff = got.iter().zip(&want).position(|(a, b)| a != b);
                assert!(
                    got.len() == want.len() && diff.is_none(),
                    "{layout:?} {resize:?}: first difference at {diff:?}"
                );
            }
        }
    }

    #[test]
    fn layouts_and_normalisation() {
        let hwc = [10u8, 20, 30, 40, 50, 60]; // 2x1 image
        let mut s = spec(Layout::Nhwc, Resize::Stretch, 2, 1);
        assert_eq!(to_tensor(&hwc, 2, 1, &s), vec![10.0, 20.0, 30.0, 40.0, 50.0, 60.0]);
        s.layout = Layout::Nchw;
        assert_eq!(to_tensor(&hwc, 2, 1, &s), vec![10.0, 40.0, 20.0, 50.0, 30.0, 60.0]);
        s.scale = 1.0 / 10.0;
        s.mean = [1.0, 0.0, 0.0];
        s.std = [2.0, 1.0, 1.0];
        assert_eq!(to_tensor(&hwc, 2, 1, &s)[..2], [0.0, 1.5]);
    }

    #[test]
    fn decodes_a_real_jpeg_and_rejects_garbage() {
        let mut img = image::RgbImage::new(640, 480);
        for (x, _, p) in img.enumerate_pixels_mut() {
            *p = image::Rgb([if x < 320 { 255 } else { 0 }, 0, 0]);
        }
        let mut jpeg = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
            .unwrap();
        let mut p = Preprocessor::new(spec(Layout::Nhwc, Resize::Stretch, 300, 300)).unwrap();
        let out = p.prepare(&jpeg).unwrap();
        assert_eq!((out.src_width, out.src_height), (640, 480));
        assert_eq!(out.tensor.len(), 300 * 300 * 3);
        assert!(out.tensor[0] > 200.0, "left is red");
        assert!(out.tensor[(299) * 3] < 50.0, "right is black");
        assert!((out.transform.sx - 300.0 / 640.0).abs() < 1e-6);

        assert!(matches!(p.prepare(b"not a jpeg"), Err(Error::Jpeg(_))));
        // Same image with its frame header claiming 20000x20000 (SOF0: FF C0, len, precision, height, width).
        let mut huge = jpeg.clone();
        let sof = huge.windows(2).position(|w| w == [0xff, 0xc0]).expect("baseline JPEG");
        huge[sof + 5..sof + 9].copy_from_slice(&[0x4e, 0x20, 0x4e, 0x20]);
        let err = p.prepare(&huge).unwrap_err().to_string();
        assert!(err.contains("20000x20000 exceeds"), "{err}");
        assert!(matches!(p.prepare(&jpeg[..jpeg.len() / 3]), Err(Error::Jpeg(_))), "truncated JPEG must fail");
    }
}
