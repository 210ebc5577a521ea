use std::time::Duration;

/// Errors shared by the binaries' Kafka and HTTP plumbing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `-X` or `FRAMEWIRE_KAFKA_OPTIONS` entry that is not `key=value`. `shown` is the entry only when it
    /// cannot hold a secret (a bare property name); the rest of it may be a password typed with the wrong
    /// separator.
    #[error("invalid Kafka setting {shown} in {origin}: expected key=value (a librdkafka setting){hint}")]
    BadOverride { origin: String, shown: String, hint: String },
    /// librdkafka refused a setting. `setting` and `reason` have secret values hidden.
    #[error("librdkafka refused the setting {setting}: {reason}")]
    BadSetting { setting: String, reason: String },
    #[error(
        "cannot reach Kafka at {brokers} within {}: {reason}. Is a broker running? (start one with `make broker`, or set FRAMEWIRE_BROKERS)",
        humantime::format_duration(*waited)
    )]
    Unreachable { brokers: String, waited: Duration, reason: String },
    /// The broker (or librdkafka, for a SASL mechanism it lacks) refuses this client's security settings:
    /// waiting longer cannot help. The refusal says what to fix, never with a secret.
    #[error("cannot connect to Kafka at {brokers}: {refusal}")]
    Refused { brokers: String, refusal: crate::kafka::Refusal },
    #[error("Kafka client error: {}", shown(.0))]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("could not create topic {topic}: {reason}")]
    CreateTopic { topic: String, reason: String },
    #[error("metrics endpoint: {0}")]
    Metrics(#[from] std::io::Error),
}

/// A Kafka error as it may be printed: librdkafka's config errors quote the refused value, which may be
/// a secret. (`KafkaArgs::config` reports those itself; this is for a client config built elsewhere.)
fn shown(e: &rdkafka::error::KafkaError) -> String {
    match e {
        rdkafka::error::KafkaError::ClientConfig(_, desc, key, value) if !value.is_empty() => {
            let desc = desc.replace(value.as_str(), &crate::redact::value(key, value));
            format!("librdkafka refused the setting {}: {desc}", crate::redact::setting(key, value))
        }
        e => e.to_string(),
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its causes on one line, each cause once: libraries whose top-level message leaves out why
/// (object_store's HTTP status, lettre's failed connection) are shown with the reason.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        source = cause.source();
    }
    s
}
