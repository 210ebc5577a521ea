//! `make demo-live` as a user runs it: scripts/demo-live.sh starts a broker of its own and the whole pipeline
//! on the sample clip looped as a live camera, with the store and the web view, until Ctrl-C; then it stops
//! everything it started and exits 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::BufRead as _;
use std::net::TcpStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

/// The script, started as a terminal starts a foreground job: in a process group of its own, which a
/// Ctrl-C signals as a whole.
struct Demo {
    child: Child,
    /// FRAMEWIRE_DEMO_LIVE_DIR: its logs, database, snapshots and broker, apart from a user's own demo.
    dir: PathBuf,
    /// What the script printed on stdout, line by line.
    lines: mpsc::Receiver<String>,
    /// The processes it said it started, once read from its pid file.
    pids: Vec<(String, u32)>,
}

impl Demo {
    fn start(dir: &Path, listen: &str) -> Demo {
        let err = std::fs::File::create(dir.join("script.err")).unwrap();
        let mut child = Command::new("bash")
            .arg(root().join("scripts/demo-live.sh"))
            .env("FRAMEWIRE_WEB_LISTEN", listen)
            .env("FRAMEWIRE_DEMO_LIVE_DIR", dir.join("demo"))
            .env_remove("FRAMEWIRE_BROKERS")
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .current_dir(root())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run scripts/demo-live.sh ({e})"));
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("demo-live: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Demo { child, dir: dir.join("demo"), lines, pids: Vec::new() }
    }

    /// What the script said on stderr (its progress, and why it failed).
    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.parent().unwrap().join("script.err")).unwrap_or_default()
    }

    /// Panics with what the script said if it has exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("scripts/demo-live.sh exited ({status}):\n{}", self.stderr());
        }
    }

    /// The first stdout line starting with `prefix`, the script still running.
    fn line(&mut self, prefix: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            match self.lines.recv_timeout(Duration::from_millis(500)) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(Duration::from_millis(500)),
            }
            self.assert_running();
            assert!(Instant::now() < deadline, "no line {prefix:?} within {within:?}:\n{}", self.stderr());
        }
    }

    /// The script's pid file: a "NAME PID" line per process it started.
    fn read_pids(&mut self) {
        let text = std::fs::read_to_string(self.dir.join("pids")).unwrap();
        self.pids = text
            .lines()
            .map(|l| {
                let (name, pid) = l.split_once(' ').unwrap_or_else(|| panic!("bad pid file line {l:?}"));
                (name.to_string(), pid.parse().unwrap())
            })
            .collect();
    }

    /// A Ctrl-C on the terminal: SIGINT to the whole foreground process group.
    fn interrupt(&self) {
        let group = format!("-{}", self.child.id());
        assert!(Command::new("kill").args(["-INT", "--", &group]).status().unwrap().success());
    }

    fn wait(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A test that failed midway stops the demo as a user would, and kills whatever is left.
impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.interrupt();
            if self.wait(Duration::from_secs(60)).is_none() {
                let group = format!("-{}", self.child.id());
                let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
                let _ = self.child.wait();
            }
        }
        for (_, pid) in self.pids.iter().filter(|(_, pid)| alive(*pid)) {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}

/// Whether `pid` is a process that has not been reaped: a zombie, still a child of someone, counts.
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// What the web view's /api/state says of `camera`: the frames it has shown.
fn frames_on_page(addr: &str, camera: &str) -> u64 {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", &format!("http://{addr}/api/state")])
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl ({e}): run `make setup`"));
    let Ok(state) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else { return 0 };
    let cameras = state["cameras"].as_array().cloned().unwrap_or_default();
    cameras.iter().find(|c| c["camera"] == camera).and_then(|c| c["frames"].as_u64()).unwrap_or(0)
}

/// The frames the store has written for `camera`, and the capture time they span in ms (the sqlite3 CLI, not
/// framewire's own reader); None while the database is not there or busy.
fn frames_stored(db: &Path, camera: &str) -> Option<(u64, u64)> {
    let query = format!(
        "SELECT count(*), coalesce(max(capture_ms) - min(capture_ms), 0) FROM frames WHERE camera = '{camera}'"
    );
    let out = Command::new("sqlite3")
        .arg("-readonly")
        .arg(db)
        .arg(query)
        .output()
        .unwrap_or_else(|e| panic!("cannot run sqlite3 ({e}): run `make setup`"));
    if !out.status.success() {
        return None;
    }
    let text = stdout(&out);
    let (count, span) = text.trim().split_once('|')?;
    Some((count.parse().ok()?, span.parse().ok()?))
}

/// Enough stored frames to tell a clip paced like a camera from one read at full speed.
const MIN_STORED: u64 = 20;

#[test]
fn slow_demo_live_serves_detections_of_the_looped_clip_and_stops_everything_on_ctrl_c() {
    // The script builds the binaries too; building them here first keeps that out of its start-up time.
    bin("subscribe");
    media("bikes.mp4");
    let tmp = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut demo = Demo::start(tmp.path(), &addr);

    let url = demo.line("live page:", Duration::from_secs(300));
    assert!(url.contains(&format!("http://{addr}/")), "the page's address is not {addr}: {url}");
    demo.line("Ctrl-C to stop", Duration::from_secs(5));
    demo.read_pids();
    let names: Vec<&str> = demo.pids.iter().map(|(name, _)| name.as_str()).collect();
    for name in ["broker", "detect", "store", "web", "ingest"] {
        assert!(names.contains(&name), "{name} is not in the pid file: {:?}", demo.pids);
    }

    // Frames detected while the page watches, and stored: the whole pipeline, from the clip to both.
    let db = demo.dir.join("framewire.db");
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut shown, mut stored) = (0, 0);
    while shown == 0 || stored < MIN_STORED {
        demo.assert_running();
        assert!(
            Instant::now() < deadline,
            "the page showed {shown} frames of camera bikes and the store held {stored} within 120 s:\n{}",
            demo.stderr()
        );
        std::thread::sleep(Duration::from_millis(500));
        shown = frames_on_page(&addr, "bikes");
        stored = frames_stored(&db, "bikes").map_or(0, |(count, _)| count);
    }

    demo.interrupt();
    let status = demo.wait(Duration::from_secs(90));
    let status = status.unwrap_or_else(|| panic!("still running 90 s after Ctrl-C:\n{}", demo.stderr()));
    assert!(status.success(), "exited with {status} after Ctrl-C:\n{}", demo.stderr());
    let left: Vec<_> = demo.pids.iter().filter(|(_, pid)| alive(*pid)).collect();
    assert!(left.is_empty(), "still running after the demo stopped: {left:?}\n{}", demo.stderr());
    assert!(!demo.dir.join("pids").exists(), "the pid file outlived the demo");
    // Stopped gracefully, the store kept what it had taken in.
    let (after, span_ms) = frames_stored(&db, "bikes").unwrap_or_else(|| panic!("cannot read {}", db.display()));
    assert!(after >= stored, "the store held {stored} frames while running but {after} after stopping");
    // Paced like a camera: frames come no faster than the demo's 10 frames/s (read unpaced, the clip's 100
    // sampled frames take about a second). Half the interval is allowed, for the sampler's uneven slots.
    assert!(
        span_ms >= (after - 1) * 50,
        "{after} frames captured within {span_ms} ms: the clip is not paced like a live camera at 10 frames/s"
    );
    assert!(TcpStream::connect(&addr).is_err(), "something still listens on {addr} after the demo stopped");
    println!("{}", demo.stderr());
}
