//! Motion gating (`--motion`): a sampled frame is published only if its picture differs from the last frame
//! published for its camera, or if `--motion-keepalive` of stream time has passed since that frame (so a
//! still object keeps its event open and viewers stay current). Gated frames are skipped before JPEG
//! encoding, which is half the saving; the other half is the detector's work.
//!
//! The comparison runs on a small luma image, about [`GRID_COLS`] cells across, each cell the mean of the
//! pixels under it. Averaging ~100 pixels per cell (at 640x360) makes sensor and encoder noise vanish; the
//! median cell difference is taken off every cell, so a global change of light (a cloud, auto-exposure) moves
//! nothing; and the reference is the last *published* picture, so slow motion adds up until it shows while
//! slow light changes are absorbed at each keep-alive.

use std::time::Duration;

use ffmpeg_next::format::Pixel;
use ffmpeg_next::frame::Video as VideoFrame;
use ffmpeg_next::software::scaling::{Context as Scaler, Flags};

use crate::{Error, Result};

/// Cells across the small luma image. At 640 pixels wide a cell is 10x10 pixels: large enough to average
/// noise out, small enough that a person far away covers several cells.
pub const GRID_COLS: usize = 64;

/// A cell has changed when its mean luma (0-255) moved this much more than the picture's median cell did.
/// Per-pixel sensor noise of a few levels averages to well under 1 over a cell; a person against a wall
/// moves a cell by tens.
pub const LEVEL: i32 = 8;

/// Default `--motion-threshold`: percent of the picture's cells that must change. At 640x360 (2304 cells)
/// that is 7 cells, about the area a walking person at 30 m changes between frames.
pub const DEFAULT_THRESHOLD_PERCENT: f64 = 0.3;

/// Default `--motion-keepalive`.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(2);

/// A camera's gating settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MotionSettings {
    /// Publish a frame at least this often (stream time), changed or not.
    pub keepalive: Duration,
    /// Percent of the picture that must change for a frame to be published.
    pub threshold_percent: f64,
}

impl Default for MotionSettings {
    fn default() -> Self {
        MotionSettings { keepalive: DEFAULT_KEEPALIVE, threshold_percent: DEFAULT_THRESHOLD_PERCENT }
    }
}

/// A picture reduced to a grid of mean luma values, row by row. Empty until filled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Thumb {
    cols: usize,
    rows: usize,
    cells: Vec<u8>,
}

/// The grid of a `width` x `height` picture: [`GRID_COLS`] across (fewer for a narrower picture), rows in
/// proportion to the aspect, at least one.
pub fn grid(width: usize, height: usize) -> (usize, usize) {
    let cols = GRID_COLS.min(width).max(1);
    let rows = ((cols * height) as f64 / width.max(1) as f64).round() as usize;
    (cols, rows.clamp(1, height.max(1)))
}

impl Thumb {
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Fills the grid from an 8-bit luma plane of `width` x `height` pixels with `stride` bytes per row.
    /// `plane` must hold `stride * (height - 1) + width` bytes.
    pub fn fill_from_plane(&mut self, plane: &[u8], stride: usize, width: usize, height: usize) {
        let (cols, rows) = grid(width, height);
        self.cols = cols;
        self.rows = rows;
        self.cells.clear();
        self.cells.resize(cols * rows, 0);
        let mut sums = vec![0u32; cols];
        for r in 0..rows {
            let (y0, y1) = (r * height / rows, (r + 1) * height / rows);
            sums.iter_mut().for_each(|s| *s = 0);
            for y in y0..y1 {
                let line = &plane[y * stride..][..width];
                for (c, sum) in sums.iter_mut().enumerate() {
                    let (x0, x1) = (c * width / cols, (c + 1) * width / cols);
                    // u32 over at most a 4K frame's cell: 255 * 3840 * 2160 / 64 fits easily.
                    *sum += line[x0..x1].iter().map(|&p| u32::from(p)).sum::<u32>();
                }
            }
            for (c, sum) in sums.iter().enumerate() {
                let area = ((c + 1) * width / cols - c * width / cols) * (y1 - y0);
                self.cells[r * cols + c] = (*sum as usize / area.max(1)) as u8;
            }
        }
    }

    /// Fills the grid from a picture already scaled to `cols` x `rows` (one pixel per cell).
    fn fill_from_cells(&mut self, plane: &[u8], stride: usize, cols: usize, rows: usize) {
        self.cols = cols;
        self.rows = rows;
        self.cells.clear();
        for r in 0..rows {
            self.cells.extend_from_slice(&plane[r * stride..][..cols]);
        }
    }
}

/// Percent of the cells of `cur` that changed against `reference`, beyond what the picture as a whole did
/// (the median cell difference, which is what a change of light gives every cell). `None` when the two
/// grids differ in size (a new resolution or aspect): nothing can be compared.
pub fn changed_percent(cur: &Thumb, reference: &Thumb) -> Option<f64> {
    let same_grid = cur.cols == reference.cols && cur.rows == reference.rows;
    if !same_grid || cur.cells.is_empty() || cur.cells.len() != reference.cells.len() {
        return None;
    }
    // Differences are -255..=255: a histogram gives the median in one pass, without sorting.
    let mut histogram = [0u32; 511];
    for (a, b) in cur.cells.iter().zip(&reference.cells) {
        histogram[(i32::from(*a) - i32::from(*b) + 255) as usize] += 1;
    }
    let half = cur.cells.len().div_ceil(2) as u32;
    let mut seen = 0;
    let mut median = 0;
    for (i, n) in histogram.iter().enumerate() {
        seen += n;
        if seen >= half {
            median = i as i32 - 255;
            break;
        }
    }
    let changed = cur
        .cells
        .iter()
        .zip(&reference.cells)
        .filter(|(a, b)| (i32::from(**a) - i32::from(**b) - median).abs() > LEVEL)
        .count();
    Some(changed as f64 * 100.0 / cur.cells.len() as f64)
}

/// What to do with a sampled frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// The first frame since the camera (re)connected: there is nothing to compare it with.
    First,
    /// The picture changed by this percent, at least the threshold.
    Changed(f64),
    /// Nothing changed enough, but the keep-alive is due.
    KeepAlive,
    /// Only this percent of the picture changed, under the threshold: leave it out.
    Unchanged(f64),
}

impl Decision {
    pub fn publish(self) -> bool {
        !matches!(self, Decision::Unchanged(_))
    }
}

/// One camera's gate: the reference picture and when it was published, in stream time.
#[derive(Debug, Default)]
pub struct Gate {
    settings: MotionSettings,
    /// The small picture of the last published frame; empty after a reset.
    reference: Thumb,
    last_published_us: i64,
}

impl Gate {
    pub fn new(settings: MotionSettings) -> Self {
        Gate { settings, ..Gate::default() }
    }

    /// Forgets the reference: stream time restarts with a new connection, and what the camera shows may
    /// have changed while it was away, so the next frame is published.
    pub fn reset(&mut self) {
        self.reference = Thumb::default();
    }

    /// Decides on a frame whose small picture is `current`, at stream time `stream_us`. A frame to be
    /// published becomes the reference (`current` then holds the old one, to be overwritten).
    pub fn decide(&mut self, current: &mut Thumb, stream_us: i64) -> Decision {
        let decision = match changed_percent(current, &self.reference) {
            None => Decision::First,
            Some(p) if p >= self.settings.threshold_percent => Decision::Changed(p),
            // Stream time going backwards (a discontinuity) counts as due: better one frame too many.
            Some(_) if stream_us - self.last_published_us >= self.settings.keepalive.as_micros() as i64 => {
                Decision::KeepAlive
            }
            Some(_) if stream_us < self.last_published_us => Decision::KeepAlive,
            Some(p) => Decision::Unchanged(p),
        };
        if decision.publish() {
            std::mem::swap(&mut self.reference, current);
            self.last_published_us = stream_us;
        }
        decision
    }
}

/// Plane 0 of these formats is 8-bit luma, read in place; others are converted.
fn luma_first(format: Pixel) -> bool {
    use Pixel::*;
    matches!(
        format,
        YUV420P
            | YUVJ420P
            | YUV422P
            | YUVJ422P
            | YUV444P
            | YUVJ444P
            | YUV440P
            | YUVJ440P
            | YUV411P
            | YUVJ411P
            | YUV410P
            | YUVA420P
            | YUVA422P
            | YUVA444P
            | NV12
            | NV21
            | NV16
            | NV24
            | NV42
            | GRAY8
    )
}

/// A camera's motion gating: reads each sampled frame's small luma picture and decides on it.
pub struct Motion {
    gate: Gate,
    current: Thumb,
    /// For pixel formats without a luma plane (RGB images...): swscale to GRAY8 at the grid size, made on
    /// first use and again when the input changes.
    scaler: Option<(Scaler, VideoFrame)>,
}

impl Motion {
    pub fn new(settings: MotionSettings) -> Self {
        Motion { gate: Gate::new(settings), current: Thumb::default(), scaler: None }
    }

    /// See [`Gate::reset`].
    pub fn reset(&mut self) {
        self.gate.reset();
    }

    /// Decides whether `frame`, at stream time `stream_us`, is published.
    pub fn check(&mut self, frame: &VideoFrame, stream_us: i64) -> Result<Decision> {
        self.read(frame)?;
        Ok(self.gate.decide(&mut self.current, stream_us))
    }

    fn read(&mut self, frame: &VideoFrame) -> Result<()> {
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let fmt = frame.format();
        if w == 0 || h == 0 {
            return Err(Error::Scale(format!("a {w}x{h} frame has no picture to compare")));
        }
        if luma_first(fmt) && frame.planes() > 0 {
            let (plane, stride) = (frame.data(0), frame.stride(0));
            if stride >= w && plane.len() >= stride * (h - 1) + w {
                self.current.fill_from_plane(plane, stride, w, h);
                return Ok(());
            }
        }
        let (cols, rows) = grid(w, h);
        let stale = match &self.scaler {
            Some((s, _)) => {
                let i = s.input();
                i.format != fmt || i.width != frame.width() || i.height != frame.height()
            }
            None => true,
        };
        if stale {
            let s =
                Scaler::get(fmt, frame.width(), frame.height(), Pixel::GRAY8, cols as u32, rows as u32, Flags::AREA)
                    .map_err(|e| Error::Scale(format!("{fmt:?} to GRAY8 for --motion: {e}")))?;
            self.scaler = Some((s, VideoFrame::empty()));
        }
        let Some((scaler, out)) = self.scaler.as_mut() else { unreachable!("the scaler was just set") };
        scaler.run(frame, out).map_err(|e| Error::Scale(format!("{fmt:?} to GRAY8 for --motion: {e}")))?;
        self.current.fill_from_cells(out.data(0), out.stride(0), cols, rows);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic generator, so a failure can be reproduced.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u32 {
            self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) as u32
        }

        /// Uniform in -n..=n.
        fn noise(&mut self, n: i32) -> i32 {
            (self.next() % (2 * n as u32 + 1)) as i32 - n
        }
    }

    /// A scene with texture: gradients and a few flat shapes, luma only, in 60..200 so that light steps of
    /// ±40 do not clip.
    fn scene(w: usize, h: usize) -> Vec<u8> {
        let mut p = vec![0u8; w * h];
        for y in 0..h {
            for x in 0..w {
                let mut v = 60 + (x * 80 / w) as i32 + (y * 40 / h) as i32;
                if (x / 80 + y / 60) % 3 == 0 {
                    v += 20;
                }
                p[y * w + x] = v.clamp(0, 255) as u8;
            }
        }
        p
    }

    fn noisy(p: &[u8], rng: &mut Lcg, amplitude: i32) -> Vec<u8> {
        p.iter().map(|v| (i32::from(*v) + rng.noise(amplitude)).clamp(0, 255) as u8).collect()
    }

    fn thumb(p: &[u8], w: usize, h: usize) -> Thumb {
        let mut t = Thumb::default();
        t.fill_from_plane(p, w, w, h);
        t
    }

    /// Paints a dark block of `bw` x `bh` at (x, y), like a person in dark clothes.
    fn block(p: &mut [u8], w: usize, x: usize, y: usize, bw: usize, bh: usize) {
        for row in y..y + bh {
            for col in x..x + bw {
                p[row * w + col] = 20;
            }
        }
    }

    const W: usize = 640;
    const H: usize = 360;

    #[test]
    fn the_grid_follows_the_aspect() {
        assert_eq!(grid(640, 360), (64, 36));
        assert_eq!(grid(1920, 1080), (64, 36));
        assert_eq!(grid(640, 272), (64, 27));
        assert_eq!(grid(4000, 10), (64, 1), "at least one row");
        assert_eq!(grid(20, 30), (20, 30), "a tiny picture: a cell per pixel");
    }

    #[test]
    fn cells_are_the_means_of_their_pixels() {
        // 128 wide: cells of 2x2 pixels holding 10, 20, 30, 40.
        let (w, h) = (128, 4);
        let mut p = vec![0u8; w * h];
        for y in 0..h {
            for x in 0..w {
                p[y * w + x] = if (x + y) % 2 == 0 { 10 } else { 30 };
            }
        }
        let t = thumb(&p, w, h);
        assert_eq!((t.cols, t.rows), (64, 2));
        assert!(t.cells.iter().all(|c| *c == 20), "{:?}", t.cells);
    }

    #[test]
    fn static_noisy_frames_are_unchanged() {
        let mut rng = Lcg(7);
        let base = scene(W, H);
        let reference = thumb(&noisy(&base, &mut rng, 12), W, H);
        for _ in 0..20 {
            let cur = thumb(&noisy(&base, &mut rng, 12), W, H);
            let p = changed_percent(&cur, &reference).unwrap();
            assert!(p < DEFAULT_THRESHOLD_PERCENT, "noise alone changed {p}%");
            assert_eq!(p, 0.0, "±12 of noise over 100 pixels is well under the level");
        }
    }

    #[test]
    fn a_change_of_light_is_not_motion() {
        let mut rng = Lcg(11);
        let base = scene(W, H);
        let reference = thumb(&noisy(&base, &mut rng, 6), W, H);
        for step in [-40, -15, 15, 40] {
            let lit: Vec<u8> = base.iter().map(|v| (i32::from(*v) + step).clamp(0, 255) as u8).collect();
            let cur = thumb(&noisy(&lit, &mut rng, 6), W, H);
            let p = changed_percent(&cur, &reference).unwrap();
            assert!(p < DEFAULT_THRESHOLD_PERCENT, "a light step of {step} changed {p}%");
        }
    }

    #[test]
    fn a_moving_block_of_one_percent_is_motion() {
        let mut rng = Lcg(3);
        let base = scene(W, H);
        // ~1 % of the picture: 48x48 pixels.
        let mut before = base.clone();
        block(&mut before, W, 100, 150, 48, 48);
        let mut after = base.clone();
        block(&mut after, W, 130, 150, 48, 48);
        let reference = thumb(&noisy(&before, &mut rng, 6), W, H);
        let cur = thumb(&noisy(&after, &mut rng, 6), W, H);
        let p = changed_percent(&cur, &reference).unwrap();
        assert!(p >= DEFAULT_THRESHOLD_PERCENT, "a moving block changed only {p}%");
        // Also under a change of light at the same time.
        let lit: Vec<u8> = after.iter().map(|v| v.saturating_add(25)).collect();
        let p = changed_percent(&thumb(&noisy(&lit, &mut rng, 6), W, H), &reference).unwrap();
        assert!(p >= DEFAULT_THRESHOLD_PERCENT, "a moving block in new light changed only {p}%");
    }

    #[test]
    fn a_small_object_far_away_is_motion() {
        // A person at a distance in a 640x360 street: ~12x30 pixels, walking 12 pixels between frames.
        let base = scene(W, H);
        let mut before = base.clone();
        block(&mut before, W, 300, 200, 12, 30);
        let mut after = base.clone();
        block(&mut after, W, 312, 200, 12, 30);
        let p = changed_percent(&thumb(&after, W, H), &thumb(&before, W, H)).unwrap();
        assert!(p >= DEFAULT_THRESHOLD_PERCENT, "a small walker changed only {p}%");
    }

    #[test]
    fn stride_padding_is_ignored() {
        let base = scene(W, H);
        let stride = W + 64;
        let mut padded = vec![0u8; stride * H];
        for y in 0..H {
            padded[y * stride..][..W].copy_from_slice(&base[y * W..][..W]);
            // Garbage in the padding, where a wrong stride would read it.
            padded[y * stride + W..][..64].fill(255);
        }
        let mut t = Thumb::default();
        t.fill_from_plane(&padded, stride, W, H);
        assert_eq!(t, thumb(&base, W, H));
        // The last row may end right after its pixels, without padding.
        let mut t = Thumb::default();
        t.fill_from_plane(&padded[..stride * (H - 1) + W], stride, W, H);
        assert_eq!(t, thumb(&base, W, H));
    }

    #[test]
    fn grids_of_different_sizes_are_not_compared() {
        let a = thumb(&scene(W, H), W, H);
        let b = thumb(&scene(W, 272), W, 272);
        assert_eq!(changed_percent(&a, &b), None);
        assert_eq!(changed_percent(&a, &Thumb::default()), None);
    }

    #[test]
    fn the_gate_publishes_changes_and_keepalives_by_stream_time() {
        let settings = MotionSettings { keepalive: Duration::from_secs(2), threshold_percent: 0.3 };
        let mut gate = Gate::new(settings);
        let still = thumb(&scene(W, H), W, H);
        let mut moved_scene = scene(W, H);
        block(&mut moved_scene, W, 200, 100, 60, 60);
        let moved = thumb(&moved_scene, W, H);
        let mut at = |t: &Thumb, ms: i64| gate.decide(&mut t.clone(), ms * 1000);

        assert_eq!(at(&still, 0), Decision::First);
        // 10 fps of a still picture: one keep-alive every 2 s of stream time.
        let published: Vec<i64> = (1..=50).map(|i| i * 100).filter(|ms| at(&still, *ms).publish()).collect();
        assert_eq!(published, [2000, 4000]);
        assert_eq!(at(&still, 4100), Decision::Unchanged(0.0));
        assert!(matches!(at(&moved, 4200), Decision::Changed(p) if p >= 0.3));
        // The moved picture is the reference now: the same picture again is unchanged.
        assert_eq!(at(&moved, 4300), Decision::Unchanged(0.0));
        // The keep-alive counts from the last published frame, a change included.
        assert_eq!(at(&moved, 6100), Decision::Unchanged(0.0));
        assert_eq!(at(&moved, 6200), Decision::KeepAlive);
        // Stream time going backwards (a discontinuity) publishes rather than wait.
        assert_eq!(at(&moved, 1000), Decision::KeepAlive);

        gate.reset();
        assert_eq!(gate.decide(&mut moved.clone(), 0), Decision::First, "a reconnect publishes its first frame");
    }

    #[test]
    fn frames_are_read_in_place_or_converted() {
        ffmpeg_next::init().unwrap();
        let mut motion = Motion::new(MotionSettings::default());
        // A decoder's YUV frame: plane 0 read in place, whatever its stride.
        let mut yuv = VideoFrame::new(Pixel::YUV420P, W as u32, H as u32);
        let stride = yuv.stride(0);
        let base = scene(W, H);
        for y in 0..H {
            yuv.data_mut(0)[y * stride..][..W].copy_from_slice(&base[y * W..][..W]);
        }
        motion.read(&yuv).unwrap();
        assert_eq!(motion.current, thumb(&base, W, H));
        // An RGB picture (a PNG) goes through swscale: a grey picture gives grey cells of about its level.
        let mut rgb = VideoFrame::new(Pixel::RGB24, 320, 240);
        rgb.data_mut(0).fill(120);
        motion.read(&rgb).unwrap();
        assert_eq!((motion.current.cols, motion.current.rows), (64, 48));
        assert!(motion.current.cells.iter().all(|c| c.abs_diff(120) <= 20), "{:?}", &motion.current.cells[..8]);
        assert_eq!(motion.check(&rgb, 0).unwrap(), Decision::First);
        assert_eq!(motion.check(&rgb, 100_000).unwrap(), Decision::Unchanged(0.0));
    }
}
