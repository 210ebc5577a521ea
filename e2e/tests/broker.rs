//! The local broker answers as Apache Kafka does where framewire's guarantees depend on it: a fetch that
//! starts inside a record batch, and ListOffsets for the latest offset and for a time. tansu 0.6.0 as
//! published gets all three wrong on its memory storage; `scripts/install-broker.sh` builds it with a patch
//! (`scripts/tansu/*.patch`). Run with `TANSU_BIN=/path/to/unpatched/tansu` to see these tests fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// Records per batch in these tests. The producer holds records until it is flushed, so each flush
/// writes one batch of exactly this many to the topic's single partition.
const BATCH: usize = 100;

/// A producer that batches: the way any real producer does under load (ingest included), but with batch
/// boundaries the test knows: it holds records until flushed, and each flush sends what it holds as one
/// batch.
fn batching_producer(broker: &Broker) -> BaseProducer {
    ClientConfig::new().set("bootstrap.servers", &broker.addr).set("linger.ms", "60000").create().unwrap()
}

/// Produces `count` records in batches of `BATCH`, record `i` stamped `t0 + 10 * i` ms.
fn produce_batches(broker: &Broker, topic: &str, count: usize, t0: i64, payload: impl Fn(usize) -> Vec<u8>) {
    let producer = batching_producer(broker);
    for start in (0..count).step_by(BATCH) {
        for i in start..(start + BATCH).min(count) {
            let value = payload(i);
            let record = BaseRecord::to(topic).key("cam").payload(&value).timestamp(t0 + 10 * i as i64);
            producer.send(record).map_err(|(e, _)| e).unwrap();
        }
        producer.flush(Duration::from_secs(30)).unwrap();
    }
}

fn reader(broker: &Broker, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}

/// The offset of the first message a consumer assigned at `offset` receives.
fn first_offset_read_from(broker: &Broker, topic: &str, offset: i64) -> i64 {
    let consumer = reader(broker, &unique("reader"));
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset)).unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            return m.unwrap().offset();
        }
    }
    panic!("nothing read from {topic} at offset {offset}");
}

fn fetch_and_list_offsets_answer_as_kafka_does(broker: &Broker) {
    let topic = unique("batched");
    broker.create_topic(&topic, 1);
    let t0 = now_ms() - 3_600_000;
    produce_batches(broker, &topic, 3 * BATCH, t0, |i| format!("record {i}").into_bytes());

    // A fetch from inside the second batch starts at that offset, not at the third batch.
    for offset in [0, 1, 150, 199, 250] {
        assert_eq!(first_offset_read_from(broker, &topic, offset), offset, "fetch from offset {offset}");
    }

    let consumer = reader(broker, &unique("reader"));
    let (low, high) = consumer.fetch_watermarks(&topic, 0, Duration::from_secs(10)).unwrap();
    assert_eq!((low, high), (0, 3 * BATCH as i64), "watermarks after three batches of {BATCH}");

    // By time: record i is stamped t0 + 10 i, so t0 + 1505 falls between records 150 and 151.
    let at = |ms: i64| {
        let mut q = TopicPartitionList::new();
        q.add_partition_offset(&topic, 0, Offset::Offset(ms)).unwrap();
        let found = consumer.offsets_for_times(q, Duration::from_secs(10)).unwrap();
        found.find_partition(&topic, 0).unwrap().offset()
    };
    assert_eq!(at(t0), Offset::Offset(0), "the first record's own time");
    assert_eq!(at(t0 + 1505), Offset::Offset(151), "a time inside the second batch");
    assert_eq!(at(t0 + 2990), Offset::Offset(299), "the last record's time");
    assert_eq!(at(t0 + 10_000), Offset::End, "a time after every record");
}

#[test]
fn fetch_and_list_offsets_answer_as_kafka_does_on_memory_storage() {
    fetch_and_list_offsets_answer_as_kafka_does(&Broker::start());
}

#[test]
fn fetch_and_list_offsets_answer_as_kafka_does_on_sqlite_storage() {
    fetch_and_list_offsets_answer_as_kafka_does(&Broker::start_persistent());
}

/// A small JPEG of the astronaut, so that detect runs the real model on a real picture.
fn small_jpeg(dir: &Path) -> Vec<u8> {
    let out = dir.join("small.jpg");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(media("astronaut.png"))
        .args(["-vf", "scale=96:96", "-frames:v", "1"])
        .arg(&out)
        .status()
        .expect("ffmpeg CLI (make setup installs it)");
    assert!(status.success());
    std::fs::read(out).unwrap()
}

/// The group's committed offset on partition 0 (None before its first commit).
fn committed(broker: &Broker, topic: &str, group: &str) -> Option<i64> {
    let consumer = reader(broker, group);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let got = consumer.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    match got.find_partition(topic, 0).unwrap().offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

/// Frames published in large batches; detect stopped (SIGTERM) after committing an offset in the middle of
/// a batch and restarted, several times: every frame still gets its result.
fn a_detect_resuming_mid_batch_loses_no_frame(broker: &Broker, storage: &str) {
    const FRAMES: usize = 2000;
    let dir = tempfile::tempdir().unwrap();
    let jpeg = small_jpeg(dir.path());
    let (input, output, group) = (unique("frames"), unique("detections"), unique("group"));
    broker.create_topic(&input, 1);
    produce_batches(broker, &input, FRAMES, now_ms(), |i| {
        framewire_proto::Frame {
            schema_version: framewire_proto::SCHEMA_VERSION,
            camera_id: "cam".into(),
            seq: i as u64,
            capture_time_ms: now_ms(),
            width: 96,
            height: 96,
            encoding: framewire_proto::Encoding::Jpeg as i32,
            image: jpeg.clone(),
            source_uri: "test".into(),
            ..Default::default()
        }
        .encode_to_vec()
    });

    let mut detect = broker.detect(&input, &output, &group);
    let results = broker
        .reader_from_start(&output, Instant::now() + Duration::from_secs(60))
        .unwrap_or_else(|| panic!("detect never created {output}"));
    let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
    let mut mid_batch_resumes = Vec::new();
    for _cycle in 0..10 {
        if mid_batch_resumes.len() >= 3 {
            break;
        }
        // Let this replica detect some frames, then stop it gracefully: it commits what it did.
        let target = seen.len() + 150 + 37 * mid_batch_resumes.len();
        read_results(&results, &mut seen, target, Duration::from_secs(120));
        let out = detect.stop();
        assert!(out.status.success(), "detect failed: {}", stderr(&out));
        let at = committed(broker, &input, &group).expect("detect committed on a graceful stop");
        if at % BATCH as i64 != 0 && (at as usize) < FRAMES {
            mid_batch_resumes.push(at);
        }
        detect = broker.detect(&input, &output, &group);
    }
    assert!(mid_batch_resumes.len() >= 3, "stops committed mid-batch only at {mid_batch_resumes:?}");

    read_results(&results, &mut seen, FRAMES, Duration::from_secs(240));
    drop(detect);
    let missing: Vec<u64> = (0..FRAMES as u64).filter(|s| !seen.contains_key(s)).collect();
    let duplicates: u32 = seen.values().map(|n| n - 1).sum();
    eprintln!(
        "resumed mid-batch at offsets {mid_batch_resumes:?}: {} of {FRAMES} frames detected, {duplicates} duplicates",
        seen.len()
    );
    assert!(
        missing.is_empty(),
        "{} frames never detected, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    // The row's figures are read back from both topics, as every fault row's are.
    let tally = Tally::measure(broker, &input, &output, Duration::from_secs(30));
    assert_eq!((tally.frames_in, tally.lost), (FRAMES as u64, 0), "{tally:?}");
    tally.report(&format!(
        "detect stopped after committing mid-batch, restarted x{} ({storage})",
        mid_batch_resumes.len()
    ));
}

/// Counts results per seq into `seen` until `want` distinct frames have one or `timeout` passed.
fn read_results(results: &BaseConsumer, seen: &mut BTreeMap<u64, u32>, want: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while seen.len() < want && Instant::now() < deadline {
        if let Some(m) = results.poll(Duration::from_millis(100)) {
            let d = framewire_proto::decode_detections(m.unwrap().payload().unwrap()).unwrap();
            *seen.entry(d.seq).or_default() += 1;
        }
    }
}

#[test]
fn a_detect_resuming_mid_batch_loses_no_frame_on_memory_storage() {
    a_detect_resuming_mid_batch_loses_no_frame(&Broker::start(), "tansu memory storage");
}

#[test]
fn a_detect_resuming_mid_batch_loses_no_frame_on_sqlite_storage() {
    a_detect_resuming_mid_batch_loses_no_frame(&Broker::start_persistent(), "tansu SQLite storage");
}
