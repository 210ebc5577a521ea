//! Live sources: a real RTSP server (GStreamer) on loopback that dies and comes back, a camera that never
//! answers, image folders (watched), several cameras in one process, oversized frames.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use framewire_proto::Frame;

fn by_camera(frames: Vec<Frame>) -> BTreeMap<String, Vec<Frame>> {
    let mut m: BTreeMap<String, Vec<Frame>> = BTreeMap::new();
    for f in frames {
        m.entry(f.camera_id.clone()).or_default().push(f);
    }
    m
}

#[test]
fn slow_an_rtsp_camera_that_dies_is_reconnected_and_the_gap_shows_while_another_camera_keeps_publishing() {
    let broker = Broker::start();
    let topic = unique("frames");
    let mut door = RtspServer::start(free_port());
    let yard = RtspServer::start(free_port());
    let fps = 5.0;
    let ingest = broker.service(
        "ingest",
        &[
            "--camera",
            &format!("door={}", door.url()),
            "--camera",
            &format!("yard={}", yard.url()),
            "--fps",
            "5",
            "--reconnect-min",
            "200ms",
            "--reconnect-max",
            "1s",
            "--stall-timeout",
            "3s",
            "--topic",
            &topic,
            "--summary-format",
            "json",
        ],
    );
    // Both cameras stream.
    let t0 = Instant::now();
    let seen = |cam: &str, n: usize| {
        let cam = cam.to_string();
        move |msgs: &[rdkafka::message::OwnedMessage]| {
            msgs.iter().filter(|m| rdkafka::Message::key(*m) == Some(cam.as_bytes())).count() >= n
        }
    };
    let before = broker.read_until(&topic, Duration::from_secs(30), seen("door", 10));
    assert!(before.len() >= 10, "door never streamed ({:?})", t0.elapsed());

    // The door camera vanishes; for 3 s connections are refused; then it is back on the same port.
    let killed_ms = now_ms();
    door.kill();
    std::thread::sleep(Duration::from_secs(3));
    let port = door.port;
    let _door = RtspServer::start(port);
    let back_ms = now_ms();
    std::thread::sleep(Duration::from_secs(5));
    let out = ingest.stop();
    let printed = stdout(&out);
    assert!(out.status.success(), "{printed}\n{}", stderr(&out));

    let cams = by_camera(all_frames(&broker, &topic));
    let door_frames = &cams["door"];
    let yard_frames = &cams["yard"];
    for f in door_frames.iter().chain(yard_frames) {
        assert_eq!((f.width, f.height), (320, 240));
        assert_eq!(jpeg_size(&f.image), (320, 240));
    }

    // door: seq strictly increasing, one gap, and the gap is the outage in frame slots.
    let seqs: Vec<u64> = door_frames.iter().map(|f| f.seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "door seq not increasing: {seqs:?}");
    let (gap_at, gap) = seqs.windows(2).enumerate().map(|(i, w)| (i, w[1] - w[0])).max_by_key(|x| x.1).unwrap();
    let before_gap = &door_frames[gap_at];
    let after_gap = &door_frames[gap_at + 1];
    let outage_ms = after_gap.capture_time_ms - before_gap.capture_time_ms;
    let slots = (outage_ms as f64 / (1000.0 / fps)).round() as i64;
    println!(
        "door: outage {outage_ms} ms, seq gap {gap} (= {slots} slots), reconnected {} ms after restart",
        after_gap.capture_time_ms - back_ms
    );
    assert!(outage_ms >= 2_500, "the outage ({outage_ms} ms) is not where the seq gap ({gap}) is: {seqs:?}");
    assert!((gap as i64 - slots).abs() <= 2, "seq gap {gap} does not match the {outage_ms} ms outage ({slots} slots)");
    assert!(before_gap.capture_time_ms <= killed_ms + 500);
    // Backoff is capped at 1 s: the camera is back within that plus the connection and the first keyframe (1 s
    // apart), with a margin for a loaded machine.
    assert!(
        after_gap.capture_time_ms - back_ms < 4_000,
        "reconnected {} ms after the camera came back",
        after_gap.capture_time_ms - back_ms
    );
    let gaps = seqs.windows(2).filter(|w| w[1] - w[0] > 1).count();
    assert_eq!(gaps, 1, "one outage, one gap: {seqs:?}");
    assert!(ingest_count(&printed, "door", "reconnects") >= 1, "{printed}");

    // GStreamer sends RTCP sender reports: once the first arrives (about a second in), capture times come from
    // the camera's clock (here the same host clock, so they stay close to ours).
    let camera_clock =
        yard_frames.iter().filter(|f| f.capture_clock == framewire_proto::CaptureClock::Camera as i32).count();
    println!("yard: {camera_clock} of {} frames on the camera clock", yard_frames.len());
    assert!(
        camera_clock * 2 >= yard_frames.len(),
        "{camera_clock} of {} frames on the camera clock",
        yard_frames.len()
    );
    assert!(yard_frames.iter().all(|f| f.capture_clock != 0), "every frame says which clock it uses");
    // yard: untouched by door's outage. Contiguous seq, and frames all through the outage.
    let yseq: Vec<u64> = yard_frames.iter().map(|f| f.seq).collect();
    assert_eq!(yseq, (yseq[0]..yseq[0] + yseq.len() as u64).collect::<Vec<_>>(), "yard lost frames");
    // A live camera's seq starts at the Unix time in ms when ingest started it: never reused after a restart.
    for f in [&yard_frames[0], &door_frames[0]] {
        assert!(
            f.seq.abs_diff(f.capture_time_ms as u64) < 10_000,
            "first seq {} vs capture {}",
            f.seq,
            f.capture_time_ms
        );
    }
    let during = yard_frames.iter().filter(|f| f.capture_time_ms > killed_ms && f.capture_time_ms < back_ms).count();
    assert!(during >= 10, "yard published only {during} frames during door's 3 s outage");
    let max_gap = yard_frames.windows(2).map(|w| w[1].capture_time_ms - w[0].capture_time_ms).max().unwrap();
    assert!(max_gap < 1_000, "yard stalled for {max_gap} ms");
    // Frames in: what ingest published of the camera while it was up; the outage itself is a gap, not a loss.
    let published = ingest_count(&printed, "door", "published");
    let tally = Tally::published(&broker, &topic, "door", published, Duration::from_secs(20));
    assert_eq!((tally.lost, tally.duplicates), (0, 0), "{tally:?}");
    tally.report(&format!("RTSP camera vanishes, refuses, comes back (gap of {} slots)", gap - 1));
}

#[test]
fn a_camera_that_accepts_but_never_answers_is_retried_and_ctrl_c_is_immediate() {
    let broker = Broker::start();
    let topic = unique("frames");
    // A TCP port that accepts connections and then says nothing, like a hung camera.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for c in listener.incoming().take(20) {
            conns.push(c);
        }
    });
    let _ = held;
    let ingest = broker.service(
        "ingest",
        &[
            "--camera",
            &format!("hung=rtsp://127.0.0.1:{port}/stream"),
            "--stall-timeout",
            "1s",
            "--reconnect-min",
            "100ms",
            "--reconnect-max",
            "300ms",
            "--topic",
            &topic,
        ],
    );
    std::thread::sleep(Duration::from_secs(5));
    let stopped = Instant::now();
    let out = ingest.stop();
    assert!(stopped.elapsed() < Duration::from_secs(3), "shutdown took {:?}", stopped.elapsed());
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let lost = err.lines().filter(|l| l.contains("source lost; reconnecting")).count();
    assert!(lost >= 2, "expected repeated reconnects of a hung camera:\n{err}");
    assert!(err.contains("hung"), "{err}");
    assert!(stdout(&out).contains("published 0 frames of camera hung"), "{}", stdout(&out));
    Tally::untouched(&broker, &topic)
        .report("RTSP URL that never answers (retried on stall timeout, Ctrl-C immediate)");
}

#[test]
fn an_image_folder_is_published_in_name_order_skipping_non_images_and_watched_for_new_files() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    for name in ["astronaut.png", "chelsea.png", "rocket.jpg"] {
        std::fs::copy(media(name), dir.path().join(name)).unwrap();
    }
    std::fs::write(dir.path().join("b_notes.txt"), "not an image\n").unwrap();

    // Once: every image, in name order; the text file is named in a warning and counted.
    let once = unique("frames");
    let out = broker.ingest(&["--camera", "uploads", "--topic", &once, dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The count its text summary states (asserted here, wording and all).
    let published_once = 3;
    assert!(stdout(&out).contains("published 3 frames of camera uploads"), "{}", stdout(&out));
    assert!(stdout(&out).contains("1 files skipped"), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.lines().any(|l| l.contains("b_notes.txt") && l.contains("not a readable image")), "{err}");
    let frames = all_frames(&broker, &once);
    let names: Vec<&str> = frames.iter().map(|f| f.source_uri.rsplit('/').next().unwrap()).collect();
    assert_eq!(names, ["astronaut.png", "chelsea.png", "rocket.jpg"]);
    assert_eq!(frames.iter().map(|f| f.seq).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!((frames[0].width, frames[0].height), (512, 512));
    assert_eq!(jpeg_size(&frames[2].image), (frames[2].width, frames[2].height));

    // Watched: the existing images, then a file that arrives later.
    let topic = unique("frames");
    let watch = broker.service(
        "ingest",
        &[
            "--camera",
            "uploads",
            "--watch",
            "--watch-interval",
            "200ms",
            "--topic",
            &topic,
            dir.path().to_str().unwrap(),
        ],
    );
    assert_eq!(broker.read_frames(&topic, 3, Duration::from_secs(20)).len(), 3);
    std::fs::copy(media("chelsea.png"), dir.path().join("z_new.png")).unwrap();
    let frames = broker.read_frames(&topic, 4, Duration::from_secs(20));
    let out = watch.stop();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(frames.len(), 4, "the new file was not picked up");
    assert!(frames[3].source_uri.ends_with("z_new.png"), "{}", frames[3].source_uri);
    assert_eq!(frames[3].seq, 3);
    let tally = Tally::published(&broker, &once, "uploads", published_once, Duration::from_secs(20));
    assert_eq!((tally.frames_in, tally.lost, tally.duplicates), (3, 0, 0), "{tally:?}");
    tally.report("image folder with a non-image (skipped, counted)");
}

#[test]
fn cameras_from_a_config_file_run_together_and_a_bad_config_names_key_and_file() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("astro.mp4");
    still_clip(&media("astronaut.png"), 2, 10, &clip);
    let config = dir.path().join("cameras.toml");
    std::fs::write(
        &config,
        format!(
            "[[camera]]\nid = \"street\"\nsource = \"{}\"\nfps = 5\n\n[[camera]]\nid = \"astro\"\nsource = \"{}\"\n",
            media("bikes.mp4").display(),
            clip.display()
        ),
    )
    .unwrap();
    let topic = unique("frames");
    let out = broker.ingest(&["--config", config.to_str().unwrap(), "--topic", &topic]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    assert!(printed.contains("published 50 frames of camera street"), "{printed}");
    assert!(printed.contains("published 20 frames of camera astro"), "{printed}");
    let cams = by_camera(broker.read_frames(&topic, 70, Duration::from_secs(15)));
    for (cam, n) in [("street", 50u64), ("astro", 20)] {
        let seqs: Vec<u64> = cams[cam].iter().map(|f| f.seq).collect();
        assert_eq!(seqs, (0..n).collect::<Vec<_>>(), "{cam}");
    }

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[camera]]\nid = \"a\"\nsource = \"x.mp4\"\nfsp = 5\n").unwrap();
    let topic = unique("frames");
    let out = broker.ingest(&["--config", bad.to_str().unwrap(), "--topic", &topic]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(bad.to_str().unwrap()) && err.contains("unknown field `fsp`"), "{err}");
    Tally::untouched(&broker, &topic).report("config file with an unknown key (file and key named)");
}

#[test]
fn frames_over_the_message_size_are_shrunk_to_fit_not_lost() {
    let broker = Broker::start();
    let topic = unique("frames");
    let limit = 12_000usize;
    let out = broker.ingest(&[
        "--camera",
        "big",
        "--fps",
        "5",
        "--jpeg-quality",
        "100",
        "--max-message-bytes",
        &limit.to_string(),
        "--topic",
        &topic,
        media("bikes.mp4").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("published 50 frames"), "{}", stdout(&out));
    assert!(stderr(&out).contains("re-encoded"), "{}", stderr(&out));
    let msgs = broker.read(&topic, 50, Duration::from_secs(15));
    assert_eq!(msgs.len(), 50);
    for m in &msgs {
        let payload = rdkafka::Message::payload(m).unwrap();
        assert!(payload.len() <= limit, "{} > {limit}", payload.len());
        let f = framewire_proto::decode_frame(payload).unwrap();
        assert_eq!(jpeg_size(&f.image), (f.width, f.height), "width/height describe the JPEG actually sent");
    }
}

#[test]
fn keyframes_only_decodes_the_keyframes_and_realtime_paces_a_file() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    // 3 s at 10 fps with a keyframe every 10 frames: 3 keyframes.
    let clip = dir.path().join("gop.mp4");
    let st = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10:duration=3"])
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "10", "-keyint_min", "10", "-sc_threshold", "0"])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(st.success());
    let topic = unique("frames");
    let printed = broker.ingest_ok("gop", &topic, &clip, &["--keyframes-only"]);
    assert!(printed.contains("published 3 frames of camera gop (3 decoded)"), "{printed}");
    let frames = broker.read_frames(&topic, 3, Duration::from_secs(10));
    let times: Vec<i64> = frames.iter().map(|f| f.stream_time_us).collect();
    assert_eq!(times, [0, 1_000_000, 2_000_000]);

    let topic = unique("frames");
    let started = Instant::now();
    broker.ingest_ok("paced", &topic, &clip, &["--realtime"]);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(2_800), "a 3 s file at --realtime took {took:?}");
    let frames = broker.read_frames(&topic, 30, Duration::from_secs(10));
    let span = frames.last().unwrap().capture_time_ms - frames[0].capture_time_ms;
    assert!((2_700..=4_000).contains(&span), "frames were captured over {span} ms, not the clip's 2.9 s");
}

#[test]
fn slow_a_live_camera_behind_a_stalled_broker_drops_the_oldest_frames_and_counts_them() {
    let broker = Broker::start();
    let topic = unique("frames");
    let server = RtspServer::start(free_port());
    let metrics = format!("127.0.0.1:{}", free_port());
    // A producer queue of 4 messages, so a broker that stops answering backs up into ingest quickly.
    let child = broker
        .cmd("ingest")
        .args(["--camera", &format!("lobby={}", server.url()), "--queue-frames", "2", "--topic", &topic])
        .args(["--summary-format", "json"])
        .env("FRAMEWIRE_KAFKA_OPTIONS", "queue.buffering.max.messages=4")
        .env("RUST_LOG", "info")
        .env("FRAMEWIRE_METRICS_LISTEN", &metrics)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let streaming = broker.read_until(&topic, Duration::from_secs(20), |m| m.len() >= 10);
    assert!(streaming.len() >= 10);
    // The broker hangs for 3 s (25 frames/s keep coming), then recovers.
    broker.freeze(true);
    std::thread::sleep(Duration::from_secs(3));
    broker.freeze(false);
    std::thread::sleep(Duration::from_secs(2));
    let dropped_metric = total(&scrape(&metrics), "framewire_ingest_frames_dropped_total").unwrap_or(0.0);
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let out = child.wait_with_output().unwrap();
    let printed = stdout(&out);
    assert!(out.status.success(), "{printed}\n{}", stderr(&out));
    assert!(dropped_metric > 40.0, "the metric shows {dropped_metric} drops\n{printed}\n{}", stderr(&out));

    let published = ingest_count(&printed, "lobby", "published");
    let dropped = ingest_count(&printed, "lobby", "dropped");
    assert!(dropped >= dropped_metric as u64, "{printed}");
    let frames = broker.read_frames(&topic, published as usize, Duration::from_secs(15));
    assert_eq!(frames.len() as u64, published);
    let seqs: Vec<u64> = frames.iter().map(|f| f.seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{seqs:?}");
    // Every frame slot is accounted for: published, or dropped (and then a gap in seq). The first slot is the
    // seq ingest logged when the camera started.
    let first: u64 = stderr(&out)
        .lines()
        .find_map(|l| l.split("first_seq=").nth(1)?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no first_seq in the log:\n{}", stderr(&out)));
    let slots = seqs.last().unwrap() + 1 - first;
    assert_eq!(published + dropped, slots, "published {published} + dropped {dropped} != {slots} slots: {seqs:?}");
    // The stall is one long gap (a busy machine may drop a few more elsewhere): the frames that survive it are
    // the newest, not the ones queued when the broker hung.
    let longest = seqs.windows(2).map(|w| w[1] - w[0] - 1).max().unwrap();
    assert!(longest >= 40, "no gap for the 3 s stall: {seqs:?}");
    println!("published {published}, dropped {dropped}: {seqs:?}");
    let tally = Tally::published(&broker, &topic, "lobby", published, Duration::from_secs(20));
    assert_eq!((tally.lost, tally.duplicates), (0, 0), "{tally:?}");
    tally.report(&format!("broker stalled 3 s under a live camera ({dropped} dropped, counted)"));
}

#[test]
fn rtsp_over_udp_and_a_live_http_stream_are_read() {
    let broker = Broker::start();
    let server = RtspServer::start(free_port());
    let topic = unique("frames");
    let http_port = free_port();
    // FFmpeg's own HTTP server pushes a live MPEG-TS stream (no duration: a live source) to one reader.
    let mut http = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-stream_loop", "-1", "-i"])
        .arg(media("bikes.mp4"))
        .args(["-c", "copy", "-f", "mpegts", "-listen", "1"])
        .arg(format!("http://127.0.0.1:{http_port}/live.ts"))
        // It complains when the reader goes away at the end, as it should.
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let ingest = broker.service(
        "ingest",
        &[
            "--camera",
            &format!("udp={}", server.url()),
            "--rtsp-transport",
            "udp",
            "--camera",
            &format!("web=http://127.0.0.1:{http_port}/live.ts"),
            "--fps",
            "5",
            "--topic",
            &topic,
        ],
    );
    let seen = broker.read_until(&topic, Duration::from_secs(30), |msgs| {
        let count = |cam: &str| msgs.iter().filter(|m| rdkafka::Message::key(*m) == Some(cam.as_bytes())).count();
        count("udp") >= 10 && count("web") >= 10
    });
    let out = ingest.stop();
    let _ = http.kill();
    let _ = http.wait();
    assert!(out.status.success(), "{}", stderr(&out));
    let cams = by_camera(
        seen.iter().map(|m| framewire_proto::decode_frame(rdkafka::Message::payload(m).unwrap()).unwrap()).collect(),
    );
    assert!(cams.get("udp").is_some_and(|f| f.len() >= 10), "RTSP over UDP: {:?}", cams.keys());
    assert!(cams.get("web").is_some_and(|f| f.len() >= 10), "HTTP: {:?}", cams.keys());
    assert_eq!((cams["web"][0].width, cams["web"][0].height), (640, 272));
    // Sampled at 5 fps by stream time: 200 ms apart.
    let t: Vec<i64> = cams["web"].iter().map(|f| f.stream_time_us).collect();
    assert!(t.windows(2).all(|w| (w[1] - w[0] - 200_000).abs() <= 1_000), "{t:?}");
}

#[test]
fn slow_a_restarted_ingest_never_reuses_a_live_cameras_seq() {
    let broker = Broker::start();
    let server = RtspServer::start(free_port());
    let topic = unique("frames");
    let camera = format!("gate={}", server.url());
    let run = || {
        let ingest = broker
            .service("ingest", &["--camera", &camera, "--fps", "10", "--topic", &topic, "--summary-format", "json"]);
        std::thread::sleep(Duration::from_secs(3));
        let out = ingest.stop();
        assert!(out.status.success(), "{}", stderr(&out));
        ingest_count(&stdout(&out), "gate", "published") as usize
    };
    let first_run = run();
    let second_run = run();
    assert!(first_run > 5 && second_run > 5, "{first_run} then {second_run} frames");
    let frames = broker.read_frames(&topic, first_run + second_run, Duration::from_secs(10));
    let seqs: Vec<u64> = frames.iter().map(|f| f.seq).collect();
    assert_eq!(seqs.len(), first_run + second_run);
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "seq went back or repeated across the restart: {seqs:?}");
}
