//! Look-ups of the web view's review pages: the cameras the store knows, a frame's snapshot, and events
//! counted per label and hour. Each is answered from an index: the pages stay fast on a store of millions of
//! boxes.

use serde::Serialize;

use super::{Db, FromRow, Result, Row, Value};
use crate::track::EventRow;

/// A camera as the store last saw it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StoredCamera {
    pub camera: String,
    /// Its newest stored frame.
    pub seq: i64,
    pub capture_ms: i64,
    /// Its newest frame with a snapshot, if any has one.
    pub snapshot_seq: Option<i64>,
    pub snapshot_ms: Option<i64>,
}

/// Events of one label that started in one hour.
#[derive(Debug, Clone, PartialEq)]
pub struct HourCount {
    pub label: String,
    /// The hour's start, Unix time in ms.
    pub hour_ms: i64,
    pub events: i64,
}

struct Name(String);

impl FromRow for Name {
    fn from_row(r: &Row) -> Result<Self> {
        r.get("name").map(Name)
    }
}

struct FrameAt {
    seq: i64,
    capture_ms: i64,
}

impl FromRow for FrameAt {
    fn from_row(r: &Row) -> Result<Self> {
        Ok(FrameAt { seq: r.get("seq")?, capture_ms: r.get("capture_ms")? })
    }
}

struct SnapshotAt(String);

impl FromRow for SnapshotAt {
    fn from_row(r: &Row) -> Result<Self> {
        r.get("snapshot").map(SnapshotAt)
    }
}

impl FromRow for HourCount {
    fn from_row(r: &Row) -> Result<Self> {
        Ok(HourCount { label: r.get("label")?, hour_ms: r.get::<i64>("hour")? * HOUR_MS, events: r.get("n")? })
    }
}

const HOUR_MS: i64 = 3_600_000;

impl Db {
    /// Every camera the store has seen, by name, with its newest frame and newest snapshot. The cameras come
    /// from the event tracker's cursors (one row per camera and model), never from a scan of the frames.
    pub async fn stored_cameras(&mut self) -> Result<Vec<StoredCamera>> {
        let mut cameras = Vec::new();
        for camera in self.camera_names().await? {
            cameras.extend(self.stored_camera(&camera).await?);
        }
        Ok(cameras)
    }

    /// One camera's newest frame and newest snapshot; None if the store has no frame of it.
    pub async fn stored_camera(&mut self, camera: &str) -> Result<Option<StoredCamera>> {
        // The newest frame from the primary key (camera, seq, model), the newest snapshot from the partial
        // index `frames_with_snapshot`: each one step, however long ago the last snapshot was.
        let newest: Vec<FrameAt> = self
            .rows(
                "SELECT seq, capture_ms FROM frames WHERE camera = $1 ORDER BY seq DESC LIMIT 1".into(),
                vec![camera.into()],
            )
            .await?;
        let Some(newest) = newest.into_iter().next() else { return Ok(None) };
        let snap: Vec<FrameAt> = self
            .rows(
                "SELECT seq, capture_ms FROM frames WHERE camera = $1 AND snapshot IS NOT NULL ORDER BY seq DESC LIMIT 1"
                    .into(),
                vec![camera.into()],
            )
            .await?;
        let snap = snap.into_iter().next();
        Ok(Some(StoredCamera {
            camera: camera.to_string(),
            seq: newest.seq,
            capture_ms: newest.capture_ms,
            snapshot_seq: snap.as_ref().map(|s| s.seq),
            snapshot_ms: snap.map(|s| s.capture_ms),
        }))
    }

    /// The names of the cameras the store has seen, from the event tracker's cursors.
    pub async fn camera_names(&mut self) -> Result<Vec<String>> {
        let rows: Vec<Name> = self
            .rows("SELECT DISTINCT camera AS name FROM cursors WHERE scope = '' ORDER BY name".into(), vec![])
            .await?;
        Ok(rows.into_iter().map(|n| n.0).collect())
    }

    /// The snapshot of one stored frame (of any model), if it has one.
    pub async fn frame_snapshot(&mut self, camera: &str, seq: i64) -> Result<Option<String>> {
        let rows: Vec<SnapshotAt> = self
            .rows(
                "SELECT snapshot FROM frames WHERE camera = $1 AND seq = $2 AND snapshot IS NOT NULL LIMIT 1".into(),
                vec![camera.into(), seq.into()],
            )
            .await?;
        Ok(rows.into_iter().next().map(|s| s.0))
    }

    /// The first snapshot of the frames an event spans, for an event without a best snapshot of its own (a
    /// label not in `--snapshot-classes`, seen beside one that is).
    pub async fn first_snapshot(&mut self, e: &EventRow) -> Result<Option<String>> {
        let rows: Vec<SnapshotAt> = self
            .rows(
                "SELECT snapshot FROM frames WHERE camera = $1 AND model = $2 AND seq >= $3 AND seq <= $4
                 AND snapshot IS NOT NULL ORDER BY seq LIMIT 1"
                    .into(),
                vec![
                    e.camera.as_str().into(),
                    e.model.as_str().into(),
                    Value::big(e.start_seq, "start_seq")?,
                    Value::big(e.end_seq, "end_seq")?,
                ],
            )
            .await?;
        Ok(rows.into_iter().next().map(|s| s.0))
    }

    /// The labels of stored events, for the review page's filter.
    pub async fn event_labels(&mut self) -> Result<Vec<String>> {
        // One seek per label on `events_by_label` (a loose index scan), not a read of every event: neither
        // engine skips through an index for DISTINCT by itself.
        let sql = "WITH RECURSIVE l(name) AS (
                       SELECT MIN(label) FROM events WHERE scope = ''
                       UNION ALL
                       SELECT (SELECT MIN(label) FROM events WHERE scope = '' AND label > l.name) FROM l
                       WHERE l.name IS NOT NULL)
                   SELECT name FROM l WHERE name IS NOT NULL";
        let rows: Vec<Name> = self.rows(sql.into(), vec![]).await?;
        Ok(rows.into_iter().map(|n| n.0).collect())
    }

    /// One camera's events per label and hour (UTC hours), of the events that started at or after `since_ms`.
    pub async fn event_counts(&mut self, camera: &str, since_ms: i64) -> Result<Vec<HourCount>> {
        self.rows(
            format!(
                "SELECT label, start_ms / {HOUR_MS} AS hour, COUNT(*) AS n FROM events
                 WHERE scope = '' AND camera = $1 AND start_ms >= $2 GROUP BY label, start_ms / {HOUR_MS}
                 ORDER BY hour, label"
            ),
            vec![camera.into(), since_ms.into()],
        )
        .await
    }
}
