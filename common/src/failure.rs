//! Which Kafka errors a framewire binary retries and which stop it.
//!
//! Retrying a frame's delivery forever is right when the cause will pass (a broker restarting, a leader
//! moving, a slow disk): giving up would lose the frame, and back-pressure keeps memory bounded meanwhile.
//! It is wrong when the cause is a setting or a permission that only an operator can change: the binary would
//! sit at its in-flight bound forever, looking alive. Those errors stop it with a non-zero exit and one
//! line that says what to fix. The decision is made per librdkafka error code in [`classify`]; a code not
//! named there is retried, since librdkafka itself treats unknown broker errors as retriable and a spurious
//! stop of a whole replica costs more than a wait.

use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::client::Client;
use rdkafka::error::{KafkaError, RDKafkaErrorCode as Code};

/// Advice when librdkafka put the client in its fatal state.
const FENCED: &str = "restart this process; if it happens again, the broker log says why it fenced this client";

/// What to do about a failed produce or consume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The cause is expected to pass: retry with backoff, for as long as it takes.
    Retry,
    /// The broker does not know the topic or partition. Right after a topic is created (or re-created) this
    /// passes, so it is retried; once it persists for the missing-topic timeout, the binary stops.
    Missing,
    /// The message is larger than the broker or the topic accepts. A dead letter can be cut and sent again;
    /// anything else cannot get smaller by retrying.
    TooLarge,
    /// Retrying cannot help. The text says what the operator should fix.
    Fatal(&'static str),
}

/// The verdict for a librdkafka error code.
pub fn classify(code: Code) -> Verdict {
    match code {
        // The topic is gone or not yet visible. librdkafka reports UnknownTopic (local) once its metadata says
        // the topic does not exist, UnknownTopicOrPartition when a broker says so, UnknownPartition when the
        // partition count shrank under it.
        Code::UnknownTopicOrPartition | Code::UnknownTopic | Code::UnknownPartition | Code::UnknownTopicId => {
            Verdict::Missing
        }

        Code::MessageSizeTooLarge | Code::MessageBatchTooLarge | Code::InvalidMessageSize => Verdict::TooLarge,

        // The client instance is unusable (librdkafka's fatal error, e.g. the idempotent producer lost
        // its sequence guarantees): the real cause is in the client's fatal_error().
        Code::Fatal => Verdict::Fatal(FENCED),
        Code::Fenced | Code::ProducerFenced | Code::InvalidProducerEpoch => {
            Verdict::Fatal("another producer took over this one's identity; restart this process")
        }
        Code::FencedInstanceId | Code::UnreleasedInstanceId => {
            Verdict::Fatal("another replica uses the same --instance-id: give every replica its own")
        }

        // Permissions and credentials: only an operator can change them.
        Code::TopicAuthorizationFailed => Verdict::Fatal(
            "grant this client's principal Read on the topics it consumes and Write on the topics it produces to",
        ),
        Code::GroupAuthorizationFailed => {
            Verdict::Fatal("grant this client's principal Read on its consumer group (--group)")
        }
        Code::ClusterAuthorizationFailed | Code::TransactionalIdAuthorizationFailed => {
            Verdict::Fatal("grant this client's principal IdempotentWrite on the cluster (its producer is idempotent)")
        }
        Code::Authentication
        | Code::SaslAuthenticationFailed
        | Code::UnsupportedSASLMechanism
        | Code::IllegalSASLState
        | Code::UnacceptableCredential
        | Code::SSL => Verdict::Fatal("check the credentials and security settings passed with -X"),

        // The broker refuses this kind of request or record outright.
        Code::InvalidTopic => Verdict::Fatal("the topic name is not valid on this broker: choose another"),
        Code::PolicyViolation | Code::InvalidRecord => {
            Verdict::Fatal("the broker's topic policy refuses these records: check the topic's configuration")
        }
        Code::InvalidRequiredAcks | Code::UnsupportedForMessageFormat | Code::UnsupportedCompressionType => {
            Verdict::Fatal(
                "the broker does not support the producer settings: check -X overrides and the broker version",
            )
        }
        Code::UnsupportedVersion | Code::UnsupportedFeature => {
            Verdict::Fatal("the broker is too old for this client: use Kafka 2.x or newer")
        }
        Code::InvalidArgument | Code::InvalidConfig | Code::InvalidType | Code::NotConfigured => {
            Verdict::Fatal("a client setting is invalid: check the -X overrides")
        }
        Code::InconsistentGroupProtocol | Code::InvalidGroupId => {
            Verdict::Fatal("the consumer group is used by clients of another kind: give this one its own --group")
        }

        // Everything else passes with time: timeouts, brokers down or restarting, leaders moving, too few
        // in-sync replicas, a full local queue, coordinator changes, throttling.
        _ => Verdict::Retry,
    }
}

/// The verdict for an error as returned by rdkafka. A consumer error that librdkafka flags as fatal is
/// fatal whatever its code.
pub fn verdict(e: &KafkaError) -> Verdict {
    match e {
        KafkaError::MessageConsumptionFatal(code) => match classify(*code) {
            Verdict::Fatal(advice) => Verdict::Fatal(advice),
            _ => Verdict::Fatal(FENCED),
        },
        _ => e.rdkafka_error_code().map_or(Verdict::Retry, classify),
    }
}

/// What a fatal error is about: a client in librdkafka's fatal state reports every later call as "fatal",
/// and keeps the cause itself.
pub fn fatal_reason<C: ClientContext>(client: &Client<C>, e: &KafkaError) -> String {
    match client.fatal_error() {
        Some((code, reason)) => format!("{reason} ({code:?})"),
        None => e.to_string(),
    }
}

/// Whether the broker says `topic` does not exist: its answer has no entry for it with partitions and
/// without an error meaning "missing". An error when it does not answer: no answer is no proof of absence.
pub fn topic_missing<C: ClientContext>(client: &Client<C>, topic: &str, timeout: Duration) -> Result<bool, KafkaError> {
    let md = client.fetch_metadata(Some(topic), timeout)?;
    let exists = |t: &rdkafka::metadata::MetadataTopic| {
        t.name() == topic
            && !t.partitions().is_empty()
            && !t.error().is_some_and(|e| classify(Code::from(e)) == Verdict::Missing)
    };
    Ok(!md.topics().iter().any(exists))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passing_causes_are_retried() {
        for code in [
            Code::MessageTimedOut,
            Code::QueueFull,
            Code::AllBrokersDown,
            Code::BrokerTransportFailure,
            Code::RequestTimedOut,
            Code::NotLeaderForPartition,
            Code::LeaderNotAvailable,
            Code::NotEnoughReplicas,
            Code::NotEnoughReplicasAfterAppend,
            Code::NetworkException,
            Code::KafkaStorageError,
            Code::CoordinatorLoadInProgress,
            Code::RebalanceInProgress,
            Code::ThrottlingQuotaExceeded,
        ] {
            assert_eq!(classify(code), Verdict::Retry, "{code:?}");
        }
    }

    #[test]
    fn a_missing_topic_is_retried_until_it_persists() {
        for code in [Code::UnknownTopicOrPartition, Code::UnknownTopic, Code::UnknownPartition] {
            assert_eq!(classify(code), Verdict::Missing, "{code:?}");
        }
    }

    #[test]
    fn settings_and_permissions_are_fatal_with_advice() {
        for code in [
            Code::Fatal,
            Code::TopicAuthorizationFailed,
            Code::GroupAuthorizationFailed,
            Code::ClusterAuthorizationFailed,
            Code::SaslAuthenticationFailed,
            Code::Authentication,
            Code::FencedInstanceId,
            Code::InvalidTopic,
            Code::PolicyViolation,
            Code::UnsupportedVersion,
        ] {
            match classify(code) {
                Verdict::Fatal(advice) => assert!(!advice.is_empty(), "{code:?}"),
                other => panic!("{code:?} is {other:?}"),
            }
        }
        assert!(matches!(classify(Code::TopicAuthorizationFailed), Verdict::Fatal(a) if a.contains("Write")));
        assert!(matches!(classify(Code::FencedInstanceId), Verdict::Fatal(a) if a.contains("--instance-id")));
    }

    #[test]
    fn size_refusals_are_their_own_verdict() {
        assert_eq!(classify(Code::MessageSizeTooLarge), Verdict::TooLarge);
        assert_eq!(classify(Code::MessageBatchTooLarge), Verdict::TooLarge);
    }

    #[test]
    fn a_consumer_error_flagged_fatal_is_fatal_whatever_its_code() {
        let e = KafkaError::MessageConsumptionFatal(Code::BrokerTransportFailure);
        assert!(matches!(verdict(&e), Verdict::Fatal(_)));
        let e = KafkaError::MessageConsumption(Code::BrokerTransportFailure);
        assert_eq!(verdict(&e), Verdict::Retry);
        let e = KafkaError::MessageConsumption(Code::UnknownTopicOrPartition);
        assert_eq!(verdict(&e), Verdict::Missing);
        let e = KafkaError::MessageProduction(Code::TopicAuthorizationFailed);
        assert!(matches!(verdict(&e), Verdict::Fatal(_)));
    }
}
