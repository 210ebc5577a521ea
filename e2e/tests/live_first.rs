//! Live-first behaviour against a real broker, the real model and real video: motion gating in ingest (frames
//! left out are counted and told apart from losses, a person standing still keeps one event through a gated
//! stretch), stale frames skipped by detect with a record each, results in order per camera across workers,
//! and the latency by stage the records carry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use framewire_proto::{Detections, Frame, Skipped};

use common::subscribers::{Topics, query};
use common::*;

/// A still picture held for `seconds` at `fps` with temporal sensor noise, as a fixed camera films a still scene.
fn noisy_still(image: &Path, seconds: u32, fps: u32, out: &Path) {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-loop", "1", "-i"])
        .arg(image)
        .args(["-t", &seconds.to_string(), "-r", &fps.to_string()])
        .args(["-vf", "scale=512:512,noise=alls=6:allf=t,format=yuv420p", "-c:v", "libx264"])
        .arg(out)
        .status()
        .expect("ffmpeg CLI (make setup installs it)");
    assert!(status.success());
}

/// Every stage time a Frame's ingest records is set, in order.
fn assert_ingest_times(f: &Frame) {
    let t = f.stage_times.unwrap_or_else(|| panic!("frame {} has no stage times", f.seq));
    assert!(t.decoded_us > 0 && t.decoded_us <= t.encoded_us && t.encoded_us <= t.published_us, "{t:?}");
}

#[test]
fn slow_motion_gated_frames_are_counted_apart_from_losses_and_a_still_person_keeps_one_event() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    // 12 s of the astronaut standing still, at 10 fps: 120 frames that differ only by sensor noise.
    let clip = dir.path().join("still-person.mp4");
    noisy_still(&media("astronaut.png"), 12, 10, &clip);
    let t = Topics::new();
    // Paced as a camera would send it, so capture times span the 12 s and the event's gap (3 s) is tested
    // against the keep-alive (2 s).
    let flags = ["--motion", "--motion-keepalive", "2s", "--realtime", "--summary-format", "json"];
    let printed = broker.ingest_ok("astro", &t.frames, &clip, &flags);
    let published = ingest_count(&printed, "astro", "published");
    let unchanged = ingest_count(&printed, "astro", "unchanged");
    let keepalive = ingest_count(&printed, "astro", "keepalive");
    eprintln!("motion gating: {published} published ({keepalive} keep-alives), {unchanged} left out unchanged");
    assert_eq!(published + unchanged, 120, "every decoded frame is either published or counted as unchanged");
    // The first frame, then one keep-alive every 2 s of stream time: about 6 more.
    assert!((5..=10).contains(&published), "a still scene sends keep-alives only: {published}");
    assert_eq!(ingest_count(&printed, "astro", "dropped"), 0);

    // On the wire: no seq gap (nothing lost), and the frames left out are told by the next Frame.
    let frames = all_frames(&broker, &t.frames);
    assert_eq!(frames.len() as u64, published);
    let seqs: Vec<u64> = frames.iter().map(|f| f.seq).collect();
    assert_eq!(seqs, (0..published).collect::<Vec<_>>(), "gated frames take no seq: a gap is always a loss");
    // Frames left out after the last one sent (the end of the file) are in the counters only.
    let told = frames.iter().map(|f| u64::from(f.unchanged_before)).sum::<u64>();
    assert!(told <= unchanged && unchanged - told < 20, "{told} told by the frames, {unchanged} counted");
    assert_eq!(frames.iter().filter(|f| f.keepalive).count() as u64, keepalive);
    assert_eq!(frames[0].unchanged_before, 0);
    assert!(!frames[0].keepalive, "the first frame is sent because there is no reference yet");
    frames.iter().for_each(assert_ingest_times);

    // Detected and stored: the records carry the counts on, and the person standing still is one event.
    let detect = broker.detect(&t.frames, &t.detections, &unique("group"));
    let dets = broker.read_detections(&t.detections, published as usize, Duration::from_secs(120));
    drop(detect);
    assert_eq!(dets.len() as u64, published);
    let by_seq: BTreeMap<u64, &Detections> = dets.iter().map(|d| (d.seq, d)).collect();
    for f in &frames {
        assert_eq!(by_seq[&f.seq].unchanged_before, f.unchanged_before, "seq {}", f.seq);
        assert!(by_seq[&f.seq].boxes.iter().any(|b| b.label == "person"), "seq {}", f.seq);
    }
    let db = format!("sqlite://{}/fw.db", dir.path().display());
    let snaps = dir.path().join("snaps");
    let mut args = t.store_args(&db, "store", snaps.to_str().unwrap());
    args.extend(["--idle-exit", "4s", "--summary-format", "json"]);
    let out = broker.cmd("subscribe").args(&args).output().unwrap();
    assert!(out.status.success(), "store failed: {}", stderr(&out));
    let summary = summary_json(&stderr(&out), "store");
    assert_eq!(summary["frames"].as_u64(), Some(published), "{summary}");
    assert_eq!(summary["unchanged"].as_u64(), Some(told), "{summary}");
    let events = query(&broker, &db, &["--events"]);
    let people: Vec<&serde_json::Value> = events.iter().filter(|e| e["label"] == "person").collect();
    assert_eq!(people.len(), 1, "one event through the gated stretch: {events:?}");
    assert_eq!(people[0]["frames"].as_u64(), Some(published), "{:?}", people[0]);
    let span_ms = people[0]["end_ms"].as_i64().unwrap() - people[0]["start_ms"].as_i64().unwrap();
    assert!(span_ms >= 9_000, "the event spans the still stretch, not one frame: {span_ms} ms");
}

#[test]
fn slow_stale_frames_get_a_skipped_record_and_results_stay_in_order_per_camera_across_workers() {
    let broker = Broker::start();
    let (frames, results) = (unique("frames"), unique("results"));
    broker.create_topic(&frames, 4);
    // A backlog: two cameras' frames published now, read by detect only once they are older than its limit.
    let clip = media("bikes.mp4");
    for camera in ["old-a", "old-b"] {
        broker.ingest_ok(camera, &frames, &clip, &["--fps", "2"]);
    }
    let backlog = all_frames(&broker, &frames).len();
    assert!(backlog >= 36, "{backlog}");
    std::thread::sleep(Duration::from_secs(3));

    let group = unique("group");
    let mut detect = broker.detect_with(
        &frames,
        &results,
        &group,
        &["--max-frame-age", "2s", "--workers", "2", "--summary-format", "json"],
    );
    let stale = broker.read_detections(&results, backlog, Duration::from_secs(120));
    assert_eq!(stale.len(), backlog, "every frame of the backlog gets a record");
    for d in &stale {
        assert_eq!(d.skipped(), Skipped::Stale, "{} #{} is 3 s old, over the 2 s limit", d.camera_id, d.seq);
        assert!(d.boxes.is_empty() && d.inference_ms == 0.0);
        assert!(!d.model_version.is_empty(), "a skipped record still names the model version");
        let t = d.stage_times.unwrap();
        assert!(t.consumed_us > 0 && t.produced_us >= t.consumed_us && t.inference_start_us == 0, "{t:?}");
    }

    // Two live cameras (files paced at their own speed, fresh capture times) while detect runs.
    let fresh: Vec<_> = ["live-a", "live-b"]
        .map(|camera| {
            let (frames, clip) = (frames.clone(), clip.clone());
            let cmd = broker.cmd("ingest");
            std::thread::spawn(move || {
                let mut cmd = cmd;
                let out = cmd
                    .args([
                        "--camera",
                        camera,
                        "--topic",
                        &frames,
                        "--fps",
                        "4",
                        "--realtime",
                        "--summary-format",
                        "json",
                    ])
                    .arg(&clip)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{}", stderr(&out));
                ingest_count(&stdout(&out), camera, "published")
            })
        })
        .into_iter()
        .collect();
    let fresh: u64 = fresh.into_iter().map(|h| h.join().unwrap()).sum();
    let total = backlog + fresh as usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut all = Vec::new();
    while Instant::now() < deadline {
        all = read_all(&broker, &results, Duration::from_secs(30));
        if all.len() >= total {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    detect.assert_running();
    let out = detect.stop();
    assert!(out.status.success(), "{}", stderr(&out));
    let records: Vec<(i32, Detections)> = all
        .iter()
        .map(|m| {
            let d = framewire_proto::decode_detections(rdkafka::Message::payload(m).unwrap()).unwrap();
            (rdkafka::Message::partition(m), d)
        })
        .collect();

    // One record per frame published, none twice; the detect summary counts the skipped ones.
    let keys: BTreeSet<(String, u64)> = records.iter().map(|(_, d)| (d.camera_id.clone(), d.seq)).collect();
    assert_eq!(keys.len(), total, "records == frames published ({backlog} backlog + {fresh} live)");
    assert_eq!(records.len(), total, "no record twice");
    let skipped = records.iter().filter(|(_, d)| d.skipped() == Skipped::Stale).count() as u64;
    let summary = summary_json(&stdout(&out), "detect");
    assert_eq!(summary["skipped_stale"].as_u64(), Some(skipped), "{summary}");
    // Each live camera got results through the model, and each result's stage times are in order.
    for camera in ["live-a", "live-b"] {
        let done: Vec<&Detections> =
            records.iter().map(|(_, d)| d).filter(|d| d.camera_id == camera && d.skipped() == Skipped::None).collect();
        assert!(!done.is_empty(), "{camera} got results");
        for d in done {
            let t = d.stage_times.unwrap();
            let order = [
                t.decoded_us,
                t.encoded_us,
                t.published_us,
                t.consumed_us,
                t.inference_start_us,
                t.inference_end_us,
                t.produced_us,
            ];
            assert!(order[0] > 0 && order.windows(2).all(|w| w[0] <= w[1]), "{camera} #{}: {t:?}", d.seq);
        }
    }
    // In order per camera: a camera's records sit in one partition, in seq order, whichever worker ran them.
    let mut last: BTreeMap<&str, (i32, u64)> = BTreeMap::new();
    for (partition, d) in &records {
        if let Some((p, seq)) = last.insert(&d.camera_id, (*partition, d.seq)) {
            assert_eq!(p, *partition, "{} stays in one partition", d.camera_id);
            assert!(d.seq > seq, "{} #{} after #{seq}", d.camera_id, d.seq);
        }
    }
}

#[test]
fn tail_reports_the_latency_of_each_stage() {
    let broker = Broker::start();
    let t = Topics::new();
    let mut detect = broker.detect(&t.frames, &t.detections, &unique("group"));
    let tail = broker.service(
        "subscribe",
        &["tail", "--topic", &t.detections, "--count", "20", "--idle-exit", "90s", "--summary-format", "json"],
    );
    std::thread::sleep(Duration::from_secs(2));
    broker.ingest_ok("bikes", &t.frames, &media("bikes.mp4"), &["--fps", "2"]);
    assert_eq!(broker.read_detections(&t.detections, 20, Duration::from_secs(90)).len(), 20);
    // The tail stops by itself at --count 20; a moment for it to print its summary.
    std::thread::sleep(Duration::from_secs(2));
    let out = tail.stop();
    detect.assert_running();
    let summary = summary_json(&stderr(&out), "tail");
    assert_eq!(summary["frames"].as_u64(), Some(20), "{summary}");
    let stages: BTreeMap<String, (f64, f64)> = summary["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (s["stage"].as_str().unwrap().to_string(), (s["p50_ms"].as_f64().unwrap(), s["p99_ms"].as_f64().unwrap()))
        })
        .collect();
    let names: Vec<&str> = stages.keys().map(String::as_str).collect();
    for stage in framewire_proto::stages::STAGES {
        assert!(stages.contains_key(stage), "{stage} missing from {names:?}");
    }
    let (inference, total) = (stages["inference"], stages["total"]);
    assert!(inference.0 > 0.0 && inference.0 <= inference.1, "{inference:?}");
    assert!(total.0 >= inference.0, "the whole is at least the model's part: {stages:?}");
    assert_eq!(summary["latency_p50_ms"].as_f64().map(f64::round), Some(total.0.round()), "{summary}");
}
