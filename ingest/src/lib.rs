//! `ingest`: decode video sources with FFmpeg (files, RTSP/HTTP cameras, webcams, images and image folders),
//! sample them to a target frame rate, encode each kept frame as JPEG and publish it to Kafka as a `Frame`,
//! keyed by camera id so a camera's frames stay in order. One process runs many cameras, each decoded on its
//! own thread, all sharing one producer.
//!
//! # Layout
//! - [`cameras`]: which cameras to run (config file, flags) and what kind of source each is.
//! - [`camera`]: one camera's worker: open, decode, sample, encode, queue; reconnects for live sources.
//! - [`folder`]: image folders, optionally watched for new files.
//! - [`bucket`]: a bucket prefix in object storage read like a folder, optionally watched for new keys.
//! - [`decode`]: opening sources and decoding video, with stalls, damage and truncation reported.
//! - [`sample`]: `--fps` sampling by stream time.
//! - [`motion`]: `--motion` gating: sampled frames whose picture did not change are left out (counted), with
//!   a keep-alive frame every `--motion-keepalive`.
//! - [`jpeg`]: libjpeg-turbo encoding from YUV planes; shrinking frames that exceed the message size.
//! - [`queue`]: the per-camera queues to the producer (drop-oldest for live sources, wait for files).
//! - [`publish`]: the Kafka producer with backpressure and delivery accounting.
//! - [`progress`]: progress bars and periodic status lines.
//! - [`events`]: named outcomes (frame published, frame dropped, source lost...), each with its log line and
//!   metric update.
//! - [`metrics`]: Prometheus metrics, declared once.
//! - [`summary`]: what a run did, per camera, printed at exit as text or JSON.
//! - [`uploads`]: `--uploads`: S3 upload notifications from Kafka, each object fetched and published as
//!   frames; run by [`uploads::run`] instead of [`run`].

pub mod bucket;
pub mod camera;
pub mod cameras;
pub mod decode;
pub mod error;
pub mod events;
pub mod folder;
pub mod jpeg;
pub mod metrics;
pub mod motion;
pub mod progress;
pub mod publish;
pub mod queue;
pub mod sample;
pub mod summary;
pub mod uploads;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use tokio_util::sync::CancellationToken;
use tracing::info;

use framewire_common::kafka::KafkaArgs;
use framewire_common::metrics::MetricsArgs;
use framewire_proto::{Frame, names};

pub use error::{Error, Result};
pub use summary::{CameraSummary, Summary};

use cameras::{CameraSpec, LiveTiming, RtspTransport, Settings, SourceKind};
use progress::{CameraStatus, Progress};
use queue::{Full, Queues};

/// Command-line configuration of `ingest`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "ingest",
    version,
    about = "Decode video sources (files, RTSP/HTTP cameras, webcams, image folders) and publish their frames to Kafka as JPEG Frames"
)]
pub struct Config {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub metrics: MetricsArgs,

    /// `--uploads TOPIC` and its flags: upload notifications instead of cameras.
    #[command(flatten)]
    pub uploads: uploads::UploadArgs,

    /// Object storage for `s3://`, `gs://` and `az://` sources: endpoint, region, retries.
    #[command(flatten)]
    pub objects: framewire_common::objects::ObjectStoreArgs,

    /// Cameras to run, from a TOML file of `[[camera]]` tables (id, source, and optionally fps, realtime,
    /// keyframes_only, rtsp_transport, options, watch, live, jpeg_quality, motion, motion_keepalive = "2s",
    /// motion_threshold = 0.3).
    #[arg(long, env = "FRAMEWIRE_CONFIG")]
    pub config: Option<PathBuf>,

    /// `ID=SOURCE` adds a camera (repeatable). A plain `ID` names the positional SOURCE; without it the
    /// camera id is the source's file name.
    #[arg(long = "camera", env = "FRAMEWIRE_CAMERA", hide_env_values = true)]
    pub cameras: Vec<String>,

    /// Frames per second to publish per camera, sampled by stream time. Default: every decoded frame.
    #[arg(long, env = "FRAMEWIRE_FPS")]
    pub fps: Option<f64>,

    /// Pace files at their native speed, so a file can stand in for a live camera.
    #[arg(long, env = "FRAMEWIRE_REALTIME")]
    pub realtime: bool,

    /// Decode only keyframes: far less CPU for cameras sampled well below their frame rate.
    #[arg(long, env = "FRAMEWIRE_KEYFRAMES_ONLY")]
    pub keyframes_only: bool,

    /// RTSP transport.
    #[arg(long, env = "FRAMEWIRE_RTSP_TRANSPORT", value_enum, default_value = "tcp")]
    pub rtsp_transport: RtspTransport,

    /// FFmpeg input option `KEY=VALUE` for every camera (repeatable), like `-KEY VALUE` before `-i` on the
    /// FFmpeg command line: e.g. `video_size=1280x720` for a webcam, `user_agent=...` for HTTP.
    #[arg(long = "input-option", env = "FRAMEWIRE_INPUT_OPTION", hide_env_values = true, value_parser = cameras::parse_option)]
    pub input_options: Vec<(String, String)>,

    /// A live source with no frame for this long is considered lost and reconnected.
    #[arg(long, env = "FRAMEWIRE_STALL_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub stall_timeout: Duration,

    /// First reconnect delay; doubles per failed attempt (with jitter) up to --reconnect-max.
    #[arg(long, env = "FRAMEWIRE_RECONNECT_MIN", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub reconnect_min: Duration,

    /// Longest reconnect delay: a camera that comes back is picked up within this.
    #[arg(long, env = "FRAMEWIRE_RECONNECT_MAX", default_value = "30s", value_parser = humantime::parse_duration)]
    pub reconnect_max: Duration,

    /// Give a live camera up after this many failed attempts in a row. Default: retry forever.
    #[arg(long, env = "FRAMEWIRE_MAX_RECONNECTS")]
    pub max_reconnects: Option<u32>,

    /// Keep watching image folders for new files (read once a file's size holds still), and buckets for
    /// objects with keys after the last one read.
    #[arg(long, env = "FRAMEWIRE_WATCH")]
    pub watch: bool,

    /// How often a watched folder or bucket is listed.
    #[arg(long, env = "FRAMEWIRE_WATCH_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub watch_interval: Duration,

    /// Frames queued per camera between its decoder and the producer. When a live camera's queue is full
    /// the oldest frame is dropped (counted); a file waits instead.
    #[arg(long, env = "FRAMEWIRE_QUEUE_FRAMES", default_value_t = 8)]
    pub queue_frames: usize,

    /// Topic to publish frames to.
    #[arg(long, env = "FRAMEWIRE_FRAMES_TOPIC", default_value = names::TOPIC_FRAMES)]
    pub topic: String,

    /// Partitions for the topic if ingest has to create it.
    #[arg(long, env = "FRAMEWIRE_PARTITIONS", default_value_t = 4)]
    pub partitions: i32,

    /// Replication factor for the topic if ingest has to create it.
    #[arg(long, env = "FRAMEWIRE_REPLICATION", default_value_t = 1)]
    pub replication: i32,

    /// Publish a sampled frame only if its picture changed since the camera's last published frame (beyond
    /// sensor noise and changes of light), plus a keep-alive frame every --motion-keepalive. Frames left out
    /// take no seq (a seq gap is still a loss); the next Frame counts them in `unchanged_before`.
    #[arg(long, env = "FRAMEWIRE_MOTION")]
    pub motion: bool,

    /// With --motion: publish a frame at least this often (stream time) even if nothing changed, so a still
    /// object keeps its event open and viewers stay current. Such frames carry `keepalive = true`.
    #[arg(long, env = "FRAMEWIRE_MOTION_KEEPALIVE", default_value = "2s", value_parser = humantime::parse_duration)]
    pub motion_keepalive: Duration,

    /// With --motion: percent of the picture (in cells of a 64-across grid) that must change for a frame to
    /// be published. Lower catches smaller or farther motion; higher ignores swaying leaves.
    #[arg(long, env = "FRAMEWIRE_MOTION_THRESHOLD", default_value_t = motion::DEFAULT_THRESHOLD_PERCENT, value_parser = cameras::parse_percent)]
    pub motion_threshold: f64,

    /// JPEG quality, 1-100.
    #[arg(long, env = "FRAMEWIRE_JPEG_QUALITY", default_value_t = 80, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub jpeg_quality: u8,

    /// Largest Kafka message ingest may produce (librdkafka message.max.bytes); the broker and topic must
    /// accept it too. A frame whose JPEG would not fit is re-encoded at lower quality, then downscaled.
    #[arg(long, env = "FRAMEWIRE_MAX_MESSAGE_BYTES", default_value_t = 4_000_000)]
    pub max_message_bytes: usize,

    /// Progress display: bars on a terminal, periodic status lines otherwise.
    #[arg(long, env = "FRAMEWIRE_PROGRESS", value_enum, default_value = "auto")]
    pub progress: progress::Mode,

    /// Summary at exit, on stdout: `text` (a line per camera) or `json` (one JSON object on one line).
    #[arg(long, env = "FRAMEWIRE_SUMMARY_FORMAT", value_enum, default_value = "text")]
    pub summary_format: summary::Format,

    /// Video file, image, image folder, `/dev/videoN`, URL (rtsp, http, ... anything FFmpeg reads), or a
    /// bucket prefix read like a folder (`s3://bucket/prefix/`, `gs://…`, `az://…`).
    /// Credentials in it (`user:password@`, `?token=`) are hidden wherever it is printed or published.
    #[arg(env = "FRAMEWIRE_SOURCE", hide_env_values = true)]
    pub source: Option<String>,
}

/// Room left in a message for the `Frame`'s other fields, the key and the headers.
const MESSAGE_OVERHEAD: usize = 4096;

impl Config {
    fn defaults(&self) -> Settings {
        Settings {
            fps: self.fps,
            realtime: self.realtime,
            keyframes_only: self.keyframes_only,
            rtsp_transport: self.rtsp_transport,
            options: self.input_options.iter().cloned().collect(),
            watch: self.watch,
            jpeg_quality: self.jpeg_quality,
            motion: self.motion,
            motion_keepalive: self.motion_keepalive,
            motion_threshold: self.motion_threshold,
        }
    }

    /// The cameras this run reads, from the config file, `--camera` flags and the positional source.
    pub fn camera_specs(&self) -> Result<Vec<CameraSpec>> {
        let defaults = self.defaults();
        let cli = |reason: String| Error::Config { path: "the command line".into(), reason };
        let mut specs = match &self.config {
            Some(path) => cameras::read_config(path, &defaults)?,
            None => Vec::new(),
        };
        let mut name = None;
        for c in &self.cameras {
            if c.contains('=') {
                let (id, source) = cameras::parse_camera_flag(c).map_err(cli)?;
                specs.push(defaults.camera(&id, &source));
            } else if name.replace(c.clone()).is_some() {
                return Err(cli("more than one --camera without =SOURCE".into()));
            }
        }
        match (&self.source, name) {
            (Some(source), name) => {
                let id = name.unwrap_or_else(|| cameras::default_id(source));
                specs.push(defaults.camera(&id, source));
            }
            (None, Some(name)) => {
                return Err(cli(format!("--camera {name} names a camera but no SOURCE was given")));
            }
            (None, None) => {}
        }
        if specs.is_empty() {
            return Err(cli("no cameras: give a SOURCE, --camera ID=SOURCE or --config FILE".into()));
        }
        cameras::validate(&specs).map_err(cli)?;
        Ok(specs)
    }
}

/// Runs ingest until every finite source has ended, or until `shutdown` fires. Errors that stop the run
/// before any camera starts (bad config, missing file, unreachable broker) are returned; errors of single
/// cameras are in the summary, after every frame decoded before them was published.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<Summary> {
    let start = Instant::now();
    let specs = config.camera_specs()?;
    // librdkafka checks every -X setting now, before a file is opened or the broker is waited for.
    config.kafka.config(&[])?;
    let metrics = metrics::Metrics::new();
    framewire_common::metrics::serve(&config.metrics, metrics.registry.clone(), shutdown.clone()).await;

    let shared = Arc::new(camera::Shared {
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
        timing: LiveTiming {
            stall_timeout: config.stall_timeout,
            reconnect_min: config.reconnect_min,
            reconnect_max: config.reconnect_max,
            max_reconnects: config.max_reconnects,
        },
        max_image_bytes: config.max_message_bytes.saturating_sub(MESSAGE_OVERHEAD).max(1024),
        watch_interval: config.watch_interval,
        runtime: tokio::runtime::Handle::current(),
        objects: framewire_common::objects::Objects::new(&config.objects),
    });
    let mut queues: Queues<Frame> = Queues::default();
    let mut progress = Progress::new(config.progress, metrics.clone());
    let mut cameras = Vec::new();
    for spec in specs {
        let policy = if spec.live.unwrap_or(spec.kind().is_live()) { Full::DropOldest } else { Full::Wait };
        let queue = queues.add(config.queue_frames, policy);
        let status = CameraStatus::new(&spec.id, spec.settings.motion);
        progress.add(status.clone());
        cameras.push((spec, queue, status));
    }

    // Files and folders are checked before Kafka is touched: a missing or broken file is reported at once,
    // without waiting on a broker. Live cameras may be down now and come up later: they are retried.
    let workers = {
        let shared = shared.clone();
        tokio::task::spawn_blocking(move || preflight(cameras, &shared)).await.map_err(join_error)??
    };

    let kafka = config.kafka.clone();
    tokio::task::spawn_blocking(move || kafka.wait_reachable()).await.map_err(join_error)??;
    config.kafka.ensure_topics(&[(&config.topic, config.partitions)], config.replication).await?;
    let mut publisher =
        publish::Publisher::new(&config.kafka, &config.topic, config.max_message_bytes, metrics.clone())?;

    let ids: Vec<Arc<str>> = workers.iter().map(|(c, _)| Arc::from(c.0.id.as_str())).collect();
    let threads: Vec<_> = workers
        .into_iter()
        .map(|((spec, queue, status), opened)| {
            let id = spec.id.clone();
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("cam-{id}"))
                .spawn(move || {
                    // Whatever happens on this thread, even a panic, the producer must learn that this
                    // camera is done, or it would wait for it forever.
                    let _finish = FinishOnDrop(queue.clone());
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        camera::Worker::new(spec, shared, queue, status.clone())?.run(opened)
                    }))
                    .unwrap_or_else(|panic| {
                        let reason = panic
                            .downcast_ref::<String>()
                            .map(String::as_str)
                            .or_else(|| panic.downcast_ref::<&str>().copied())
                            .unwrap_or("unknown");
                        Err(Error::Decoder {
                            source_uri: String::new(),
                            reason: format!("camera thread panicked: {reason}"),
                        })
                    });
                    if let Err(error) = &result {
                        events::CameraFailed { camera: &id, error }.emit();
                    }
                    result
                })
                .map_err(|e| Error::Decoder { source_uri: String::new(), reason: format!("cannot start thread: {e}") })
        })
        .collect::<Result<_>>()?;

    let rendering = CancellationToken::new();
    let renderer = tokio::spawn(progress.run(rendering.clone()));

    let mut fatal = None;
    while let Some(mut frame) = queues.next().await {
        let i = ids.iter().position(|id| **id == *frame.camera_id).unwrap_or(0);
        publish::stamp_published(&mut frame, &metrics);
        let sent = match publisher.send(&ids[i], &frame.encode_to_vec()).await {
            Ok(()) => publisher.poll_deliveries(),
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            // The producer itself is broken: stop every camera; what was queued is reported undelivered.
            queues.close();
            shutdown.cancel();
            fatal = Some(e);
            break;
        }
    }
    let mut results = Vec::new();
    for t in threads {
        let joined = tokio::task::spawn_blocking(move || t.join()).await.map_err(join_error)?;
        // Panics are caught on the thread itself and turned into the camera's error.
        results.push(joined.map_err(|_| join_panic())?);
    }
    let undelivered = publisher.finish(Duration::from_secs(90)).await;
    rendering.cancel();
    let _ = renderer.await;
    if let Some(e) = fatal {
        return Err(e);
    }

    let cameras = results.into_iter().zip(&ids).map(|(r, id)| CameraSummary::new(id, metrics.figures(id), r));
    let summary = Summary { elapsed: start.elapsed(), cameras: cameras.collect(), undelivered, uploads: None };
    info!(cameras = summary.cameras.len(), elapsed_s = format!("{:.1}", summary.elapsed.as_secs_f64()), "ingest done");
    Ok(summary)
}

type Camera = (CameraSpec, Arc<queue::CameraQueue<Frame>>, Arc<CameraStatus>);

/// Opens file sources and lists folders and buckets, failing on the first that cannot be read.
fn preflight(cameras: Vec<Camera>, shared: &camera::Shared) -> Result<Vec<(Camera, Option<decode::VideoSource>)>> {
    cameras
        .into_iter()
        .map(|c| {
            let spec = &c.0;
            let finite = !spec.live.unwrap_or(spec.kind().is_live());
            match spec.kind() {
                SourceKind::Folder => {
                    folder::list(std::path::Path::new(&spec.source))?;
                    Ok((c, None))
                }
                SourceKind::Bucket => {
                    bucket::check(spec, shared)?;
                    Ok((c, None))
                }
                _ if finite => {
                    let source = camera::open(spec, shared)?;
                    Ok((c, Some(source)))
                }
                _ => Ok((c, None)),
            }
        })
        .collect()
}

struct FinishOnDrop(Arc<queue::CameraQueue<Frame>>);

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        self.0.finish();
    }
}

fn join_panic() -> Error {
    Error::Decoder { source_uri: String::new(), reason: "a camera thread panicked".into() }
}

fn join_error(e: tokio::task::JoinError) -> Error {
    Error::Decoder { source_uri: String::new(), reason: format!("ingest task failed: {e}") }
}
