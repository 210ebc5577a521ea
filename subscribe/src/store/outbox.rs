//! Delivering the outbox: Kafka records until acknowledged, webhooks up to `--webhook-retries` attempts,
//! emails up to `--email-retries` (a permanent SMTP refusal at once), each row deleted once it is done.
//!
//! A round runs when a batch was written (woken), every couple of seconds (rows of another replica, or
//! left by a crash), and once more at shutdown. A failed row waits out its own jittered backoff before
//! the next attempt, so a failing webhook is not called at the pace of the batches; the database, when
//! down, is tried again the same way.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use framewire_common::backoff::Backoff;
use framewire_common::objects::Objects;
use framewire_common::time::now_ms;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error};

use super::email::{self, EmailJob, Snapshot};
use super::smtp::{Mailer, Refused};
use crate::events::store::{
    EmailFailed, EmailGivenUp, EmailSent, EmailWithoutSnapshot, OutboxPending, OutboxPublishFailed, WebhookDelivered,
    WebhookFailed, WebhookGivenUp,
};
use crate::metrics::StoreMetrics;
use crate::repo::{Db, OutboxKind, OutboxMessage, OutboxRow, RepoError};

/// Rows read per round.
const ROUND: i64 = 500;
/// Longest pause between rounds with nothing to wake them.
const POLL: Duration = Duration::from_secs(2);
/// Retry pauses of a failed row, and of the database when it is down.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// The outbox's delivery task.
pub struct Outbox {
    pub url: String,
    pub producer: FutureProducer,
    pub metrics: StoreMetrics,
    /// Notified after each committed batch.
    pub wake: Arc<Notify>,
    /// Cancelled at shutdown: one last round, then the task ends.
    pub stop: CancellationToken,
    /// Attempts before a webhook is given up.
    pub webhook_retries: u32,
    /// Sends alert emails; `None` without `--smtp-url`.
    pub mailer: Option<Mailer>,
    /// Attempts before an email is given up.
    pub email_retries: u32,
    /// Reads the snapshots emails attach.
    pub objects: Objects,
}

/// A row that failed: when to try it again, and the backoff that said so.
struct Waiting {
    at: Instant,
    backoff: Backoff,
}

impl Outbox {
    pub async fn run(self) {
        let http = match reqwest::Client::builder().timeout(Duration::from_secs(10)).build() {
            Ok(c) => c,
            Err(e) => {
                error!(error = %e, "cannot build the webhook client; webhooks off");
                return;
            }
        };
        let mut db: Option<Db> = None;
        let mut db_backoff = Backoff::jittered(RETRY_MIN, RETRY_MAX);
        let mut waiting: HashMap<i64, Waiting> = HashMap::new();
        let mut pause = POLL;
        let mut last_round = false;
        loop {
            if !last_round {
                tokio::select! {
                    _ = self.stop.cancelled() => last_round = true,
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(pause) => {}
                }
            }
            pause = POLL;
            if db.as_ref().is_none_or(Db::is_closed) {
                db = Db::connect(&self.url).await.ok();
            }
            let delivered = match db.as_mut() {
                Some(conn) => match self.round(conn, &http, &mut waiting, last_round).await {
                    Ok(()) => true,
                    Err(e) => {
                        debug!(error = %e, "outbox: database unavailable");
                        false
                    }
                },
                None => false,
            };
            if delivered {
                db_backoff.reset();
            } else {
                db = None;
                pause = db_backoff.next_delay();
            }
            if last_round {
                return;
            }
        }
    }

    /// Delivers the rows that are due (all of them in the last round).
    async fn round(
        &self,
        db: &mut Db,
        http: &reqwest::Client,
        waiting: &mut HashMap<i64, Waiting>,
        last_round: bool,
    ) -> Result<(), RepoError> {
        let rows = db.outbox(ROUND).await?;
        OutboxPending { rows: rows.len() }.emit(&self.metrics);
        // Rows done by another replica are forgotten.
        waiting.retain(|id, _| rows.iter().any(|r| r.id == *id));
        let now = Instant::now();
        for row in rows {
            if !last_round && waiting.get(&row.id).is_some_and(|w| w.at > now) {
                continue;
            }
            let done = match row.message.kind {
                OutboxKind::Kafka => self.publish(&row.message).await,
                OutboxKind::Webhook => self.call(db, http, &row).await?,
                OutboxKind::Email => self.mail(db, &row).await?,
            };
            if done {
                waiting.remove(&row.id);
                db.outbox_done(row.id).await?;
            } else {
                let w = waiting
                    .entry(row.id)
                    .or_insert_with(|| Waiting { at: now, backoff: Backoff::jittered(RETRY_MIN, RETRY_MAX) });
                w.at = Instant::now() + w.backoff.next_delay();
            }
        }
        Ok(())
    }

    /// Publishes a record; true once acknowledged.
    async fn publish(&self, m: &OutboxMessage) -> bool {
        let headers = OwnedHeaders::new().insert(Header { key: "content-type", value: Some("application/json") });
        let rec = FutureRecord::to(&m.target).key(&m.key).payload(&m.payload).headers(headers);
        match self.producer.send(rec, Duration::from_secs(10)).await {
            Ok(_) => true,
            Err((error, _)) => {
                OutboxPublishFailed { topic: &m.target, error: &error }.emit();
                false
            }
        }
    }

    /// Calls a webhook; true when it is done with (delivered, or given up after its last attempt).
    async fn call(&self, db: &mut Db, http: &reqwest::Client, row: &OutboxRow) -> Result<bool, RepoError> {
        let m = &row.message;
        let sent = http
            .post(&m.target)
            .header("content-type", "application/json")
            .body(m.payload.clone())
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        let attempt = row.attempts + 1;
        Ok(match sent {
            Ok(_) => {
                WebhookDelivered.emit(&self.metrics);
                true
            }
            Err(error) if attempt >= self.webhook_retries => {
                WebhookGivenUp { url: &m.target, attempts: attempt, error: &error }.emit(&self.metrics);
                true
            }
            Err(error) => {
                WebhookFailed { url: &m.target, attempt, error: &error }.emit();
                db.outbox_attempted(row.id, attempt).await?;
                false
            }
        })
    }

    /// Sends an alert email; true when it is done with (sent, refused for good, or given up after its last
    /// attempt). Waiting for its snapshot counts no attempt.
    async fn mail(&self, db: &mut Db, row: &OutboxRow) -> Result<bool, RepoError> {
        let (to, attempt) = (row.message.target.as_str(), row.attempts + 1);
        let job: EmailJob = match serde_json::from_str(&row.message.payload) {
            Ok(job) => job,
            Err(e) => {
                let error = format!("outbox row {} is not an email: {e}", row.id);
                EmailGivenUp { alert: "?", to, attempts: attempt, error: &error }.emit(&self.metrics);
                return Ok(true);
            }
        };
        let alert = job.alert.id.as_str();
        let Some(mailer) = &self.mailer else {
            return self.mail_failed(db, row, alert, "no SMTP server is given (--smtp-url)").await;
        };
        let Some(snapshot) = email::snapshot(db, &self.objects, &job, row.created_ms, now_ms()).await? else {
            debug!(alert, "email waits for its snapshot");
            return Ok(false);
        };
        if let Snapshot::Unavailable { path, error } = &snapshot {
            EmailWithoutSnapshot { alert, path, error }.emit();
        }
        let message = match email::compose(&job, &mailer.from, &snapshot) {
            Ok(m) => m,
            Err(error) => {
                EmailGivenUp { alert, to, attempts: attempt, error: &error }.emit(&self.metrics);
                return Ok(true);
            }
        };
        match mailer.send(&message).await {
            Ok(()) => {
                EmailSent { alert, to, attempt, snapshot: matches!(snapshot, Snapshot::Attached { .. }) }
                    .emit(&self.metrics);
                Ok(true)
            }
            Err(Refused::Permanent(error)) => {
                EmailGivenUp { alert, to, attempts: attempt, error: &error }.emit(&self.metrics);
                Ok(true)
            }
            Err(Refused::Transient(error)) => self.mail_failed(db, row, alert, &error).await,
        }
    }

    /// A failed attempt that another may mend: counted, and given up after the last one.
    async fn mail_failed(&self, db: &mut Db, row: &OutboxRow, alert: &str, error: &str) -> Result<bool, RepoError> {
        let (to, attempt) = (row.message.target.as_str(), row.attempts + 1);
        if attempt >= self.email_retries {
            EmailGivenUp { alert, to, attempts: attempt, error }.emit(&self.metrics);
            return Ok(true);
        }
        EmailFailed { alert, to, attempt, error }.emit();
        db.outbox_attempted(row.id, attempt).await?;
        Ok(false)
    }
}
