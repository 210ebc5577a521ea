//! The detectors' lag as the page shows it: the detect group's committed offsets against the frames topic's
//! high watermarks, asked of the broker as an outsider to that group.

use std::sync::Mutex;
use std::time::Duration;

use framewire_common::kafka::KafkaArgs;
use framewire_common::lag::{Uncommitted, measure, partitions};
use rdkafka::consumer::BaseConsumer;
use tokio_util::sync::CancellationToken;

use super::WebArgs;
use super::live::{Shared, lock};
use crate::events::web::LagMeasured;

/// How long one broker question may take.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Time between two measures, sliced so that shutdown is noticed within a slice.
const PERIOD_SLICES: u32 = 20;
const SLICE: Duration = Duration::from_millis(250);

/// Every few seconds until shutdown: the detect group's lag per partition. Blocking (librdkafka's calls are):
/// run it on a blocking thread.
pub(super) fn lag_loop(kafka: &KafkaArgs, args: &WebArgs, shared: &Mutex<Shared>, stop: &CancellationToken) {
    // The group id only names whose committed offsets to read: this client never joins or commits.
    let client: Option<BaseConsumer> = kafka
        .config(&[("group.id", &args.detect_group), ("enable.auto.commit", "false")])
        .ok()
        .and_then(|c| c.create().ok());
    let Some(client) = client else { return };
    while !stop.is_cancelled() {
        let topic = &args.frames_topic;
        let parts = partitions(&client, topic, TIMEOUT);
        // No partitions: the broker did not answer; the last figures stand rather than a lag of nothing.
        if !parts.is_empty() {
            // A partition the group never committed is left out (wrong --detect-group, or detect not started
            // yet): guessing "everything" would alarm for nothing.
            let lag = measure(&client, topic, &parts, |_| None, Uncommitted::Skip, TIMEOUT);
            LagMeasured { partitions: lag.len(), total: lag.iter().map(|(_, l)| l).sum() }.emit();
            lock(shared).lag = lag;
        }
        for _ in 0..PERIOD_SLICES {
            if stop.is_cancelled() {
                return;
            }
            std::thread::sleep(SLICE);
        }
    }
}
