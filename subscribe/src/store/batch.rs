//! One message's rows, and the batch they add up to: tracker updates, snapshots, alerts, event records.

use std::collections::HashMap;

use framewire_proto::json::model_tag;
use framewire_proto::{Detections, Skipped};
use serde::Serialize;

use super::snapshots::Snapshots;
use super::{StoreArgs, email};
use crate::alerts::{Alert, Rule};
use crate::events::store::{AlertRaised, DuplicateDelivered, SnapshotFailed, SnapshotSaved};
use crate::metrics::StoreMetrics;
use crate::repo::{Changes, NewAlert, OutboxKind, OutboxMessage, StoredFrame};
use crate::track::{EventRow, Tracker};

/// A batch: what its transaction writes, and what it counts.
#[derive(Default)]
pub struct Work {
    pub changes: Changes,
    /// The highest offset per topic and partition, committed once the transaction is.
    pub offsets: HashMap<(String, i32), i64>,
    pub duplicates: u64,
    /// Records of frames detect skipped (stale): nothing to store, the offset still advances.
    pub skipped: u64,
    /// Frames ingest left out as unchanged before the fresh frames of the batch.
    pub unchanged: u64,
    pub dead: u64,
    pub snapshots: u64,
    pub snapshot_errors: u64,
    /// Events started by the batch.
    pub started: u64,
    /// Capture to now, per frame seen for the first time.
    pub latencies_ms: Vec<i64>,
}

impl Work {
    /// Notes a message's offset, so that the commit covers it.
    pub fn offset(&mut self, topic: &str, partition: i32, offset: i64) {
        let e = self.offsets.entry((topic.to_string(), partition)).or_insert(offset);
        *e = (*e).max(offset);
    }

    /// Ends the tracks that have been quiet (wall time) for their gap: only those rows and records.
    pub fn expire(trackers: &mut Trackers, now_ms: i64, events_topic: &str) -> Work {
        let mut work = Work::default();
        for t in trackers.all_mut() {
            for row in t.expire(now_ms, 5000) {
                if row.scope.is_empty() {
                    work.changes.outbox.push(event_record(events_topic, "ended", &row));
                }
                work.changes.events.insert(row.id.clone(), row);
            }
        }
        work
    }
}

/// The trackers: events (scope "") and one per alert rule.
#[derive(Clone)]
pub struct Trackers {
    pub events: Tracker,
    pub rules: Vec<(Rule, Tracker)>,
}

impl Trackers {
    pub fn new(rules: &[Rule], iou: f32, gap_ms: i64) -> Trackers {
        Trackers {
            events: Tracker::new("", iou, gap_ms),
            rules: rules.iter().map(|r| (r.clone(), Tracker::new(&r.name, iou, gap_ms))).collect(),
        }
    }

    pub fn all_mut(&mut self) -> impl Iterator<Item = &mut Tracker> {
        std::iter::once(&mut self.events).chain(self.rules.iter_mut().map(|(_, t)| t))
    }
}

/// What a batch's messages share while they are worked.
pub struct Context<'a> {
    pub args: &'a StoreArgs,
    pub metrics: &'a StoreMetrics,
    pub snapshots: &'a Snapshots,
    /// Capture time of each camera's last snapshot (or failed attempt): the snapshot interval's clock.
    pub last_snapshot: &'a mut HashMap<String, i64>,
}

/// Adds one message's rows to `work`: snapshot, tracker updates, alerts, event records.
pub async fn prepare(d: &Detections, next: &mut Trackers, work: &mut Work, cx: &mut Context<'_>, now: i64) {
    if d.skipped() != Skipped::None {
        // No model result: storing it as a frame would read as "nothing there", and the tracker would end
        // events across an overload. Counted once (a redelivery is recognised by the camera's cursor); the
        // events go on from the next result.
        if next.events.pass(d, &model_tag(d)) {
            work.skipped += 1;
            work.unchanged += u64::from(d.unchanged_before);
        }
        return;
    }
    let args = cx.args;
    let model = model_tag(d);
    let Some(observed) = next.events.observe(d, &model, now, |_| true) else {
        work.duplicates += 1;
        DuplicateDelivered.emit(cx.metrics);
        // Stored before; upserting again is harmless and repairs nothing-but-a-crash states.
        work.changes.frames.push(StoredFrame { detections: d.clone(), model, snapshot: None });
        return;
    };
    work.latencies_ms.push(now - d.capture_time_ms);
    work.unchanged += u64::from(d.unchanged_before);

    // Snapshot: a wanted label, and either the camera's interval has passed or one of its events just began.
    let mut snap_path = None;
    if cx.snapshots.on() {
        let wanted = d.boxes.iter().any(|b| args.snapshots.wants(&b.label));
        let new_event = observed
            .matches
            .iter()
            .any(|(i, id)| observed.started.contains(id) && args.snapshots.wants(&d.boxes[*i].label));
        let due = cx
            .last_snapshot
            .get(&d.camera_id)
            .is_none_or(|&t| d.capture_time_ms - t >= args.snapshots.snapshot_interval.as_millis() as i64);
        if wanted && (due || new_event) {
            // Throttled by the snapshot interval whether or not it works; the detections are stored regardless.
            cx.last_snapshot.insert(d.camera_id.clone(), d.capture_time_ms);
            match cx.snapshots.take(d, &model).await {
                Ok(path) => {
                    SnapshotSaved.emit(cx.metrics);
                    work.snapshots += 1;
                    snap_path = Some(path);
                }
                Err(e) => {
                    SnapshotFailed { camera: &d.camera_id, seq: d.seq, kind: e.kind, error: &e.error }.emit(cx.metrics);
                    work.snapshot_errors += 1;
                }
            }
        }
    }

    let changes = &mut work.changes;
    for row in &observed.ended {
        changes.outbox.push(event_record(&args.events_topic, "ended", row));
    }
    for row in observed.touched {
        changes.events.insert(row.id.clone(), row);
    }
    if let Some(path) = &snap_path {
        for (i, id) in &observed.matches {
            let b = &d.boxes[*i];
            if !args.snapshots.wants(&b.label) {
                continue;
            }
            let updated = next.events.update(id, |r| {
                if r.best_snapshot.is_none() || b.score > r.best_score {
                    r.best_snapshot = Some(path.clone());
                    r.best_score = b.score;
                }
            });
            if let Some(row) = updated {
                changes.events.insert(row.id.clone(), row);
            }
        }
    }
    for id in &observed.started {
        if let Some(row) = changes.events.get(id) {
            work.started += 1;
            changes.outbox.push(event_record(&args.events_topic, "started", row));
        }
    }

    for (rule, tracker) in &mut next.rules {
        let Some(o) = tracker.observe(d, &model, now, |b| rule.accepts(d, b)) else { continue };
        for row in o.touched {
            let row = if row.open && rule.due(&row) {
                AlertRaised {
                    rule: &rule.name,
                    camera: &row.camera,
                    label: &row.label,
                    duration_ms: row.duration_ms(),
                }
                .emit();
                let alert = Alert::from_track(rule, &row);
                let email = (!rule.email.is_empty()).then(|| {
                    let event = event_of(&o.matches, &observed.matches, &row.id);
                    email::outbox_message(&alert, event, &rule.email)
                });
                changes.alerts.push(NewAlert { alert, webhook: rule.webhook.clone(), email });
                tracker.update(&row.id, |r| r.alerted = true).unwrap_or(row)
            } else {
                row
            };
            changes.events.insert(row.id.clone(), row);
        }
    }
    for t in next.all_mut() {
        let scope = t.scope().to_string();
        for (camera, m, seq) in t.cursors() {
            if camera == d.camera_id && m == model {
                changes.cursors.insert((scope.clone(), camera.to_string(), m.to_string()), seq);
            }
        }
    }
    changes.frames.push(StoredFrame { detections: d.clone(), model, snapshot: snap_path });
}

/// The event (scope "") of the box that a rule's track matched in this frame: it holds the best snapshot.
fn event_of<'a>(rule: &[(usize, String)], events: &'a [(usize, String)], track: &str) -> Option<&'a str> {
    let (i, _) = rule.iter().find(|(_, id)| id == track)?;
    events.iter().find(|(j, _)| j == i).map(|(_, id)| id.as_str())
}

#[derive(Serialize)]
struct EventRecord<'a> {
    state: &'a str,
    #[serde(flatten)]
    event: &'a EventRow,
}

/// An event's `started` or `ended` record for the events topic, keyed by camera.
fn event_record(topic: &str, state: &str, row: &EventRow) -> OutboxMessage {
    // Cannot fail: an event row has only strings, numbers and booleans.
    let payload = serde_json::to_string(&EventRecord { state, event: row }).unwrap_or_default();
    OutboxMessage { kind: OutboxKind::Kafka, target: topic.to_string(), key: row.camera.clone(), payload }
}
