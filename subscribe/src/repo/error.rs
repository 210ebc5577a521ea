//! Errors of the store's database; each names the database with any password hidden.

/// Errors of the database layer.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://USER@HOST/DB")]
    Url(String),
    #[error("SQLite {db}: {source}")]
    Sqlite {
        db: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("PostgreSQL {db}: {source}")]
    Postgres {
        db: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("PostgreSQL {db}: connection lost")]
    Closed { db: String },
    /// TLS settings that cannot work, or a TLS handshake that failed: the server and what to fix, in one line.
    #[error("PostgreSQL at {at}: {cause}")]
    Tls { at: String, cause: String },
    #[error("no database at {0} (has `subscribe store` run with this --db?)")]
    Missing(String),
    #[error("column {column} holds {found} where {expected} belongs")]
    Column { column: String, expected: &'static str, found: String },
    #[error("no column {column} in the result")]
    NoColumn { column: String },
    #[error("column {column} has the type {ty}, which the store never writes")]
    ColumnType { column: String, ty: String },
    #[error("{what} {value} is too large for a BIGINT column")]
    OutOfRange { what: &'static str, value: u64 },
    #[error("outbox row {id}: unknown kind {kind:?}")]
    OutboxKind { id: i64, kind: String },
    /// The blocking task that runs a SQLite transaction panicked or was cancelled.
    #[error("database task failed: {0}")]
    Internal(#[from] tokio::task::JoinError),
}

impl RepoError {
    /// Whether the connection itself is gone (a server restart), so that a new one may succeed where
    /// retrying on this one cannot.
    pub fn needs_reconnect(&self) -> bool {
        matches!(self, RepoError::Closed { .. } | RepoError::Postgres { .. })
    }
}

pub type Result<T, E = RepoError> = std::result::Result<T, E>;
