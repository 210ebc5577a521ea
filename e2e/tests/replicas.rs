//! A detect consumer group under failure: replicas share the partitions, and a replica killed with SIGKILL
//! mid-stream loses nothing once it is back (at-least-once), with duplicates bounded by its in-flight window.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;

/// Frames a replica can hold between consuming and committing: the pipeline's channels (16 + 4 + 32) plus
/// one frame in each stage, plus what librdkafka's periodic auto-commit (5 s) may not have committed yet.
const IN_FLIGHT_BOUND: usize = 16 + 4 + 32 + 3 + 5 * 45;

#[test]
fn slow_sigkilled_replica_restarts_with_its_identity_and_nothing_is_lost() {
    let broker = Broker::start();
    let (input, output, group) = (unique("frames"), unique("detections"), unique("group"));
    let cameras = ["north", "south", "east", "west"];
    for cam in cameras {
        let printed = broker.ingest_ok(cam, &input, &media("bikes.mp4"), &["--fps", "12"]);
        assert!(printed.contains("published 120 frames"), "{printed}");
    }
    let expected: BTreeSet<(String, u64)> =
        cameras.iter().flat_map(|c| (0..120).map(move |s| (c.to_string(), s))).collect();

    let r1 = broker.detect_with(&input, &output, &group, &["--instance-id", "r1"]);
    let r2 = broker.detect_with(&input, &output, &group, &["--instance-id", "r2"]);
    let early = broker.read_detections(&output, 60, Duration::from_secs(60));
    assert!(early.len() >= 60, "replicas produced {}", early.len());
    r1.kill();
    let at_kill = read_all(&broker, &output, Duration::from_secs(10)).len();

    // Back with the same identity: the group hands it its partitions again at once.
    let r1 = broker.detect_with(&input, &output, &group, &["--instance-id", "r1"]);
    let ids = |msgs: &[rdkafka::message::OwnedMessage]| -> BTreeSet<(String, u64)> {
        use rdkafka::Message;
        msgs.iter()
            .map(|m| framewire_proto::decode_detections(m.payload().unwrap()).unwrap())
            .map(|d| (d.camera_id, d.seq))
            .collect()
    };
    let results = broker.read_until(&output, Duration::from_secs(120), |m| ids(m).len() >= expected.len());
    let got = ids(&results);
    let missing: Vec<_> = expected.difference(&got).take(10).collect();
    if !missing.is_empty() {
        let (o1, o2) = (r1.stop(), r2.stop());
        panic!(
            "frames lost after SIGKILL: {missing:?} ({} of {})\n--- r1 (restarted) ---\n{}\n--- r2 ---\n{}",
            got.len(),
            expected.len(),
            stderr(&o1),
            stderr(&o2)
        );
    }

    // Both replicas stop cleanly (drain, flush, commit): every result they will ever write is on the topic
    // when the tally reads it.
    let (o1, o2) = (r1.stop(), r2.stop());
    assert!(o1.status.success() && o2.status.success(), "{}\n{}", stderr(&o1), stderr(&o2));
    let tally = Tally::measure(&broker, &input, &output, Duration::from_secs(30));
    eprintln!("{} frames, {at_kill} results at the kill: {tally:?}", expected.len());
    assert_eq!((tally.frames_in, tally.lost), (expected.len() as u64, 0), "{tally:?}");
    assert!(
        tally.duplicates <= IN_FLIGHT_BOUND as u64,
        "{} duplicates exceed the in-flight bound {IN_FLIGHT_BOUND}",
        tally.duplicates
    );
    tally.report("detect replica SIGKILLed mid-stream, restarted");
}

#[test]
fn two_replicas_share_the_partitions() {
    let broker = Broker::start();
    let (input, output, group) = (unique("frames"), unique("detections"), unique("group"));
    let cameras = ["a", "b", "c", "d", "e", "f"];
    for cam in cameras {
        broker.ingest_ok(cam, &input, &media("bikes.mp4"), &["--fps", "2"]);
    }
    let r1 = broker.detect_with(&input, &output, &group, &["--instance-id", "one", "--summary-format", "json"]);
    let r2 = broker.detect_with(&input, &output, &group, &["--instance-id", "two", "--summary-format", "json"]);
    let results = broker.read_detections(&output, 120, Duration::from_secs(90));
    let got: BTreeSet<(String, u64)> = results.iter().map(|d| (d.camera_id.clone(), d.seq)).collect();
    assert_eq!(got.len(), 120, "6 cameras x 20 frames");
    // Per camera, results come in sequence order (one partition per camera, processed in order).
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    for d in &results {
        if let Some(prev) = last.insert(&d.camera_id, d.seq) {
            assert!(d.seq > prev, "camera {} went from {prev} to {}", d.camera_id, d.seq);
        }
    }
    let (o1, o2) = (r1.stop(), r2.stop());
    let n = |o: &std::process::Output| -> u64 {
        summary_json(&stdout(o), "detect")["detected"].as_u64().unwrap_or_else(|| panic!("{}", stdout(o)))
    };
    let (n1, n2) = (n(&o1), n(&o2));
    assert_eq!(n1 + n2, 120);
    assert!(n1 > 0 && n2 > 0, "both replicas worked: {n1} and {n2}");
}

#[test]
fn replay_group_starts_at_an_offset_or_a_time_and_resumes_from_its_commits() {
    use rdkafka::ClientConfig;
    use rdkafka::Message;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let broker = Broker::start();
    let input = unique("frames");
    broker.ingest_ok("cam", &input, &media("bikes.mp4"), &["--fps", "5"]);
    let frames = broker.read(&input, 50, Duration::from_secs(20));
    assert_eq!(frames.len(), 50);

    // --from-offset: one camera, one partition, so offsets are sequence numbers.
    let by_offset = unique("replay-offset");
    let group = unique("group");
    let r = broker.detect_with(&input, &by_offset, &group, &["--from-offset", "20"]);
    let got = broker.read_detections(&by_offset, 30, Duration::from_secs(60));
    let seqs: BTreeSet<u64> = got.iter().map(|d| d.seq).collect();
    assert_eq!(seqs, (20..50).collect(), "replay from offset 20");
    let o = r.stop();
    assert!(o.status.success());
    // Restarted, the group continues from its commits: nothing is replayed twice. A frame published after
    // the restart, in the same partition (same key), is the proof the replica has been through everything
    // before it: a partition is worked in order, so a replay of 20..50 would come out ahead of it.
    let again = broker.detect_with(&input, &by_offset, &group, &["--from-offset", "20"]);
    let mut sentinel = framewire_proto::decode_frame(frames[0].payload().unwrap()).unwrap();
    sentinel.seq = 1000;
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &broker.addr).create().unwrap();
    producer.send(BaseRecord::to(&input).key("cam").payload(&prost::Message::encode_to_vec(&sentinel))).unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    let after = broker.read_until(&by_offset, Duration::from_secs(60), |m| {
        m.iter().any(|m| framewire_proto::decode_detections(m.payload().unwrap()).unwrap().seq == 1000)
    });
    let o = again.stop();
    assert!(o.status.success(), "{}", stderr(&o));
    let seqs: Vec<u64> =
        after.iter().map(|m| framewire_proto::decode_detections(m.payload().unwrap()).unwrap().seq).collect();
    assert_eq!(seqs.last(), Some(&1000), "the frame published after the restart was detected: {seqs:?}");
    assert_eq!(seqs.len(), 31, "no second replay before it: {seqs:?}");
    assert!(stdout(&o).starts_with("detected 1 frames"), "the restarted replica worked one frame: {}", stdout(&o));

    // --from-timestamp: the publish time of frame 35.
    let t35 = frames[35].timestamp().to_millis().unwrap();
    let ts: Vec<i64> = frames.iter().map(|m| m.timestamp().to_millis().unwrap()).collect();
    // Frames published in the same millisecond as frame 35 come with it; so does the later sentinel.
    let expected_first = ts.iter().position(|t| *t >= t35).unwrap() as u64;
    let want = 50 - expected_first + 1;
    let by_time = unique("replay-time");
    let _r = broker.detect_with(&input, &by_time, &unique("group"), &["--from-timestamp", &t35.to_string()]);
    let got = broker.read_detections(&by_time, want as usize, Duration::from_secs(20));
    let first = got.iter().map(|d| d.seq).min().expect("results");
    assert_eq!(first, expected_first, "replay from time {t35}");
    assert_eq!(got.len() as u64, want);
}
