//! Keeps watch over the pipeline's stages. A stage that fails (a fatal Kafka error) or panics must stop the
//! whole replica with an error naming it: otherwise the stages before it fill their bounded channels and
//! stop, and detect would sit there looking alive, or end with "detected N" and exit code 0.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures::FutureExt as _;
use tokio_util::sync::CancellationToken;
use tracing::error;

use crate::{Error, Result};

/// Records the first stage failure and stops the pipeline on it.
#[derive(Clone)]
pub struct Supervisor {
    /// Cancelled on a stage failure (and on shutdown, as a child of the shutdown token): every stage loop
    /// watches it.
    stop: CancellationToken,
    /// The first failure: later ones are usually consequences of it (channels closing).
    failure: Arc<Mutex<Option<Error>>>,
}

impl Supervisor {
    pub fn new(stop: CancellationToken) -> Self {
        Self { stop, failure: Arc::new(Mutex::new(None)) }
    }

    /// The token every stage stops on.
    pub fn stop(&self) -> &CancellationToken {
        &self.stop
    }

    /// Records `e` (unless a failure was recorded already) and stops the pipeline.
    pub fn fail(&self, e: Error) {
        error!(error = %e, "stopping detect");
        if let Ok(mut f) = self.failure.lock()
            && f.is_none()
        {
            *f = Some(e);
        }
        self.stop.cancel();
    }

    /// Whether a stage has failed.
    pub fn failed(&self) -> bool {
        self.failure.lock().map_or(true, |f| f.is_some())
    }

    /// The first recorded failure, taken out.
    pub fn take_failure(&self) -> Option<Error> {
        self.failure.lock().ok().and_then(|mut f| f.take())
    }

    /// Runs `stage` on a named thread; its error or panic is recorded as this stage's failure.
    pub fn thread<F>(&self, stage: &'static str, f: F) -> Result<std::thread::JoinHandle<()>>
    where
        F: FnOnce() -> Result<()> + Send + 'static,
    {
        let me = self.clone();
        std::thread::Builder::new()
            .name(stage.into())
            .spawn(move || me.settle(stage, std::panic::catch_unwind(AssertUnwindSafe(f))))
            .map_err(|e| Error::internal(format!("cannot start the {stage} thread"), e))
    }

    /// Runs `stage` as a tokio task; its error or panic is recorded as this stage's failure, and the task
    /// yields `None` then.
    pub fn task<T, F>(&self, stage: &'static str, f: F) -> tokio::task::JoinHandle<Option<T>>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        let me = self.clone();
        tokio::spawn(async move {
            match AssertUnwindSafe(f).catch_unwind().await {
                Ok(Ok(v)) => Some(v),
                other => {
                    me.settle(stage, other.map(|r| r.map(|_| ())));
                    None
                }
            }
        })
    }

    fn settle(&self, stage: &'static str, outcome: std::thread::Result<Result<()>>) {
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.fail(e),
            Err(payload) => self.fail(Error::StagePanicked { stage, message: panic_message(payload.as_ref()) }),
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_thread_stops_the_pipeline_and_is_named() {
        let sup = Supervisor::new(CancellationToken::new());
        let h = sup.thread("inference", || panic!("tensor shape went wrong")).unwrap();
        h.join().unwrap();
        assert!(sup.stop().is_cancelled() && sup.failed());
        let e = sup.take_failure().unwrap();
        assert!(matches!(e, Error::StagePanicked { stage: "inference", .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("inference stage panicked") && msg.contains("tensor shape went wrong"), "{msg}");
    }

    #[test]
    fn a_formatted_panic_message_is_kept() {
        let sup = Supervisor::new(CancellationToken::new());
        let n = 3;
        sup.thread("preprocess", move || panic!("row {n} out of range")).unwrap().join().unwrap();
        assert!(sup.take_failure().unwrap().to_string().contains("row 3 out of range"));
    }

    #[test]
    fn a_clean_exit_is_not_a_failure() {
        let sup = Supervisor::new(CancellationToken::new());
        sup.thread("preprocess", || Ok(())).unwrap().join().unwrap();
        assert!(!sup.stop().is_cancelled() && !sup.failed());
        assert!(sup.take_failure().is_none());
    }

    #[test]
    fn the_first_failure_wins() {
        let sup = Supervisor::new(CancellationToken::new());
        sup.thread("consumer", || Err(Error::Inference("first".into()))).unwrap().join().unwrap();
        sup.thread("inference", || panic!("second")).unwrap().join().unwrap();
        assert!(sup.take_failure().unwrap().to_string().contains("first"));
    }

    #[tokio::test]
    async fn a_panicking_task_stops_the_pipeline_and_is_named() {
        let sup = Supervisor::new(CancellationToken::new());
        let out = sup.task("output", async { if true { panic!("boom") } else { Ok(1) } }).await.unwrap();
        assert_eq!(out, None);
        assert!(sup.stop().is_cancelled());
        assert!(sup.take_failure().unwrap().to_string().contains("output stage panicked: boom"));
        let ok = sup.task("output", async { Ok(7) }).await.unwrap();
        assert_eq!(ok, Some(7));
    }

    #[tokio::test]
    async fn a_failing_task_records_its_error() {
        let sup = Supervisor::new(CancellationToken::new());
        let r: Option<()> = sup.task("output", async { Err(Error::Inference("refused".into())) }).await.unwrap();
        assert_eq!(r, None);
        assert!(sup.take_failure().unwrap().to_string().contains("refused"));
    }
}
