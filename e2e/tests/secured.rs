//! The pipeline against a broker secured as managed Kafka is: SASL_SSL, SCRAM-SHA-512, the broker's certificate
//! verified against a CA made by the test (host name included). Every binary gets its settings the way a user
//! gives them, in FRAMEWIRE_KAFKA_OPTIONS; the harness's own readers use the same.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

#[test]
fn sasl_ssl_pipeline_detects_every_frame_for_tail_store_and_web() {
    let began = Instant::now();
    let broker = SecuredBroker::start();
    eprintln!("secured broker (tansu + user + stunnel) up in {:?}", began.elapsed());
    let options = broker.options();
    for line in ["security.protocol=SASL_SSL", "sasl.mechanisms=SCRAM-SHA-512", "sasl.username=", "ssl.ca.location="] {
        assert!(options.lines().any(|l| l.starts_with(line)), "{line} missing from FRAMEWIRE_KAFKA_OPTIONS");
    }
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("astronaut.mp4");
    // 6 s at 5 fps, paced in real time so the web view sees it live.
    still_clip(&media("astronaut.png"), 6, 5, &clip);
    let want: BTreeSet<u64> = (0..30).collect();
    let (frames, dets, group) = (unique("frames"), unique("dets"), unique("group"));
    let detect = broker.detect_with(&frames, &dets, &group, &["--summary-format", "json"]);
    // The web view's consumers start at the newest message: it runs before the frames come.
    let (web, web_metrics) = (loopback(), loopback());
    let _web = broker.service(
        "subscribe",
        &["--metrics-listen", &web_metrics, "web", "--listen", &web, "--topic", &dets, "--frames-topic", &frames],
    );
    wait_listening(&web);

    let printed = broker.ingest_ok("astro", &frames, &clip, &["--realtime", "--summary-format", "json"]);
    assert_eq!(ingest_count(&printed, "astro", "published"), 30, "{printed}");

    // subscribe tail: a result for every frame, each with the astronaut.
    let tail = broker
        .cmd("subscribe")
        .args(["tail", "--topic", &dets, "--json", "--from-beginning", "--count", "30", "--idle-exit", "60s"])
        .args(["--summary-format", "json"])
        .output()
        .unwrap();
    assert!(tail.status.success(), "tail: {}", stderr(&tail));
    let lines: Vec<serde_json::Value> = stdout(&tail).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.iter().map(|v| v["seq"].as_u64().unwrap()).collect::<BTreeSet<_>>(), want);
    for v in &lines {
        assert!(v["detections"].as_array().unwrap().iter().any(|d| d["label"] == "person"), "no person in {v}");
    }
    assert_eq!(summary_json(&stderr(&tail), "tail")["frames"], 30);

    // Read back over SASL_SSL: every frame on the input answered once on the output.
    let tally = Tally::measure(&broker, &frames, &dets, Duration::from_secs(60));
    assert_eq!(tally, Tally { frames_in: 30, frames_out: 30, lost: 0, duplicates: 0 });

    // subscribe store into SQLite: every frame stored, read back with subscribe query.
    let db = format!("sqlite://{}/fw.db", dir.path().display());
    let snaps = dir.path().join("snaps");
    let store = broker
        .cmd("subscribe")
        .args(["store", "--db", &db, "--topic", &dets, "--frames-topic", &frames, "--group", &unique("store")])
        .args(["--snapshot-dir", snaps.to_str().unwrap(), "--idle-exit", "4s", "--summary-format", "json"])
        .output()
        .unwrap();
    assert!(store.status.success(), "store: {}", stderr(&store));
    assert_eq!(summary_json(&stderr(&store), "store")["frames"], 30, "{}", stderr(&store));
    let query = broker.cmd("subscribe").args(["query", "--db", &db, "--json", "--limit", "1000000"]).output().unwrap();
    assert!(query.status.success(), "query: {}", stderr(&query));
    let rows: Vec<serde_json::Value> = stdout(&query).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let stored: BTreeSet<u64> =
        rows.iter().filter(|r| r["label"] == "person").map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(stored, want, "a person row for every frame");

    // subscribe web showed the detections as they came.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = total(&scrape(&web_metrics), "framewire_web_messages_total").unwrap_or(0.0);
        let state = http_get(&web, "/api/state", None).map(|(_, _, body)| body).unwrap_or_default();
        let state: serde_json::Value = serde_json::from_str(&state).unwrap_or_default();
        let astro = state["cameras"].as_array().and_then(|c| c.iter().find(|c| c["camera"] == "astro").cloned());
        let person = astro.as_ref().and_then(|c| c["latest"]["boxes"].as_array().cloned()).unwrap_or_default();
        if seen >= 1.0 && person.iter().any(|b| b["label"] == "person") {
            eprintln!("web view: {seen} messages; astro {}", astro.unwrap()["frames"]);
            break;
        }
        assert!(Instant::now() < deadline, "the web view showed no detection of astro: {seen} messages, {state}");
        std::thread::sleep(Duration::from_millis(250));
    }

    let out = detect.stop();
    assert!(out.status.success(), "detect: {}", stderr(&out));
    assert_eq!(summary_json(&stdout(&out), "detect")["detected"], 30);
    eprintln!("secured pipeline test: {:?}", began.elapsed());
}

#[test]
fn zstd_compressed_frames_are_consumed_whole() {
    let broker = SecuredBroker::start();
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("astronaut.mp4");
    still_clip(&media("astronaut.png"), 2, 5, &clip);
    let (frames, dets, group) = (unique("frames"), unique("dets"), unique("group"));
    let detect = broker.detect_with(&frames, &dets, &group, &["--summary-format", "json"]);
    let printed =
        broker.ingest_ok("astro", &frames, &clip, &["-X", "compression.type=zstd", "--summary-format", "json"]);
    assert_eq!(ingest_count(&printed, "astro", "published"), 10, "{printed}");

    // The records came back from the broker as zstd message sets (not just configured so).
    assert_eq!(fetched_codecs(&broker, &frames, 10), BTreeSet::from(["zstd".to_string()]));

    let tail = broker
        .cmd("subscribe")
        .args(["tail", "--topic", &dets, "--json", "--from-beginning", "--count", "10", "--idle-exit", "60s"])
        .output()
        .unwrap();
    assert!(tail.status.success(), "tail: {}", stderr(&tail));
    let seqs: BTreeSet<u64> = stdout(&tail)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (0..10).collect());
    let tally = Tally::measure(&broker, &frames, &dets, Duration::from_secs(60));
    assert_eq!(tally, Tally { frames_in: 10, frames_out: 10, lost: 0, duplicates: 0 });
    let out = detect.stop();
    assert!(out.status.success(), "detect: {}", stderr(&out));
    assert_eq!(summary_json(&stdout(&out), "detect")["detected"], 10);
}

/// The compression codec of each message set a consumer fetched from `topic` (librdkafka names it in its
/// `fetch` debug line "Enqueue N message(s) ... (…, zstd)"), once `want` messages were read.
fn fetched_codecs(broker: &Broker, topic: &str, want: usize) -> BTreeSet<String> {
    struct Lines(Mutex<Vec<String>>);
    impl ClientContext for Lines {
        fn log(&self, _: RDKafkaLogLevel, facility: &str, line: &str) {
            if facility == "CONSUME" {
                self.0.lock().unwrap().push(line.to_string());
            }
        }
    }
    impl ConsumerContext for Lines {}
    let consumer: BaseConsumer<Lines> = broker
        .client_config()
        .set("group.id", unique("codecs"))
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10")
        .set("debug", "fetch")
        .set_log_level(RDKafkaLogLevel::Debug)
        .create_with_context(Lines(Mutex::default()))
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let (mut read, deadline) = (0, Instant::now() + Duration::from_secs(60));
    while read < want {
        assert!(Instant::now() < deadline, "read {read} of {want} messages of {topic}");
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            read += 1;
        }
    }
    let lines = consumer.context().0.lock().unwrap().clone();
    // Each line starts with the thread and broker names.
    lines
        .iter()
        .filter_map(|l| l.find("Enqueue ").map(|at| &l[at..]))
        .filter(|l| !l.starts_with("Enqueue 0 ") && l.contains(topic))
        .map(|l| l.trim_end().trim_end_matches(')').rsplit(", ").next().unwrap().to_string())
        .collect()
}

fn loopback() -> String {
    format!("127.0.0.1:{}", free_port())
}
