//! A bucket prefix as a polled camera (`ingest --camera ID=s3://bucket/prefix/ --watch`), against a real S3
//! server (moto) and a real broker: objects in key order, objects uploaded while ingest runs, an object that
//! is not an image skipped and counted, a bucket that does not exist refused at start.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::s3::{S3Server, SECRET_KEY};
use common::*;

/// A bucket name S3 accepts (lower case, at most 63 characters) that no other test uses.
fn bucket_name() -> String {
    let mut name = unique("fw").to_ascii_lowercase();
    name.truncate(63);
    name
}

#[test]
fn a_watched_bucket_prefix_is_read_in_key_order_and_objects_uploaded_meanwhile_are_found() {
    let broker = Broker::start();
    let s3 = S3Server::start();
    let bucket = bucket_name();
    s3.create_bucket(&bucket);
    let (etag_astronaut, modified_astronaut) = s3.put(&bucket, "cam/1-astronaut.png", &media("astronaut.png"));
    let (etag_rocket, _) = s3.put(&bucket, "cam/2-rocket.jpg", &media("rocket.jpg"));
    // Beside the prefix: never read.
    s3.put(&bucket, "other/0-astronaut.png", &media("astronaut.png"));

    let topic = unique("frames");
    let source = format!("yard=s3://{bucket}/cam/");
    let mut cmd = broker.cmd("ingest");
    s3.env(&mut cmd);
    cmd.args(["--camera", &source, "--watch", "--watch-interval", "500ms", "--topic", &topic])
        .args(["--summary-format", "json"]);
    let ingest = Service::spawn(cmd);

    let first = broker.read_frames(&topic, 2, Duration::from_secs(60));
    assert_eq!(first.len(), 2, "the objects already in the bucket were not published");

    // While it runs: an object that is not an image, then an image, both after the last key read.
    let notes = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(notes.path(), "not an image\n").unwrap();
    s3.put(&bucket, "cam/3-notes.txt", notes.path());
    let (etag_chelsea, _) = s3.put(&bucket, "cam/4-chelsea.png", &media("chelsea.png"));
    let frames = broker.read_frames(&topic, 3, Duration::from_secs(60));
    let out = ingest.stop();
    let (printed, err) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{err}");
    assert_eq!(frames.len(), 3, "the image uploaded while ingest watched was not published: {err}");

    let keys: Vec<&str> = frames.iter().map(|f| f.object.as_ref().expect("object").key.as_str()).collect();
    assert_eq!(keys, ["cam/1-astronaut.png", "cam/2-rocket.jpg", "cam/4-chelsea.png"]);
    assert_eq!(frames.iter().map(|f| f.seq).collect::<Vec<_>>(), [0, 1, 2]);
    for (frame, etag) in frames.iter().zip([&etag_astronaut, &etag_rocket, &etag_chelsea]) {
        let object = frame.object.as_ref().unwrap();
        assert_eq!(frame.camera_id, "yard");
        assert_eq!(
            (object.bucket.as_str(), object.etag.as_str(), object.frame_index),
            (bucket.as_str(), etag.as_str(), 0)
        );
        assert_eq!(frame.source_uri, format!("s3://{bucket}/{}", object.key));
    }
    assert_eq!(frames[0].object.as_ref().unwrap().event_time_ms, modified_astronaut, "last-modified of the object");
    assert_eq!((frames[0].width, frames[0].height), (512, 512));

    // The text object: named in a warning, counted as skipped; the exit summary counts what was published.
    assert!(err.lines().any(|l| l.contains("cam/3-notes.txt") && l.contains("skipped")), "{err}");
    assert_eq!(ingest_count(&printed, "yard", "published"), 3);
    assert_eq!(ingest_count(&printed, "yard", "skipped"), 1);
    assert!(!printed.contains(SECRET_KEY) && !err.contains(SECRET_KEY), "the secret key was printed");

    let tally = Tally::published(&broker, &topic, "yard", 3, Duration::from_secs(20));
    assert_eq!((tally.frames_in, tally.lost, tally.duplicates), (3, 0, 0), "{tally:?}");
    tally.report("watched bucket prefix, objects uploaded while running, a non-image skipped");
}

#[test]
fn a_bucket_that_does_not_exist_fails_at_start_naming_the_bucket() {
    let broker = Broker::start();
    let s3 = S3Server::start();
    let bucket = bucket_name();
    let topic = unique("frames");
    let mut cmd = broker.cmd("ingest");
    s3.env(&mut cmd);
    cmd.args(["--camera", &format!("yard=s3://{bucket}/cam/"), "--watch", "--topic", &topic]);
    let started = Instant::now();
    let out = cmd.output().unwrap();
    let took = started.elapsed();
    let err = stderr(&out);
    assert!(!out.status.success(), "ingest accepted a missing bucket: {err}");
    assert!(err.contains(&format!("there is no bucket {bucket} (check its name")), "{err}");
    assert!(!err.contains(SECRET_KEY), "{err}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    println!("missing bucket refused in {:.2} s: {}", took.as_secs_f64(), err.lines().last().unwrap_or_default());
    Tally::untouched(&broker, &topic).report("bucket that does not exist (refused at start)");
}
