//! What an operator watches: the Prometheus endpoint of a running detect replica, including consumer lag.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;

fn scrape(addr: &str) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else { return String::new() };
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}

/// Sum of a metric's samples (all label sets).
fn total(metrics: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = metrics
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

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
