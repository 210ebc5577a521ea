//! detect when its output cannot take writes: it holds at most `--max-pending` frames (memory stays flat,
//! the input is paused, nothing is committed that was not delivered), waits out a topic that comes back,
//! and stops with a non-zero exit and an error that says what to fix when it does not. Real broker, real
//! model, detect with its default settings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use common::*;

/// detect's default `--max-pending`.
const MAX_PENDING: f64 = 256.0;
/// detect's default `--missing-topic-timeout`.
const MISSING_TIMEOUT: Duration = Duration::from_secs(60);
/// The partitions detect gives the topics it creates (its default `--partitions`).
const PARTITIONS: i32 = 4;

/// A detect replica with its log in a file (a pipe nobody reads would fill and stall it) and its metrics
/// endpoint on a known port.
struct Detect {
    child: Child,
    log: PathBuf,
    metrics: String,
    _dir: tempfile::TempDir,
}

impl Detect {
    fn start(broker: &Broker, input: &str, output: &str, group: &str) -> Detect {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("detect.log");
        let metrics = format!("127.0.0.1:{}", free_port());
        let model = model();
        let child = broker
            .cmd("detect")
            .args(["--model", model.to_str().unwrap(), "--input-topic", input, "--output-topic", output])
            .args(["--group", group, "--metrics-listen", &metrics])
            .env("RUST_LOG", "info")
            .stdout(File::create(dir.path().join("stdout")).unwrap())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let d = Detect { child, log, metrics, _dir: dir };
        d.wait_metrics();
        d
    }

    fn wait_metrics(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(&self.metrics).is_err() {
            assert!(Instant::now() < deadline, "detect's metrics endpoint never came up:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("stdout")).unwrap_or_default()
    }

    /// Resident memory from /proc, in bytes.
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in /proc/{}/status", self.child.id()));
        kib * 1024
    }

    fn gauge(&self, name: &str) -> f64 {
        total(&self.scrape(), name).unwrap_or_else(|| panic!("{name} not exported"))
    }

    /// The metrics page. The request goes out in one write: the endpoint answers what its first read got
    /// and closes, so a request written in pieces can meet a closed socket.
    fn scrape(&self) -> String {
        scrape(&self.metrics)
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// SIGTERM, then the exit status.
    fn stop(&mut self) -> ExitStatus {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        self.child.wait().unwrap()
    }
}

impl Drop for Detect {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- detect log ---\n{}", self.log());
        }
    }
}

fn admin(broker: &Broker) -> AdminClient<DefaultClientContext> {
    ClientConfig::new().set("bootstrap.servers", &broker.addr).create().unwrap()
}

fn delete_topics(broker: &Broker, topics: &[&str]) {
    let results = block_on(admin(broker).delete_topics(topics, &AdminOptions::new())).unwrap();
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("cannot delete {t}: {e}"));
    }
    // Gone once the broker's metadata says so.
    let probe: BaseProducer = ClientConfig::new().set("bootstrap.servers", &broker.addr).create().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    for t in topics {
        loop {
            let md = probe.client().fetch_metadata(Some(t), Duration::from_secs(5)).unwrap();
            if md.topics().iter().all(|m| m.error().is_some() || m.partitions().is_empty()) {
                break;
            }
            assert!(Instant::now() < deadline, "topic {t} still listed after deletion");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn create_topics(broker: &Broker, topics: &[&str]) {
    let new: Vec<NewTopic<'_>> =
        topics.iter().map(|t| NewTopic::new(t, PARTITIONS, TopicReplication::Fixed(1))).collect();
    for r in block_on(admin(broker).create_topics(new.iter(), &AdminOptions::new())).unwrap() {
        r.unwrap_or_else(|(t, e)| panic!("cannot create {t}: {e}"));
    }
}

/// Reads `group`'s position on `topic` from the broker, without joining the group.
struct Watch {
    client: BaseConsumer,
    topic: String,
}

impl Watch {
    fn new(broker: &Broker, group: &str, topic: &str) -> Watch {
        let client =
            ClientConfig::new().set("bootstrap.servers", &broker.addr).set("group.id", group).create().unwrap();
        Watch { client, topic: topic.to_string() }
    }

    /// Sum of the high watermarks: how many messages the topic holds.
    fn published(&self) -> i64 {
        (0..PARTITIONS).map(|p| self.client.fetch_watermarks(&self.topic, p, Duration::from_secs(5)).unwrap().1).sum()
    }

    /// Sum of the group's committed offsets (0 for a partition never committed).
    fn committed(&self) -> i64 {
        committed_offsets(&self.client, &self.topic)
    }
}

/// Sum of the committed offsets `c`'s group has on `topic` (0 for a partition never committed).
fn committed_offsets(c: &BaseConsumer, topic: &str) -> i64 {
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(topic, p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    got.elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .sum()
}

/// Publishes `count` messages that are not Frames (each becomes a dead letter carrying its whole payload),
/// `per_second` of them a second.
fn publish_junk(brokers: &str, topic: &str, count: usize, bytes: usize, per_second: u32) {
    let p: BaseProducer = ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    let payload: Vec<u8> = b"not a frame ".iter().copied().cycle().take(bytes).collect();
    let start = Instant::now();
    for i in 0..count {
        let key = format!("junk-{}", i % 8);
        loop {
            match p.send(BaseRecord::to(topic).key(&key).payload(&payload)) {
                Ok(()) => break,
                Err((e, _)) => {
                    assert!(e.to_string().contains("Queue full"), "{e}");
                    p.poll(Duration::from_millis(10));
                }
            }
        }
        p.poll(Duration::ZERO);
        let due = start + Duration::from_secs_f64((i + 1) as f64 / f64::from(per_second));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    assert!(p.flush(Duration::from_secs(60)).is_ok(), "junk not delivered to the input topic");
}

/// Waits for `cond`, polling, up to `within`; panics with `what` and detect's log otherwise.
fn wait_for(d: &Detect, within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}\n{}", d.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Starts detect and takes its output (and, with `dlq`, its dead-letter) topic away before its first
/// delivery, then waits until detect's producer regards the topic as gone. tansu 0.6.0 accepts writes to a
/// deleted topic from a client that still has it in its metadata (Apache Kafka refuses them), so the
/// producer must have looked again first: detect asks the broker about its topics every 10 s, and
/// librdkafka, after allowing 30 s for a topic that may be being created, drops the topic's partitions
/// (its log says "partition count changed from 4 to 0"). From then on every delivery to it is refused.
fn detect_without_its_outputs(broker: &Broker, input: &str, output: &str, group: &str, dlq: bool) -> Detect {
    let d = Detect::start(broker, input, output, group);
    wait_for(&d, Duration::from_secs(60), "detect to join its group", || d.log().contains("partitions assigned"));
    let dlq_topic = framewire_proto::names::dlq_topic(input);
    let gone: Vec<&str> = if dlq { vec![output, &dlq_topic] } else { vec![output] };
    delete_topics(broker, &gone);
    for t in gone {
        let warned = format!("topic={t}");
        let dropped = format!("Topic {t} partition count changed from {PARTITIONS} to 0");
        wait_for(&d, Duration::from_secs(90), &format!("detect's producer to drop {t}"), || {
            let log = d.log();
            log.lines().any(|l| l.contains("topic does not exist on the broker") && l.ends_with(&warned))
                && log.contains(&dropped)
        });
    }
    d
}

#[test]
fn memory_stays_flat_while_the_output_refuses_and_everything_flows_once_it_is_back() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("astronaut.mp4");
    still_clip(&media("astronaut.png"), 20, 10, &clip);
    let (input, output, group) = (unique("frames"), unique("detections"), unique("group"));
    let dlq = framewire_proto::names::dlq_topic(&input);
    let mut d = detect_without_its_outputs(&broker, &input, &output, &group, true);
    let w = Watch::new(&broker, &group, &input);

    // Real frames, and junk that becomes dead letters of 128 KiB each (a dead letter carries the whole
    // message): without a bound, every payload would be held while its delivery was retried.
    let refused_from = Instant::now();
    const JUNK: usize = 2400;
    const JUNK_BYTES: usize = 128 * 1024;
    let junk = {
        let (addr, input) = (broker.addr.clone(), input.clone());
        std::thread::spawn(move || publish_junk(&addr, &input, JUNK, JUNK_BYTES, 100))
    };
    let printed = broker.ingest_ok("astro", &input, &clip, &[]);
    assert!(printed.contains("published 200 frames"), "{printed}");

    // Full: as many frames held as detect may hold. Memory is sampled from here on.
    wait_for(&d, Duration::from_secs(60), "detect to reach --max-pending", || {
        d.gauge("framewire_detect_in_flight") >= MAX_PENDING
    });
    let rss_full = d.rss();
    let published_full = w.published();
    let lag_full = published_full - w.committed();
    let mut rss_max = rss_full;
    let mut in_flight_max: f64 = 0.0;
    // Watch until many more messages than --max-pending arrived after the sample (the junk keeps coming).
    let window = Instant::now();
    while w.published() < published_full + 4 * MAX_PENDING as i64 {
        assert!(window.elapsed() < Duration::from_secs(30), "the input stopped growing");
        assert!(d.exited().is_none(), "detect exited while the output was refused:\n{}", d.log());
        rss_max = rss_max.max(d.rss());
        in_flight_max = in_flight_max.max(d.gauge("framewire_detect_in_flight"));
        std::thread::sleep(Duration::from_millis(250));
    }
    let rss_last = d.rss();
    let arrived = w.published() - published_full;
    let still_committed = w.committed();
    let lag = w.published() - still_committed;
    eprintln!(
        "refusing output: {arrived} messages arrived after the sample; RSS {} MiB at the bound, {} MiB last, \
         {} MiB max; in flight max {in_flight_max}; committed {still_committed}; lag {lag}; {:?} since refused",
        rss_full >> 20,
        rss_last >> 20,
        rss_max >> 20,
        refused_from.elapsed()
    );
    // At the bound detect holds --max-pending frames and takes no more, so what arrives after the sample adds
    // nothing. 32 MiB is room for allocator and librdkafka buffer noise; holding the messages that arrived
    // (at least 4 * 256, nearly all of them 128 KiB junk once the 200 frames are in) would add over 96 MiB.
    let growth = rss_max.saturating_sub(rss_full);
    assert!(growth < 32 << 20, "RSS grew by {} MiB after reaching the bound", growth >> 20);
    assert!(in_flight_max <= MAX_PENDING, "held {in_flight_max} frames, more than --max-pending");
    assert_eq!(still_committed, 0, "nothing was delivered, so nothing may be committed");
    assert!(lag - lag_full >= 4 * MAX_PENDING as i64, "the group's lag grew only by {}", lag - lag_full);
    // librdkafka's 30 s of propagation plus detect's missing-topic timeout must not have run out.
    assert!(refused_from.elapsed() < MISSING_TIMEOUT, "the test took too long to restore the topics in time");

    // The topics come back: everything waiting flows, nothing lost.
    create_topics(&broker, &[&output, &dlq]);
    junk.join().unwrap();
    let total_in = w.published();
    wait_for(&d, Duration::from_secs(240), "every message to be delivered and committed", || w.committed() >= total_in);
    assert!(d.exited().is_none(), "detect exited:\n{}", d.log());
    // Everything on the output topic, not its first 200 messages: at-least-once may deliver a result twice.
    let detections = all_detections(&broker, &output);
    let seqs: BTreeSet<u64> = detections.iter().map(|x| x.seq).collect();
    eprintln!("{} results for {} frames", detections.len(), seqs.len());
    assert_eq!(seqs, (0..200).collect(), "every frame published while the output was away has a result");
    let dead = broker.read(&dlq, JUNK, Duration::from_secs(60));
    assert_eq!(dead.len(), JUNK, "every junk message is dead-lettered once");
    let status = d.stop();
    assert!(status.success(), "{status}\n{}", d.log());
    assert!(d.stdout().contains("dead-lettered"), "{}", d.stdout());
}

#[test]
fn exits_non_zero_naming_the_topic_when_its_output_topic_is_gone() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("astronaut.mp4");
    still_clip(&media("astronaut.png"), 2, 5, &clip);
    let (input, output, group) = (unique("frames"), unique("detections"), unique("group"));
    let mut d = detect_without_its_outputs(&broker, &input, &output, &group, false);
    let w = Watch::new(&broker, &group, &input);
    let published_at = Instant::now();
    broker.ingest_ok("cam", &input, &clip, &[]);

    // librdkafka allows 30 s for a missing topic to appear, then detect waits its missing-topic timeout for
    // it to come back (retries back off to 10 s), then drains and commits.
    let bound = Duration::from_secs(30) + MISSING_TIMEOUT + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = d.exited() {
            break s;
        }
        assert!(published_at.elapsed() < bound, "detect still running {bound:?} after its output was refused");
        std::thread::sleep(Duration::from_millis(200));
    };
    let took = published_at.elapsed();
    let log = d.log();
    let last = log.lines().last().unwrap_or_default();
    eprintln!("exited {status} after {took:?}: {last}");
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(took >= MISSING_TIMEOUT, "stopped after {took:?}, before the missing-topic timeout");
    assert!(last.starts_with("detect: error: "), "the last line is the error: {last}");
    assert!(last.contains(&format!("output topic {output} does not exist")), "{last}");
    assert!(last.contains("create it again or point --output-topic at an existing topic"), "{last}");
    assert!(!d.stdout().contains("detected"), "a failed run must not print a summary: {}", d.stdout());
    // At-least-once: nothing was delivered, so nothing was committed; a restart processes every frame.
    assert_eq!(w.committed(), 0);
}
