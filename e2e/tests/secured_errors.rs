//! A secured broker that refuses the client: a wrong password, an unknown user, an unknown SASL mechanism,
//! a CA that does not match, a plaintext client at the TLS listener. Every binary must stop with a non-zero
//! exit well within `--connect-timeout` (the cause is known at once: waiting it out would only hide it),
//! with a last line that names the broker and the cause, says it once, and shows no password.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::tls::TestCa;
use common::{SecuredBroker, free_port, media, model, stderr, still_clip, unique};

const TIMEOUT: &str = "20s";
/// "Fast": under half of `--connect-timeout`, start-up (detect loads its model first) included.
const FAST: Duration = Duration::from_secs(10);
/// A wrong password, different from the right one.
const WRONG: &str = "not-the-Passw0rd;=";

/// `options` (FRAMEWIRE_KAFKA_OPTIONS lines) with `key` set to `value`: the line that set it (or its alias)
/// is replaced, so the case does not hang on which of two lines librdkafka applies last.
fn with(options: &str, key: &str, value: &str) -> String {
    let aliases: &[&str] = match key {
        "sasl.mechanism" | "sasl.mechanisms" => &["sasl.mechanism", "sasl.mechanisms"],
        _ => &[key],
    };
    let mut lines: Vec<String> = options
        .lines()
        .filter(|l| !l.split_once('=').is_some_and(|(k, _)| aliases.contains(&k.trim())))
        .map(String::from)
        .collect();
    lines.push(format!("{key}={value}"));
    lines.join("\n")
}

/// Runs `cmd` to its end (killed after a minute: a hang is a failure too); returns its output and how long
/// it took.
fn timed(mut cmd: Command) -> (Output, Duration) {
    let start = Instant::now();
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Read both pipes while it runs, so that a chatty binary cannot block on a full pipe.
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || read_all(&mut out));
    let err = std::thread::spawn(move || read_all(&mut err));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = start.elapsed();
    let output = Output { status, stdout: out.join().unwrap(), stderr: err.join().unwrap() };
    (output, took)
}

fn read_all(from: &mut impl Read) -> Vec<u8> {
    let mut bytes = Vec::new();
    from.read_to_end(&mut bytes).unwrap();
    bytes
}

/// The five binaries, each with what it needs to reach its Kafka start-up check, against `broker` with the
/// FRAMEWIRE_KAFKA_OPTIONS `options`.
fn commands(broker: &SecuredBroker, options: &str, dir: &Path) -> Vec<(&'static str, Command)> {
    let clip = dir.join("clip.mp4");
    if !clip.exists() {
        still_clip(&media("astronaut.png"), 1, 2, &clip);
    }
    let topic = unique("refused");
    let db = format!("sqlite://{}", dir.join(format!("{}.db", unique("store"))).display());
    let listen = format!("127.0.0.1:{}", free_port());
    let model = model();
    let runs: [(&str, &str, Vec<&str>); 5] = [
        ("ingest", "ingest", vec!["--camera", "c", "--topic", &topic, clip.to_str().unwrap()]),
        ("detect", "detect", {
            let model = model.to_str().unwrap();
            vec!["--model", model, "--input-topic", &topic, "--output-topic", &topic, "--group", &topic]
        }),
        ("tail", "subscribe", vec!["tail", "--topic", &topic]),
        ("store", "subscribe", vec!["store", "--db", &db, "--topic", &topic, "--group", &topic]),
        ("web", "subscribe", vec!["web", "--listen", &listen, "--topic", &topic]),
    ];
    runs.into_iter()
        .map(|(name, bin, args)| {
            let mut cmd = broker.cmd(bin);
            // The flags of `subscribe` come before its subcommand.
            cmd.args(["--connect-timeout", TIMEOUT]).args(args);
            cmd.env("FRAMEWIRE_KAFKA_OPTIONS", options).env("RUST_LOG", "warn");
            (name, cmd)
        })
        .collect()
}

#[test]
fn every_binary_fails_fast_and_clearly_when_the_broker_refuses_it() {
    let broker = SecuredBroker::start();
    let dir = tempfile::tempdir().unwrap();
    let (brokers, password, good) = (broker.brokers(), broker.password(), broker.options());
    let other_ca = TestCa::new(dir.path());
    let other_ca = other_ca.cert.to_str().unwrap();

    let cases: Vec<(&str, String, &str)> = vec![
        ("wrong password", with(&good, "sasl.password", WRONG), "authentication failed"),
        ("unknown user", with(&good, "sasl.username", &unique("nobody")), "authentication failed"),
        ("unknown mechanism", with(&good, "sasl.mechanism", "SCRAM-SHA-999"), "SASL mechanism \"SCRAM-SHA-999\""),
        ("CA that does not match", with(&good, "ssl.ca.location", other_ca), "certificate verify failed"),
        ("plaintext client", with(&good, "security.protocol", "PLAINTEXT"), "is the listener TLS?"),
    ];
    let mut report = Vec::new();
    for (case, options, cause) in &cases {
        // The binaries of one case run side by side: each waits on nothing but the broker.
        let runs: Vec<_> = commands(&broker, options, dir.path())
            .into_iter()
            .map(|(name, cmd)| (name, std::thread::spawn(move || timed(cmd))))
            .collect();
        for (name, run) in runs {
            let (out, took) = run.join().unwrap();
            let printed = stderr(&out);
            let what = format!("{name}, {case}, after {took:?}:\n{printed}");
            assert!(!out.status.success(), "{what}");
            assert!(took < FAST, "not fast: {what}");
            let last = printed.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
            assert!(last.contains(&format!("cannot connect to Kafka at {brokers}: ")), "{what}");
            assert!(last.contains(cause), "the last line does not say {cause:?}: {what}");
            assert_eq!(printed.matches(cause).count(), 1, "said more than once: {what}");
            // No retry storm: librdkafka's retries and OpenSSL's details stay out of the way of the one line.
            assert!(printed.lines().filter(|l| !l.trim().is_empty()).count() <= 3, "{what}");
            let shown = format!("{printed}{}", String::from_utf8_lossy(&out.stdout));
            assert!(!shown.contains(password) && !shown.contains(WRONG), "a password was printed: {what}");
            report.push(format!("{case:>24} {name:>6}: {:>5} ms  {last}", took.as_millis()));
        }
    }
    for line in report {
        eprintln!("{line}");
    }
}
