use std::time::Duration;

/// Errors shared by the binaries' Kafka and HTTP plumbing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid -X option {0:?}: expected key=value (a librdkafka setting)")]
    BadOverride(String),
    #[error(
        "cannot reach Kafka at {brokers} within {}: {reason}. Is a broker running? (start one with `make broker`, or set FRAMEWIRE_BROKERS)",
        humantime::format_duration(*waited)
    )]
    Unreachable { brokers: String, waited: Duration, reason: String },
    #[error("Kafka client error: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("could not create topic {topic}: {reason}")]
    CreateTopic { topic: String, reason: String },
    #[error("metrics endpoint: {0}")]
    Metrics(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
