//! Telling a broker that refuses this client (credentials, certificates, the wrong protocol) from a broker
//! that is not there yet.
//!
//! librdkafka treats both alike: it reconnects with backoff and reports each failure only through its error
//! and log callbacks, so a producer just times out. A refusal does not pass with time, so the start-up check
//! stops at the first one with what to fix, instead of waiting out `--connect-timeout`. Which error codes
//! are refusals is [`failure::classify`]'s call (it makes them fatal); librdkafka's wording then says which
//! setting is wrong. Two refusals come with a transport error code, which alone would pass, and are told
//! by librdkafka's own hint: a plaintext client at a TLS listener, and a TLS client at a plaintext one.

use std::fmt;

use rdkafka::ClientConfig;
use rdkafka::error::RDKafkaErrorCode as Code;

use crate::failure::{self, Verdict};

/// The SASL mechanisms this build of librdkafka has (GSSAPI needs Cyrus SASL, which it is built without).
const MECHANISMS: &str = "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER";

/// Who this client says it is, for the message: the mechanism and the user, never the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    mechanism: String,
    user: Option<String>,
    /// Whether `security.protocol` asks for TLS (SSL, SASL_SSL).
    tls: bool,
}

impl Identity {
    /// The identity a client made from `cfg` presents.
    pub fn of(cfg: &ClientConfig) -> Self {
        // `sasl.mechanism` is librdkafka's alias of `sasl.mechanisms`; GSSAPI is its default.
        let mechanism = cfg.get("sasl.mechanism").or_else(|| cfg.get("sasl.mechanisms")).unwrap_or("GSSAPI");
        let user = cfg.get("sasl.username").filter(|u| !u.is_empty()).map(String::from);
        let tls = cfg.get("security.protocol").is_some_and(|p| p.trim().to_ascii_lowercase().ends_with("ssl"));
        Identity { mechanism: mechanism.trim().to_string(), user, tls }
    }
}

/// Who refused a SASL mechanism.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refuser {
    /// librdkafka, when the client is created: it does not implement the mechanism.
    Client,
    /// The broker, in the SASL handshake; with the mechanisms it offers, when it said.
    Broker { offers: Option<String> },
}

/// Why a broker will not talk to this client, and what to fix. Shown as `cause: fix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The broker refused the SASL credentials (a wrong password, an unknown user).
    Credentials(Identity),
    /// The SASL mechanism is unknown to librdkafka or not enabled on the broker.
    Mechanism { mechanism: String, by: Refuser },
    /// The broker's certificate is not signed by a trusted CA, or does not name the host it was reached at:
    /// OpenSSL reports both the same way.
    Certificate,
    /// The broker wants a client certificate and got none.
    ClientCertificate,
    /// A plaintext client at a TLS listener: the listener closes the connection at the first request.
    ListenerIsTls,
    /// A TLS client at a plaintext listener: the handshake gets no TLS answer.
    ListenerIsPlaintext,
    /// Any other failed TLS handshake, with OpenSSL's words.
    Tls { detail: String },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Credentials(Identity { mechanism, user, .. }) => {
                write!(f, "authentication failed (SASL {mechanism}")?;
                if let Some(user) = user {
                    write!(f, " as user {user:?}")?;
                }
                match mechanism.as_str() {
                    "OAUTHBEARER" => write!(f, "): check the sasl.oauthbearer.* settings"),
                    "GSSAPI" => write!(f, "): check the sasl.kerberos.* settings"),
                    _ => write!(f, "): check sasl.username and sasl.password"),
                }
            }
            Refusal::Mechanism { mechanism, by: Refuser::Client } => write!(
                f,
                "SASL mechanism {mechanism:?} is not supported by this client: set sasl.mechanism to {MECHANISMS}"
            ),
            Refusal::Mechanism { mechanism, by: Refuser::Broker { offers: Some(offers) } } => write!(
                f,
                "SASL mechanism {mechanism:?} is not enabled on the broker, which offers {offers}: set sasl.mechanism to one of them"
            ),
            Refusal::Mechanism { mechanism, by: Refuser::Broker { offers: None } } => write!(
                f,
                "SASL mechanism {mechanism:?} is not enabled on the broker: set sasl.mechanism to one it offers"
            ),
            Refusal::Certificate => write!(
                f,
                "TLS certificate verify failed (the broker's certificate is not signed by the CA this client \
                 trusts, or does not name the host it was reached at): check ssl.ca.location and the broker address"
            ),
            Refusal::ClientCertificate => write!(
                f,
                "TLS handshake refused (the broker asks for a client certificate): set ssl.certificate.location \
                 and ssl.key.location"
            ),
            Refusal::ListenerIsTls => write!(
                f,
                "the broker closed the connection at the first request (is the listener TLS?): set \
                 security.protocol=SSL or SASL_SSL"
            ),
            Refusal::ListenerIsPlaintext => write!(
                f,
                "TLS handshake failed (is the listener plaintext?): set security.protocol=PLAINTEXT or SASL_PLAINTEXT"
            ),
            Refusal::Tls { detail } => write!(f, "TLS handshake failed ({detail}): check the ssl.* settings"),
        }
    }
}

impl Refusal {
    /// Whether `self` and `other` have the same cause, for logging each cause once.
    pub fn same_cause(&self, other: &Refusal) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

/// The refusal an error that librdkafka reported for a connection (`code`, and its text `reason`) means;
/// None when it may pass with time.
pub fn classify(code: Code, reason: &str, who: &Identity) -> Option<Refusal> {
    let text = reason.to_ascii_lowercase();
    if text.contains("connecting to a ssl listener") {
        return Some(Refusal::ListenerIsTls);
    }
    if text.contains("connecting to a plaintext broker listener") {
        return Some(Refusal::ListenerIsPlaintext);
    }
    if !who.tls && tls_record_as_size(reason) {
        return Some(Refusal::ListenerIsTls);
    }
    // OpenSSL's words, whichever code librdkafka gives them (SSL in the handshake, a transport failure when
    // TLS 1.3 reports it on the first read).
    if text.contains("certificate verify failed") {
        return Some(Refusal::Certificate);
    }
    if !matches!(failure::classify(code), Verdict::Fatal(_)) {
        return None;
    }
    match code {
        Code::SSL if text.contains("client ssl authentication might be required") => Some(Refusal::ClientCertificate),
        Code::SSL => Some(Refusal::Tls { detail: openssl_words(reason) }),
        Code::UnsupportedSASLMechanism => Some(Refusal::Mechanism {
            mechanism: who.mechanism.clone(),
            by: Refuser::Broker { offers: offers(reason) },
        }),
        Code::Authentication
        | Code::SaslAuthenticationFailed
        | Code::IllegalSASLState
        | Code::UnacceptableCredential => Some(if text.contains("mechanism handshake failed") {
            Refusal::Mechanism { mechanism: who.mechanism.clone(), by: Refuser::Broker { offers: offers(reason) } }
        } else {
            Refusal::Credentials(who.clone())
        }),
        _ => None,
    }
}

/// The refusal a line librdkafka logs about a failed connection (facility `FAIL`) means, for the one
/// refusal it only logs: a TLS listener closes a plaintext client's connection at its first request
/// (ApiVersion), which librdkafka logs as a disconnect, at info level, with no error event.
pub fn from_log(message: &str, who: &Identity) -> Option<Refusal> {
    let closed_at_first_request = message.contains("Disconnected") && message.contains("in state APIVERSION_QUERY");
    (!who.tls && closed_at_first_request).then_some(Refusal::ListenerIsTls)
}

/// Whether librdkafka read the header of a TLS record (an alert from a TLS listener: type 0x15, version 3.x)
/// as the size of a Kafka response: "Invalid response size 352518912 (0..100000000)".
fn tls_record_as_size(reason: &str) -> bool {
    let size = reason.split_once("Invalid response size ").and_then(|(_, r)| r.split(' ').next()?.parse::<i32>().ok());
    size.is_some_and(|n| matches!(n.to_be_bytes(), [0x14..=0x17, 3, _, _]))
}

/// The refusal a failure to create a client means (librdkafka checks the SASL mechanism only then), if any.
pub fn at_creation(reason: &str, who: &Identity) -> Option<Refusal> {
    let mechanism_unknown =
        ["Unsupported SASL mechanism", "Unsupported hash function", "No provider for SASL mechanism"];
    mechanism_unknown
        .iter()
        .any(|m| reason.contains(m))
        .then(|| Refusal::Mechanism { mechanism: who.mechanism.clone(), by: Refuser::Client })
}

/// The mechanisms the broker offers, from librdkafka's "...: broker's supported mechanisms: A,B (after ...)".
fn offers(reason: &str) -> Option<String> {
    let list = reason.split_once("supported mechanisms: ")?.1;
    let list = list.split(" (after ").next().unwrap_or(list).trim();
    (!list.is_empty()).then(|| list.split(',').map(str::trim).collect::<Vec<_>>().join(", "))
}

/// OpenSSL's part of librdkafka's "HOST/ID: SSL handshake failed: WORDS (after Nms in state S)".
fn openssl_words(reason: &str) -> String {
    let words = reason.split_once("SSL handshake failed: ").map_or(reason, |(_, w)| w);
    words.split(" (after ").next().unwrap_or(words).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scram(user: &str) -> Identity {
        Identity { mechanism: "SCRAM-SHA-512".into(), user: Some(user.into()), tls: true }
    }

    fn plaintext() -> Identity {
        Identity { mechanism: "GSSAPI".into(), user: None, tls: false }
    }

    // The texts are librdkafka's (2.12) and OpenSSL's (3.x), as `rd_kafka_broker_fail` words them.
    const BAD_PASSWORD: &str = "sasl_ssl://localhost:9093/bootstrap: SASL authentication error: Authentication \
        failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (after 4ms in \
        state AUTH_REQ)";
    const BAD_CA: &str = "ssl://localhost:9093/bootstrap: SSL handshake failed: error:0A000086:SSL \
        routines::certificate verify failed: broker certificate could not be verified, verify that ssl.ca.location \
        is correctly configured or root CA certificates are installed (install ca-certificates package) (after 3ms \
        in state SSL_HANDSHAKE)";
    const PLAIN_AT_TLS: &str = "localhost:9093/bootstrap: Disconnected while requesting ApiVersion: might be caused \
        by incorrect security.protocol configuration (connecting to a SSL listener?) or broker version is < 0.10 \
        (see api.version.request) (after 1ms in state APIVERSION_QUERY)";
    const TLS_AT_PLAIN: &str = "ssl://localhost:9092/bootstrap: SSL handshake failed: Disconnected: connection \
        closed by peer: connecting to a PLAINTEXT broker listener? (after 2ms in state SSL_HANDSHAKE)";
    const MECHANISM_AT_BROKER: &str = "sasl_ssl://localhost:9093/bootstrap: SASL SCRAM-SHA-256 mechanism \
        handshake failed: Broker: Unsupported SASL mechanism: broker's supported mechanisms: PLAIN,SCRAM-SHA-512 \
        (after 2ms in state AUTH_HANDSHAKE)";

    #[test]
    fn wrong_credentials_name_the_mechanism_and_user_and_what_to_check() {
        for code in [Code::Authentication, Code::SaslAuthenticationFailed] {
            let r = classify(code, BAD_PASSWORD, &scram("fw")).unwrap();
            assert_eq!(r, Refusal::Credentials(scram("fw")));
            assert_eq!(
                r.to_string(),
                "authentication failed (SASL SCRAM-SHA-512 as user \"fw\"): check sasl.username and sasl.password"
            );
        }
    }

    #[test]
    fn certificates_that_do_not_verify_point_at_the_ca_and_the_host() {
        let r = classify(Code::SSL, BAD_CA, &scram("fw")).unwrap();
        assert_eq!(r, Refusal::Certificate);
        let shown = r.to_string();
        assert!(shown.starts_with("TLS certificate verify failed") && shown.contains("ssl.ca.location"), "{shown}");
        // A host name the certificate does not list fails verification in the same words.
        let host = BAD_CA.replace("localhost", "127.0.0.1");
        assert_eq!(classify(Code::SSL, &host, &scram("fw")), Some(Refusal::Certificate));
        // Seen too: the same failure reported on the first read, with a transport error code.
        let on_read = "sasl_ssl://localhost:43819/bootstrap: error:0A000086:SSL routines::certificate verify \
                       failed (after 2ms in state SSL_HANDSHAKE)";
        assert_eq!(classify(Code::BrokerTransportFailure, on_read, &scram("fw")), Some(Refusal::Certificate));
    }

    #[test]
    fn a_protocol_mismatch_is_told_by_librdkafkas_hint_although_its_code_would_pass() {
        assert_eq!(failure::classify(Code::BrokerTransportFailure), Verdict::Retry);
        let r = classify(Code::BrokerTransportFailure, PLAIN_AT_TLS, &scram("fw")).unwrap();
        assert_eq!(r, Refusal::ListenerIsTls);
        assert!(r.to_string().contains("(is the listener TLS?): set security.protocol=SSL or SASL_SSL"), "{r}");
        // librdkafka 2.12 words that hint only for some disconnects; the others it logs at info level only.
        let logged = "127.0.0.1:9093/bootstrap: Disconnected: connection closed by peer: receive 0 after POLLIN \
                      (after 0ms in state APIVERSION_QUERY)";
        assert_eq!(from_log(logged, &plaintext()), Some(Refusal::ListenerIsTls));
        let reset = logged.replace("closed by peer: receive 0 after POLLIN", "reset by peer");
        assert_eq!(from_log(&reset, &plaintext()), Some(Refusal::ListenerIsTls));
        assert_eq!(from_log(logged, &scram("fw")), None, "a TLS client is not at fault for a disconnect");
        let later = logged.replace("APIVERSION_QUERY", "UP");
        assert_eq!(from_log(&later, &plaintext()), None, "a broker going away is no refusal");
        // A TLS listener that answers with an alert: its record header read as a response size.
        let alert = "h:9093/bootstrap: Receive failed: Invalid response size 352518912 (0..100000000): increase \
                     receive.message.max.bytes (after 1ms in state APIVERSION_QUERY)";
        assert_eq!(classify(Code::BadMessage, alert, &plaintext()), Some(Refusal::ListenerIsTls));
        let big = alert.replace("352518912", "120000000");
        assert_eq!(classify(Code::BadMessage, &big, &plaintext()), None);

        let r = classify(Code::BrokerTransportFailure, TLS_AT_PLAIN, &scram("fw")).unwrap();
        assert_eq!(r, Refusal::ListenerIsPlaintext);
        assert!(r.to_string().contains("security.protocol=PLAINTEXT or SASL_PLAINTEXT"), "{r}");
    }

    #[test]
    fn an_unknown_mechanism_is_refused_by_librdkafka_or_by_the_broker() {
        let who = Identity { mechanism: "SCRAM-SHA-999".into(), ..scram("fw") };
        let r = at_creation("Unsupported hash function: SCRAM-SHA-999 (try SCRAM-SHA-512)", &who).unwrap();
        assert_eq!(
            r.to_string(),
            "SASL mechanism \"SCRAM-SHA-999\" is not supported by this client: set sasl.mechanism to PLAIN, \
             SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER"
        );
        assert!(at_creation("Unsupported SASL mechanism: FOO", &who).is_some());
        // GSSAPI, librdkafka's default mechanism, needs Cyrus SASL, which this build lacks.
        let gssapi = at_creation("No provider for SASL mechanism GSSAPI: recompile librdkafka with libsasl2", &who);
        assert!(gssapi.is_some());
        assert_eq!(at_creation("ssl.ca.location failed: No such file", &who), None);

        let who = Identity { mechanism: "SCRAM-SHA-256".into(), user: None, tls: true };
        let r = classify(Code::Authentication, MECHANISM_AT_BROKER, &who).unwrap();
        assert_eq!(
            r.to_string(),
            "SASL mechanism \"SCRAM-SHA-256\" is not enabled on the broker, which offers PLAIN, SCRAM-SHA-512: set \
             sasl.mechanism to one of them"
        );
        let r = classify(Code::UnsupportedSASLMechanism, "Broker: Unsupported SASL mechanism", &who).unwrap();
        assert!(matches!(r, Refusal::Mechanism { by: Refuser::Broker { offers: None }, .. }), "{r:?}");
    }

    #[test]
    fn other_tls_failures_keep_openssls_words() {
        let reason = "ssl://h:9093/bootstrap: SSL handshake failed: error:0A000410:SSL routines::sslv3 alert \
                      handshake failure (after 3ms in state SSL_HANDSHAKE)";
        let r = classify(Code::SSL, reason, &scram("fw")).unwrap();
        assert_eq!(
            r.to_string(),
            "TLS handshake failed (error:0A000410:SSL routines::sslv3 alert handshake failure): check the ssl.* settings"
        );
        let reason = "ssl://h:9093/bootstrap: SSL handshake failed: error:0A0000F4:SSL routines::unexpected \
                      message: client SSL authentication might be required (see ssl.key.location)";
        assert_eq!(classify(Code::SSL, reason, &scram("fw")), Some(Refusal::ClientCertificate));
    }

    #[test]
    fn errors_that_pass_with_time_are_not_refusals() {
        let who = scram("fw");
        for (code, reason) in [
            (
                Code::BrokerTransportFailure,
                "127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused (after 0ms in state CONNECT)",
            ),
            (Code::AllBrokersDown, "1/1 brokers are down"),
            (Code::RequestTimedOut, "Timed out"),
            // Fatal, but not about the connection: the produce and consume paths report these.
            (Code::TopicAuthorizationFailed, "Broker: Topic authorization failed"),
        ] {
            assert_eq!(classify(code, reason, &who), None, "{code:?}");
        }
    }

    #[test]
    fn the_identity_comes_from_the_settings_without_the_password() {
        let mut cfg = ClientConfig::new();
        cfg.set("security.protocol", "SASL_SSL").set("sasl.mechanism", "SCRAM-SHA-512");
        cfg.set("sasl.username", "fw").set("sasl.password", "hunter2");
        let who = Identity::of(&cfg);
        assert_eq!(who, scram("fw"));
        assert!(!format!("{who:?}").contains("hunter2"));
        let who = Identity::of(ClientConfig::new().set("sasl.mechanisms", "PLAIN"));
        assert_eq!(who, Identity { mechanism: "PLAIN".into(), user: None, tls: false });
        assert_eq!(Identity::of(&ClientConfig::new()), plaintext());
    }
}
