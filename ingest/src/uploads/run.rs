//! `ingest --uploads`: consume notifications, publish each object's frames (or dead-letter the
//! notification), and only then store the notification's offset for the next commit. One notification is in
//! flight at a time, so memory holds one object and a few frames, and a partition's offsets advance in order.

use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{FutureProducer, Producer as _};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use framewire_common::backoff::Backoff;
use framewire_common::deliver::{self, Outgoing, Refused};
use framewire_common::failure::{self, Verdict};
use framewire_common::objects::Objects;

use super::events::{
    UploadDeadLettered, UploadKafkaRetry, UploadNotificationReceived, UploadOffsetNotStored, UploadRecordSkipped,
    UploadsStarted, UploadsStopped,
};
use super::notification::{self, Entry};
use super::object::{self, Context, Outcome};
use super::{DeadKind, UploadError};
use crate::metrics::Metrics;
use crate::summary::{Summary, UploadSummary};
use crate::{Config, Error};

/// How long the uploads or dead-letter topic may be reported missing before ingest stops.
const MISSING_TIMEOUT: Duration = Duration::from_secs(30);

/// Consumer settings; `-X` can still override them.
fn consumer_settings(group: &str) -> [(&str, &str); 6] {
    [
        ("group.id", group),
        // Offsets are stored only once a notification's frames are acknowledged; librdkafka commits the
        // stored offsets periodically, on rebalance and at exit.
        ("enable.auto.commit", "true"),
        ("enable.auto.offset.store", "false"),
        ("auto.offset.reset", "earliest"),
        ("fetch.wait.max.ms", "10"),
        // Notifications are small and handled one at a time: no need to prefetch megabytes of them.
        ("queued.max.messages.kbytes", "1024"),
    ]
}

/// Runs until shutdown (or `--idle-exit`); an error when ingest cannot go on, saying what to fix.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<Summary, UploadError> {
    let start = Instant::now();
    let args = &config.uploads;
    let cli = |reason: &str| Error::Config { path: "the command line".into(), reason: reason.into() };
    let Some(topic) = args.topic.clone() else { return Err(cli("--uploads TOPIC is required here").into()) };
    if config.config.is_some() || !config.cameras.is_empty() || config.source.is_some() {
        return Err(cli(
            "--uploads reads upload notifications instead of cameras: drop --camera, --config and SOURCE, or run \
             the cameras in a second ingest",
        )
        .into());
    }
    if config.motion {
        return Err(cli("--motion gates cameras; uploaded objects are not gated: drop --motion with --uploads").into());
    }
    // librdkafka checks every -X setting now, before the broker is waited for.
    config.kafka.config(&[])?;
    let metrics = Metrics::new();
    for kind in DeadKind::ALL {
        // Every reason shows on the dashboard from the start, at 0.
        metrics.upload_dead_letters.with_label_values(&[kind.label()]);
    }
    framewire_common::metrics::serve(&config.metrics, metrics.registry.clone(), shutdown.clone()).await;
    let kafka = config.kafka.clone();
    tokio::task::spawn_blocking(move || kafka.wait_reachable()).await.map_err(join_error)??;
    let dlq = args.dlq_topic(&topic);
    let topics = [(config.topic.as_str(), config.partitions), (dlq.as_str(), config.partitions)];
    config.kafka.ensure_topics(&topics, config.replication).await?;
    // The uploads topic is the bucket's to fill; creating it lets ingest start before the store notifies.
    config.kafka.ensure_topics(&[(&topic, config.partitions)], config.replication).await?;

    let settings = crate::publish::producer_settings(config.max_message_bytes);
    let base: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let producer: FutureProducer = config.kafka.create(&base)?;
    let consumer: StreamConsumer = config.kafka.create(&consumer_settings(&args.group))?;
    consumer.subscribe(&[&topic])?;

    let cx = Context {
        objects: Objects::new(&config.objects),
        producer: producer.clone(),
        topic: config.topic.clone(),
        pattern: args.camera_from.clone(),
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
        fps: config.fps,
        keyframes_only: config.keyframes_only,
        options: config.input_options.iter().cloned().collect(),
        jpeg_quality: config.jpeg_quality,
        max_image_bytes: config.max_message_bytes.saturating_sub(crate::MESSAGE_OVERHEAD).max(1024),
        max_object_bytes: args.max_object_bytes,
        queue_frames: config.queue_frames,
        s3_retries: config.objects.s3_retries,
    };
    let (group, frames) = (args.group.as_str(), config.topic.as_str());
    UploadsStarted { topic: &topic, group, frames, dlq: &dlq, pattern: &args.camera_from }.emit();

    let mut missing_since: Option<Instant> = None;
    let mut last_error: Option<(String, Instant)> = None;
    let mut last = Instant::now();
    let result = loop {
        let idle_left = args.idle_exit.map(|d| d.saturating_sub(last.elapsed()));
        let received = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            _ = tokio::time::sleep(idle_left.unwrap_or(Duration::MAX)), if idle_left.is_some() => break Ok(()),
            m = consumer.recv() => m,
        };
        let m = match received {
            Ok(m) => m,
            Err(e) => match consumer_error(&topic, &e, &mut missing_since, &mut last_error) {
                Ok(()) => continue,
                Err(fatal) => break Err(fatal),
            },
        };
        missing_since = None;
        match handle(&cx, &dlq, &m).await {
            Ok(true) => store(&consumer, &m),
            // Shutdown came first: the notification is read again by whoever consumes the partition next.
            Ok(false) => break Ok(()),
            Err(e) => break Err(e),
        }
        last = Instant::now();
    };

    // Stored offsets go to the broker before the group is left, so the next owner starts after them.
    match tokio::task::block_in_place(|| consumer.commit_consumer_state(CommitMode::Sync)) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => UploadOffsetNotStored { partition: -1, offset: -1, error: &e }.emit(),
    }
    drop(consumer);
    // Every frame was acknowledged before its offset was stored; flushing covers an interrupted object.
    let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10))).await;
    result?;
    let figures = metrics.upload_figures();
    let uploads = UploadSummary {
        notifications: figures.notifications,
        objects: figures.objects,
        frames: figures.frames,
        skipped: figures.skipped,
        dead_letters: figures.dead_letters,
    };
    let summary = Summary { elapsed: start.elapsed(), uploads: Some(uploads), ..Summary::default() };
    UploadsStopped { figures: &figures, elapsed: summary.elapsed }.emit();
    Ok(summary)
}

/// Handles one notification: every object in it published, or the notification dead-lettered. False
/// when shutdown interrupted it (its offset must not be stored).
async fn handle(cx: &Context, dlq: &str, m: &BorrowedMessage<'_>) -> Result<bool, UploadError> {
    let (partition, offset) = (m.partition(), m.offset());
    let entries = match notification::parse(m.payload().unwrap_or_default()) {
        Ok(e) => e,
        Err(e) => {
            UploadNotificationReceived { partition, offset, records: 0 }.emit(&cx.metrics);
            dead_letter(cx, dlq, m, DeadKind::BadNotification, &e.to_string()).await?;
            return Ok(true);
        }
    };
    UploadNotificationReceived { partition, offset, records: entries.len() }.emit(&cx.metrics);
    for entry in entries {
        let created = match entry {
            Entry::Created(c) => c,
            Entry::Skipped { event } => {
                UploadRecordSkipped { partition, offset, event: &event }.emit(&cx.metrics);
                continue;
            }
        };
        match object::process(cx, &created).await? {
            Outcome::Published { .. } => {}
            Outcome::Dead { kind, reason } => dead_letter(cx, dlq, m, kind, &reason).await?,
            Outcome::Stopped => return Ok(false),
        }
    }
    Ok(true)
}

/// Sends the notification to the dead-letter topic with `reason`, until the broker acknowledges it.
async fn dead_letter(
    cx: &Context,
    dlq: &str,
    m: &BorrowedMessage<'_>,
    kind: DeadKind,
    reason: &str,
) -> Result<(), UploadError> {
    let source = format!("{}/{}/{}", m.topic(), m.partition(), m.offset());
    UploadDeadLettered { source: &source, kind, reason }.emit(&cx.metrics);
    let headers = m.headers().map(rdkafka::message::BorrowedHeaders::detach).unwrap_or_default();
    let payload = m.payload().unwrap_or_default().to_vec();
    let mut msg = Outgoing::dead_letter(dlq, m.key().map(<[u8]>::to_vec), payload, headers, reason, &source);
    let mut backoff = Backoff::jittered(Duration::from_millis(200), Duration::from_secs(10));
    let mut missing_since: Option<Instant> = None;
    deliver::send(&cx.producer, &mut msg, &mut backoff, |e, msg, retry_in| {
        let stop = |advice| {
            let reason = failure::fatal_reason(cx.producer.client(), e);
            Refused::Stop(UploadError::DeadLetter { topic: msg.topic.clone(), reason, advice })
        };
        match failure::verdict(e) {
            Verdict::Fatal(advice) => return stop(advice),
            Verdict::TooLarge => return stop("raise the dead-letter topic's max.message.bytes"),
            Verdict::Missing if missing_since.get_or_insert_with(Instant::now).elapsed() >= MISSING_TIMEOUT => {
                return stop("create the dead-letter topic again (or name another with --dlq-topic)");
            }
            Verdict::Missing | Verdict::Retry => {}
        }
        UploadKafkaRetry { error: e, retry_in: Some(retry_in), warn: true }.emit();
        Refused::Retry
    })
    .await
}

/// Stores the offset after `m` for the next commit.
fn store(consumer: &StreamConsumer, m: &BorrowedMessage<'_>) {
    let mut tpl = TopicPartitionList::new();
    let (partition, next) = (m.partition(), m.offset() + 1);
    if tpl.add_partition_offset(m.topic(), partition, Offset::Offset(next)).is_ok()
        && let Err(error) = consumer.store_offsets(&tpl)
    {
        // The partition was just revoked: its new owner reads the notification again (same seqs).
        UploadOffsetNotStored { partition, offset: next, error: &error }.emit();
    }
}

/// A consumer error: logged and waited out, unless retrying cannot help. librdkafka repeats an error many
/// times a second while a broker is down: one line per distinct error, or per 10 s, is enough.
fn consumer_error(
    topic: &str,
    e: &KafkaError,
    missing_since: &mut Option<Instant>,
    last_error: &mut Option<(String, Instant)>,
) -> Result<(), UploadError> {
    match failure::verdict(e) {
        Verdict::Fatal(advice) => {
            return Err(UploadError::Consume { topic: topic.to_string(), reason: e.to_string(), advice });
        }
        Verdict::Missing => {
            let waited = missing_since.get_or_insert_with(Instant::now).elapsed();
            if waited >= MISSING_TIMEOUT {
                return Err(UploadError::TopicGone { topic: topic.to_string(), waited });
            }
        }
        Verdict::Retry | Verdict::TooLarge => {}
    }
    let text = e.to_string();
    let warn = last_error.as_ref().is_none_or(|(t, at)| *t != text || at.elapsed() > Duration::from_secs(10));
    if warn {
        *last_error = Some((text, Instant::now()));
    }
    UploadKafkaRetry { error: e, retry_in: None, warn }.emit();
    Ok(())
}

fn join_error(e: tokio::task::JoinError) -> Error {
    Error::Decoder { source_uri: String::new(), reason: format!("ingest task failed: {e}") }
}
