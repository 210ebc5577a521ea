//! Reading the store back: the trackers' state for a restarted store, and look-ups for `query` and `web`.

use std::time::Duration;

use framewire_common::time::now_ms;
use serde::Serialize;

use super::{Db, FromRow, Result, Row, Value};
use crate::track::EventRow;

/// What to look up: stored detections or events, newest first. Used by `subscribe query` and the web
/// view's event list.
#[derive(Debug, Clone, PartialEq)]
pub struct EventFilter {
    pub camera: Option<String>,
    pub label: Option<String>,
    pub model: Option<String>,
    /// Only what was captured (detections) or started (events) within this long before now.
    pub since: Option<Duration>,
    /// Least score (of a box; of an event's peak).
    pub min_score: Option<f32>,
    /// Only what was captured (detections) or started (events) at or after this Unix time, in ms.
    pub from_ms: Option<i64>,
    /// Only what was captured or started before this Unix time, in ms.
    pub to_ms: Option<i64>,
    /// Events only: the page of events just older or just newer than a known one.
    pub page: Option<Page>,
    /// Most rows.
    pub limit: i64,
}

impl Default for EventFilter {
    fn default() -> Self {
        EventFilter {
            camera: None,
            label: None,
            model: None,
            since: None,
            min_score: None,
            from_ms: None,
            to_ms: None,
            page: None,
            limit: 100,
        }
    }
}

/// Where an event sits in the newest-first order of events: its start, then its id for events that started
/// in the same millisecond. A page is asked for as "the events just before (or after) this key": unlike an
/// offset, the database finds it through an index however deep the page, and a new event arriving meanwhile
/// neither shifts nor repeats what the next page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageKey {
    pub start_ms: i64,
    pub id: String,
}

impl PageKey {
    pub fn of(e: &EventRow) -> PageKey {
        PageKey { start_ms: e.start_ms, id: e.id.clone() }
    }
}

/// As a URL takes it: `START_MS-ID`.
impl std::fmt::Display for PageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.start_ms, self.id)
    }
}

impl std::str::FromStr for PageKey {
    type Err = ();

    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        let (ms, id) = s.split_once('-').ok_or(())?;
        let start_ms = ms.parse().map_err(|_| ())?;
        if id.is_empty() {
            return Err(());
        }
        Ok(PageKey { start_ms, id: id.to_string() })
    }
}

/// Which side of a known event a page lies on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// The events that started before it (the next page of a newest-first list).
    Older(PageKey),
    /// The events that started after it (the previous page).
    Newer(PageKey),
}

/// The columns a filter applies to, in one table.
struct Columns {
    /// Table alias with its dot, or "".
    prefix: &'static str,
    time: &'static str,
    score: &'static str,
}

impl EventFilter {
    /// ` AND …` conditions for a `WHERE`, and their parameters (`$1` on).
    fn conditions(&self, cols: &Columns) -> (String, Vec<Value>) {
        let p = cols.prefix;
        let mut clauses = Vec::new();
        let mut params: Vec<Value> = Vec::new();
        let mut add = |column: String, op: &str, v: Value| {
            params.push(v);
            clauses.push(format!(" AND {column} {op} ${}", params.len()));
        };
        if let Some(c) = &self.camera {
            add(format!("{p}camera"), "=", c.as_str().into());
        }
        if let Some(l) = &self.label {
            add(format!("{p}label"), "=", l.as_str().into());
        }
        if let Some(m) = &self.model {
            add(format!("{p}model"), "=", m.as_str().into());
        }
        if let Some(s) = self.since {
            add(format!("{p}{}", cols.time), ">=", (now_ms() - s.as_millis() as i64).into());
        }
        if let Some(s) = self.min_score {
            add(format!("{p}{}", cols.score), ">=", f64::from(s).into());
        }
        if let Some(t) = self.from_ms {
            add(format!("{p}{}", cols.time), ">=", t.into());
        }
        if let Some(t) = self.to_ms {
            add(format!("{p}{}", cols.time), "<", t.into());
        }
        (clauses.concat(), params)
    }
}

/// One stored detection (a box, with its frame's snapshot).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DetectionRow {
    pub camera: String,
    pub seq: i64,
    pub model: String,
    pub capture_ms: i64,
    pub label: String,
    pub score: f64,
    #[serde(rename = "box")]
    pub bbox: [f64; 4],
    pub snapshot: Option<String>,
}

impl FromRow for DetectionRow {
    fn from_row(r: &Row) -> Result<Self> {
        Ok(DetectionRow {
            camera: r.get("camera")?,
            seq: r.get("seq")?,
            model: r.get("model")?,
            capture_ms: r.get("capture_ms")?,
            label: r.get("label")?,
            score: r.get("score")?,
            bbox: [r.get("x1")?, r.get("y1")?, r.get("x2")?, r.get("y2")?],
            snapshot: r.get("snapshot")?,
        })
    }
}

const EVENT_COLUMNS: &str = "id, scope, camera, model, label, start_ms, end_ms, start_seq, end_seq, frames, \
     peak_score, peak_seq, best_snapshot, best_score, open, alerted, x1, y1, x2, y2";

impl FromRow for EventRow {
    fn from_row(r: &Row) -> Result<Self> {
        Ok(EventRow {
            id: r.get("id")?,
            scope: r.get("scope")?,
            camera: r.get("camera")?,
            model: r.get("model")?,
            label: r.get("label")?,
            start_ms: r.get("start_ms")?,
            end_ms: r.get("end_ms")?,
            start_seq: r.get("start_seq")?,
            end_seq: r.get("end_seq")?,
            frames: r.get("frames")?,
            peak_score: r.get("peak_score")?,
            peak_seq: r.get("peak_seq")?,
            best_snapshot: r.get("best_snapshot")?,
            best_score: r.get("best_score")?,
            open: r.get("open")?,
            alerted: r.get("alerted")?,
            bbox: [r.get("x1")?, r.get("y1")?, r.get("x2")?, r.get("y2")?],
        })
    }
}

/// Where a tracker stopped, per camera and model.
#[derive(Debug, Clone, PartialEq)]
pub struct CursorRow {
    /// The tracker: "" for events, an alert rule's name for its tracks.
    pub scope: String,
    pub camera: String,
    pub model: String,
    pub last_seq: u64,
}

impl FromRow for CursorRow {
    fn from_row(r: &Row) -> Result<Self> {
        Ok(CursorRow {
            scope: r.get("scope")?,
            camera: r.get("camera")?,
            model: r.get("model")?,
            last_seq: r.get("last_seq")?,
        })
    }
}

struct Snapshot(String);

impl FromRow for Snapshot {
    fn from_row(r: &Row) -> Result<Self> {
        r.get("snapshot").map(Snapshot)
    }
}

impl Db {
    /// Stored detections, newest first.
    pub async fn detections(&mut self, f: &EventFilter) -> Result<Vec<DetectionRow>> {
        let (conditions, mut params) = f.conditions(&Columns { prefix: "b.", time: "capture_ms", score: "score" });
        params.push(f.limit.into());
        let sql = format!(
            "SELECT b.camera AS camera, b.seq AS seq, b.model AS model, b.capture_ms AS capture_ms,
                    b.label AS label, b.score AS score, b.x1 AS x1, b.y1 AS y1, b.x2 AS x2, b.y2 AS y2,
                    f.snapshot AS snapshot
             FROM boxes b JOIN frames f ON f.camera = b.camera AND f.seq = b.seq AND f.model = b.model
             WHERE 1 = 1{conditions} ORDER BY b.capture_ms DESC, b.seq DESC, b.idx LIMIT ${}",
            params.len()
        );
        self.rows(sql, params).await
    }

    /// Events (not alert rules' tracks), newest first: by start, then id (see [`PageKey`]).
    pub async fn events(&mut self, f: &EventFilter) -> Result<Vec<EventRow>> {
        let (mut conditions, mut params) = f.conditions(&Columns { prefix: "", time: "start_ms", score: "peak_score" });
        // A newer page is read oldest first from its key, to take the events right next to it, and turned.
        let (key, op, order) = match &f.page {
            Some(Page::Older(key)) => (Some(key), "<", "DESC"),
            Some(Page::Newer(key)) => (Some(key), ">", "ASC"),
            None => (None, "", "DESC"),
        };
        if let Some(key) = key {
            params.push(key.start_ms.into());
            params.push(key.id.as_str().into());
            let n = params.len();
            // A row value, which SQLite and PostgreSQL both turn into one range of the index.
            conditions.push_str(&format!(" AND (start_ms, id) {op} (${}, ${n})", n - 1));
        }
        params.push(f.limit.into());
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE scope = ''{conditions} ORDER BY start_ms {order}, id {order} LIMIT ${}",
            params.len()
        );
        let mut rows: Vec<EventRow> = self.rows(sql, params).await?;
        if order == "ASC" {
            rows.reverse();
        }
        Ok(rows)
    }

    /// One event (or an alert rule's track) by id.
    pub async fn event(&mut self, id: &str) -> Result<Option<EventRow>> {
        let rows = self.rows(format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1"), vec![id.into()]).await?;
        Ok(rows.into_iter().next())
    }

    /// Snapshot files of the frames an event spans: its best one first, then the others in frame order.
    pub async fn event_snapshots(&mut self, e: &EventRow) -> Result<Vec<String>> {
        let sql = "SELECT snapshot FROM frames WHERE camera = $1 AND model = $2 AND seq >= $3 AND seq <= $4
                   AND snapshot IS NOT NULL ORDER BY seq";
        let params = vec![
            e.camera.as_str().into(),
            e.model.as_str().into(),
            Value::big(e.start_seq, "start_seq")?,
            Value::big(e.end_seq, "end_seq")?,
        ];
        let mut files: Vec<String> =
            self.rows::<Snapshot>(sql.into(), params).await?.into_iter().map(|s| s.0).collect();
        if let Some(best) = &e.best_snapshot {
            files.retain(|f| f != best);
            files.insert(0, best.clone());
        }
        Ok(files)
    }

    /// Open tracks of every scope, for a restarted store to continue.
    pub async fn open_tracks(&mut self) -> Result<Vec<EventRow>> {
        self.rows(format!("SELECT {EVENT_COLUMNS} FROM events WHERE open = 1"), vec![]).await
    }

    /// Every tracker's cursors.
    pub async fn cursors(&mut self) -> Result<Vec<CursorRow>> {
        self.rows("SELECT scope, camera, model, last_seq FROM cursors".into(), vec![]).await
    }
}
