//! Kafka settings and secrets, with the real binaries: `-X` values with commas, FRAMEWIRE_KAFKA_OPTIONS
//! merged key by key under `-X`, secrets kept out of `--help` and error messages, and a producer that
//! cannot go on (its topic deleted under it) stopping ingest with an error that says what to fix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::Future;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::task::{Context, Poll, Wake};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;

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

/// Drives one future to completion on this thread (rdkafka's admin futures need no runtime).
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[test]
fn help_never_shows_secrets_from_the_environment() {
    let runs: [(&str, &[&str], &str); 7] = [
        ("ingest", &["--help"], "FRAMEWIRE_KAFKA_OPTIONS"),
        ("detect", &["--help"], "FRAMEWIRE_KAFKA_OPTIONS"),
        ("subscribe", &["--help"], "FRAMEWIRE_KAFKA_OPTIONS"),
        ("subscribe", &["store", "--help"], "FRAMEWIRE_DB"),
        ("subscribe", &["web", "--help"], "FRAMEWIRE_DB"),
        ("subscribe", &["query", "--help"], "FRAMEWIRE_DB"),
        ("subscribe", &["show", "--help"], "FRAMEWIRE_DB"),
    ];
    for (bin_name, args, names) in runs {
        let out = Command::new(bin(bin_name))
            .args(args)
            .env("FRAMEWIRE_KAFKA_OPTIONS", format!("sasl.password={SECRET}"))
            .env("FRAMEWIRE_DB", format!("postgres://u:{SECRET}@h/db"))
            .env("FRAMEWIRE_WEB_TOKEN", SECRET)
            .env("FRAMEWIRE_SOURCE", format!("rtsp://admin:{SECRET}@cam/s"))
            .env("FRAMEWIRE_CAMERA", format!("door=rtsp://admin:{SECRET}@cam/s"))
            .env("FRAMEWIRE_INPUT_OPTION", format!("headers=Authorization: Bearer {SECRET}"))
            .output()
            .unwrap();
        let text = printed(&out);
        assert!(out.status.success(), "{bin_name} {args:?}: {text}");
        // The variable is listed (so the help did render it), its value is not.
        assert!(text.contains(names), "{bin_name} {args:?} does not mention {names}: {text}");
        assert!(!text.contains(SECRET), "{bin_name} {args:?} printed the secret: {text}");
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
