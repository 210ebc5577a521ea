//! The inference stage of a lane, on its own thread: it takes prepared frames in order into a small window,
//! lets the [`Picker`] decide which run in the next model call and which are skipped as stale
//! (`--max-frame-age`), runs the model, and sends every frame's Detections to the output in the order the
//! frames came, skipped ones included. A batch the model keeps failing on leaves as dead letters.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use framewire_common::backoff::Backoff;
use framewire_common::time::{now_ms, now_us};
use framewire_proto::{DetectionBox, Detections, SCHEMA_VERSION, Skipped, StageTimes};

use crate::Result;
use crate::events::{BatchInferred, FrameDetected, FrameSkipped, InferenceRetried};
use crate::freshness::{self, Freshness};
use crate::metrics::Metrics;
use crate::model::Detector;
use crate::preprocess::Prepared;
use crate::stages::{Outcome, PreparedJob};
use crate::turns::{Candidate, Picker, Verdict};

/// Each frame's boxes, and the inference time of the call in milliseconds.
pub(crate) type Inferred = (Vec<Vec<DetectionBox>>, f32);

/// What the stage needs of a model: a seam so that the order of records can be tested without ONNX Runtime.
pub(crate) trait Model {
    fn detect(&mut self, batch: &[&Prepared]) -> Result<Inferred>;
    fn name(&self) -> &str;
    fn version(&self) -> &str;
    /// Largest batch of one call.
    fn max_batch(&self) -> usize;
}

impl Model for Detector {
    fn detect(&mut self, batch: &[&Prepared]) -> Result<Inferred> {
        Detector::detect(self, batch)
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn version(&self) -> &str {
        &self.version
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }
}

/// What the inference stage needs besides its channels.
pub(crate) struct Inference<M = Detector> {
    pub model: M,
    pub metrics: Metrics,
    /// Attempts per batch before its frames are dead-lettered.
    pub retries: u32,
    /// How long a partial batch waits for more frames.
    pub batch_wait: Duration,
    /// `--max-frame-age`, with this lane's expected call duration, which this stage keeps up to date.
    pub freshness: Option<Freshness>,
    /// This lane's number, as the `worker` label of its metrics.
    pub worker: String,
}

/// Frames the stage looks ahead with `--max-frame-age`: enough to see the other cameras of a partition
/// when deciding whose frame runs next, few enough that decoded frames waiting here stay a small amount of
/// memory. Without it the stage holds only the batch it is filling, as it always did.
const LOOKAHEAD: usize = 8;

/// Runs the model on prepared frames until `prepared` closes (and the frames taken are done) or the output
/// is gone.
pub(crate) fn inference_stage<M: Model>(
    mut inf: Inference<M>,
    mut prepared: mpsc::Receiver<PreparedJob>,
    out: mpsc::Sender<Outcome>,
) {
    // A failed call is most often the device being busy or short of memory for a moment: wait a little,
    // growing, and differently in each replica so they do not all retry at once.
    let mut backoff = Backoff::jittered(Duration::from_millis(50), Duration::from_secs(1));
    let mut picker = Picker::default();
    let max_batch = inf.model.max_batch().max(1);
    let lookahead = if inf.freshness.is_some() { LOOKAHEAD.max(max_batch) } else { max_batch };
    let mut window: VecDeque<PreparedJob> = VecDeque::with_capacity(lookahead);
    while fill(&mut window, &mut prepared, lookahead, max_batch, inf.batch_wait) {
        let verdicts = {
            let candidates: Vec<Candidate<'_>> = window
                .iter()
                .map(|j| Candidate {
                    camera: &j.frame.camera_id,
                    capture_ms: freshness::born_ms(&j.frame),
                    stale: j.prepared.is_none(),
                })
                .collect();
            picker.pick(&candidates, now_us(), inf.freshness.as_ref(), max_batch)
        };
        let decided: Vec<(PreparedJob, Verdict)> = window.drain(..verdicts.len()).zip(verdicts).collect();
        if !call(&mut inf, decided, &out, &mut backoff) {
            return;
        }
    }
}

/// Tops the window up to `target` frames: waits for one when it is empty, then takes what has arrived,
/// waiting up to `wait` more only while a batch has frames to run and room for more. False once the input
/// is closed and the window empty.
fn fill(
    window: &mut VecDeque<PreparedJob>,
    prepared: &mut mpsc::Receiver<PreparedJob>,
    target: usize,
    max_batch: usize,
    wait: Duration,
) -> bool {
    if window.is_empty() {
        match prepared.blocking_recv() {
            Some(j) => window.push_back(j),
            None => return false,
        }
    }
    let deadline = Instant::now() + wait;
    while window.len() < target {
        match prepared.try_recv() {
            Ok(j) => window.push_back(j),
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) => {
                let to_run = window.iter().filter(|j| j.prepared.is_some()).count();
                if to_run == 0 || to_run >= max_batch {
                    break;
                }
                // Polling in short naps: a blocking receive with a deadline does not exist for this channel.
                match deadline.checked_duration_since(Instant::now()) {
                    Some(left) => std::thread::sleep(left.min(Duration::from_micros(500))),
                    None => break,
                }
            }
        }
    }
    true
}

/// Runs one model call on the frames of `decided` that run, and sends the outcome of every frame of
/// `decided`, in its order. False when the output is gone.
fn call<M: Model>(
    inf: &mut Inference<M>,
    decided: Vec<(PreparedJob, Verdict)>,
    out: &mpsc::Sender<Outcome>,
    backoff: &mut Backoff,
) -> bool {
    let runs = |(j, v): &(PreparedJob, Verdict)| v.runs() && j.prepared.is_some();
    let first = decided.iter().position(runs).unwrap_or(decided.len());
    let mut decided = decided.into_iter();
    // Skipped frames ahead of the first frame to run need not wait for its call.
    for (j, v) in decided.by_ref().take(first) {
        if out.blocking_send(skipped(&inf.model, j, v)).is_err() {
            return false;
        }
    }
    let rest: Vec<(PreparedJob, Verdict)> = decided.collect();
    if rest.is_empty() {
        return true;
    }
    let inputs: Vec<&Prepared> = rest.iter().filter(|d| runs(d)).filter_map(|(j, _)| j.prepared.as_ref()).collect();
    let frames = inputs.len();
    let (result, attempts, span) = infer(inf, &inputs, backoff);
    drop(inputs);
    let infer_ms = result.as_ref().ok().map(|(_, ms)| *ms);
    BatchInferred { frames, infer_ms, worker: &inf.worker }.emit(&inf.metrics);
    match result {
        Ok((boxes, infer_ms)) => {
            if let Some(f) = &inf.freshness {
                f.expected().observe(span.1 - span.0);
                for (j, _) in rest.iter().filter(|d| runs(d)) {
                    f.wait().observe(span.0 - j.taken_us);
                }
            }
            let per_frame_ms = infer_ms / frames.max(1) as f32;
            let mut boxes = boxes.into_iter();
            for d in rest {
                let outcome = if runs(&d) {
                    detected(inf, d.0, boxes.next().unwrap_or_default(), per_frame_ms, span)
                } else {
                    skipped(&inf.model, d.0, d.1)
                };
                if out.blocking_send(outcome).is_err() {
                    return false;
                }
            }
        }
        Err(e) => {
            for d in rest {
                let outcome = if runs(&d) {
                    let f = &d.0.frame;
                    let reason = format!("camera {} seq {}: {e} (after {attempts} attempts)", f.camera_id, f.seq);
                    Outcome::Dead { job: d.0.job, reason, kind: "inference" }
                } else {
                    skipped(&inf.model, d.0, d.1)
                };
                if out.blocking_send(outcome).is_err() {
                    return false;
                }
            }
        }
    }
    true
}

/// Runs the model on `batch`, up to `--retries` times. Returns the last result, the attempts made, and when
/// the last attempt started and ended (Unix µs).
fn infer<M: Model>(
    inf: &mut Inference<M>,
    batch: &[&Prepared],
    backoff: &mut Backoff,
) -> (Result<Inferred>, u32, (i64, i64)) {
    backoff.reset();
    let mut attempt = 1;
    loop {
        let start = now_us();
        let result = inf.model.detect(batch);
        let span = (start, now_us());
        match result {
            Ok(r) => return (Ok(r), attempt, span),
            Err(error) if attempt < inf.retries.max(1) => {
                InferenceRetried { error: &error, attempt }.emit();
                std::thread::sleep(backoff.next_delay());
                attempt += 1;
            }
            Err(e) => return (Err(e), attempt, span),
        }
    }
}

/// The fields every record of a frame has, run or skipped: its identity, where it came from, and the stage
/// times so far.
fn record(model: &impl Model, j: &PreparedJob) -> Detections {
    let f = &j.frame;
    let ingest = f.stage_times.unwrap_or_default();
    Detections {
        schema_version: SCHEMA_VERSION,
        camera_id: f.camera_id.clone(),
        seq: f.seq,
        capture_time_ms: f.capture_time_ms,
        stream_time_us: f.stream_time_us,
        width: f.width,
        height: f.height,
        model_name: model.name().to_string(),
        model_version: model.version().to_string(),
        inference_ms: 0.0,
        boxes: Vec::new(),
        detected_time_ms: now_ms(),
        source_topic: String::new(),
        source_partition: j.job.ticket.partition,
        source_offset: j.job.ticket.offset,
        stage_times: Some(StageTimes {
            decoded_us: ingest.decoded_us,
            encoded_us: ingest.encoded_us,
            published_us: ingest.published_us,
            consumed_us: j.job.consumed_us,
            // The inference times are set for frames that run, the produced time by the output stage.
            ..Default::default()
        }),
        unchanged_before: f.unchanged_before,
        skipped: Skipped::None as i32,
    }
}

/// A frame's result.
fn detected<M: Model>(
    inf: &Inference<M>,
    j: PreparedJob,
    boxes: Vec<DetectionBox>,
    inference_ms: f32,
    (start_us, end_us): (i64, i64),
) -> Outcome {
    let mut detections = record(&inf.model, &j);
    // The decoded image's size is what the boxes are in.
    if let Some(p) = &j.prepared {
        (detections.width, detections.height) = (p.src_width, p.src_height);
    }
    detections.boxes = boxes;
    detections.inference_ms = inference_ms;
    if let Some(t) = detections.stage_times.as_mut() {
        (t.inference_start_us, t.inference_end_us) = (start_us, end_us);
    }
    FrameDetected { detections: &detections, queued_ms: j.job.received.elapsed().as_millis() as u64 }
        .emit(&inf.metrics);
    Outcome::Detected { ticket: j.job.ticket, detections, permit: j.job.permit }
}

/// The record of a frame that was not run: no boxes, marked stale.
fn skipped(model: &impl Model, j: PreparedJob, verdict: Verdict) -> Outcome {
    let mut detections = record(model, &j);
    detections.set_skipped(Skipped::Stale);
    let at = match (&j.prepared, verdict) {
        (None, _) => "preprocess",
        (Some(_), Verdict::Yielded) => "yielded",
        (Some(_), _) => "inference",
    };
    FrameSkipped { detections: &detections, at }.emit();
    Outcome::Detected { ticket: j.job.ticket, detections, permit: j.job.permit }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use tokio::sync::Semaphore;

    use super::*;
    use crate::Error;
    use crate::offsets::Ticket;
    use crate::preprocess::Transform;
    use crate::stages::Job;

    /// A model that finds nothing, takes `call` per call, and fails when told to.
    struct Fake {
        call: Duration,
        max_batch: usize,
        fail: bool,
    }

    impl Model for Fake {
        fn detect(&mut self, batch: &[&Prepared]) -> Result<Inferred> {
            std::thread::sleep(self.call);
            if self.fail {
                return Err(Error::Inference("device lost".into()));
            }
            Ok((vec![Vec::new(); batch.len()], self.call.as_secs_f32() * 1000.0))
        }
        fn name(&self) -> &str {
            "fake"
        }
        fn version(&self) -> &str {
            "0123456789ab"
        }
        fn max_batch(&self) -> usize {
            self.max_batch
        }
    }

    /// A frame of camera `camera` captured `age_ms` ago at offset `offset`; `decoded: false` is a frame the
    /// preprocess stage found stale.
    fn frame(camera: &str, offset: i64, age_ms: i64, decoded: bool) -> PreparedJob {
        let permit = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        let job = Job {
            ticket: Ticket { partition: 0, offset, generation: 1 },
            key: None,
            payload: Vec::new(),
            headers: None,
            received: Instant::now(),
            consumed_us: now_us() - 1_000,
            permit,
        };
        let frame = framewire_proto::Frame {
            camera_id: camera.into(),
            seq: offset as u64,
            capture_time_ms: now_ms() - age_ms,
            width: 64,
            height: 48,
            stage_times: Some(StageTimes { decoded_us: 7, ..Default::default() }),
            unchanged_before: 3,
            ..Default::default()
        };
        let prepared = decoded.then(|| Prepared {
            tensor: Vec::new(),
            src_width: 64,
            src_height: 48,
            transform: Transform { sx: 1.0, sy: 1.0, pad_x: 0.0, pad_y: 0.0 },
        });
        PreparedJob { job, frame, prepared, taken_us: now_us() }
    }

    /// Runs the stage over `frames` and returns what it sent to the output, in order.
    fn run(model: Fake, max_age: Option<Duration>, frames: Vec<PreparedJob>) -> Vec<Outcome> {
        let (tx, rx) = mpsc::channel(frames.len().max(1));
        let (out_tx, mut out_rx) = mpsc::channel(frames.len().max(1));
        for f in frames {
            tx.try_send(f).map_err(|_| "full").unwrap();
        }
        drop(tx);
        let inf = Inference {
            model,
            metrics: Metrics::new(),
            retries: 2,
            batch_wait: Duration::from_millis(1),
            freshness: max_age.map(Freshness::new),
            worker: "0".into(),
        };
        std::thread::spawn(move || inference_stage(inf, rx, out_tx)).join().unwrap();
        let mut outcomes = Vec::new();
        while let Ok(o) = out_rx.try_recv() {
            outcomes.push(o);
        }
        outcomes
    }

    /// (offset, skipped, dead) of each outcome.
    fn summary(outcomes: &[Outcome]) -> Vec<(i64, bool, bool)> {
        outcomes
            .iter()
            .map(|o| match o {
                Outcome::Detected { ticket, detections, .. } => {
                    (ticket.offset, detections.skipped() == Skipped::Stale, false)
                }
                Outcome::Dead { job, .. } => (job.ticket.offset, false, true),
            })
            .collect()
    }

    fn fake(call_ms: u64) -> Fake {
        Fake { call: Duration::from_millis(call_ms), max_batch: 1, fail: false }
    }

    #[test]
    fn a_stale_frames_record_keeps_its_place_among_the_partitions_results() {
        // 0 fresh, 1 found stale before decoding, 2 fresh, 3 stale by now, 4 and 5 fresh. (One camera: turns
        // between cameras are the picker's, tested with it.)
        let frames = vec![
            frame("a", 0, 10, true),
            frame("a", 1, 1_100, false),
            frame("a", 2, 10, true),
            frame("a", 3, 5_000, true),
            frame("a", 4, 10, true),
            frame("a", 5, 10, true),
        ];
        let out = run(fake(5), Some(Duration::from_secs(1)), frames);
        let expected = [
            (0, false, false),
            (1, true, false),
            (2, false, false),
            (3, true, false),
            (4, false, false),
            (5, false, false),
        ];
        assert_eq!(summary(&out), expected);
    }

    #[test]
    fn a_record_carries_the_frames_identity_and_stage_times() {
        let out = run(fake(5), Some(Duration::from_secs(1)), vec![frame("a", 0, 10, true), frame("a", 1, 9_000, true)]);
        let [Outcome::Detected { detections: run, .. }, Outcome::Detected { detections: skip, .. }] = &out[..] else {
            panic!("two records expected");
        };
        for d in [run, skip] {
            assert_eq!(
                (d.camera_id.as_str(), d.model_name.as_str(), d.model_version.as_str()),
                ("a", "fake", "0123456789ab")
            );
            assert_eq!((d.width, d.height, d.unchanged_before), (64, 48, 3));
            let t = d.stage_times.unwrap();
            assert_eq!(t.decoded_us, 7, "ingest's times are kept");
            assert!(t.consumed_us > 0);
            assert_eq!(t.produced_us, 0, "set by the output stage");
        }
        let t = run.stage_times.unwrap();
        assert!(t.consumed_us <= t.inference_start_us && t.inference_start_us + 4_000 <= t.inference_end_us, "{t:?}");
        assert!(run.inference_ms >= 4.0 && run.skipped() == Skipped::None);
        let t = skip.stage_times.unwrap();
        assert_eq!((t.inference_start_us, t.inference_end_us, skip.inference_ms), (0, 0, 0.0));
        assert!(skip.boxes.is_empty() && skip.skipped() == Skipped::Stale);
    }

    #[test]
    fn a_camera_that_missed_its_turn_goes_first_and_records_stay_in_order() {
        // a was run; b's frame 1 then went stale (a near miss), so a's fresh frame 2 gives way to b's frame 3.
        let frames = vec![
            frame("a", 0, 10, true),
            frame("b", 1, 1_100, false),
            frame("a", 2, 10, true),
            frame("b", 3, 10, true),
            frame("a", 4, 10, true),
        ];
        let out = run(fake(5), Some(Duration::from_secs(1)), frames);
        assert_eq!(
            summary(&out),
            [(0, false, false), (1, true, false), (2, true, false), (3, false, false), (4, false, false)]
        );
    }

    #[test]
    fn without_a_maximum_age_every_frame_is_run_in_order() {
        let frames = (0..5).map(|o| frame("a", o, 60_000, true)).collect();
        let out = run(Fake { max_batch: 2, ..fake(1) }, None, frames);
        assert_eq!(summary(&out), (0..5).map(|o| (o, false, false)).collect::<Vec<_>>());
    }

    #[test]
    fn a_failing_model_dead_letters_the_frames_it_ran_and_keeps_the_skipped_ones_records() {
        let frames = vec![frame("a", 0, 10, true), frame("a", 1, 10, false), frame("a", 2, 10, true)];
        let out = run(Fake { fail: true, ..fake(0) }, Some(Duration::from_secs(1)), frames);
        assert_eq!(summary(&out), [(0, false, true), (1, true, false), (2, false, true)]);
    }

    #[test]
    fn the_expected_call_is_learnt_from_the_calls() {
        let f = Freshness::new(Duration::from_secs(1));
        let (tx, rx) = mpsc::channel(4);
        let (out_tx, _out_rx) = mpsc::channel(4);
        tx.try_send(frame("a", 0, 10, true)).map_err(|_| "full").unwrap();
        drop(tx);
        let inf = Inference {
            model: fake(20),
            metrics: Metrics::new(),
            retries: 1,
            batch_wait: Duration::ZERO,
            freshness: Some(f.clone()),
            worker: "0".into(),
        };
        inference_stage(inf, rx, out_tx);
        assert!(f.expected().get_us() >= 20_000, "{}", f.expected().get_us());
        assert!(f.wait().get_us() > 0, "the frame waited in the channel before its call");
    }
}
