//! What the subscribers' tests (store, snapshots, alerts, web) share: detections ready on a broker (a clip
//! published, detect run until every frame is answered), the store's command line and `query`'s rows.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use super::{Broker, media, stderr, stdout, still_clip, unique};

/// Topics of one run of the subscribers' tests.
pub struct Topics {
    pub frames: String,
    pub detections: String,
    pub events: String,
    pub alerts: String,
}

impl Topics {
    pub fn new() -> Topics {
        Topics {
            frames: unique("frames"),
            detections: unique("dets"),
            events: unique("events"),
            alerts: unique("alerts"),
        }
    }

    /// `subscribe store` over these topics.
    pub fn store_args<'a>(&'a self, db: &'a str, group: &'a str, snaps: &'a str) -> Vec<&'a str> {
        vec![
            "store",
            "--db",
            db,
            "--topic",
            &self.detections,
            "--frames-topic",
            &self.frames,
            "--group",
            group,
            "--events-topic",
            &self.events,
            "--alerts-topic",
            &self.alerts,
            "--snapshot-dir",
            snaps,
        ]
    }
}

/// `subscribe query --json` rows (`extra`: its filters, `--events`).
pub fn query(broker: &Broker, db: &str, extra: &[&str]) -> Vec<serde_json::Value> {
    let out = broker
        .cmd("subscribe")
        .args(["query", "--db", db, "--json", "--limit", "1000000"])
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "query failed: {}", stderr(&out));
    stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Publishes `clip` as `camera` and waits until detect has answered every frame; returns the results.
pub fn detect_all(
    broker: &Broker,
    t: &Topics,
    camera: &str,
    clip: &Path,
    ingest: &[&str],
    expect: usize,
) -> Vec<framewire_proto::Detections> {
    let detect = broker.detect(&t.frames, &t.detections, &unique("group"));
    let printed = broker.ingest_ok(camera, &t.frames, clip, ingest);
    assert!(printed.contains(&format!("published {expect} frames")), "{printed}");
    let got = broker.read_until(&t.detections, Duration::from_secs(120), |m| {
        m.iter()
            .filter_map(|m| framewire_proto::decode_detections(rdkafka::Message::payload(m).unwrap()).ok())
            .filter(|d| d.camera_id == camera)
            .map(|d| d.seq)
            .collect::<BTreeSet<_>>()
            .len()
            >= expect
    });
    drop(detect);
    let all: Vec<framewire_proto::Detections> = got
        .iter()
        .map(|m| framewire_proto::decode_detections(rdkafka::Message::payload(m).unwrap()).unwrap())
        .filter(|d| d.camera_id == camera)
        .collect();
    assert_eq!(all.iter().map(|d| d.seq).collect::<BTreeSet<_>>().len(), expect, "detect answered every frame");
    all
}

/// A broker with the detections of a 4 s astronaut clip at 5 fps (20 frames, a person in each) on its topics.
pub fn astronaut_detected() -> (Broker, tempfile::TempDir, Topics, Vec<framewire_proto::Detections>) {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("astronaut.mp4");
    still_clip(&media("astronaut.png"), 4, 5, &clip);
    let t = Topics::new();
    let dets = detect_all(&broker, &t, "astro", &clip, &[], 20);
    (broker, dir, t, dets)
}
