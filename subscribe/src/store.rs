//! `subscribe store`: every `Detections` into a database, with snapshots, events and alerts.
//!
//! ```text
//!  processed_images ──batch──► snapshots (frame read back from raw_video_frames by offset, boxes drawn)
//!                              trackers (events; one per alert rule)
//!                              one DB transaction: frames, boxes, events, alerts, cursors, outbox
//!                              ──commit──► Kafka offsets committed
//!  outbox ──► `events` / `alerts` topics, webhooks (rows deleted once delivered)
//! ```
//!
//! Offsets are committed only after the transaction commits, so a crash or a database outage loses
//! nothing: the batch comes again and the upserts (keyed by camera + seq + model) make it land once.
//! Tracker state is part of the same transaction (open events and per-camera cursors), so a redelivered
//! frame neither extends an event twice nor starts a second one. Topic records and webhooks go through an
//! outbox table written in that transaction: they are sent at least once, even across a crash.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use framewire_common::dead_letter::{self, Fit};
use framewire_common::kafka::KafkaArgs;
use framewire_common::metrics::MetricsArgs;
use framewire_proto::json::model_tag;
use framewire_proto::{Detections, names};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::alerts::{self, Alert, Rule};
use crate::db::{Db, DbError, Value};
use crate::frames::FrameFetcher;
use crate::metrics::StoreMetrics;
use crate::snapshot::{self, SnapshotArgs};
use crate::track::{EventRow, Tracker};

#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Database: sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DB.
    #[arg(long, env = "FRAMEWIRE_DB", hide_env_values = true, default_value = "sqlite://framewire.db")]
    pub db: String,

    /// Topic of Detections to store.
    #[arg(long, env = "FRAMEWIRE_DETECTIONS_TOPIC", default_value = names::TOPIC_DETECTIONS)]
    pub topic: String,

    /// Topic the frames came from (used when a Detections message does not name it).
    #[arg(long, env = "FRAMEWIRE_FRAMES_TOPIC", default_value = names::TOPIC_FRAMES)]
    pub frames_topic: String,

    /// Consumer group; replicas of `store` with one group share the partitions.
    #[arg(long, env = "FRAMEWIRE_STORE_GROUP", default_value = "framewire-store")]
    pub group: String,

    /// Static group membership (group.instance.id): a restarted replica gets its partitions back at once
    /// instead of after the session timeout. Give every replica its own.
    #[arg(long, env = "FRAMEWIRE_INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// Topic for event records (JSON: started / ended).
    #[arg(long, env = "FRAMEWIRE_EVENTS_TOPIC", default_value = "events")]
    pub events_topic: String,

    /// Topic for alert records (JSON).
    #[arg(long, env = "FRAMEWIRE_ALERTS_TOPIC", default_value = "alerts")]
    pub alerts_topic: String,

    /// Dead-letter topic for messages that are not Detections. Default: <topic>.dlq.
    #[arg(long, env = "FRAMEWIRE_STORE_DLQ_TOPIC")]
    pub dlq_topic: Option<String>,

    /// Partitions for the events, alerts and dead-letter topics if store has to create them.
    #[arg(long, env = "FRAMEWIRE_PARTITIONS", default_value_t = 4)]
    pub partitions: i32,

    /// Alert rules (TOML, `[[rule]]` tables).
    #[arg(long, env = "FRAMEWIRE_ALERT_RULES")]
    pub rules: Option<PathBuf>,

    /// Least overlap (IoU) for a box to continue a track.
    #[arg(long, env = "FRAMEWIRE_TRACK_IOU", default_value_t = 0.2)]
    pub track_iou: f32,

    /// An event ends when its object has not been seen for this long.
    #[arg(long, env = "FRAMEWIRE_EVENT_GAP", default_value = "3s", value_parser = humantime::parse_duration)]
    pub event_gap: Duration,

    /// Most messages per database transaction.
    #[arg(long, env = "FRAMEWIRE_STORE_MAX_BATCH", default_value_t = 500)]
    pub max_batch: usize,

    /// Longest wait to fill a batch.
    #[arg(long, env = "FRAMEWIRE_STORE_BATCH_WAIT", default_value = "200ms", value_parser = humantime::parse_duration)]
    pub batch_wait: Duration,

    /// Longest pause between retries while the database is down.
    #[arg(long, env = "FRAMEWIRE_DB_RETRY_MAX", default_value = "10s", value_parser = humantime::parse_duration)]
    pub retry_max: Duration,

    /// Attempts to deliver a webhook before it is given up (logged and counted).
    #[arg(long, env = "FRAMEWIRE_WEBHOOK_RETRIES", default_value_t = 5)]
    pub webhook_retries: u32,

    /// A new group starts at the newest message instead of the oldest retained one.
    #[arg(long)]
    pub from_latest: bool,

    /// Exit when no message arrived for this long (e.g. 10s); for batch jobs and tests.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub idle_exit: Option<Duration>,

    /// How often to log a status line.
    #[arg(long, env = "FRAMEWIRE_STATUS_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub status_interval: Duration,

    #[command(flatten)]
    pub snapshots: SnapshotArgs,
}

impl StoreArgs {
    fn dlq_topic(&self) -> String {
        self.dlq_topic.clone().unwrap_or_else(|| names::dlq_topic(&self.topic))
    }
}

/// Figures of a finished run.
#[derive(Debug, Default, Clone, Serialize)]
pub struct StoreSummary {
    pub messages: u64,
    pub frames: u64,
    pub boxes: u64,
    pub duplicates: u64,
    pub dead_letters: u64,
    pub snapshots: u64,
    pub snapshot_errors: u64,
    pub events: u64,
    pub alerts: u64,
    pub db_retries: u64,
}

impl StoreSummary {
    pub fn render(&self) -> String {
        format!(
            "stored {} frames ({} boxes) from {} messages; {} redelivered, {} dead-lettered; {} snapshots ({} failed), {} events, {} alerts; {} database retries",
            self.frames,
            self.boxes,
            self.messages,
            self.duplicates,
            self.dead_letters,
            self.snapshots,
            self.snapshot_errors,
            self.events,
            self.alerts,
            self.db_retries
        )
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Everything one transaction writes.
#[derive(Default)]
struct Work {
    frames: Vec<(Detections, String, Option<String>)>,
    events: BTreeMap<String, EventRow>,
    alerts: Vec<(Alert, Option<String>)>,
    outbox: Vec<(&'static str, String, String, String)>,
    cursors: BTreeMap<(String, String, String), u64>,
    offsets: HashMap<(String, i32), i64>,
    duplicates: u64,
    dead: u64,
    snapshots: u64,
    snapshot_errors: u64,
    started: u64,
    latencies_ms: Vec<i64>,
}

#[derive(Serialize)]
struct EventRecord<'a> {
    state: &'a str,
    #[serde(flatten)]
    event: &'a EventRow,
}

/// The trackers: events (scope "") and one per alert rule.
#[derive(Clone)]
struct Trackers {
    events: Tracker,
    rules: Vec<(Rule, Tracker)>,
}

impl Trackers {
    fn all_mut(&mut self) -> impl Iterator<Item = &mut Tracker> {
        std::iter::once(&mut self.events).chain(self.rules.iter_mut().map(|(_, t)| t))
    }
}

/// Runs the store until shutdown (or `--idle-exit`).
pub async fn run(
    kafka: &KafkaArgs,
    args: &StoreArgs,
    metrics_args: &MetricsArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<StoreSummary> {
    let metrics = StoreMetrics::new();
    framewire_common::metrics::serve(metrics_args, metrics.registry.clone(), shutdown.clone()).await;
    let rules = match &args.rules {
        Some(p) => alerts::load(p)?,
        None => Vec::new(),
    };
    for r in &rules {
        // Every rule shows on the dashboard from the start, at 0.
        metrics.alerts.with_label_values(&[&r.name]);
    }
    let k = kafka.clone();
    tokio::task::spawn_blocking(move || k.wait_reachable()).await??;
    let dlq = args.dlq_topic();
    kafka
        .ensure_topics(
            &[(&args.events_topic, args.partitions), (&args.alerts_topic, args.partitions), (&dlq, args.partitions)],
            1,
        )
        .await?;

    let Some(mut db) = connect_with_retry(&args.db, args.retry_max, &metrics, &shutdown).await else {
        return Ok(StoreSummary::default());
    };
    let gap_ms = args.event_gap.as_millis() as i64;
    let mut trackers = Trackers {
        events: Tracker::new("", args.track_iou, gap_ms),
        rules: rules.iter().map(|r| (r.clone(), Tracker::new(&r.name, args.track_iou, gap_ms))).collect(),
    };
    restore(&mut db, &mut trackers).await?;
    if let Some(dir) = args.snapshots.dir() {
        info!(dir = %dir.display(), classes = ?args.snapshots.snapshot_classes, "snapshots on");
    }
    info!(rules = rules.len(), db = %crate::db::redact(&args.db), topic = %args.topic, group = %args.group, "store started");

    let producer: FutureProducer = kafka
        .config(&[
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("message.max.bytes", "8388608"),
            ("linger.ms", "5"),
        ])?
        .create()?;
    let mut consumer_config = kafka.config(&[
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
        consumer_config.set("group.instance.id", id);
    }
    let consumer: StreamConsumer = consumer_config.create()?;
    consumer.subscribe(&[&args.topic])?;
    let fetcher = Arc::new(FrameFetcher::new(kafka, Duration::from_secs(5))?);

    let outbox_wake = Arc::new(Notify::new());
    let outbox_stop = CancellationToken::new();
    let outbox = tokio::spawn(outbox_loop(
        args.db.clone(),
        producer.clone(),
        metrics.clone(),
        outbox_wake.clone(),
        outbox_stop.clone(),
        args.webhook_retries,
    ));
    let sweeper = args.snapshots.dir().map(|dir| {
        let (age, bytes, every) =
            (args.snapshots.snapshot_max_age, args.snapshots.snapshot_max_bytes, args.snapshots.snapshot_sweep);
        let m = metrics.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let d = dir.clone();
                match tokio::task::spawn_blocking(move || snapshot::sweep(&d, age, bytes)).await {
                    Ok(Ok((0, _))) => {}
                    Ok(Ok((n, freed))) => {
                        m.snapshots_deleted.inc_by(n);
                        info!(deleted = n, freed_bytes = freed, "snapshot retention");
                    }
                    Ok(Err(e)) => warn!(dir = %dir.display(), error = %e, "snapshot retention sweep failed"),
                    Err(e) => warn!(error = %e, "snapshot retention task failed"),
                }
            }
        })
    });

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
                info!(frames = summary.frames, fps = format!("{fps:.1}"), events = summary.events,
                    alerts = summary.alerts, snapshots = summary.snapshots, db_retries = summary.db_retries,
                    "store status");
                continue;
            }
            _ = expire.tick() => {
                let mut next = trackers.clone();
                let mut work = Work::default();
                for t in next.all_mut() {
                    for row in t.expire(now_ms(), 5000) {
                        if row.scope.is_empty() {
                            work.outbox.push(event_record(&args.events_topic, "ended", &row));
                        }
                        work.events.insert(row.id.clone(), row);
                    }
                }
                if work.events.is_empty() {
                    continue;
                }
                if !commit_work(&mut db, &work, args, &metrics, &mut summary, &shutdown).await {
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
            Err(e) => {
                warn!(error = %e, "consumer error");
                continue;
            }
        }
        let deadline = tokio::time::Instant::now() + args.batch_wait;
        while batch.len() < args.max_batch {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(m)) => batch.push(m.detach()),
                Ok(Err(e)) => warn!(error = %e, "consumer error"),
                Err(_) => break,
            }
        }
        last_msg = Instant::now();

        let mut next = trackers.clone();
        let mut work = Work::default();
        for m in &batch {
            let key = (m.topic().to_string(), m.partition());
            let e = work.offsets.entry(key).or_insert(m.offset());
            *e = (*e).max(m.offset());
            let d = match framewire_proto::decode_detections(m.payload().unwrap_or_default()) {
                Ok(d) => d,
                Err(e) => {
                    dead_letter(&producer, &dlq, m, &e.to_string()).await;
                    metrics.dead_letters.inc();
                    work.dead += 1;
                    continue;
                }
            };
            prepare(&d, &mut next, &mut work, args, &fetcher, &metrics, &mut last_snapshot).await;
        }
        if !commit_work(&mut db, &work, args, &metrics, &mut summary, &shutdown).await {
            break 'run;
        }
        trackers = next;
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in &work.offsets {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(offset + 1))?;
        }
        // A synchronous commit waits on the broker: tell the runtime, so this worker's other tasks move on.
        if let Err(e) = tokio::task::block_in_place(|| consumer.commit(&tpl, CommitMode::Sync)) {
            // Stored already; the messages come again and the upserts absorb them.
            warn!(error = %e, "committing offsets failed");
        }
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

/// Adds one message's rows to `work`: snapshot, tracker updates, alerts, events records.
async fn prepare(
    d: &Detections,
    next: &mut Trackers,
    work: &mut Work,
    args: &StoreArgs,
    fetcher: &Arc<FrameFetcher>,
    metrics: &StoreMetrics,
    last_snapshot: &mut HashMap<String, i64>,
) {
    let model = model_tag(d);
    let now = now_ms();
    let Some(observed) = next.events.observe(d, &model, now, |_| true) else {
        work.duplicates += 1;
        metrics.duplicates.inc();
        // Stored before; upserting again is harmless and repairs nothing-but-a-crash states.
        work.frames.push((d.clone(), model, None));
        return;
    };
    work.latencies_ms.push(now - d.capture_time_ms);

    // Snapshot: a wanted label, and either the camera's interval has passed or one of its events just began.
    let mut snap_path = None;
    if let Some(dir) = args.snapshots.dir() {
        let wanted: Vec<usize> = (0..d.boxes.len()).filter(|&i| args.snapshots.wants(&d.boxes[i].label)).collect();
        let new_event = observed
            .matches
            .iter()
            .any(|(i, id)| observed.started.contains(id) && args.snapshots.wants(&d.boxes[*i].label));
        let due = last_snapshot
            .get(&d.camera_id)
            .is_none_or(|&t| d.capture_time_ms - t >= args.snapshots.snapshot_interval.as_millis() as i64);
        if !wanted.is_empty() && (due || new_event) {
            match take_snapshot(d, &model, &dir, args, fetcher).await {
                Ok(path) => {
                    metrics.snapshots.inc();
                    work.snapshots += 1;
                    last_snapshot.insert(d.camera_id.clone(), d.capture_time_ms);
                    snap_path = Some(path);
                }
                Err((kind, e)) => {
                    metrics.snapshot_errors.with_label_values(&[kind]).inc();
                    work.snapshot_errors += 1;
                    // Throttled by the snapshot interval; the detections are stored regardless.
                    last_snapshot.insert(d.camera_id.clone(), d.capture_time_ms);
                    warn!(camera = %d.camera_id, seq = d.seq, kind, error = %e, "snapshot not saved; detections are stored without it");
                }
            }
        }
    }

    for row in &observed.ended {
        work.outbox.push(event_record(&args.events_topic, "ended", row));
    }
    for row in observed.touched {
        work.events.insert(row.id.clone(), row);
    }
    if let Some(path) = &snap_path {
        for (i, id) in &observed.matches {
            let b = &d.boxes[*i];
            if !args.snapshots.wants(&b.label) {
                continue;
            }
            let updated = next.events.update(id, |r| {
                if r.best_snapshot.is_none() || b.score > r.best_score {
                    r.best_snapshot = Some(path.clone());
                    r.best_score = b.score;
                }
            });
            if let Some(row) = updated {
                work.events.insert(row.id.clone(), row);
            }
        }
    }
    for id in &observed.started {
        if let Some(row) = work.events.get(id) {
            work.started += 1;
            work.outbox.push(event_record(&args.events_topic, "started", row));
        }
    }

    for (rule, tracker) in &mut next.rules {
        let Some(o) = tracker.observe(d, &model, now, |b| rule.accepts(d, b)) else { continue };
        for row in o.touched {
            let row = if row.open && rule.due(&row) {
                let alert = Alert::from_track(rule, &row);
                info!(rule = %rule.name, camera = %row.camera, label = %row.label, duration_ms = row.duration_ms(), "alert");
                work.alerts.push((alert, rule.webhook.clone()));
                tracker.update(&row.id, |r| r.alerted = true).unwrap_or(row)
            } else {
                row
            };
            work.events.insert(row.id.clone(), row);
        }
    }
    for t in next.all_mut() {
        let scope = t.scope().to_string();
        for (camera, m, seq) in t.cursors() {
            if camera == d.camera_id && m == model {
                work.cursors.insert((scope.clone(), camera.to_string(), m.to_string()), seq);
            }
        }
    }
    work.frames.push((d.clone(), model, snap_path));
}

fn event_record(topic: &str, state: &str, row: &EventRow) -> (&'static str, String, String, String) {
    let payload = serde_json::to_string(&EventRecord { state, event: row }).unwrap_or_default();
    ("kafka", topic.to_string(), row.camera.clone(), payload)
}

/// Reads the frame back, draws the boxes and writes the file. Errors carry their metric label.
async fn take_snapshot(
    d: &Detections,
    model: &str,
    dir: &std::path::Path,
    args: &StoreArgs,
    fetcher: &Arc<FrameFetcher>,
) -> Result<String, (&'static str, String)> {
    let f = fetcher.clone();
    let det = d.clone();
    let topic = args.frames_topic.clone();
    let path = snapshot::path_for(dir, &d.camera_id, d.seq, model);
    tokio::task::spawn_blocking(move || {
        let frame = f.fetch_for(&det, &topic).map_err(|e| ("frame_unavailable", e.to_string()))?;
        let jpeg =
            crate::annotate::annotate_jpeg(&frame.image, &det.boxes).map_err(|e| ("bad_image", e.to_string()))?;
        snapshot::write_atomic(&path, &jpeg)
            .map_err(|e| (snapshot::failure_kind(&e), format!("{}: {e}", path.display())))?;
        Ok(path.display().to_string())
    })
    .await
    .map_err(|e| ("io", e.to_string()))?
}

async fn dead_letter(producer: &FutureProducer, dlq: &str, m: &OwnedMessage, reason: &str) {
    warn!(partition = m.partition(), offset = m.offset(), %reason, "dead-lettering message that is not Detections");
    let source = format!("{}/{}/{}", m.topic(), m.partition(), m.offset());
    let headers = OwnedHeaders::new()
        .insert(Header { key: names::HEADER_DLQ_REASON, value: Some(reason) })
        .insert(Header { key: names::HEADER_DLQ_SOURCE, value: Some(&source) });
    let payload = m.payload().unwrap_or_default();
    let mut fit = Fit::new(payload.len());
    // Until the dead letter is acknowledged the batch's offsets are not committed, so it is never lost.
    loop {
        let mut rec: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(dlq).payload(&payload[..fit.kept()]).headers(fit.headers(&headers));
        if let Some(k) = m.key() {
            rec = rec.key(k);
        }
        match producer.send(rec, Duration::from_secs(30)).await {
            Ok(_) => return,
            Err((e, _)) if dead_letter::too_large(&e) && fit.shrink() => {
                warn!(
                    original_bytes = payload.len(),
                    kept_bytes = fit.kept(),
                    "dead letter refused as too large; sending it cut short"
                );
            }
            Err((e, _)) => {
                warn!(error = %e, "dead letter not acknowledged; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Writes `work` in one transaction, retrying with backoff while the database is down. Returns false when
/// shutdown came first (nothing committed: the messages come again).
async fn commit_work(
    db: &mut Db,
    work: &Work,
    args: &StoreArgs,
    metrics: &StoreMetrics,
    summary: &mut StoreSummary,
    shutdown: &CancellationToken,
) -> bool {
    let mut delay = Duration::from_millis(200);
    loop {
        let start = Instant::now();
        match write(db, work, &args.alerts_topic).await {
            Ok(new_alerts) => {
                metrics.write_seconds.observe(start.elapsed().as_secs_f64());
                metrics.db_up.set(1);
                let boxes: u64 = work.frames.iter().map(|(d, _, _)| d.boxes.len() as u64).sum();
                let fresh = work.frames.len() as u64 - work.duplicates;
                metrics.frames_written.inc_by(fresh);
                metrics.boxes_written.inc_by(boxes);
                metrics.events_started.inc_by(work.started);
                for (a, _) in work.alerts.iter().filter(|(a, _)| new_alerts.contains(&a.id)) {
                    metrics.alerts.with_label_values(&[&a.rule]).inc();
                }
                for ms in &work.latencies_ms {
                    metrics.latency_seconds.observe(*ms as f64 / 1000.0);
                }
                summary.frames += fresh;
                summary.boxes += boxes;
                summary.duplicates += work.duplicates;
                summary.dead_letters += work.dead;
                summary.snapshots += work.snapshots;
                summary.snapshot_errors += work.snapshot_errors;
                summary.events += work.started;
                summary.alerts += new_alerts.len() as u64;
                return true;
            }
            Err(e) => {
                metrics.db_errors.inc();
                metrics.db_up.set(0);
                summary.db_retries += 1;
                warn!(error = %e, retry_in = ?delay, frames = work.frames.len(), "database write failed; offsets not committed, retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        warn!(frames = work.frames.len(), "stopping with a batch unwritten; it will be redelivered");
                        return false;
                    }
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(args.retry_max);
                if (db.is_closed() || matches!(e, DbError::Closed { .. } | DbError::Postgres { .. }))
                    && let Err(e) = db.reconnect().await
                {
                    debug!(error = %e, "reconnect failed");
                }
            }
        }
    }
}

async fn connect_with_retry(
    url: &str,
    retry_max: Duration,
    metrics: &StoreMetrics,
    shutdown: &CancellationToken,
) -> Option<Db> {
    let mut delay = Duration::from_millis(200);
    loop {
        match Db::open(url).await {
            Ok(db) => {
                metrics.db_up.set(1);
                return Some(db);
            }
            Err(e) => {
                metrics.db_errors.inc();
                metrics.db_up.set(0);
                warn!(error = %e, retry_in = ?delay, "database unavailable");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(retry_max);
    }
}

/// One transaction; returns the ids of alerts that are new (not stored by an earlier delivery).
async fn write(db: &mut Db, work: &Work, alerts_topic: &str) -> Result<Vec<String>, DbError> {
    db.batch("BEGIN").await?;
    match write_rows(db, work, alerts_topic).await {
        Ok(new) => {
            db.batch("COMMIT").await?;
            Ok(new)
        }
        Err(e) => {
            let _ = db.batch("ROLLBACK").await;
            Err(e)
        }
    }
}

async fn write_rows(db: &mut Db, work: &Work, alerts_topic: &str) -> Result<Vec<String>, DbError> {
    let stored = now_ms();
    for (d, model, snap) in &work.frames {
        db.exec(
            "INSERT INTO frames (camera, seq, model, capture_ms, detected_ms, stored_ms, width, height, inference_ms,
                                 source_partition, source_offset, box_count, snapshot)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (camera, seq, model) DO UPDATE SET
                capture_ms = excluded.capture_ms, detected_ms = excluded.detected_ms, width = excluded.width,
                height = excluded.height, inference_ms = excluded.inference_ms,
                source_partition = excluded.source_partition, source_offset = excluded.source_offset,
                box_count = excluded.box_count, snapshot = COALESCE(excluded.snapshot, frames.snapshot)",
            &[
                d.camera_id.as_str().into(),
                d.seq.into(),
                model.as_str().into(),
                d.capture_time_ms.into(),
                d.detected_time_ms.into(),
                stored.into(),
                d.width.into(),
                d.height.into(),
                d.inference_ms.into(),
                d.source_partition.into(),
                d.source_offset.into(),
                (d.boxes.len() as i64).into(),
                snap.clone().into(),
            ],
        )
        .await?;
        db.exec(
            "DELETE FROM boxes WHERE camera = $1 AND seq = $2 AND model = $3",
            &[d.camera_id.as_str().into(), d.seq.into(), model.as_str().into()],
        )
        .await?;
        for (i, b) in d.boxes.iter().enumerate() {
            db.exec(
                "INSERT INTO boxes (camera, seq, model, idx, label, class_id, score, x1, y1, x2, y2, capture_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                &[
                    d.camera_id.as_str().into(),
                    d.seq.into(),
                    model.as_str().into(),
                    (i as i64).into(),
                    b.label.as_str().into(),
                    b.class_id.into(),
                    b.score.into(),
                    b.x1.into(),
                    b.y1.into(),
                    b.x2.into(),
                    b.y2.into(),
                    d.capture_time_ms.into(),
                ],
            )
            .await?;
        }
    }
    for e in work.events.values() {
        db.exec(
            "INSERT INTO events (id, scope, camera, model, label, start_ms, end_ms, start_seq, end_seq, frames,
                                 peak_score, peak_seq, best_snapshot, best_score, open, alerted, x1, y1, x2, y2)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
             ON CONFLICT (id) DO UPDATE SET
                end_ms = excluded.end_ms, end_seq = excluded.end_seq, frames = excluded.frames,
                peak_score = excluded.peak_score, peak_seq = excluded.peak_seq,
                best_snapshot = COALESCE(excluded.best_snapshot, events.best_snapshot),
                best_score = excluded.best_score, open = excluded.open, alerted = excluded.alerted,
                x1 = excluded.x1, y1 = excluded.y1, x2 = excluded.x2, y2 = excluded.y2",
            &event_params(e),
        )
        .await?;
    }
    let mut new_alerts = Vec::new();
    for (a, webhook) in &work.alerts {
        let payload = serde_json::to_string(a).unwrap_or_default();
        let inserted = db
            .exec(
                "INSERT INTO alerts (id, rule, camera, model, label, score, seq, capture_ms, started_ms, duration_ms,
                                     created_ms, payload)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING",
                &[
                    a.id.as_str().into(),
                    a.rule.as_str().into(),
                    a.camera.as_str().into(),
                    a.model.as_str().into(),
                    a.label.as_str().into(),
                    a.score.into(),
                    a.seq.into(),
                    a.capture_ms.into(),
                    a.started_ms.into(),
                    a.duration_ms.into(),
                    stored.into(),
                    payload.as_str().into(),
                ],
            )
            .await?;
        if inserted == 0 {
            continue;
        }
        new_alerts.push(a.id.clone());
        outbox(db, "kafka", alerts_topic, &a.camera, &payload, stored).await?;
        if let Some(url) = webhook {
            outbox(db, "webhook", url, &a.camera, &payload, stored).await?;
        }
    }
    for (kind, target, key, payload) in &work.outbox {
        outbox(db, kind, target, key, payload, stored).await?;
    }
    for ((scope, camera, model), seq) in &work.cursors {
        db.exec(
            "INSERT INTO cursors (scope, camera, model, last_seq) VALUES ($1, $2, $3, $4)
             ON CONFLICT (scope, camera, model) DO UPDATE SET last_seq = excluded.last_seq",
            &[scope.as_str().into(), camera.as_str().into(), model.as_str().into(), (*seq).into()],
        )
        .await?;
    }
    Ok(new_alerts)
}

async fn outbox(db: &mut Db, kind: &str, target: &str, key: &str, payload: &str, now: i64) -> Result<(), DbError> {
    db.exec(
        "INSERT INTO outbox (kind, target, msg_key, payload, attempts, created_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        &[kind.into(), target.into(), key.into(), payload.into(), 0i64.into(), now.into()],
    )
    .await
    .map(|_| ())
}

fn event_params(e: &EventRow) -> Vec<Value> {
    vec![
        e.id.as_str().into(),
        e.scope.as_str().into(),
        e.camera.as_str().into(),
        e.model.as_str().into(),
        e.label.as_str().into(),
        e.start_ms.into(),
        e.end_ms.into(),
        e.start_seq.into(),
        e.end_seq.into(),
        e.frames.into(),
        e.peak_score.into(),
        e.peak_seq.into(),
        e.best_snapshot.clone().into(),
        e.best_score.into(),
        e.open.into(),
        e.alerted.into(),
        e.bbox[0].into(),
        e.bbox[1].into(),
        e.bbox[2].into(),
        e.bbox[3].into(),
    ]
}

pub const EVENT_COLUMNS: &str = "id, scope, camera, model, label, start_ms, end_ms, start_seq, end_seq, frames, \
     peak_score, peak_seq, best_snapshot, best_score, open, alerted, x1, y1, x2, y2";

/// An event row read back (columns in `EVENT_COLUMNS` order).
pub fn event_from_row(r: &[Value]) -> EventRow {
    EventRow {
        id: r[0].str(),
        scope: r[1].str(),
        camera: r[2].str(),
        model: r[3].str(),
        label: r[4].str(),
        start_ms: r[5].int(),
        end_ms: r[6].int(),
        start_seq: r[7].int() as u64,
        end_seq: r[8].int() as u64,
        frames: r[9].int() as u64,
        peak_score: r[10].real() as f32,
        peak_seq: r[11].int() as u64,
        best_snapshot: r[12].text(),
        best_score: r[13].real() as f32,
        open: r[14].int() != 0,
        alerted: r[15].int() != 0,
        bbox: [r[16].real() as f32, r[17].real() as f32, r[18].real() as f32, r[19].real() as f32],
    }
}

/// Loads open tracks and cursors, so a restarted store continues its events instead of starting new ones.
async fn restore(db: &mut Db, trackers: &mut Trackers) -> Result<(), DbError> {
    let now = now_ms();
    let rows = db.query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE open = 1"), &[]).await?;
    let n = rows.len();
    for r in rows {
        let row = event_from_row(&r);
        for t in trackers.all_mut() {
            if t.scope() == row.scope {
                t.restore(row.clone(), now);
            }
        }
    }
    for r in db.query("SELECT scope, camera, model, last_seq FROM cursors", &[]).await? {
        let scope = r[0].str();
        for t in trackers.all_mut() {
            if t.scope() == scope {
                t.restore_cursor(&r[1].str(), &r[2].str(), r[3].int() as u64);
            }
        }
    }
    if n > 0 {
        info!(open_events = n, "continuing open events");
    }
    Ok(())
}

/// Delivers outbox rows: Kafka records until acknowledged, webhooks up to `retries` attempts.
async fn outbox_loop(
    url: String,
    producer: FutureProducer,
    metrics: StoreMetrics,
    wake: Arc<Notify>,
    stop: CancellationToken,
    retries: u32,
) {
    let http = match reqwest::Client::builder().timeout(Duration::from_secs(10)).build() {
        Ok(c) => c,
        Err(e) => {
            error!(error = %e, "cannot build the webhook client; webhooks off");
            return;
        }
    };
    let mut db: Option<Db> = None;
    let mut last_round = false;
    loop {
        if !last_round {
            tokio::select! {
                _ = stop.cancelled() => last_round = true,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
        if db.as_ref().is_none_or(Db::is_closed) {
            db = Db::connect(&url).await.ok();
        }
        let Some(conn) = db.as_mut() else { continue };
        if let Err(e) = drain_outbox(conn, &producer, &http, &metrics, retries).await {
            debug!(error = %e, "outbox: database unavailable");
            db = None;
        }
        if last_round {
            return;
        }
    }
}

async fn drain_outbox(
    db: &mut Db,
    producer: &FutureProducer,
    http: &reqwest::Client,
    metrics: &StoreMetrics,
    retries: u32,
) -> Result<(), DbError> {
    let rows =
        db.query("SELECT id, kind, target, msg_key, payload, attempts FROM outbox ORDER BY id LIMIT 500", &[]).await?;
    metrics.outbox_pending.set(rows.len() as i64);
    for r in rows {
        let (id, kind, target, key, payload, attempts) =
            (r[0].int(), r[1].str(), r[2].str(), r[3].str(), r[4].str(), r[5].int());
        let delivered = if kind == "kafka" {
            let headers = OwnedHeaders::new().insert(Header { key: "content-type", value: Some("application/json") });
            let rec = FutureRecord::to(&target).key(&key).payload(&payload).headers(headers);
            match producer.send(rec, Duration::from_secs(10)).await {
                Ok(_) => true,
                Err((e, _)) => {
                    warn!(topic = %target, error = %e, "publishing from the outbox failed; will retry");
                    false
                }
            }
        } else {
            let sent = http
                .post(&target)
                .header("content-type", "application/json")
                .body(payload.clone())
                .send()
                .await
                .and_then(reqwest::Response::error_for_status);
            match sent {
                Ok(_) => {
                    metrics.webhooks.inc();
                    true
                }
                Err(e) if attempts + 1 >= i64::from(retries) => {
                    metrics.webhook_failures.inc();
                    error!(url = %target, attempts = attempts + 1, error = %e, "webhook given up");
                    true
                }
                Err(e) => {
                    warn!(url = %target, attempt = attempts + 1, error = %e, "webhook failed; will retry");
                    db.exec("UPDATE outbox SET attempts = $1 WHERE id = $2", &[(attempts + 1).into(), id.into()])
                        .await?;
                    false
                }
            }
        };
        if delivered {
            db.exec("DELETE FROM outbox WHERE id = $1", &[id.into()]).await?;
        }
    }
    Ok(())
}
