//! Faults that need a broker which outlives a restart (tansu on SQLite storage).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn slow_broker_restarted_mid_stream_loses_no_file_frame_and_accounts_for_every_live_one() {
    let mut broker = Broker::start_persistent();
    let (frames, dets) = (unique("frames"), unique("dets"));
    let group = unique("group");
    let detect = broker.detect_with(&frames, &dets, &group, &["--instance-id", "d1"]);
    let server = RtspServer::start(free_port());
    // A file paced as a camera (10 s at 10 frames/s) and a live camera at 10 frames/s, in one ingest.
    let ingest = broker.service(
        "ingest",
        &[
            "--topic",
            &frames,
            "--fps",
            "10",
            "--camera",
            &format!("file={}", media("bikes.mp4").display()),
            "--camera",
            &format!("live={}", server.url()),
            "--realtime",
            "--reconnect-max",
            "1s",
        ],
    );
    std::thread::sleep(Duration::from_secs(3));
    broker.kill();
    std::thread::sleep(Duration::from_secs(3));
    broker.restart();
    // The file ends after its 10 s; the live camera keeps going until stopped.
    std::thread::sleep(Duration::from_secs(12));
    let out = ingest.stop();
    let printed = stdout(&out);
    assert!(out.status.success(), "ingest: {}\n{printed}", stderr(&out));
    let file_published = ingest_count(&printed, "file", "published");
    assert_eq!(file_published, 100, "every frame of the file reached the broker: {printed}");

    // detect resumed on its own: every published file frame has a result.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seen = BTreeSet::new();
    let mut results = 0u64;
    while Instant::now() < deadline && seen.len() < 100 {
        let all = broker.read_detections(&dets, usize::MAX, Duration::from_secs(3));
        results = all.iter().filter(|d| d.camera_id == "file").count() as u64;
        seen = all.iter().filter(|d| d.camera_id == "file").map(|d| d.seq).collect();
    }
    assert_eq!(seen, (0..100).collect::<BTreeSet<u64>>(), "every file frame detected after the restart");
    drop(detect);

    // The live camera's frames: everything published is in the topic after the restart; frames the outage
    // cost show as seq gaps, each counted by ingest as dropped.
    let live: Vec<u64> = broker
        .read_frames(&frames, usize::MAX, Duration::from_secs(5))
        .iter()
        .filter(|f| f.camera_id == "live")
        .map(|f| f.seq)
        .collect();
    let live_published = ingest_count(&printed, "live", "published");
    let dropped = ingest_count(&printed, "live", "dropped");
    let unique_live: BTreeSet<u64> = live.iter().copied().collect();
    assert_eq!(unique_live.len() as u64, live_published, "the topic holds what ingest says it published");
    let gaps: u64 = unique_live.iter().zip(unique_live.iter().skip(1)).map(|(a, b)| b - a - 1).sum();
    eprintln!(
        "live: {live_published} published, {dropped} dropped, {gaps} missing seqs; file: {results} results for 100 frames"
    );
    // Whatever the outage cost (ingest buffers a few seconds for the broker) is a seq gap, each one counted.
    assert_eq!(gaps, dropped, "every missing live seq is a counted drop: {printed}");
    report("broker SIGKILLed 3 s, restarted on its storage (file source)", 100, 100, 0, results - 100);
    report(
        &format!("broker SIGKILLed 3 s, restarted on its storage (live source, {dropped} dropped, counted)"),
        live_published + gaps,
        live_published,
        0,
        0,
    );
}
