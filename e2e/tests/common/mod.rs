//! Harness for end-to-end tests: a real broker per test, the real binaries, unique topic names.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod chromium;
pub mod postgres;
pub mod s3;
pub mod secured;
pub mod smtp;
pub mod subscribers;
pub mod tls;

// Not every test file starts one.
#[allow(unused_imports)]
pub use secured::SecuredBroker;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use std::collections::{BTreeMap, BTreeSet};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn cache() -> PathBuf {
    std::env::var("FRAMEWIRE_CACHE").map(PathBuf::from).unwrap_or_else(|_| root().join(".cache"))
}

pub fn media(name: &str) -> PathBuf {
    let p = cache().join("media").join(name);
    assert!(p.exists(), "{} missing: run `make setup`", p.display());
    p
}

pub fn model() -> PathBuf {
    let p = cache().join("models/ssdlite_mobilenet_v2_coco.onnx");
    assert!(p.exists(), "{} missing: run `make setup`", p.display());
    p
}

/// Builds the workspace binaries once per test process and returns the path of `name`. Cargo builds only
/// the binaries of the package under test, so the others are built here, incrementally.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "framewire-ingest", "-p", "framewire-detect", "-p", "framewire-subscribe"])
            .current_dir(root())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the binaries failed");
        // target/debug/deps/<test> -> target/debug
        std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf()
    });
    dir.join(name)
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros();
    format!("{prefix}-{}-{t}-{n}", std::process::id())
}

/// A loopback port nothing listens on, never the same twice in one test process: the kernel may hand a
/// port just released back at once, and two services of one test given the same port would fight over it.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if given.insert(port) {
            return port;
        }
    }
}

/// A tansu broker on a free loopback port, killed on drop. `scripts/start-broker.sh` starts it, with the
/// demo's and the benchmarks' own start-up (`start_tansu` in `scripts/common.sh`: the binary, its flags, the
/// storage URLs, the secured broker's users and TLS, and the readiness check are defined there only;
/// `TANSU_BIN` names another binary). A [`SecuredBroker`] is one of these started secured.
pub struct Broker {
    /// `scripts/start-broker.sh`, which stays until tansu exits: waiting for it reaps tansu (and it stops the
    /// stunnel in front of a secured broker).
    starter: Child,
    /// tansu itself, the process that `kill`, `freeze` and drop signal.
    pid: u32,
    /// The bootstrap address clients are given: tansu itself, or the TLS in front of a secured broker.
    pub addr: String,
    /// The port tansu listens on.
    port: u16,
    launch: Launch,
    _dir: tempfile::TempDir,
}

/// How `scripts/start-broker.sh` starts a broker, again on `restart`, and what each of its clients needs.
#[derive(Clone, Default)]
struct Launch {
    /// The script's arguments after DIR and PORT: the storage (`memory` or `sqlite`), then a secured broker's
    /// `--user NAME --tls TLSPORT CERT KEY` (see `start_tansu`).
    args: Vec<String>,
    /// The user's password, which the script takes from its environment: never in a command line.
    password: Option<String>,
    /// librdkafka settings every client of this broker needs (SASL_SSL, the CA): the binaries get them in
    /// FRAMEWIRE_KAFKA_OPTIONS, as a user would give them, and the harness's own clients set them.
    client: Vec<(String, String)>,
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_on("memory")
    }

    /// A broker whose data is kept in SQLite (tansu's `libsql` storage), so it survives `restart`.
    pub fn start_persistent() -> Broker {
        Broker::start_on("sqlite")
    }

    fn start_on(storage: &str) -> Broker {
        let port = free_port();
        let launch = Launch { args: vec![storage.into()], ..Launch::default() };
        Broker::launch(tempfile::tempdir().unwrap(), port, format!("127.0.0.1:{port}"), launch)
    }

    /// Starts tansu on `port` with its data in `dir`; clients bootstrap from `addr`.
    fn launch(dir: tempfile::TempDir, port: u16, addr: String, launch: Launch) -> Broker {
        let (starter, pid) = Broker::spawn(dir.path(), port, &launch);
        Broker { starter, pid, addr, port, launch, _dir: dir }
    }

    /// Runs `scripts/start-broker.sh` and waits for its "PID BINARY" line, which it prints once tansu listens.
    fn spawn(dir: &Path, port: u16, launch: &Launch) -> (Child, u32) {
        let mut script = Command::new("bash");
        script.arg(root().join("scripts/start-broker.sh")).arg(dir).arg(port.to_string()).args(&launch.args);
        if let Some(password) = &launch.password {
            script.env("TANSU_USER_PASSWORD", password);
        }
        let mut starter = script
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run scripts/start-broker.sh ({e})"));
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(starter.stdout.take().unwrap()), &mut line).unwrap();
        let Some(pid) = line.split_whitespace().next().and_then(|pid| pid.parse().ok()) else {
            let out = starter.wait_with_output().unwrap();
            panic!("tansu did not start on port {port} ({}): {line}{}", out.status, stderr(&out));
        };
        (starter, pid)
    }

    /// A client config for this broker: its address and what its clients need (see [`Launch::client`]).
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.addr);
        for (k, v) in &self.launch.client {
            c.set(k, v);
        }
        c
    }

    /// The librdkafka settings every client needs, as FRAMEWIRE_KAFKA_OPTIONS lines; empty for a plain broker.
    pub fn kafka_options(&self) -> String {
        self.launch.client.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
    }

    /// Creates `topic` with `partitions` partitions, through the Kafka admin API as any client would (tansu's
    /// own CLI cannot authenticate to a secured broker).
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        let admin: AdminClient<rdkafka::client::DefaultClientContext> = self.client_config().create().unwrap();
        let new = NewTopic::new(topic, partitions as i32, TopicReplication::Fixed(1));
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        for result in block_on(admin.create_topics([&new], &options)).unwrap() {
            result.unwrap_or_else(|(t, e)| panic!("cannot create topic {t}: {e}"));
        }
    }

    /// SIGKILLs the broker: connections drop and nothing answers until `restart`.
    pub fn kill(&mut self) {
        // The starter exits as soon as tansu has: once it has, tansu's pid may already be another process's.
        if let Ok(None) = self.starter.try_wait() {
            signal(self.pid, "-KILL");
        }
        let _ = self.starter.wait();
    }

    /// Starts the broker again on the same port and storage (and, secured, the same users and TLS).
    pub fn restart(&mut self) {
        (self.starter, self.pid) = Broker::spawn(self._dir.path(), self.port, &self.launch);
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the broker: a broker that stops answering, without a
    /// disconnect.
    pub fn freeze(&self, frozen: bool) {
        assert!(signal(self.pid, if frozen { "-STOP" } else { "-CONT" }), "cannot signal tansu ({})", self.pid);
    }

    /// A command for one of the binaries, pointed at this broker, quiet, without a metrics port. A secured
    /// broker's settings, password included, go in the environment (FRAMEWIRE_KAFKA_OPTIONS), never argv.
    pub fn cmd(&self, name: &str) -> Command {
        let mut c = Command::new(bin(name));
        c.env("FRAMEWIRE_BROKERS", &self.addr)
            .env("FRAMEWIRE_METRICS_LISTEN", "off")
            .env("FRAMEWIRE_PROGRESS", "log")
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .current_dir(root());
        if !self.launch.client.is_empty() {
            c.env("FRAMEWIRE_KAFKA_OPTIONS", self.kafka_options());
        }
        c
    }

    /// Starts a detect replica reading `input` and writing `output`.
    pub fn detect(&self, input: &str, output: &str, group: &str) -> Service {
        self.detect_with(input, output, group, &[])
    }

    /// Starts a detect replica with extra flags.
    pub fn detect_with(&self, input: &str, output: &str, group: &str, extra: &[&str]) -> Service {
        let model = model();
        let mut args = vec!["--model", model.to_str().unwrap(), "--input-topic", input, "--output-topic", output];
        args.extend(["--group", group]);
        args.extend(extra);
        let child = self
            .cmd("detect")
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Service { child: Some(child) }
    }

    /// Starts a long-running binary (ingest on live sources, subscribers) with `args`.
    pub fn service(&self, name: &str, args: &[&str]) -> Service {
        let child = self.cmd(name).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        Service { child: Some(child) }
    }

    /// Every message of `topic` decoded as a `Frame`, once `want` arrived or `timeout` passed.
    pub fn read_frames(&self, topic: &str, want: usize, timeout: Duration) -> Vec<framewire_proto::Frame> {
        self.read(topic, want, timeout)
            .iter()
            .map(|m| framewire_proto::decode_frame(rdkafka::Message::payload(m).unwrap()).unwrap())
            .collect()
    }

    /// Runs ingest to completion.
    pub fn ingest(&self, args: &[&str]) -> Output {
        self.cmd("ingest").args(args).output().unwrap()
    }

    /// Publishes `source` as `camera` to `topic` (plus `extra` flags), asserting that ingest succeeded.
    /// Returns what it printed.
    pub fn ingest_ok(&self, camera: &str, topic: &str, source: &Path, extra: &[&str]) -> String {
        let mut args = vec!["--camera", camera, "--topic", topic];
        args.extend(extra);
        args.push(source.to_str().unwrap());
        let out = self.ingest(&args);
        assert!(out.status.success(), "ingest failed: {}", stderr(&out));
        stdout(&out)
    }

    /// Reads `topic` from the beginning until `want` messages arrived or `timeout` passed.
    pub fn read(&self, topic: &str, want: usize, timeout: Duration) -> Vec<OwnedMessage> {
        self.read_until(topic, timeout, |msgs| msgs.len() >= want)
    }

    /// Reads `topic` from the beginning until `done(messages so far)` or `timeout`.
    pub fn read_until(
        &self,
        topic: &str,
        timeout: Duration,
        done: impl Fn(&[OwnedMessage]) -> bool,
    ) -> Vec<OwnedMessage> {
        let deadline = Instant::now() + timeout;
        let Some(consumer) = self.reader_from_start(topic, deadline) else { return Vec::new() };
        let mut out = Vec::new();
        while !done(&out) && Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                out.push(m.detach());
            }
        }
        out
    }

    /// A consumer assigned every partition of `topic` from the beginning, once the topic exists (detect
    /// creates its output at start-up); None if it does not exist by `deadline`. It joins no group: a group
    /// rebalance would send it back to the start and show it messages twice.
    pub fn reader_from_start(&self, topic: &str, deadline: Instant) -> Option<BaseConsumer> {
        let consumer: BaseConsumer = self
            .client_config()
            .set("group.id", unique("reader"))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .unwrap();
        let partitions = loop {
            let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)).unwrap();
            let found =
                md.topics().iter().find(|t| t.name() == topic && t.error().is_none()).map(|t| t.partitions().len());
            match found {
                Some(n) if n > 0 => break n as i32,
                _ if Instant::now() >= deadline => return None,
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning).unwrap();
        }
        consumer.assign(&tpl).unwrap();
        Some(consumer)
    }

    pub fn read_detections(&self, topic: &str, want: usize, timeout: Duration) -> Vec<framewire_proto::Detections> {
        self.read(topic, want, timeout)
            .iter()
            .map(|m| framewire_proto::decode_detections(m.payload().unwrap()).unwrap())
            .collect()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            for name in ["tansu", "stunnel"] {
                let Ok(log) = std::fs::read_to_string(self._dir.path().join(format!("{name}.log"))) else { continue };
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- last {name} log lines ---");
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

/// A long-running binary, stopped with SIGTERM on drop.
pub struct Service {
    child: Option<Child>,
}

impl Service {
    /// Sends SIGTERM and waits; returns the exit status and everything it printed.
    pub fn stop(mut self) -> Output {
        let child = self.child.take().unwrap();
        terminate(&child);
        child.wait_with_output().unwrap()
    }
}

impl Service {
    /// Starts a prepared command (one needing an environment of its own, e.g. an S3 server's), its output
    /// kept for [`Service::stop`].
    pub fn spawn(mut cmd: Command) -> Service {
        let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        Service { child: Some(child) }
    }

    /// Panics with the output if the process has exited: a dead service is reported as such, not as a
    /// timeout of whatever waited for it.
    pub fn assert_running(&mut self) {
        let child = self.child.as_mut().unwrap();
        if child.try_wait().unwrap().is_some() {
            let out = self.child.take().unwrap().wait_with_output().unwrap();
            panic!("exited ({}):\n{}{}", out.status, stdout(&out), stderr(&out));
        }
    }

    /// The process id (for signals such as SIGSTOP).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGKILL: no drain, no commit, no goodbye to the group.
    pub fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        let _ = child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&c);
            let _ = c.wait();
        }
    }
}

fn terminate(child: &Child) {
    signal(child.id(), "-TERM");
}

/// Sends `sig` ("-TERM", "-KILL", "-STOP", ...) to `pid`; false if it could not.
fn signal(pid: u32, sig: &str) -> bool {
    Command::new("kill").args([sig, &pid.to_string()]).status().is_ok_and(|s| s.success())
}

/// Runs a future (an rdkafka admin call) to completion on this thread: the tests need no async runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// Makes an H.264 clip of `seconds` at `fps` from a still image with the FFmpeg CLI.
pub fn still_clip(image: &Path, seconds: u32, fps: u32, out: &Path) {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-loop", "1", "-i"])
        .arg(image)
        .args(["-t", &seconds.to_string(), "-r", &fps.to_string(), "-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(out)
        .status()
        .expect("ffmpeg CLI (make setup installs it)");
    assert!(status.success());
}

/// A JPEG's width and height, from its start-of-frame header (not from framewire's own decoder).
pub fn jpeg_size(image: &[u8]) -> (u32, u32) {
    // Start-of-frame marker: FF C0 (baseline) or FF C2 (progressive), then length, precision, height, width.
    let i = image.windows(2).position(|w| w[0] == 0xff && (w[1] == 0xc0 || w[1] == 0xc2)).expect("no SOF marker");
    let h = u32::from(image[i + 5]) << 8 | u32::from(image[i + 6]);
    let w = u32::from(image[i + 7]) << 8 | u32::from(image[i + 8]);
    (w, h)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
}

/// GStreamer's RTSP server on a loopback port, serving `rtsp://127.0.0.1:PORT/cam` (a live 320x240 H.264
/// test pattern at 25 fps); SIGKILLed on drop.
pub struct RtspServer {
    child: Option<Child>,
    pub port: u16,
}

impl RtspServer {
    pub fn start(port: u16) -> RtspServer {
        let mut child = Command::new("/usr/bin/python3")
            .arg(root().join("e2e/tests/support/rtsp_server.py"))
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the RTSP test server ({e}): run `make setup`"));
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "RTSP server on {port} did not start (needs the GStreamer packages of `make setup`)"
        );
        RtspServer { child: Some(child), port }
    }

    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/cam", self.port)
    }

    /// SIGKILL: the camera vanishes without a goodbye.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// The Prometheus exposition a `/metrics` endpoint serves. Panics (with the address and the error) when the
/// endpoint cannot be read: a failed scrape must not read as a zero.
pub fn scrape(addr: &str) -> String {
    try_scrape(addr).unwrap_or_else(|e| panic!("cannot scrape http://{addr}/metrics: {e}"))
}

/// [`scrape`] for an endpoint that may not be up yet (a process just started): retries until `within` has
/// passed, then panics with the last error.
pub fn scrape_when_up(addr: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        match try_scrape(addr) {
            Ok(body) => return body,
            Err(e) if Instant::now() >= deadline => panic!("http://{addr}/metrics not up within {within:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn try_scrape(addr: &str) -> Result<String, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    // One write: the endpoint answers after its first read, so a request sent in pieces can meet a closed socket.
    let request = format!("GET /metrics HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("not an HTTP answer: {text:?}"))?;
    match head.split_whitespace().nth(1) {
        Some("200") => Ok(body.to_string()),
        _ => Err(format!("answered {head:?}")),
    }
}

/// Sum of a metric's samples (all label sets).
pub fn total(metrics: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = metrics
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// Metric names a PromQL expression reads (histogram suffixes stripped).
pub fn metrics_in(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find(|c: char| c.is_ascii_alphabetic() || c == '_') {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        let word = &tail[..end];
        if word.starts_with("framewire_") || word.starts_with("process_") {
            let base = ["_bucket", "_sum", "_count"].iter().fold(word, |w, s| w.strip_suffix(s).unwrap_or(w));
            names.push(base.to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// The one-line JSON summary that `name` (`ingest`, `detect`, `tail`, `store`) printed among `printed`'s lines
/// when run with `--summary-format json`.
pub fn summary_json(printed: &str, name: &str) -> serde_json::Value {
    let head = format!(r#"{{"summary":"{name}""#);
    printed
        .lines()
        .rev()
        .find(|l| l.starts_with(&head))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no {name} summary (--summary-format json) in:\n{printed}"))
}

/// A count from ingest's JSON summary for `camera`: `published`, `decoded`, `dropped`, `reconnects`,
/// `skipped` or `damaged`.
pub fn ingest_count(printed: &str, camera: &str, what: &str) -> u64 {
    let summary = summary_json(printed, "ingest");
    summary["cameras"]
        .as_array()
        .and_then(|cameras| cameras.iter().find(|c| c["camera"] == camera))
        .and_then(|c| c[what].as_u64())
        .unwrap_or_else(|| panic!("no {what} count for camera {camera} in {summary}"))
}

/// A plain HTTP/1.1 GET: (status, headers, body).
pub fn http_get(addr: &str, path: &str, cookie: Option<&str>) -> Option<(u16, String, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let cookie = cookie.map(|c| format!("cookie: {c}\r\n")).unwrap_or_default();
    // One write (see `try_scrape`).
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\n{cookie}connection: close\r\n\r\n");
    s.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, head.to_string(), body.to_string()))
}

/// Waits until something accepts connections on `addr`.
pub fn wait_listening(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every message `topic` holds when called (up to each partition's high watermark), in partition and offset
/// order; none when the topic does not exist. Panics if they cannot all be read within `within`.
pub fn read_all(broker: &Broker, topic: &str, within: Duration) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = broker
        .client_config()
        .set("group.id", unique("tally"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    let md = consumer.fetch_metadata(Some(topic), within).unwrap_or_else(|e| panic!("metadata of {topic}: {e}"));
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else { return Vec::new() };
    if t.error().is_some() {
        return Vec::new();
    }
    let mut tpl = TopicPartitionList::new();
    let mut end: BTreeMap<i32, i64> = BTreeMap::new();
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for p in t.partitions() {
        let (low, high) = consumer
            .fetch_watermarks(topic, p.id(), within)
            .unwrap_or_else(|e| panic!("watermarks of {topic}/{}: {e}", p.id()));
        if high > low {
            tpl.add_partition_offset(topic, p.id(), Offset::Offset(low)).unwrap();
            end.insert(p.id(), high);
            next.insert(p.id(), low);
        }
    }
    if end.is_empty() {
        return Vec::new();
    }
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while end.iter().any(|(p, high)| next[p] < *high) {
        assert!(Instant::now() < deadline, "read {topic} to {end:?} within {within:?}: got to {next:?}");
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100))
            && let Some(high) = end.get(&m.partition())
            && m.offset() < *high
        {
            next.insert(m.partition(), m.offset() + 1);
            out.push(m.detach());
        }
    }
    out.sort_by_key(|m| (m.partition(), m.offset()));
    out
}

/// Every `Frame` `topic` holds now (see [`read_all`]).
pub fn all_frames(broker: &Broker, topic: &str) -> Vec<framewire_proto::Frame> {
    read_all(broker, topic, Duration::from_secs(30))
        .iter()
        .map(|m| framewire_proto::decode_frame(m.payload().unwrap_or_default()).unwrap())
        .collect()
}

/// Every `Detections` `topic` holds now (see [`read_all`]).
pub fn all_detections(broker: &Broker, topic: &str) -> Vec<framewire_proto::Detections> {
    read_all(broker, topic, Duration::from_secs(30))
        .iter()
        .map(|m| framewire_proto::decode_detections(m.payload().unwrap_or_default()).unwrap())
        .collect()
}

/// One row of the fault table, every figure read back by the test that reports it:
/// - `frames_in`: distinct frames that entered the stage under test (read back from its input topic, or the
///   producer's own count where the test verified it against that topic);
/// - `frames_out`: those of them with an answer read back from the output (a result on the output topic or
///   a dead letter for it; for ingest, the frame itself on the frames topic; for the store, its database row);
/// - `lost`: frames in without an answer;
/// - `duplicates`: answers beyond the first for the same frame (camera + seq).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub frames_in: u64,
    pub frames_out: u64,
    pub lost: u64,
    pub duplicates: u64,
}

/// What identifies a message of an input topic: a frame by camera and seq, anything else by its place.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Ident {
    Frame(String, u64),
    Other(i32, i64),
}

impl Tally {
    /// Compares what went in with what came out, as identities (either side may repeat one: a key that went
    /// in twice needs two answers). Panics on an answer to something that never went in.
    pub fn compare<K: Ord + std::fmt::Debug>(
        inputs: impl IntoIterator<Item = K>,
        outputs: impl IntoIterator<Item = K>,
    ) -> Tally {
        let mut counts: BTreeMap<K, (u64, u64)> = BTreeMap::new();
        for k in inputs {
            counts.entry(k).or_default().0 += 1;
        }
        let mut strays = Vec::new();
        for k in outputs {
            match counts.get_mut(&k) {
                Some(c) => c.1 += 1,
                None => strays.push(k),
            }
        }
        assert!(strays.is_empty(), "answers to something that never went in: {strays:?}");
        let mut t = Tally::default();
        for (i, o) in counts.values() {
            t.frames_in += i;
            t.frames_out += i.min(o);
            t.lost += i.saturating_sub(*o);
            t.duplicates += o.saturating_sub(*i);
        }
        t
    }

    /// Detect's tally: the messages of `input` (read back), against the results on `output` and the dead
    /// letters on `input`'s dead-letter topic. Waits up to `within` for every input to be answered, then
    /// counts what is there (a frame still unanswered then is lost).
    pub fn measure(broker: &Broker, input: &str, output: &str, within: Duration) -> Tally {
        Tally::measure_keys(broker, input, output, within, |_| true)
    }

    /// [`Tally::measure`] for the input messages whose Kafka key passes `keep` (ingest keys a frame by its
    /// camera).
    pub fn measure_keys(
        broker: &Broker,
        input: &str,
        output: &str,
        within: Duration,
        keep: impl Fn(&str) -> bool,
    ) -> Tally {
        let mut by_place: BTreeMap<(i32, i64), Ident> = BTreeMap::new();
        let mut kept: BTreeSet<Ident> = BTreeSet::new();
        for m in read_all(broker, input, within) {
            let id = match m.payload().map(framewire_proto::decode_frame) {
                Some(Ok(f)) => Ident::Frame(f.camera_id, f.seq),
                _ => Ident::Other(m.partition(), m.offset()),
            };
            if keep(&String::from_utf8_lossy(m.key().unwrap_or_default())) {
                kept.insert(id.clone());
            }
            by_place.insert((m.partition(), m.offset()), id);
        }
        let every: BTreeSet<Ident> = by_place.values().cloned().collect();
        let dlq = framewire_proto::names::dlq_topic(input);
        let deadline = Instant::now() + within;
        loop {
            let mut answers: Vec<Ident> = Vec::new();
            for m in read_all(broker, output, within) {
                let d = framewire_proto::decode_detections(m.payload().unwrap_or_default())
                    .unwrap_or_else(|e| panic!("{output} holds something that is not Detections: {e}"));
                answers.push(Ident::Frame(d.camera_id, d.seq));
            }
            for m in read_all(broker, &dlq, within) {
                let source = m
                    .headers()
                    .and_then(|h| h.iter().find(|h| h.key == framewire_proto::names::HEADER_DLQ_SOURCE))
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_else(|| panic!("a dead letter on {dlq} without its source header"));
                let mut place = source.rsplitn(3, '/');
                let offset: i64 = place.next().and_then(|o| o.parse().ok()).unwrap();
                let partition: i32 = place.next().and_then(|p| p.parse().ok()).unwrap();
                let id = by_place.get(&(partition, offset)).unwrap_or_else(|| panic!("dead letter from {source}"));
                answers.push(id.clone());
            }
            for a in &answers {
                assert!(every.contains(a), "{a:?} answered on {output} or {dlq} but never was on {input}");
            }
            answers.retain(|a| kept.contains(a));
            let answered: BTreeSet<&Ident> = answers.iter().collect();
            if kept.iter().all(|id| answered.contains(id)) || Instant::now() >= deadline {
                return Tally::compare(kept, answers);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Ingest's tally for `camera`: the frames it says it published (a count the caller checked), against
    /// the frames of that camera read back from `topic`.
    pub fn published(broker: &Broker, topic: &str, camera: &str, published: u64, within: Duration) -> Tally {
        let seqs: Vec<u64> = read_all(broker, topic, within)
            .iter()
            .filter(|m| m.key() == Some(camera.as_bytes()))
            .map(|m| framewire_proto::decode_frame(m.payload().unwrap_or_default()).unwrap().seq)
            .collect();
        let distinct = seqs.iter().collect::<BTreeSet<_>>().len() as u64;
        assert!(distinct <= published, "{topic} holds {distinct} frames of {camera}; ingest published {published}");
        Tally {
            frames_in: published,
            frames_out: distinct,
            lost: published - distinct,
            duplicates: seqs.len() as u64 - distinct,
        }
    }

    /// Records this tally as the fault table's row for `fault` (see [`report`]).
    pub fn report(&self, fault: &str) {
        report(fault, self.frames_in, self.frames_out, self.lost, self.duplicates);
    }

    /// A clear error that must leave Kafka untouched: reads `topic` back and panics unless it holds nothing.
    pub fn untouched(broker: &Broker, topic: &str) -> Tally {
        let held = read_all(broker, topic, Duration::from_secs(10));
        assert!(held.is_empty(), "{topic} holds {} messages after the error", held.len());
        Tally::default()
    }
}

/// Records one row of the fault suite's summary table, which `make test` prints after the tests
/// (`scripts/fault-table.sh`). Called at the end of a test, so a row exists only when its assertions passed.
/// Every figure must be one the test measured: [`Tally::report`] writes a [`Tally`]'s.
pub fn report(fault: &str, frames_in: u64, frames_out: u64, lost: u64, duplicates: u64) {
    let dir = root().join("target/fault-report");
    std::fs::create_dir_all(&dir).unwrap();
    let name: String = fault.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    std::fs::write(
        dir.join(format!("{name}.tsv")),
        format!("{fault}\t{frames_in}\t{frames_out}\t{lost}\t{duplicates}\tpass\n"),
    )
    .unwrap();
}
