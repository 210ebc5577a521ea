//! A folder of images as a camera: every image in name order, once; with `watch`, new images as they
//! arrive (an upload bucket feeding the pipeline). A file that is not an image is logged, counted and
//! skipped; it does not stop the folder.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tracing::info;

use crate::camera::{Worker, pace, sleep_unless};
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
    // Images have no timestamps: space them by the target rate (1 per second by default), which is also the
    // pace under `--realtime`.
    let interval_us = worker.spec.settings.fps.map_or(1_000_000, |f| (1e6 / f) as i64);
    let mut done: HashSet<PathBuf> = HashSet::new();
    // A watched file is read only once its size and modification time held still for one listing, so a
    // file that is still being copied in is not read half-written.
    let mut seen: HashMap<PathBuf, (u64, Option<SystemTime>)> = HashMap::new();
    let mut pacing = None;
    let mut index: i64 = 0;
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
            let t_us = index * interval_us;
            if worker.spec.settings.realtime && !pace(&mut pacing, t_us, &shutdown) {
                return Ok(());
            }
            match read_image(worker, &path, t_us) {
                Ok(true) => index += 1,
                Ok(false) => return Ok(()),
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

/// Decodes one image file and queues its frame(s). Returns false when the camera should stop.
fn read_image(worker: &mut Worker, path: &Path, t_us: i64) -> Result<bool> {
    let opts = OpenOptions {
        options: worker.spec.settings.options.clone(),
        watchdog: Watchdog::new(None, worker.shared.shutdown.clone()),
        keyframes_only: false,
    };
    let path_str = path.to_string_lossy().into_owned();
    let mut source = VideoSource::open(&path_str, opts)?;
    let mut go_on = true;
    let end = source.run(|frame, _| {
        go_on = worker.emit(frame, FrameTime { stream_us: t_us, camera_clock_us: None }, &path_str, false)?;
        Ok(go_on)
    })?;
    if source.stats.frames == 0 {
        return Err(Error::Decoder { source_uri: path_str, reason: "no picture decoded".into() });
    }
    Ok(go_on && end == End::Eof)
}
