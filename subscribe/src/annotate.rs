//! Drawing boxes and labels onto a frame: the snapshots `store` saves are readable without any viewer.
//! Labels use a built-in 5x7 bitmap font so that no font file has to ship with the binary.

use framewire_proto::DetectionBox;
use image::{Rgb, RgbImage};

/// Errors of annotating a frame.
#[derive(Debug, thiserror::Error)]
pub enum AnnotateError {
    #[error("frame is not a readable JPEG: {0}")]
    Decode(image::ImageError),
    #[error("encoding the snapshot: {0}")]
    Encode(image::ImageError),
}

/// Decodes `jpeg`, draws `boxes` (frame pixels) with their labels and scores, and re-encodes it.
pub fn annotate_jpeg(jpeg: &[u8], boxes: &[DetectionBox]) -> Result<Vec<u8>, AnnotateError> {
    let mut img =
        image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg).map_err(AnnotateError::Decode)?.to_rgb8();
    draw(&mut img, boxes);
    let mut out = Vec::with_capacity(jpeg.len() * 2);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&img)
        .map_err(AnnotateError::Encode)?;
    Ok(out)
}

/// A colour per label, the same on every snapshot.
pub fn colour(label: &str) -> Rgb<u8> {
    const PALETTE: [[u8; 3]; 8] = [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
    ];
    let h = label.bytes().fold(2166136261u32, |h, b| (h ^ u32::from(b)).wrapping_mul(16777619));
    Rgb(PALETTE[h as usize % PALETTE.len()])
}

/// Draws every box and its "LABEL 87%" tag into `img`.
pub fn draw(img: &mut RgbImage, boxes: &[DetectionBox]) {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return;
    }
    let thick = (w.min(h) / 200).max(2);
    let scale = (h / 240).max(1);
    for b in boxes {
        let c = colour(&b.label);
        let clamp = |v: f32, max: u32| (v.max(0.0) as u32).min(max - 1);
        let (x1, y1, x2, y2) = (clamp(b.x1, w), clamp(b.y1, h), clamp(b.x2, w), clamp(b.y2, h));
        if x2 <= x1 || y2 <= y1 {
            continue;
        }
        for t in 0..thick {
            fill(img, x1, y1 + t, x2, y1 + t, c);
            fill(img, x1, y2.saturating_sub(t), x2, y2.saturating_sub(t), c);
            fill(img, x1 + t, y1, x1 + t, y2, c);
            fill(img, x2.saturating_sub(t), y1, x2.saturating_sub(t), y2, c);
        }
        let text = format!("{} {:.0}%", b.label.to_uppercase(), b.score * 100.0);
        let tw = text.chars().count() as u32 * 6 * scale + 2 * scale;
        let th = 9 * scale;
        // Above the box when there is room, else just inside its top edge.
        let ty = if y1 >= th { y1 - th } else { y1 };
        fill(img, x1, ty, (x1 + tw).min(w - 1), (ty + th).min(h - 1), c);
        let ink = if u32::from(c.0[0]) * 3 + u32::from(c.0[1]) * 6 + u32::from(c.0[2]) > 1400 {
            Rgb([0, 0, 0])
        } else {
            Rgb([255, 255, 255])
        };
        let mut x = x1 + scale;
        for ch in text.chars() {
            glyph_at(img, ch, x, ty + scale, scale, ink);
            x += 6 * scale;
        }
    }
}

/// Fills the inclusive rectangle, clipped to the image.
fn fill(img: &mut RgbImage, x1: u32, y1: u32, x2: u32, y2: u32, c: Rgb<u8>) {
    let (w, h) = img.dimensions();
    for y in y1..=y2.min(h - 1) {
        for x in x1..=x2.min(w - 1) {
            img.put_pixel(x, y, c);
        }
    }
}

fn glyph_at(img: &mut RgbImage, ch: char, x: u32, y: u32, scale: u32, c: Rgb<u8>) {
    for (row, bits) in glyph(ch).iter().enumerate() {
        for col in 0..5u32 {
            if bits & (0x10 >> col) != 0 {
                let px = x + col * scale;
                let py = y + row as u32 * scale;
                fill(img, px, py, px + scale - 1, py + scale - 1, c);
            }
        }
    }
}

/// Rows of a 5x7 glyph, top first, bit 4 leftmost.
fn glyph(ch: char) -> [u8; 7] {
    match ch {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '-' => [0, 0, 0, 0x1F, 0, 0, 0],
        '_' => [0, 0, 0, 0, 0, 0, 0x1F],
        ':' => [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
        ' ' => [0; 7],
        _ => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey_jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_pixel(w, h, Rgb([128, 128, 128]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95).encode_image(&img).unwrap();
        out
    }

    fn near(a: Rgb<u8>, b: Rgb<u8>) -> bool {
        a.0.iter().zip(b.0).all(|(x, y)| (i32::from(*x) - i32::from(y)).abs() < 40)
    }

    #[test]
    fn boxes_and_labels_are_drawn_and_the_rest_is_untouched() {
        let b = DetectionBox {
            label: "person".into(),
            score: 0.87,
            x1: 100.,
            y1: 60.,
            x2: 200.,
            y2: 220.,
            ..Default::default()
        };
        let out = annotate_jpeg(&grey_jpeg(320, 240), std::slice::from_ref(&b)).unwrap();
        let img = image::load_from_memory(&out).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (320, 240));
        let c = colour("person");
        assert!(near(*img.get_pixel(150, 220), c), "bottom edge");
        assert!(near(*img.get_pixel(100, 150), c), "left edge");
        assert!(near(*img.get_pixel(150, 150), Rgb([128, 128, 128])), "inside the box");
        assert!(near(*img.get_pixel(300, 20), Rgb([128, 128, 128])), "away from the box");
        // The tag above the box holds text: both the tag colour and ink.
        let tag: Vec<Rgb<u8>> = (102..160).map(|x| *img.get_pixel(x, 55)).collect();
        assert!(tag.iter().any(|p| near(*p, c)) && tag.iter().any(|p| !near(*p, c)), "label text");
    }

    #[test]
    fn boxes_outside_the_frame_are_clipped_and_junk_is_an_error() {
        let b = DetectionBox {
            label: "car".into(),
            score: 0.5,
            x1: -50.,
            y1: -50.,
            x2: 900.,
            y2: 900.,
            ..Default::default()
        };
        let out = annotate_jpeg(&grey_jpeg(64, 48), &[b]).unwrap();
        assert_eq!(image::load_from_memory(&out).unwrap().to_rgb8().dimensions(), (64, 48));
        assert!(annotate_jpeg(b"not a jpeg", &[]).is_err());
    }
}
