//! The detection store's database: SQLite (`sqlite://PATH`) or PostgreSQL (`postgres://…`) behind one
//! small interface, so the SQL of the store is written once.
//!
//! The SQL uses `$1, $2, …` placeholders, each once and in order: PostgreSQL numbers them, and SQLite binds
//! `$N` names by order of first appearance, so positional parameters mean the same on both. Columns are only
//! BIGINT, DOUBLE PRECISION and TEXT, the types both engines and both drivers agree on.

use std::time::Duration;

use tracing::{debug, warn};

/// One SQL value. A `Null` parameter is typed as TEXT for PostgreSQL: only TEXT columns are nullable.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Real(f64),
    Text(String),
    Null,
}

impl Value {
    pub fn int(&self) -> i64 {
        match self {
            Value::Int(i) => *i,
            Value::Real(r) => *r as i64,
            Value::Text(t) => t.parse().unwrap_or(0),
            Value::Null => 0,
        }
    }

    pub fn real(&self) -> f64 {
        match self {
            Value::Int(i) => *i as f64,
            Value::Real(r) => *r,
            Value::Text(t) => t.parse().unwrap_or(0.0),
            Value::Null => 0.0,
        }
    }

    pub fn text(&self) -> Option<String> {
        match self {
            Value::Text(t) => Some(t.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Real(r) => Some(r.to_string()),
            Value::Null => None,
        }
    }

    /// The text, or "" for NULL.
    pub fn str(&self) -> String {
        self.text().unwrap_or_default()
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(v as i64)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(i64::from(v))
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(i64::from(v))
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::Real(f64::from(v))
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(i64::from(v))
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        v.map_or(Value::Null, Value::Text)
    }
}

/// Errors of the database layer; the message names the database (password hidden).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://USER@HOST/DB")]
    Url(String),
    #[error("SQLite {db}: {source}")]
    Sqlite { db: String, source: rusqlite::Error },
    #[error("PostgreSQL {db}: {source}")]
    Postgres { db: String, source: tokio_postgres::Error },
    #[error("PostgreSQL {db}: connection lost")]
    Closed { db: String },
    #[error("no database at {0} (has `subscribe store` run with this --db?)")]
    Missing(String),
    #[error("database task failed: {0}")]
    Task(String),
}

pub type DbResult<T> = std::result::Result<T, DbError>;

enum Conn {
    // Behind a mutex only so that blocking calls can run on `spawn_blocking`; one task uses it at a time.
    Sqlite(std::sync::Arc<std::sync::Mutex<rusqlite::Connection>>),
    Postgres(tokio_postgres::Client),
}

/// A connection to the store's database.
pub struct Db {
    url: String,
    conn: Conn,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("url", &redact(&self.url)).finish()
    }
}

/// The URL with any password replaced by `***`, for logs and errors (the one redaction every binary uses).
pub fn redact(url: &str) -> String {
    framewire_common::redact::url(url).into_owned()
}

/// Which engine a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Splits a database URL into its engine and the engine's own connection string.
pub fn parse_url(url: &str) -> DbResult<(Engine, String)> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(DbError::Url(url.into()));
        }
        return Ok((Engine::Sqlite, path.to_string()));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Engine::Postgres, url.to_string()));
    }
    Err(DbError::Url(url.into()))
}

impl Db {
    /// Opens the database and creates the tables that are missing.
    pub async fn open(url: &str) -> DbResult<Db> {
        let mut db = Db::connect(url).await?;
        db.migrate().await?;
        Ok(db)
    }

    /// Opens a database `subscribe store` has written (for look-ups): a missing SQLite file is an error
    /// rather than a new empty database, so a mistyped path does not just answer "nothing found".
    pub async fn open_existing(url: &str) -> DbResult<Db> {
        if let (Engine::Sqlite, path) = parse_url(url)?
            && !std::path::Path::new(&path).exists()
        {
            return Err(DbError::Missing(path));
        }
        Db::open(url).await
    }

    /// Opens the database without touching its schema.
    pub async fn connect(url: &str) -> DbResult<Db> {
        let (engine, target) = parse_url(url)?;
        let conn = match engine {
            Engine::Sqlite => {
                let db = redact(url);
                if let Some(parent) = std::path::Path::new(&target).parent()
                    && !parent.as_os_str().is_empty()
                {
                    let _ = std::fs::create_dir_all(parent);
                }
                let c =
                    rusqlite::Connection::open(&target).map_err(|source| DbError::Sqlite { db: db.clone(), source })?;
                // WAL lets `query` and the web page read while `store` writes; FULL makes a commit durable
                // before `store` commits the Kafka offsets that depend on it.
                c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
                    .map_err(|source| DbError::Sqlite { db: db.clone(), source })?;
                c.busy_timeout(Duration::from_secs(10)).map_err(|source| DbError::Sqlite { db, source })?;
                Conn::Sqlite(std::sync::Arc::new(std::sync::Mutex::new(c)))
            }
            Engine::Postgres => {
                let (client, connection) = tokio_postgres::connect(&target, tokio_postgres::NoTls)
                    .await
                    .map_err(|source| DbError::Postgres { db: redact(url), source })?;
                let db = redact(url);
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        warn!(%db, error = %e, "PostgreSQL connection ended");
                    }
                });
                Conn::Postgres(client)
            }
        };
        debug!(db = %redact(url), "database connected");
        Ok(Db { url: url.to_string(), conn })
    }

    pub fn engine(&self) -> Engine {
        match self.conn {
            Conn::Sqlite(_) => Engine::Sqlite,
            Conn::Postgres(_) => Engine::Postgres,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the connection is known to be dead (PostgreSQL server gone); SQLite never is.
    pub fn is_closed(&self) -> bool {
        match &self.conn {
            Conn::Sqlite(_) => false,
            Conn::Postgres(c) => c.is_closed(),
        }
    }

    /// Replaces a dead connection with a new one.
    pub async fn reconnect(&mut self) -> DbResult<()> {
        let fresh = Db::connect(&self.url).await?;
        self.conn = fresh.conn;
        Ok(())
    }

    fn sqlite_err(&self, source: rusqlite::Error) -> DbError {
        DbError::Sqlite { db: redact(&self.url), source }
    }

    fn pg_err(&self, source: tokio_postgres::Error) -> DbError {
        if source.is_closed() {
            return DbError::Closed { db: redact(&self.url) };
        }
        DbError::Postgres { db: redact(&self.url), source }
    }

    /// Runs statements without parameters (DDL, BEGIN/COMMIT).
    pub async fn batch(&mut self, sql: &str) -> DbResult<()> {
        match &self.conn {
            Conn::Sqlite(c) => {
                let c = c.clone();
                let sql = sql.to_string();
                let r = tokio::task::spawn_blocking(move || lock(&c).execute_batch(&sql))
                    .await
                    .map_err(|e| DbError::Task(e.to_string()))?;
                r.map_err(|e| self.sqlite_err(e))
            }
            Conn::Postgres(c) => c.batch_execute(sql).await.map_err(|e| self.pg_err(e)),
        }
    }

    /// Runs one statement; returns the number of rows it changed.
    pub async fn exec(&mut self, sql: &str, params: &[Value]) -> DbResult<u64> {
        match &self.conn {
            Conn::Sqlite(c) => {
                let c = c.clone();
                let sql = sql.to_string();
                let params = params.to_vec();
                let r = tokio::task::spawn_blocking(move || {
                    let c = lock(&c);
                    let mut stmt = c.prepare_cached(&sql)?;
                    stmt.execute(rusqlite::params_from_iter(params.iter().map(to_sqlite)))
                })
                .await
                .map_err(|e| DbError::Task(e.to_string()))?;
                r.map(|n| n as u64).map_err(|e| self.sqlite_err(e))
            }
            Conn::Postgres(c) => {
                let boxed = to_pg(params);
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                    boxed.iter().map(|b| b.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
                c.execute(sql, &refs).await.map_err(|e| self.pg_err(e))
            }
        }
    }

    /// Runs a query; every row as values in column order.
    pub async fn query(&mut self, sql: &str, params: &[Value]) -> DbResult<Vec<Vec<Value>>> {
        match &self.conn {
            Conn::Sqlite(c) => {
                let c = c.clone();
                let sql = sql.to_string();
                let params = params.to_vec();
                let r = tokio::task::spawn_blocking(move || -> rusqlite::Result<Vec<Vec<Value>>> {
                    let c = lock(&c);
                    let mut stmt = c.prepare_cached(&sql)?;
                    let n = stmt.column_count();
                    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter().map(to_sqlite)))?;
                    let mut out = Vec::new();
                    while let Some(row) = rows.next()? {
                        let mut v = Vec::with_capacity(n);
                        for i in 0..n {
                            v.push(match row.get_ref(i)? {
                                rusqlite::types::ValueRef::Null => Value::Null,
                                rusqlite::types::ValueRef::Integer(i) => Value::Int(i),
                                rusqlite::types::ValueRef::Real(r) => Value::Real(r),
                                rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                                    Value::Text(String::from_utf8_lossy(t).into_owned())
                                }
                            });
                        }
                        out.push(v);
                    }
                    Ok(out)
                })
                .await
                .map_err(|e| DbError::Task(e.to_string()))?;
                r.map_err(|e| self.sqlite_err(e))
            }
            Conn::Postgres(c) => {
                let boxed = to_pg(params);
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                    boxed.iter().map(|b| b.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
                let rows = c.query(sql, &refs).await.map_err(|e| self.pg_err(e))?;
                let mut out = Vec::with_capacity(rows.len());
                for row in rows {
                    let mut v = Vec::with_capacity(row.len());
                    for (i, col) in row.columns().iter().enumerate() {
                        use tokio_postgres::types::Type;
                        let t = col.type_();
                        let value = if *t == Type::INT8 {
                            row.try_get::<_, Option<i64>>(i).map(|o| o.map_or(Value::Null, Value::Int))
                        } else if *t == Type::INT4 {
                            row.try_get::<_, Option<i32>>(i).map(|o| o.map_or(Value::Null, |x| Value::Int(x.into())))
                        } else if *t == Type::FLOAT8 {
                            row.try_get::<_, Option<f64>>(i).map(|o| o.map_or(Value::Null, Value::Real))
                        } else if *t == Type::FLOAT4 {
                            row.try_get::<_, Option<f32>>(i)
                                .map(|o| o.map_or(Value::Null, |x| Value::Real(f64::from(x))))
                        } else {
                            row.try_get::<_, Option<String>>(i).map(|o| o.map_or(Value::Null, Value::Text))
                        };
                        v.push(value.map_err(|e| self.pg_err(e))?);
                    }
                    out.push(v);
                }
                Ok(out)
            }
        }
    }

    /// Creates the store's tables and indexes where missing.
    pub async fn migrate(&mut self) -> DbResult<()> {
        let outbox_id = match self.engine() {
            Engine::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
            Engine::Postgres => "BIGSERIAL PRIMARY KEY",
        };
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS frames (
                camera TEXT NOT NULL, seq BIGINT NOT NULL, model TEXT NOT NULL,
                capture_ms BIGINT NOT NULL, detected_ms BIGINT NOT NULL, stored_ms BIGINT NOT NULL,
                width BIGINT NOT NULL, height BIGINT NOT NULL, inference_ms DOUBLE PRECISION NOT NULL,
                source_partition BIGINT NOT NULL, source_offset BIGINT NOT NULL, box_count BIGINT NOT NULL,
                snapshot TEXT,
                PRIMARY KEY (camera, seq, model));
            CREATE INDEX IF NOT EXISTS frames_by_time ON frames (capture_ms);
            CREATE TABLE IF NOT EXISTS boxes (
                camera TEXT NOT NULL, seq BIGINT NOT NULL, model TEXT NOT NULL, idx BIGINT NOT NULL,
                label TEXT NOT NULL, class_id BIGINT NOT NULL, score DOUBLE PRECISION NOT NULL,
                x1 DOUBLE PRECISION NOT NULL, y1 DOUBLE PRECISION NOT NULL,
                x2 DOUBLE PRECISION NOT NULL, y2 DOUBLE PRECISION NOT NULL,
                capture_ms BIGINT NOT NULL,
                PRIMARY KEY (camera, seq, model, idx));
            CREATE INDEX IF NOT EXISTS boxes_by_label ON boxes (label, capture_ms);
            CREATE TABLE IF NOT EXISTS events (
                id TEXT PRIMARY KEY, scope TEXT NOT NULL, camera TEXT NOT NULL, model TEXT NOT NULL,
                label TEXT NOT NULL, start_ms BIGINT NOT NULL, end_ms BIGINT NOT NULL,
                start_seq BIGINT NOT NULL, end_seq BIGINT NOT NULL, frames BIGINT NOT NULL,
                peak_score DOUBLE PRECISION NOT NULL, peak_seq BIGINT NOT NULL,
                best_snapshot TEXT, best_score DOUBLE PRECISION NOT NULL,
                open BIGINT NOT NULL, alerted BIGINT NOT NULL,
                x1 DOUBLE PRECISION NOT NULL, y1 DOUBLE PRECISION NOT NULL,
                x2 DOUBLE PRECISION NOT NULL, y2 DOUBLE PRECISION NOT NULL);
            CREATE INDEX IF NOT EXISTS events_by_time ON events (scope, start_ms);
            CREATE INDEX IF NOT EXISTS events_open ON events (open);
            CREATE TABLE IF NOT EXISTS alerts (
                id TEXT PRIMARY KEY, rule TEXT NOT NULL, camera TEXT NOT NULL, model TEXT NOT NULL,
                label TEXT NOT NULL, score DOUBLE PRECISION NOT NULL, seq BIGINT NOT NULL,
                capture_ms BIGINT NOT NULL, started_ms BIGINT NOT NULL, duration_ms BIGINT NOT NULL,
                created_ms BIGINT NOT NULL, payload TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS cursors (
                scope TEXT NOT NULL, camera TEXT NOT NULL, model TEXT NOT NULL, last_seq BIGINT NOT NULL,
                PRIMARY KEY (scope, camera, model));
            CREATE TABLE IF NOT EXISTS outbox (
                id {outbox_id}, kind TEXT NOT NULL, target TEXT NOT NULL, msg_key TEXT NOT NULL,
                payload TEXT NOT NULL, attempts BIGINT NOT NULL, created_ms BIGINT NOT NULL);"
        );
        self.batch(&ddl).await
    }
}

fn lock(c: &std::sync::Mutex<rusqlite::Connection>) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
    c.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn to_sqlite(v: &Value) -> rusqlite::types::Value {
    match v {
        Value::Int(i) => rusqlite::types::Value::Integer(*i),
        Value::Real(r) => rusqlite::types::Value::Real(*r),
        Value::Text(t) => rusqlite::types::Value::Text(t.clone()),
        Value::Null => rusqlite::types::Value::Null,
    }
}

fn to_pg(params: &[Value]) -> Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> {
    params
        .iter()
        .map(|v| -> Box<dyn tokio_postgres::types::ToSql + Sync + Send> {
            match v {
                Value::Int(i) => Box::new(*i),
                Value::Real(r) => Box::new(*r),
                Value::Text(t) => Box::new(t.clone()),
                Value::Null => Box::new(None::<String>),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_engine() {
        assert_eq!(parse_url("sqlite://data/fw.db").unwrap(), (Engine::Sqlite, "data/fw.db".into()));
        assert_eq!(parse_url("sqlite:///var/lib/fw.db").unwrap(), (Engine::Sqlite, "/var/lib/fw.db".into()));
        assert_eq!(parse_url("postgres://u@h/db").unwrap().0, Engine::Postgres);
        assert_eq!(parse_url("postgresql://u@h/db").unwrap().0, Engine::Postgres);
        assert!(parse_url("mysql://x").is_err());
        assert!(parse_url("sqlite://").is_err());
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(redact("postgres://fw:secret@db:5432/fw"), "postgres://fw:***@db:5432/fw");
        assert_eq!(redact("postgres://fw@db/fw?password=secret"), "postgres://fw@db/fw?password=***");
        assert_eq!(redact("postgres://fw@db/fw"), "postgres://fw@db/fw");
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }

    #[tokio::test]
    async fn sqlite_round_trips_values_and_upserts() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let mut db = Db::open(&url).await.unwrap();
        let up = "INSERT INTO cursors (scope, camera, model, last_seq) VALUES ($1, $2, $3, $4)
                  ON CONFLICT (scope, camera, model) DO UPDATE SET last_seq = excluded.last_seq";
        db.exec(up, &["".into(), "cam".into(), "m".into(), 5i64.into()]).await.unwrap();
        db.exec(up, &["".into(), "cam".into(), "m".into(), 9i64.into()]).await.unwrap();
        let rows = db.query("SELECT camera, last_seq FROM cursors WHERE model = $1", &["m".into()]).await.unwrap();
        assert_eq!(rows, vec![vec![Value::Text("cam".into()), Value::Int(9)]]);
    }
}
