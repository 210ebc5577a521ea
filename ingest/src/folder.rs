//! A folder of images as a camera: every image in name order, once; with `watch`, new images as they
//! arrive (an upload bucket feeding the pipeline). A file that is not an image is logged, counted and
//! skipped; it does not stop the folder. [`read_media`] is also how a bucket's objects are decoded.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tracing::info;

use crate::camera::{Worker, sleep_unless};
use crate::decode::{End, FrameTime, OpenOptions, VideoSource, Watchdog};
use crate::events::FileSkipped;
use crate::progress::State;
use crate::{Error, Result};

/// Lists the regular, non-hidden files of `dir` in name order.
pub fn list(dir: &Path) -> Result<Vec<(PathBuf, u64, Option<SystemTime>)>> {
    let read = std::fs::read_dir(dir).map_err(|e| Error::Open {
        source_uri: dir.display().to_string(),
        reason: format!("cannot list the folder: {e}"),
    })?;
    let mut files = Vec::new();
    for entry in read.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_file() {
            files.push((entry.path(), meta.len(), meta.modified().ok()));
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

pub fn run(worker: &mut Worker) -> Result<()> {
    let dir = PathBuf::from(&worker.spec.source);
    let watch = worker.spec.settings.watch;
    let shutdown = worker.shared.shutdown.clone();
    let mut done: HashSet<PathBuf> = HashSet::new();
    // A watched file is read only once its size and modification time held still for one listing, so a
    // file that is still being copied in is not read half-written.
    let mut seen: HashMap<PathBuf, (u64, Option<SystemTime>)> = HashMap::new();
    let mut t_us: i64 = 0;
    worker.status.opened(None, watch);
    worker.status.set_state(State::Streaming);
    info!(camera = %worker.spec.id, folder = %dir.display(), watch, "reading image folder");
    loop {
        for (path, size, modified) in list(&dir)? {
            if done.contains(&path) {
                continue;
            }
            if watch && seen.insert(path.clone(), (size, modified)) != Some((size, modified)) {
                continue;
            }
            done.insert(path.clone());
            seen.remove(&path);
            let shown = path.to_string_lossy().into_owned();
            match read_media(worker, &path, &shown, t_us) {
                Ok(Read { go_on: true, next_us }) => t_us = next_us,
                Ok(Read { go_on: false, .. }) => return Ok(()),
                Err(error) => {
                    FileSkipped { camera: &worker.spec.id, file: &path, error: &error }.emit(&worker.shared.metrics)
                }
            }
            if shutdown.is_cancelled() {
                return Ok(());
            }
        }
        if !watch || !sleep_unless(&shutdown, worker.shared.watch_interval) {
            return Ok(());
        }
    }
}

/// How reading one file ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    /// False when the camera should stop (shutdown, or the producer is gone).
    pub go_on: bool,
    /// Stream time for the next file's first frame.
    pub next_us: i64,
}

/// Decodes one image or video file and queues its frames: an image is one frame, a video every frame
/// `--fps` keeps. Stream time goes on from `start_us`, so that the camera's sampler and `--realtime` pacing
/// see one continuous stream: images are spaced by the target rate (1 per second by default), a video
/// takes its own length. `shown_as` names the file in frames and errors (for a downloaded object, its URL
/// rather than the temporary file's path).
pub fn read_media(worker: &mut Worker, path: &Path, shown_as: &str, start_us: i64) -> Result<Read> {
    let interval_us = worker.spec.settings.fps.map_or(1_000_000, |f| (1e6 / f) as i64);
    let opts = OpenOptions {
        options: worker.spec.settings.options.clone(),
        watchdog: Watchdog::new(None, worker.shared.shutdown.clone()),
        keyframes_only: false,
        low_delay: false,
    };
    let path_str = path.to_string_lossy().into_owned();
    let mut source = VideoSource::open(&path_str, opts).map_err(|e| named(e, shown_as))?;
    let mut go_on = true;
    let mut last_us = 0;
    let end = source
        .run(|frame, time| {
            last_us = time.stream_us.max(0);
            let time = FrameTime { stream_us: start_us + last_us, camera_clock_us: None };
            go_on = worker.emit(frame, time, shown_as, false)?;
            Ok(go_on)
        })
        .map_err(|e| named(e, shown_as))?;
    if source.stats.frames == 0 {
        return Err(Error::Decoder { source_uri: shown_as.to_string(), reason: "no picture decoded".into() });
    }
    Ok(Read { go_on: go_on && end == End::Eof, next_us: start_us + last_us + interval_us })
}

/// The error with the file it names replaced by `shown_as`.
fn named(e: Error, shown_as: &str) -> Error {
    let source_uri = shown_as.to_string();
    match e {
        Error::NotFound(_) => Error::NotFound(source_uri.into()),
        Error::NoVideo(_) => Error::NoVideo(source_uri),
        Error::Open { reason, .. } => Error::Open { source_uri, reason },
        Error::Decoder { reason, .. } => Error::Decoder { source_uri, reason },
        Error::Read { frames, reason, .. } => Error::Read { source_uri, frames, reason },
        Error::Truncated { ended_s, declared_s, frames, .. } => {
            Error::Truncated { source_uri, ended_s, declared_s, frames }
        }
        Error::Stalled { after_s, .. } => Error::Stalled { source_uri, after_s },
        e => e,
    }
}
