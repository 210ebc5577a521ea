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

/// An error and its causes on one line, each said once: libraries whose top-level message leaves out why
/// (object_store's HTTP status, lettre's failed connection) are shown with the reason, and a cause that
/// repeats its parent's words (`Connection error` caused by `Connection error: invalid peer certificate`)
/// replaces it.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let c = err.to_string();
        if parts.last().is_some_and(|last| c.contains(last.as_str())) {
            parts.pop();
            parts.push(c);
        } else if !parts.iter().any(|p| p.contains(&c)) {
            parts.push(c);
        }
        next = err.source();
    }
    // Some libraries repeat a wrapper's words themselves (lettre: `Connection error: Connection error: …`).
    let mut said: Vec<&str> = Vec::new();
    let joined = parts.join(": ");
    for segment in joined.split(": ") {
        if said.last() != Some(&segment) {
            said.push(segment);
        }
    }
    said.join(": ")
}

#[cfg(test)]
mod tests {
    use super::chain;

    #[derive(Debug)]
    struct E(&'static str, Option<Box<E>>);

    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for E {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn causes_are_said_once() {
        let io = E("connection refused", None);
        let e = E("Connection error", Some(Box::new(E("Connection error: invalid peer certificate", None))));
        assert_eq!(chain(&e), "Connection error: invalid peer certificate");
        let e = E("request failed", Some(Box::new(E("HTTP 503", Some(Box::new(io))))));
        assert_eq!(chain(&e), "request failed: HTTP 503: connection refused");
        let e = E("read failed: connection refused", Some(Box::new(E("connection refused", None))));
        assert_eq!(chain(&e), "read failed: connection refused");
        let e = E("Connection error: Connection error: invalid peer certificate", None);
        assert_eq!(chain(&e), "Connection error: invalid peer certificate");
    }
}
