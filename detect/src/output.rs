//! The output stage: publishes Detections and dead letters, and stores a frame's offset once its message is
//! acknowledged.
//!
//! Every outcome carries the capacity permit its frame was consumed with, and gives it back only when the
//! broker has acknowledged it. So the deliveries in progress here, dead letters included, never number more
//! than `--max-pending`, however long the output refuses writes: the input is paused instead.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use prost::Message as _;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use framewire_common::dead_letter::Fit;
use framewire_proto::{SCHEMA_VERSION, names};

use crate::consumer::GroupContext;
use framewire_common::failure::{self, Verdict};
use crate::offsets::{OffsetTracker, Ticket};
use crate::{Error, Outcome, Result, Summary, metrics};

/// What the output stage needs besides its input.
pub(crate) struct Output {
    pub producer: FutureProducer,
    pub consumer: Arc<rdkafka::consumer::BaseConsumer<GroupContext>>,
    pub tracker: Arc<Mutex<OffsetTracker>>,
    pub input_topic: String,
    pub output_topic: String,
    pub dlq_topic: String,
    pub missing_timeout: Duration,
    pub metrics: metrics::Metrics,
}

/// Publishes results and dead letters until the pipeline closes. Returns the first fatal delivery error.
pub(crate) async fn output_stage(mut outcomes: mpsc::Receiver<Outcome>, out: Output) -> Result<Summary> {
    let out = Arc::new(out);
    let health = Arc::new(Health::default());
    let mut summary = Summary::default();
    let mut pending = FuturesUnordered::new();
    let mut open = true;
    while open || !pending.is_empty() {
        tokio::select! {
            o = outcomes.recv(), if open => match o {
                None => open = false,
                Some(Outcome::Detected { ticket, detections, permit }) => {
                    for b in &detections.boxes {
                        out.metrics.boxes.with_label_values(&[&b.label]).inc();
                    }
                    let latency = (detections.detected_time_ms - detections.capture_time_ms).max(0) as f64 / 1000.0;
                    out.metrics.latency_seconds.observe(latency);
                    let mut d = detections;
                    d.source_topic = out.input_topic.clone();
                    let camera = d.camera_id.clone();
                    let headers = OwnedHeaders::new()
                        .insert(Header { key: names::HEADER_SCHEMA, value: Some(&SCHEMA_VERSION.to_string()) })
                        .insert(Header { key: names::HEADER_TYPE, value: Some(names::TYPE_DETECTIONS) });
                    let msg = OutMsg {
                        dest: Dest::Output,
                        key: Some(camera.clone().into_bytes()),
                        payload: d.encode_to_vec(),
                        headers,
                        fit: None,
                    };
                    let job = Delivery { msg, ticket, what: Delivered::Detections(camera), permit };
                    pending.push(deliver(out.clone(), health.clone(), job));
                }
                Some(Outcome::Dead { job, reason, kind }) => {
                    let t = job.ticket;
                    warn!(partition = t.partition, offset = t.offset, %reason, "dead-lettering message");
                    out.metrics.dead_letters.with_label_values(&[kind]).inc();
                    let source = format!("{}/{}/{}", out.input_topic, t.partition, t.offset);
                    let mut headers = job.headers.unwrap_or_default();
                    headers = headers
                        .insert(Header { key: names::HEADER_DLQ_REASON, value: Some(&reason) })
                        .insert(Header { key: names::HEADER_DLQ_SOURCE, value: Some(&source) });
                    let fit = Some(Fit::new(job.payload.len()));
                    let msg = OutMsg { dest: Dest::DeadLetter, key: job.key, payload: job.payload, headers, fit };
                    let job = Delivery { msg, ticket: t, what: Delivered::DeadLetter, permit: job.permit };
                    pending.push(deliver(out.clone(), health.clone(), job));
                }
            },
            Some(done) = pending.next(), if !pending.is_empty() => {
                let (ticket, what, permit) = done?;
                match what {
                    Delivered::Detections(camera) => {
                        summary.detected += 1;
                        out.metrics.frames.with_label_values(&[&camera]).inc();
                    }
                    Delivered::DeadLetter => summary.dead_lettered += 1,
                }
                out.metrics.in_flight.dec();
                finish(out.consumer.as_ref(), &out.tracker, &out.input_topic, ticket);
                // The frame is done: room for the next one.
                drop(permit);
            }
        }
    }
    Ok(summary)
}

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dest {
    Output,
    DeadLetter,
}

impl Dest {
    fn topic<'a>(&self, out: &'a Output) -> &'a str {
        match self {
            Dest::Output => &out.output_topic,
            Dest::DeadLetter => &out.dlq_topic,
        }
    }

    fn role(&self) -> &'static str {
        match self {
            Dest::Output => "output",
            Dest::DeadLetter => "dead-letter",
        }
    }

    fn flag(&self) -> &'static str {
        match self {
            Dest::Output => "--output-topic",
            Dest::DeadLetter => "--dlq-topic",
        }
    }
}

struct OutMsg {
    dest: Dest,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    headers: OwnedHeaders,
    /// Set for dead letters, whose payload is cut rather than retried forever when refused as too large.
    fit: Option<Fit>,
}

enum Delivered {
    Detections(String),
    DeadLetter,
}

struct Delivery {
    msg: OutMsg,
    ticket: Ticket,
    what: Delivered,
    permit: OwnedSemaphorePermit,
}

/// Produces a message until the broker acknowledges it. Giving up would lose the frame (its offset could
/// never be stored), so a cause that passes is waited out with backoff, while the input stays paused; a
/// cause that cannot pass (see [`failure::classify`]) ends the stage with an error that says what to fix.
async fn deliver(
    out: Arc<Output>,
    health: Arc<Health>,
    job: Delivery,
) -> Result<(Ticket, Delivered, OwnedSemaphorePermit)> {
    let Delivery { mut msg, ticket, what, permit } = job;
    let topic = msg.dest.topic(&out).to_string();
    let mut backoff = Duration::from_millis(100);
    loop {
        let (payload, headers) = match &msg.fit {
            Some(fit) => (&msg.payload[..fit.kept()], fit.headers(&msg.headers)),
            None => (&msg.payload[..], msg.headers.clone()),
        };
        let mut record = FutureRecord::to(&topic).payload(payload).headers(headers);
        if let Some(k) = &msg.key {
            record = record.key(k);
        }
        let e = match out.producer.send(record, Duration::from_secs(30)).await {
            Ok(_) => {
                health.accepted(&topic);
                return Ok((ticket, what, permit));
            }
            Err((e, _)) => e,
        };
        match failure::verdict(&e) {
            Verdict::Retry => {}
            Verdict::TooLarge if msg.fit.as_mut().is_some_and(Fit::shrink) => {
                let kept = msg.fit.map_or(0, |f| f.kept());
                warn!(%topic, original_bytes = msg.payload.len(), kept_bytes = kept,
                    "dead letter refused as too large; sending it cut short");
                continue;
            }
            Verdict::TooLarge => {
                return Err(Error::KafkaFatal {
                    what: format!("the {} topic {topic} refused a {}-byte message", msg.dest.role(), payload_len(&msg)),
                    reason: e.to_string(),
                    advice: "raise the topic's max.message.bytes (and the broker's message.max.bytes), or lower --max-detections",
                });
            }
            Verdict::Fatal(advice) => {
                return Err(Error::KafkaFatal {
                    what: format!("publishing to the {} topic {topic}", msg.dest.role()),
                    reason: failure::fatal_reason(out.producer.client(), &e),
                    advice,
                });
            }
            Verdict::Missing => {
                let waited = health.missing(&topic);
                if waited >= out.missing_timeout {
                    return Err(Error::TopicGone { role: msg.dest.role(), topic, flag: msg.dest.flag(), waited });
                }
            }
        }
        out.metrics.delivery_retries.inc();
        health.refused(&topic, &e, backoff);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

fn payload_len(msg: &OutMsg) -> usize {
    msg.fit.map_or(msg.payload.len(), |f| f.kept())
}

/// Refusals per topic, shared by the deliveries in progress: when a topic refuses writes every pending
/// delivery sees it, and one warning per topic (per change of error, or per 10 s) says so, not one per frame.
#[derive(Default)]
struct Health {
    topics: Mutex<HashMap<String, Refusal>>,
}

struct Refusal {
    /// Since when the topic has been missing, if the latest refusal said so.
    missing_since: Option<Instant>,
    error: String,
    warned: Instant,
    refused: u64,
}

impl Health {
    /// How long `topic` has been reported missing (zero on the first report).
    fn missing(&self, topic: &str) -> Duration {
        let Ok(mut topics) = self.topics.lock() else { return Duration::ZERO };
        let r = topics.entry(topic.to_string()).or_insert_with(Refusal::new);
        r.missing_since.get_or_insert_with(Instant::now).elapsed()
    }

    fn refused(&self, topic: &str, e: &KafkaError, retry_in: Duration) {
        let Ok(mut topics) = self.topics.lock() else { return };
        let r = topics.entry(topic.to_string()).or_insert_with(Refusal::new);
        r.refused += 1;
        if failure::verdict(e) != Verdict::Missing {
            r.missing_since = None;
        }
        let text = e.to_string();
        if r.refused == 1 || r.error != text || r.warned.elapsed() >= Duration::from_secs(10) {
            warn!(%topic, error = %text, refused = r.refused, ?retry_in,
                "delivery refused; retrying (frames wait, the input is paused once the pipeline is full)");
            r.error = text;
            r.warned = Instant::now();
        }
    }

    fn accepted(&self, topic: &str) {
        let Ok(mut topics) = self.topics.lock() else { return };
        if let Some(r) = topics.remove(topic) {
            info!(%topic, refused = r.refused, "topic accepts deliveries again");
        }
    }
}

impl Refusal {
    fn new() -> Self {
        Refusal { missing_since: None, error: String::new(), warned: Instant::now(), refused: 0 }
    }
}

/// Marks a frame done and, if that moved its partition's committable position, stores the new offset for
/// the next commit.
pub(crate) fn finish(consumer: &impl Consumer<GroupContext>, tracker: &Mutex<OffsetTracker>, topic: &str, t: Ticket) {
    let Some(next) = tracker.lock().ok().and_then(|mut tr| tr.finish(t)) else { return };
    let partition = t.partition;
    let mut tpl = TopicPartitionList::new();
    if tpl.add_partition_offset(topic, partition, Offset::Offset(next)).is_ok()
        && let Err(e) = consumer.store_offsets(&tpl)
    {
        // Happens when the partition was just revoked: the new owner re-processes from the last commit.
        debug!(partition, offset = next, error = %e, "offset not stored");
    }
}

/// How often [`watch_topics`] asks the broker about the output and dead-letter topics.
const TOPIC_CHECK_EVERY: Duration = Duration::from_secs(10);

/// Asks the broker every few seconds whether the output and dead-letter topics exist, warning once when one
/// goes missing and once when it is back. Besides telling the operator before frames pile up, the answer
/// refreshes the producer's view of the topics: a topic deleted since the producer last looked it up is
/// otherwise only noticed when a write to it fails, and a broker that accepts writes to a deleted topic
/// (tansu 0.6.0 does) never fails them.
pub(crate) async fn watch_topics(
    producer: FutureProducer,
    topics: Vec<(&'static str, String)>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(TOPIC_CHECK_EVERY);
    let mut missing: HashSet<String> = HashSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Metadata requests block: keep them off the async workers.
        let (p, t) = (producer.clone(), topics.clone());
        let Ok(found) = tokio::task::spawn_blocking(move || {
            t.into_iter()
                .map(|(role, topic)| {
                    let gone = failure::topic_missing(p.client(), &topic, Duration::from_secs(5)).ok();
                    (role, topic, gone)
                })
                .collect::<Vec<_>>()
        })
        .await
        else {
            continue;
        };
        for (role, topic, gone) in found {
            match gone {
                Some(true) if missing.insert(topic.clone()) => {
                    warn!(role, %topic, "topic does not exist on the broker: deliveries to it wait, and detect stops if it stays missing for --missing-topic-timeout")
                }
                Some(false) if missing.remove(&topic) => info!(role, %topic, "topic exists again"),
                _ => {}
            }
        }
    }
}
