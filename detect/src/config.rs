//! The `detect` command line: every flag (each also an environment variable) and its parsers.

use std::path::PathBuf;
use std::time::Duration;

use framewire_common::kafka::KafkaArgs;
use framewire_common::metrics::MetricsArgs;
use framewire_proto::names;

use crate::model::{self, ModelOptions};

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

    /// ONNX Runtime intra-op threads of each worker's model session.
    #[arg(long, env = "FRAMEWIRE_THREADS", default_value_t = 1)]
    pub threads: usize,

    /// Model sessions run side by side in this process, each with --threads threads and its own
    /// preprocessing. A camera's frames always go to the same worker, so its results stay in
    /// order. With one thread each, N workers scale like N replicas (bench/detect.sh measures both).
    #[arg(long, env = "FRAMEWIRE_WORKERS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub workers: u32,

    /// Fresh results under overload: a frame whose result would be older than this (from its capture
    /// time, counting the recent time of a model call) is not run through the model; it gets a Detections
    /// marked as skipped (stale), so every frame still has a record, in order. Cameras take turns: a fresh
    /// frame may give way to a camera run less recently whose frames are going stale. Off by default:
    /// every frame is run, in order, however far behind detect falls.
    #[arg(long, env = "FRAMEWIRE_MAX_FRAME_AGE", value_parser = parse_max_age)]
    pub max_frame_age: Option<Duration>,

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

    /// How the exit summary is printed: `text` for people, `json` (one line) for scripts and tests.
    #[arg(long, env = "FRAMEWIRE_SUMMARY_FORMAT", value_enum, default_value = "text")]
    pub summary_format: SummaryFormat,
}

pub use framewire_common::summary::Format as SummaryFormat;

impl Config {
    pub fn dlq_topic(&self) -> String {
        self.dlq_topic.clone().unwrap_or_else(|| names::dlq_topic(&self.input_topic))
    }

    pub(crate) fn model_options(&self) -> ModelOptions {
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

fn parse_max_age(s: &str) -> std::result::Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))?;
    if d.is_zero() {
        return Err(format!("{s:?}: a maximum age of zero would skip every frame"));
    }
    Ok(d)
}

fn parse_timestamp(s: &str) -> std::result::Result<i64, String> {
    framewire_common::time::parse_ms(s)
}

fn parse_class_conf(s: &str) -> std::result::Result<(String, f32), String> {
    let (class, score) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected CLASS=SCORE"))?;
    let score: f32 = score.trim().parse().map_err(|_| format!("{s:?}: score is not a number"))?;
    if !(0.0..=1.0).contains(&score) {
        return Err(format!("{s:?}: score must be between 0 and 1"));
    }
    Ok((class.trim().to_string(), score))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn a_timestamp_is_rfc_3339_or_unix_milliseconds() {
        assert_eq!(parse_timestamp("1700000000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_timestamp("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert!(parse_timestamp("yesterday").unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn a_class_score_is_a_label_and_a_fraction() {
        assert_eq!(parse_class_conf(" person = 0.6"), Ok(("person".into(), 0.6)));
        assert!(parse_class_conf("person").unwrap_err().contains("CLASS=SCORE"));
        assert!(parse_class_conf("person=1.5").unwrap_err().contains("between 0 and 1"));
    }

    #[test]
    fn workers_and_the_maximum_age_are_optional_and_checked() {
        let c = Config::try_parse_from(["detect", "--model", "m.onnx"]).unwrap();
        assert_eq!((c.workers, c.max_frame_age), (1, None));
        let c =
            Config::try_parse_from(["detect", "--model", "m.onnx", "--workers", "2", "--max-frame-age", "1s"]).unwrap();
        assert_eq!((c.workers, c.max_frame_age), (2, Some(Duration::from_secs(1))));
        assert!(Config::try_parse_from(["detect", "--model", "m.onnx", "--workers", "0"]).is_err());
        assert!(Config::try_parse_from(["detect", "--model", "m.onnx", "--max-frame-age", "0s"]).is_err());
        assert!(Config::try_parse_from(["detect", "--model", "m.onnx", "--max-frame-age", "soon"]).is_err());
    }

    #[test]
    fn the_summary_is_text_unless_asked() {
        let c = Config::try_parse_from(["detect", "--model", "m.onnx"]).unwrap();
        assert_eq!(c.summary_format, SummaryFormat::Text);
        assert_eq!(c.dlq_topic(), names::dlq_topic(names::TOPIC_FRAMES));
        let c = Config::try_parse_from(["detect", "--model", "m.onnx", "--summary-format", "json"]).unwrap();
        assert_eq!(c.summary_format, SummaryFormat::Json);
    }
}
