//! `ingest --uploads`: S3 upload notifications (MinIO's Kafka target format, byte for byte) in, frames out,
//! against a real broker, a real S3 server (moto), the real model and the real binaries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::message::Headers;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use common::s3::{S3Server, SECRET_KEY, Upload, minio_record};
use common::*;

/// `ingest --uploads` with the S3 server's environment.
fn start_ingest(broker: &Broker, s3: &S3Server, args: &[&str]) -> Service {
    let mut cmd = broker.cmd("ingest");
    s3.env(&mut cmd);
    cmd.args(args).env("RUST_LOG", "info");
    Service::spawn(cmd)
}

/// An object uploaded by the test, with the notification MinIO would publish for it.
struct Uploaded {
    key: String,
    etag: String,
    time_ms: i64,
    record: (String, String),
}

fn upload(s3: &S3Server, bucket: &str, key: &str, file: &Path) -> Uploaded {
    let (etag, time_ms) = s3.put(bucket, key, file);
    let size = std::fs::metadata(file).unwrap().len();
    let record = minio_record(&Upload { bucket, key, size, etag: &etag, time_ms });
    Uploaded { key: key.to_string(), etag, time_ms, record }
}

/// Publishes messages (key, value) to `topic`, in order, and waits for the broker's acknowledgement.
fn publish(broker: &Broker, topic: &str, messages: &[(&str, &str)]) {
    let p: BaseProducer = broker.client_config().create().unwrap();
    for (k, v) in messages {
        p.send(BaseRecord::to(topic).key(*k).payload(*v)).map_err(|(e, _)| e).unwrap();
    }
    p.flush(Duration::from_secs(10)).unwrap();
}

/// Frames on `topic` until `done` holds for them, or panics after `within` (or when ingest exits).
fn frames_until(
    broker: &Broker,
    topic: &str,
    ingest: &mut Service,
    within: Duration,
    done: impl Fn(&[framewire_proto::Frame]) -> bool,
) -> Vec<framewire_proto::Frame> {
    let deadline = Instant::now() + within;
    loop {
        ingest.assert_running();
        let frames = all_frames(broker, topic);
        if done(&frames) {
            return frames;
        }
        assert!(Instant::now() < deadline, "frames on {topic} within {within:?}: got {}", frames.len());
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn key_of(f: &framewire_proto::Frame) -> String {
    f.object.as_ref().map(|o| o.key.clone()).unwrap_or_default()
}

/// The frames table's row count (the sqlite3 CLI, not framewire's own reader).
fn stored_frames(db_path: &Path) -> u64 {
    let out = Command::new("sqlite3").arg(db_path).arg("SELECT count(*) FROM frames").output().expect("sqlite3 CLI");
    assert!(out.status.success(), "sqlite3: {}", stderr(&out));
    stdout(&out).trim().parse().unwrap()
}

fn store_once(broker: &Broker, db: &str, dets: &str, frames: &str, group: &str, dir: &Path) -> serde_json::Value {
    let snaps = dir.join("snaps");
    let out = broker
        .cmd("subscribe")
        .args(["store", "--db", db, "--topic", dets, "--frames-topic", frames, "--group", group])
        .args(["--events-topic", &unique("events"), "--alerts-topic", &unique("alerts")])
        .args(["--snapshot-dir", snaps.to_str().unwrap(), "--idle-exit", "4s", "--summary-format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "store failed: {}", stderr(&out));
    summary_json(&format!("{}{}", stdout(&out), stderr(&out)), "store")
}

fn dlq_reasons(broker: &Broker, dlq: &str, want: usize) -> Vec<(String, String)> {
    let dead = broker.read(dlq, want, Duration::from_secs(60));
    dead.iter()
        .map(|m| {
            let reason = m
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == "framewire-dlq-reason"))
                .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
                .unwrap_or_default();
            (String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(), reason)
        })
        .collect()
}

#[test]
fn uploads_become_frames_detections_and_dead_letters() {
    let broker = Broker::start();
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let bucket = unique("uploads").to_lowercase();
    s3.create_bucket(&bucket);

    // Three images and two seconds of video, the video's key with a space (MinIO escapes it as `+`).
    let clip = dir.path().join("bikes.mp4");
    let cut = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(media("bikes.mp4"))
        .args(["-t", "2", "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(&clip)
        .status()
        .expect("ffmpeg CLI (make setup installs it)");
    assert!(cut.success());
    let images = [
        upload(&s3, &bucket, "front/astronaut.png", &media("astronaut.png")),
        upload(&s3, &bucket, "back/chelsea.png", &media("chelsea.png")),
        upload(&s3, &bucket, "yard/rocket.jpg", &media("rocket.jpg")),
    ];
    let video = upload(&s3, &bucket, "drive/bikes clip.mp4", &clip);

    // What the same clip gives as a file at the same --fps: the video must give as many frames.
    let fps = "2";
    let reference = unique("reference");
    let printed = broker.ingest_ok("ref", &reference, &clip, &["--fps", fps, "--summary-format", "json"]);
    let video_frames = ingest_count(&printed, "ref", "published");
    assert!(video_frames >= 3, "2 s at 2 fps: {printed}");

    let (uploads, frames, dets) = (unique("uploads"), unique("frames"), unique("dets"));
    let dlq = format!("{uploads}.dlq");
    broker.create_topic(&uploads, 1);
    let records: Vec<(&str, &str)> =
        images.iter().chain([&video]).map(|u| (u.record.0.as_str(), u.record.1.as_str())).collect();
    publish(&broker, &uploads, &records);

    let detect = broker.detect(&frames, &dets, &unique("detect"));
    let mut ingest = start_ingest(
        &broker,
        &s3,
        &[
            "--uploads",
            &uploads,
            "--uploads-group",
            &unique("ingest"),
            "--topic",
            &frames,
            "--fps",
            fps,
            "--summary-format",
            "json",
        ],
    );
    let total = 3 + video_frames as usize;
    let got = frames_until(&broker, &frames, &mut ingest, Duration::from_secs(120), |f| f.len() >= total);
    assert_eq!(got.len(), total, "each image once, the video's sampled frames");
    let by_key: BTreeMap<String, Vec<&framewire_proto::Frame>> = got.iter().fold(BTreeMap::new(), |mut m, f| {
        m.entry(key_of(f)).or_insert_with(Vec::new).push(f);
        m
    });
    for u in images.iter().chain([&video]) {
        let fs = &by_key[&u.key];
        let want = if u.key.ends_with(".mp4") { video_frames as usize } else { 1 };
        assert_eq!(fs.len(), want, "{}", u.key);
        let camera = u.key.split('/').next().unwrap();
        for (i, f) in fs.iter().enumerate() {
            let o = f.object.as_ref().unwrap();
            assert_eq!(
                (o.bucket.as_str(), o.key.as_str(), o.etag.as_str()),
                (bucket.as_str(), u.key.as_str(), u.etag.as_str())
            );
            assert_eq!((o.frame_index as usize, o.event_time_ms), (i, u.time_ms));
            assert_eq!(f.camera_id, camera, "camera from the first folder");
            assert_eq!(f.source_uri, format!("s3://{bucket}/{}", u.key));
            assert_eq!(f.seq >> 20, u.time_ms as u64, "seq starts with the upload time");
            assert_eq!(f.seq & 0xfff, i as u64, "and ends with the frame index");
        }
    }

    // A detection for each frame; the astronaut is found in her image.
    let want: BTreeSet<(String, u64)> = got.iter().map(|f| (f.camera_id.clone(), f.seq)).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let detections = loop {
        let d = all_detections(&broker, &dets);
        if want.iter().all(|k| d.iter().any(|d| (&d.camera_id, d.seq) == (&k.0, k.1))) {
            break d;
        }
        assert!(Instant::now() < deadline, "detections for every frame: {} of {}", d.len(), want.len());
        std::thread::sleep(Duration::from_millis(300));
    };
    let astronaut = detections.iter().find(|d| d.camera_id == "front").unwrap();
    assert!(astronaut.boxes.iter().any(|b| b.label == "person"), "{:?}", astronaut.boxes);

    // A redelivered notification republishes the same seq: the store gains no row.
    let db_path = dir.path().join("fw.db");
    let db = format!("sqlite://{}", db_path.display());
    let store_group = unique("store");
    let first = store_once(&broker, &db, &dets, &frames, &store_group, dir.path());
    let rows = stored_frames(&db_path);
    assert_eq!(rows as usize, total, "{first}");
    let rocket_upload = &images[2];
    publish(&broker, &uploads, &[(rocket_upload.record.0.as_str(), rocket_upload.record.1.as_str())]);
    let again = frames_until(&broker, &frames, &mut ingest, Duration::from_secs(60), |f| f.len() > total);
    let redelivered: Vec<u64> = again.iter().filter(|f| key_of(f) == rocket_upload.key).map(|f| f.seq).collect();
    assert_eq!(redelivered.len(), 2);
    assert_eq!(redelivered[0], redelivered[1], "the same seq again");
    let deadline = Instant::now() + Duration::from_secs(60);
    while all_detections(&broker, &dets).iter().filter(|d| d.camera_id == "yard").count() < 2 {
        assert!(Instant::now() < deadline, "detect answered the redelivered frame");
        std::thread::sleep(Duration::from_millis(300));
    }
    let second = store_once(&broker, &db, &dets, &frames, &store_group, dir.path());
    assert_eq!(second["frames"], 0, "{second}");
    assert_eq!(second["duplicates"], 1, "{second}");
    assert_eq!(stored_frames(&db_path), rows, "the frames table gains no row");

    // A deleted object, a message that is no notification and S3's test event: two dead letters with their
    // reasons and a skip, and ingest goes on: a later upload still arrives.
    s3.delete(&bucket, "back/chelsea.png");
    let gone = &images[1];
    let late = upload(&s3, &bucket, "late/astronaut.png", &media("astronaut.png"));
    let test_event = format!(
        r#"{{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-01-01T00:00:00.000Z","Bucket":"{bucket}"}}"#
    );
    publish(
        &broker,
        &uploads,
        &[
            (gone.record.0.as_str(), gone.record.1.as_str()),
            ("junk", "this is not an S3 event"),
            ("test", test_event.as_str()),
            (late.record.0.as_str(), late.record.1.as_str()),
        ],
    );
    let after = frames_until(&broker, &frames, &mut ingest, Duration::from_secs(60), |f| {
        f.iter().any(|f| key_of(f) == late.key)
    });
    assert_eq!(after.iter().filter(|f| key_of(f) == late.key).count(), 1);
    let dead = dlq_reasons(&broker, &dlq, 2);
    assert_eq!(dead.len(), 2, "{dead:?}");
    // Each dead letter is the original message, unchanged, keyed as it was: the two may sit in different
    // partitions of the dead-letter topic, so they are found by content, not by order.
    let reason_of = |payload: &str| {
        let found = dead.iter().find(|(p, _)| p == payload);
        found.map(|(_, r)| r.clone()).unwrap_or_else(|| panic!("{payload} not dead-lettered unchanged: {dead:?}"))
    };
    let gone_reason = reason_of(&gone.record.1);
    assert!(gone_reason.contains("no such object") && gone_reason.contains("back/chelsea.png"), "{gone_reason}");
    let junk_reason = reason_of("this is not an S3 event");
    assert!(junk_reason.contains("not JSON"), "{junk_reason}");

    let out = ingest.stop();
    drop(detect);
    let (printed, logs) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{logs}");
    let summary = summary_json(&printed, "ingest");
    let u = &summary["uploads"];
    assert_eq!(u["notifications"], 9, "{summary}");
    assert_eq!(u["objects"], 6, "{summary}");
    assert_eq!(u["frames"], total as u64 + 2, "{summary}");
    assert_eq!(u["skipped"], 1, "{summary}");
    assert_eq!(u["dead_letters"], 2, "{summary}");
    assert!(!printed.contains(SECRET_KEY) && !logs.contains(SECRET_KEY), "the secret key was printed");
    println!(
        "uploads: {} frames from 6 objects, {} rows stored, 1 redelivery stored 0 rows, 2 dead letters",
        u["frames"], rows
    );
}

#[test]
fn uploads_and_cameras_in_one_process_is_a_clear_error() {
    let broker = Broker::start();
    let out = broker.ingest(&["--uploads", "notifications", "--camera", "door=/tmp/door.mp4"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("--uploads") && err.contains("--camera"), "{err}");
    let out = broker.ingest(&["--uploads", "notifications", "--camera-from", "{camera}"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("unknown placeholder {camera}"), "{}", stderr(&out));
}

#[test]
fn an_uploaded_image_over_the_message_size_is_shrunk_to_fit() {
    let broker = Broker::start();
    let s3 = S3Server::start();
    let bucket = unique("big").to_lowercase();
    s3.create_bucket(&bucket);
    let big = upload(&s3, &bucket, "door/astronaut.png", &media("astronaut.png"));
    let (uploads, frames) = (unique("uploads"), unique("frames"));
    broker.create_topic(&uploads, 1);
    publish(&broker, &uploads, &[(big.record.0.as_str(), big.record.1.as_str())]);
    // At quality 100 the 512x512 picture is several times the limit.
    let limit = 12_000usize;
    let limit_s = limit.to_string();
    let args = ["--uploads", &uploads, "--topic", &frames, "--jpeg-quality", "100", "--max-message-bytes", &limit_s];
    let mut ingest = start_ingest(&broker, &s3, &args);
    frames_until(&broker, &frames, &mut ingest, Duration::from_secs(60), |f| !f.is_empty());
    let out = ingest.stop();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("re-encoded"), "{}", stderr(&out));
    let msgs = read_all(&broker, &frames, Duration::from_secs(10));
    assert_eq!(msgs.len(), 1, "the image is published once, not dropped");
    let payload = rdkafka::Message::payload(&msgs[0]).unwrap();
    assert!(payload.len() <= limit, "{} > {limit}", payload.len());
    let f = framewire_proto::decode_frame(payload).unwrap();
    assert_eq!(jpeg_size(&f.image), (f.width, f.height), "width/height describe the JPEG actually sent");
    assert_eq!(f.object.as_ref().map(|o| o.key.as_str()), Some("door/astronaut.png"));
    println!(
        "uploaded 512x512 image shrunk to {} bytes ({}x{}) under a {limit}-byte limit",
        payload.len(),
        f.width,
        f.height
    );
}
