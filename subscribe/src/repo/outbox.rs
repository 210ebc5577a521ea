//! The outbox: topic records, webhook calls and emails written in a batch's transaction and delivered after it,
//! so they go out at least once even across a crash.

use super::backend::Statement;
use super::{Db, FromRow, RepoError, Result, Row};

/// Where an outbox row goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxKind {
    /// A record on a Kafka topic, sent until acknowledged.
    Kafka,
    /// A POST to a URL, given up after a number of attempts.
    Webhook,
    /// An alert mailed over SMTP (payload: `store::email::EmailJob`), given up after a number of attempts.
    Email,
}

impl OutboxKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxKind::Kafka => "kafka",
            OutboxKind::Webhook => "webhook",
            OutboxKind::Email => "email",
        }
    }
}

/// A record to publish, a webhook to call or an email to send.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    pub kind: OutboxKind,
    /// The topic, the webhook's URL, or an email's recipients (for the logs; the payload has them).
    pub target: String,
    /// The record's key (the camera): a camera's records stay in one partition, in order.
    pub key: String,
    /// JSON.
    pub payload: String,
}

/// An outbox row waiting for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub message: OutboxMessage,
    /// Failed webhook calls or emails so far.
    pub attempts: u32,
    /// When the row was written (Unix ms): how long an email has waited for its snapshot.
    pub created_ms: i64,
}

impl FromRow for OutboxRow {
    fn from_row(r: &Row) -> Result<Self> {
        let id = r.get("id")?;
        let kind = match r.get::<String>("kind")?.as_str() {
            "kafka" => OutboxKind::Kafka,
            "webhook" => OutboxKind::Webhook,
            "email" => OutboxKind::Email,
            other => return Err(RepoError::OutboxKind { id, kind: other.to_string() }),
        };
        Ok(OutboxRow {
            id,
            message: OutboxMessage {
                kind,
                target: r.get("target")?,
                key: r.get("msg_key")?,
                payload: r.get("payload")?,
            },
            attempts: r.get("attempts")?,
            created_ms: r.get("created_ms")?,
        })
    }
}

impl Db {
    /// The oldest `limit` rows waiting for delivery, oldest first.
    pub async fn outbox(&mut self, limit: i64) -> Result<Vec<OutboxRow>> {
        let sql = "SELECT id, kind, target, msg_key, payload, attempts, created_ms FROM outbox ORDER BY id LIMIT $1";
        self.rows(sql.into(), vec![limit.into()]).await
    }

    /// The row was delivered (or given up): it leaves the outbox.
    pub async fn outbox_done(&mut self, id: i64) -> Result<()> {
        self.execute(Statement::new("DELETE FROM outbox WHERE id = $1", vec![id.into()])).await
    }

    /// Records a failed attempt, so the count of attempts survives a restart.
    pub async fn outbox_attempted(&mut self, id: i64, attempts: u32) -> Result<()> {
        self.execute(Statement::new("UPDATE outbox SET attempts = $1 WHERE id = $2", vec![attempts.into(), id.into()]))
            .await
    }

    async fn execute(&mut self, statement: Statement) -> Result<()> {
        self.backend.transaction(vec![statement]).await.map(|_| ())
    }
}
