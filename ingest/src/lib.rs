//! `ingest`: decode a video source with FFmpeg, sample it to a target frame rate, encode each kept frame as
//! JPEG and publish it to Kafka as a `Frame`, keyed by camera id so a camera's frames stay in order.
//!
//! # Layout
//! - [`decode`]: opening sources and decoding video, with damage and truncation reported.
//! - [`sample`]: `--fps` sampling by stream time.
//! - [`jpeg`]: libjpeg-turbo encoding from YUV planes.
//! - [`publish`]: the Kafka producer with backpressure and delivery accounting.
//! - [`progress`]: progress bar and periodic status lines.
//! - [`metrics`]: Prometheus metrics.

pub mod decode;
pub mod error;
pub mod jpeg;
pub mod metrics;
pub mod progress;
pub mod publish;
pub mod sample;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

use framewire_common::kafka::KafkaArgs;
use framewire_common::metrics::MetricsArgs;
use framewire_proto::{Encoding, Frame, SCHEMA_VERSION, names};

pub use error::{Error, Result};

use decode::{End, VideoSource};
use progress::Progress;

/// Command-line configuration of `ingest`.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "ingest", version, about = "Decode a video and publish its frames to Kafka as JPEG Frames")]
pub struct Config {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub metrics: MetricsArgs,

    /// Camera id: the Kafka key of every frame and the name subscribers see. Defaults to the file name
    /// without extension.
    #[arg(long, env = "FRAMEWIRE_CAMERA")]
    pub camera: Option<String>,

    /// Frames per second to publish, sampled by stream time. Default: every decoded frame.
    #[arg(long, env = "FRAMEWIRE_FPS")]
    pub fps: Option<f64>,

    /// Pace a file at its native speed, so it stands in for a live camera.
    #[arg(long, env = "FRAMEWIRE_REALTIME")]
    pub realtime: bool,

    /// Topic to publish frames to.
    #[arg(long, env = "FRAMEWIRE_FRAMES_TOPIC", default_value = names::TOPIC_FRAMES)]
    pub topic: String,

    /// Partitions for the topic if ingest has to create it.
    #[arg(long, env = "FRAMEWIRE_PARTITIONS", default_value_t = 4)]
    pub partitions: i32,

    /// Replication factor for the topic if ingest has to create it.
    #[arg(long, env = "FRAMEWIRE_REPLICATION", default_value_t = 1)]
    pub replication: i32,

    /// JPEG quality, 1-100.
    #[arg(long, env = "FRAMEWIRE_JPEG_QUALITY", default_value_t = 80, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub jpeg_quality: u8,

    /// Largest Kafka message ingest may produce (librdkafka message.max.bytes). The broker and topic must
    /// accept it too.
    #[arg(long, env = "FRAMEWIRE_MAX_MESSAGE_BYTES", default_value_t = 4_000_000)]
    pub max_message_bytes: usize,

    /// Progress display: a bar on a terminal, periodic log lines otherwise.
    #[arg(long, env = "FRAMEWIRE_PROGRESS", value_enum, default_value = "auto")]
    pub progress: progress::Mode,

    /// Video file, image sequence pattern or URL (anything FFmpeg reads).
    #[arg(env = "FRAMEWIRE_SOURCE")]
    pub source: String,
}

impl Config {
    /// The camera id: `--camera`, else the source's file stem.
    pub fn camera_id(&self) -> String {
        self.camera.clone().unwrap_or_else(|| {
            Path::new(self.source.trim_end_matches('/'))
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "camera".into())
        })
    }
}

/// What an ingest run did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub camera: String,
    pub decoded: u64,
    pub published: u64,
    pub elapsed: Duration,
}

/// Bounded hand-off between the decoder thread and the producer: a few frames, since each is large.
const QUEUE_FRAMES: usize = 8;

/// Runs ingest until the source ends or `shutdown` fires. Returns an error (after publishing every frame
/// decoded before it) if the source is damaged, and if any frame was not acknowledged.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<Summary> {
    let start = Instant::now();
    let camera = config.camera_id();
    let metrics = metrics::Metrics::new();
    framewire_common::metrics::serve(&config.metrics, metrics.registry.clone(), shutdown.clone()).await;

    // Open the source before touching Kafka: a missing or broken file is reported without waiting on a broker.
    let source = config.source.clone();
    let source = tokio::task::spawn_blocking(move || VideoSource::open(&source)).await.map_err(join_error)??;
    info!(camera = %camera, source = %source.info.uri, width = source.info.width, height = source.info.height,
        codec = %source.info.codec, fps = ?source.info.fps, "source opened");

    let kafka = config.kafka.clone();
    tokio::task::spawn_blocking(move || kafka.wait_reachable()).await.map_err(join_error)??;
    config.kafka.ensure_topics(&[(&config.topic, config.partitions)], config.replication).await?;

    let mut publisher =
        publish::Publisher::new(&config.kafka, &config.topic, &camera, config.max_message_bytes, metrics.clone())?;
    let (tx, mut rx) = mpsc::channel::<Frame>(QUEUE_FRAMES);
    let progress = Progress::new(config.progress, &camera, source.info.duration_us);

    let decoder = {
        let (config, camera, metrics, shutdown, progress) =
            (config.clone(), camera.clone(), metrics.clone(), shutdown.clone(), progress.clone());
        tokio::task::spawn_blocking(move || decode_loop(source, &config, &camera, &metrics, &shutdown, &progress, tx))
    };

    while let Some(frame) = rx.recv().await {
        publisher.send(&frame.camera_id, &frame.encode_to_vec()).await?;
        publisher.poll_deliveries();
        progress.set_published(publisher.delivered);
    }
    let decoded = decoder.await.map_err(join_error)?;
    let delivered = publisher.finish(Duration::from_secs(90)).await;
    progress.finish();
    let published = delivered?;
    match decoded {
        Ok((decoded, _)) => Ok(Summary { camera, decoded, published, elapsed: start.elapsed() }),
        // Frames before the damage are published; the count in the error is what was acknowledged.
        Err(Error::Truncated { source_uri, ended_s, declared_s, .. }) => {
            Err(Error::Truncated { source_uri, ended_s, declared_s, frames: published })
        }
        Err(Error::Read { source_uri, reason, .. }) => Err(Error::Read { source_uri, frames: published, reason }),
        Err(e) => Err(e),
    }
}

fn join_error(e: tokio::task::JoinError) -> Error {
    Error::Decoder { source_uri: String::new(), reason: format!("decoder thread failed: {e}") }
}

/// Decodes, samples, encodes and hands frames to the producer. Runs on a blocking thread.
/// Returns the number of decoded frames and how decoding ended.
fn decode_loop(
    mut source: VideoSource,
    config: &Config,
    camera: &str,
    metrics: &metrics::Metrics,
    shutdown: &CancellationToken,
    progress: &Progress,
    tx: mpsc::Sender<Frame>,
) -> Result<(u64, End)> {
    let mut sampler = sample::FpsSampler::new(config.fps);
    let mut encoder = jpeg::JpegEncoder::new(config.jpeg_quality)?;
    let mut seq: u64 = 0;
    let mut pacing: Option<(Instant, i64)> = None;
    let uri = source.info.uri.clone();
    let labels = [camera];
    let end = source.run(|frame, t_us| {
        metrics.decoded.with_label_values(&labels).inc();
        progress.set_position(t_us);
        if shutdown.is_cancelled() {
            return Ok(false);
        }
        if !sampler.keep(t_us) {
            return Ok(true);
        }
        if config.realtime && !pace(&mut pacing, t_us, shutdown) {
            return Ok(false);
        }
        let started = Instant::now();
        let image = encoder.encode(frame)?;
        metrics.encode_seconds.with_label_values(&labels).observe(started.elapsed().as_secs_f64());
        metrics.jpeg_bytes.with_label_values(&labels).inc_by(image.len() as u64);
        metrics.sampled.with_label_values(&labels).inc();
        let msg = Frame {
            schema_version: SCHEMA_VERSION,
            camera_id: camera.to_string(),
            seq,
            capture_time_ms: now_ms(),
            stream_time_us: t_us,
            width: frame.width(),
            height: frame.height(),
            encoding: Encoding::Jpeg as i32,
            image,
            source_uri: uri.clone(),
        };
        seq += 1;
        // The producer side only goes away on a fatal error; stop decoding then.
        Ok(tx.blocking_send(msg).is_ok())
    });
    metrics.bad_packets.with_label_values(&labels).inc_by(source.stats.bad_packets);
    end.map(|e| (source.stats.frames, e))
}

/// Sleeps until stream time `t_us` is due in wall-clock time. Returns false if shutdown fired meanwhile.
fn pace(anchor: &mut Option<(Instant, i64)>, t_us: i64, shutdown: &CancellationToken) -> bool {
    let (wall0, t0) = *anchor.get_or_insert((Instant::now(), t_us));
    let due = wall0 + Duration::from_micros((t_us - t0).max(0) as u64);
    while let Some(left) = due.checked_duration_since(Instant::now()) {
        if shutdown.is_cancelled() {
            return false;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
    true
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
