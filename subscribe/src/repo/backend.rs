//! What an engine must do for the store: run a transaction of statements, answer a query. The SQL itself
//! is written once, in the repo's other modules, for both engines.
//!
//! The SQL uses `$1, $2, …` placeholders, each once and in order: PostgreSQL numbers them, and SQLite binds
//! `$N` names by order of first appearance, so positional parameters mean the same on both.

use futures::future::BoxFuture;

use super::{Result, Row, Value};

/// One statement of a transaction.
#[derive(Debug, Clone)]
pub struct Statement {
    pub sql: String,
    pub params: Vec<Value>,
    /// Run only when the statement at this index changed a row: an alert is announced (outbox rows) only
    /// by the transaction that inserted it, decided inside that transaction.
    pub only_if: Option<usize>,
}

impl Statement {
    pub fn new(sql: impl Into<String>, params: Vec<Value>) -> Statement {
        Statement { sql: sql.into(), params, only_if: None }
    }

    /// This statement, run only when the one at `index` changed a row.
    pub fn only_if(self, index: usize) -> Statement {
        Statement { only_if: Some(index), ..self }
    }

    /// Whether to run it, given the rows changed by the statements before it.
    pub fn wanted(&self, changed: &[u64]) -> bool {
        self.only_if.is_none_or(|i| changed.get(i).is_some_and(|&n| n > 0))
    }
}

/// An engine behind the store's database.
pub trait Backend: Send + Sync {
    /// Runs `statements` in one transaction, all or none; returns the rows each changed (0 for one that was
    /// not wanted).
    fn transaction(&mut self, statements: Vec<Statement>) -> BoxFuture<'_, Result<Vec<u64>>>;

    /// The rows of one query.
    fn query(&mut self, sql: String, params: Vec<Value>) -> BoxFuture<'_, Result<Vec<Row>>>;

    /// The column definition of a primary key that numbers itself (the outbox's, which orders delivery).
    fn serial_key(&self) -> &'static str;

    /// Whether the connection is known to be dead (a PostgreSQL server gone); SQLite's never is.
    fn is_closed(&self) -> bool;
}
