//! The store's side of the database: connecting, writing a batch with retries while the database is down,
//! and restoring the trackers after a restart.

use std::time::{Duration, Instant};

use framewire_common::backoff::Backoff;
use framewire_common::time::now_ms;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::batch::{Trackers, Work};
use super::{StoreArgs, StoreSummary};
use crate::events::store::{BatchAbandoned, BatchWritten, DbConnected, DbUnavailable, DbWriteFailed};
use crate::metrics::StoreMetrics;
use crate::repo::{Db, RepoError};

/// The first pause after a failure; doubled (with jitter) per failure up to `--retry-max`.
const RETRY_MIN: Duration = Duration::from_millis(200);

/// Opens the database, retrying while it does not answer; `None` when shutdown came first. TLS settings
/// that cannot work (a certificate that does not verify, a file that is missing) are an error at once: they
/// need an operator, and retrying would only hide them in the log.
pub async fn connect(
    url: &str,
    retry_max: Duration,
    metrics: &StoreMetrics,
    shutdown: &CancellationToken,
) -> Result<Option<Db>, RepoError> {
    let mut backoff = Backoff::jittered(RETRY_MIN, retry_max);
    loop {
        let error = match Db::open(url).await {
            Ok(db) => {
                DbConnected.emit(metrics);
                return Ok(Some(db));
            }
            Err(e @ (RepoError::Tls { .. } | RepoError::Url(_))) => return Err(e),
            Err(e) => e,
        };
        let retry_in = backoff.next_delay();
        DbUnavailable { error: &error, retry_in }.emit(metrics);
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            _ = tokio::time::sleep(retry_in) => {}
        }
    }
}

/// Writes `work` in one transaction, retrying with backoff while the database is down, and counts it.
/// Returns false when shutdown came first (nothing committed: the messages come again).
pub async fn commit(
    db: &mut Db,
    work: &Work,
    args: &StoreArgs,
    metrics: &StoreMetrics,
    summary: &mut StoreSummary,
    shutdown: &CancellationToken,
) -> bool {
    let frames = work.changes.frames.len();
    let mut backoff = Backoff::jittered(RETRY_MIN, args.retry_max);
    loop {
        let start = Instant::now();
        let error = match db.write(&work.changes, &args.alerts_topic).await {
            Ok(new_alerts) => {
                let rules: Vec<&str> = new_alerts.iter().map(|a| a.rule.as_str()).collect();
                let boxes = work.changes.frames.iter().map(|f| f.detections.boxes.len() as u64).sum();
                let fresh = frames as u64 - work.duplicates;
                BatchWritten {
                    frames: fresh,
                    boxes,
                    skipped: work.skipped,
                    unchanged: work.unchanged,
                    events_started: work.started,
                    alert_rules: &rules,
                    latencies_ms: &work.latencies_ms,
                    took: start.elapsed(),
                }
                .emit(metrics);
                summary.frames += fresh;
                summary.boxes += boxes;
                summary.duplicates += work.duplicates;
                summary.skipped += work.skipped;
                summary.unchanged += work.unchanged;
                summary.dead_letters += work.dead;
                summary.snapshots += work.snapshots;
                summary.snapshot_errors += work.snapshot_errors;
                summary.events += work.started;
                summary.alerts += rules.len() as u64;
                return true;
            }
            Err(e) => e,
        };
        let retry_in = backoff.next_delay();
        summary.db_retries += 1;
        DbWriteFailed { error: &error, retry_in, frames }.emit(metrics);
        tokio::select! {
            _ = shutdown.cancelled() => {
                BatchAbandoned { frames }.emit();
                return false;
            }
            _ = tokio::time::sleep(retry_in) => {}
        }
        if (db.is_closed() || error.needs_reconnect())
            && let Err(e) = db.reconnect().await
        {
            debug!(error = %e, "reconnect failed");
        }
    }
}

/// Loads open tracks and cursors, so a restarted store continues its events instead of starting new ones.
pub async fn restore(db: &mut Db, trackers: &mut Trackers) -> Result<(), RepoError> {
    let now = now_ms();
    let open = db.open_tracks().await?;
    let n = open.len();
    for row in open {
        for t in trackers.all_mut().filter(|t| t.scope() == row.scope) {
            t.restore(row.clone(), now);
        }
    }
    for c in db.cursors().await? {
        for t in trackers.all_mut().filter(|t| t.scope() == c.scope) {
            t.restore_cursor(&c.camera, &c.model, c.last_seq);
        }
    }
    if n > 0 {
        info!(open_events = n, "continuing open events");
    }
    Ok(())
}
