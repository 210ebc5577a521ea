//! Whose turn it is under `--max-frame-age`: which fresh frames run when not all of them can.
//!
//! Age alone is fair between cameras only by luck. After each model call the next frame run is the first one
//! still fresh; when the cameras send at one rate in a fixed rhythm (started together, or files paced by one
//! clock), that is the same camera's frame call after call, and a camera whose frames always come a
//! millisecond after another's is never run; and the camera whose partition the consumer reads first in each
//! fetch gets its frames to the model while the others' wait behind them and go stale. So a fresh frame gives
//! way (is skipped) to a camera that was run less recently and is missing out: one whose frame further in the
//! window this call would make stale, or one whose frame was skipped as stale since this camera last ran.
//! Without overload nothing is stale and nothing gives way: every frame is run, in order.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::freshness::{Freshness, is_stale};

/// A frame of the inference stage's window, as the picker sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub camera: &'a str,
    pub capture_ms: i64,
    /// Already found stale by the preprocess stage (and not decoded).
    pub stale: bool,
}

/// What happens to a frame of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Run through the model in the next call.
    Run,
    /// Skipped: its result could not be fresh.
    Stale,
    /// Skipped although fresh: it gave its turn to a camera run less recently that is missing out.
    Yielded,
}

impl Verdict {
    pub fn runs(self) -> bool {
        self == Verdict::Run
    }
}

/// Decides the frames of each model call, remembering per camera when it was last run and when it last
/// missed its turn.
#[derive(Debug)]
pub struct Picker {
    cameras: HashMap<String, Camera>,
    /// Counts decisions: the clock that "since" is measured on below.
    tick: u64,
    pruned: Instant,
}

#[derive(Debug)]
struct Camera {
    /// Tick of its last frame run; 0 if none was, which puts it first.
    run: u64,
    /// Tick of its last near miss: a frame skipped as stale, but not by far (see [`NEAR_MISS`]).
    missed: u64,
    /// Frames of other cameras skipped for it since it last ran (see [`YIELD_BUDGET`]).
    yielded_to: u32,
    seen: Instant,
}

/// A stale frame older than the maximum age by at most 1/NEAR_MISS of it was a near miss: its camera could
/// have been run had others given way. Frames far older (a camera whose clock is off, a backlog from before a
/// restart) say nothing about turns.
const NEAR_MISS: i64 = 2;

/// Most frames skipped for one camera before it runs. Bounds what a camera costs the others if its frames
/// never come fresh however many others give way (a clock a little behind): it is then left to age alone.
const YIELD_BUDGET: u32 = 32;

/// Cameras not seen for this long are forgotten: the map stays as small as the set of cameras recently
/// seen.
const FORGET_AFTER: Duration = Duration::from_secs(60);

impl Default for Picker {
    fn default() -> Self {
        Picker { cameras: HashMap::new(), tick: 0, pruned: Instant::now() }
    }
}

impl Picker {
    /// The verdicts of the first frames of `window` (in its order) for the next model call: the frames up
    /// to and including the last one it runs, at most `max_batch` of them run. The rest of the window waits
    /// for a later call. Without `freshness` every frame runs, in order.
    ///
    /// A fresh frame that would fill the call gives way (is skipped) when another camera has waited longer
    /// for a turn and is missing out: a frame of it further in the window would be made stale by this call,
    /// or one of its frames was skipped as stale since this camera last ran. So under overload cameras take
    /// turns, least recently run first; without overload nothing is stale and nothing gives way.
    pub fn pick(
        &mut self,
        window: &[Candidate<'_>],
        now_us: i64,
        freshness: Option<&Freshness>,
        max_batch: usize,
    ) -> Vec<Verdict> {
        let max_batch = max_batch.max(1);
        let Some(f) = freshness else {
            let mut runs = 0;
            return window
                .iter()
                .map_while(|c| {
                    (runs < max_batch).then(|| {
                        if c.stale {
                            Verdict::Stale
                        } else {
                            runs += 1;
                            Verdict::Run
                        }
                    })
                })
                .collect();
        };
        let (expected, max_age) = (f.ahead(f.expected().get_us()), f.max_age_us());
        let stale =
            |c: &Candidate<'_>, expected_us: i64| c.stale || is_stale(now_us, c.capture_ms, expected_us, max_age);
        let near_miss = |c: &Candidate<'_>| {
            now_us.saturating_sub(c.capture_ms.saturating_mul(1000)) <= max_age.saturating_add(max_age / NEAR_MISS)
        };
        let mut verdicts = Vec::with_capacity(window.len().min(max_batch));
        let mut runs = 0;
        for (i, c) in window.iter().enumerate() {
            if runs == max_batch {
                break;
            }
            self.tick += 1;
            let tick = self.tick;
            let verdict = if stale(c, expected) {
                if c.capture_ms > 0 && near_miss(c) {
                    self.camera(c.camera).missed = tick;
                }
                Verdict::Stale
            } else if runs + 1 == max_batch {
                // This frame fills the call: a later frame waits one call more.
                let mine = self.camera(c.camera).run;
                let conflict = window[i + 1..].iter().any(|g| {
                    g.camera != c.camera
                        && !stale(g, expected)
                        && stale(g, expected.saturating_mul(2))
                        && self.cameras.get(g.camera).map_or(0, |s| s.run) < mine
                });
                if conflict || self.owed_before(c.camera, mine) { Verdict::Yielded } else { Verdict::Run }
            } else {
                Verdict::Run
            };
            let camera = self.camera(c.camera);
            match verdict {
                Verdict::Run => {
                    runs += 1;
                    (camera.run, camera.yielded_to) = (tick, 0);
                }
                // A turn given away is a turn missed.
                Verdict::Yielded => camera.missed = tick,
                Verdict::Stale => {}
            }
            verdicts.push(verdict);
        }
        self.prune();
        verdicts
    }

    /// Whether a camera other than `camera` (last run at tick `mine`) has waited longer and missed a turn
    /// since; if so, charges the one that waited longest with the frame given way for it.
    fn owed_before(&mut self, camera: &str, mine: u64) -> bool {
        let owed = self
            .cameras
            .iter_mut()
            .filter(|(name, s)| {
                name.as_str() != camera && s.missed > mine && s.run < mine && s.yielded_to < YIELD_BUDGET
            })
            .min_by_key(|(_, s)| s.run);
        match owed {
            Some((_, s)) => {
                s.yielded_to += 1;
                true
            }
            None => false,
        }
    }

    /// The state of `camera`, seen now.
    fn camera(&mut self, camera: &str) -> &mut Camera {
        let now = Instant::now();
        let s =
            self.cameras.entry(camera.to_string()).or_insert(Camera { run: 0, missed: 0, yielded_to: 0, seen: now });
        s.seen = now;
        s
    }

    fn prune(&mut self) {
        if self.pruned.elapsed() < FORGET_AFTER {
            return;
        }
        self.pruned = Instant::now();
        self.cameras.retain(|_, s| s.seen.elapsed() < FORGET_AFTER);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    const MS: i64 = 1000;

    fn cand(camera: &str, capture_ms: i64) -> Candidate<'_> {
        Candidate { camera, capture_ms, stale: false }
    }

    #[test]
    fn without_a_maximum_age_every_frame_runs_in_order() {
        let mut p = Picker::default();
        let w = [cand("a", 1), cand("b", 1), cand("a", 2)];
        assert_eq!(p.pick(&w, i64::MAX / 2, None, 8), [Verdict::Run; 3]);
        assert_eq!(p.pick(&w, i64::MAX / 2, None, 2), [Verdict::Run; 2], "a call holds at most max_batch");
        let marked = [Candidate { stale: true, ..cand("a", 1) }, cand("b", 1)];
        assert_eq!(p.pick(&marked, 0, None, 1), [Verdict::Stale, Verdict::Run]);
    }

    #[test]
    fn stale_frames_are_skipped_up_to_the_first_fresh_one() {
        let f = Freshness::new(Duration::from_secs(1));
        f.expected().observe(30 * MS);
        let now = 10_000 * MS;
        let w = [cand("a", 8_000), Candidate { stale: true, ..cand("b", 9_900) }, cand("a", 9_500), cand("b", 9_600)];
        let mut p = Picker::default();
        assert_eq!(p.pick(&w, now, Some(&f), 1), [Verdict::Stale, Verdict::Stale, Verdict::Run]);
        assert_eq!(p.pick(&w, now, Some(&f), 8), [Verdict::Stale, Verdict::Stale, Verdict::Run, Verdict::Run]);
    }

    #[test]
    fn a_frame_gives_way_only_to_a_camera_run_less_recently_that_would_miss_its_turn() {
        let f = Freshness::new(Duration::from_secs(1));
        f.expected().observe(100 * MS);
        let now = 10_000 * MS;
        let mut p = Picker::default();
        // Camera a was run just now; b not yet.
        assert_eq!(p.pick(&[cand("a", 9_500)], now, Some(&f), 1), [Verdict::Run]);
        // b's frame (850 ms old) is fresh now but not after a's call: a gives way.
        let w = [cand("a", 9_160), cand("b", 9_150)];
        assert_eq!(p.pick(&w, now, Some(&f), 1), [Verdict::Yielded, Verdict::Run]);
        // Now a is owed: b's next frame gives way to a's, and the one after that has time for both.
        let w = [cand("b", 9_160), cand("a", 9_155)];
        assert_eq!(p.pick(&w, now, Some(&f), 1), [Verdict::Yielded, Verdict::Run]);
        let young = [cand("a", 9_600), cand("b", 9_600)];
        assert_eq!(p.pick(&young, now, Some(&f), 1), [Verdict::Run], "no conflict: in order");
        // In a batch with room for both, nobody gives way.
        let w = [cand("b", 9_160), cand("a", 9_155)];
        assert_eq!(p.pick(&w, now, Some(&f), 2), [Verdict::Run, Verdict::Run]);
    }

    /// A simulated lane: cameras sending at `period_ms` with the given phases, in the partitions given by
    /// `partition` (an index per camera), a model call of `call_ms`. With `fetch_ms` 0 the frames come in
    /// capture order; otherwise as a consumer fetches them: every `fetch_ms` what arrived since, partition
    /// after partition. The inference stage sees up to 8 frames ahead; a frame is checked for staleness once
    /// as it comes in (the preprocess stage), then by the picker.
    struct Lane<'a> {
        phases_ms: &'a [f64],
        partition: &'a [usize],
        fetch_ms: i64,
        period_ms: f64,
        call_ms: i64,
        max_age_ms: i64,
        secs: i64,
    }

    /// Frames run per camera, frames skipped, and the oldest result's age in ms.
    fn simulate(lane: &Lane<'_>) -> (Vec<u64>, u64, f64) {
        const WINDOW: usize = 8;
        let f = Freshness::new(Duration::from_millis(lane.max_age_ms as u64));
        let mut p = Picker::default();
        let names: Vec<String> = (0..lane.phases_ms.len()).map(|c| format!("cam{c}")).collect();
        let start_us = 1_000_000 * MS;
        // Every frame: the order it is consumed in (fetch round, partition, capture µs), and (when it can be
        // consumed, capture µs, camera, found stale before decoding).
        type Queued = (i64, i64, usize, bool);
        let mut frames: Vec<((i64, usize, i64), Queued)> = Vec::new();
        for (c, phase) in lane.phases_ms.iter().enumerate() {
            let mut t = phase * 1000.0;
            while t < (lane.secs * 1_000_000) as f64 {
                let capture = start_us + t as i64;
                let (ready, key) = if lane.fetch_ms == 0 {
                    (capture, (capture, 0, capture))
                } else {
                    let round = (t as i64) / (lane.fetch_ms * MS) + 1;
                    let ready = start_us + round * lane.fetch_ms * MS;
                    (ready, (round, lane.partition[c], capture))
                };
                frames.push((key, (ready, capture, c, false)));
                t += lane.period_ms * 1000.0;
            }
        }
        frames.sort_by_key(|f| f.0);
        let mut queue: VecDeque<Queued> = frames.into_iter().map(|f| f.1).collect();
        let mut now = start_us;
        let (mut runs, mut skipped, mut oldest) = (vec![0u64; names.len()], 0u64, 0f64);
        let mut checked = 0;
        while !queue.is_empty() {
            let arrived = queue.iter().take(WINDOW).take_while(|q| q.0 <= now).count();
            if arrived == 0 {
                now = queue[0].0;
                continue;
            }
            // Frames are checked once as the preprocess stage takes them, up to the 16 + 4 frames queued ahead
            // of the window.
            let taken = queue.iter().take(WINDOW + 20).take_while(|q| q.0 <= now).count();
            for q in queue.iter_mut().take(taken).skip(checked) {
                q.3 = f.stale_by_its_turn(now, q.1 / 1000);
            }
            checked = checked.max(taken);
            let window: Vec<Candidate<'_>> = queue
                .iter()
                .take(arrived)
                .map(|q| Candidate { camera: &names[q.2], capture_ms: q.1 / 1000, stale: q.3 })
                .collect();
            let verdicts = p.pick(&window, now, Some(&f), 1);
            checked -= verdicts.len();
            let decided: Vec<_> = queue.drain(..verdicts.len()).collect();
            for (q, v) in decided.iter().zip(&verdicts) {
                if v.runs() {
                    runs[q.2] += 1;
                    oldest = oldest.max((now + lane.call_ms * MS - q.1) as f64 / 1000.0);
                } else {
                    skipped += 1;
                }
            }
            if verdicts.iter().any(|v| v.runs()) {
                f.expected().observe(lane.call_ms * MS);
                now += lane.call_ms * MS;
            }
        }
        (runs, skipped, oldest)
    }

    /// Asserts that every camera ran at least `share` of its fair share.
    fn assert_fair(runs: &[u64], share: f64) {
        let total: u64 = runs.iter().sum();
        let fair = total as f64 / runs.len() as f64;
        for (c, r) in runs.iter().enumerate() {
            assert!(*r as f64 >= fair * share, "camera {c} ran {r} of {total} frames: {runs:?}");
        }
    }

    #[test]
    fn under_overload_cameras_in_lock_step_all_get_their_turn() {
        // Four cameras at 25 fps sending within the same millisecond, a 30 ms model: capacity for 1.3 of
        // them. By age alone the first camera of each round would take nearly every call.
        let (runs, skipped, oldest) = simulate(&lock_step());
        assert!(skipped > runs.iter().sum(), "the lane is overloaded: {skipped} skipped, {runs:?} run");
        assert_fair(&runs, 0.8);
        assert!(oldest <= 1000.0 + 1.0, "a result {oldest} ms old");
    }

    #[test]
    fn under_overload_cameras_at_any_phase_all_get_their_turn() {
        // Eight cameras, evenly spread phases, a call of 30 ms against a 40 ms period: age alone would serve
        // only the phases the 30 ms steps land on.
        let phases: Vec<f64> = (0..8).map(|c| c as f64 * 5.0).collect();
        let lane = Lane { phases_ms: &phases, partition: &[0; 8], ..lock_step() };
        let (runs, _, oldest) = simulate(&lane);
        assert_fair(&runs, 0.8);
        assert!(oldest <= 1001.0, "a result {oldest} ms old");
    }

    #[test]
    fn under_overload_cameras_read_partition_after_partition_all_get_their_turn() {
        // As a consumer reads a backlog: every 500 ms what came, partition by partition. Age alone favours
        // the partition read first, whose frames reach the model while the others' wait and go stale: the
        // camera read second ran 5 frames of 2015. Turns cannot be exact when a camera's frames come in
        // runs longer than the window, but none starves.
        let lane = Lane { partition: &[1, 0, 2, 0], fetch_ms: 500, ..lock_step() };
        let (runs, _, oldest) = simulate(&lane);
        assert_fair(&runs, 0.5);
        assert!(oldest <= 1001.0, "a result {oldest} ms old");
    }

    fn lock_step() -> Lane<'static> {
        Lane {
            phases_ms: &[0.0, 0.2, 0.4, 0.6],
            partition: &[0, 0, 0, 0],
            fetch_ms: 0,
            period_ms: 40.0,
            call_ms: 30,
            max_age_ms: 1000,
            secs: 60,
        }
    }

    #[test]
    fn without_overload_nothing_is_skipped() {
        let lane = Lane {
            phases_ms: &[0.0, 0.1, 20.0],
            partition: &[0, 1, 0],
            fetch_ms: 50,
            call_ms: 10,
            secs: 20,
            ..lock_step()
        };
        let (runs, skipped, _) = simulate(&lane);
        assert_eq!(skipped, 0);
        assert_eq!(runs.iter().sum::<u64>(), 3 * 500);
    }

    #[test]
    fn a_camera_whose_frames_are_always_late_costs_the_others_little() {
        // Camera 3's clock is 0.7 s behind: its frames look too old to run (by a near miss) however the others
        // give way. The others still get about all the calls.
        let lane = Lane { phases_ms: &[0.0, 0.2, 0.4, -700.0], ..lock_step() };
        let (runs, _, _) = simulate(&lane);
        assert_fair(&runs[..3], 0.8);
        let total: u64 = runs.iter().sum();
        assert!(total as f64 >= 0.9 * 60_000.0 / 30.0, "{total} calls in 60 s of 30 ms calls: {runs:?}");
    }
}
