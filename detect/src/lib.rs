//! `detect`: a Kafka consumer group that runs an ONNX object detector on every `Frame` and publishes
//! `Detections`. Delivery is at-least-once: a frame's offset is stored only after its result (or its
//! dead letter) is acknowledged by the broker.
//!
//! The pipeline is four stages joined by small bounded channels, so JPEG decoding and preprocessing
//! overlap with inference and a slow stage slows the ones before it:
//!
//! ```text
//! consumer (thread) -> preprocess (thread) -> inference (thread) -> output (async: produce, store offsets)
//!                           \___________ dead letters ____________/
//! ```
//!
//! A frame is taken only with one of `--max-pending` permits, given back when its result or dead letter is
//! acknowledged: when the output cannot keep up, the consumer pauses its partitions instead of memory
//! growing. A stage that fails for good (a fatal Kafka error, a panic) stops the replica with an error
//! naming it.
//!
//! # Layout
//! - [`consumer`]: group settings, rebalance handling, and the poll loop that pauses the input when full.
//! - [`offsets`]: in-order offset tracking per partition.
//! - [`preprocess`]: JPEG decode, resize, normalise.
//! - [`model`]: ONNX Runtime session and decoding to boxes; [`spec`] its metadata file.
//! - [`ssd`], [`yolo`], [`nms`], [`labels`]: output decoding.
//! - [`output`]: publishing results and dead letters, storing offsets once acknowledged.
//! - [`supervise`]: stage threads and tasks whose failure or panic stops the replica.
//! - [`metrics`]: Prometheus metrics.

pub mod consumer;
pub mod error;
pub mod labels;
pub mod metrics;
pub mod model;
pub mod nms;
pub mod offsets;
pub mod output;
pub mod preprocess;
pub mod spec;
pub mod ssd;
pub mod supervise;
pub mod yolo;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use framewire_common::kafka::KafkaArgs;
use framewire_common::metrics::MetricsArgs;
use framewire_proto::{Detections, SCHEMA_VERSION, names};

pub use error::{Error, Result};
use model::{Detector, ModelOptions};
use offsets::{OffsetTracker, Ticket};
use preprocess::Prepared;
use supervise::Supervisor;

/// Command-line configuration of `detect`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "detect",
    version,
    about = "Run an ONNX object detector on Kafka frames, as one member of a consumer group"
)]
pub struct Config {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub metrics: MetricsArgs,

    /// ONNX model file.
    #[arg(long, env = "FRAMEWIRE_MODEL")]
    pub model: PathBuf,

    /// Model metadata (input layout, decoder). Default: the .toml next to the model; without one, the
    /// layout and decoder are inferred from the model's tensor shapes when unambiguous.
    #[arg(long, env = "FRAMEWIRE_MODEL_CONFIG")]
    pub model_config: Option<PathBuf>,

    /// Labels file, one label per line, numbered from the metadata's labels_first_id (1 for TF models, 0 for
    /// YOLO). Overrides the metadata's labels.
    #[arg(long, env = "FRAMEWIRE_LABELS")]
    pub labels: Option<PathBuf>,

    /// The ONNX Runtime shared library (libonnxruntime.so), loaded at start-up.
    #[arg(long = "onnxruntime", env = "ORT_DYLIB_PATH", default_value = ".cache/onnxruntime/libonnxruntime.so")]
    pub runtime: PathBuf,

    /// Minimum score of a reported box.
    #[arg(long, env = "FRAMEWIRE_CONF", default_value_t = 0.5)]
    pub conf: f32,

    /// IoU above which a lower-scored box of the same class is suppressed.
    #[arg(long, env = "FRAMEWIRE_IOU", default_value_t = 0.45)]
    pub iou: f32,

    /// Report only these classes (labels or ids, comma-separated), e.g. person,car.
    #[arg(long, env = "FRAMEWIRE_CLASSES", value_delimiter = ',')]
    pub classes: Vec<String>,

    /// Per-class minimum score, e.g. person=0.6,car=0.4 (overrides --conf for those classes).
    #[arg(long, env = "FRAMEWIRE_CLASS_CONF", value_delimiter = ',', value_parser = parse_class_conf)]
    pub class_conf: Vec<(String, f32)>,

    /// At most this many boxes per frame.
    #[arg(long, env = "FRAMEWIRE_MAX_DETECTIONS", default_value_t = 100)]
    pub max_detections: usize,

    /// Consumer group: replicas with the same group share the input partitions.
    #[arg(long, env = "FRAMEWIRE_GROUP", default_value = names::GROUP_DETECT)]
    pub group: String,

    /// Static group membership id (unique per replica): a restarted replica gets its partitions back at once.
    #[arg(long, env = "FRAMEWIRE_INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// Where inference runs. GPU providers need a build with the matching cargo feature and the
    /// onnxruntime-gpu library; detect fails instead of falling back silently.
    #[arg(long, env = "FRAMEWIRE_EXECUTION_PROVIDER", value_enum, default_value = "cpu")]
    pub execution_provider: model::ExecutionProvider,

    /// Most frames per inference call, for models with a dynamic batch dimension (others run one at a time).
    #[arg(long, env = "FRAMEWIRE_MAX_BATCH", default_value_t = 8)]
    pub max_batch: usize,

    /// How long a partial batch waits for more frames before running.
    #[arg(long, env = "FRAMEWIRE_MAX_BATCH_WAIT", default_value = "5ms", value_parser = humantime::parse_duration)]
    pub max_batch_wait: Duration,

    /// ONNX Runtime intra-op threads.
    #[arg(long, env = "FRAMEWIRE_THREADS", default_value_t = 1)]
    pub threads: usize,

    /// Topic to read Frames from.
    #[arg(long, env = "FRAMEWIRE_FRAMES_TOPIC", default_value = names::TOPIC_FRAMES)]
    pub input_topic: String,

    /// Topic to publish Detections to.
    #[arg(long, env = "FRAMEWIRE_DETECTIONS_TOPIC", default_value = names::TOPIC_DETECTIONS)]
    pub output_topic: String,

    /// Dead-letter topic for messages that cannot be processed. Default: <input-topic>.dlq.
    #[arg(long, env = "FRAMEWIRE_DLQ_TOPIC")]
    pub dlq_topic: Option<String>,

    /// Partitions for the output and dead-letter topics if detect has to create them.
    #[arg(long, env = "FRAMEWIRE_PARTITIONS", default_value_t = 4)]
    pub partitions: i32,

    /// Replication factor for topics detect creates.
    #[arg(long, env = "FRAMEWIRE_REPLICATION", default_value_t = 1)]
    pub replication: i32,

    /// Replay: partitions this group never committed start at this offset (e.g. a new --group to run a new
    /// model version over the same frames).
    #[arg(long, env = "FRAMEWIRE_FROM_OFFSET", conflicts_with = "from_timestamp")]
    pub from_offset: Option<i64>,

    /// Replay: partitions this group never committed start at the first frame published at or after this
    /// time (RFC 3339, e.g. 2026-11-24T10:00:00Z, or Unix milliseconds).
    #[arg(long, env = "FRAMEWIRE_FROM_TIMESTAMP", value_parser = parse_timestamp)]
    pub from_timestamp: Option<i64>,

    /// Inference attempts for a frame before it is dead-lettered.
    #[arg(long, env = "FRAMEWIRE_RETRIES", default_value_t = 5)]
    pub retries: u32,

    /// Most frames consumed and not yet acknowledged (their result or dead letter not yet delivered). When
    /// the output cannot keep up, detect pauses its input at this many instead of holding more; memory
    /// stays within about this many frames.
    #[arg(long, env = "FRAMEWIRE_MAX_PENDING", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pending: u32,

    /// How long the input, output or dead-letter topic may be missing on the broker (deleted while detect
    /// runs) before detect stops with an error. Frames wait meanwhile, so a topic re-created in time loses
    /// nothing.
    #[arg(long, env = "FRAMEWIRE_MISSING_TOPIC_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub missing_topic_timeout: Duration,

    /// On shutdown, how long to let in-flight frames finish before leaving them to the next owner.
    #[arg(long, env = "FRAMEWIRE_DRAIN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    /// Interval of the status log line.
    #[arg(long, env = "FRAMEWIRE_STATUS_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub status_interval: Duration,
}

impl Config {
    pub fn dlq_topic(&self) -> String {
        self.dlq_topic.clone().unwrap_or_else(|| names::dlq_topic(&self.input_topic))
    }

    fn model_options(&self) -> ModelOptions {
        ModelOptions {
            model: self.model.clone(),
            spec: self.model_config.clone(),
            labels: self.labels.clone(),
            runtime: self.runtime.clone(),
            threads: self.threads,
            conf: self.conf,
            iou: self.iou,
            max_detections: self.max_detections,
            classes: self.classes.clone(),
            class_conf: self.class_conf.clone(),
            execution_provider: self.execution_provider,
            max_batch: self.max_batch,
        }
    }
}

fn parse_timestamp(s: &str) -> std::result::Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let t = humantime::parse_rfc3339_weak(s).map_err(|e| format!("{s:?}: {e} (use RFC 3339 or Unix milliseconds)"))?;
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).map_err(|_| format!("{s:?} is before 1970"))
}

fn parse_class_conf(s: &str) -> std::result::Result<(String, f32), String> {
    let (class, score) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected CLASS=SCORE"))?;
    let score: f32 = score.trim().parse().map_err(|_| format!("{s:?}: score is not a number"))?;
    if !(0.0..=1.0).contains(&score) {
        return Err(format!("{s:?}: score must be between 0 and 1"));
    }
    Ok((class.trim().to_string(), score))
}

/// A consumed message travelling through the pipeline.
pub(crate) struct Job {
    ticket: Ticket,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    headers: Option<OwnedHeaders>,
    received: Instant,
    /// Room taken in the pipeline, given back once the frame's result or dead letter is acknowledged.
    permit: OwnedSemaphorePermit,
}

/// A frame ready for inference.
struct PreparedJob {
    job: Job,
    frame: framewire_proto::Frame,
    prepared: Prepared,
}

/// What the output stage publishes for a job.
pub(crate) enum Outcome {
    Detected { ticket: Ticket, detections: Detections, permit: OwnedSemaphorePermit },
    Dead { job: Job, reason: String, kind: &'static str },
}

/// What a run did, for the exit summary.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub detected: u64,
    pub dead_lettered: u64,
}

/// Runs one detect replica until `shutdown`, then drains, commits and flushes.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<Summary> {
    let metrics = metrics::Metrics::new();
    framewire_common::metrics::serve(&config.metrics, metrics.registry.clone(), shutdown.clone()).await;

    // Load the model before joining the group: a bad model must not take partitions away from healthy replicas.
    let opts = config.model_options();
    let detector = tokio::task::spawn_blocking(move || Detector::load(&opts)).await.map_err(join_err)??;
    let preprocessor = detector.preprocessor()?;

    let kafka = config.kafka.clone();
    tokio::task::spawn_blocking(move || kafka.wait_reachable()).await.map_err(join_err)??;
    let dlq = config.dlq_topic();
    config
        .kafka
        .ensure_topics(
            &[
                (&config.input_topic, config.partitions),
                (&config.output_topic, config.partitions),
                (&dlq, config.partitions),
            ],
            config.replication,
        )
        .await?;

    let tracker = Arc::new(Mutex::new(OffsetTracker::new()));
    let settings = consumer::consumer_settings(&config.group, config.instance_id.as_deref());
    let base: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let start = match (config.from_offset, config.from_timestamp) {
        (Some(o), _) => Some(consumer::StartAt::Offset(o)),
        (None, Some(t)) => Some(consumer::StartAt::Timestamp(t)),
        _ => None,
    };
    let replayed = Arc::new(Mutex::new(std::collections::HashSet::new()));
    let paused = Arc::new(AtomicBool::new(false));
    let context = consumer::GroupContext {
        tracker: tracker.clone(),
        topic: config.input_topic.clone(),
        start,
        replayed: replayed.clone(),
        paused: paused.clone(),
    };
    let consumer: Arc<BaseConsumer<consumer::GroupContext>> =
        Arc::new(config.kafka.config(&base)?.create_with_context(context)?);
    consumer.subscribe(&[&config.input_topic])?;
    let producer: FutureProducer = config
        .kafka
        .config(&[
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("linger.ms", "5"),
            ("message.timeout.ms", "60000"),
            // Dead letters carry the original frame, which ingest may have made up to 4 MB by default.
            ("message.max.bytes", "8388608"),
        ])?
        .create()?;
    info!(group = %config.group, input = %config.input_topic, output = %config.output_topic, dlq = %dlq,
        model = %detector.name, version = %detector.version, max_pending = config.max_pending, "detect started");

    // Stops on shutdown, and on the first stage failure.
    let stop = shutdown.child_token();
    let sup = Supervisor::new(stop.clone());
    let capacity = Arc::new(Semaphore::new(config.max_pending as usize));
    let (job_tx, job_rx) = mpsc::channel::<Job>(16);
    let (prep_tx, prep_rx) = mpsc::channel::<PreparedJob>(4);
    let (out_tx, out_rx) = mpsc::channel::<Outcome>(32);

    let consuming = {
        let intake = consumer::Intake {
            consumer: consumer.clone(),
            tracker: tracker.clone(),
            jobs: job_tx,
            capacity,
            paused,
            stop: stop.clone(),
            metrics: metrics.clone(),
            replay_from: config.from_timestamp.map(|ms| (ms, replayed)),
            topic: config.input_topic.clone(),
            missing_timeout: config.missing_topic_timeout,
        };
        let stop = stop.clone();
        // Nothing is consumed once this ends, for whatever reason: the rest drains and detect stops.
        sup.thread("consumer", move || {
            let r = consumer::consume(intake);
            stop.cancel();
            r
        })?
    };
    let pre = {
        let out_tx = out_tx.clone();
        sup.thread("preprocess", move || {
            preprocess_stage(preprocessor, job_rx, prep_tx, out_tx);
            Ok(())
        })?
    };
    let inf = {
        let (metrics, retries, wait) = (metrics.clone(), config.retries, config.max_batch_wait);
        sup.thread("inference", move || {
            inference_stage(detector, prep_rx, out_tx, metrics, retries, wait);
            Ok(())
        })?
    };
    let mut output = sup.task(
        "output",
        output::output_stage(
            out_rx,
            output::Output {
                producer: producer.clone(),
                consumer: consumer.clone(),
                tracker: tracker.clone(),
                input_topic: config.input_topic.clone(),
                output_topic: config.output_topic.clone(),
                dlq_topic: dlq.clone(),
                missing_timeout: config.missing_topic_timeout,
                metrics: metrics.clone(),
            },
        ),
    );
    let watch = tokio::spawn(output::watch_topics(
        producer.clone(),
        vec![("output", config.output_topic.clone()), ("dead-letter", dlq.clone())],
        stop.clone(),
    ));
    let status = tokio::spawn(status_loop(
        consumer.clone(),
        tracker.clone(),
        config.input_topic.clone(),
        config.status_interval,
        metrics.clone(),
        stop.clone(),
    ));

    stop.cancelled().await;
    status.abort();
    watch.abort();
    let _ = status.await;
    let _ = watch.await;

    // The consumer has stopped taking frames; the stages drain what they hold.
    info!(in_flight = tracker.lock().map(|t| t.in_flight()).unwrap_or(0), "draining in-flight frames");
    let summary = match tokio::time::timeout(config.drain_timeout, &mut output).await {
        Ok(Ok(s)) => s.unwrap_or_default(),
        Ok(Err(e)) => {
            sup.fail(Error::StagePanicked { stage: "output", message: e.to_string() });
            Summary::default()
        }
        Err(_) => {
            warn!(timeout = ?config.drain_timeout, "drain timed out: unfinished frames will be processed again by the next owner");
            output.abort();
            let _ = output.await;
            Summary::default()
        }
    };
    // A producer that failed for good, or a topic that is gone, will not take the rest either.
    let flush_for = if sup.failed() { Duration::from_secs(2) } else { Duration::from_secs(10) };
    // Committing, reading back the commit, flushing and leaving the group block on the broker.
    let closed = tokio::task::spawn_blocking(move || {
        let _ = consuming.join();
        consumer::commit_sync(consumer.as_ref());
        if let Ok(tpl) = consumer.committed(Duration::from_secs(5)) {
            let committed: Vec<String> =
                tpl.elements().iter().map(|e| format!("{}:{:?}", e.partition(), e.offset())).collect();
            info!(committed = ?committed, "offsets committed");
        }
        let _ = producer.flush(flush_for);
        // Closing the consumer (with its last reference) leaves the group.
        drop(consumer);
        // The stage threads end once their channels close; inference may still be finishing one call.
        let _ = pre.join();
        let _ = inf.join();
    });
    let _ = closed.await;
    if let Some(e) = sup.take_failure() {
        return Err(e);
    }
    info!(detected = summary.detected, dead_lettered = summary.dead_lettered, "detect stopped");
    Ok(summary)
}

fn join_err(e: tokio::task::JoinError) -> Error {
    Error::Inference(format!("task failed: {e}"))
}

/// Logs a status line every `every` (frames, rate, in flight, lag) and keeps the lag gauge current.
async fn status_loop(
    consumer: Arc<BaseConsumer<consumer::GroupContext>>,
    tracker: Arc<Mutex<OffsetTracker>>,
    topic: String,
    every: Duration,
    metrics: metrics::Metrics,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    let mut last = (Instant::now(), 0u64);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let done: u64 = metrics.frames.collect_total();
        let fps = (done - last.1) as f64 / last.0.elapsed().as_secs_f64();
        last = (Instant::now(), done);
        let in_flight = tracker.lock().map(|t| t.in_flight()).unwrap_or(0);
        // Watermark queries block: keep them off the async workers.
        let (c, t, tp, m) = (consumer.clone(), tracker.clone(), topic.clone(), metrics.clone());
        let lag = tokio::task::spawn_blocking(move || measure_lag(&c, &t, &tp, &m)).await.unwrap_or(0);
        info!(frames = done, fps = format!("{fps:.1}"), in_flight, lag, "detect status");
    }
}

/// Consumer lag per assigned partition: the broker's high watermark minus this replica's position (the
/// first frame not yet done), exported as a gauge. Returns the total. Asked of the broker directly rather
/// than taken from librdkafka's statistics, whose high watermark some Kafka-protocol brokers report loosely.
fn measure_lag(
    consumer: &BaseConsumer<consumer::GroupContext>,
    tracker: &Mutex<OffsetTracker>,
    topic: &str,
    metrics: &metrics::Metrics,
) -> i64 {
    let Ok(assignment) = consumer.assignment() else { return 0 };
    let parts: Vec<i32> = assignment.elements_for_topic(topic).iter().map(|e| e.partition()).collect();
    // Only partitions this replica has not consumed from yet need the committed offsets (a broker round trip).
    let mut committed: Option<Option<TopicPartitionList>> = None;
    let mut total = 0;
    metrics.consumer_lag.reset();
    for p in parts {
        let Ok((low, high)) = consumer.fetch_watermarks(topic, p, Duration::from_secs(2)) else { continue };
        let position = tracker.lock().ok().and_then(|t| t.position(p)).or_else(|| {
            let c = committed.get_or_insert_with(|| consumer.committed(Duration::from_secs(2)).ok());
            match c.as_ref()?.find_partition(topic, p)?.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            }
        });
        let position = position.unwrap_or(low);
        let lag = (high - position).max(0);
        metrics.consumer_lag.with_label_values(&[&p.to_string()]).set(lag);
        total += lag;
    }
    total
}

trait CollectTotal {
    fn collect_total(&self) -> u64;
}

impl CollectTotal for prometheus::IntCounterVec {
    fn collect_total(&self) -> u64 {
        use prometheus::core::Collector;
        self.collect().iter().flat_map(|mf| mf.get_metric().iter().map(|m| m.get_counter().get_value() as u64)).sum()
    }
}

fn preprocess_stage(
    mut pre: preprocess::Preprocessor,
    mut jobs: mpsc::Receiver<Job>,
    prepared: mpsc::Sender<PreparedJob>,
    out: mpsc::Sender<Outcome>,
) {
    while let Some(job) = jobs.blocking_recv() {
        let frame = match framewire_proto::decode_frame(&job.payload) {
            Ok(f) => f,
            Err(e) => {
                let kind = match e {
                    framewire_proto::DecodeError::UnsupportedVersion { .. } => "schema_version",
                    _ => "not_a_frame",
                };
                if out.blocking_send(Outcome::Dead { job, reason: e.to_string(), kind }).is_err() {
                    return;
                }
                continue;
            }
        };
        match pre.prepare(&frame.image) {
            Ok(p) => {
                if prepared.blocking_send(PreparedJob { job, frame, prepared: p }).is_err() {
                    return;
                }
            }
            Err(e) => {
                let reason = format!("camera {} seq {}: {e}", frame.camera_id, frame.seq);
                if out.blocking_send(Outcome::Dead { job, reason, kind: "bad_image" }).is_err() {
                    return;
                }
            }
        }
    }
}

fn inference_stage(
    mut detector: Detector,
    mut prepared: mpsc::Receiver<PreparedJob>,
    out: mpsc::Sender<Outcome>,
    metrics: metrics::Metrics,
    retries: u32,
    batch_wait: Duration,
) {
    while let Some(first) = prepared.blocking_recv() {
        // Batch what arrives within `batch_wait`, up to what the model accepts.
        let mut batch = vec![first];
        let deadline = Instant::now() + batch_wait;
        while batch.len() < detector.max_batch {
            match prepared.try_recv() {
                Ok(j) => batch.push(j),
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) => std::thread::sleep(left.min(Duration::from_micros(500))),
                    None => break,
                },
            }
        }
        metrics.batch_size.observe(batch.len() as f64);
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            let refs: Vec<&Prepared> = batch.iter().map(|j| &j.prepared).collect();
            match detector.detect(&refs) {
                Ok(r) => break Ok(r),
                Err(e) if attempt < retries.max(1) => {
                    warn!(error = %e, attempt, "inference failed, retrying");
                    std::thread::sleep(Duration::from_millis(50 * u64::from(attempt)));
                }
                Err(e) => break Err(e),
            }
        };
        match result {
            Ok((boxes, infer_ms)) => {
                metrics.inference_seconds.observe(f64::from(infer_ms) / 1000.0);
                let per_frame_ms = infer_ms / batch.len() as f32;
                for (j, boxes) in batch.into_iter().zip(boxes) {
                    let f = &j.frame;
                    let detections = Detections {
                        schema_version: SCHEMA_VERSION,
                        camera_id: f.camera_id.clone(),
                        seq: f.seq,
                        capture_time_ms: f.capture_time_ms,
                        stream_time_us: f.stream_time_us,
                        width: j.prepared.src_width,
                        height: j.prepared.src_height,
                        model_name: detector.name.clone(),
                        model_version: detector.version.clone(),
                        inference_ms: per_frame_ms,
                        boxes,
                        detected_time_ms: now_ms(),
                        source_topic: String::new(),
                        source_partition: j.job.ticket.partition,
                        source_offset: j.job.ticket.offset,
                    };
                    debug!(camera = %f.camera_id, seq = f.seq, boxes = detections.boxes.len(),
                        queued_ms = j.job.received.elapsed().as_millis() as u64, "frame detected");
                    let (ticket, permit) = (j.job.ticket, j.job.permit);
                    if out.blocking_send(Outcome::Detected { ticket, detections, permit }).is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                for j in batch {
                    let reason =
                        format!("camera {} seq {}: {e} (after {attempt} attempts)", j.frame.camera_id, j.frame.seq);
                    if out.blocking_send(Outcome::Dead { job: j.job, reason, kind: "inference" }).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
