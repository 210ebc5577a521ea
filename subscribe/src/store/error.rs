//! Why `subscribe store` stopped with an error.

use crate::alerts::RulesError;
use crate::repo::RepoError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// Reaching Kafka, creating topics, a refused client setting.
    #[error(transparent)]
    Kafka(#[from] framewire_common::Error),
    #[error(transparent)]
    Client(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// `--snapshot-dir` names a store that cannot be opened (a bad URL or store setting).
    #[error("--snapshot-dir: {0}")]
    Snapshots(#[from] framewire_common::objects::ObjectError),
    /// `--smtp-url`, `--smtp-from` or `--smtp-ca` cannot be used.
    #[error(transparent)]
    Smtp(#[from] super::smtp::SmtpError),
    /// A task of the store's own panicked or was cancelled: a bug, not a condition to handle.
    #[error("internal error: {0}")]
    Internal(#[from] tokio::task::JoinError),
}
