//! Producing one message until the broker acknowledges it: the loop behind every detection and dead letter.
//!
//! Giving up on a message would lose it (its input offset could never be committed), so the loop retries
//! with the common jittered [`Backoff`] for as long as the caller's verdict on each refusal says so. A dead
//! letter that is refused as too large is cut (see [`Fit`]) and sent again at once instead.

use std::time::Duration;

use framewire_proto::names;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tracing::warn;

use crate::backoff::Backoff;
use crate::dead_letter::Fit;
use crate::failure::{self, Verdict};

/// How long one send may wait in the producer's queue and for the acknowledgement before it counts as
/// refused (and is retried).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// A message to produce.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: OwnedHeaders,
    /// Set for dead letters, whose payload is cut rather than retried forever when refused as too large.
    fit: Option<Fit>,
}

impl Outgoing {
    pub fn new(topic: impl Into<String>, key: Option<Vec<u8>>, payload: Vec<u8>, headers: OwnedHeaders) -> Self {
        Self { topic: topic.into(), key, payload, headers, fit: None }
    }

    /// A dead letter: the original message with the reason and its `topic/partition/offset` source added to
    /// its headers.
    pub fn dead_letter(
        topic: impl Into<String>,
        key: Option<Vec<u8>>,
        payload: Vec<u8>,
        headers: OwnedHeaders,
        reason: &str,
        source: &str,
    ) -> Self {
        let headers = headers
            .insert(Header { key: names::HEADER_DLQ_REASON, value: Some(reason) })
            .insert(Header { key: names::HEADER_DLQ_SOURCE, value: Some(source) });
        let fit = Some(Fit::new(payload.len()));
        Self { topic: topic.into(), key, payload, headers, fit }
    }

    /// Payload bytes the next attempt sends.
    pub fn sent_len(&self) -> usize {
        self.fit.map_or(self.payload.len(), |f| f.kept())
    }
}

/// The caller's verdict on a refusal that the loop cannot handle itself.
pub enum Refused<E> {
    /// Wait the given delay (the next from the backoff, passed in) and send again.
    Retry,
    /// Give up with this error.
    Stop(E),
}

/// Produces `msg` until acknowledged. `refused` sees each refusal (with the delay before the retry, for its
/// log line) and decides whether to retry or stop.
pub async fn send<E>(
    producer: &FutureProducer,
    msg: &mut Outgoing,
    backoff: &mut Backoff,
    mut refused: impl FnMut(&KafkaError, &Outgoing, Duration) -> Refused<E>,
) -> Result<(), E> {
    loop {
        let (payload, headers) = match &msg.fit {
            Some(fit) => (&msg.payload[..fit.kept()], fit.headers(&msg.headers)),
            None => (&msg.payload[..], msg.headers.clone()),
        };
        let mut record = FutureRecord::to(&msg.topic).payload(payload).headers(headers);
        if let Some(k) = &msg.key {
            record = record.key(k);
        }
        let e = match producer.send(record, SEND_TIMEOUT).await {
            Ok(_) => {
                backoff.reset();
                return Ok(());
            }
            Err((e, _)) => e,
        };
        if failure::verdict(&e) == Verdict::TooLarge && msg.fit.as_mut().is_some_and(Fit::shrink) {
            warn!(topic = %msg.topic, original_bytes = msg.payload.len(), kept_bytes = msg.sent_len(),
                "dead letter refused as too large; sending it cut short");
            continue;
        }
        let delay = backoff.next_delay();
        match refused(&e, msg, delay) {
            Refused::Retry => tokio::time::sleep(delay).await,
            Refused::Stop(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::message::Headers;

    use super::*;

    #[test]
    fn a_dead_letter_carries_its_reason_and_source_and_can_be_cut() {
        let m = Outgoing::dead_letter("dlq", None, vec![0; 10], OwnedHeaders::new(), "bad", "in/0/7");
        let h: Vec<_> = m.headers.iter().map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec()))).collect();
        assert_eq!(h[0], (names::HEADER_DLQ_REASON.to_string(), Some(b"bad".to_vec())));
        assert_eq!(h[1], (names::HEADER_DLQ_SOURCE.to_string(), Some(b"in/0/7".to_vec())));
        assert!(m.fit.is_some());
        assert!(Outgoing::new("out", None, vec![], OwnedHeaders::new()).fit.is_none());
    }
}
