//! What an operator watches: the Prometheus endpoint of a running detect replica, including consumer lag.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn detect_exports_throughput_and_a_lag_that_drains_to_zero() {
    let broker = Broker::start();
    let (input, output) = (unique("frames"), unique("detections"));
    for cam in ["c1", "c2", "c3"] {
        broker.ingest_ok(cam, &input, &media("bikes.mp4"), &[]);
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let detect =
        broker.detect_with(&input, &output, &unique("group"), &["--metrics-listen", &addr, "--status-interval", "2s"]);

    scrape_when_up(&addr, Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut max_lag, mut drained) = (0.0f64, false);
    let mut last = String::new();
    while Instant::now() < deadline {
        last = scrape(&addr);
        if let Some(lag) = total(&last, "framewire_detect_consumer_lag") {
            max_lag = max_lag.max(lag);
            if max_lag > 0.0 && lag == 0.0 && total(&last, "framewire_detect_frames_total") == Some(750.0) {
                drained = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(max_lag > 0.0, "lag never reported above zero:\n{last}");
    assert!(drained, "lag did not drain to zero with all 750 frames done:\n{last}");
    assert!(total(&last, "framewire_detect_inference_seconds_count").unwrap() >= 750.0);
    assert!(last.contains("framewire_detect_boxes_total{label=\"person\"}"), "{last}");

    let out = detect.stop();
    let log = stderr(&out);
    assert!(log.contains("detect status") && log.contains("lag="), "status lines with lag:\n{log}");
}

/// The metric families an exposition declares (`# TYPE name kind`).
fn families(metrics: &str) -> std::collections::BTreeSet<String> {
    metrics.lines().filter_map(|l| Some(l.strip_prefix("# TYPE ")?.split(' ').next()?.to_string())).collect()
}

/// `promtool check metrics` on an exposition: Prometheus' own lint (naming, HELP, units).
fn promtool_lint(metrics: &str) -> String {
    use std::process::{Command, Stdio};
    let body = metrics.split("\r\n\r\n").nth(1).unwrap_or(metrics).to_string();
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (make setup installs Debian's prometheus package)");
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() { String::new() } else { format!("{}{}", stdout(&out), stderr(&out)) }
}

#[test]
fn slow_counters_agree_across_ingest_and_detect_and_every_dashboard_metric_is_exported() {
    use rdkafka::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let broker = Broker::start();
    let (input, output) = (unique("frames"), unique("detections"));
    let (ingest_addr, detect_addr) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let detect = broker.detect_with(
        &input,
        &output,
        &unique("group"),
        &["--metrics-listen", &detect_addr, "--status-interval", "1s"],
    );

    let tail_addr = format!("127.0.0.1:{}", free_port());
    let tail = broker.service(
        "subscribe",
        &["--metrics-listen", &tail_addr, "tail", "--topic", &output, "--from-beginning", "--summary"],
    );

    // The store and the web view, each with its own metrics endpoint.
    let dir = tempfile::tempdir().unwrap();
    let (store_addr, web_metrics) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let db = format!("sqlite://{}/fw.db", dir.path().display());
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, "[[rule]]\nname = \"people\"\nlabel = \"person\"\nmin_duration = \"2s\"\n").unwrap();
    let store = broker.service(
        "subscribe",
        &[
            "--metrics-listen",
            &store_addr,
            "store",
            "--db",
            &db,
            "--topic",
            &output,
            "--frames-topic",
            &input,
            "--group",
            &unique("store"),
            "--events-topic",
            &unique("events"),
            "--alerts-topic",
            &unique("alerts"),
            "--snapshot-dir",
            dir.path().join("snaps").to_str().unwrap(),
            "--rules",
            rules.to_str().unwrap(),
        ],
    );
    let web_addr = format!("127.0.0.1:{}", free_port());
    let _web = broker.service(
        "subscribe",
        &["--metrics-listen", &web_metrics, "web", "--listen", &web_addr, "--topic", &output, "--frames-topic", &input],
    );

    // A file paced as a live camera (10 s at 10 frames/s), plus one message that is not a Frame.
    let ingest = broker
        .cmd("ingest")
        .args(["--camera", "street", "--realtime", "--fps", "10", "--topic", &input, "--summary-format", "json"])
        .arg(media("bikes.mp4"))
        .env("FRAMEWIRE_METRICS_LISTEN", &ingest_addr)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &broker.addr).create().unwrap();
    producer.send(BaseRecord::to(&input).key("street").payload(&b"\x00 not a frame"[..])).unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();

    // Mid-run: what detect has taken in (done + in flight + dead letters) never exceeds what ingest handed to
    // Kafka plus the one bad message. (Acknowledgements reach ingest's counter a little after the broker has
    // the frame, so the handed-over count is the bound, and the acknowledged count trails it.)
    std::thread::sleep(Duration::from_secs(3));
    let mid_detect = scrape(&detect_addr);
    let mid_ingest = scrape(&ingest_addr);
    let mid_tail = scrape(&tail_addr);
    let mid_store = scrape(&store_addr);
    let mid_web = scrape(&web_metrics);
    let sent_mid = total(&mid_ingest, "framewire_ingest_frames_sampled_total").unwrap();
    let acked_mid = total(&mid_ingest, "framewire_ingest_frames_published_total").unwrap();
    let seen_mid = total(&mid_detect, "framewire_detect_frames_total").unwrap_or(0.0)
        + total(&mid_detect, "framewire_detect_in_flight").unwrap_or(0.0)
        + total(&mid_detect, "framewire_detect_dead_letters_total").unwrap_or(0.0);
    assert!(acked_mid > 10.0 && acked_mid <= sent_mid, "ingest: {acked_mid} acknowledged of {sent_mid} sent after 5 s");
    assert!(seen_mid <= sent_mid + 1.0, "detect took in {seen_mid} but ingest sent {sent_mid}");

    // Every metric the Grafana dashboard queries is exported by a running binary, and Prometheus' lint passes.
    let exported: std::collections::BTreeSet<String> =
        [&mid_ingest, &mid_detect, &mid_tail, &mid_store, &mid_web].into_iter().flat_map(|m| families(m)).collect();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("deploy/grafana/dashboards/framewire.json")).unwrap(),
    )
    .unwrap();
    let mut queried = std::collections::BTreeSet::new();
    for p in dashboard["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            queried.extend(metrics_in(expr));
        }
    }
    let missing: Vec<&String> = queried.difference(&exported).collect();
    assert!(missing.is_empty(), "dashboard queries metrics no binary exports: {missing:?}\nexported: {exported:?}");
    for (name, body) in [
        ("ingest", &mid_ingest),
        ("detect", &mid_detect),
        ("subscribe tail", &mid_tail),
        ("subscribe store", &mid_store),
        ("subscribe web", &mid_web),
    ] {
        let lint = promtool_lint(body);
        assert!(lint.is_empty(), "promtool check metrics on {name}:\n{lint}");
    }

    // At the end: every published frame was detected, the bad message dead-lettered, nothing in flight.
    let out = ingest.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let published = ingest_count(&stdout(&out), "street", "published") as f64;
    assert_eq!(published, 100.0, "{}", stdout(&out));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        last = scrape(&detect_addr);
        if total(&last, "framewire_detect_frames_total") == Some(published)
            && total(&last, "framewire_detect_in_flight") == Some(0.0)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(total(&last, "framewire_detect_frames_total"), Some(published), "{last}");
    assert_eq!(total(&last, "framewire_detect_in_flight"), Some(0.0), "{last}");
    assert!(last.contains("framewire_detect_dead_letters_total{reason=\"not_a_frame\"} 1"), "{last}");
    assert_eq!(total(&last, "framewire_detect_dead_letters_total"), Some(1.0));
    assert!(total(&last, "process_resident_memory_bytes").unwrap() > 1e6, "process metrics exported");
    let latency = total(&last, "framewire_detect_latency_seconds_count").unwrap();
    assert_eq!(latency, published, "one capture-to-detection latency per frame");
    // The subscriber saw every result once, with its latency.
    let deadline = Instant::now() + Duration::from_secs(20);
    while total(&scrape(&tail_addr), "framewire_subscribe_messages_total") < Some(published)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(300));
    }
    let seen = scrape(&tail_addr);
    assert_eq!(total(&seen, "framewire_subscribe_messages_total"), Some(published), "{seen}");
    assert_eq!(total(&seen, "framewire_subscribe_latency_seconds_count"), Some(published), "{seen}");
    // The store stored every result once (its write latency and capture-to-stored latency measured), and the
    // web view pushed every result.
    let deadline = Instant::now() + Duration::from_secs(30);
    while total(&scrape(&store_addr), "framewire_store_frames_total") < Some(published) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
    }
    let stored = scrape(&store_addr);
    assert_eq!(total(&stored, "framewire_store_frames_total"), Some(published), "{stored}");
    assert_eq!(total(&stored, "framewire_store_latency_seconds_count"), Some(published), "{stored}");
    assert!(total(&stored, "framewire_store_write_seconds_count").unwrap() >= 1.0, "{stored}");
    assert_eq!(total(&stored, "framewire_store_db_up"), Some(1.0));
    assert_eq!(total(&stored, "framewire_store_db_errors_total"), Some(0.0));
    // The web view is live: it starts at the newest message, so it may miss the first while it joins.
    let shown = total(&scrape(&web_metrics), "framewire_web_messages_total").unwrap();
    assert!(shown >= published / 2.0 && shown <= published, "web view pushed {shown} of {published}");
    drop(store);
    let out = tail.stop();
    assert!(stderr(&out).contains("latency capture to here p50"), "{}", stderr(&out));
    drop(detect);
}
