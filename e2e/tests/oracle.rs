//! detect's boxes checked against an independent oracle (e2e/tests/support/oracle.py: the same ONNX model
//! through Python onnxruntime, with resize, decoding and NMS written from the models' documentation), box by
//! box, on real photos and video frames of five sizes, for the SSD model and a YOLOv8 model.
//!
//! The oracle reads the JPEGs that actually went through Kafka (the Frames on the input topic), not the
//! source images: those bytes are all detect ever sees, so comparing against the source would charge
//! ingest's JPEG loss to detect, and handing detect raw pixels would bypass the product's wire format. Each
//! side still decodes the JPEG itself (detect with the turbojpeg crate, the oracle with simplejpeg's own
//! libjpeg-turbo), so decoding is part of what is compared.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "support/oracle.rs"]
mod oracle;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use oracle::{Agreement, Kind};

/// Real photos and video frames, landscape, square and portrait, in name order (one camera reads an image
/// folder in name order, so seq i is the i-th file).
fn image_folder(dir: &Path) -> PathBuf {
    let folder = dir.join("images");
    std::fs::create_dir(&folder).unwrap();
    for (src, name) in
        [("astronaut.png", "0-astronaut.png"), ("chelsea.png", "1-chelsea.png"), ("rocket.jpg", "2-rocket.jpg")]
    {
        std::fs::copy(media(src), folder.join(name)).unwrap();
    }
    // A portrait crop (300x512) of the astronaut, so that the YOLO letterbox pads left and right too.
    ffmpeg(
        &["-i", media("astronaut.png").to_str().unwrap(), "-vf", "crop=300:512:110:0"],
        &folder.join("3-portrait.png"),
    );
    // bikes.mp4 (640x272): the cyclist, the van and the road at different moments.
    for (i, t) in ["1", "3", "5", "9"].iter().enumerate() {
        let bikes = media("bikes.mp4");
        ffmpeg(
            &["-ss", t, "-i", bikes.to_str().unwrap(), "-frames:v", "1"],
            &folder.join(format!("{}-bikes.png", 4 + i)),
        );
    }
    folder
}

fn ffmpeg(args: &[&str], out: &Path) {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .arg(out)
        .status()
        .expect("ffmpeg CLI (make setup)");
    assert!(status.success(), "ffmpeg {args:?}");
}

const FRAMES: usize = 8;

/// Publishes the image folder with ingest and returns the input topic and, per seq, the JPEG file of the
/// Frame as it was read back from Kafka.
fn publish(broker: &Broker, dir: &Path) -> (String, Vec<PathBuf>) {
    let input = unique("frames");
    let printed = broker.ingest_ok("oracle", &input, &image_folder(dir), &[]);
    assert!(printed.contains(&format!("published {FRAMES} frames")), "{printed}");
    let mut frames = broker.read_frames(&input, FRAMES, Duration::from_secs(60));
    assert_eq!(frames.len(), FRAMES, "frames on the input topic");
    frames.sort_by_key(|f| f.seq);
    let jpegs: Vec<PathBuf> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            assert_eq!(f.seq, i as u64);
            let p = dir.join(format!("kafka-{i}.jpg"));
            std::fs::write(&p, &f.image).unwrap();
            p
        })
        .collect();
    (input, jpegs)
}

/// Reads detect's results (one per frame) and checks each against the oracle's boxes for the same frame.
fn check(broker: &Broker, output: &str, conf: f32, want: &[oracle::OracleImage]) -> Agreement {
    let mut results = broker.read_detections(output, FRAMES, Duration::from_secs(180));
    assert_eq!(results.len(), FRAMES, "one result per frame");
    results.sort_by_key(|d| d.seq);
    let mut agreement = Agreement::new();
    let mut sizes = std::collections::BTreeSet::new();
    for (i, (got, want)) in results.iter().zip(want).enumerate() {
        assert_eq!(got.seq, i as u64);
        assert_eq!((got.width, got.height), (want.width, want.height), "frame {i}: size");
        sizes.insert((got.width, got.height));
        agreement.check(&format!("frame {i} ({}x{})", got.width, got.height), conf, &got.boxes, want);
    }
    assert_eq!(sizes.len(), 5, "five frame sizes: {sizes:?}");
    let per_frame: Vec<usize> = results.iter().map(|d| d.boxes.len()).collect();
    eprintln!("boxes per frame: {per_frame:?}");
    // Frames with boxes differ in where they are, so a result handed to the wrong frame cannot match; only
    // empty frames could swap unnoticed, so enough frames must have boxes.
    assert!(per_frame.iter().filter(|&&n| n > 0).count() >= 3, "{per_frame:?}");
    agreement
}

#[test]
fn ssd_boxes_match_the_oracle_on_real_images() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let (input, jpegs) = publish(&broker, dir.path());
    // Below the default 0.5, to compare more boxes per frame (the default is checked by pipeline.rs).
    let conf = 0.3;
    let labels = cache().join("models/ssdlite_mobilenet_v2_coco.labels.txt");
    let want = oracle::run(Kind::Ssd, &model(), Some(&labels), conf, &jpegs);

    let output = unique("detections");
    let detect = broker.detect_with(&input, &output, &unique("group"), &["--conf", &conf.to_string()]);
    let a = check(&broker, &output, conf, &want);
    eprintln!("SSD vs oracle: {a:?}");
    assert!(a.matched >= 6, "too few boxes to compare: {a:?}");
    let out = detect.stop();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The YOLO model has a dynamic batch dimension: with every frame already on the topic and --max-batch 4,
/// detect runs batches of four different frames, and each result must still match the oracle's boxes for
/// its own frame (a result shifted to another batch position would not).
#[test]
fn yolo_batches_of_different_frames_match_the_oracle_frame_by_frame() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let (input, jpegs) = publish(&broker, dir.path());
    let model = cache().join("test-models/yolov8n-nudenet-320.onnx");
    assert!(model.exists(), "{} missing: run scripts/fetch-test-models.sh", model.display());
    // This model finds few of its 18 classes in these images: a low threshold gives boxes to compare.
    let conf = 0.1;
    let want = oracle::run(Kind::YoloV8, &model, None, conf, &jpegs);

    let output = unique("detections");
    let metrics = format!("127.0.0.1:{}", free_port());
    let conf_arg = conf.to_string();
    #[rustfmt::skip]
    let args = [
        "--model", model.to_str().unwrap(), "--input-topic", &input, "--output-topic", &output,
        "--group", &unique("group"), "--conf", &conf_arg, "--max-batch", "4", "--max-batch-wait", "2s",
        "--metrics-listen", &metrics,
    ];
    let detect = broker.service("detect", &args);
    let a = check(&broker, &output, conf, &want);
    eprintln!("YOLOv8 vs oracle: {a:?}");
    assert!(a.matched >= 4, "too few boxes to compare: {a:?}");

    // The frames really went through in batches: every frame counted once, and some call held more than two.
    let exposition = scrape_when_up(&metrics, Duration::from_secs(10));
    let sample = |name: &str| -> f64 {
        exposition
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {exposition}"))
    };
    assert_eq!(sample("framewire_detect_batch_size_sum"), FRAMES as f64);
    let calls = sample("framewire_detect_batch_size_count");
    let up_to_two = sample("framewire_detect_batch_size_bucket{le=\"2\"}");
    assert!(up_to_two < calls, "no batch of more than two frames ({calls} calls, {up_to_two} of them <= 2)");
    eprintln!("YOLOv8: {FRAMES} frames in {calls} inference calls");
    let out = detect.stop();
    assert!(out.status.success(), "{}", stderr(&out));
}
