//! The group consumer: at-least-once settings, and rebalance handling that keeps the offset tracker in step
//! with the assignment and commits what is done before partitions move away.

use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{info, warn};

use crate::offsets::OffsetTracker;

/// Consumer settings framewire relies on; `-X` can still override them.
pub fn consumer_settings(group: &str, instance_id: Option<&str>) -> Vec<(String, String)> {
    let mut s: Vec<(String, String)> = [
        ("group.id", group),
        // Offsets are stored by the pipeline only once a frame's result is delivered; librdkafka commits
        // the stored offsets periodically and on rebalance.
        ("enable.auto.commit", "true"),
        ("enable.auto.offset.store", "false"),
        ("auto.offset.reset", "earliest"),
        // Low fetch wait: frames should not sit in the broker waiting for a batch to fill.
        ("fetch.wait.max.ms", "10"),
        // Frames are large; do not prefetch hundreds of megabytes per partition.
        ("queued.max.messages.kbytes", "16384"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Some(id) = instance_id {
        // Static membership: a restarted replica with the same id gets its partitions back at once.
        s.push(("group.instance.id".into(), id.into()));
    }
    s
}

/// Where a partition without a committed offset starts (replay); `None` means `auto.offset.reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Offset(i64),
    /// Unix epoch milliseconds: the first message at or after this time.
    Timestamp(i64),
}

/// Rebalance callbacks.
pub struct GroupContext {
    pub tracker: Arc<Mutex<OffsetTracker>>,
    pub topic: String,
    pub start: Option<StartAt>,
    /// Partitions started from a replay time: messages older than it are skipped, since not every
    /// Kafka-protocol broker implements the time index behind `offsets_for_times`.
    pub replayed: Arc<Mutex<std::collections::HashSet<i32>>>,
}

impl ClientContext for GroupContext {}

impl GroupContext {
    /// Sets the start position of newly assigned partitions that this group never committed, so a replay
    /// group that restarts continues from its commits instead of starting the replay over.
    fn apply_start(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let Some(start) = self.start else { return };
        let timeout = std::time::Duration::from_secs(10);
        let committed = match consumer.committed_offsets(tpl.clone(), timeout) {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "cannot read committed offsets; replay start not applied");
                return;
            }
        };
        let fresh: Vec<i32> = committed
            .elements_for_topic(&self.topic)
            .iter()
            .filter(|e| !matches!(e.offset(), Offset::Offset(_)))
            .map(|e| e.partition())
            .collect();
        if fresh.is_empty() {
            return;
        }
        // The time filter in the consume loop applies even if the broker cannot look the time up.
        if let (StartAt::Timestamp(_), Ok(mut r)) = (start, self.replayed.lock()) {
            r.extend(fresh.iter().copied());
        }
        let positions: Vec<(i32, Offset)> = match start {
            StartAt::Offset(o) => fresh.iter().map(|p| (*p, Offset::Offset(o))).collect(),
            StartAt::Timestamp(ms) => {
                let mut query = TopicPartitionList::new();
                for p in &fresh {
                    let _ = query.add_partition_offset(&self.topic, *p, Offset::Offset(ms));
                }
                match consumer.offsets_for_times(query, timeout) {
                    // A partition with nothing at or after the time starts at its end.
                    Ok(found) => found
                        .elements_for_topic(&self.topic)
                        .iter()
                        .map(|e| {
                            (
                                e.partition(),
                                if matches!(e.offset(), Offset::Offset(_)) { e.offset() } else { Offset::End },
                            )
                        })
                        .collect(),
                    Err(e) => {
                        warn!(error = %e, "cannot look up offsets for the replay time; reading from the reset position and skipping older frames");
                        return;
                    }
                }
            }
        };
        for (p, offset) in positions {
            if let Some(mut e) = tpl.find_partition(&self.topic, p)
                && e.set_offset(offset).is_ok()
            {
                info!(partition = p, ?offset, "replay start");
            }
        }
    }
}

impl ConsumerContext for GroupContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        // The default strategy, with the replay start applied to new partitions before they are assigned.
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.apply_start(consumer, tpl);
                let rebalance = Rebalance::Assign(tpl);
                self.pre_rebalance(consumer, &rebalance);
                if let Err(e) = consumer.assign(tpl) {
                    warn!(error = %e, "assign failed");
                }
                self.post_rebalance(consumer, &rebalance);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let rebalance = Rebalance::Revoke(tpl);
                self.pre_rebalance(consumer, &rebalance);
                if let Err(e) = consumer.unassign() {
                    warn!(error = %e, "unassign failed");
                }
                self.post_rebalance(consumer, &rebalance);
            }
            other => {
                let code: RDKafkaErrorCode = other.into();
                self.post_rebalance(consumer, &Rebalance::Error(KafkaError::Rebalance(code)));
            }
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let parts: Vec<i32> = tpl.elements_for_topic(&self.topic).iter().map(|e| e.partition()).collect();
            info!(partitions = ?parts, "partitions revoked: committing finished frames");
            commit_sync(consumer);
            if let Ok(mut t) = self.tracker.lock() {
                for p in parts {
                    t.revoke(p);
                }
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let parts: Vec<i32> = tpl.elements_for_topic(&self.topic).iter().map(|e| e.partition()).collect();
                info!(partitions = ?parts, "partitions assigned");
                if let Ok(mut t) = self.tracker.lock() {
                    for p in parts {
                        t.assign(p);
                    }
                }
            }
            Rebalance::Error(e) => warn!(error = %e, "rebalance error"),
            Rebalance::Revoke(_) => {}
        }
    }
}

/// Commits the stored offsets now. "Nothing to commit" is not an error.
pub fn commit_sync<C: ConsumerContext>(consumer: &impl Consumer<C>) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => {}
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => warn!(error = %e, "offset commit failed (the frames will be processed again)"),
    }
}
