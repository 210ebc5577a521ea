//! One replica from start to stop: load the model, connect, start the stages under a [`Supervisor`], then on
//! shutdown or the first stage failure drain, commit, flush and leave the group.

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, Producer};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::Config;
use crate::consumer::{self, GroupContext, StartAt};
use crate::events::DrainTimedOut;
use crate::metrics::Metrics;
use crate::model::Detector;
use crate::offsets::OffsetTracker;
use crate::stages::Outcome;
use crate::status::{self, Status};
use crate::supervise::Supervisor;
use crate::{Error, Result, Summary, lanes, output};

/// The Kafka clients of a replica and the state its consumer shares with the pipeline.
struct Clients {
    consumer: Arc<BaseConsumer<GroupContext>>,
    producer: FutureProducer,
    tracker: Arc<Mutex<OffsetTracker>>,
    /// Partitions started from a replay time (see [`GroupContext::replayed`]).
    replayed: Arc<Mutex<HashSet<i32>>>,
    paused: Arc<AtomicBool>,
}

/// Runs one detect replica until `shutdown`, then drains, commits and flushes.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<Summary> {
    let metrics = Metrics::new();
    framewire_common::metrics::serve(&config.metrics, metrics.registry.clone(), shutdown.clone()).await;

    // Load the model before joining the group: a bad model must not take partitions away from healthy replicas.
    // Each worker has its own session.
    let opts = config.model_options();
    let workers = config.workers.max(1) as usize;
    let detectors =
        tokio::task::spawn_blocking(move || (0..workers).map(|_| Detector::load(&opts)).collect::<Result<Vec<_>>>())
            .await
            .map_err(|e| Error::internal("loading the model", e))??;
    metrics.workers(workers);

    let kafka = config.kafka.clone();
    tokio::task::spawn_blocking(move || kafka.wait_reachable())
        .await
        .map_err(|e| Error::internal("waiting for the broker", e))??;
    let dlq = config.dlq_topic();
    let topics = [&config.input_topic, &config.output_topic, &dlq].map(|t| (t.as_str(), config.partitions));
    config.kafka.ensure_topics(&topics, config.replication).await?;

    let Clients { consumer, producer, tracker, replayed, paused } = connect(&config)?;
    let (model, version) =
        detectors.first().map(|d: &Detector| (d.name.clone(), d.version.clone())).unwrap_or_default();
    info!(group = %config.group, input = %config.input_topic, output = %config.output_topic, dlq = %dlq,
        model = %model, version = %version, workers, threads = config.threads, max_pending = config.max_pending,
        max_frame_age = %config.max_frame_age.map_or("off".into(), |d| humantime::format_duration(d).to_string()),
        "detect started");

    // Stops on shutdown, and on the first stage failure.
    let stop = shutdown.child_token();
    let sup = Supervisor::new(stop.clone());
    let capacity = Arc::new(Semaphore::new(config.max_pending as usize));
    let (out_tx, out_rx) = mpsc::channel::<Outcome>(32);

    // The lanes first: the consumer hands frames to them from its first message.
    let settings = lanes::Settings {
        metrics: metrics.clone(),
        retries: config.retries,
        batch_wait: config.max_batch_wait,
        max_frame_age: config.max_frame_age,
    };
    let mut inputs = Vec::with_capacity(workers);
    let mut lane_threads = Vec::with_capacity(2 * workers);
    for (worker, detector) in detectors.into_iter().enumerate() {
        let lane = lanes::start(&sup, worker, detector, &settings, out_tx.clone())?;
        inputs.push(lane.jobs);
        lane_threads.extend(lane.threads);
    }
    // The output ends once every lane has finished and dropped its sender.
    drop(out_tx);

    let consuming = {
        let intake = consumer::Intake {
            consumer: consumer.clone(),
            tracker: tracker.clone(),
            lanes: inputs,
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
    let output = output::Output {
        producer: producer.clone(),
        consumer: consumer.clone(),
        tracker: tracker.clone(),
        input_topic: config.input_topic.clone(),
        output_topic: config.output_topic.clone(),
        dlq_topic: dlq.clone(),
        missing_timeout: config.missing_topic_timeout,
        metrics: metrics.clone(),
    };
    let mut output = sup.task("output", output::output_stage(out_rx, output));
    let watch = tokio::spawn(output::watch_topics(
        producer.clone(),
        vec![("output", config.output_topic.clone()), ("dead-letter", dlq)],
        stop.clone(),
    ));
    let status = Status {
        consumer: consumer.clone(),
        tracker: tracker.clone(),
        topic: config.input_topic.clone(),
        every: config.status_interval,
        metrics,
    };
    let status = tokio::spawn(status::status_loop(status, stop.clone()));

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
            sup.fail(Error::internal("the output task did not finish", e));
            Summary::default()
        }
        Err(_) => {
            DrainTimedOut { timeout: config.drain_timeout }.emit();
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
        // The lanes end once their channels close; inference may still be finishing one call.
        for t in lane_threads {
            let _ = t.join();
        }
    });
    let _ = closed.await;
    if let Some(e) = sup.take_failure() {
        return Err(e);
    }
    info!(
        detected = summary.detected,
        dead_lettered = summary.dead_lettered,
        skipped_stale = summary.skipped_stale,
        "detect stopped"
    );
    Ok(summary)
}

/// Creates the group consumer (subscribed to the input) and the producer of results and dead letters.
fn connect(config: &Config) -> Result<Clients> {
    let tracker = Arc::new(Mutex::new(OffsetTracker::new()));
    let settings = consumer::consumer_settings(&config.group, config.instance_id.as_deref());
    let base: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let start = match (config.from_offset, config.from_timestamp) {
        (Some(o), _) => Some(StartAt::Offset(o)),
        (None, Some(t)) => Some(StartAt::Timestamp(t)),
        _ => None,
    };
    let replayed = Arc::new(Mutex::new(HashSet::new()));
    let paused = Arc::new(AtomicBool::new(false));
    let context = GroupContext {
        tracker: tracker.clone(),
        topic: config.input_topic.clone(),
        start,
        replayed: replayed.clone(),
        paused: paused.clone(),
    };
    let consumer: Arc<BaseConsumer<GroupContext>> = Arc::new(config.kafka.config(&base)?.create_with_context(context)?);
    consumer.subscribe(&[&config.input_topic])?;
    let producer: FutureProducer = config
        .kafka
        .config(&[
            ("acks", "all"),
            ("enable.idempotence", "true"),
            // A live camera's result should not wait for company; a batch's results are produced together
            // and still leave in one request.
            ("linger.ms", "0"),
            ("message.timeout.ms", "60000"),
            // Dead letters carry the original frame, which ingest may have made up to 4 MB by default.
            ("message.max.bytes", "8388608"),
        ])?
        .create()?;
    Ok(Clients { consumer, producer, tracker, replayed, paused })
}
