//! What an ingest run did, per camera, as it is printed at exit: lines for people (`text`) or one JSON
//! object for scripts (`json`), so the demo, benches and tests read fields instead of parsing prose.

use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::Error;
use crate::metrics::Figures;

pub use framewire_common::summary::Format;

/// What one camera did. Field order is the JSON's.
#[derive(Debug, Serialize)]
pub struct CameraSummary {
    pub camera: String,
    pub published: u64,
    pub decoded: u64,
    pub dropped: u64,
    pub reconnects: u64,
    pub skipped: u64,
    /// Frames lost to damaged data in the source.
    pub damaged: u64,
    /// `--motion`: sampled frames left out because the picture had not changed (not losses).
    pub unchanged: u64,
    /// `--motion`: published frames sent only because `--motion-keepalive` had passed.
    pub keepalive: u64,
    /// Why the camera stopped early, if it did.
    #[serde(serialize_with = "message")]
    pub error: Option<Error>,
}

impl CameraSummary {
    /// A camera's summary from its counters and how its worker ended.
    pub fn new(camera: &str, figures: Figures, result: crate::Result<()>) -> Self {
        let published = figures.published;
        CameraSummary {
            camera: camera.to_string(),
            published,
            decoded: figures.decoded,
            dropped: figures.dropped,
            reconnects: figures.reconnects,
            skipped: figures.skipped_files,
            damaged: figures.damaged,
            unchanged: figures.unchanged,
            keepalive: figures.keepalive,
            // Frames before the damage are published; the count in the error is what was acknowledged.
            error: result.err().map(|e| match e {
                Error::Truncated { source_uri, ended_s, declared_s, .. } => {
                    Error::Truncated { source_uri, ended_s, declared_s, frames: published }
                }
                Error::Read { source_uri, reason, .. } => Error::Read { source_uri, frames: published, reason },
                e => e,
            }),
        }
    }
}

/// What an ingest run did.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    #[serde(rename = "elapsed_s", serialize_with = "seconds")]
    pub elapsed: Duration,
    pub cameras: Vec<CameraSummary>,
    /// Frames Kafka did not acknowledge.
    #[serde(serialize_with = "message")]
    pub undelivered: Option<Error>,
    /// What `--uploads` did; absent for camera runs, whose summary stays as it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uploads: Option<UploadSummary>,
}

/// What an `ingest --uploads` run did. Field order is the JSON's.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UploadSummary {
    /// Notifications read.
    pub notifications: u64,
    /// Objects fetched.
    pub objects: u64,
    /// Frames acknowledged by Kafka.
    pub frames: u64,
    /// Events with nothing to read (test events, removals...).
    pub skipped: u64,
    /// Notifications sent to the dead-letter topic.
    pub dead_letters: u64,
}

impl Summary {
    pub fn ok(&self) -> bool {
        self.undelivered.is_none() && self.cameras.iter().all(|c| c.error.is_none())
    }

    /// What goes to stdout: a line per camera (`text`) or one JSON line (`json`), newline-terminated.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => self.render_text(),
            Format::Json => self.render_json() + "\n",
        }
    }

    pub fn render_text(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-3);
        let mut out = String::new();
        for c in &self.cameras {
            let mut detail = format!("{} decoded", c.decoded);
            for (n, what) in [
                (c.dropped, "dropped"),
                (c.reconnects, "reconnects"),
                (c.skipped, "files skipped"),
                (c.damaged, "lost to damaged data"),
                (c.unchanged, "unchanged (not sent)"),
                (c.keepalive, "keep-alives"),
            ] {
                if n > 0 {
                    detail += &format!(", {n} {what}");
                }
            }
            out += &format!(
                "published {} frames of camera {} ({detail}) in {secs:.1} s, {:.1} frames/s\n",
                c.published,
                c.camera,
                c.published as f64 / secs
            );
        }
        if let Some(u) = &self.uploads {
            out += &format!(
                "published {} frames of {} uploaded objects from {} notifications ({} events skipped, {} dead-lettered) \
                 in {secs:.1} s\n",
                u.frames, u.objects, u.notifications, u.skipped, u.dead_letters
            );
        }
        out
    }

    pub fn render_json(&self) -> String {
        framewire_common::summary::json("ingest", self)
    }

    /// The run's errors, for stderr: each camera's, then the undelivered frames'.
    pub fn errors(&self) -> Vec<String> {
        let cameras = self.cameras.iter().filter_map(|c| Some(format!("camera {}: {}", c.camera, c.error.as_ref()?)));
        cameras.chain(self.undelivered.iter().map(Error::to_string)).collect()
    }
}

fn seconds<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn message<S: Serializer>(e: &Option<Error>, s: S) -> Result<S::Ok, S::Error> {
    match e {
        Some(e) => s.serialize_str(&e.to_string()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camera(name: &str, published: u64, error: Option<Error>) -> CameraSummary {
        let figures = Figures { decoded: published + 2, published, dropped: 2, ..Default::default() };
        CameraSummary::new(name, figures, error.map_or(Ok(()), Err))
    }

    fn summary() -> Summary {
        Summary {
            elapsed: Duration::from_millis(2500),
            cameras: vec![camera("door", 50, None), camera("yard", 7, Some(Error::NoVideo("yard.m4a".into())))],
            undelivered: None,
            uploads: None,
        }
    }

    #[test]
    fn text_is_a_line_per_camera_and_errors_go_apart() {
        let s = summary();
        assert_eq!(
            s.render(Format::Text),
            "published 50 frames of camera door (52 decoded, 2 dropped) in 2.5 s, 20.0 frames/s\n\
             published 7 frames of camera yard (9 decoded, 2 dropped) in 2.5 s, 2.8 frames/s\n"
        );
        assert_eq!(s.errors(), ["camera yard: yard.m4a has no video stream"]);
        assert!(!s.ok());
    }

    #[test]
    fn json_is_one_line_with_the_summary_named_first() {
        let s = summary();
        let line = s.render(Format::Json);
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(line.starts_with(r#"{"summary":"ingest","elapsed_s":2.5,"cameras":[{"camera":"door","published":50,"decoded":52,"dropped":2,"reconnects":0,"skipped":0,"damaged":0,"unchanged":0,"keepalive":0,"error":null}"#), "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["cameras"][1]["error"], "yard.m4a has no video stream");
        assert_eq!(v["undelivered"], serde_json::Value::Null);
    }

    #[test]
    fn an_uploads_run_reports_its_figures_and_camera_runs_do_not() {
        let uploads = UploadSummary { notifications: 6, objects: 4, frames: 9, skipped: 1, dead_letters: 1 };
        let s = Summary { elapsed: Duration::from_secs(3), uploads: Some(uploads), ..Summary::default() };
        assert_eq!(
            s.render(Format::Text),
            "published 9 frames of 4 uploaded objects from 6 notifications (1 events skipped, 1 dead-lettered) in 3.0 s\n"
        );
        let v: serde_json::Value = serde_json::from_str(&s.render_json()).unwrap();
        assert_eq!(v["uploads"]["frames"], 9);
        assert_eq!(v["uploads"]["dead_letters"], 1);
        assert!(!summary().render_json().contains("uploads"));
    }

    #[test]
    fn motion_figures_are_reported_when_there_are_any() {
        let figures = Figures { decoded: 300, published: 12, unchanged: 48, keepalive: 3, ..Default::default() };
        let s = Summary {
            elapsed: Duration::from_secs(10),
            cameras: vec![CameraSummary::new("door", figures, Ok(()))],
            ..Summary::default()
        };
        assert_eq!(
            s.render(Format::Text),
            "published 12 frames of camera door (300 decoded, 48 unchanged (not sent), 3 keep-alives) in 10.0 s, \
             1.2 frames/s\n"
        );
        let v: serde_json::Value = serde_json::from_str(&s.render_json()).unwrap();
        assert_eq!((v["cameras"][0]["unchanged"].as_u64(), v["cameras"][0]["keepalive"].as_u64()), (Some(48), Some(3)));
    }

    #[test]
    fn a_cut_file_reports_what_was_acknowledged() {
        let e = Error::Truncated { source_uri: "a.mp4".into(), ended_s: 1.0, declared_s: 4.0, frames: 30 };
        let c = camera("a", 25, Some(e));
        assert!(matches!(c.error, Some(Error::Truncated { frames: 25, .. })), "{:?}", c.error);
    }
}
