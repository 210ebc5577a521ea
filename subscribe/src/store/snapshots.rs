//! Snapshots: a frame read back from the frames topic by offset, its boxes drawn, written as a JPEG; and
//! the retention sweep that keeps the directory within its age and size.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use framewire_proto::Detections;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::annotate::annotate_jpeg;
use crate::events::store::{SnapshotSweepFailed, SnapshotsDeleted};
use crate::frames::FrameFetcher;
use crate::metrics::StoreMetrics;
use crate::snapshot::{self, SnapshotArgs};

/// Makes snapshots of stored frames.
pub struct Snapshots {
    fetcher: Arc<FrameFetcher>,
    /// Where frames are read back from when a Detections does not name its topic.
    frames_topic: String,
}

impl Snapshots {
    pub fn new(fetcher: FrameFetcher, frames_topic: &str) -> Snapshots {
        Snapshots { fetcher: Arc::new(fetcher), frames_topic: frames_topic.to_string() }
    }

    /// Reads the frame back, draws the boxes and writes the file; returns its path. Errors carry their metric
    /// label.
    pub async fn take(&self, d: &Detections, model: &str, dir: &Path) -> Result<String, (&'static str, String)> {
        let f = self.fetcher.clone();
        let det = d.clone();
        let topic = self.frames_topic.clone();
        let path = snapshot::path_for(dir, &d.camera_id, d.seq, model);
        tokio::task::spawn_blocking(move || {
            let frame = f.fetch_for(&det, &topic).map_err(|e| ("frame_unavailable", e.to_string()))?;
            let jpeg = annotate_jpeg(&frame.image, &det.boxes).map_err(|e| ("bad_image", e.to_string()))?;
            snapshot::write_atomic(&path, &jpeg)
                .map_err(|e| (snapshot::failure_kind(&e), format!("{}: {e}", path.display())))?;
            Ok(path.display().to_string())
        })
        .await
        .map_err(|e| ("io", e.to_string()))?
    }
}

/// Starts the retention sweep of `dir` when snapshots are on; it stops with `stop`.
pub fn sweep(args: &SnapshotArgs, dir: PathBuf, metrics: StoreMetrics, stop: CancellationToken) -> JoinHandle<()> {
    let (age, bytes) = (args.snapshot_max_age, args.snapshot_max_bytes);
    let every = args.snapshot_sweep.max(Duration::from_secs(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let d = dir.clone();
            match tokio::task::spawn_blocking(move || snapshot::sweep(&d, age, bytes)).await {
                Ok(Ok((0, _))) => {}
                Ok(Ok((deleted, freed_bytes))) => SnapshotsDeleted { deleted, freed_bytes }.emit(&metrics),
                Ok(Err(e)) => SnapshotSweepFailed { dir: &dir, error: &e }.emit(),
                Err(e) => tracing::warn!(error = %e, "snapshot retention task failed"),
            }
        }
    })
}
