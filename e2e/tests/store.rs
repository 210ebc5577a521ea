//! `subscribe store`, `query` and `show` against a real broker, the real model, SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::subscribers::{Topics, astronaut_detected, detect_all, query};
use common::*;

/// Runs a store until it has been idle for 4 s; returns its output.
fn store_once(broker: &Broker, t: &Topics, db: &str, group: &str, snaps: &str, extra: &[&str]) -> Output {
    let mut args = t.store_args(db, group, snaps);
    args.extend(["--idle-exit", "4s"]);
    args.extend(extra);
    let out = broker.cmd("subscribe").args(&args).output().unwrap();
    assert!(out.status.success(), "store failed: {}", stderr(&out));
    out
}

/// Rows, or none while the store has not created its tables yet or the database is down.
fn try_query(broker: &Broker, db: &str) -> Vec<serde_json::Value> {
    let out = broker.cmd("subscribe").args(["query", "--db", db, "--json", "--limit", "1000000"]).output().unwrap();
    stdout(&out).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// The (camera, seq, label) of every stored box, with a count per key to catch doubled rows.
fn box_keys(rows: &[serde_json::Value]) -> Vec<(String, u64, String)> {
    let mut keys: Vec<(String, u64, String)> = rows
        .iter()
        .map(|r| {
            (
                r["camera"].as_str().unwrap().to_string(),
                r["seq"].as_u64().unwrap(),
                r["label"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    keys.sort();
    keys
}

/// The same keys from the detections on the topic (one per box, each frame once).
fn expected_keys(dets: &[framewire_proto::Detections]) -> Vec<(String, u64, String)> {
    let mut seen = BTreeSet::new();
    let mut keys = Vec::new();
    for d in dets {
        if seen.insert((d.camera_id.clone(), d.seq)) {
            keys.extend(d.boxes.iter().map(|b| (d.camera_id.clone(), d.seq, b.label.clone())));
        }
    }
    keys.sort();
    keys
}

#[test]
fn sqlite_store_replayed_twice_has_the_same_rows_events_and_snapshots() {
    let (broker, dir, t, dets) = astronaut_detected();
    let db = format!("sqlite://{}/fw.db", dir.path().display());
    let snaps = dir.path().join("snaps");
    let snaps_s = snaps.to_str().unwrap();
    // Something that is not Detections among them: dead-lettered with its reason, the rest stored.
    {
        use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
        let p: BaseProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", &broker.addr).create().unwrap();
        p.send(BaseRecord::to(&t.detections).key("astro").payload(&b"\x07garbage"[..])).unwrap();
        p.flush(Duration::from_secs(10)).unwrap();
    }

    let first = store_once(&broker, &t, &db, &unique("store"), snaps_s, &[]);
    assert!(stderr(&first).contains("stored 20 frames"), "{}", stderr(&first));
    assert!(stderr(&first).contains("1 dead-lettered"), "{}", stderr(&first));
    let dead = broker.read(&format!("{}.dlq", t.detections), 1, Duration::from_secs(10));
    assert_eq!(dead.len(), 1);
    assert_eq!(rdkafka::Message::payload(&dead[0]), Some(&b"\x07garbage"[..]));
    let reason = rdkafka::message::Headers::iter(rdkafka::Message::headers(&dead[0]).unwrap())
        .find(|h| h.key == "framewire-dlq-reason")
        .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
        .unwrap();
    assert!(!reason.is_empty(), "a reason is given");
    let rows = query(&broker, &db, &[]);
    assert_eq!(box_keys(&rows), expected_keys(&dets), "one row per detected box");
    let events = query(&broker, &db, &["--events"]);
    let people: Vec<&serde_json::Value> = events.iter().filter(|e| e["label"] == "person").collect();
    assert_eq!(people.len(), 1, "the astronaut is one event: {events:?}");
    let person_frames = dets.iter().filter(|d| d.boxes.iter().any(|b| b.label == "person")).count() as u64;
    assert_eq!(people[0]["frames"].as_u64(), Some(person_frames));
    let snapshot_files = std::fs::read_dir(snaps.join("astro")).unwrap().count();
    assert!(snapshot_files >= 1, "at least the event's first frame is saved");

    // A second group reads the whole topic again: nothing doubles.
    let second = store_once(&broker, &t, &db, &unique("store"), snaps_s, &[]);
    assert!(stderr(&second).contains("stored 0 frames"), "{}", stderr(&second));
    assert!(stderr(&second).contains("20 redelivered"), "{}", stderr(&second));
    assert_eq!(box_keys(&query(&broker, &db, &[])), expected_keys(&dets));
    assert_eq!(query(&broker, &db, &["--events"]), events, "events unchanged by the replay");
    assert_eq!(std::fs::read_dir(snaps.join("astro")).unwrap().count(), snapshot_files);

    // Filters.
    assert_eq!(query(&broker, &db, &["--label", "person"]).len() as u64, person_frames);
    assert!(query(&broker, &db, &["--camera", "elsewhere"]).is_empty());
    assert!(query(&broker, &db, &["--label", "person", "--min-score", "0.99"]).is_empty());
    assert_eq!(query(&broker, &db, &["--since", "10m", "--label", "person"]).len() as u64, person_frames);

    // The event's "started" record went to the events topic, with the same id.
    let id = people[0]["id"].as_str().unwrap().to_string();
    let records = broker.read(&t.events, 1, Duration::from_secs(20));
    let started: Vec<serde_json::Value> = records
        .iter()
        .map(|m| serde_json::from_slice(rdkafka::Message::payload(m).unwrap()).unwrap())
        .filter(|r: &serde_json::Value| r["state"] == "started" && r["label"] == "person")
        .collect();
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0]["id"], id.as_str());

    // `show` prints the event and writes its snapshots, best first, as annotated JPEGs of the frame.
    let out_dir = dir.path().join("show");
    let show =
        broker.cmd("subscribe").args(["show", &id, "--db", &db, "--out", out_dir.to_str().unwrap()]).output().unwrap();
    assert!(show.status.success(), "{}", stderr(&show));
    let printed = stdout(&show);
    assert!(printed.contains("camera     astro") && printed.contains("label      person"), "{printed}");
    let written: Vec<PathBuf> = std::fs::read_dir(&out_dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(
        written.iter().any(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("{id}-best-"))),
        "{written:?}"
    );
    for p in &written {
        let bytes = std::fs::read(p).unwrap();
        assert_eq!(&bytes[..2], &[0xFF, 0xD8], "{} is a JPEG", p.display());
        // The JPEG's SOF0/SOF2 header says 512x512: the snapshot is the detected frame at full size.
        let sof = bytes.windows(2).position(|w| w[0] == 0xFF && (w[1] == 0xC0 || w[1] == 0xC2)).unwrap();
        let h = u16::from_be_bytes([bytes[sof + 5], bytes[sof + 6]]);
        let w = u16::from_be_bytes([bytes[sof + 7], bytes[sof + 8]]);
        assert_eq!((w, h), (512, 512));
    }
    // The web page shows the event with its images by id.
    let addr = format!("127.0.0.1:{}", free_port());
    let _web = broker.service("subscribe", &["web", "--listen", &addr, "--db", &db, "--topic", &t.detections]);
    wait_listening(&addr);
    let (status, _, page) = http_get(&addr, &format!("/events/{id}"), None).unwrap();
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("astro") && page.contains("person"), "{page}");
    assert!(page.contains(&format!("<img src=\"/snapshots/{id}/0\"")), "{page}");
    let (status, head, _) = http_get(&addr, &format!("/snapshots/{id}/0"), None).unwrap();
    assert_eq!(status, 200);
    assert!(head.to_ascii_lowercase().contains("content-type: image/jpeg"), "{head}");
    let (status, _, listed) = http_get(&addr, "/api/events?label=person", None).unwrap();
    assert_eq!(status, 200);
    assert!(listed.contains(&id), "{listed}");
    assert_eq!(http_get(&addr, "/events/nope", None).unwrap().0, 404);

    let missing = broker.cmd("subscribe").args(["show", "nope", "--db", &db]).output().unwrap();
    assert!(!missing.status.success() && stderr(&missing).contains("no event \"nope\""), "{}", stderr(&missing));
}

#[test]
fn slow_sqlite_store_killed_mid_stream_loses_nothing_and_doubles_nothing() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let t = Topics::new();
    let dets = detect_all(&broker, &t, "bikes", &media("bikes.mp4"), &["--fps", "10"], 100);
    let db = format!("sqlite://{}/fw.db", dir.path().display());
    let snaps = dir.path().join("snaps");
    let group = unique("store");
    let mut args = t.store_args(&db, &group, snaps.to_str().unwrap());
    // Small batches so that the kill lands between commits.
    args.extend(["--max-batch", "3", "--batch-wait", "20ms", "--snapshot-classes", "person,bicycle,car"]);
    // Static membership: tansu (like Kafka until the session times out) keeps a killed member's partitions
    // until the same instance comes back.
    args.extend(["--instance-id", "store-1"]);
    let store = broker.service("subscribe", &args);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = try_query(&broker, &db).len();
        if n > 20 {
            break;
        }
        assert!(Instant::now() < deadline, "store wrote nothing in 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    store.kill();
    let partial = query(&broker, &db, &[]).len();
    let expected = expected_keys(&dets);
    assert!(partial < expected.len(), "the kill came mid-stream ({partial} of {} rows)", expected.len());

    // The killed member's partitions come back once the same instance rejoins; that can take a few
    // seconds, so this run waits longer for its first message than the others.
    let mut args = t.store_args(&db, &group, snaps.to_str().unwrap());
    args.extend(["--snapshot-classes", "person,bicycle,car", "--instance-id", "store-1", "--idle-exit", "20s"]);
    let after = broker.cmd("subscribe").args(&args).output().unwrap();
    assert!(after.status.success(), "{}", stderr(&after));
    eprintln!("restarted store: {}", stderr(&after));
    let rows = box_keys(&query(&broker, &db, &[]));
    assert_eq!(rows, expected, "every box once after the restart");
    // Every event ended or open exactly once: ids are unique and frames add up per label.
    let events = query(&broker, &db, &["--events"]);
    let ids: BTreeSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len());
    Tally::compare(expected, rows).report("store SIGKILLed mid-stream, restarted (rows = boxes)");
}

/// A webhook receiver that answers 500 to the first call and 200 after: the store must retry.
struct Webhook {
    port: u16,
    bodies: Arc<Mutex<Vec<String>>>,
    calls: Arc<Mutex<u32>>,
}

impl Webhook {
    fn start() -> Webhook {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let calls = Arc::new(Mutex::new(0u32));
        let (b, c) = (bodies.clone(), calls.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                let _ = r.read_exact(&mut body);
                let mut n = c.lock().unwrap();
                *n += 1;
                let status = if *n == 1 { "500 Internal Server Error" } else { "200 OK" };
                if *n > 1 {
                    b.lock().unwrap().push(String::from_utf8_lossy(&body).into_owned());
                }
                let _ = write!(s, "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            }
        });
        Webhook { port, bodies, calls }
    }
}

#[test]
fn alert_rules_fire_on_zone_duration_and_score_and_call_the_webhook() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("astronaut.mp4");
    still_clip(&media("astronaut.png"), 3, 5, &clip);
    let t = Topics::new();
    // Real-time pacing: capture times span the clip's 3 s, which is what rule durations are measured in.
    let dets = detect_all(&broker, &t, "astro", &clip, &["--realtime"], 15);
    let person_score =
        dets.iter().flat_map(|d| &d.boxes).filter(|b| b.label == "person").map(|b| b.score).fold(0.0, f32::max);
    assert!(person_score > 0.3 && person_score < 0.95, "astronaut scores {person_score}");
    let hook = Webhook::start();
    // The astronaut's box centre is about (0.39, 0.51) of the frame.
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        format!(
            r#"
[[rule]]
name = "in-zone"
camera = "astro"
label = "person"
min_score = 0.3
min_duration = "1s"
zone = [[0.1, 0.1], [0.7, 0.1], [0.7, 0.9], [0.1, 0.9]]
webhook = "http://127.0.0.1:{port}/hook"

[[rule]]
name = "outside-zone"
label = "person"
zone = [[0.8, 0.8], [1.0, 0.8], [1.0, 1.0], [0.8, 1.0]]

[[rule]]
name = "too-short"
label = "person"
min_duration = "30s"

[[rule]]
name = "too-strict"
label = "person"
min_score = 0.95

[[rule]]
name = "other-camera"
camera = "yard"
label = "person"
"#,
            port = hook.port
        ),
    )
    .unwrap();
    let db = format!("sqlite://{}/fw.db", dir.path().display());
    let out = store_once(
        &broker,
        &t,
        &db,
        &unique("store"),
        dir.path().join("s").to_str().unwrap(),
        &["--rules", rules.to_str().unwrap()],
    );
    assert!(stderr(&out).contains("1 alerts"), "{}", stderr(&out));

    let alerts: Vec<serde_json::Value> = read_all(&broker, &t.alerts, Duration::from_secs(10))
        .iter()
        .map(|m| serde_json::from_slice(rdkafka::Message::payload(m).unwrap()).unwrap())
        .collect();
    assert_eq!(alerts.len(), 1, "only the in-zone rule fires, once: {alerts:?}");
    let a = &alerts[0];
    assert_eq!(
        (a["rule"].as_str(), a["camera"].as_str(), a["label"].as_str()),
        (Some("in-zone"), Some("astro"), Some("person"))
    );
    assert!(a["duration_ms"].as_i64().unwrap() >= 1000, "{a}");
    // The alert fired on the first frame past 1 s, not at the end of the clip.
    assert!(a["duration_ms"].as_i64().unwrap() < 1600, "{a}");

    // The webhook got the same record after one failed attempt (the store retries).
    let deadline = Instant::now() + Duration::from_secs(20);
    while hook.bodies.lock().unwrap().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let bodies = hook.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let posted: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(&posted, a);
    assert_eq!(*hook.calls.lock().unwrap(), 2, "one failure, one success");

    // A bad rules file is refused with the file and the key named.
    std::fs::write(&rules, "[[rule]]\nname = \"x\"\nlabel = \"person\"\nzonee = []\n").unwrap();
    let mut args = t.store_args(&db, "g", "off");
    args.extend(["--rules", rules.to_str().unwrap()]);
    let bad = broker.cmd("subscribe").args(&args).output().unwrap();
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("rules.toml") && stderr(&bad).contains("zonee"), "{}", stderr(&bad));
}

#[test]
fn slow_postgres_store_survives_a_database_outage_and_replays_without_doubles() {
    let mut pg = Postgres::start();
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("astronaut.mp4");
    still_clip(&media("astronaut.png"), 2, 5, &clip);
    let t = Topics::new();
    let db = pg.url();
    let snaps = dir.path().join("snaps");
    let first = detect_all(&broker, &t, "astro", &clip, &[], 10);

    let group = unique("store");
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut args = vec!["--metrics-listen", &metrics];
    args.extend(t.store_args(&db, &group, snaps.to_str().unwrap()));
    args.extend(["--retry-max", "1s", "--summary-format", "json"]);
    let store = broker.service("subscribe", &args);
    let deadline = Instant::now() + Duration::from_secs(60);
    while box_keys(&try_query(&broker, &db)) != expected_keys(&first) {
        assert!(Instant::now() < deadline, "store did not write the first clip");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The database goes away while a second camera's detections arrive; it comes back once the store has
    // seen it gone (its db_up gauge) and failed a write against it.
    pg.stop();
    let second = detect_all(&broker, &t, "astro2", &clip, &[], 10);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = scrape(&metrics);
        let errors = total(&m, "framewire_store_db_errors_total").unwrap_or(0.0);
        if total(&m, "framewire_store_db_up") == Some(0.0) && errors >= 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "the store did not notice the database outage:\n{m}");
        std::thread::sleep(Duration::from_millis(100));
    }
    pg.start_server();
    let mut all = first.clone();
    all.extend(second);
    let deadline = Instant::now() + Duration::from_secs(60);
    while box_keys(&try_query(&broker, &db)) != expected_keys(&all) {
        assert!(Instant::now() < deadline, "store did not catch up after the outage");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = store.stop();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let summary = summary_json(&err, "store");
    assert_eq!(summary["frames"], 20, "{err}");
    let retries = summary["db_retries"].as_u64().unwrap_or_else(|| panic!("{summary}"));
    assert!(retries >= 1, "the outage was noticed and retried: {err}");

    // Replay into the same database: same rows, same events.
    let events = query(&broker, &db, &["--events"]);
    assert_eq!(events.iter().filter(|e| e["label"] == "person").count(), 2, "one event per camera: {events:?}");
    let replay = store_once(&broker, &t, &db, &unique("store"), snaps.to_str().unwrap(), &[]);
    assert!(stderr(&replay).contains("stored 0 frames"), "{}", stderr(&replay));
    let rows = box_keys(&query(&broker, &db, &[]));
    assert_eq!(rows, expected_keys(&all));
    assert_eq!(query(&broker, &db, &["--events"]), events);
    Tally::compare(expected_keys(&all), rows)
        .report("PostgreSQL stopped under the store, back after its first failed write (rows = boxes)");
}

/// A PostgreSQL database made before the store recorded schema versions: `query` and `show` migrate it on
/// open (recording version 1, changing no table) and read its rows back as they were.
#[test]
fn postgres_database_from_before_schema_versions_is_migrated_and_read_back() {
    let pg = Postgres::start();
    let db = pg.url();
    // Migration 1 is that schema to the letter.
    let schema = include_str!("../../subscribe/src/repo/migrations/0001-schema-before-versions.sql")
        .replace("{serial_key}", "BIGSERIAL PRIMARY KEY");
    pg.psql(&schema);
    pg.psql(
        "INSERT INTO frames VALUES ('door', 2, 'm@1', 1002, 1003, 1004, 640, 480, 7.5, 0, 41, 1, '/gone/2.jpg');
         INSERT INTO boxes VALUES ('door', 2, 'm@1', 0, 'person', 0, 0.5, 0.0, 1.0, 10.0, 11.0, 1002);
         INSERT INTO events VALUES ('e1', '', 'door', 'm@1', 'person', 1001, 1002, 1, 2, 2, 0.5, 2,
                                    '/gone/2.jpg', 0.5, 0, 0, 0.0, 1.0, 10.0, 11.0);
         INSERT INTO outbox (kind, target, msg_key, payload, attempts, created_ms)
                     VALUES ('kafka', 'events', 'door', '{}', 0, 1004);",
    );
    let run = |args: &[&str]| {
        let out = Command::new(bin("subscribe")).args(args).args(["--db", &db]).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    let rows: Vec<serde_json::Value> =
        run(&["query", "--json"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(
        rows,
        vec![serde_json::json!({"camera": "door", "seq": 2, "model": "m@1", "capture_ms": 1002, "label": "person",
            "score": 0.5, "box": [0.0, 1.0, 10.0, 11.0], "snapshot": "/gone/2.jpg"})]
    );
    let events: Vec<serde_json::Value> =
        run(&["query", "--events", "--json"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(
        events,
        vec![serde_json::json!({"id": "e1", "scope": "", "camera": "door", "model": "m@1", "label": "person",
            "start_ms": 1001, "end_ms": 1002, "start_seq": 1, "end_seq": 2, "frames": 2, "peak_score": 0.5,
            "peak_seq": 2, "best_snapshot": "/gone/2.jpg", "best_score": 0.5, "open": false, "alerted": false,
            "box": [0.0, 1.0, 10.0, 11.0]})]
    );
    let dir = tempfile::tempdir().unwrap();
    let shown = run(&["show", "e1", "--out", dir.path().to_str().unwrap()]);
    assert!(shown.contains("camera     door") && shown.contains("/gone/2.jpg"), "{shown}");
    let versions = pg.psql("SELECT version FROM schema_version ORDER BY version");
    assert_eq!(versions.split_whitespace().collect::<Vec<_>>(), ["1", "2"], "migrated once, however often opened");
    assert_eq!(pg.psql("SELECT count(*) FROM outbox").trim(), "1", "rows untouched");

    // The web view's review pages run their own SQL (row-value keysets, counts per hour): on PostgreSQL too.
    pg.psql(
        "INSERT INTO events VALUES ('e2', '', 'door', 'm@1', 'person', 1001, 1500, 3, 4, 2, 0.9, 4,
                                    NULL, 0.9, 0, 0, 0.0, 1.0, 10.0, 11.0);
         INSERT INTO cursors VALUES ('', 'door', 'm@1', 2);",
    );
    let broker = Broker::start();
    let addr = format!("127.0.0.1:{}", free_port());
    let _web = broker.service("subscribe", &["web", "--listen", &addr, "--db", &db]);
    wait_listening(&addr);
    let get = |path: &str| {
        let (status, _, body) = http_get(&addr, path, None).unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        body
    };
    let ids = |path: &str| -> Vec<String> {
        let rows: Vec<serde_json::Value> = serde_json::from_str(&get(path)).unwrap();
        rows.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
    };
    // Two events that started in the same millisecond: the id orders them, and each page holds one.
    assert_eq!(ids("/api/events?limit=1"), ["e2"]);
    assert_eq!(ids("/api/events?limit=1&before=1001-e2"), ["e1"]);
    assert!(ids("/api/events?limit=1&before=1001-e1").is_empty());
    assert_eq!(ids("/api/events?limit=5&after=1001-e1"), ["e2"]);
    assert_eq!(ids("/api/events?min_score=0.8"), ["e2"]);
    let review = get("/review?limit=1");
    assert!(review.contains("data-id=\"e2\"") && review.contains("id=\"older\""), "{review}");
    let cams: serde_json::Value = serde_json::from_str(&get("/api/cameras")).unwrap();
    assert_eq!(cams[0]["camera"], "door");
    assert_eq!(cams[0]["snapshot_url"], "/stored/door/2");
    let counts: serde_json::Value = serde_json::from_str(&get("/api/cameras/door/counts?hours=168")).unwrap();
    assert_eq!(counts["hours"].as_array().unwrap().len(), 168);
    let page = get("/events/e2");
    assert!(page.contains("id=\"prev-event\" rel=\"prev\" href=\"/events/e1\""), "{page}");
    assert!(get("/cameras/door").contains("<svg id=\"timeline\""));
}

/// A small tmpfs (root only): a disk that fills up, or that can be remounted read-only.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run mount ({e}): install util-linux (`make setup`)"));
        assert!(
            out.status.success(),
            "cannot mount a tmpfs at {}: {}this test fills and remounts a small tmpfs, which needs root (or \
             CAP_SYS_ADMIN): run the tests as root",
            dir.display(),
            stderr(&out)
        );
        Tmpfs(dir.to_path_buf())
    }

    fn read_only(&self) {
        assert!(Command::new("mount").args(["-o", "remount,ro"]).arg(&self.0).status().unwrap().success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Runs a store with a metrics endpoint until every detection is stored; returns (stderr, metrics).
fn store_until_stored(
    broker: &Broker,
    t: &Topics,
    db: &str,
    snaps: &Path,
    want: &[(String, u64, String)],
) -> (String, String) {
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut args = vec!["--metrics-listen", &metrics];
    let group = unique("store");
    args.extend(t.store_args(db, &group, snaps.to_str().unwrap()));
    args.extend(["--snapshot-interval", "0s"]);
    let store = broker.service("subscribe", &args);
    let deadline = Instant::now() + Duration::from_secs(60);
    while box_keys(&try_query(broker, db)) != want {
        assert!(Instant::now() < deadline, "store did not store every detection");
        std::thread::sleep(Duration::from_millis(200));
    }
    let scraped = scrape(&metrics);
    let out = store.stop();
    assert!(out.status.success(), "store must not crash: {}", stderr(&out));
    (stderr(&out), scraped)
}

#[test]
fn full_or_read_only_snapshot_disk_is_reported_and_detections_are_still_stored() {
    let (broker, dir, t, dets) = astronaut_detected();
    let want = expected_keys(&dets);
    let snaps = dir.path().join("snaps");
    let disk = Tmpfs::mount(&snaps, "120k");

    // Full: a few snapshots fit, the rest fail with "disk_full"; every detection is stored regardless.
    let (err, metrics) =
        store_until_stored(&broker, &t, &format!("sqlite://{}/full.db", dir.path().display()), &snaps, &want);
    assert!(err.contains("kind=\"disk_full\""), "{err}");
    assert!(metrics.contains("framewire_store_snapshot_errors_total{reason=\"disk_full\"}"), "{metrics}");
    let failed = metrics
        .lines()
        .find_map(|l| l.strip_prefix("framewire_store_snapshot_errors_total{reason=\"disk_full\"} "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap();
    assert!(failed >= 1.0, "{metrics}");
    assert!(total(&metrics, "framewire_store_snapshots_total").unwrap() >= 1.0, "the first snapshots fit");
    // No half-written files are left behind.
    for e in std::fs::read_dir(snaps.join("astro")).unwrap() {
        let p = e.unwrap().path();
        assert_eq!(p.extension().unwrap(), "jpg", "{}", p.display());
    }

    // Read-only: every snapshot fails with "read_only"; every detection is stored.
    disk.read_only();
    let (err, metrics) =
        store_until_stored(&broker, &t, &format!("sqlite://{}/ro.db", dir.path().display()), &snaps, &want);
    assert!(err.contains("kind=\"read_only\""), "{err}");
    let ro = metrics
        .lines()
        .find_map(|l| l.strip_prefix("framewire_store_snapshot_errors_total{reason=\"read_only\"} "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap();
    assert!(ro >= 1.0, "{metrics}");
    assert_eq!(total(&metrics, "framewire_store_snapshots_total"), Some(0.0), "{metrics}");
    // Both runs' rows (each into its own database) against the boxes on the topic, once per run.
    let rows: Vec<_> = ["full", "ro"]
        .iter()
        .flat_map(|db| box_keys(&query(&broker, &format!("sqlite://{}/{db}.db", dir.path().display()), &[])))
        .collect();
    Tally::compare(want.iter().chain(&want), &rows).report("snapshot disk full, then read-only (rows = boxes)");
}
