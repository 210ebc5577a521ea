//! File -> ingest -> Kafka -> detect -> Kafka -> subscribe tail, on a real broker with the real model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "support/oracle.rs"]
mod oracle;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use framewire_proto::DetectionBox;

#[test]
fn astronaut_clip_every_frame_detected_once_with_the_person() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("astronaut.mp4");
    still_clip(&media("astronaut.png"), 2, 5, &clip);
    let (input, output) = (unique("frames"), unique("detections"));
    let detect = broker.detect(&input, &output, &unique("group"));

    let printed = broker.ingest_ok("astro", &input, &clip, &[]);
    assert!(printed.contains("published 10 frames of camera astro"), "{printed}");

    // Read the results the way a user does: subscribe tail --json.
    let tail = broker
        .cmd("subscribe")
        .args(["tail", "--topic", &output, "--json", "--from-beginning", "--count", "10", "--idle-exit", "60s"])
        .output()
        .unwrap();
    assert!(tail.status.success(), "{}", stderr(&tail));
    let lines: Vec<serde_json::Value> = stdout(&tail)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let seqs: BTreeSet<u64> = lines.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..10).collect(), "every published frame has a result");

    // The expected boxes: the oracle (the same model through Python onnxruntime, written independently of
    // detect) on the JPEGs that went through Kafka, at detect's default threshold.
    let mut frames = broker.read_frames(&input, 10, Duration::from_secs(30));
    frames.sort_by_key(|f| f.seq);
    let jpegs: Vec<PathBuf> = frames
        .iter()
        .map(|f| {
            let p = dir.path().join(format!("{}.jpg", f.seq));
            std::fs::write(&p, &f.image).unwrap();
            p
        })
        .collect();
    let labels = cache().join("models/ssdlite_mobilenet_v2_coco.labels.txt");
    let want = oracle::run(oracle::Kind::Ssd, &model(), Some(&labels), 0.5, &jpegs);
    let mut agreement = oracle::Agreement::new();
    for v in &lines {
        assert_eq!(v["camera"], "astro");
        assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(512), Some(512)));
        assert!(v["model"].as_str().unwrap().starts_with("ssdlite_mobilenet_v2_coco@"));
        assert!(v["inference_ms"].as_f64().unwrap() > 0.0);
        let got: Vec<DetectionBox> = v["detections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let b: Vec<f32> = d["box"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
                DetectionBox {
                    label: d["label"].as_str().unwrap().to_string(),
                    class_id: d["class_id"].as_u64().unwrap() as u32,
                    score: d["score"].as_f64().unwrap() as f32,
                    x1: b[0],
                    y1: b[1],
                    x2: b[2],
                    y2: b[3],
                }
            })
            .collect();
        assert!(got.iter().any(|b| b.label == "person" && b.class_id == 1), "no person in {v}");
        let seq = v["seq"].as_u64().unwrap() as usize;
        agreement.check(&format!("frame {seq}"), 0.5, &got, &want[seq]);
    }
    eprintln!("SSD vs oracle over the clip: {agreement:?}");

    // Exactly one record per frame on the topic (no duplicates in a clean run).
    let all = broker.read_detections(&output, 11, Duration::from_secs(3));
    assert_eq!(all.len(), 10, "one Detections per frame");

    let out = detect.stop();
    assert!(out.status.success(), "detect exit: {}", stderr(&out));
    assert!(stdout(&out).contains("detected 10 frames"), "{}", stdout(&out));
}

#[test]
fn bikes_video_yields_people_bicycles_and_vehicles() {
    let broker = Broker::start();
    let (input, output) = (unique("frames"), unique("detections"));
    let _detect = broker.detect(&input, &output, &unique("group"));
    let printed = broker.ingest_ok("bikes", &input, &media("bikes.mp4"), &["--fps", "5"]);
    // 10 s at 25 fps sampled to 5 fps by stream time.
    assert!(printed.contains("published 50 frames"), "{printed}");

    let results = broker.read_detections(&output, 50, Duration::from_secs(90));
    let seqs: BTreeSet<u64> = results.iter().map(|d| d.seq).collect();
    assert_eq!(seqs, (0..50).collect());
    let mut labels: BTreeMap<String, usize> = BTreeMap::new();
    for d in &results {
        assert_eq!((d.width, d.height), (640, 272));
        for b in &d.boxes {
            *labels.entry(b.label.clone()).or_default() += 1;
            assert!(b.x1 >= 0.0 && b.y1 >= 0.0 && b.x2 <= 640.0 && b.y2 <= 272.0, "box outside frame: {b:?}");
            assert!(b.x1 < b.x2 && b.y1 < b.y2 && b.score >= 0.5);
        }
    }
    assert!(labels.get("person").copied().unwrap_or(0) >= 5, "{labels:?}");
    assert!(labels.get("bicycle").copied().unwrap_or(0) >= 3, "{labels:?}");
    assert!(labels.get("car").or(labels.get("truck")).copied().unwrap_or(0) >= 3, "{labels:?}");
}

#[test]
fn frames_stay_in_camera_order_within_a_partition() {
    let broker = Broker::start();
    let input = unique("frames");
    broker.ingest_ok("c1", &input, &media("bikes.mp4"), &["--fps", "10"]);
    let msgs = broker.read(&input, 100, Duration::from_secs(30));
    assert_eq!(msgs.len(), 100);
    use rdkafka::Message;
    let partitions: BTreeSet<i32> = msgs.iter().map(|m| m.partition()).collect();
    assert_eq!(partitions.len(), 1, "one camera, one partition");
    let frames: Vec<_> = msgs.iter().map(|m| framewire_proto::decode_frame(m.payload().unwrap()).unwrap()).collect();
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.seq, i as u64, "seq increases by one in offset order");
        assert_eq!(msgs[i].key(), Some(&b"c1"[..]));
        assert_eq!(&f.image[..2], &[0xff, 0xd8]);
    }
    // Sampled by stream time: frame i is the first 25 fps frame (40 ms apart) at or after tick i * 100 ms.
    for (i, f) in frames.iter().enumerate() {
        let tick = i as i64 * 100_000;
        assert!(
            f.stream_time_us >= tick - 1_000 && f.stream_time_us < tick + 40_000,
            "frame {i} at {} us",
            f.stream_time_us
        );
    }
}

#[test]
fn a_replica_stopped_mid_stream_hands_over_without_loss_or_duplicates() {
    let broker = Broker::start();
    let (input, output, group) = (unique("frames"), unique("detections"), unique("group"));
    let printed = broker.ingest_ok("bikes", &input, &media("bikes.mp4"), &[]);
    assert!(printed.contains("published 250 frames"), "{printed}");

    // First replica: stop it (SIGTERM) once it is part-way through.
    let first = broker.detect(&input, &output, &group);
    let partial = broker.read_detections(&output, 15, Duration::from_secs(60));
    assert!(partial.len() >= 15, "first replica produced {}", partial.len());
    let out = first.stop();
    assert!(out.status.success(), "graceful stop exits 0: {}", stderr(&out));
    let done_by_first = broker.read_detections(&output, 250, Duration::from_secs(3)).len();
    assert!(done_by_first < 250, "the stop came too late to test a hand-over ({done_by_first} done)");

    // Second replica in the same group resumes from the committed offsets.
    let second = broker.detect(&input, &output, &group);
    let all = broker.read_detections(&output, 250, Duration::from_secs(90));
    let out = second.stop();
    let seqs: BTreeSet<u64> = all.iter().map(|d| d.seq).collect();
    assert_eq!(seqs, (0..250).collect(), "every frame detected; second replica said:\n{}", stderr(&out));
    // A clean stop drains and commits: the next owner repeats nothing.
    let total = broker.read_detections(&output, 251, Duration::from_secs(3)).len();
    assert_eq!(total, 250, "duplicates after a graceful hand-over: {}", total - 250);
}
