//! Publishing frames to Kafka with backpressure: when librdkafka's queue is full the caller waits for
//! deliveries instead of growing memory, so a slow broker slows the decoder.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use tracing::{error, warn};

use framewire_common::kafka::KafkaArgs;
use framewire_proto::names;

use crate::metrics::Metrics;
use crate::{Error, Result};

/// Producer settings framewire relies on; `-X` can still override them.
pub fn producer_settings(max_message_bytes: usize) -> Vec<(&'static str, String)> {
    vec![
        ("acks", "all".into()),
        // Retries must not reorder or duplicate a camera's frames.
        ("enable.idempotence", "true".into()),
        ("linger.ms", "5".into()),
        ("message.max.bytes", max_message_bytes.to_string()),
        // A bounded local queue (64 MiB) is what turns a slow broker into backpressure.
        ("queue.buffering.max.kbytes", "65536".into()),
        // Fail a frame after a minute instead of librdkafka's default five, so a dead broker is reported.
        ("message.timeout.ms", "60000".into()),
    ]
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
}

impl Publisher {
    pub fn new(kafka: &KafkaArgs, topic: &str, max_message_bytes: usize, metrics: Metrics) -> Result<Self> {
        let settings = producer_settings(max_message_bytes);
        let base: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let producer: FutureProducer = kafka.config(&base)?.create()?;
        Ok(Publisher {
            producer,
            topic: topic.to_string(),
            in_flight: FuturesUnordered::new(),
            metrics,
            delivered: 0,
            failed: 0,
            first_error: None,
        })
    }

    /// Queues one message keyed by its camera; waits (processing deliveries) while librdkafka's queue is full.
    pub async fn send(&mut self, camera: &Arc<str>, payload: &[u8]) -> Result<()> {
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
                    self.metrics.backpressure_waits.with_label_values(&[key]).inc();
                    tokio::select! {
                        Some((c, r)) = self.in_flight.next() => self.on_delivery(&c, r),
                        _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                    }
                }
                Err((e, _)) => {
                    self.record_failure(camera, format!("{e}"));
                    return Ok(());
                }
            }
        }
    }

    /// Processes deliveries that are already complete, without waiting.
    pub fn poll_deliveries(&mut self) {
        while let Some(Some((c, r))) = self.in_flight.next().now_or_never() {
            self.on_delivery(&c, r);
        }
    }

    /// Waits for every queued message to be acknowledged or to fail; an error if any was not acknowledged.
    /// (What was acknowledged, per camera, is in the `published` metric.)
    pub async fn finish(mut self, timeout: Duration) -> Option<Error> {
        // flush() blocks; the deliveries it completes resolve the futures drained below.
        let producer = self.producer.clone();
        let flushed = tokio::task::spawn_blocking(move || producer.flush(timeout)).await;
        if let Ok(Err(e)) = flushed {
            warn!(error = %e, "producer flush did not complete");
        }
        while let Some((c, r)) = self.in_flight.next().await {
            self.on_delivery(&c, r);
        }
        (self.failed > 0).then(|| Error::Undelivered {
            failed: self.failed,
            total: self.failed + self.delivered,
            first: self.first_error.unwrap_or_default(),
        })
    }

    fn on_delivery(&mut self, camera: &Arc<str>, r: Delivery) {
        match r {
            Ok(Ok(_)) => {
                self.delivered += 1;
                self.metrics.published.with_label_values(&[camera]).inc();
            }
            Ok(Err((e, _))) => self.record_failure(camera, e.to_string()),
            Err(_) => self.record_failure(camera, "producer dropped the delivery report".into()),
        }
    }

    fn record_failure(&mut self, camera: &str, reason: String) {
        self.failed += 1;
        self.metrics.failed.with_label_values(&[camera]).inc();
        if self.first_error.is_none() {
            error!(camera = %camera, error = %reason, "frame not delivered");
            self.first_error = Some(reason);
        }
    }
}
