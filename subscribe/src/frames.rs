//! Reading one frame back from `raw_video_frames` by the partition and offset a `Detections` names: the
//! store's snapshots come from the exact frame that was detected, even after a restart or in a replay.

use std::time::{Duration, Instant};

use framewire_common::kafka::KafkaArgs;
use framewire_proto::{Detections, Frame};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

/// Why a frame could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("{topic}[{partition}] offset {offset} is no longer retained (next available: {got})")]
    Gone { topic: String, partition: i32, offset: i64, got: i64 },
    #[error("{topic}[{partition}] offset {offset}: no answer within {waited:?}")]
    Timeout { topic: String, partition: i32, offset: i64, waited: Duration },
    #[error("{topic}[{partition}] offset {offset} is not a Frame: {reason}")]
    NotAFrame { topic: String, partition: i32, offset: i64, reason: String },
    #[error("{topic}[{partition}] offset {offset} holds {camera} #{seq}, not the detected frame")]
    Mismatch { topic: String, partition: i32, offset: i64, camera: String, seq: u64 },
}

/// A consumer outside any group that reads single offsets.
pub struct FrameFetcher {
    consumer: BaseConsumer,
    timeout: Duration,
}

impl FrameFetcher {
    pub fn new(kafka: &KafkaArgs, timeout: Duration) -> Result<Self, rdkafka::error::KafkaError> {
        let consumer: BaseConsumer = kafka
            .config(&[
                ("group.id", "framewire-frame-fetch"),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("fetch.wait.max.ms", "10"),
                // One frame is wanted; don't prefetch a partition's worth of video.
                ("queued.max.messages.kbytes", "8192"),
                ("fetch.message.max.bytes", "16777216"),
            ])
            .map_err(|e| rdkafka::error::KafkaError::ClientCreation(e.to_string()))?
            .create()?;
        Ok(FrameFetcher { consumer, timeout })
    }

    /// The frame at `topic[partition]@offset`, checked against the detections that name it. Blocking.
    pub fn fetch_for(&self, d: &Detections, default_topic: &str) -> Result<Frame, FetchError> {
        let topic = if d.source_topic.is_empty() { default_topic } else { d.source_topic.as_str() };
        let offset = d.source_offset;
        // Some Kafka-protocol brokers (tansu 0.6) answer a fetch that starts inside a record batch with the
        // next batch; starting a little earlier and reading forward reaches the offset through the batch
        // that holds it.
        let mut result = Err(FetchError::Timeout {
            topic: topic.into(),
            partition: d.source_partition,
            offset,
            waited: Duration::ZERO,
        });
        for back in [0, 16, 128, 1024] {
            let start = (offset - back).max(0);
            result = self.fetch_from(d, topic, start);
            let retry = matches!(result, Err(FetchError::Gone { .. })) && start > 0;
            if !retry {
                break;
            }
        }
        result
    }

    fn fetch_from(&self, d: &Detections, topic: &str, start: i64) -> Result<Frame, FetchError> {
        let (partition, offset) = (d.source_partition, d.source_offset);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(start))?;
        self.consumer.assign(&tpl)?;
        let start = Instant::now();
        let result = loop {
            let left = self.timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                break Err(FetchError::Timeout { topic: topic.into(), partition, offset, waited: self.timeout });
            }
            match self.consumer.poll(left.min(Duration::from_millis(100))) {
                None => continue,
                Some(Err(e)) => break Err(e.into()),
                Some(Ok(m)) if m.topic() != topic || m.partition() != partition => continue,
                Some(Ok(m)) if m.offset() < offset => continue,
                Some(Ok(m)) if m.offset() > offset => {
                    break Err(FetchError::Gone { topic: topic.into(), partition, offset, got: m.offset() });
                }
                Some(Ok(m)) => {
                    let frame = framewire_proto::codec::decode_frame(m.payload().unwrap_or_default()).map_err(|e| {
                        FetchError::NotAFrame { topic: topic.into(), partition, offset, reason: e.to_string() }
                    })?;
                    if frame.camera_id != d.camera_id || frame.seq != d.seq {
                        break Err(FetchError::Mismatch {
                            topic: topic.into(),
                            partition,
                            offset,
                            camera: frame.camera_id,
                            seq: frame.seq,
                        });
                    }
                    break Ok(frame);
                }
            }
        };
        let _ = self.consumer.unassign();
        result
    }
}
