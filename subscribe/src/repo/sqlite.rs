//! SQLite: a file, driven on blocking threads. A whole transaction runs in one blocking task, so a batch
//! costs one hand-over to the thread pool instead of one per statement.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use rusqlite::types::{Type, ValueRef};
use rusqlite::{Connection, TransactionBehavior};

use super::backend::{Backend, Statement};
use super::{RepoError, Result, Row, Value};

pub struct Sqlite {
    /// The URL with any password hidden, for errors.
    db: String,
    // Behind a mutex only so that the connection can move to a blocking task; one task uses it at a time.
    conn: Arc<Mutex<Connection>>,
}

impl Sqlite {
    pub fn open(path: &str, db: String) -> Result<Sqlite> {
        let err = |source| RepoError::Sqlite { db: db.clone(), source };
        if let Some(parent) = Path::new(path).parent()
            && !parent.as_os_str().is_empty()
        {
            // A missing directory shows up as the open error below.
            let _ = std::fs::create_dir_all(parent);
        }
        let c = Connection::open(path).map_err(err)?;
        // Set first: switching a new file to WAL waits, rather than fails, while another process does it.
        c.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        // WAL lets `query` and the web page read while `store` writes; FULL makes a commit durable before
        // `store` commits the Kafka offsets that depend on it.
        c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;").map_err(err)?;
        Ok(Sqlite { db, conn: Arc::new(Mutex::new(c)) })
    }

    /// Runs `f` on the connection in a blocking task.
    fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> BoxFuture<'static, Result<T>> {
        let conn = self.conn.clone();
        let db = self.db.clone();
        async move {
            let r = tokio::task::spawn_blocking(move || f(&mut lock(&conn))).await?;
            r.map_err(|source| RepoError::Sqlite { db, source })
        }
        .boxed()
    }
}

impl Backend for Sqlite {
    fn transaction(&mut self, statements: Vec<Statement>) -> BoxFuture<'_, Result<Vec<u64>>> {
        self.blocking(move |c| {
            // IMMEDIATE takes the write lock at BEGIN: a transaction that reads before it writes (a migration's
            // claim) then waits for another writer instead of failing on a stale snapshot.
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut changed = Vec::with_capacity(statements.len());
            for s in &statements {
                let n = if s.wanted(&changed) {
                    tx.prepare_cached(&s.sql)?.execute(rusqlite::params_from_iter(s.params.iter().map(to_sqlite)))?
                } else {
                    0
                };
                changed.push(n as u64);
            }
            tx.commit()?;
            Ok(changed)
        })
    }

    fn query(&mut self, sql: String, params: Vec<Value>) -> BoxFuture<'_, Result<Vec<Row>>> {
        self.blocking(move |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let columns: Arc<[String]> = stmt.column_names().into_iter().map(str::to_string).collect();
            let mut rows = stmt.query(rusqlite::params_from_iter(params.iter().map(to_sqlite)))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let values = columns
                    .iter()
                    .enumerate()
                    .map(|(i, name)| from_sqlite(row.get_ref(i)?, i, name))
                    .collect::<rusqlite::Result<_>>()?;
                out.push(Row::new(columns.clone(), values));
            }
            Ok(out)
        })
    }

    fn serial_key(&self) -> &'static str {
        "INTEGER PRIMARY KEY AUTOINCREMENT"
    }

    fn is_closed(&self) -> bool {
        false
    }
}

fn lock(c: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic mid-transaction drops (rolls back) the transaction before the guard: the connection is fine.
    c.lock().unwrap_or_else(PoisonError::into_inner)
}

fn to_sqlite(v: &Value) -> rusqlite::types::Value {
    match v {
        Value::Int(i) => rusqlite::types::Value::Integer(*i),
        Value::Real(r) => rusqlite::types::Value::Real(*r),
        Value::Text(t) => rusqlite::types::Value::Text(t.clone()),
        Value::Null => rusqlite::types::Value::Null,
    }
}

/// The value of column `i` (`name`); the store never writes BLOBs, and its text is UTF-8.
fn from_sqlite(v: ValueRef<'_>, i: usize, name: &str) -> rusqlite::Result<Value> {
    Ok(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Int(n),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(t) => Value::Text(std::str::from_utf8(t).map_err(rusqlite::Error::Utf8Error)?.to_string()),
        ValueRef::Blob(_) => return Err(rusqlite::Error::InvalidColumnType(i, name.to_string(), Type::Blob)),
    })
}
