//! The group consumer: at-least-once settings, and rebalance handling that keeps the offset tracker in step
//! with the assignment and commits what is done before partitions move away.

use std::sync::{Arc, Mutex};

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
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

/// Rebalance callbacks.
pub struct GroupContext {
    pub tracker: Arc<Mutex<OffsetTracker>>,
    pub topic: String,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
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
