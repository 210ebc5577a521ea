//! The group consumer: at-least-once settings; rebalance handling that keeps the offset tracker in step
//! with the assignment and commits what is done before partitions move away; and the poll loop that feeds
//! the pipeline, pausing the input while the pipeline holds as many frames as it may.
//!
//! Everything here runs on the consumer's own thread: librdkafka runs rebalance callbacks inside `poll`,
//! and they make blocking broker calls (a synchronous commit, committed offsets, offsets by time), which
//! must not run on an async worker.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::{Semaphore, TryAcquireError, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use framewire_common::failure::{self, Verdict};
use framewire_common::time::now_us;

use crate::events::{
    ConsumerErrored, FrameConsumed, InputPaused, InputResumed, OffsetCommitFailed, PartitionsAssigned,
    PartitionsRevoked, RebalanceFailed, ReplayStarted,
};
use crate::lanes::Dispatch;
use crate::offsets::OffsetTracker;
use crate::stages::Job;
use crate::{Error, Result, metrics};

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
    pub replayed: Arc<Mutex<HashSet<i32>>>,
    /// Whether the poll loop has paused the input (the pipeline is full). Partitions assigned meanwhile
    /// are paused as they arrive, so no message comes in without room for it.
    pub paused: Arc<AtomicBool>,
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
                ReplayStarted { partition: p, offset }.emit();
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
                // New partitions must not fetch while the pipeline is full, nor stay paused from an earlier
                // assignment when it is not.
                let paused = self.paused.load(Ordering::SeqCst);
                let r = if paused { consumer.pause(tpl) } else { consumer.resume(tpl) };
                if let Err(e) = r {
                    warn!(error = %e, paused, "cannot set the pause state of assigned partitions");
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
            PartitionsRevoked { partitions: &parts }.emit();
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
                PartitionsAssigned { partitions: &parts }.emit();
                if let Ok(mut t) = self.tracker.lock() {
                    for p in parts {
                        t.assign(p);
                    }
                }
            }
            Rebalance::Error(e) => RebalanceFailed { error: e }.emit(),
            Rebalance::Revoke(_) => {}
        }
    }
}

/// Commits the stored offsets now. "Nothing to commit" is not an error.
pub fn commit_sync<C: ConsumerContext>(consumer: &impl Consumer<C>) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => {}
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => OffsetCommitFailed { error: &e }.emit(),
    }
}

/// How long one poll waits for a message. It bounds how soon the loop sees shutdown and freed room.
const POLL: Duration = Duration::from_millis(50);
/// The same while frames are held back for a full lane (`--workers`): they go in soon after it has room.
const POLL_HOLDING: Duration = Duration::from_millis(5);

/// What the poll loop needs.
pub(crate) struct Intake {
    pub consumer: Arc<BaseConsumer<GroupContext>>,
    pub tracker: Arc<Mutex<OffsetTracker>>,
    /// The input of each lane (`--workers`); a partition's frames all go to the same one.
    pub lanes: Vec<mpsc::Sender<Job>>,
    /// One permit per frame consumed and not yet acknowledged (result or dead letter delivered): the
    /// bound on what detect holds in memory.
    pub capacity: Arc<Semaphore>,
    pub paused: Arc<AtomicBool>,
    pub stop: CancellationToken,
    pub metrics: metrics::Metrics,
    /// Replay by time: the start time, and the partitions it applies to.
    pub replay_from: Option<(i64, Arc<Mutex<HashSet<i32>>>)>,
    pub topic: String,
    /// How long the input topic may be missing before detect stops.
    pub missing_timeout: Duration,
}

/// Reads the group's messages into the pipeline until `stop`, or until a fatal consumer error.
///
/// A message is taken only with a capacity permit. When none is left (results cannot be delivered as
/// fast as frames arrive, or not at all), the assigned partitions are paused: librdkafka drops what it
/// prefetched for them and, on resume, fetches again from the first message not taken. Polling goes on
/// meanwhile, so rebalances are served and the group does not evict this member for not polling.
///
/// With several lanes, frames of a lane that is full are held back while the consumer reads on for the
/// others, and a partition with too many held is paused until they have gone in (see [`crate::lanes`]).
pub(crate) fn consume(mut i: Intake) -> Result<()> {
    let mut dispatch = Dispatch::new(std::mem::take(&mut i.lanes));
    let mut missing_since: Option<Instant> = None;
    let mut last_error: Option<(String, Instant)> = None;
    while !i.stop.is_cancelled() {
        if dispatch.holding() {
            let tracker = i.tracker.clone();
            let current = move |t: &crate::offsets::Ticket| tracker.lock().is_ok_and(|tr| tr.is_current(t));
            let Ok(resume) = dispatch.release(current) else { return Ok(()) };
            // While the whole input is paused, its resume takes these along.
            if !resume.is_empty() && !i.paused.load(Ordering::SeqCst) {
                pause_partitions(&i, &resume, false);
            }
        }
        let full = i.capacity.available_permits() == 0;
        if full != i.paused.load(Ordering::SeqCst) {
            set_paused(&i, full, &dispatch);
        }
        let Some(polled) = i.consumer.poll(if dispatch.holding() { POLL_HOLDING } else { POLL }) else {
            if let Some(since) = missing_since {
                missing_since = check_missing(&i, since)?;
            }
            continue;
        };
        let m = match polled {
            Ok(m) => m,
            Err(e) => {
                match failure::verdict(&e) {
                    Verdict::Fatal(advice) => {
                        let reason = failure::fatal_reason(i.consumer.client(), &e);
                        return Err(Error::KafkaFatal { what: format!("consuming {}", i.topic), reason, advice });
                    }
                    Verdict::Missing => {
                        missing_since.get_or_insert_with(Instant::now);
                    }
                    Verdict::Retry | Verdict::TooLarge => {}
                }
                // librdkafka retries by itself; one line per distinct error (or per 10 s) is enough.
                let text = e.to_string();
                if last_error.as_ref().is_none_or(|(t, at)| *t != text || at.elapsed() > Duration::from_secs(10)) {
                    ConsumerErrored { error: &text }.emit();
                    last_error = Some((text, Instant::now()));
                }
                continue;
            }
        };
        missing_since = None;
        let consumed_us = now_us();
        let permit = match i.capacity.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(TryAcquireError::Closed) => return Ok(()),
            // Only this thread takes permits, and it paused the input when none was left, so this needs a
            // partition delivering despite the pause; wait for room rather than hold more than the bound.
            Err(TryAcquireError::NoPermits) => match wait_for_permit(&i) {
                Some(p) => p,
                None => return Ok(()),
            },
        };
        let Some(ticket) = i.tracker.lock().ok().and_then(|mut t| t.begin(m.partition(), m.offset())) else {
            continue;
        };
        if let Some((from_ms, replayed)) = &i.replay_from {
            let older = m.timestamp().to_millis().is_some_and(|t| t < *from_ms);
            if older && replayed.lock().is_ok_and(|r| r.contains(&m.partition())) {
                // Before the replay window: done without processing.
                crate::output::finish(i.consumer.as_ref(), &i.tracker, &i.topic, ticket);
                continue;
            }
        }
        FrameConsumed { partition: m.partition(), offset: m.offset() }.emit(&i.metrics);
        let job = Job {
            ticket,
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            headers: m.headers().map(|h| h.detach()),
            received: Instant::now(),
            consumed_us,
            permit,
        };
        // One lane's channel is small and inference drains it steadily, so waiting for it takes at most a few
        // frames' inference time; the permit bound, not this wait, is what holds the input back for long.
        // Held frames go into a lane oldest first by this; a broker that keeps no timestamps leaves them in
        // the order they came.
        let published_ms = m.timestamp().to_millis().unwrap_or(consumed_us / 1000);
        match dispatch.send(m.partition(), published_ms, job) {
            Ok(pause) if pause.is_empty() => {}
            Ok(pause) => pause_partitions(&i, &pause, true),
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

fn set_paused(i: &Intake, paused: bool, dispatch: &Dispatch) {
    // Set first: a rebalance inside the next poll applies it to newly assigned partitions.
    i.paused.store(paused, Ordering::SeqCst);
    // Partitions held back for a full lane stay paused until their frames have gone in.
    pause_assigned(i, paused, |p| paused || !dispatch.holds(p));
    let in_flight = i.tracker.lock().map(|t| t.in_flight()).unwrap_or(0);
    if paused { InputPaused { in_flight }.emit() } else { InputResumed { in_flight }.emit() }
}

/// Pauses (or resumes) partitions held back for a full lane (or no longer), those still assigned.
fn pause_partitions(i: &Intake, partitions: &[i32], pause: bool) {
    pause_assigned(i, pause, |p| partitions.contains(&p));
}

/// Pauses (or resumes) the input's assigned partitions that `which` selects: the one place the input is
/// paused, for the whole pipeline being full and for a full lane alike.
fn pause_assigned(i: &Intake, pause: bool, which: impl Fn(i32) -> bool) {
    let assigned = match i.consumer.assignment() {
        Ok(a) => a,
        Err(e) => {
            warn!(error = %e, pause, "cannot read the assignment to pause or resume the input");
            return;
        }
    };
    let mut tpl = TopicPartitionList::new();
    for e in assigned.elements_for_topic(&i.topic).iter().filter(|e| which(e.partition())) {
        tpl.add_partition(&i.topic, e.partition());
    }
    if tpl.count() == 0 {
        return;
    }
    let r = if pause { i.consumer.pause(&tpl) } else { i.consumer.resume(&tpl) };
    if let Err(e) = r {
        let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        warn!(error = %e, ?partitions, pause, "cannot pause or resume the input");
    }
}

fn wait_for_permit(i: &Intake) -> Option<tokio::sync::OwnedSemaphorePermit> {
    loop {
        match i.capacity.clone().try_acquire_owned() {
            Ok(p) => return Some(p),
            Err(TryAcquireError::Closed) => return None,
            Err(TryAcquireError::NoPermits) if i.stop.is_cancelled() => return None,
            Err(TryAcquireError::NoPermits) => std::thread::sleep(POLL),
        }
    }
}

/// After the input topic was reported missing: once that has lasted `missing_timeout`, asks the broker
/// whether it exists. Returns the new "missing since", or the error that stops detect.
fn check_missing(i: &Intake, since: Instant) -> Result<Option<Instant>> {
    if since.elapsed() < i.missing_timeout {
        return Ok(Some(since));
    }
    match failure::topic_missing(i.consumer.client(), &i.topic, Duration::from_secs(10)) {
        Ok(true) => Err(Error::TopicGone {
            role: "input",
            topic: i.topic.clone(),
            flag: "--input-topic",
            waited: since.elapsed(),
        }),
        Ok(false) => Ok(None),
        // No answer is not proof of absence: keep waiting and ask again.
        Err(e) => {
            warn!(error = %e, topic = %i.topic, "cannot read the input topic's metadata");
            Ok(Some(since))
        }
    }
}
