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
            "--summary-format",
            "json",
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
    let mut results = 0;
    while Instant::now() < deadline && seen.len() < 100 {
        std::thread::sleep(Duration::from_millis(500));
        let all = all_detections(&broker, &dets);
        results = all.iter().filter(|d| d.camera_id == "file").count();
        seen = all.iter().filter(|d| d.camera_id == "file").map(|d| d.seq).collect();
    }
    assert_eq!(seen, (0..100).collect::<BTreeSet<u64>>(), "every file frame detected after the restart");

    // The live camera's frames: everything published is in the topic after the restart; frames the outage
    // cost show as seq gaps, each counted by ingest as dropped.
    let live: Vec<u64> = all_frames(&broker, &frames).iter().filter(|f| f.camera_id == "live").map(|f| f.seq).collect();
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

    // The fault-table rows, read back from both topics while detect works off the live frames.
    let file = Tally::measure_keys(&broker, &frames, &dets, Duration::from_secs(90), |k| k == "file");
    let live = Tally::measure_keys(&broker, &frames, &dets, Duration::from_secs(90), |k| k == "live");
    drop(detect);
    assert_eq!((file.frames_in, file.lost), (100, 0), "{file:?}");
    assert_eq!((live.frames_in, live.lost), (live_published, 0), "{live:?}");
    file.report("broker SIGKILLed 3 s, restarted on its storage (file source)");
    live.report(&format!("broker SIGKILLed 3 s, restarted on its storage (live source, {dropped} dropped, counted)"));
}

#[test]
fn slow_a_stalled_detector_behind_a_live_camera_keeps_memory_bounded_and_reports_its_lag() {
    let broker = Broker::start();
    let (frames, dets) = (unique("frames"), unique("dets"));
    let (detect_addr, ingest_addr) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let detect = broker.detect_with(
        &frames,
        &dets,
        &unique("group"),
        &["--metrics-listen", &detect_addr, "--status-interval", "1s"],
    );
    let server = RtspServer::start(free_port());
    let ingest = broker.service(
        "ingest",
        &[
            "--metrics-listen",
            &ingest_addr,
            "--topic",
            &frames,
            "--camera",
            &format!("cam={}", server.url()),
            "--summary-format",
            "json",
        ],
    );
    let rss = |addr: &str| {
        total(&scrape(addr), "process_resident_memory_bytes")
            .unwrap_or_else(|| panic!("{addr} exports no process_resident_memory_bytes"))
            / 1e6
    };
    // Warm up until detect keeps pace, then note both processes' memory.
    scrape_when_up(&detect_addr, Duration::from_secs(30));
    scrape_when_up(&ingest_addr, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(5));
    let (detect_before, ingest_before) = (rss(&detect_addr), rss(&ingest_addr));

    // The detector stops dead (SIGSTOP) for 20 s: far slower than the 25 frames/s camera. (Long enough that
    // the backlog outlasts a few 1 s lag updates once it resumes: it works 320x240 frames off at ~150/s.)
    let stopped = Stopped::new(detect.pid());
    let mut ingest_peak = 0.0f64;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_secs(1));
        ingest_peak = ingest_peak.max(rss(&ingest_addr));
    }
    drop(stopped);

    // Back: the backlog shows as lag, and memory stays bounded while it is worked off. (The first scrapes may
    // still show the gauge from before the stall: only a backlog-sized lag counts as seen.) Once the camera
    // stops, the lag drains to zero; while it runs, a loaded machine may work frames off no faster than they
    // come.
    let mut lag_peak = 0.0f64;
    let mut detect_peak = 0.0f64;
    let mut lag = None;
    let mut watch = |done: &dyn Fn(f64, Option<f64>) -> bool, within: Duration, what: &str| {
        let deadline = Instant::now() + within;
        loop {
            let m = scrape(&detect_addr);
            let rss = total(&m, "process_resident_memory_bytes").unwrap_or_else(|| panic!("no RSS exported:\n{m}"));
            detect_peak = detect_peak.max(rss / 1e6);
            // Absent while detect re-measures it (the gauge is reset, then set per assigned partition).
            lag = total(&m, "framewire_detect_consumer_lag").or(lag);
            lag_peak = lag_peak.max(lag.unwrap_or(0.0));
            if done(lag_peak, lag) {
                return;
            }
            assert!(Instant::now() < deadline, "{what} within {within:?}: lag {lag:?}, peak {lag_peak}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    watch(&|peak, _| peak >= 100.0, Duration::from_secs(30), "20 s of a 25 fps camera waited in Kafka");
    let out = ingest.stop();
    watch(&|_, lag| lag.is_some_and(|l| l <= 5.0), Duration::from_secs(120), "the backlog drained");
    let printed = stdout(&out);
    let dropped = ingest_count(&printed, "cam", "dropped");
    let published = ingest_count(&printed, "cam", "published");
    eprintln!(
        "lag peak {lag_peak}; detect RSS {detect_before:.0} -> peak {detect_peak:.0} MB; ingest RSS {ingest_before:.0} -> peak {ingest_peak:.0} MB; published {published}, dropped {dropped}"
    );
    assert!(lag_peak >= 100.0, "20 s of a 25 fps camera waited in Kafka: lag peaked at {lag_peak}");
    // Kafka absorbs the backlog: ingest does not buffer it (and drops nothing), detect reads it in bounded
    // fetches.
    assert!(ingest_peak < ingest_before + 50.0, "ingest grew from {ingest_before:.0} to {ingest_peak:.0} MB");
    assert!(detect_peak < detect_before + 100.0, "detect grew from {detect_before:.0} to {detect_peak:.0} MB");
    assert_eq!(dropped, 0, "a slow detector costs the camera nothing: {printed}");
    let tally = Tally::measure(&broker, &frames, &dets, Duration::from_secs(90));
    drop(detect);
    assert_eq!((tally.frames_in, tally.lost), (published, 0), "{tally:?}");
    tally.report("detect stalled 20 s behind a 25 fps live camera (lag reported, memory bounded)");
}

/// A process held with SIGSTOP until this is dropped (also when the test fails, or the process could not
/// take the SIGTERM that ends it).
struct Stopped(String);

impl Stopped {
    fn new(pid: u32) -> Stopped {
        let pid = pid.to_string();
        assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let status = std::process::Command::new("kill").args(["-CONT", &self.0]).status();
        assert!(std::thread::panicking() || status.is_ok_and(|s| s.success()), "SIGCONT {}", self.0);
    }
}
