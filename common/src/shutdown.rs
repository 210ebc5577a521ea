//! Graceful shutdown: the first Ctrl-C or SIGTERM cancels the token; the binaries then drain, commit and
//! flush. A second signal exits at once, for the operator who really means it.

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Returns a token cancelled on the first SIGINT/SIGTERM. Must be called inside a tokio runtime.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        // The listeners are created once and reused: a listener created after a signal was delivered can
        // report that same signal again, which would turn one SIGTERM into an immediate exit.
        let mut signals = Signals::new();
        signals.next().await;
        info!("shutdown requested: finishing in-flight work (signal again to exit at once)");
        t.cancel();
        signals.next().await;
        warn!("second signal: exiting without draining");
        std::process::exit(130);
    });
    token
}

struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals { term: signal(SignalKind::terminate()).ok(), int: signal(SignalKind::interrupt()).ok() }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        {
            async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                _ = recv(&mut self.term) => {}
                _ = recv(&mut self.int) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
