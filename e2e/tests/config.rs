//! Kafka settings and secrets, with the real binaries: `-X` values with commas, FRAMEWIRE_KAFKA_OPTIONS
//! merged key by key under `-X`, secrets kept out of `--help` and error messages, camera credentials
//! (`user:password@`, `?token=`) kept out of logs, metrics and published frames, and a producer that
//! cannot go on (its topic deleted under it) stopping ingest with an error that says what to fix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::Headers;

const SECRET: &str = "hunter2";

/// Runs a command that must end by itself, killing it if it has not within `limit`.
fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("still running after {limit:?}: {}{}", stdout(&out), stderr(&out));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Everything a binary printed, both streams.
fn printed(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

/// Every environment variable the binaries read: each `env = "NAME"` of their clap arguments.
fn env_vars() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.extend(
                    text.split("env = \"").skip(1).filter_map(|rest| rest.split_once('"')).map(|(name, _)| name.into()),
                );
            }
        }
    }
    let mut out = BTreeSet::new();
    for krate in ["common", "ingest", "detect", "subscribe"] {
        walk(&root().join(krate).join("src"), &mut out);
    }
    out
}

/// Whether a variable can hold a secret, by what its name says it holds: a database or camera URL, Kafka
/// settings, FFmpeg input options (HTTP headers), a token, a password.
fn may_hold_a_secret(name: &str) -> bool {
    let last = name.rsplit('_').next().unwrap_or_default();
    ["DB", "URL", "URI", "SOURCE", "CAMERA", "OPTIONS", "OPTION", "TOKEN", "PASSWORD", "SECRET", "CREDENTIALS"]
        .contains(&last)
}

#[test]
fn help_never_shows_secrets_from_the_environment() {
    // Every variable that can hold a secret is set, with the secret in each form it takes (URL password,
    // query token, setting, header), so a variable added later is checked without a change here.
    let secret_vars: Vec<String> = env_vars().into_iter().filter(|v| may_hold_a_secret(v)).collect();
    for known in
        ["FRAMEWIRE_DB", "FRAMEWIRE_KAFKA_OPTIONS", "FRAMEWIRE_WEB_TOKEN", "FRAMEWIRE_SOURCE", "FRAMEWIRE_CAMERA"]
    {
        assert!(secret_vars.iter().any(|v| v == known), "{known} not found among {secret_vars:?}");
    }
    let value = format!(
        "door=rtsp://admin:{SECRET}@cam/s?token={SECRET}\nsasl.password={SECRET}\nAuthorization: Bearer {SECRET}"
    );
    let runs: [(&str, &[&str], &str); 8] = [
        ("ingest", &[], "FRAMEWIRE_KAFKA_OPTIONS"),
        ("detect", &[], "FRAMEWIRE_KAFKA_OPTIONS"),
        ("subscribe", &[], "FRAMEWIRE_KAFKA_OPTIONS"),
        ("subscribe", &["tail"], "FRAMEWIRE_DETECTIONS_TOPIC"),
        ("subscribe", &["store"], "FRAMEWIRE_DB"),
        ("subscribe", &["web"], "FRAMEWIRE_WEB_TOKEN"),
        ("subscribe", &["query"], "FRAMEWIRE_DB"),
        ("subscribe", &["show"], "FRAMEWIRE_DB"),
    ];
    for (bin_name, args, names) in runs {
        // `--help` and `-h` render differently (long and short help); both list the variables.
        for help in ["--help", "-h"] {
            let mut cmd = Command::new(bin(bin_name));
            cmd.args(args).arg(help);
            for var in &secret_vars {
                cmd.env(var, &value);
            }
            let out = cmd.output().unwrap();
            let text = printed(&out);
            assert!(out.status.success(), "{bin_name} {args:?} {help}: {text}");
            // The variable is listed (so the help did render it), its value is not.
            assert!(text.contains(names), "{bin_name} {args:?} {help} does not mention {names}: {text}");
            assert!(!text.contains(SECRET), "{bin_name} {args:?} {help} printed the secret: {text}");
        }
    }
}

#[test]
fn bad_kafka_settings_fail_with_a_message_that_names_them_but_not_the_secret() {
    // No broker is needed: the settings are checked before anything connects. Port 9 would refuse.
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("a.mp4");
    still_clip(&media("astronaut.png"), 1, 2, &clip);
    let ingest = |x: &[&str], env: Option<&str>| {
        let mut cmd = Command::new(bin("ingest"));
        cmd.env("FRAMEWIRE_BROKERS", "127.0.0.1:9")
            .env("FRAMEWIRE_METRICS_LISTEN", "off")
            .env("FRAMEWIRE_PROGRESS", "log")
            .env_remove("FRAMEWIRE_KAFKA_OPTIONS")
            .args(["--connect-timeout", "2s"])
            .args(x)
            .arg(&clip);
        if let Some(env) = env {
            cmd.env("FRAMEWIRE_KAFKA_OPTIONS", env);
        }
        let out = run_bounded(cmd, Duration::from_secs(60));
        assert!(!out.status.success(), "{x:?} was accepted: {}", printed(&out));
        printed(&out)
    };
    let secret_x = format!("sasl.password:{SECRET}");
    let unknown = format!("sasl.pasword={SECRET}");
    let unknown_plain = format!("bogus={SECRET}");
    let spaced = format!("sasl.password {SECRET}");

    // A property without a value: named, and the fix given.
    let text = ingest(&["-X", "sasl.password"], None);
    assert!(text.contains("\"sasl.password\"") && text.contains("key=value"), "{text}");
    // Wrong separator: the entry may be a secret, so it is not shown.
    let text = ingest(&["-X", &secret_x], None);
    assert!(text.contains("in -X") && text.contains("key=value") && !text.contains(SECRET), "{text}");
    // Unknown keys (a misspelt secret one, and one that says nothing): librdkafka names the key, not the value.
    for bad in [&unknown, &unknown_plain] {
        let key = bad.split('=').next().unwrap();
        let text = ingest(&["-X", bad], None);
        assert!(text.contains("No such configuration property") && text.contains(key), "{text}");
        assert!(!text.contains(SECRET), "{text}");
    }
    // The same in the environment, by line number.
    let text = ingest(&[], Some(&format!("linger.ms=1\n{spaced}")));
    assert!(text.contains("FRAMEWIRE_KAFKA_OPTIONS line 2") && !text.contains(SECRET), "{text}");
    // A value librdkafka refuses for a setting that is not secret is shown, since it helps.
    let text = ingest(&["-X", "linger.ms=soon"], None);
    assert!(text.contains("linger.ms=soon") && text.contains("Invalid value"), "{text}");
}

#[test]
fn motion_gating_with_uploads_is_refused_not_ignored() {
    // Checked before anything connects: port 9 would refuse.
    let mut cmd = Command::new(bin("ingest"));
    cmd.env("FRAMEWIRE_BROKERS", "127.0.0.1:9")
        .env("FRAMEWIRE_METRICS_LISTEN", "off")
        .env_remove("FRAMEWIRE_MOTION")
        .args(["--uploads", "uploads", "--motion"]);
    let out = run_bounded(cmd, Duration::from_secs(60));
    assert!(!out.status.success(), "accepted: {}", printed(&out));
    assert!(printed(&out).contains("drop --motion with --uploads"), "{}", printed(&out));
}

#[test]
fn x_values_keep_their_commas_and_the_command_line_overrides_the_environment_key_by_key() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("a.mp4");
    still_clip(&media("astronaut.png"), 1, 4, &clip);

    // Ingests the clip to a new topic with these settings; returns the topic, the exit and what it printed.
    let run = |env: Option<&str>, args: &[&str]| {
        let topic = unique("frames");
        let mut cmd = broker.cmd("ingest");
        if let Some(env) = env {
            cmd.env("FRAMEWIRE_KAFKA_OPTIONS", env);
        }
        let out = cmd
            .env("RUST_LOG", "warn,librdkafka=debug")
            .args(["--camera", "a", "--topic", &topic])
            .args(args)
            .arg(&clip)
            .output()
            .unwrap();
        let text = printed(&out);
        (topic, out.status.success(), text)
    };

    // One -X, one setting, commas and all: librdkafka logs from both debug contexts it was given.
    let (topic, ok, text) = run(None, &["-X", "debug=broker,topic", "-X", "client.id=cam,1"]);
    assert!(ok, "{}", tail(&text));
    assert_eq!(broker.read(&topic, 4, Duration::from_secs(30)).len(), 4);
    assert_debug_contexts(&text);

    // The environment holds several settings, one per line, one of them with commas. Its message size
    // limit (20 kB) refuses these ~40 kB frames...
    let env = "debug=broker,topic\nmessage.max.bytes=20000\nclient.id=from-env,1";
    let (_, ok, text) = run(Some(env), &[]);
    assert!(!ok, "frames over the environment's message.max.bytes went out: {text}");
    assert!(text.contains("not acknowledged") || text.contains("too large"), "{text}");

    // ...and one -X for that key alone replaces it, while the environment's other keys stay.
    let (topic, ok, text) = run(Some(env), &["-X", "message.max.bytes=4000000"]);
    assert!(ok, "{}", tail(&text));
    assert_eq!(broker.read(&topic, 4, Duration::from_secs(30)).len(), 4);
    // The environment's debug setting, which -X did not name, still applies.
    assert_debug_contexts(&text);
}

/// librdkafka's debug lines from its `broker` context (connections) and its `topic` context (partition
/// counts): both halves of `debug=broker,topic` reached it.
fn assert_debug_contexts(text: &str) {
    let has = |facility: &str| text.contains(&format!("librdkafka: {facility} "));
    assert!(has(BROKER_FACILITY), "no broker debug lines: {}", tail(text));
    assert!(has(TOPIC_FACILITY), "no topic debug lines: {}", tail(text));
    assert!(!has(PROTOCOL_FACILITY), "a context that was not asked for is on: {}", tail(text));
}

const BROKER_FACILITY: &str = "CONNECT";
const TOPIC_FACILITY: &str = "PARTCNT";
const PROTOCOL_FACILITY: &str = "SEND";

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[test]
fn slow_ingest_stops_with_what_to_fix_when_its_topic_is_deleted_under_it() {
    let broker = Broker::start();
    let topic = unique("frames");
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("long.mp4");
    // Long enough that ingest is still publishing, at the clip's own pace, when the topic goes.
    still_clip(&media("astronaut.png"), 180, 5, &clip);
    // Its output goes to a file: a pipe nobody reads until the end could fill and stall it.
    let log = dir.path().join("ingest.log");
    let mut child = broker
        .cmd("ingest")
        .args(["--camera", "a", "--topic", &topic, "--realtime"])
        .arg(&clip)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    assert!(broker.read(&topic, 3, Duration::from_secs(60)).len() >= 3, "ingest never published");

    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &broker.addr).create().unwrap();
    let deleted = block_on(admin.delete_topics(&[&topic], &AdminOptions::new())).unwrap();
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");
    let gone = Instant::now();

    // tansu 0.6.0 goes on accepting writes to a deleted topic, so ingest learns of it from its periodic
    // metadata refresh; librdkafka then gives a topic it saw created 30 s
    // (topic.metadata.propagation.max.ms) to show up again before it calls it gone.
    let deadline = gone + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let text = std::fs::read_to_string(&log).unwrap();
            panic!("ingest kept running without its topic: {}", tail(&text));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "{}", tail(&text));
    assert!(started.elapsed() < Duration::from_secs(170), "ingest ran to the clip's end instead of stopping");
    let last = text.lines().rev().find(|l| l.starts_with("ingest: error:"));
    let last = last.unwrap_or_else(|| panic!("no error line: {}", tail(&text)));
    assert!(last.contains(&format!("topic {topic} no longer exists")) && last.contains("restart ingest"), "{last}");
    assert_eq!(text.lines().filter(|l| l.starts_with("ingest: error:")).count(), 1, "{}", tail(&text));
    eprintln!("ingest stopped {:.1} s after its topic was deleted: {last}", gone.elapsed().as_secs_f64());
}

#[test]
fn camera_credentials_reach_no_log_line_metric_or_published_frame() {
    const RTSP_PASSWORD: &str = "rtsp-pass-7c1f";
    const RTSP_TOKEN: &str = "rtsp-token-93ab";
    const HTTP_PWD: &str = "http-pwd-51d0";
    const HTTP_AUTH: &str = "http-auth-e83c";
    const BAD_PASSWORD: &str = "bad-pass-0f42";
    const BAD_QUERY: &str = "bad-query-6b2d";
    let secrets = [RTSP_PASSWORD, RTSP_TOKEN, HTTP_PWD, HTTP_AUTH, BAD_PASSWORD, BAD_QUERY];
    let broker = Broker::start();
    let topic = unique("frames");
    let dir = tempfile::tempdir().unwrap();

    // An RTSP camera with a password in its address and a token in its query...
    let rtsp = RtspServer::start(free_port());
    let door = format!("rtsp://admin:{RTSP_PASSWORD}@127.0.0.1:{}/cam?channel=1&token={RTSP_TOKEN}", rtsp.port);
    let door_shown = format!("rtsp://admin:***@127.0.0.1:{}/cam?channel=1&token=***", rtsp.port);
    // ...an HTTP camera (FFmpeg's own server, which serves one reader, then goes: the camera is lost and
    // retried) with credentials in its query only...
    let clip = dir.path().join("clip.mp4");
    still_clip(&media("astronaut.png"), 3, 5, &clip);
    let http_port = free_port();
    let mut server = Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-i"])
        .arg(&clip)
        .args(["-c", "copy", "-f", "mpegts", "-listen", "1", &format!("http://127.0.0.1:{http_port}/live.ts")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg CLI (make setup installs it)");
    // Not waited for with a test connection, which would be its one reader: ingest retries until it listens.
    let yard = format!("http://127.0.0.1:{http_port}/live.ts?user=admin&pwd={HTTP_PWD}&auth={HTTP_AUTH}");
    let yard_shown = format!("http://127.0.0.1:{http_port}/live.ts?user=admin&pwd=***&auth=***");
    // ...and an address the URL parser refuses (its port is out of range), with both kinds of secret, which
    // FFmpeg cannot open either: it is retried, and logged at each attempt.
    let gate = format!("rtsp://admin:{BAD_PASSWORD}@127.0.0.1:99999/cam?password={BAD_QUERY}");
    let gate_shown = "rtsp://***@127.0.0.1:99999/cam?password=***";
    // Secrets go in a cameras file, as the README recommends (command lines show in `ps`).
    let cameras = dir.path().join("cameras.toml");
    let table = |id: &str, source: &str| format!("[[camera]]\nid = \"{id}\"\nsource = \"{source}\"\n\n");
    std::fs::write(&cameras, [table("door", &door), table("yard", &yard), table("gate", &gate)].concat()).unwrap();

    let metrics = format!("127.0.0.1:{}", free_port());
    let (log, out) = (dir.path().join("ingest.log"), dir.path().join("ingest.out"));
    let mut ingest = broker
        .cmd("ingest")
        .env("RUST_LOG", "info")
        .env("FRAMEWIRE_METRICS_LISTEN", &metrics)
        .args(["--topic", &topic, "--fps", "5", "--reconnect-max", "1s", "--summary-format", "json", "--config"])
        .arg(&cameras)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();

    // Frames of both working cameras arrive, the HTTP camera's stream ends and it is retried, and the
    // metrics are read while ingest runs.
    let from = |m: &rdkafka::message::OwnedMessage, camera: &str| m.key() == Some(camera.as_bytes());
    let arrived = broker.read_until(&topic, Duration::from_secs(60), |msgs| {
        ["door", "yard"].iter().all(|c| msgs.iter().filter(|m| from(m, c)).count() >= 3)
    });
    let counts: Vec<usize> = ["door", "yard"].iter().map(|c| arrived.iter().filter(|m| from(m, c)).count()).collect();
    assert!(counts.iter().all(|&n| n > 0), "frames of both cameras expected, got {counts:?}: {}", {
        // The retries of the camera that never opens would hide the rest.
        let text = std::fs::read_to_string(&log).unwrap();
        text.lines()
            .filter(|l| !l.contains("camera=gate") && !l.contains("Port missing"))
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let retried = |text: &str| {
        text.lines().any(|l| l.contains("source lost") && l.contains("camera=yard"))
            && text.lines().any(|l| l.contains("source lost") && l.contains("camera=gate"))
    };
    while !retried(&std::fs::read_to_string(&log).unwrap()) {
        assert!(Instant::now() < deadline, "no retries logged: {}", tail(&std::fs::read_to_string(&log).unwrap()));
        std::thread::sleep(Duration::from_millis(200));
    }
    let exposition = scrape_when_up(&metrics, Duration::from_secs(10));
    assert!(exposition.contains("camera=\"door\""), "{exposition}");
    assert!(Command::new("kill").args(["-TERM", &ingest.id().to_string()]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while ingest.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = ingest.kill();
            panic!("ingest did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = server.kill();
    let _ = server.wait();
    let printed = format!("{}{}", std::fs::read_to_string(&out).unwrap(), std::fs::read_to_string(&log).unwrap());

    // Nothing printed, exported or published holds a secret...
    for secret in secrets {
        assert!(!printed.contains(secret), "{secret} printed: {}", tail(&printed));
        assert!(!exposition.contains(secret), "{secret} in the metrics: {exposition}");
    }
    let messages = read_all(&broker, &topic, Duration::from_secs(30));
    for m in &messages {
        let headers = m.headers().map(|h| h.iter().map(|h| h.value.unwrap_or_default().to_vec()).collect());
        let bytes = [m.payload().unwrap_or_default().to_vec()].into_iter().chain(headers.unwrap_or_else(Vec::new));
        for bytes in bytes {
            let text = String::from_utf8_lossy(&bytes);
            assert!(!secrets.iter().any(|s| text.contains(s)), "a secret was published: {text:.200}");
        }
    }
    // ...while the rest of each address is shown: in every frame's source, and in the log lines that name
    // the sources.
    for (camera, shown) in [("door", &door_shown), ("yard", &yard_shown)] {
        let frames: Vec<_> = messages
            .iter()
            .filter(|m| from(m, camera))
            .map(|m| framewire_proto::decode_frame(m.payload().unwrap()).unwrap())
            .collect();
        assert!(frames.len() >= 3, "{camera}: {} frames", frames.len());
        assert!(frames.iter().all(|f| f.source_uri == *shown), "{camera}: {:?}", frames[0].source_uri);
    }
    for shown in [door_shown.as_str(), yard_shown.as_str(), gate_shown] {
        assert!(printed.contains(shown), "no log line names {shown}: {}", tail(&printed));
    }
}
