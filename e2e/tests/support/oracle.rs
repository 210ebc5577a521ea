//! Runs the detection oracle (`oracle.py`: the same ONNX model through Python onnxruntime, with pre- and
//! post-processing written from the models' documentation rather than from detect's code) and compares
//! detect's boxes with it. Shared by detect's golden test and the end-to-end tests (`#[path]`-included).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use framewire_proto::DetectionBox;

/// Tolerances of a box-level match. Not zero because the two sides resize differently (detect in 8-bit
/// fixed point, the oracle in floating point) and run different libjpeg-turbo builds, which moves scores and
/// box edges a little.
pub const MIN_IOU: f32 = 0.9;
pub const MAX_SCORE_DIFF: f32 = 0.02;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SSDLite MobileNetV2 COCO: stretch, NHWC 0..255, labels file.
    Ssd,
    /// YOLOv8: letterbox, NCHW 0..1, names from the ONNX metadata.
    YoloV8,
}

/// What the oracle found in one image.
#[derive(Debug, Clone, Default)]
pub struct OracleImage {
    pub width: u32,
    pub height: u32,
    /// After NMS, best first.
    pub boxes: Vec<DetectionBox>,
    /// Every box over the threshold before NMS, best first.
    pub candidates: Vec<DetectionBox>,
}

fn repo_root() -> PathBuf {
    // Both crates that include this module sit one level below the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn python() -> PathBuf {
    let cache = std::env::var("FRAMEWIRE_CACHE").map(PathBuf::from).unwrap_or_else(|_| repo_root().join(".cache"));
    let p = cache.join("oracle-venv/bin/python");
    assert!(p.exists(), "{} missing: run `scripts/fetch-oracle.sh` (or `make test`)", p.display());
    p
}

/// Runs the oracle over `images` (files, decoded by the oracle itself) with `model` at score threshold
/// `conf` and detect's default NMS IoU (0.45) and box limit (100).
pub fn run(kind: Kind, model: &Path, labels: Option<&Path>, conf: f32, images: &[PathBuf]) -> Vec<OracleImage> {
    let mut cmd = Command::new(python());
    cmd.arg(repo_root().join("e2e/tests/support/oracle.py"))
        .args(["--kind", if kind == Kind::Ssd { "ssd" } else { "yolov8" }, "--model"])
        .arg(model)
        .args(["--conf", &conf.to_string(), "--iou", "0.45", "--max-det", "100"]);
    if let Some(l) = labels {
        cmd.arg("--labels").arg(l);
    }
    let out = cmd.args(images).output().expect("run the oracle");
    assert!(out.status.success(), "oracle failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut found = vec![OracleImage::default(); images.len()];
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let i: usize = f[1].parse().unwrap();
        match f[0] {
            "image" => (found[i].width, found[i].height) = (f[2].parse().unwrap(), f[3].parse().unwrap()),
            "box" => found[i].boxes.push(parse_box(&f)),
            "candidate" => found[i].candidates.push(parse_box(&f)),
            other => panic!("unexpected oracle line {other:?}: {line}"),
        }
    }
    found
}

fn parse_box(f: &[&str]) -> DetectionBox {
    DetectionBox {
        label: f[2].to_string(),
        class_id: f[3].parse().unwrap(),
        score: f[4].parse().unwrap(),
        x1: f[5].parse().unwrap(),
        y1: f[6].parse().unwrap(),
        x2: f[7].parse().unwrap(),
        y2: f[8].parse().unwrap(),
    }
}

pub fn xyxy(b: &DetectionBox) -> [f32; 4] {
    [b.x1, b.y1, b.x2, b.y2]
}

pub fn box_iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
}

/// How closely detect followed the oracle, accumulated over frames.
#[derive(Debug, Default)]
pub struct Agreement {
    pub frames: usize,
    pub matched: usize,
    /// Lowest IoU of a matched pair (1.0 when nothing matched).
    pub min_iou: f32,
    pub max_score_diff: f32,
    /// Pairs where detect kept a different one of several near-equal overlapping candidates than the oracle
    /// did (see `check`); their IoU and score difference are measured against the oracle's candidate.
    pub nms_ties: usize,
    /// Boxes only one side reported, each scored within `MAX_SCORE_DIFF` of the threshold.
    pub near_threshold_unmatched: usize,
}

impl Agreement {
    pub fn new() -> Agreement {
        Agreement { min_iou: 1.0, ..Agreement::default() }
    }

    /// Checks one frame box by box: every box pairs with one of the same class and label, IoU >= MIN_IOU
    /// and score within MAX_SCORE_DIFF. Two tolerances follow from the scores differing by up to
    /// MAX_SCORE_DIFF between the sides:
    /// - NMS ties: NMS keeps the best of a group of overlapping candidates, so when the group's best
    ///   scores are close, small score differences change which one is kept. If every candidate's score
    ///   differs by at most d between the sides, detect can keep candidate c instead of the oracle's k only
    ///   if k - c <= 2d. So detect's box may instead pair with such a contender c (same class, suppressed by
    ///   k, oracle score within 2 x MAX_SCORE_DIFF of k): IoU >= MIN_IOU with c, and its score within
    ///   MAX_SCORE_DIFF of k's (both sides report the group's best score). Seen on SSD's astronaut: four
    ///   person anchors at 0.58-0.66 whose boxes overlap each other by IoU ~0.9.
    /// - The threshold: a box may lack a partner only when its score is within MAX_SCORE_DIFF of `conf`,
    ///   since such a box can fall on either side of it.
    pub fn check(&mut self, what: &str, conf: f32, got: &[DetectionBox], want: &OracleImage) {
        self.frames += 1;
        let mut unused: Vec<&DetectionBox> = got.iter().collect();
        let mut sorted: Vec<&DetectionBox> = want.boxes.iter().collect();
        sorted.sort_by(|a, b| b.score.total_cmp(&a.score));
        for w in sorted {
            let best = unused
                .iter()
                .enumerate()
                .filter(|(_, g)| g.label == w.label && g.class_id == w.class_id)
                .map(|(i, g)| (i, box_iou(xyxy(g), xyxy(w))))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((i, overlap)) = best.filter(|b| b.1 >= MIN_IOU) {
                let g = unused.remove(i);
                self.pair(what, g, w, overlap);
            } else if let Some((i, c)) = tie(&unused, w, &want.candidates) {
                let g = unused.remove(i);
                self.nms_ties += 1;
                self.pair(what, g, w, box_iou(xyxy(g), xyxy(c)));
            } else {
                let rivals: Vec<&DetectionBox> = want
                    .candidates
                    .iter()
                    .filter(|c| c.class_id == w.class_id && box_iou(xyxy(c), xyxy(w)) > 0.45)
                    .take(8)
                    .collect();
                assert!(
                    w.score < conf + MAX_SCORE_DIFF,
                    "{what}: detect has no box for the oracle's {w:?} (closest same-class IoU {:?}); detect: \
                     {got:?}; the oracle's candidates around it: {rivals:?}",
                    best.map(|b| b.1)
                );
                self.near_threshold_unmatched += 1;
            }
        }
        for g in unused {
            assert!(
                g.score < conf + MAX_SCORE_DIFF,
                "{what}: detect's {g:?} is not in the oracle's output: {:?}",
                want.boxes
            );
            self.near_threshold_unmatched += 1;
        }
    }

    fn pair(&mut self, what: &str, got: &DetectionBox, want: &DetectionBox, overlap: f32) {
        let diff = (got.score - want.score).abs();
        assert!(diff <= MAX_SCORE_DIFF, "{what}: score {} vs oracle {} for {want:?}", got.score, want.score);
        self.matched += 1;
        self.min_iou = self.min_iou.min(overlap);
        self.max_score_diff = self.max_score_diff.max(diff);
    }
}

/// An unused detect box, and the oracle's contender it matches, that stands for the oracle's kept box
/// `kept` in an NMS near-tie (see `Agreement::check`).
fn tie<'a>(
    unused: &[&'a DetectionBox],
    kept: &DetectionBox,
    candidates: &'a [DetectionBox],
) -> Option<(usize, &'a DetectionBox)> {
    let same_class = |a: &DetectionBox, b: &DetectionBox| a.label == b.label && a.class_id == b.class_id;
    candidates
        .iter()
        .filter(|c| same_class(c, kept) && kept.score - c.score <= 2.0 * MAX_SCORE_DIFF)
        // Suppressed by `kept` under detect's default NMS IoU.
        .filter(|c| box_iou(xyxy(c), xyxy(kept)) > 0.45)
        .find_map(|c| {
            let i = unused.iter().position(|g| {
                same_class(g, c)
                    && box_iou(xyxy(g), xyxy(c)) >= MIN_IOU
                    && (g.score - kept.score).abs() <= MAX_SCORE_DIFF
            })?;
            Some((i, c))
        })
}
