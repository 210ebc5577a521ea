//! The store's one transaction per batch: frames and their boxes, events, alerts with their
//! announcements, outbox records and tracker cursors, all or nothing.
//!
//! Every write is an upsert keyed by the row's identity (camera + seq + model, an event's or alert's id),
//! so a batch that comes again after a crash lands once.

use std::collections::BTreeMap;

use framewire_common::time::now_ms;
use framewire_proto::Detections;

use super::backend::Statement;
use super::{Db, OutboxKind, OutboxMessage, Result, Value};
use crate::alerts::Alert;
use crate::track::EventRow;

/// A frame's detections as stored.
#[derive(Debug, Clone)]
pub struct StoredFrame {
    pub detections: Detections,
    /// `name@version`: replays by another model version are stored beside, not over, these.
    pub model: String,
    /// The annotated snapshot's path, when one was saved for this frame.
    pub snapshot: Option<String>,
}

/// An alert raised by a rule, with the rule's webhook to call and its email to send.
#[derive(Debug, Clone)]
pub struct NewAlert {
    pub alert: Alert,
    pub webhook: Option<String>,
    /// The email's outbox row (`OutboxKind::Email`), when the rule mails.
    pub email: Option<OutboxMessage>,
}

/// A tracker cursor's key: scope (the tracker), camera and model.
pub type CursorKey = (String, String, String);

/// Everything one transaction writes.
#[derive(Debug, Default)]
pub struct Changes {
    pub frames: Vec<StoredFrame>,
    /// By id: a track touched by several frames of the batch is written once, as it ended up.
    pub events: BTreeMap<String, EventRow>,
    pub alerts: Vec<NewAlert>,
    pub outbox: Vec<OutboxMessage>,
    /// The last sequence number each tracker has seen per camera and model: a redelivered frame is
    /// recognised after a restart.
    pub cursors: BTreeMap<CursorKey, u64>,
}

/// Box rows per INSERT: 12 parameters each keeps a statement far under SQLite's 32,766 and PostgreSQL's
/// 65,535 parameters.
const BOXES_PER_INSERT: usize = 500;

const BOX_COLUMNS: &str = "camera, seq, model, idx, label, class_id, score, x1, y1, x2, y2, capture_ms";

impl Db {
    /// Writes `changes` in one transaction. An alert not stored before is announced on `alerts_topic` and
    /// to its webhook, through the outbox, in the same transaction; those alerts are returned.
    pub async fn write<'c>(&mut self, changes: &'c Changes, alerts_topic: &str) -> Result<Vec<&'c Alert>> {
        let mut tx = Vec::new();
        let now = now_ms();
        frames(&mut tx, &changes.frames, now)?;
        for e in changes.events.values() {
            tx.push(Statement::new(EVENT_UPSERT, event_params(e)?));
        }
        let mut inserted = Vec::with_capacity(changes.alerts.len());
        for a in &changes.alerts {
            inserted.push(tx.len());
            alert(&mut tx, a, alerts_topic, now)?;
        }
        for m in &changes.outbox {
            tx.push(outbox_insert(m, now));
        }
        for ((scope, camera, model), seq) in &changes.cursors {
            tx.push(Statement::new(
                "INSERT INTO cursors (scope, camera, model, last_seq) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (scope, camera, model) DO UPDATE SET last_seq = excluded.last_seq",
                vec![scope.as_str().into(), camera.as_str().into(), model.as_str().into(), Value::big(*seq, "seq")?],
            ));
        }
        let changed = self.backend.transaction(tx).await?;
        Ok(changes.alerts.iter().zip(inserted).filter(|(_, i)| changed[*i] > 0).map(|(a, _)| &a.alert).collect())
    }
}

/// Upserts the frames and replaces their boxes, all boxes of the batch in a few multi-row INSERTs.
fn frames(tx: &mut Vec<Statement>, frames: &[StoredFrame], stored_ms: i64) -> Result<()> {
    // A frame delivered twice in one batch keeps the boxes of its last delivery, as upserts in turn would.
    let mut boxes = BTreeMap::new();
    for f in frames {
        let d = &f.detections;
        let key = vec![d.camera_id.as_str().into(), Value::big(d.seq, "seq")?, f.model.as_str().into()];
        tx.push(Statement::new(FRAME_UPSERT, frame_params(f, stored_ms)?));
        tx.push(Statement::new("DELETE FROM boxes WHERE camera = $1 AND seq = $2 AND model = $3", key));
        boxes.insert((d.camera_id.as_str(), d.seq, f.model.as_str()), d);
    }
    let mut rows = Vec::new();
    for ((_, _, model), d) in boxes {
        for (i, b) in d.boxes.iter().enumerate() {
            rows.push(vec![
                d.camera_id.as_str().into(),
                Value::big(d.seq, "seq")?,
                model.into(),
                Value::big(i as u64, "box index")?,
                b.label.as_str().into(),
                b.class_id.into(),
                b.score.into(),
                b.x1.into(),
                b.y1.into(),
                b.x2.into(),
                b.y2.into(),
                d.capture_time_ms.into(),
            ]);
        }
    }
    for chunk in rows.chunks(BOXES_PER_INSERT) {
        tx.push(insert_many("boxes", BOX_COLUMNS, chunk));
    }
    Ok(())
}

/// One `INSERT … VALUES (…), (…)` of equally long rows.
fn insert_many(table: &str, columns: &str, rows: &[Vec<Value>]) -> Statement {
    let mut sql = format!("INSERT INTO {table} ({columns}) VALUES ");
    let mut n = 0;
    for (r, row) in rows.iter().enumerate() {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..row.len() {
            n += 1;
            sql.push_str(&if c == 0 { format!("${n}") } else { format!(", ${n}") });
        }
        sql.push(')');
    }
    Statement::new(sql, rows.concat())
}

/// Inserts the alert unless stored before; only then does it go to the outbox.
fn alert(tx: &mut Vec<Statement>, new: &NewAlert, alerts_topic: &str, now: i64) -> Result<()> {
    let a = &new.alert;
    // Cannot fail: an alert has only strings and numbers (a non-finite one is written as null).
    let payload = serde_json::to_string(a).unwrap_or_default();
    let insert = tx.len();
    tx.push(Statement::new(
        "INSERT INTO alerts (id, rule, camera, model, label, score, seq, capture_ms, started_ms, duration_ms,
                             created_ms, payload)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING",
        vec![
            a.id.as_str().into(),
            a.rule.as_str().into(),
            a.camera.as_str().into(),
            a.model.as_str().into(),
            a.label.as_str().into(),
            a.score.into(),
            Value::big(a.seq, "seq")?,
            a.capture_ms.into(),
            a.started_ms.into(),
            a.duration_ms.into(),
            now.into(),
            payload.as_str().into(),
        ],
    ));
    let record = |kind, target: &str| OutboxMessage {
        kind,
        target: target.to_string(),
        key: a.camera.clone(),
        payload: payload.clone(),
    };
    tx.push(outbox_insert(&record(OutboxKind::Kafka, alerts_topic), now).only_if(insert));
    if let Some(url) = &new.webhook {
        tx.push(outbox_insert(&record(OutboxKind::Webhook, url), now).only_if(insert));
    }
    if let Some(email) = &new.email {
        tx.push(outbox_insert(email, now).only_if(insert));
    }
    Ok(())
}

fn outbox_insert(m: &OutboxMessage, now: i64) -> Statement {
    Statement::new(
        "INSERT INTO outbox (kind, target, msg_key, payload, attempts, created_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        vec![
            m.kind.as_str().into(),
            m.target.as_str().into(),
            m.key.as_str().into(),
            m.payload.as_str().into(),
            0i64.into(),
            now.into(),
        ],
    )
}

const FRAME_UPSERT: &str = "INSERT INTO frames (camera, seq, model, capture_ms, detected_ms, stored_ms, width, height,
                                inference_ms, source_partition, source_offset, box_count, snapshot)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
     ON CONFLICT (camera, seq, model) DO UPDATE SET
        capture_ms = excluded.capture_ms, detected_ms = excluded.detected_ms, width = excluded.width,
        height = excluded.height, inference_ms = excluded.inference_ms,
        source_partition = excluded.source_partition, source_offset = excluded.source_offset,
        box_count = excluded.box_count, snapshot = COALESCE(excluded.snapshot, frames.snapshot)";

fn frame_params(f: &StoredFrame, stored_ms: i64) -> Result<Vec<Value>> {
    let d = &f.detections;
    Ok(vec![
        d.camera_id.as_str().into(),
        Value::big(d.seq, "seq")?,
        f.model.as_str().into(),
        d.capture_time_ms.into(),
        d.detected_time_ms.into(),
        stored_ms.into(),
        d.width.into(),
        d.height.into(),
        d.inference_ms.into(),
        d.source_partition.into(),
        d.source_offset.into(),
        Value::big(d.boxes.len() as u64, "box count")?,
        f.snapshot.clone().into(),
    ])
}

const EVENT_UPSERT: &str = "INSERT INTO events (id, scope, camera, model, label, start_ms, end_ms, start_seq, end_seq,
                                frames, peak_score, peak_seq, best_snapshot, best_score, open, alerted, x1, y1, x2, y2)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
     ON CONFLICT (id) DO UPDATE SET
        end_ms = excluded.end_ms, end_seq = excluded.end_seq, frames = excluded.frames,
        peak_score = excluded.peak_score, peak_seq = excluded.peak_seq,
        best_snapshot = COALESCE(excluded.best_snapshot, events.best_snapshot),
        best_score = excluded.best_score, open = excluded.open, alerted = excluded.alerted,
        x1 = excluded.x1, y1 = excluded.y1, x2 = excluded.x2, y2 = excluded.y2";

fn event_params(e: &EventRow) -> Result<Vec<Value>> {
    Ok(vec![
        e.id.as_str().into(),
        e.scope.as_str().into(),
        e.camera.as_str().into(),
        e.model.as_str().into(),
        e.label.as_str().into(),
        e.start_ms.into(),
        e.end_ms.into(),
        Value::big(e.start_seq, "start_seq")?,
        Value::big(e.end_seq, "end_seq")?,
        Value::big(e.frames, "frames")?,
        e.peak_score.into(),
        Value::big(e.peak_seq, "peak_seq")?,
        e.best_snapshot.clone().into(),
        e.best_score.into(),
        e.open.into(),
        e.alerted.into(),
        e.bbox[0].into(),
        e.bbox[1].into(),
        e.bbox[2].into(),
        e.bbox[3].into(),
    ])
}
