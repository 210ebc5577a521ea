//! Publishing frames to Kafka with backpressure: when librdkafka's queue is full the caller waits for
//! deliveries instead of growing memory, so a slow broker slows the decoder.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer, PurgeConfig};
use tracing::warn;

use framewire_common::failure::{Verdict, classify};
use framewire_common::kafka::KafkaArgs;
use framewire_common::time::now_us;
use framewire_proto::{Frame, names};

use crate::events::{DeliveryFailed, FrameHandedOff, FramePublished, ProducerBackpressure, ProducerStopped};
use crate::metrics::Metrics;
use crate::{Error, Result};

/// Producer settings framewire relies on; `-X` can still override them.
pub fn producer_settings(max_message_bytes: usize) -> Vec<(&'static str, String)> {
    vec![
        ("acks", "all".into()),
        // Retries must not reorder or duplicate a camera's frames.
        ("enable.idempotence", "true".into()),
        // No lingering: a frame is a batch's worth by itself, and 5 ms of waiting for company was a third
        // of a live frame's Kafka hop (bench/pipeline.sh). Frames queued while requests are in flight still
        // go out together.
        ("linger.ms", "0".into()),
        ("message.max.bytes", max_message_bytes.to_string()),
        // A bounded local queue (64 MiB) is what turns a slow broker into backpressure.
        ("queue.buffering.max.kbytes", "65536".into()),
        // Fail a frame after a minute instead of librdkafka's default five, so a dead broker is reported.
        ("message.timeout.ms", "60000".into()),
        // Metadata every 10 s instead of every 5 min: partitions added to the topic (to spread frames over
        // more detect replicas) are used at once, and a topic deleted under ingest is noticed, on brokers
        // that go on accepting writes to it (tansu 0.6.0 does) instead of refusing them, before minutes of
        // frames vanish into it. The cost is one small request per 10 s.
        ("topic.metadata.refresh.interval.ms", "10000".into()),
    ]
}

/// Records when `frame` is handed to the producer (`stage_times.published_us`), just before it is encoded to
/// bytes, and how long it waited since it was encoded.
pub fn stamp_published(frame: &mut Frame, metrics: &Metrics) {
    let published_us = now_us();
    let times = frame.stage_times.get_or_insert_default();
    times.published_us = published_us;
    let encoded_us = times.encoded_us;
    if encoded_us > 0 {
        let waited = Duration::from_micros(published_us.saturating_sub(encoded_us).max(0) as u64);
        FrameHandedOff { camera: &frame.camera_id, waited }.emit(metrics);
    }
}

type Delivery = <DeliveryFuture as std::future::Future>::Output;

/// A producer shared by all cameras, plus the deliveries it is waiting for.
pub struct Publisher {
    producer: FutureProducer,
    topic: String,
    in_flight: FuturesUnordered<BoxFuture<'static, (Arc<str>, Delivery)>>,
    metrics: Metrics,
    /// Frames the broker acknowledged.
    pub delivered: u64,
    /// Frames that could not be delivered.
    pub failed: u64,
    first_error: Option<String>,
    /// Why the producer cannot go on, once it cannot (see [`fatal`]): every later send fails with it.
    fatal: Option<String>,
}

impl Publisher {
    pub fn new(kafka: &KafkaArgs, topic: &str, max_message_bytes: usize, metrics: Metrics) -> Result<Self> {
        let settings = producer_settings(max_message_bytes);
        let base: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let producer: FutureProducer = kafka.create(&base)?;
        Ok(Publisher {
            producer,
            topic: topic.to_string(),
            in_flight: FuturesUnordered::new(),
            metrics,
            delivered: 0,
            failed: 0,
            first_error: None,
            fatal: None,
        })
    }

    /// Queues one message keyed by its camera; waits (processing deliveries) while librdkafka's queue is full.
    /// An error means the producer cannot go on (see [`fatal`]); a frame that failed for a reason that may
    /// pass is counted in `failed` and the run goes on.
    pub async fn send(&mut self, camera: &Arc<str>, payload: &[u8]) -> Result<()> {
        self.check()?;
        let key: &str = camera;
        let headers = OwnedHeaders::new()
            .insert(Header { key: names::HEADER_SCHEMA, value: Some(&framewire_proto::SCHEMA_VERSION.to_string()) })
            .insert(Header { key: names::HEADER_TYPE, value: Some(names::TYPE_FRAME) });
        let topic = self.topic.clone();
        let mut record = FutureRecord::to(&topic).key(key).payload(payload).headers(headers);
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    let camera = camera.clone();
                    self.in_flight.push(delivery.map(move |r| (camera, r)).boxed());
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    ProducerBackpressure { camera: key }.emit(&self.metrics);
                    tokio::select! {
                        Some((c, r)) = self.in_flight.next() => self.on_delivery(&c, r),
                        _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                    }
                    self.check()?;
                }
                Err((e, _)) => {
                    self.on_error(camera, &e);
                    return self.check();
                }
            }
        }
    }

    /// Processes deliveries that are already complete, without waiting. An error if one of them showed
    /// that the producer cannot go on.
    pub fn poll_deliveries(&mut self) -> Result<()> {
        while let Some(Some((c, r))) = self.in_flight.next().now_or_never() {
            self.on_delivery(&c, r);
        }
        self.check()
    }

    /// Waits for every queued message to be acknowledged or to fail; an error if any was not acknowledged,
    /// or if the producer cannot go on. (What was acknowledged, per camera, is in the `published` metric.)
    pub async fn finish(mut self, timeout: Duration) -> Option<Error> {
        if self.fatal.is_some() {
            // Nothing queued can be delivered any more: fail it now instead of waiting out the timeout.
            self.producer.purge(PurgeConfig::default().queue().inflight());
        }
        // flush() blocks; the deliveries it completes resolve the futures drained below.
        let producer = self.producer.clone();
        let flushed = tokio::task::spawn_blocking(move || producer.flush(timeout)).await;
        if let Ok(Err(e)) = flushed {
            warn!(error = %e, "producer flush did not complete");
        }
        while let Some((c, r)) = self.in_flight.next().await {
            self.on_delivery(&c, r);
        }
        if let Err(e) = self.check() {
            return Some(e);
        }
        (self.failed > 0).then(|| Error::Undelivered {
            failed: self.failed,
            total: self.failed + self.delivered,
            first: self.first_error.unwrap_or_default(),
        })
    }

    fn check(&self) -> Result<()> {
        match &self.fatal {
            Some(reason) => Err(Error::Producer { reason: reason.clone() }),
            None => Ok(()),
        }
    }

    fn on_delivery(&mut self, camera: &Arc<str>, r: Delivery) {
        match r {
            Ok(Ok(_)) => {
                self.delivered += 1;
                FramePublished { camera }.emit(&self.metrics);
            }
            Ok(Err((e, _))) => self.on_error(camera, &e),
            Err(_) => self.record_failure(camera, "producer dropped the delivery report".into()),
        }
    }

    fn on_error(&mut self, camera: &str, e: &KafkaError) {
        self.record_failure(camera, e.to_string());
        if self.fatal.is_none()
            && let Some(code) = e.rdkafka_error_code()
        {
            let fatal_error = || self.producer.client().fatal_error();
            self.fatal = fatal(code, &self.topic, fatal_error);
            if let Some(reason) = &self.fatal {
                ProducerStopped { camera, error: e, reason }.emit();
            }
        }
    }

    fn record_failure(&mut self, camera: &str, reason: String) {
        self.failed += 1;
        let first = self.first_error.is_none();
        DeliveryFailed { camera, reason: &reason, first }.emit(&self.metrics);
        if first {
            self.first_error = Some(reason);
        }
    }
}

/// Whether a produce error `code` means that no later frame can be delivered either, and if so what to
/// fix, in one line. The decision is [`classify`]'s, the one every framewire binary makes; `fatal_error` is
/// librdkafka's own account of a fatal error, which names the real cause.
///
/// Not fatal: what passes or concerns one frame: a broker that is down or slow (`MessageTimedOut`, transport
/// errors: librdkafka already retried until `message.timeout.ms`, and a live camera should keep going once
/// the broker is back), and a frame the broker finds too large (`MessageSizeTooLarge`: ingest shrinks every
/// frame to `--max-message-bytes` before it is sent, so a refusal means the topic's limit is lower, and a
/// smaller frame may still fit; each is counted in `framewire_ingest_frames_failed_total`).
pub fn fatal(
    code: RDKafkaErrorCode,
    topic: &str,
    fatal_error: impl FnOnce() -> Option<(RDKafkaErrorCode, String)>,
) -> Option<String> {
    match classify(code) {
        Verdict::Retry | Verdict::TooLarge => None,
        // Where a consumer waits for a missing topic to appear, ingest does not: librdkafka reports a topic as
        // unknown only after it has waited for the metadata to settle (topic.metadata.propagation.max.ms) and
        // retried, and ingest created the topic at start-up, so it was deleted while ingest ran. It will not
        // come back by itself.
        Verdict::Missing => Some(format!(
            "topic {topic} no longer exists on the broker (deleted while ingest ran?): restart ingest, which \
             creates it, or create it with the partitions you want"
        )),
        // The client instance is unusable by design (the idempotent producer lost its sequence, was
        // fenced...): librdkafka keeps the cause.
        Verdict::Fatal(advice) if code == RDKafkaErrorCode::Fatal => {
            let (code, why) = fatal_error().unwrap_or((code, "no detail".into()));
            Some(format!("librdkafka stopped the producer with a fatal error ({code}: {why}): {advice}"))
        }
        Verdict::Fatal(advice) => Some(format!("no frame can be delivered to topic {topic} ({code}): {advice}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_that_retrying_cannot_mend_are_fatal_with_what_to_fix() {
        let none = || None;
        let topic = fatal(RDKafkaErrorCode::UnknownTopic, "frames", none).unwrap();
        assert!(topic.contains("topic frames no longer exists") && topic.contains("restart ingest"), "{topic}");
        assert!(fatal(RDKafkaErrorCode::UnknownTopicOrPartition, "frames", none).is_some());
        let auth = fatal(RDKafkaErrorCode::TopicAuthorizationFailed, "frames", none).unwrap();
        assert!(auth.contains("grant"), "{auth}");
        let why = || Some((RDKafkaErrorCode::OutOfOrderSequenceNumber, "sequence desynchronised".to_string()));
        let f = fatal(RDKafkaErrorCode::Fatal, "frames", why).unwrap();
        assert!(f.contains("sequence desynchronised"), "{f}");
        assert!(!f.contains('\n') && !topic.contains('\n') && !auth.contains('\n'), "one line each");
    }

    #[test]
    fn errors_that_pass_or_concern_one_frame_are_not_fatal() {
        for code in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::NotEnoughReplicas,
            RDKafkaErrorCode::RequestTimedOut,
            RDKafkaErrorCode::PurgeQueue,
        ] {
            assert_eq!(fatal(code, "frames", || None), None, "{code:?}");
        }
    }
}
