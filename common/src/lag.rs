//! Consumer lag, asked of the broker directly: per partition, the high watermark minus the consumer's
//! position. Not taken from librdkafka's statistics, whose high watermark some Kafka-protocol brokers
//! report loosely, and not limited to the partitions a client is assigned (the web view watches a group it
//! is not a member of).

use std::time::Duration;

use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};

/// What a partition that has no position and no committed offset counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uncommitted {
    /// Everything still on the broker is to do (a consumer that starts from the earliest offset).
    FromLowWatermark,
    /// Left out: with no commit there is no lag to speak of (a wrong group name, or its consumers not started
    /// yet), and guessing "everything" would alarm for nothing.
    Skip,
}

/// The partitions of `topic` as the broker knows them now; empty when it does not answer.
pub fn partitions<C: ConsumerContext, K: Consumer<C>>(consumer: &K, topic: &str, timeout: Duration) -> Vec<i32> {
    let Ok(md) = consumer.fetch_metadata(Some(topic), timeout) else { return Vec::new() };
    md.topics().iter().filter(|t| t.name() == topic).flat_map(|t| t.partitions().iter().map(|p| p.id())).collect()
}

/// Lag per partition of `topic`, for the `partitions` given: the high watermark minus `position(p)` (the next
/// offset the caller will process, when it knows it), else minus the consumer group's committed offset (one
/// broker round trip, only when some partition needs it). A partition whose watermarks the broker does not
/// give in `timeout` is left out.
pub fn measure<C: ConsumerContext, K: Consumer<C>>(
    consumer: &K,
    topic: &str,
    partitions: &[i32],
    position: impl Fn(i32) -> Option<i64>,
    uncommitted: Uncommitted,
    timeout: Duration,
) -> Vec<(i32, i64)> {
    let mut committed: Option<Option<TopicPartitionList>> = None;
    let mut committed_offset = |p: i32| {
        let list = committed.get_or_insert_with(|| {
            let mut tpl = TopicPartitionList::new();
            for &p in partitions {
                tpl.add_partition(topic, p);
            }
            consumer.committed_offsets(tpl, timeout).ok()
        });
        match list.as_ref()?.find_partition(topic, p)?.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        }
    };
    let mut lags = Vec::with_capacity(partitions.len());
    for &p in partitions {
        let Ok((low, high)) = consumer.fetch_watermarks(topic, p, timeout) else { continue };
        let position = match position(p).or_else(|| committed_offset(p)) {
            Some(o) => o,
            None if uncommitted == Uncommitted::FromLowWatermark => low,
            None => continue,
        };
        lags.push((p, (high - position).max(0)));
    }
    lags
}
