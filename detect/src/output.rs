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
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_util::sync::CancellationToken;

use framewire_common::backoff::Backoff;
use framewire_common::deliver::{self, Outgoing, Refused};
use framewire_common::failure::{self, Verdict};
use framewire_common::time::now_us;
use framewire_proto::{SCHEMA_VERSION, Skipped, StageTimes, names};

use crate::consumer::GroupContext;
use crate::events::{
    DeadLetterPublished, DeadLettering, DeliveryRetried, FramePublished, OffsetNotStored, StaleSkipping,
    TopicAccepting, TopicBack, TopicMissing,
};
use crate::metrics::Metrics;
use crate::offsets::{OffsetTracker, Ticket};
use crate::stages::Outcome;
use crate::{Error, Result, Summary};

/// What the output stage needs besides its input.
pub(crate) struct Output {
    pub producer: FutureProducer,
    pub consumer: Arc<rdkafka::consumer::BaseConsumer<GroupContext>>,
    pub tracker: Arc<Mutex<OffsetTracker>>,
    pub input_topic: String,
    pub output_topic: String,
    pub dlq_topic: String,
    pub missing_timeout: Duration,
    pub metrics: Metrics,
}

/// Publishes results and dead letters until the pipeline closes. Returns the first fatal delivery error.
pub(crate) async fn output_stage(mut outcomes: mpsc::Receiver<Outcome>, out: Output) -> Result<Summary> {
    let out = Arc::new(out);
    let health = Arc::new(Health::default());
    let mut summary = Summary::default();
    let mut skips = SkipLog::default();
    let mut pending = FuturesUnordered::new();
    let mut open = true;
    while open || !pending.is_empty() {
        tokio::select! {
            o = outcomes.recv(), if open => match o {
                None => open = false,
                Some(outcome) => pending.push(deliver(out.clone(), health.clone(), delivery(&out, outcome))),
            },
            Some(done) = pending.next(), if !pending.is_empty() => {
                let (ticket, what, permit) = done?;
                match what {
                    Delivered::Detections { camera, times, skipped } => {
                        if skipped {
                            summary.skipped_stale += 1;
                            skips.skipped(summary.skipped_stale);
                        } else {
                            summary.detected += 1;
                        }
                        FramePublished { camera: &camera, skipped, times, acked_us: now_us() }.emit(&out.metrics);
                    }
                    Delivered::DeadLetter => {
                        summary.dead_lettered += 1;
                        DeadLetterPublished.emit(&out.metrics);
                    }
                }
                finish(out.consumer.as_ref(), &out.tracker, &out.input_topic, ticket);
                // The frame is done: room for the next one.
                drop(permit);
            }
        }
    }
    Ok(summary)
}

/// The message an outcome is published as.
fn delivery(out: &Output, outcome: Outcome) -> Delivery {
    match outcome {
        Outcome::Detected { ticket, mut detections, permit } => {
            detections.source_topic = out.input_topic.clone();
            let times = detections.stage_times.get_or_insert_default();
            times.produced_us = now_us();
            let times = *times;
            let skipped = detections.skipped() != Skipped::None;
            let camera = detections.camera_id.clone();
            let headers = OwnedHeaders::new()
                .insert(Header { key: names::HEADER_SCHEMA, value: Some(&SCHEMA_VERSION.to_string()) })
                .insert(Header { key: names::HEADER_TYPE, value: Some(names::TYPE_DETECTIONS) });
            let key = Some(camera.clone().into_bytes());
            let msg = Outgoing::new(&out.output_topic, key, detections.encode_to_vec(), headers);
            Delivery { msg, ticket, what: Delivered::Detections { camera, times, skipped }, permit }
        }
        Outcome::Dead { job, reason, kind } => {
            let t = job.ticket;
            DeadLettering { partition: t.partition, offset: t.offset, reason: &reason, kind }.emit(&out.metrics);
            let source = format!("{}/{}/{}", out.input_topic, t.partition, t.offset);
            let headers = job.headers.unwrap_or_default();
            let msg = Outgoing::dead_letter(&out.dlq_topic, job.key, job.payload, headers, &reason, &source);
            Delivery { msg, ticket: t, what: Delivered::DeadLetter, permit: job.permit }
        }
    }
}

/// What was delivered, and so which topic it went to.
enum Delivered {
    /// A frame's Detections: its camera, its stage times as sent, and whether it was skipped as stale.
    Detections {
        camera: String,
        times: StageTimes,
        skipped: bool,
    },
    DeadLetter,
}

impl Delivered {
    fn role(&self) -> &'static str {
        match self {
            Delivered::Detections { .. } => "output",
            Delivered::DeadLetter => "dead-letter",
        }
    }

    fn flag(&self) -> &'static str {
        match self {
            Delivered::Detections { .. } => "--output-topic",
            Delivered::DeadLetter => "--dlq-topic",
        }
    }
}

struct Delivery {
    msg: Outgoing,
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
    let mut backoff = Backoff::jittered(Duration::from_millis(100), Duration::from_secs(10));
    let role = what.role();
    deliver::send(&out.producer, &mut msg, &mut backoff, |e, msg, retry_in| {
        let topic = &msg.topic;
        match failure::verdict(e) {
            Verdict::Retry => {}
            Verdict::TooLarge => {
                return Refused::Stop(Error::KafkaFatal {
                    what: format!("the {role} topic {topic} refused a {}-byte message", msg.sent_len()),
                    reason: e.to_string(),
                    advice: "raise the topic's max.message.bytes (and the broker's message.max.bytes), or lower --max-detections",
                });
            }
            Verdict::Fatal(advice) => {
                return Refused::Stop(Error::KafkaFatal {
                    what: format!("publishing to the {role} topic {topic}"),
                    reason: failure::fatal_reason(out.producer.client(), e),
                    advice,
                });
            }
            Verdict::Missing => {
                let waited = health.missing(topic);
                if waited >= out.missing_timeout {
                    return Refused::Stop(Error::TopicGone { role, topic: topic.clone(), flag: what.flag(), waited });
                }
            }
        }
        let (refused, warn) = health.refused(topic, e);
        DeliveryRetried { topic, error: e, refused, retry_in, warn }.emit(&out.metrics);
        Refused::Retry
    })
    .await?;
    health.accepted(&msg.topic);
    Ok((ticket, what, permit))
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

    /// Counts a refusal of `topic`. Returns the refusals since it last accepted a delivery, and whether to
    /// warn about this one (the first, a new error, or 10 s since the last warning).
    fn refused(&self, topic: &str, e: &KafkaError) -> (u64, bool) {
        let Ok(mut topics) = self.topics.lock() else { return (0, false) };
        let r = topics.entry(topic.to_string()).or_insert_with(Refusal::new);
        r.refused += 1;
        if failure::verdict(e) != Verdict::Missing {
            r.missing_since = None;
        }
        let text = e.to_string();
        let warn = r.refused == 1 || r.error != text || r.warned.elapsed() >= Duration::from_secs(10);
        if warn {
            r.error = text;
            r.warned = Instant::now();
        }
        (r.refused, warn)
    }

    fn accepted(&self, topic: &str) {
        let Ok(mut topics) = self.topics.lock() else { return };
        if let Some(r) = topics.remove(topic) {
            TopicAccepting { topic, refused: r.refused }.emit();
        }
    }
}

impl Refusal {
    fn new() -> Self {
        Refusal { missing_since: None, error: String::new(), warned: Instant::now(), refused: 0 }
    }
}

/// How often, at most, a line says that frames are being skipped as stale.
const SKIP_LOG_EVERY: Duration = Duration::from_secs(10);

/// Rate-limits the [`StaleSkipping`] line: the first skip logs at once, later ones at most once per
/// [`SKIP_LOG_EVERY`] with the count since the previous line.
#[derive(Default)]
struct SkipLog {
    last: Option<Instant>,
    since_last: u64,
}

impl SkipLog {
    fn skipped(&mut self, total: u64) {
        self.since_last += 1;
        if self.last.is_none_or(|at| at.elapsed() >= SKIP_LOG_EVERY) {
            StaleSkipping { skipped: self.since_last, total }.emit();
            self.last = Some(Instant::now());
            self.since_last = 0;
        }
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
        OffsetNotStored { partition, offset: next, error: &e }.emit();
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
                Some(true) if missing.insert(topic.clone()) => TopicMissing { role, topic: &topic }.emit(),
                Some(false) if missing.remove(&topic) => TopicBack { role, topic: &topic }.emit(),
                _ => {}
            }
        }
    }
}
