//! The repo against real SQLite files: writes read back, migrations from the schema before versions.

use framewire_proto::{DetectionBox, Detections};

use super::schema::{self, MIGRATIONS, Migration};
use super::*;
use crate::alerts::Alert;
use crate::track::EventRow;

/// The schema `subscribe store` made before the version table, as it made it on SQLite (in one batch).
fn schema_before_versions() -> String {
    MIGRATIONS[0].sql.replace("{serial_key}", "INTEGER PRIMARY KEY AUTOINCREMENT")
}

fn url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}/fw.db", dir.path().display())
}

fn frame(camera: &str, seq: u64, boxes: usize) -> Detections {
    Detections {
        camera_id: camera.into(),
        seq,
        capture_time_ms: 1_000 + seq as i64,
        width: 640,
        height: 480,
        boxes: (0..boxes)
            .map(|i| DetectionBox {
                label: if i == 0 { "person".into() } else { "car".into() },
                class_id: i as u32,
                score: 0.5,
                x1: i as f32,
                y1: 1.0,
                x2: i as f32 + 10.0,
                y2: 11.0,
            })
            .collect(),
        ..Default::default()
    }
}

fn event(id: &str, open: bool) -> EventRow {
    EventRow {
        id: id.into(),
        scope: String::new(),
        camera: "door".into(),
        model: "m@1".into(),
        label: "person".into(),
        start_ms: 1_001,
        end_ms: 1_002,
        start_seq: 1,
        end_seq: 2,
        frames: 2,
        peak_score: 0.5,
        peak_seq: 2,
        best_snapshot: Some("/snaps/door/2.jpg".into()),
        best_score: 0.5,
        open,
        alerted: false,
        bbox: [0.0, 1.0, 10.0, 11.0],
    }
}

fn stored(d: Detections, snapshot: Option<&str>) -> StoredFrame {
    StoredFrame { detections: d, model: "m@1".into(), snapshot: snapshot.map(str::to_string) }
}

#[test]
fn urls_name_their_engine() {
    assert_eq!(parse_url("sqlite://data/fw.db").unwrap(), (Engine::Sqlite, "data/fw.db".into()));
    assert_eq!(parse_url("sqlite:///var/lib/fw.db").unwrap(), (Engine::Sqlite, "/var/lib/fw.db".into()));
    assert_eq!(parse_url("postgres://u@h/db").unwrap().0, Engine::Postgres);
    assert_eq!(parse_url("postgresql://u@h/db").unwrap().0, Engine::Postgres);
    assert!(parse_url("mysql://x").is_err());
    assert!(parse_url("sqlite://").is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_from_before_versions_is_migrated_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let url = url(&dir);
    {
        // What the store wrote before this version: its schema and a few rows, with its own SQL.
        let c = rusqlite::Connection::open(dir.path().join("fw.db")).unwrap();
        c.execute_batch(&schema_before_versions()).unwrap();
        c.execute_batch(
            "INSERT INTO frames VALUES ('door', 2, 'm@1', 1002, 1003, 1004, 640, 480, 7.5, 0, 41, 1, '/snaps/door/2.jpg');
             INSERT INTO boxes VALUES ('door', 2, 'm@1', 0, 'person', 0, 0.5, 0.0, 1.0, 10.0, 11.0, 1002);
             INSERT INTO events VALUES ('e1', '', 'door', 'm@1', 'person', 1001, 1002, 1, 2, 2, 0.5, 2,
                                        '/snaps/door/2.jpg', 0.5, 1, 0, 0.0, 1.0, 10.0, 11.0);
             INSERT INTO cursors VALUES ('', 'door', 'm@1', 2);
             INSERT INTO outbox (kind, target, msg_key, payload, attempts, created_ms)
                         VALUES ('kafka', 'events', 'door', '{}', 0, 1004);",
        )
        .unwrap();
    }

    let mut db = Db::open(&url).await.unwrap();
    let all: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
    assert_eq!(schema::applied(db.backend.as_mut()).await.unwrap().into_iter().collect::<Vec<_>>(), all);
    let rows = db.detections(&EventFilter::default()).await.unwrap();
    assert_eq!(
        rows,
        vec![DetectionRow {
            camera: "door".into(),
            seq: 2,
            model: "m@1".into(),
            capture_ms: 1002,
            label: "person".into(),
            score: 0.5,
            bbox: [0.0, 1.0, 10.0, 11.0],
            snapshot: Some("/snaps/door/2.jpg".into()),
        }]
    );
    assert_eq!(db.events(&EventFilter::default()).await.unwrap(), vec![event("e1", true)]);
    assert_eq!(db.open_tracks().await.unwrap(), vec![event("e1", true)]);
    let cursor = CursorRow { scope: String::new(), camera: "door".into(), model: "m@1".into(), last_seq: 2 };
    assert_eq!(db.cursors().await.unwrap(), vec![cursor]);
    let outbox = db.outbox(10).await.unwrap();
    assert_eq!((outbox.len(), outbox[0].message.kind, outbox[0].attempts), (1, OutboxKind::Kafka, 0));

    // The migrated database takes the next batch, and opening it again changes nothing.
    let changes = Changes { frames: vec![stored(frame("door", 3, 2), None)], ..Changes::default() };
    db.write(&changes, "alerts").await.unwrap();
    drop(db);
    let mut db = Db::open(&url).await.unwrap();
    assert_eq!(db.detections(&EventFilter::default()).await.unwrap().len(), 3);
    assert_eq!(schema::applied(db.backend.as_mut()).await.unwrap().len(), MIGRATIONS.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_later_migration_reaches_an_existing_database_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = url(&dir);
    Db::open(&url).await.unwrap();
    let next: Vec<Migration> = MIGRATIONS
        .iter()
        .copied()
        .chain([Migration { version: 99, sql: "ALTER TABLE frames ADD COLUMN note TEXT;" }])
        .collect();
    for _ in 0..2 {
        let mut db = Db::connect(&url).await.unwrap();
        schema::migrate(db.backend.as_mut(), &next).await.unwrap();
        let want: Vec<i64> = next.iter().map(|m| m.version).collect();
        assert_eq!(schema::applied(db.backend.as_mut()).await.unwrap().into_iter().collect::<Vec<_>>(), want);
        db.backend.query("SELECT note FROM frames".into(), vec![]).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn processes_opening_a_new_database_at_once_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let url = url(&dir);
    let opens = (0..4).map(|_| Db::open(&url));
    for db in futures::future::join_all(opens).await {
        db.unwrap();
    }
    let mut db = Db::connect(&url).await.unwrap();
    assert_eq!(schema::applied(db.backend.as_mut()).await.unwrap().len(), MIGRATIONS.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_is_written_once_however_often_it_comes() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Db::open(&url(&dir)).await.unwrap();
    let alert = Alert {
        id: "e1".into(),
        rule: "door".into(),
        camera: "door".into(),
        label: "person".into(),
        model: "m@1".into(),
        score: 0.5,
        seq: 2,
        capture_ms: 1002,
        started_ms: 1001,
        duration_ms: 1,
        bbox: [0.0, 1.0, 10.0, 11.0],
    };
    let mut changes = Changes {
        // Frame 2 twice in one batch (a redelivery inside it): its boxes once. 1,200 boxes in all: several
        // multi-row INSERTs.
        frames: vec![
            stored(frame("door", 1, 600), None),
            stored(frame("door", 2, 600), Some("/snaps/door/2.jpg")),
            stored(frame("door", 2, 600), None),
        ],
        alerts: vec![NewAlert {
            alert: alert.clone(),
            webhook: Some("http://hook".into()),
            email: Some(OutboxMessage {
                kind: OutboxKind::Email,
                target: "ops@example.com".into(),
                key: "door".into(),
                payload: "{}".into(),
            }),
        }],
        outbox: vec![OutboxMessage {
            kind: OutboxKind::Kafka,
            target: "events".into(),
            key: "door".into(),
            payload: "{}".into(),
        }],
        ..Changes::default()
    };
    changes.events.insert("e1".into(), event("e1", false));
    changes.cursors.insert((String::new(), "door".into(), "m@1".into()), 2);

    let all = EventFilter { limit: 10_000, ..EventFilter::default() };
    assert_eq!(db.write(&changes, "alerts").await.unwrap(), vec![&alert]);
    assert!(db.write(&changes, "alerts").await.unwrap().is_empty(), "an alert is new once");
    assert_eq!(db.detections(&all).await.unwrap().len(), 1200);
    let kinds: Vec<(OutboxKind, String)> =
        db.outbox(10).await.unwrap().into_iter().map(|r| (r.message.kind, r.message.target)).collect();
    assert_eq!(
        kinds,
        vec![
            (OutboxKind::Kafka, "alerts".into()),
            (OutboxKind::Webhook, "http://hook".into()),
            (OutboxKind::Email, "ops@example.com".into()),
            (OutboxKind::Kafka, "events".into()),
            (OutboxKind::Kafka, "events".into()),
        ],
        "the alert is announced once; the batch's own records each time"
    );
    let e = db.event("e1").await.unwrap().unwrap();
    assert_eq!(e, event("e1", false));
    assert_eq!(db.event_snapshots(&e).await.unwrap(), vec!["/snaps/door/2.jpg".to_string()], "kept by the upsert");
    assert!(db.open_tracks().await.unwrap().is_empty());

    let person = EventFilter { label: Some("person".into()), camera: Some("door".into()), ..all.clone() };
    assert_eq!(db.detections(&person).await.unwrap().len(), 2);
    let strict = EventFilter { min_score: Some(0.9), ..all.clone() };
    assert!(db.detections(&strict).await.unwrap().is_empty());
    assert!(db.events(&strict).await.unwrap().is_empty());

    let row = db.outbox(1).await.unwrap().remove(0);
    db.outbox_attempted(row.id, 3).await.unwrap();
    assert_eq!(db.outbox(1).await.unwrap()[0].attempts, 3);
    db.outbox_done(row.id).await.unwrap();
    assert_eq!(db.outbox(10).await.unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_value_of_the_wrong_type_is_an_error_not_a_zero() {
    let dir = tempfile::tempdir().unwrap();
    let url = url(&dir);
    let mut db = Db::open(&url).await.unwrap();
    let mut changes = Changes::default();
    changes.events.insert("e1".into(), event("e1", true));
    db.write(&changes, "alerts").await.unwrap();
    // SQLite keeps whatever it is given; a hand edit puts text where a count belongs.
    let c = rusqlite::Connection::open(dir.path().join("fw.db")).unwrap();
    c.execute("UPDATE events SET frames = 'many' WHERE id = 'e1'", []).unwrap();
    let e = db.events(&EventFilter::default()).await.unwrap_err().to_string();
    assert!(e.contains("column frames") && e.contains("text"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn events_are_paged_by_keyset_without_gaps_or_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Db::open(&url(&dir)).await.unwrap();
    let mut changes = Changes::default();
    // 23 events, several starting in the same millisecond: only the id tells those apart.
    for i in 0..23 {
        let mut e = event(&format!("e{i:02}"), false);
        e.start_ms = 10_000 + (i / 3) * 1000;
        e.camera = if i % 2 == 0 { "door".into() } else { "yard".into() };
        changes.events.insert(e.id.clone(), e);
    }
    changes.frames.push(stored(frame("door", 7, 1), Some("/snaps/door/7.jpg")));
    changes.frames.push(stored(frame("door", 9, 0), None));
    changes.cursors.insert((String::new(), "door".into(), "m@1".into()), 9);
    db.write(&changes, "alerts").await.unwrap();

    let page = |p: Option<Page>| EventFilter { page: p, limit: 5, ..EventFilter::default() };
    let mut seen = Vec::new();
    let mut rows = db.events(&page(None)).await.unwrap();
    while let Some(last) = rows.last() {
        let key = PageKey::of(last);
        seen.extend(rows.iter().map(|e| e.id.clone()));
        rows = db.events(&page(Some(Page::Older(key)))).await.unwrap();
    }
    let mut want: Vec<String> = changes.events.keys().cloned().collect();
    want.sort_by_key(|id| std::cmp::Reverse((changes.events[id].start_ms, id.clone())));
    assert_eq!(seen, want, "newest first, each once");

    // The page before a key is the one that led to it, newest first as well.
    let second = db.events(&page(Some(Page::Older(PageKey::of(&changes.events["e18"]))))).await.unwrap();
    let back = db.events(&page(Some(Page::Newer(PageKey::of(&second[0]))))).await.unwrap();
    let ids = |rows: &[EventRow]| rows.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&back), want[want.iter().position(|id| id == "e18").unwrap() - 4..][..5].to_vec());

    let door = EventFilter {
        camera: Some("door".into()),
        from_ms: Some(12_000),
        to_ms: Some(14_000),
        ..EventFilter::default()
    };
    assert_eq!(ids(&db.events(&door).await.unwrap()), ["e10", "e08", "e06"]);

    let cams = db.stored_cameras().await.unwrap();
    assert_eq!(cams.len(), 1);
    assert_eq!((cams[0].seq, cams[0].snapshot_seq), (9, Some(7)), "newest frame, newest snapshot");
    assert_eq!(db.frame_snapshot("door", 7).await.unwrap().as_deref(), Some("/snaps/door/7.jpg"));
    assert_eq!(db.frame_snapshot("door", 9).await.unwrap(), None);
    let counts = db.event_counts("door", 0).await.unwrap();
    assert_eq!(counts, vec![HourCount { label: "person".into(), hour_ms: 0, events: 12 }]);
    assert_eq!(db.event_labels().await.unwrap(), ["person"]);
}
