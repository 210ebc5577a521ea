//! Messages on the detections topic that are not Detections go to the dead-letter topic with their reason
//! and source, through the one delivery loop every binary uses.

use std::time::Duration;

use framewire_common::backoff::Backoff;
use framewire_common::deliver::{self, Outgoing, Refused};
use rdkafka::Message;
use rdkafka::message::{OwnedHeaders, OwnedMessage};
use rdkafka::producer::FutureProducer;

use crate::events::store::{DeadLetterRetried, DeadLettering};
use crate::metrics::StoreMetrics;

/// Sends `m` to `dlq` until the broker acknowledges it: until then the batch's offsets are not committed,
/// so a dead letter is never lost.
pub async fn send(producer: &FutureProducer, dlq: &str, m: &OwnedMessage, reason: &str, metrics: &StoreMetrics) {
    DeadLettering { partition: m.partition(), offset: m.offset(), reason }.emit(metrics);
    let source = format!("{}/{}/{}", m.topic(), m.partition(), m.offset());
    let payload = m.payload().unwrap_or_default().to_vec();
    let key = m.key().map(<[u8]>::to_vec);
    let mut msg = Outgoing::dead_letter(dlq, key, payload, OwnedHeaders::new(), reason, &source);
    let mut backoff = Backoff::jittered(Duration::from_millis(500), Duration::from_secs(10));
    let sent: Result<(), std::convert::Infallible> = deliver::send(producer, &mut msg, &mut backoff, |error, _, _| {
        DeadLetterRetried { error }.emit();
        Refused::Retry
    })
    .await;
    // Retried until acknowledged: there is no error to report.
    let Ok(()) = sent;
}
