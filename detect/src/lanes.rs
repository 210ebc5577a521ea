//! `--workers`: N lanes side by side in one process, each a preprocess thread and an inference thread with
//! its own model session, all feeding the one output stage; and the routing that keeps each camera (its
//! frames' key) on one lane, so that a camera's frames are never in two lanes at once and its results stay in
//! order. Cameras, not partitions, are spread over the lanes: keys hash unevenly to partitions (four cameras
//! often share two or three of four), and a lane per partition left one worker with three cameras' frames
//! and the other with one.
//!
//! One full lane must not hold up the others: the consumer's messages come in one queue, and with a
//! backlog librdkafka hands out long runs of one partition's frames. So with several lanes a frame whose lane
//! is full is held back ([`Dispatch`]) and the consumer reads on. When a lane has too many held, its
//! partition furthest ahead in time is paused, which makes librdkafka drop what it fetched of it and go on
//! with the others, and resumed (from the first frame not taken) once the held frames have mostly gone into
//! the lane. Held frames go in oldest first, so the partitions of a lane advance together in time.
//!
//! Several single-threaded sessions use the cores better than one session with as many intra-op threads
//! (measured on 2 cores: two single-thread loops give 1.82x one, one two-thread session 1.64x), because a
//! model call has stretches that one thread runs alone while the others wait.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::Result;
use crate::events::{CameraRouted, PartitionHeld};
use crate::freshness::Freshness;
use crate::inference::{self, Inference};
use crate::metrics::Metrics;
use crate::model::Detector;
use crate::stages::{self, Job, Outcome, PreparedJob};
use crate::supervise::Supervisor;

/// Frames waiting for a lane's preprocess thread.
const JOBS: usize = 16;
/// Decoded frames waiting for a lane's inference thread.
const PREPARED: usize = 4;

/// Gives each camera (a key within a partition) a lane the first time it is seen and keeps it there for the
/// life of the process, also across rebalances: frames of a partition revoked and assigned again may still be
/// in their old lane.
#[derive(Debug)]
pub(crate) struct Router {
    lane_of: HashMap<i32, HashMap<Vec<u8>, usize>>,
    routed: usize,
    /// Cameras per lane.
    load: Vec<usize>,
}

/// Cameras remembered. Past this many keys (not cameras: a producer writing garbage keys) a key's lane is its
/// hash, the same every time, so the table stays bounded.
const ROUTED: usize = 65_536;

impl Router {
    pub fn new(lanes: usize) -> Self {
        Router { lane_of: HashMap::new(), routed: 0, load: vec![0; lanes.max(1)] }
    }

    /// The lane of the camera with `key` in `partition`, and whether it was given just now (to the lane with
    /// the fewest cameras, the lowest-numbered of those).
    pub fn lane(&mut self, partition: i32, key: &[u8]) -> (usize, bool) {
        if let Some(lane) = self.lane_of.get(&partition).and_then(|keys| keys.get(key)) {
            return (*lane, false);
        }
        if self.routed >= ROUTED {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (partition, key).hash(&mut h);
            return ((h.finish() % self.load.len() as u64) as usize, false);
        }
        let lane = (0..self.load.len()).min_by_key(|l| (self.load[*l], *l)).unwrap_or(0);
        self.load[lane] += 1;
        self.routed += 1;
        self.lane_of.entry(partition).or_default().insert(key.to_vec(), lane);
        (lane, true)
    }

    /// How many cameras `lane` has.
    pub fn cameras(&self, lane: usize) -> usize {
        self.load.get(lane).copied().unwrap_or(0)
    }
}

/// Frames held back for a full lane before one of its partitions is paused; at twice this all of them are.
/// Its partitions are resumed once half of this is left.
const HELD: usize = 32;

/// The lane's input is closed: the lane has stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LaneGone;

/// Hands consumed frames to their lanes, holding back those whose lane is full (see the module doc).
///
/// A lane's partitions must advance together in time: with `--max-frame-age`, a partition that falls a
/// second behind has all its frames skipped as stale. So held frames wait per partition and go into the lane
/// oldest first (by Kafka timestamp), and when too many are held the partition paused is the one furthest
/// ahead, so that the others catch up with it. (Pausing whichever partition's frame came at the wrong
/// moment, or all at once, lets the partition librdkafka fetches first after a resume run ahead, and the
/// busiest partition, paused the most, fall behind for good.)
pub(crate) struct Dispatch {
    router: Router,
    lanes: Vec<mpsc::Sender<Job>>,
    /// Per lane, per partition, its frames that found the lane full (Kafka timestamp in ms, frame), in order.
    held: Vec<BTreeMap<i32, VecDeque<(i64, Job)>>>,
    /// Partitions paused for their lane.
    paused: BTreeSet<i32>,
}

impl Dispatch {
    pub fn new(lanes: Vec<mpsc::Sender<Job>>) -> Self {
        let held = lanes.iter().map(|_| BTreeMap::new()).collect();
        Dispatch { router: Router::new(lanes.len()), lanes, held, paused: BTreeSet::new() }
    }

    /// Hands `job` of `partition`, published at `timestamp_ms`, to its lane, or holds it back. Returns the
    /// partitions to pause. With one lane this waits for room instead: there is no other lane to keep busy
    /// meanwhile.
    pub fn send(&mut self, partition: i32, timestamp_ms: i64, job: Job) -> std::result::Result<Vec<i32>, LaneGone> {
        let (lane, new) = self.router.lane(partition, job.key.as_deref().unwrap_or_default());
        if new {
            let camera = String::from_utf8_lossy(job.key.as_deref().unwrap_or_default());
            CameraRouted { camera: &camera, partition, worker: lane, cameras: self.router.cameras(lane) }.emit();
        }
        let (Some(tx), Some(held)) = (self.lanes.get(lane), self.held.get_mut(lane)) else { return Err(LaneGone) };
        if self.lanes.len() == 1 {
            return tx.blocking_send(job).map(|()| Vec::new()).map_err(|_| LaneGone);
        }
        // While frames are held for the lane, every frame of it goes behind them.
        let job = if held.is_empty() {
            match tx.try_send(job) {
                Ok(()) => return Ok(Vec::new()),
                Err(mpsc::error::TrySendError::Full(job)) => job,
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(LaneGone),
            }
        } else {
            job
        };
        held.entry(partition).or_default().push_back((timestamp_ms, job));
        let total: usize = held.values().map(VecDeque::len).sum();
        // Paused again if it already was: a rebalance may have resumed it.
        let mut pause: Vec<i32> = if self.paused.contains(&partition) { vec![partition] } else { Vec::new() };
        if total >= 2 * HELD {
            pause.extend(held.keys().filter(|p| !self.paused.contains(p)));
        } else if total >= HELD && !held.keys().any(|p| self.paused.contains(p)) {
            let ahead = held.iter().filter_map(|(p, q)| q.back().map(|(ts, _)| (*ts, *p))).max();
            pause.extend(ahead.map(|(_, p)| p));
        }
        for p in &pause {
            if self.paused.insert(*p) {
                PartitionHeld { partition: *p, worker: lane }.emit();
            }
        }
        Ok(pause)
    }

    /// Moves held frames into lanes that have room, oldest first, and drops those `current` says were
    /// revoked since they were consumed (their offsets cannot be stored any more, and the partition's next
    /// owner reads them again: running them would only add duplicates, older than its own results). Returns
    /// the partitions to resume.
    pub fn release(
        &mut self,
        current: impl Fn(&crate::offsets::Ticket) -> bool,
    ) -> std::result::Result<Vec<i32>, LaneGone> {
        for held in &mut self.held {
            for queue in held.values_mut() {
                queue.retain(|(_, job)| current(&job.ticket));
            }
            held.retain(|_, queue| !queue.is_empty());
        }
        let mut resume = Vec::new();
        for (tx, held) in self.lanes.iter().zip(&mut self.held) {
            while tx.capacity() > 0 {
                let oldest = held.iter().filter_map(|(p, q)| q.front().map(|(ts, _)| (*ts, *p))).min();
                let Some((_, partition)) = oldest else { break };
                let Some((_, job)) = held.get_mut(&partition).and_then(VecDeque::pop_front) else { break };
                if tx.try_send(job).is_err() {
                    // Room was checked just above and only this thread sends: the lane has stopped.
                    return Err(LaneGone);
                }
                if held.get(&partition).is_some_and(VecDeque::is_empty) {
                    held.remove(&partition);
                }
            }
            if held.values().map(VecDeque::len).sum::<usize>() <= HELD / 2 {
                resume.extend(self.paused.iter().filter(|p| held.contains_key(p)));
            }
        }
        // Paused partitions with nothing held any more go on too.
        let held = &self.held;
        resume.extend(self.paused.iter().filter(|p| !held.iter().any(|h| h.contains_key(p))));
        resume.sort_unstable();
        resume.dedup();
        for p in &resume {
            self.paused.remove(p);
        }
        Ok(resume)
    }

    /// Whether frames are held back or partitions paused for a full lane.
    pub fn holding(&self) -> bool {
        !self.paused.is_empty() || self.held.iter().any(|h| !h.is_empty())
    }

    /// Whether `partition` is paused for its lane (and must stay so).
    pub fn holds(&self, partition: i32) -> bool {
        self.paused.contains(&partition)
    }
}

/// What every lane is started with.
pub(crate) struct Settings {
    pub metrics: Metrics,
    pub retries: u32,
    pub batch_wait: Duration,
    pub max_frame_age: Option<Duration>,
}

/// A started lane: where its frames go in, and its two threads.
pub(crate) struct Lane {
    pub jobs: mpsc::Sender<Job>,
    pub threads: [JoinHandle<()>; 2],
}

/// Starts lane `worker` with its own `detector`, sending its outcomes to `out`. The lane ends when its
/// input closes, after finishing what it holds; a panic in it stops the replica through `sup`.
pub(crate) fn start(
    sup: &Supervisor,
    worker: usize,
    detector: Detector,
    settings: &Settings,
    out: mpsc::Sender<Outcome>,
) -> Result<Lane> {
    let preprocessor = detector.preprocessor()?;
    // The lane's two stages share its expected call duration: preprocess reads what inference measures.
    let freshness = settings.max_frame_age.map(Freshness::new);
    let (job_tx, job_rx) = mpsc::channel::<Job>(JOBS);
    let (prep_tx, prep_rx) = mpsc::channel::<PreparedJob>(PREPARED);
    let pre = {
        let (freshness, out) = (freshness.clone(), out.clone());
        sup.thread("preprocess", move || {
            stages::preprocess_stage(preprocessor, freshness, job_rx, prep_tx, out);
            Ok(())
        })?
    };
    let inference = Inference {
        model: detector,
        metrics: settings.metrics.clone(),
        retries: settings.retries,
        batch_wait: settings.batch_wait,
        freshness,
        worker: worker.to_string(),
    };
    let inf = sup.thread("inference", move || {
        inference::inference_stage(inference, prep_rx, out);
        Ok(())
    })?;
    Ok(Lane { jobs: job_tx, threads: [pre, inf] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_camera_goes_to_the_lane_with_the_fewest_and_stays_there() {
        let mut r = Router::new(2);
        assert_eq!(r.lane(3, b"a"), (0, true));
        assert_eq!(r.lane(1, b"b"), (1, true));
        assert_eq!(r.lane(3, b"a"), (0, false));
        // Three cameras in one partition are spread too: a lane per partition would give one lane all three.
        assert_eq!(r.lane(0, b"c"), (0, true), "a tie goes to the lowest lane");
        assert_eq!(r.lane(0, b"d"), (1, true));
        assert_eq!(r.lane(0, b"e"), (0, true));
        assert_eq!((r.cameras(0), r.cameras(1)), (3, 2));
        // However often they come, in whatever order, cameras keep their lanes.
        for (p, k, lane) in [(0, b"d", 1), (3, b"a", 0), (0, b"c", 0), (1, b"b", 1), (0, b"e", 0), (0, b"d", 1)] {
            assert_eq!(r.lane(p, k).0, lane);
        }
    }

    #[test]
    fn past_the_table_a_key_always_gets_the_same_lane() {
        let mut r = Router::new(3);
        r.routed = ROUTED;
        let lane = r.lane(0, b"garbage").0;
        assert!((0..10).all(|_| r.lane(0, b"garbage") == (lane, false)));
        assert_eq!(r.lane_of.len(), 0, "nothing more is remembered");
    }

    fn job(partition: i32, offset: i64) -> Job {
        let permit = std::sync::Arc::new(tokio::sync::Semaphore::new(1)).try_acquire_owned().unwrap();
        Job {
            ticket: crate::offsets::Ticket { partition, offset, generation: 1 },
            key: None,
            payload: Vec::new(),
            headers: None,
            received: std::time::Instant::now(),
            consumed_us: 0,
            permit,
        }
    }

    /// What is in a lane's channel now, as (partition, offset).
    fn drain(rx: &mut mpsc::Receiver<Job>) -> Vec<(i32, i64)> {
        std::iter::from_fn(|| rx.try_recv().ok()).map(|j| (j.ticket.partition, j.ticket.offset)).collect()
    }

    #[test]
    fn a_full_lane_holds_frames_back_and_pauses_the_partition_furthest_ahead() {
        let (tx0, mut rx0) = mpsc::channel(JOBS);
        let (tx1, mut rx1) = mpsc::channel(JOBS);
        let mut d = Dispatch::new(vec![tx0, tx1]);
        // Partitions 7 and 9 go to lane 0, 8 to lane 1. Offsets double as timestamps.
        assert_eq!(d.send(7, 0, job(7, 0)), Ok(vec![]));
        assert_eq!(d.send(8, 0, job(8, 0)), Ok(vec![]));
        for o in 1..JOBS as i64 {
            assert_eq!(d.send(9, o, job(9, o)), Ok(vec![]));
        }
        // Lane 0 is full: its frames are held back. Partition 9 is behind in time (its frames are older).
        for o in 0..HELD as i64 / 2 {
            assert_eq!(d.send(9, 20 + o, job(9, 20 + o)), Ok(vec![]));
            let pause = d.send(7, 100 + o, job(7, 100 + o)).unwrap();
            assert_eq!(pause, if o + 1 == HELD as i64 / 2 { vec![7] } else { vec![] }, "at {o}");
        }
        assert!(d.holding() && d.holds(7) && !d.holds(9), "7, ahead, is paused; 9 catches up");
        assert_eq!(d.send(8, 1, job(8, 1)), Ok(vec![]), "lane 1 still takes partition 8");
        assert_eq!(d.send(7, 500, job(7, 500)), Ok(vec![7]), "a frame of a paused partition pauses it again");
        assert_eq!(d.release(|_| true), Ok(vec![]), "no room yet");
        // Lane 0 works through frames: the held ones go in oldest first; once at most half of HELD are left,
        // 7 is resumed.
        assert_eq!(drain(&mut rx0).len(), JOBS);
        assert_eq!(d.release(|_| true), Ok(vec![]), "17 still held");
        let mut expected: Vec<(i32, i64)> = (20..36).map(|o| (9, o)).collect();
        assert_eq!(drain(&mut rx0), expected, "oldest first: 9 catches up");
        assert_eq!(d.release(|_| true), Ok(vec![7]));
        expected = (100..116).map(|o| (7, o)).collect();
        assert_eq!(drain(&mut rx0), expected);
        assert_eq!(d.release(|_| true), Ok(vec![]));
        assert_eq!(drain(&mut rx0), [(7, 500)]);
        assert!(!d.holding());
        assert_eq!(drain(&mut rx1), [(8, 0), (8, 1)]);
        drop(rx1);
        assert_eq!(d.send(8, 2, job(8, 2)), Err(LaneGone));
    }

    #[test]
    fn frames_held_for_a_revoked_partition_are_dropped_not_run() {
        let (tx, mut rx) = mpsc::channel(JOBS);
        let (tx1, _rx1) = mpsc::channel(JOBS);
        let mut d = Dispatch::new(vec![tx, tx1]);
        for o in 0..JOBS as i64 + 4 {
            d.send(7, o, job(7, o)).unwrap();
        }
        assert!(d.holding());
        assert_eq!(drain(&mut rx).len(), JOBS);
        // Partition 7 was revoked meanwhile: its 4 held frames belong to its next owner.
        assert_eq!(d.release(|t| t.partition != 7), Ok(vec![]));
        assert!(drain(&mut rx).is_empty() && !d.holding());
    }

    #[test]
    fn a_lane_with_too_many_held_pauses_all_its_partitions() {
        let (tx0, _rx0) = mpsc::channel(1);
        let (tx1, _rx1) = mpsc::channel(1);
        let mut d = Dispatch::new(vec![tx0, tx1]);
        d.send(7, 0, job(7, 0)).unwrap();
        d.send(8, 0, job(8, 0)).unwrap();
        let mut paused = BTreeSet::new();
        for o in 1..=2 * HELD as i64 {
            paused.extend(d.send(7 + 2 * (o % 2) as i32, o, job(7, o)).unwrap());
        }
        assert_eq!(paused, BTreeSet::from([7, 9]));
    }

    #[test]
    fn one_lane_takes_every_partition() {
        let mut r = Router::new(1);
        assert!((0..10).all(|p| r.lane(p, b"cam").0 == 0));
        // Zero lanes cannot be asked for (clap refuses --workers 0), and would still route somewhere.
        assert_eq!(Router::new(0).lane(5, b"cam").0, 0);
    }
}
