//! Progress for long runs: a bar on a terminal (frames, fps, % of the duration), a status log line every
//! ten seconds otherwise (logs, CI, systemd).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::Mutex;
use tracing::info;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// A bar when stderr is a terminal, status lines otherwise.
    Auto,
    Bar,
    Log,
}

const STATUS_EVERY: Duration = Duration::from_secs(10);

/// Shared between the decoder thread (position) and the producer task (published count).
#[derive(Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
    camera: Arc<str>,
    published: Arc<AtomicU64>,
    started: Instant,
    last_log: Arc<Mutex<Instant>>,
    duration_us: Option<i64>,
}

impl Progress {
    pub fn new(mode: Mode, camera: &str, duration_us: Option<i64>) -> Self {
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let bar = match (mode, tty) {
            (Mode::Bar, _) | (Mode::Auto, true) => {
                let bar = match duration_us {
                    Some(d) if d > 0 => {
                        let b = ProgressBar::new((d / 1000) as u64);
                        b.set_style(
                            ProgressStyle::with_template("{prefix} [{bar:30}] {percent:>3}% {elapsed_precise} {msg}")
                                .unwrap_or_else(|_| ProgressStyle::default_bar())
                                .progress_chars("=> "),
                        );
                        b
                    }
                    _ => ProgressBar::new_spinner(),
                };
                bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
                bar.set_prefix(camera.to_string());
                Some(bar)
            }
            _ => None,
        };
        Progress {
            bar,
            camera: camera.into(),
            published: Arc::new(AtomicU64::new(0)),
            started: Instant::now(),
            last_log: Arc::new(Mutex::new(Instant::now())),
            duration_us,
        }
    }

    pub fn set_position(&self, t_us: i64) {
        let published = self.published.load(Ordering::Relaxed);
        let fps = published as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        if let Some(bar) = &self.bar {
            bar.set_position((t_us.max(0) / 1000) as u64);
            bar.set_message(format!("{published} frames published, {fps:.1} fps"));
            return;
        }
        let Ok(mut last) = self.last_log.lock() else { return };
        if last.elapsed() >= STATUS_EVERY {
            *last = Instant::now();
            let percent = self.duration_us.filter(|d| *d > 0).map(|d| (t_us as f64 * 100.0 / d as f64).min(100.0));
            info!(camera = %self.camera, published, fps = format!("{fps:.1}"), percent = ?percent.map(|p| p.round()), "ingest progress");
        }
    }

    pub fn set_published(&self, n: u64) {
        self.published.store(n, Ordering::Relaxed);
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
