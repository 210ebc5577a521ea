//! Which cameras one ingest process runs: from a TOML file (`--config`), from `--camera ID=SOURCE` flags, or
//! the single positional source. Each camera's settings fall back to the command-line defaults.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::motion::MotionSettings;
use crate::{Error, Result};

/// How RTSP carries RTP: TCP survives NAT and loss-free; UDP has less latency on a clean LAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RtspTransport {
    Tcp,
    Udp,
}

impl RtspTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            RtspTransport::Tcp => "tcp",
            RtspTransport::Udp => "udp",
        }
    }
}

/// What kind of source a camera reads, which decides how it is opened and whether it is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A video file or single image: read once, never retried, never dropped.
    File,
    /// A folder of images, read in name order (optionally watched for new files).
    Folder,
    /// A bucket prefix in object storage (`s3://`, `gs://`, `az://`), read like a folder: objects in key
    /// order, optionally watched for keys after the last one read.
    Bucket,
    Rtsp,
    /// `http(s)://`: live (MJPEG, live HLS) unless the stream declares a duration (progressive MP4).
    Http,
    /// Other network protocols FFmpeg reads live (rtmp, srt, udp, tcp).
    Network,
    /// A V4L2 webcam (`/dev/videoN`).
    Device,
}

impl SourceKind {
    pub fn of(source: &str) -> SourceKind {
        let lower = source.to_ascii_lowercase();
        let scheme = lower.split_once("://").map(|(s, _)| s);
        match scheme {
            Some("rtsp" | "rtsps") => SourceKind::Rtsp,
            Some("http" | "https") => SourceKind::Http,
            Some("file") => SourceKind::File,
            Some("s3" | "s3a" | "gs" | "az" | "azure") => SourceKind::Bucket,
            Some(_) => SourceKind::Network,
            None if source.starts_with("/dev/video") => SourceKind::Device,
            None if Path::new(source).is_dir() => SourceKind::Folder,
            None => SourceKind::File,
        }
    }

    /// Whether a source of this kind is live before it is opened (HTTP is decided once open).
    pub fn is_live(self) -> bool {
        matches!(self, SourceKind::Rtsp | SourceKind::Network | SourceKind::Device | SourceKind::Http)
    }
}

/// One camera as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraSpec {
    pub id: String,
    pub source: String,
    /// Forces live (retried, drop-oldest) or finite handling, overriding what the source kind implies.
    pub live: Option<bool>,
    /// How it is read and encoded: the command line's defaults with the config file's overrides.
    pub settings: Settings,
}

impl CameraSpec {
    pub fn kind(&self) -> SourceKind {
        SourceKind::of(&self.source)
    }
}

/// How a camera is read and encoded. The command line gives every camera's defaults; a `[[camera]]` table
/// of the config file may override them.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub fps: Option<f64>,
    pub realtime: bool,
    pub keyframes_only: bool,
    pub rtsp_transport: RtspTransport,
    /// FFmpeg demuxer/protocol options (`-i` options of the FFmpeg CLI).
    pub options: BTreeMap<String, String>,
    /// Watch a folder or bucket source for new images.
    pub watch: bool,
    pub jpeg_quality: u8,
    /// Publish only frames whose picture changed, plus keep-alives ([`crate::motion`]).
    pub motion: bool,
    /// With `motion`: publish at least this often (stream time), changed or not.
    pub motion_keepalive: Duration,
    /// With `motion`: percent of the picture that must change for a frame to be published.
    pub motion_threshold: f64,
}

impl Settings {
    /// The camera's motion gating, if it is on.
    pub fn motion(&self) -> Option<MotionSettings> {
        self.motion
            .then_some(MotionSettings { keepalive: self.motion_keepalive, threshold_percent: self.motion_threshold })
    }

    /// A camera read with these settings.
    pub fn camera(&self, id: &str, source: &str) -> CameraSpec {
        CameraSpec { id: id.to_string(), source: source.to_string(), live: None, settings: self.clone() }
    }
}

/// The config file: a list of `[[camera]]` tables. Unknown keys are errors, so a typo is not ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    camera: Vec<FileCamera>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCamera {
    id: String,
    source: String,
    fps: Option<f64>,
    realtime: Option<bool>,
    keyframes_only: Option<bool>,
    rtsp_transport: Option<RtspTransport>,
    #[serde(default)]
    options: BTreeMap<String, toml::Value>,
    watch: Option<bool>,
    live: Option<bool>,
    jpeg_quality: Option<u8>,
    motion: Option<bool>,
    /// A humantime duration (`"2s"`, `"500ms"`), like `--motion-keepalive`.
    motion_keepalive: Option<String>,
    motion_threshold: Option<f64>,
}

/// A parse error as it may be printed: its position and message, without the line of the file that toml
/// quotes (it may hold a camera URL with its password), and any credentials the message itself repeats
/// (serde quotes a value of the wrong type) hidden.
fn describe(e: &toml::de::Error, text: &str) -> String {
    let at = e.span().map_or_else(String::new, |span| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.chars().rev().take_while(|c| *c != '\n').count() + 1;
        // The key of that line (never a secret itself) says which setting is wrong.
        let key = text
            .lines()
            .nth(line - 1)
            .and_then(|l| l.split_once('='))
            .map(|(k, _)| k.trim())
            .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
            .map_or_else(String::new, |k| format!(" (`{k}`)"));
        format!("line {line}{key}, column {column}: ")
    });
    let mut message = e.message().to_string();
    if let Ok(table) = text.parse::<toml::Table>() {
        let mut strings = Vec::new();
        collect_strings(&toml::Value::Table(table), &mut strings);
        for s in strings {
            let shown = framewire_common::redact::url(&s);
            if shown != s {
                message = message.replace(&s, &shown);
            }
        }
    }
    format!("{at}{message}")
}

fn collect_strings(value: &toml::Value, out: &mut Vec<String>) {
    match value {
        toml::Value::String(s) => out.push(s.clone()),
        toml::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        toml::Value::Table(t) => t.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// Parses a config file's text; `path` names the file in errors.
pub fn parse_config(path: &Path, text: &str, defaults: &Settings) -> Result<Vec<CameraSpec>> {
    let bad = |reason: String| Error::Config { path: path.to_path_buf(), reason };
    let file: File = toml::from_str(text).map_err(|e| bad(describe(&e, text)))?;
    if file.camera.is_empty() {
        return Err(bad("no [[camera]] entries".into()));
    }
    let mut cameras = Vec::new();
    for c in file.camera {
        let mut spec = defaults.camera(&c.id, &c.source);
        spec.live = c.live;
        let set = &mut spec.settings;
        set.fps = c.fps.or(set.fps);
        set.realtime = c.realtime.unwrap_or(set.realtime);
        set.keyframes_only = c.keyframes_only.unwrap_or(set.keyframes_only);
        set.rtsp_transport = c.rtsp_transport.unwrap_or(set.rtsp_transport);
        set.watch = c.watch.unwrap_or(set.watch);
        if let Some(q) = c.jpeg_quality {
            if !(1..=100).contains(&q) {
                return Err(bad(format!("camera {:?}: jpeg_quality must be 1-100, not {q}", c.id)));
            }
            set.jpeg_quality = q;
        }
        set.motion = c.motion.unwrap_or(set.motion);
        if let Some(d) = &c.motion_keepalive {
            set.motion_keepalive = humantime::parse_duration(d)
                .map_err(|e| bad(format!("camera {:?}: motion_keepalive {d:?}: {e} (e.g. \"2s\")", c.id)))?;
        }
        set.motion_threshold = c.motion_threshold.unwrap_or(set.motion_threshold);
        for (k, v) in c.options {
            let v = match v {
                toml::Value::String(s) => s,
                other => other.to_string(),
            };
            set.options.insert(k, v);
        }
        cameras.push(spec);
    }
    validate(&cameras).map_err(bad)?;
    Ok(cameras)
}

pub fn read_config(path: &Path, defaults: &Settings) -> Result<Vec<CameraSpec>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config { path: path.to_path_buf(), reason: format!("cannot read: {e}") })?;
    parse_config(path, &text, defaults)
}

/// Checks what serde cannot: unique, non-empty ids and sane rates.
pub fn validate(cameras: &[CameraSpec]) -> std::result::Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for c in cameras {
        if c.id.trim().is_empty() {
            return Err(format!("a camera has an empty id (source {})", framewire_common::redact::url(&c.source)));
        }
        if c.source.trim().is_empty() {
            return Err(format!("camera {:?} has an empty source", c.id));
        }
        if !seen.insert(c.id.as_str()) {
            return Err(format!("camera id {:?} is used twice", c.id));
        }
        if let Some(f) = c.settings.fps
            && !(f > 0.0 && f.is_finite())
        {
            return Err(format!("camera {:?}: fps must be a positive number, not {f}", c.id));
        }
        let threshold = c.settings.motion_threshold;
        if !(0.0..=100.0).contains(&threshold) {
            return Err(format!(
                "camera {:?}: motion_threshold is a percent of the picture, 0-100, not {threshold}",
                c.id
            ));
        }
        if c.settings.motion && c.settings.motion_keepalive.is_zero() {
            return Err(format!("camera {:?}: motion_keepalive must be above 0 (it would publish every frame)", c.id));
        }
    }
    Ok(())
}

/// Parses `ID=SOURCE`.
pub fn parse_camera_flag(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((id, source)) if !id.is_empty() && !source.is_empty() => Ok((id.to_string(), source.to_string())),
        _ => Err(format!("expected ID=SOURCE, got {:?}", framewire_common::redact::url(s))),
    }
}

/// Parses `--motion-threshold`: a percent of the picture.
pub fn parse_percent(s: &str) -> std::result::Result<f64, String> {
    match s.trim_end_matches('%').parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        Ok(p) => Err(format!("{p} is not a percent (0-100)")),
        Err(e) => Err(format!("{s:?}: {e}")),
    }
}

/// Parses `KEY=VALUE`.
pub fn parse_option(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// The default camera id of a source: its file or folder name without extension; for a URL, the last
/// path segment, else the host.
pub fn default_id(source: &str) -> String {
    if let Some((_, rest)) = source.split_once("://") {
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        // Never `user:password@`: the id is printed and labels metrics.
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        let last = path.rsplit('/').find(|s| !s.is_empty());
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
        return last.or(Some(host)).filter(|s| !s.is_empty()).unwrap_or("camera").to_string();
    }
    Path::new(source.trim_end_matches('/'))
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty() && !s.contains(':'))
        .unwrap_or_else(|| "camera".into())
}

/// Timing knobs of live sources.
#[derive(Debug, Clone, Copy)]
pub struct LiveTiming {
    pub stall_timeout: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Give up after this many failed attempts in a row; `None` retries forever.
    pub max_reconnects: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Settings {
        Settings {
            fps: Some(5.0),
            realtime: false,
            keyframes_only: false,
            rtsp_transport: RtspTransport::Tcp,
            options: BTreeMap::from([("probesize".into(), "500000".into())]),
            watch: false,
            jpeg_quality: 80,
            motion: false,
            motion_keepalive: Duration::from_secs(2),
            motion_threshold: 0.3,
        }
    }

    #[test]
    fn a_config_file_lists_cameras_with_overrides() {
        let text = r#"
            [[camera]]
            id = "door"
            source = "rtsp://admin:pw@10.0.0.5/stream1"
            rtsp_transport = "udp"
            options = { buffer_size = 1048576 }

            [[camera]]
            id = "archive"
            source = "/videos/a.mp4"
            fps = 2
            realtime = true
        "#;
        let cams = parse_config(Path::new("cams.toml"), text, &defaults()).unwrap();
        assert_eq!(cams.len(), 2);
        assert_eq!(cams[0].settings.rtsp_transport, RtspTransport::Udp);
        assert_eq!(cams[0].settings.fps, Some(5.0), "default applies");
        assert_eq!(cams[0].settings.options["buffer_size"], "1048576");
        assert_eq!(cams[0].settings.options["probesize"], "500000", "defaults kept");
        assert_eq!(cams[0].kind(), SourceKind::Rtsp);
        assert_eq!(cams[1].settings.fps, Some(2.0));
        assert!(cams[1].settings.realtime);
        assert_eq!(cams[1].kind(), SourceKind::File);
    }

    #[test]
    fn an_unknown_key_names_the_key_and_the_file() {
        let text = "[[camera]]\nid = \"a\"\nsource = \"x.mp4\"\nfsp = 5\n";
        let e = parse_config(Path::new("/etc/framewire/cams.toml"), text, &defaults()).unwrap_err().to_string();
        assert!(e.contains("/etc/framewire/cams.toml"), "{e}");
        assert!(e.contains("fsp"), "{e}");
    }

    #[test]
    fn config_errors_never_quote_a_camera_password() {
        // A misspelt key on the line after a URL with a password, and a URL given where a number belongs.
        let text = "[[camera]]\nid = \"a\"\nsource = \"rtsp://admin:hunter2@cam/s\"\nfsp = 5\n";
        let e = parse_config(Path::new("c.toml"), text, &defaults()).unwrap_err().to_string();
        assert!(e.contains("fsp") && e.contains("line 4"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let text = "[[camera]]\nid = \"a\"\nsource = \"x.mp4\"\nfps = \"rtsp://admin:hunter2@cam/s\"\n";
        let e = parse_config(Path::new("c.toml"), text, &defaults()).unwrap_err().to_string();
        assert!(e.contains("line 4"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn bad_values_are_rejected_with_the_camera_named() {
        let cases = [
            ("[[camera]]\nid = \"a\"\nsource = \"x\"\nfps = \"fast\"\n", "fps"),
            ("[[camera]]\nid = \"a\"\nsource = \"x\"\nfps = -1\n", "fps must be a positive"),
            ("[[camera]]\nid = \"a\"\nsource = \"x\"\n[[camera]]\nid = \"a\"\nsource = \"y\"\n", "used twice"),
            ("[[camera]]\nid = \"a\"\nsource = \"x\"\nrtsp_transport = \"quic\"\n", "quic"),
            ("[[camera]]\nid = \"a\"\nsource = \"x\"\njpeg_quality = 0\n", "jpeg_quality"),
            ("", "no [[camera]]"),
        ];
        for (text, want) in cases {
            let e = parse_config(Path::new("c.toml"), text, &defaults()).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("c.toml"), "{text:?}: {e}");
        }
    }

    #[test]
    fn motion_gating_is_set_per_camera() {
        let text = r#"
            [[camera]]
            id = "door"
            source = "rtsp://10.0.0.5/stream1"
            motion = true
            motion_keepalive = "500ms"
            motion_threshold = 1.5

            [[camera]]
            id = "lobby"
            source = "rtsp://10.0.0.6/stream1"
            motion = true

            [[camera]]
            id = "archive"
            source = "/videos/a.mp4"
        "#;
        let cams = parse_config(Path::new("c.toml"), text, &defaults()).unwrap();
        let door = cams[0].settings.motion().unwrap();
        assert_eq!(door.keepalive, Duration::from_millis(500));
        assert_eq!(door.threshold_percent, 1.5);
        let lobby = cams[1].settings.motion().unwrap();
        assert_eq!((lobby.keepalive, lobby.threshold_percent), (Duration::from_secs(2), 0.3), "defaults apply");
        assert_eq!(cams[2].settings.motion(), None, "off unless asked for");
        for (bad, want) in [
            ("motion_keepalive = \"soon\"", "motion_keepalive"),
            ("motion_keepalive = \"0s\"\nmotion = true", "above 0"),
            ("motion_threshold = 120", "0-100"),
            ("motion_threshold = -1", "0-100"),
        ] {
            let text = format!("[[camera]]\nid = \"a\"\nsource = \"x\"\n{bad}\n");
            let e = parse_config(Path::new("c.toml"), &text, &defaults()).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("\"a\""), "{bad}: {e}");
        }
        assert_eq!(parse_percent("0.5"), Ok(0.5));
        assert_eq!(parse_percent("2%"), Ok(2.0));
        assert!(parse_percent("101").is_err() && parse_percent("lots").is_err());
    }

    #[test]
    fn a_bucket_in_the_config_file_is_a_watched_bucket_source() {
        let text = "[[camera]]\nid = \"yard\"\nsource = \"s3://uploads/yard/\"\nwatch = true\n";
        let cams = parse_config(Path::new("c.toml"), text, &defaults()).unwrap();
        assert_eq!(cams[0].kind(), SourceKind::Bucket);
        assert!(cams[0].settings.watch);
    }

    #[test]
    fn source_kinds() {
        assert_eq!(SourceKind::of("rtsp://cam/1"), SourceKind::Rtsp);
        assert_eq!(SourceKind::of("HTTPS://x/live.m3u8"), SourceKind::Http);
        assert_eq!(SourceKind::of("srt://x:9000"), SourceKind::Network);
        assert_eq!(SourceKind::of("/dev/video0"), SourceKind::Device);
        assert_eq!(SourceKind::of(env!("CARGO_MANIFEST_DIR")), SourceKind::Folder);
        assert_eq!(SourceKind::of("clip.mp4"), SourceKind::File);
        assert!(!SourceKind::File.is_live() && SourceKind::Rtsp.is_live());
        for bucket in ["s3://uploads/cam/", "S3A://uploads", "gs://b/p", "az://container/p", "azure://c"] {
            assert_eq!(SourceKind::of(bucket), SourceKind::Bucket, "{bucket}");
        }
        assert!(!SourceKind::Bucket.is_live(), "a bucket is finite: its frames wait, never dropped");
    }

    #[test]
    fn flags() {
        assert_eq!(parse_camera_flag("door=rtsp://h/s?a=b").unwrap(), ("door".into(), "rtsp://h/s?a=b".into()));
        assert!(parse_camera_flag("door").is_err());
        assert!(parse_camera_flag("=x").is_err());
        assert_eq!(parse_option("rtsp_flags=prefer_tcp").unwrap().1, "prefer_tcp");
        assert_eq!(default_id("/videos/lobby.mp4"), "lobby");
        assert_eq!(default_id("/photos/"), "photos");
        assert_eq!(default_id("rtsp://10.0.0.5:554"), "10.0.0.5");
        assert_eq!(default_id("rtsp://u:p@10.0.0.5:554/Streaming/Channels/101?x=1"), "101");
        assert_eq!(default_id("rtsp://admin:hunter2@cam7:554"), "cam7");
        assert_eq!(default_id("rtsp://admin:hunter2@cam7/?token=abc"), "cam7");
        assert_eq!(default_id("s3://uploads/yard/"), "yard");
        assert_eq!(default_id("s3://uploads"), "uploads");
    }
}
