//! Bad input gets a clear message, a non-zero exit, and loses nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

#[test]
fn missing_file_and_non_video_fail_before_touching_kafka() {
    // No broker at all: the source error must come first, and fast.
    let no_broker = |args: &[&str]| {
        std::process::Command::new(bin("ingest"))
            .args(args)
            .env("FRAMEWIRE_BROKERS", "127.0.0.1:1")
            .env("FRAMEWIRE_METRICS_LISTEN", "off")
            .output()
            .unwrap()
    };
    let out = no_broker(&["/nonexistent/clip.mp4"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("source /nonexistent/clip.mp4 does not exist"), "{}", stderr(&out));

    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "this is not a video\n").unwrap();
    let out = no_broker(&[text.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cannot open") && stderr(&out).contains("notes.mp4"), "{}", stderr(&out));

    // With a broker there, the same errors leave its topic empty.
    let broker = Broker::start();
    let topic = unique("frames");
    for source in ["/nonexistent/clip.mp4", text.to_str().unwrap()] {
        let out = broker.ingest(&["--topic", &topic, source]);
        assert!(!out.status.success(), "{source}: {}", stdout(&out));
    }
    Tally::untouched(&broker, &topic).report("missing file; random bytes named .mp4 (clear error, Kafka untouched)");
}

#[test]
fn an_empty_file_and_an_audio_only_file_are_clear_errors() {
    let no_broker = |path: &std::path::Path| {
        std::process::Command::new(bin("ingest"))
            .arg(path)
            .env("FRAMEWIRE_BROKERS", "127.0.0.1:1")
            .env("FRAMEWIRE_METRICS_LISTEN", "off")
            .output()
            .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let out = no_broker(&empty);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot open") && stderr(&out).contains("empty.mp4 as video: the file is empty"),
        "{}",
        stderr(&out)
    );

    let audio = dir.path().join("tone.m4a");
    let st = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=1"])
        .arg(&audio)
        .status()
        .unwrap();
    assert!(st.success());
    let out = no_broker(&audio);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("tone.m4a has no video stream"), "{}", stderr(&out));

    let broker = Broker::start();
    let topic = unique("frames");
    for source in [&empty, &audio] {
        let out = broker.ingest(&["--topic", &topic, source.to_str().unwrap()]);
        assert!(!out.status.success(), "{}: {}", source.display(), stdout(&out));
    }
    Tally::untouched(&broker, &topic).report("zero-byte file; audio-only file (clear errors)");
}

#[test]
fn a_video_with_damaged_frames_publishes_the_rest_and_counts_the_loss() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    // Garbage written over 40 places in the middle of the media data (the index stays intact).
    let mut bytes = std::fs::read(media("bikes.mp4")).unwrap();
    let n = bytes.len();
    let mut x: u64 = 42;
    for _ in 0..40 {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let at = n / 4 + (x >> 33) as usize % (n / 2);
        for b in &mut bytes[at..(at + 200).min(n)] {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            *b = (x >> 56) as u8;
        }
    }
    let damaged = dir.path().join("damaged.mp4");
    std::fs::write(&damaged, &bytes).unwrap();
    let topic = unique("frames");
    let printed = broker.ingest_ok("damaged", &topic, &damaged, &["--summary-format", "json"]);
    let published = ingest_count(&printed, "damaged", "published");
    let lost = ingest_count(&printed, "damaged", "damaged");
    assert!(lost > 0, "{printed}");
    assert_eq!(published + lost, 250, "every one of the 250 frames is published or counted as lost: {printed}");
    let tally = Tally::published(&broker, &topic, "damaged", published, Duration::from_secs(20));
    assert_eq!((tally.frames_out, tally.lost, tally.duplicates), (published, 0, 0), "{tally:?}");
    tally.report(&format!("video with damaged frames ({lost} lost to damage, counted)"));
}

#[test]
fn unreachable_broker_is_a_bounded_wait_and_a_clear_error() {
    // A broker that is down (its port refuses connections) and comes back after ingest gave up: nothing
    // half-sent turns up in it later.
    let mut broker = Broker::start();
    broker.kill();
    let topic = unique("frames");
    // Timed from the command built: building it may wait for the binaries to be built.
    let mut cmd = broker.cmd("ingest");
    cmd.args(["--connect-timeout", "2s", "--topic", &topic]).arg(media("bikes.mp4"));
    let started = Instant::now();
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    assert!(started.elapsed() < Duration::from_secs(20), "waited {:?}", started.elapsed());
    assert!(stderr(&out).contains(&format!("cannot reach Kafka at {}", broker.addr)), "{}", stderr(&out));
    broker.restart();
    Tally::untouched(&broker, &topic).report("unreachable broker (bounded wait, clear error)");
}

#[test]
fn truncated_video_publishes_frames_before_the_cut_then_fails() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    // Index at the front (faststart), so the first half stays decodable when the file is cut.
    let whole = dir.path().join("whole.mp4");
    let st = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(media("bikes.mp4"))
        .args(["-c", "copy", "-movflags", "+faststart"])
        .arg(&whole)
        .status()
        .unwrap();
    assert!(st.success());
    let bytes = std::fs::read(&whole).unwrap();
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();

    let topic = unique("frames");
    let out = broker.ingest(&["--camera", "cut", "--topic", &topic, cut.to_str().unwrap()]);
    assert!(!out.status.success(), "a truncated file must not exit 0");
    let err = stderr(&out);
    assert!(err.contains("truncated"), "{err}");
    let published: usize = err
        .split("the file is truncated (")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no frame count in {err}"));
    assert!(published > 50 && published < 250, "{published} frames before the cut");
    let tally = Tally::published(&broker, &topic, "cut", published as u64, Duration::from_secs(20));
    assert_eq!((tally.lost, tally.duplicates), (0, 0), "every frame before the cut is on the topic once: {tally:?}");
    tally.report("video truncated mid-frame (frames before the cut published, exit 1)");
}

/// Runs detect with `args` (reading `input` as `group`, writing `output`) against `broker`; it must fail.
/// Returns what it printed.
fn detect_fails(broker: &Broker, (input, output, group): (&str, &str, &str), args: &[&str]) -> String {
    let out = broker
        .cmd("detect")
        .args(["--input-topic", input, "--output-topic", output, "--group", group])
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "detect {args:?} should fail");
    stderr(&out)
}

#[test]
fn detect_rejects_a_missing_model_and_a_model_whose_outputs_do_not_fit() {
    // Frames wait on the input; each refused start must leave them there for a detect that works.
    let broker = Broker::start();
    let (input, output, group) = (unique("frames"), unique("detections"), unique("group"));
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("a.mp4");
    still_clip(&media("astronaut.png"), 1, 2, &clip);
    broker.ingest_ok("a", &input, &clip, &[]);
    let topics = (input.as_str(), output.as_str(), group.as_str());

    let err = detect_fails(&broker, topics, &["--model", "/nonexistent/model.onnx"]);
    assert!(err.contains("model file /nonexistent/model.onnx does not exist"), "{err}");

    // The real model with a decoder description that swaps its outputs.
    let spec = std::fs::read_to_string(root().join("models/ssdlite_mobilenet_v2_coco.toml"))
        .unwrap()
        .replace("scores = \"Postprocessor/Slice:0\"", "scores = \"SWAP\"")
        .replace("boxes = \"Postprocessor/ExpandDims_1:0\"", "boxes = \"Postprocessor/Slice:0\"")
        .replace("scores = \"SWAP\"", "scores = \"Postprocessor/ExpandDims_1:0\"")
        .replace("labels = \"", &format!("labels = \"{}/models/", root().display()));
    let spec_path = dir.path().join("swapped.toml");
    std::fs::write(&spec_path, spec).unwrap();
    let err = detect_fails(
        &broker,
        topics,
        &["--model", model().to_str().unwrap(), "--model-config", spec_path.to_str().unwrap()],
    );
    assert!(err.contains("SSD decoder expects"), "{err}");
    // A file that is not ONNX at all.
    let junk = dir.path().join("junk.onnx");
    std::fs::write(&junk, b"not an onnx model").unwrap();
    let err = detect_fails(&broker, topics, &["--model", junk.to_str().unwrap()]);
    assert!(err.contains(&format!("cannot load model {}", junk.display())), "{err}");
    Tally::untouched(&broker, &output);

    // The same group with the right model picks up every frame the refused starts left.
    let detect = broker.detect(&input, &output, &group);
    let tally = Tally::measure(&broker, &input, &output, Duration::from_secs(60));
    drop(detect);
    assert_eq!((tally.frames_in, tally.frames_out, tally.duplicates), (2, 2, 0), "{tally:?}");
    tally.report("model missing / not ONNX / outputs fit no decoder (clear errors)");
}

#[test]
fn a_dead_letter_too_large_for_its_topic_is_cut_short_and_the_partition_moves_on() {
    let broker = Broker::start();
    let (input, output) = (unique("frames"), unique("detections"));
    let dlq = format!("{input}.dlq");
    // The producer's own size limit refuses with the same error as a dead-letter topic whose
    // max.message.bytes is smaller than the input topic's, and works on any broker.
    let limit = ["-X", "message.max.bytes=20000"];
    let detect = broker.detect_with(&input, &output, &unique("group"), &limit);

    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("a.mp4");
    still_clip(&media("astronaut.png"), 1, 2, &clip);
    broker.ingest_ok("a", &input, &clip, &[]);
    // 300 kB that are not a Frame (a zero tag byte is never valid protobuf), between good frames.
    let big: Vec<u8> = std::iter::once(0u8).chain((1..300_000u32).map(|i| (i * 7 % 251) as u8)).collect();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("message.max.bytes", "1000000")
        .create()
        .unwrap();
    producer.send(BaseRecord::to(&input).key("big").payload(&big)).unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    broker.ingest_ok("b", &input, &clip, &[]);

    let dead = broker.read(&dlq, 1, Duration::from_secs(60));
    assert_eq!(dead.len(), 1);
    let payload = dead[0].payload().unwrap();
    assert!(!payload.is_empty() && payload.len() < 20_000, "cut to fit: {} bytes", payload.len());
    assert_eq!(payload, &big[..payload.len()], "the start of the original is kept");
    let headers = dead[0].headers().unwrap();
    let get = |name: &str| headers.iter().find(|h| h.key == name).and_then(|h| h.value).map(|v| v.to_vec());
    assert_eq!(get("framewire-dlq-original-bytes").as_deref(), Some(&b"300000"[..]));
    let reason = String::from_utf8(get("framewire-dlq-reason").unwrap()).unwrap();
    assert!(reason.contains("not a protobuf Frame"), "{reason}");

    let results = broker.read_detections(&output, 4, Duration::from_secs(60));
    assert_eq!(results.len(), 4, "frames after the refused dead letter are detected");
    let out = detect.stop();
    assert!(stderr(&out).contains("sending it cut short"), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("detected 4 frames, 1 dead-lettered"), "{out:?}");
    let tally = Tally::measure(&broker, &input, &output, Duration::from_secs(20));
    assert_eq!((tally.frames_in, tally.frames_out, tally.duplicates), (5, 5, 0), "{tally:?}");
    tally.report("dead letter too large for its topic (cut short, partition moves on)");
}

#[test]
fn bad_messages_go_to_the_dead_letter_topic_and_good_frames_still_flow() {
    let broker = Broker::start();
    let (input, output) = (unique("frames"), unique("detections"));
    let dlq = format!("{input}.dlq");
    let _detect = broker.detect(&input, &output, &unique("group"));

    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("a.mp4");
    still_clip(&media("astronaut.png"), 1, 2, &clip);
    broker.ingest_ok("a", &input, &clip, &[]);

    // A valid Frame taken from the topic, then damaged three ways.
    let frames = broker.read(&input, 2, Duration::from_secs(10));
    let valid = framewire_proto::decode_frame(frames[0].payload().unwrap()).unwrap();
    let mut truncated = valid.clone();
    truncated.image.truncate(valid.image.len() / 3);
    truncated.seq = 100;
    let mut future = valid.clone();
    future.schema_version = 99;
    // A 20000x20000 JPEG header (SOF0: FF C0, length, precision, height, width) over a small image.
    let mut huge = valid.clone();
    huge.seq = 101;
    let sof = huge.image.windows(2).position(|w| w == [0xff, 0xc0]).expect("baseline JPEG");
    huge.image[sof + 5..sof + 9].copy_from_slice(&[0x4e, 0x20, 0x4e, 0x20]);
    // A valid protobuf of another type: Detections where a Frame belongs.
    let wrong_type =
        framewire_proto::Detections { camera_id: "a".into(), seq: 7, model_name: "m".into(), ..Default::default() };
    use prost::Message as _;
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &broker.addr).create().unwrap();
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"\x00\x01 definitely not protobuf \xff".to_vec()),
        ("truncated", truncated.encode_to_vec()),
        ("future", future.encode_to_vec()),
        ("huge", huge.encode_to_vec()),
        ("wrong-type", wrong_type.encode_to_vec()),
    ];
    for (key, payload) in &bad {
        let headers = OwnedHeaders::new().insert(Header { key: "origin", value: Some("test") });
        producer.send(BaseRecord::to(&input).key(*key).payload(payload).headers(headers)).unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    // More good frames after the bad ones.
    broker.ingest_ok("b", &input, &clip, &[]);

    let dead = broker.read(&dlq, bad.len(), Duration::from_secs(60));
    assert_eq!(dead.len(), bad.len(), "one dead letter per bad message");
    for m in &dead {
        let key = std::str::from_utf8(m.key().unwrap()).unwrap();
        let original = &bad.iter().find(|(k, _)| *k == key).unwrap().1;
        assert_eq!(m.payload().unwrap(), &original[..], "original bytes kept");
        let headers = m.headers().unwrap();
        let get = |name: &str| {
            headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(get("origin").as_deref(), Some("test"), "original headers kept");
        let reason = get("framewire-dlq-reason").unwrap();
        let source = get("framewire-dlq-source").unwrap();
        assert!(source.starts_with(&format!("{input}/")), "{source}");
        match key {
            "garbage" => {
                assert!(reason.contains("not a protobuf Frame") || reason.contains("schema_version"), "{reason}")
            }
            "truncated" => assert!(reason.contains("JPEG"), "{reason}"),
            "future" => assert!(reason.contains("schema_version 99"), "{reason}"),
            "huge" => assert!(reason.contains("20000"), "{reason}"),
            "wrong-type" => assert!(!reason.is_empty(), "{reason}"),
            _ => unreachable!(),
        }
        eprintln!("{key}: {reason}");
    }
    let results = broker.read_detections(&output, 4, Duration::from_secs(60));
    let cams: Vec<(String, u64)> = results.iter().map(|d| (d.camera_id.clone(), d.seq)).collect();
    assert_eq!(results.len(), 4, "good frames on both sides of the bad ones are detected: {cams:?}");
    for (key, _) in &bad {
        let tally = Tally::measure_keys(&broker, &input, &output, Duration::from_secs(20), |k| k == *key);
        assert_eq!((tally.frames_in, tally.frames_out, tally.lost), (1, 1, 0), "{key}: {tally:?}");
        tally.report(&format!("bad message on raw_video_frames: {key} (-> DLQ)"));
    }
}
