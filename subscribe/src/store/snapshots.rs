//! Snapshots: a frame read back from the frames topic by offset, its boxes drawn, saved as a JPEG in the
//! snapshot directory or bucket; and the retention sweep that keeps it within its age and size.

use std::sync::Arc;
use std::time::Duration;

use framewire_proto::Detections;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::annotate::annotate_jpeg;
use crate::events::store::{SnapshotSweepFailed, SnapshotsDeleted};
use crate::frames::FrameFetcher;
use crate::metrics::StoreMetrics;
use crate::snapshot::{self, Place, PutError, SnapshotArgs};

/// Makes snapshots of stored frames.
pub struct Snapshots {
    fetcher: Arc<FrameFetcher>,
    /// Where frames are read back from when a Detections does not name its topic.
    frames_topic: String,
    /// None when snapshots are off.
    place: Option<Arc<Place>>,
}

impl Snapshots {
    pub fn new(fetcher: FrameFetcher, frames_topic: &str, place: Option<Arc<Place>>) -> Snapshots {
        Snapshots { fetcher: Arc::new(fetcher), frames_topic: frames_topic.to_string(), place }
    }

    pub fn on(&self) -> bool {
        self.place.is_some()
    }

    /// Reads the frame back, draws the boxes and saves the JPEG; returns its path or URL. Errors carry their
    /// metric label.
    pub async fn take(&self, d: &Detections, model: &str) -> Result<String, PutError> {
        let Some(place) = &self.place else {
            return Err(PutError { kind: "io", error: "snapshots are off".into() });
        };
        let f = self.fetcher.clone();
        let det = d.clone();
        let topic = self.frames_topic.clone();
        // Reading the frame (a blocking Kafka fetch) and drawing on it are CPU and blocking work.
        let jpeg = tokio::task::spawn_blocking(move || {
            let frame =
                f.fetch_for(&det, &topic).map_err(|e| PutError { kind: "frame_unavailable", error: e.to_string() })?;
            annotate_jpeg(&frame.image, &det.boxes).map_err(|e| PutError { kind: "bad_image", error: e.to_string() })
        })
        .await
        .map_err(|e| PutError { kind: "io", error: e.to_string() })??;
        place.put(&snapshot::key_for(&d.camera_id, d.seq, model), jpeg).await
    }
}

/// Starts the retention sweep of `place`; it stops with `stop`.
pub fn sweep(args: &SnapshotArgs, place: Arc<Place>, metrics: StoreMetrics, stop: CancellationToken) -> JoinHandle<()> {
    let (age, bytes) = (args.snapshot_max_age, args.snapshot_max_bytes);
    let every = args.snapshot_sweep.max(Duration::from_secs(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            match snapshot::sweep(&place, age, bytes).await {
                Ok((0, _)) => {}
                Ok((deleted, freed_bytes)) => SnapshotsDeleted { deleted, freed_bytes }.emit(&metrics),
                Err(e) => SnapshotSweepFailed { dir: &place.to_string(), error: &e }.emit(),
            }
        }
    })
}
