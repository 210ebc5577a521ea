//! The store's run: start-up, the consume → write → commit loop, shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use framewire_common::kafka::KafkaArgs;
use framewire_common::metrics::MetricsArgs;
use framewire_common::objects::Objects;
use framewire_common::redact;
use framewire_common::time::now_ms;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureProducer;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::batch::{self, Context, Trackers, Work};
use super::outbox::Outbox;
use super::smtp::Mailer;
use super::snapshots::{self, Snapshots};
use super::{StoreArgs, StoreError, StoreSummary, dead_letter, writer};
use crate::alerts;
use crate::events::ConsumerError;
use crate::events::store::{OffsetCommitFailed, StoreStatus};
use crate::frames::FrameFetcher;
use crate::metrics::StoreMetrics;
use crate::snapshot::Place;

/// Runs the store until shutdown (or `--idle-exit`).
pub async fn run(
    kafka: &KafkaArgs,
    args: &StoreArgs,
    metrics_args: &MetricsArgs,
    shutdown: CancellationToken,
) -> Result<StoreSummary, StoreError> {
    let metrics = StoreMetrics::new();
    framewire_common::metrics::serve(metrics_args, metrics.registry.clone(), shutdown.clone()).await;
    let rules = match &args.rules {
        Some(p) => alerts::load(p)?,
        None => Vec::new(),
    };
    if let Some(path) = &args.rules {
        alerts::require_smtp(&rules, path, args.smtp.smtp_url.is_some())?;
    }
    let mailer = Mailer::new(&args.smtp)?;
    if let Some(m) = &mailer {
        info!(smtp = %m.shown, from = %m.from, "alert emails on");
    }
    for r in &rules {
        // Every rule shows on the dashboard from the start, at 0.
        metrics.alerts.with_label_values(&[&r.name]);
    }
    let k = kafka.clone();
    tokio::task::spawn_blocking(move || k.wait_reachable()).await??;
    let dlq = args.dlq_topic();
    let created =
        [(&args.events_topic, args.partitions), (&args.alerts_topic, args.partitions), (&dlq, args.partitions)];
    kafka.ensure_topics(&created.map(|(t, p)| (t.as_str(), p)), 1).await?;

    let Some(mut db) = writer::connect(&args.db, args.retry_max, &metrics, &shutdown).await? else {
        return Ok(StoreSummary::default());
    };
    let mut trackers = Trackers::new(&rules, args.track_iou, args.event_gap.as_millis() as i64);
    writer::restore(&mut db, &mut trackers).await?;
    let place = match args.snapshots.place() {
        Some(p) => Some(Arc::new(Place::open(p, &Objects::new(&args.objects))?)),
        None => None,
    };
    if let Some(p) = &place {
        info!(dir = %p, classes = ?args.snapshots.snapshot_classes, "snapshots on");
    }
    info!(rules = rules.len(), db = %redact::url(&args.db), topic = %args.topic, group = %args.group, "store started");

    let producer: FutureProducer = kafka
        .config(&[
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("message.max.bytes", "8388608"),
            ("linger.ms", "5"),
        ])?
        .create()?;
    let consumer = consumer(kafka, args)?;
    let snaps = Snapshots::new(FrameFetcher::new(kafka, Duration::from_secs(5))?, &args.frames_topic, place.clone());

    let outbox_wake = Arc::new(Notify::new());
    let outbox_stop = CancellationToken::new();
    let outbox = tokio::spawn(
        Outbox {
            url: args.db.clone(),
            producer: producer.clone(),
            metrics: metrics.clone(),
            wake: outbox_wake.clone(),
            stop: outbox_stop.clone(),
            webhook_retries: args.webhook_retries,
            mailer,
            email_retries: args.smtp.email_retries,
            objects: Objects::new(&args.objects),
        }
        .run(),
    );
    let sweeper = place.map(|p| snapshots::sweep(&args.snapshots, p, metrics.clone(), shutdown.clone()));

    let mut summary = StoreSummary::default();
    let mut last_msg = Instant::now();
    let mut last_snapshot: HashMap<String, i64> = HashMap::new();
    let mut status = tokio::time::interval(args.status_interval.max(Duration::from_millis(100)));
    status.tick().await;
    let mut expire = tokio::time::interval(Duration::from_secs(1));
    let mut frames_at_status = 0;
    'run: loop {
        let idle_left = args.idle_exit.map(|d| d.saturating_sub(last_msg.elapsed()));
        let first = tokio::select! {
            _ = shutdown.cancelled() => break 'run,
            _ = tokio::time::sleep(idle_left.unwrap_or(Duration::MAX)), if idle_left.is_some() => break 'run,
            _ = status.tick() => {
                let fps = (summary.frames - frames_at_status) as f64 / args.status_interval.as_secs_f64();
                frames_at_status = summary.frames;
                StoreStatus { summary: &summary, fps }.emit();
                continue;
            }
            _ = expire.tick() => {
                let mut next = trackers.clone();
                let work = Work::expire(&mut next, now_ms(), &args.events_topic);
                if work.changes.events.is_empty() {
                    continue;
                }
                if !writer::commit(&mut db, &work, args, &metrics, &mut summary, &shutdown).await {
                    break 'run;
                }
                trackers = next;
                outbox_wake.notify_one();
                continue;
            }
            m = consumer.recv() => m,
        };
        let mut batch: Vec<OwnedMessage> = Vec::new();
        match first {
            Ok(m) => batch.push(m.detach()),
            Err(error) => {
                ConsumerError { error: &error }.emit();
                continue;
            }
        }
        let deadline = tokio::time::Instant::now() + args.batch_wait;
        while batch.len() < args.max_batch {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(m)) => batch.push(m.detach()),
                Ok(Err(error)) => ConsumerError { error: &error }.emit(),
                Err(_) => break,
            }
        }
        last_msg = Instant::now();

        let mut next = trackers.clone();
        let mut work = Work::default();
        let mut cx = Context { args, metrics: &metrics, snapshots: &snaps, last_snapshot: &mut last_snapshot };
        for m in &batch {
            work.offset(m.topic(), m.partition(), m.offset());
            match framewire_proto::decode_detections(m.payload().unwrap_or_default()) {
                Ok(d) => batch::prepare(&d, &mut next, &mut work, &mut cx, now_ms()).await,
                Err(e) => {
                    dead_letter::send(&producer, &dlq, m, &e.to_string(), &metrics).await;
                    work.dead += 1;
                }
            }
        }
        if !writer::commit(&mut db, &work, args, &metrics, &mut summary, &shutdown).await {
            break 'run;
        }
        trackers = next;
        commit_offsets(&consumer, &work)?;
        summary.messages += batch.len() as u64;
        outbox_wake.notify_one();
    }

    info!("store stopping");
    outbox_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), outbox).await;
    if let Some(s) = sweeper {
        s.abort();
    }
    Ok(summary)
}

fn consumer(kafka: &KafkaArgs, args: &StoreArgs) -> Result<StreamConsumer, StoreError> {
    let mut config = kafka.config(&[
        ("group.id", &args.group),
        ("enable.auto.commit", "false"),
        ("auto.offset.reset", if args.from_latest { "latest" } else { "earliest" }),
        ("fetch.wait.max.ms", "10"),
        // No max.poll.interval.ms beyond the default: it is also the group's rebalance timeout, and a long one
        // makes every rebalance after a crash wait for it. A database outage longer than it makes this member
        // leave and rejoin the group, which loses nothing (offsets wait for the database).
        ("topic.metadata.refresh.interval.ms", "2000"),
    ])?;
    if let Some(id) = &args.instance_id {
        config.set("group.instance.id", id);
    }
    let consumer: StreamConsumer = config.create()?;
    consumer.subscribe(&[&args.topic])?;
    Ok(consumer)
}

/// Commits the offsets after a batch's transaction committed.
fn commit_offsets(consumer: &StreamConsumer, work: &Work) -> Result<(), StoreError> {
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), offset) in &work.offsets {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(offset + 1))?;
    }
    // A synchronous commit waits on the broker: tell the runtime, so this worker's other tasks move on.
    if let Err(error) = tokio::task::block_in_place(|| consumer.commit(&tpl, CommitMode::Sync)) {
        // Stored already; the messages come again and the upserts absorb them.
        OffsetCommitFailed { error: &error }.emit();
    }
    Ok(())
}
