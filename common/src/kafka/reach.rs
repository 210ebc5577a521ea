//! Waiting for the brokers at start-up, and noticing when they refuse this client at any time.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::{FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};
use tracing::{debug, error};

use super::refusal::{self, Identity, Refusal};
use super::{KafkaArgs, hide};
use crate::{Error, Result};

/// The first wait for metadata; each next one is twice as long, up to [`LONGEST_STEP`]. A refusal is looked
/// for between two waits: short ones find it fast, and longer ones still let a slow broker answer.
const FIRST_STEP: Duration = Duration::from_millis(250);
const LONGEST_STEP: Duration = Duration::from_secs(4);
/// How long the start-up check takes librdkafka's queued errors after each wait.
const DRAIN: Duration = Duration::from_millis(10);
/// librdkafka repeats a refusal at each reconnect (identical ones every 30 s per broker): one line a
/// minute per cause says it without drowning the rest.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// A client context that recognises a broker's refusals (bad credentials, a certificate that does not
/// verify, the wrong `security.protocol`) among librdkafka's errors, which librdkafka only logs and
/// retries. It keeps the first for [`KafkaArgs::wait_reachable`], and logs each cause at most once a
/// minute, with what to fix, for a client that runs on (credentials rotated under it). Other errors are
/// logged as rdkafka's default context logs them.
pub struct Watch {
    brokers: String,
    identity: Identity,
    first: Mutex<Option<Refusal>>,
    /// Each cause logged, and when.
    logged: Mutex<Vec<(Refusal, Instant)>>,
    /// At start-up, librdkafka's lines until the check has looked at them: with a refusal among them they
    /// are its retries and OpenSSL's details, and the refusal, which ends the process, says it all.
    held: Option<Mutex<Held>>,
}

/// The lines of the start-up check.
#[derive(Default)]
struct Held {
    lines: Vec<Line>,
    /// What was shown already: while no broker answers, librdkafka repeats the same few errors dozens of
    /// times a second (each of them twice, as rdkafka's `BaseProducer` hands every error event to the
    /// context twice).
    shown: HashSet<String>,
}

/// A line librdkafka gave the context.
enum Line {
    Log(RDKafkaLogLevel, String, String),
    Error(KafkaError, String),
}

impl Line {
    /// What tells this line from a repeat: librdkafka's text without its "(after 3ms in state CONNECT)".
    fn key(&self) -> String {
        let (kind, text) = match self {
            Line::Log(_, fac, message) => (fac.clone(), message),
            Line::Error(error, reason) => (error.to_string(), reason),
        };
        format!("{kind}: {}", text.split(" (after ").next().unwrap_or(text))
    }

    fn show(self) {
        match self {
            Line::Log(level, fac, message) => DefaultClientContext.log(level, &fac, &message),
            Line::Error(error, reason) => DefaultClientContext.error(error, &reason),
        }
    }
}

impl Watch {
    /// A context for a client made from `cfg`.
    pub fn new(cfg: &ClientConfig) -> Self {
        let brokers = cfg.get("bootstrap.servers").unwrap_or_default().to_string();
        Watch { brokers, identity: Identity::of(cfg), first: Mutex::default(), logged: Mutex::default(), held: None }
    }

    /// The first refusal seen, if any.
    pub fn refusal(&self) -> Option<Refusal> {
        self.first.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn refused(&self, refusal: Refusal) {
        self.first.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert_with(|| refusal.clone());
        if self.held.is_some() {
            return;
        }
        let now = Instant::now();
        let mut logged = self.logged.lock().unwrap_or_else(PoisonError::into_inner);
        match logged.iter_mut().find(|(r, _)| r.same_cause(&refusal)) {
            Some((_, at)) if now.duration_since(*at) < LOG_EVERY => return,
            Some(slot) => *slot = (refusal.clone(), now),
            None => logged.push((refusal.clone(), now)),
        }
        drop(logged);
        error!("{}", Error::Refused { brokers: self.brokers.clone(), refusal });
    }

    fn show(&self, line: Line) {
        match &self.held {
            Some(held) => held.lock().unwrap_or_else(PoisonError::into_inner).lines.push(line),
            None => line.show(),
        }
    }

    /// Shows the held lines not shown yet, unless a refusal came with them.
    fn release(&self) {
        let Some(held) = &self.held else { return };
        let refused = self.refusal().is_some();
        let mut held = held.lock().unwrap_or_else(PoisonError::into_inner);
        for line in std::mem::take(&mut held.lines) {
            let key = line.key();
            if !refused && held.shown.insert(key.clone()) {
                line.show();
            } else {
                debug!(line = key, "librdkafka");
            }
        }
    }
}

/// What is still held when the client goes (lines its last flush polled) is shown as `release` shows it.
impl Drop for Watch {
    fn drop(&mut self) {
        self.release();
    }
}

impl ClientContext for Watch {
    fn error(&self, error: KafkaError, reason: &str) {
        match error.rdkafka_error_code().and_then(|code| refusal::classify(code, reason, &self.identity)) {
            Some(refusal) => self.refused(refusal),
            None => self.show(Line::Error(error, reason.to_string())),
        }
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        if fac == "FAIL" {
            let refusal = refusal::from_log(log_message, &self.identity);
            // librdkafka sends each connection failure it logs at error level as an error event too, which
            // `error` reports: logging it here as well would say it twice.
            let reported = refusal.is_some() || (level as i32) <= RDKafkaLogLevel::Error as i32;
            if let Some(refusal) = refusal {
                self.refused(refusal);
            }
            if reported {
                debug!(fac, log_message, "librdkafka");
                return;
            }
        }
        self.show(Line::Log(level, fac.to_string(), log_message.to_string()));
    }
}

impl ConsumerContext for Watch {}

impl ProducerContext for Watch {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

impl KafkaArgs {
    /// Like [`KafkaArgs::create`], with a [`Watch`] as the client's context: a client that runs on logs the
    /// broker's refusals with what to fix, once a minute per cause.
    pub fn create_watched<T: FromClientConfigAndContext<Watch>>(&self, base: &[(&str, &str)]) -> Result<T> {
        let mut cfg = self.config(base)?;
        hear_refusals(&mut cfg);
        cfg.create_with_context(Watch::new(&cfg)).map_err(|e| hide(&cfg, e))
    }

    /// Waits until a broker answers a metadata request, or fails after `connect_timeout` with an error that
    /// says what to check. A broker that refuses this client ends the wait at once, with the cause.
    pub fn wait_reachable(&self) -> Result<()> {
        let mut cfg = self.config(&[])?;
        hear_refusals(&mut cfg);
        let mut watch = Watch::new(&cfg);
        watch.held = Some(Mutex::default());
        let producer: BaseProducer<Watch> = cfg.create_with_context(watch).map_err(|e| hide(&cfg, e))?;
        let start = Instant::now();
        let deadline = start + self.connect_timeout;
        let mut step = FIRST_STEP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reason = match producer.client().fetch_metadata(None, left.min(step)) {
                Ok(md) if !md.brokers().is_empty() => {
                    let elapsed_ms = start.elapsed().as_millis() as u64;
                    debug!(brokers = md.brokers().len(), elapsed_ms, "kafka reachable");
                    return Ok(());
                }
                // A broker answered, so waiting longer would not change its answer.
                Ok(_) => return Err(self.unreachable("metadata lists no brokers".into())),
                Err(e) => e.to_string(),
            };
            producer.poll(DRAIN);
            producer.context().release();
            if let Some(refusal) = producer.context().refusal() {
                return Err(Error::Refused { brokers: self.brokers.clone(), refusal });
            }
            if Instant::now() >= deadline {
                return Err(self.unreachable(reason));
            }
            step = (step * 2).min(LONGEST_STEP);
        }
    }

    fn unreachable(&self, reason: String) -> Error {
        Error::Unreachable { brokers: self.brokers.clone(), waited: self.connect_timeout, reason }
    }
}

/// librdkafka logs the one refusal it sends no error event for at info level, and drops the lines under the
/// level that logging had on when the config was made (warnings only, with RUST_LOG=warn). What reaches
/// [`Watch`] is still filtered by `RUST_LOG` when it is logged.
fn hear_refusals(cfg: &mut ClientConfig) {
    if (cfg.log_level as i32) < RDKafkaLogLevel::Info as i32 {
        cfg.set_log_level(RDKafkaLogLevel::Info);
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::error::RDKafkaErrorCode;

    use super::*;

    fn args(brokers: &str, options: &str, timeout: Duration) -> KafkaArgs {
        KafkaArgs {
            brokers: brokers.into(),
            overrides: vec![],
            options: Some(options.into()),
            connect_timeout: timeout,
        }
    }

    #[test]
    fn the_first_refusal_is_kept_and_each_cause_logged_once_a_minute() {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", "b:1").set("sasl.mechanism", "PLAIN").set("sasl.username", "fw");
        let watch = Watch::new(&cfg);
        let bad_ca =
            "ssl://b:1/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed";
        let bad_password = "sasl_ssl://b:1/bootstrap: SASL authentication error: Authentication failed";
        let passing = "b:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused";
        watch.error(KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure), passing);
        assert_eq!(watch.refusal(), None);
        for _ in 0..3 {
            watch.error(KafkaError::Global(RDKafkaErrorCode::SSL), bad_ca);
            watch.error(KafkaError::Global(RDKafkaErrorCode::Authentication), bad_password);
        }
        assert_eq!(watch.refusal(), Some(Refusal::Certificate));
        assert_eq!(watch.logged.lock().unwrap().len(), 2, "one entry per cause");
    }

    #[tokio::test]
    async fn clients_of_every_kind_can_run_watched() {
        use rdkafka::consumer::{BaseConsumer, StreamConsumer};
        use rdkafka::producer::FutureProducer;

        let args = args("127.0.0.1:9", "", Duration::from_secs(1));
        let _: FutureProducer<Watch> = args.create_watched(&[]).unwrap();
        let _: StreamConsumer<Watch> = args.create_watched(&[("group.id", "g")]).unwrap();
        let _: BaseConsumer<Watch> = args.create_watched(&[("group.id", "g")]).unwrap();
    }

    #[test]
    fn unreachable_broker_fails_within_the_bound() {
        // Port 9 (discard) on loopback has no Kafka: the wait must end with a clear error, not hang.
        let args = args("127.0.0.1:9", "", Duration::from_millis(1500));
        let start = Instant::now();
        let err = args.wait_reachable().unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
        let msg = err.to_string();
        assert!(msg.contains("cannot reach Kafka at 127.0.0.1:9"), "{msg}");
    }

    /// A listener that closes every connection once it has read a little of it, as a TLS listener does with
    /// a plaintext Kafka request and a plaintext one with a TLS handshake; and what `wait_reachable` with
    /// `options` against it says, within a bound well under its 20 s timeout.
    fn refused_by_a_closing_listener(options: &str) -> (String, Error) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let _ = std::io::Read::read(&mut conn, &mut [0; 64]);
            }
        });
        let start = Instant::now();
        let err = args(&addr, options, Duration::from_secs(20)).wait_reachable().unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
        (addr, err)
    }

    #[test]
    fn a_plaintext_client_at_a_tls_listener_is_refused_before_the_timeout() {
        let (addr, err) = refused_by_a_closing_listener("");
        assert!(matches!(err, Error::Refused { refusal: Refusal::ListenerIsTls, .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("cannot connect to Kafka at {addr}: ")), "{msg}");
        assert!(msg.contains("is the listener TLS?"), "{msg}");
    }

    #[test]
    fn a_tls_client_at_a_plaintext_listener_is_refused_before_the_timeout() {
        let (_, err) = refused_by_a_closing_listener("security.protocol=SSL");
        assert!(matches!(err, Error::Refused { refusal: Refusal::ListenerIsPlaintext, .. }), "{err}");
    }

    #[test]
    fn a_mechanism_librdkafka_lacks_is_refused_when_the_client_is_made() {
        let options =
            "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-999\nsasl.username=fw\nsasl.password=hunter2";
        let err = args("127.0.0.1:9", options, Duration::from_secs(20)).wait_reachable().unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("cannot connect to Kafka at 127.0.0.1:9: SASL mechanism \"SCRAM-SHA-999\""), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }
}
