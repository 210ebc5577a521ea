//! `subscribe tail`: one line per `Detections` message.

use std::io::Write;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio_util::sync::CancellationToken;

use framewire_common::kafka::KafkaArgs;
use framewire_common::metrics::MetricsArgs;
use framewire_common::time::now_us;
use framewire_proto::json::{DetectionsJson, model_tag};
use framewire_proto::{Detections, Skipped, names};

use crate::Result;
use crate::events::ConsumerError;
use crate::events::tail::{DuplicateSeen, MessageReceived, TailStatus, UndecodableMessage};
use crate::metrics::Metrics;
use crate::summary::{Format, Summary};

#[derive(Debug, Clone, clap::Args)]
pub struct TailArgs {
    /// Topic to read.
    #[arg(long, env = "FRAMEWIRE_DETECTIONS_TOPIC", default_value = names::TOPIC_DETECTIONS)]
    pub topic: String,

    /// Print exactly one JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,

    /// Start at the oldest retained message instead of new ones.
    #[arg(long)]
    pub from_beginning: bool,

    /// Exit after this many distinct frames.
    #[arg(long)]
    pub count: Option<u64>,

    /// Exit when no message arrived for this long (e.g. 10s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub idle_exit: Option<Duration>,

    /// Only this camera.
    #[arg(long)]
    pub camera: Option<String>,

    /// Print a summary line (frames, cameras, top labels, latency, rate) to stderr at exit.
    #[arg(long)]
    pub summary: bool,

    /// Summary format: `text` (one line) or `json` (one JSON object on one line; implies --summary).
    #[arg(long, env = "FRAMEWIRE_SUMMARY_FORMAT", value_enum, default_value = "text")]
    pub summary_format: Format,

    /// How often to log a status line (frames, rate, duplicates, latency) while running.
    #[arg(long, env = "FRAMEWIRE_STATUS_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub status_interval: Duration,
}

impl TailArgs {
    /// The summary line to print at exit (to stderr), if one was asked for.
    pub fn summary_line(&self, summary: &Summary) -> Option<String> {
        (self.summary || self.summary_format == Format::Json).then(|| summary.render_as(self.summary_format))
    }
}

/// Consumer settings of a tail: its own throw-away group, nothing committed.
fn settings(from_beginning: bool) -> Vec<(&'static str, String)> {
    let group = format!("framewire-tail-{}-{}", std::process::id(), now_us());
    vec![
        ("group.id", group),
        ("enable.auto.commit", "false".into()),
        ("auto.offset.reset", if from_beginning { "earliest" } else { "latest" }.into()),
        ("fetch.wait.max.ms", "10".into()),
        // A tail started before the topic exists (detect creates it) must notice it within seconds, not
        // after librdkafka's default five minutes.
        ("topic.metadata.refresh.interval.ms", "2000".into()),
    ]
}

/// Human-readable form of one message.
pub fn format_line(d: &Detections) -> String {
    let mut line =
        format!("{} #{} {}x{} {} {:.1}ms", d.camera_id, d.seq, d.width, d.height, model_tag(d), d.inference_ms);
    if d.skipped() == Skipped::Stale {
        line.push_str("  (skipped: stale)");
    } else if d.boxes.is_empty() {
        line.push_str("  (nothing)");
    }
    if d.unchanged_before > 0 {
        line.push_str(&format!("  [{} unchanged before]", d.unchanged_before));
    }
    for b in &d.boxes {
        line.push_str(&format!("  {} {:.2} [{:.0},{:.0},{:.0},{:.0}]", b.label, b.score, b.x1, b.y1, b.x2, b.y2));
    }
    line
}

/// Runs the tail until `--count`, `--idle-exit` or `shutdown`. Returns the summary.
pub async fn run(
    kafka: &KafkaArgs,
    args: &TailArgs,
    metrics_args: &MetricsArgs,
    shutdown: CancellationToken,
) -> Result<Summary> {
    let metrics = Metrics::new();
    framewire_common::metrics::serve(metrics_args, metrics.registry.clone(), shutdown.clone()).await;
    let k = kafka.clone();
    tokio::task::spawn_blocking(move || k.wait_reachable())
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
    let s = settings(args.from_beginning);
    let base: Vec<(&str, &str)> = s.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let consumer: StreamConsumer = kafka.config(&base)?.create()?;
    consumer.subscribe(&[&args.topic])?;

    let mut summary = Summary::default();
    let mut out = std::io::stdout().lock();
    let mut last = Instant::now();
    let mut status = tokio::time::interval(args.status_interval.max(Duration::from_millis(100)));
    status.tick().await;
    let mut frames_at_status = 0;
    loop {
        let idle_left = args.idle_exit.map(|d| d.saturating_sub(last.elapsed()));
        let msg = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = status.tick() => {
                let frames = summary.frames();
                let fps = (frames - frames_at_status) as f64 / args.status_interval.as_secs_f64().max(0.1);
                frames_at_status = frames;
                let (latency_p50_ms, latency_p99_ms) =
                    summary.latency().map_or((None, None), |(a, b, _)| (Some(a), Some(b)));
                let (duplicates, undecodable) = (summary.duplicates, summary.undecodable);
                let (skipped, unchanged) = (summary.skipped, summary.unchanged);
                TailStatus { frames, fps, duplicates, undecodable, skipped, unchanged, latency_p50_ms, latency_p99_ms }
                    .emit();
                continue;
            }
            _ = tokio::time::sleep(idle_left.unwrap_or(Duration::MAX)), if idle_left.is_some() => break,
            m = consumer.recv() => m,
        };
        let m = match msg {
            Ok(m) => m,
            Err(error) => {
                ConsumerError { error: &error }.emit();
                continue;
            }
        };
        last = Instant::now();
        let d = match framewire_proto::decode_detections(m.payload().unwrap_or_default()) {
            Ok(d) => d,
            Err(error) => {
                summary.undecodable += 1;
                UndecodableMessage { partition: m.partition(), offset: m.offset(), error: &error }.emit(&metrics);
                continue;
            }
        };
        if args.camera.as_ref().is_some_and(|c| *c != d.camera_id) {
            continue;
        }
        if summary.add(&d, last) {
            let stages = summary.add_timing(&d, now_us());
            MessageReceived { detections: &d, stages }.emit(&metrics);
        } else {
            DuplicateSeen.emit(&metrics);
        }
        if args.json {
            serde_json::to_writer(&mut out, &DetectionsJson::from(&d)).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
        } else {
            writeln!(out, "{}", format_line(&d))?;
        }
        out.flush()?;
        if args.count.is_some_and(|n| summary.frames() >= n) {
            break;
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use framewire_proto::DetectionBox;

    #[test]
    fn human_line_lists_boxes() {
        let d = Detections {
            camera_id: "gate".into(),
            seq: 9,
            width: 640,
            height: 272,
            model_name: "ssd".into(),
            model_version: "abc".into(),
            inference_ms: 21.04,
            boxes: vec![DetectionBox {
                class_id: 1,
                label: "person".into(),
                score: 0.912,
                x1: 1.2,
                y1: 2.0,
                x2: 30.0,
                y2: 40.6,
            }],
            ..Default::default()
        };
        assert_eq!(format_line(&d), "gate #9 640x272 ssd@abc 21.0ms  person 0.91 [1,2,30,41]");
        let empty = Detections { camera_id: "gate".into(), ..Default::default() };
        assert!(format_line(&empty).ends_with("(nothing)"));
        let mut stale = Detections { camera_id: "gate".into(), unchanged_before: 3, ..Default::default() };
        stale.set_skipped(Skipped::Stale);
        assert!(format_line(&stale).ends_with("(skipped: stale)  [3 unchanged before]"), "{}", format_line(&stale));
    }
}
