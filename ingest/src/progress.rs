//! What a user sees while ingest runs: a bar per file camera on a terminal (position in the file, frames,
//! rate), and otherwise a status line per camera every ten seconds (state, rate, drops, reconnects) for
//! logs, CI and systemd. Decoder threads only update atomics; one task renders.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::metrics::Metrics;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// A bar when stderr is a terminal, status lines otherwise.
    Auto,
    Bar,
    Log,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    Connecting = 0,
    Streaming = 1,
    Reconnecting = 2,
    Finished = 3,
    Failed = 4,
}

impl State {
    fn from_u8(v: u8) -> State {
        match v {
            1 => State::Streaming,
            2 => State::Reconnecting,
            3 => State::Finished,
            4 => State::Failed,
            _ => State::Connecting,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            State::Connecting => "connecting",
            State::Streaming => "streaming",
            State::Reconnecting => "reconnecting",
            State::Finished => "finished",
            State::Failed => "failed",
        }
    }
}

/// One camera's live figures.
pub struct CameraStatus {
    pub id: String,
    state: AtomicU8,
    pub position_us: AtomicI64,
    /// Declared duration (files), or -1.
    duration_us: AtomicI64,
    live: AtomicBool,
    /// `--motion` is on: frames left out as unchanged are shown, so a quiet camera's low rate is explained.
    motion: bool,
}

impl CameraStatus {
    pub fn new(id: &str, motion: bool) -> Arc<Self> {
        Arc::new(CameraStatus {
            id: id.to_string(),
            motion,
            state: AtomicU8::new(State::Connecting as u8),
            position_us: AtomicI64::new(0),
            duration_us: AtomicI64::new(-1),
            live: AtomicBool::new(false),
        })
    }

    pub fn set_state(&self, s: State) {
        self.state.store(s as u8, Ordering::Relaxed);
    }

    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// The source is open: what it is and how long, for the bar and the percentage.
    pub fn opened(&self, duration_us: Option<i64>, live: bool) {
        self.duration_us.store(duration_us.filter(|d| *d > 0).unwrap_or(-1), Ordering::Relaxed);
        self.live.store(live, Ordering::Relaxed);
        self.set_state(State::Streaming);
    }

    fn percent(&self) -> Option<f64> {
        let d = self.duration_us.load(Ordering::Relaxed);
        (d > 0 && !self.live.load(Ordering::Relaxed))
            .then(|| (self.position_us.load(Ordering::Relaxed) as f64 * 100.0 / d as f64).clamp(0.0, 100.0))
    }
}

/// The cameras being shown; their figures come from the metrics.
pub struct Progress {
    cameras: Vec<Arc<CameraStatus>>,
    metrics: Metrics,
    bars: bool,
}

const STATUS_EVERY: Duration = Duration::from_secs(10);
const BAR_EVERY: Duration = Duration::from_millis(250);

impl Progress {
    pub fn new(mode: Mode, metrics: Metrics) -> Self {
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        Progress { cameras: Vec::new(), metrics, bars: matches!((mode, tty), (Mode::Bar, _) | (Mode::Auto, true)) }
    }

    pub fn add(&mut self, status: Arc<CameraStatus>) {
        self.cameras.push(status);
    }

    /// Renders until `done` fires, then clears the bars.
    pub async fn run(self, done: CancellationToken) {
        if self.bars { self.run_bars(done).await } else { self.run_log(done).await }
    }

    async fn run_log(self, done: CancellationToken) {
        let mut last: Vec<u64> = vec![0; self.cameras.len()];
        let mut last_at = Instant::now();
        loop {
            tokio::select! {
                _ = done.cancelled() => return,
                _ = tokio::time::sleep(STATUS_EVERY) => {}
            }
            let secs = last_at.elapsed().as_secs_f64().max(1e-3);
            last_at = Instant::now();
            for (i, s) in self.cameras.iter().enumerate() {
                let f = self.metrics.figures(&s.id);
                let fps = (f.published - last[i]) as f64 / secs;
                last[i] = f.published;
                let unchanged = s.motion.then_some(f.unchanged);
                info!(camera = %s.id, state = s.state().as_str(), published = f.published, fps = format!("{fps:.1}"),
                    dropped = f.dropped, reconnects = f.reconnects, skipped = f.skipped_files, unchanged,
                    percent = ?s.percent().map(f64::round), "ingest status");
            }
        }
    }

    async fn run_bars(self, done: CancellationToken) {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
        let started = Instant::now();
        let mut bars: Vec<Option<ProgressBar>> = vec![None; self.cameras.len()];
        loop {
            for (i, s) in self.cameras.iter().enumerate() {
                let bar = bars[i].get_or_insert_with(|| {
                    let b = multi.add(ProgressBar::new(1000));
                    b.set_prefix(s.id.clone());
                    b
                });
                let f = self.metrics.figures(&s.id);
                let fps = f.published as f64 / started.elapsed().as_secs_f64().max(1e-3);
                let mut msg = format!("{} published, {fps:.1} fps", f.published);
                if f.dropped > 0 {
                    msg += &format!(", {} dropped", f.dropped);
                }
                if f.reconnects > 0 {
                    msg += &format!(", {} reconnects", f.reconnects);
                }
                if s.motion {
                    msg += &format!(", {} unchanged", f.unchanged);
                }
                match s.percent() {
                    Some(p) => {
                        bar.set_style(style("{prefix} [{bar:30}] {percent:>3}% {elapsed_precise} {msg}"));
                        bar.set_position((p * 10.0) as u64);
                    }
                    None => {
                        bar.set_style(style("{prefix} {spinner} {msg}"));
                        msg = format!("{}: {msg}", s.state().as_str());
                        bar.tick();
                    }
                }
                bar.set_message(msg);
            }
            tokio::select! {
                _ = done.cancelled() => break,
                _ = tokio::time::sleep(BAR_EVERY) => {}
            }
        }
        for b in bars.into_iter().flatten() {
            b.finish_and_clear();
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ")
}
