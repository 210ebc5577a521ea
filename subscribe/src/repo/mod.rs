//! The store's database: every statement `subscribe store`, `query` and `web` run, with typed rows, over
//! SQLite (`sqlite://PATH`) or PostgreSQL (`postgres://…`) behind one `Backend` trait, so the SQL is
//! written once.
//!
//! # Layout
//! - `backend`: what an engine does (a transaction of statements, a query); `sqlite`, `postgres`.
//! - `tls`: PostgreSQL over TLS, with libpq's `sslmode`, `sslrootcert`, `sslcert` and `sslkey`.
//! - `schema`: the tables as ordered migrations (`migrations/*.sql`), with a version table.
//! - `value`: parameters and rows, read by column name with their types checked.
//! - `write`: the store's one transaction per batch.
//! - `read`: restoring the trackers and looking things up ([`EventFilter`], pages of events by [`PageKey`]).
//! - `review`: the web view's look-ups: cameras the store knows, a frame's snapshot, events per hour.
//! - `outbox`: the records and webhooks waiting to be delivered.
//! - `error`: [`RepoError`].

mod backend;
mod error;
mod outbox;
mod postgres;
mod read;
mod review;
mod schema;
mod sqlite;
mod tls;
mod value;
mod write;

use std::path::Path;

use framewire_common::redact;
use tracing::debug;

use backend::Backend;
pub use error::{RepoError, Result};
pub use outbox::{OutboxKind, OutboxMessage, OutboxRow};
pub use read::{CursorRow, DetectionRow, EventFilter, Page, PageKey};
pub use review::{HourCount, StoredCamera};
use value::{FromRow, Row, Value};
pub use write::{Changes, CursorKey, NewAlert, StoredFrame};

/// A connection to the store's database.
pub struct Db {
    url: String,
    backend: Box<dyn Backend>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("url", &redact::url(&self.url)).finish()
    }
}

/// Which engine a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Splits a database URL into its engine and the engine's own connection string.
pub fn parse_url(url: &str) -> Result<(Engine, String)> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(RepoError::Url(redact::url(url).into_owned()));
        }
        return Ok((Engine::Sqlite, path.to_string()));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Engine::Postgres, url.to_string()));
    }
    Err(RepoError::Url(redact::url(url).into_owned()))
}

impl Db {
    /// Opens the database and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Db> {
        let mut db = Db::connect(url).await?;
        schema::migrate(db.backend.as_mut(), schema::MIGRATIONS).await?;
        Ok(db)
    }

    /// Opens a database `subscribe store` has written (for look-ups): a missing SQLite file is an error
    /// rather than a new empty database, so a mistyped path does not just answer "nothing found".
    pub async fn open_existing(url: &str) -> Result<Db> {
        if let (Engine::Sqlite, path) = parse_url(url)?
            && !Path::new(&path).exists()
        {
            return Err(RepoError::Missing(path));
        }
        Db::open(url).await
    }

    /// Opens the database without touching its schema.
    pub async fn connect(url: &str) -> Result<Db> {
        let (engine, target) = parse_url(url)?;
        let backend: Box<dyn Backend> = match engine {
            Engine::Sqlite => Box::new(sqlite::Sqlite::open(&target, redact::url(url).into_owned())?),
            Engine::Postgres => Box::new(postgres::Postgres::connect(&target, redact::url(url).into_owned()).await?),
        };
        debug!(db = %redact::url(url), "database connected");
        Ok(Db { url: url.to_string(), backend })
    }

    /// Whether the connection is known to be dead (PostgreSQL server gone); SQLite never is.
    pub fn is_closed(&self) -> bool {
        self.backend.is_closed()
    }

    /// Replaces a dead connection with a new one.
    pub async fn reconnect(&mut self) -> Result<()> {
        *self = Db::connect(&self.url).await?;
        Ok(())
    }

    /// The rows of one query, as `T`.
    async fn rows<T: FromRow>(&mut self, sql: String, params: Vec<Value>) -> Result<Vec<T>> {
        self.backend.query(sql, params).await?.iter().map(T::from_row).collect()
    }
}

#[cfg(test)]
mod tests;
