//! Fills a store with a made-up week of 16 cameras, for the review pages' benchmark (`bench/web.sh`).
//! `cargo run --release -p framewire-subscribe --example fill_store -- --db sqlite://PATH --boxes 1000000`
//!
//! Everything goes through the store's own write path (`Db::open`, then `Db::write` of `Changes` batches),
//! so the file has the schema, migrations and indexes `subscribe store` would give it. Each camera sends
//! frames at `--fps` for `--days`, ending now; most frames are empty, as a security camera's are. Objects
//! (person, car, bicycle, dog) come and go in runs of 20 to 60 frames, more by day than by night and more on
//! some cameras than on others, with at most 4 boxes a frame; each object of a run is one event, with a
//! snapshot of the frame it appeared in for most of them. How often runs start is worked out from `--boxes`,
//! so the store ends up with about that many boxes. The same arguments give the same store, but for the
//! times, which end when it runs.
//!
//! Progress goes to stderr; the last line on stdout is a JSON summary of what was written.

use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use framewire_common::time::now_ms;
use framewire_proto::names::TOPIC_FRAMES;
use framewire_proto::{DetectionBox, Detections, SCHEMA_VERSION};
use framewire_subscribe::repo::{Changes, Db, StoredFrame};
use framewire_subscribe::snapshot::key_for;
use framewire_subscribe::track::{EventRow, event_id};

#[derive(Debug, Parser)]
struct Args {
    /// The store to fill: `sqlite://PATH` or `postgres://…`. It must not hold frames yet.
    #[arg(long)]
    db: String,
    /// About how many boxes to write.
    #[arg(long, default_value_t = 1_000_000)]
    boxes: u64,
    #[arg(long, default_value_t = 16)]
    cameras: u32,
    /// How far back the first frames are, ending now.
    #[arg(long, default_value_t = 7.0)]
    days: f64,
    /// Frames per second of each camera.
    #[arg(long, default_value_t = 1.0)]
    fps: f64,
    /// Frames per transaction.
    #[arg(long, default_value_t = 4000)]
    batch: usize,
    #[arg(long, default_value_t = 17)]
    seed: u64,
}

const MODEL_NAME: &str = "ssdlite_mobilenet_v2_coco";
const MODEL_VERSION: &str = "5e7f3c0a9b12";
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
const MAX_BOXES: usize = 4;
/// Runs last 20 to 60 frames.
const RUN_FRAMES: (u32, u32) = (20, 60);
/// The share of runs with two objects instead of one.
const PAIRS: f64 = 0.2;
/// The share of events whose first frame got a snapshot (the others: snapshots off for a while, a write
/// that failed).
const SNAPSHOTTED: f64 = 0.9;

/// Label, class id (COCO, as the model's labels file numbers them), share of runs, typical box size.
const LABELS: [(&str, u32, f64, (f32, f32)); 4] = [
    ("person", 1, 0.5, (90.0, 220.0)),
    ("car", 3, 0.3, (260.0, 150.0)),
    ("bicycle", 2, 0.12, (140.0, 110.0)),
    ("dog", 18, 0.08, (80.0, 60.0)),
];

/// splitmix64: deterministic without a dependency; plenty for made-up detections.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// How busy a camera is by hour of the day (UTC): quiet at night, busiest at midday.
fn daylight(hour: f64) -> f64 {
    0.25 + 0.75 * (std::f64::consts::PI * (hour - 6.0) / 12.0).sin().max(0.0)
}

/// The chance that a run of `label` starts in a frame of a camera this busy at this hour.
fn start_chance(k: f64, busy: f64, label: usize, hour: f64) -> f64 {
    (k * busy * LABELS[label].2 * daylight(hour)).min(1.0)
}

/// The boxes to expect with run-start factor `k`, given each camera's frames per hour of the day: per
/// camera, label and hour, the share of frames inside a run (a run of mean length L, then a wait of mean
/// (1 - p) / p frames) times the objects a run has.
fn expected_boxes(k: f64, busy: &[f64], frames_by_hour: &[f64; 24]) -> f64 {
    let run = f64::from(RUN_FRAMES.0 + RUN_FRAMES.1) / 2.0;
    let mut boxes = 0.0;
    for &b in busy {
        for label in 0..LABELS.len() {
            for (hour, frames) in frames_by_hour.iter().enumerate() {
                let p = start_chance(k, b, label, hour as f64 + 0.5);
                let inside = if p <= 0.0 { 0.0 } else { run / (run + (1.0 - p) / p) };
                boxes += frames * inside * (1.0 + PAIRS);
            }
        }
    }
    boxes
}

/// The hour of the day (UTC, fractional) of a Unix time in ms.
fn hour_of(ms: i64) -> f64 {
    ms.rem_euclid(86_400_000) as f64 / 3_600_000.0
}

/// One object in view: its event, and where its box goes next.
struct Object {
    event: EventRow,
    at: [f32; 2],
    size: [f32; 2],
    step: [f32; 2],
    score: f64,
}

struct Run {
    objects: Vec<Object>,
    frames_left: u32,
}

struct Camera {
    id: String,
    busy: f64,
    /// Cameras do not capture in step.
    offset_ms: i64,
    partition: i32,
    runs: [Option<Run>; LABELS.len()],
}

#[derive(Default)]
struct Totals {
    frames: u64,
    boxes: u64,
    events: u64,
    snapshots: u64,
    transactions: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.cameras == 0 || args.days <= 0.0 || args.fps <= 0.0 || args.batch == 0 {
        bail!("--cameras, --days, --fps and --batch must be above 0");
    }
    let mut db = Db::open(&args.db).await.context("opening the store")?;
    // Its cursors are written with every batch: any means a store was written here before.
    if !db.cursors().await?.is_empty() {
        bail!("the store at --db already holds frames: give a new file (or an empty database)");
    }

    let mut rng = Rng(args.seed);
    let frames_per_camera = (args.days * 86_400.0 * args.fps).round() as u64;
    let mut cameras: Vec<Camera> = (0..args.cameras)
        .map(|c| Camera {
            id: format!("cam{}", c + 1),
            // Squared: a few busy cameras, many quiet ones.
            busy: 0.1 + 0.9 * rng.unit().powi(2),
            offset_ms: i64::from(c) * 61 % 1000,
            partition: (c % 3) as i32,
            runs: Default::default(),
        })
        .collect();
    let busy: Vec<f64> = cameras.iter().map(|c| c.busy).collect();
    let most = f64::from(args.cameras) * frames_per_camera as f64 * MAX_BOXES as f64;
    if args.boxes as f64 > 0.5 * most {
        bail!(
            "{} boxes do not fit {} cameras x {} frames: raise --days or --fps",
            args.boxes,
            args.cameras,
            frames_per_camera
        );
    }
    let end_ms = now_ms();
    let frame_ms = 1000.0 / args.fps;
    let start_ms = end_ms - (frames_per_camera as f64 * frame_ms) as i64;
    let tick = |i: u64| start_ms + (i as f64 * frame_ms) as i64;
    let mut frames_by_hour = [0.0; 24];
    for i in 0..frames_per_camera {
        frames_by_hour[hour_of(tick(i)) as usize % 24] += 1.0;
    }
    // Bisection: the expected count grows with k.
    let expected = |k| expected_boxes(k, &busy, &frames_by_hour);
    let (mut lo, mut hi) = (0.0, 1.0);
    while expected(hi) < args.boxes as f64 && hi < 1e9 {
        hi *= 2.0;
    }
    for _ in 0..60 {
        let mid = (lo + hi) / 2.0;
        if expected(mid) < args.boxes as f64 { lo = mid } else { hi = mid }
    }
    let k = (lo + hi) / 2.0;

    let model = format!("{MODEL_NAME}@{MODEL_VERSION}");
    eprintln!(
        "filling {} with {} cameras x {frames_per_camera} frames ({} days at {} fps), aiming at {} boxes",
        args.db, args.cameras, args.days, args.fps, args.boxes
    );

    // The writer works on one batch while the next is made: two cores, both busy.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Changes>(2);
    let writer = tokio::spawn(async move {
        let mut transactions = 0u64;
        while let Some(changes) = rx.recv().await {
            db.write(&changes, "alerts").await?;
            transactions += 1;
        }
        anyhow::Ok(transactions)
    });

    let started = Instant::now();
    let mut totals = Totals::default();
    let mut offsets = [0i64; 3];
    let mut changes = Changes::default();
    let mut reported = 0;
    for i in 0..frames_per_camera {
        let tick_ms = tick(i);
        let hour = hour_of(tick_ms);
        for cam in &mut cameras {
            let capture_ms = tick_ms + cam.offset_ms;
            // A live camera's seq starts at the Unix ms when ingest started reading it.
            let seq = start_ms as u64 + i;
            frame(cam, &mut rng, &mut changes, &mut totals, Tick { k, hour, seq, capture_ms, model: &model });
            let d = &mut changes.frames.last_mut().context("a frame was just added")?.detections;
            d.stream_time_us = (i as f64 * frame_ms * 1000.0) as i64;
            d.source_offset = offsets[cam.partition as usize];
            offsets[cam.partition as usize] += 1;
            changes.cursors.insert((String::new(), cam.id.clone(), model.clone()), seq);
        }
        if changes.frames.len() >= args.batch || i + 1 == frames_per_camera {
            // Every object still in view appeared in this batch: its latest state goes with it, as the store's
            // own batches write every track they touched.
            for run in cameras.iter().flat_map(|c| c.runs.iter().flatten()) {
                for o in &run.objects {
                    changes.events.insert(o.event.id.clone(), o.event.clone());
                }
            }
            if tx.send(std::mem::take(&mut changes)).await.is_err() {
                break; // The writer failed: its error is below.
            }
        }
        let percent = (i + 1) * 20 / frames_per_camera;
        if percent > reported {
            reported = percent;
            eprintln!(
                "{:3}%: {} frames, {} boxes, {} events, {:.0} s",
                percent * 5,
                totals.frames,
                totals.boxes,
                totals.events,
                started.elapsed().as_secs_f64()
            );
        }
    }
    drop(tx);
    totals.transactions = writer.await.context("the writer task")??;

    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "wrote {} frames, {} boxes, {} events ({} with a snapshot) in {} transactions, {seconds:.0} s",
        totals.frames, totals.boxes, totals.events, totals.snapshots, totals.transactions
    );
    // `summary` first, as every framewire summary line: scripts find it with `summary_json fill_store`.
    let summary = format!(
        "{{\"summary\":\"fill_store\",{}",
        serde_json::json!({
            "db": args.db,
            "cameras": args.cameras,
            "frames": totals.frames,
            "boxes": totals.boxes,
            "events": totals.events,
            "snapshots": totals.snapshots,
            "transactions": totals.transactions,
            "from_ms": start_ms,
            "to_ms": end_ms,
            "seconds": seconds,
        })
        .to_string()
        .trim_start_matches('{')
    );
    println!("{summary}");
    Ok(())
}

/// What one frame of every camera shares.
struct Tick<'a> {
    k: f64,
    hour: f64,
    seq: u64,
    capture_ms: i64,
    model: &'a str,
}

/// One frame of `cam`: runs end and start, each object in view gives a box, and the frame is added to
/// `changes` with the events that ended.
fn frame(cam: &mut Camera, rng: &mut Rng, changes: &mut Changes, totals: &mut Totals, t: Tick<'_>) {
    for run in &mut cam.runs {
        if run.as_ref().is_some_and(|r| r.frames_left == 0) {
            for mut o in run.take().map(|r| r.objects).unwrap_or_default() {
                o.event.open = false;
                changes.events.insert(o.event.id.clone(), o.event);
            }
        }
    }
    let mut in_view: usize = cam.runs.iter().flatten().map(|r| r.objects.len()).sum();
    let mut boxes = Vec::new();
    let mut started = Vec::new();
    for (label, run) in cam.runs.iter_mut().enumerate() {
        if run.is_none() && in_view < MAX_BOXES && rng.unit() < start_chance(t.k, cam.busy, label, t.hour) {
            let n = if rng.unit() < PAIRS && in_view + 2 <= MAX_BOXES { 2 } else { 1 };
            in_view += n;
            let frames = rng.range(f64::from(RUN_FRAMES.0), f64::from(RUN_FRAMES.1) + 1.0) as u32;
            let objects = (0..n).map(|_| object(rng, label)).collect();
            *run = Some(Run { objects, frames_left: frames });
        }
        let Some(run) = run else { continue };
        run.frames_left -= 1;
        let (name, class_id, ..) = LABELS[label];
        for o in &mut run.objects {
            let score = (o.score + rng.range(-0.07, 0.07)).clamp(0.3, 0.99) as f32;
            let b = DetectionBox {
                class_id,
                label: name.to_string(),
                score,
                x1: o.at[0],
                y1: o.at[1],
                x2: (o.at[0] + o.size[0]).min(WIDTH as f32),
                y2: (o.at[1] + o.size[1]).min(HEIGHT as f32),
            };
            let e = &mut o.event;
            if e.id.is_empty() {
                // The tracker names an event after its first box.
                *e = EventRow {
                    id: event_id("", &cam.id, t.model, name, t.seq, boxes.len()),
                    camera: cam.id.clone(),
                    model: t.model.to_string(),
                    label: name.to_string(),
                    start_ms: t.capture_ms,
                    start_seq: t.seq,
                    ..e.clone()
                };
                started.push((score, e.id.clone()));
                totals.events += 1;
            }
            e.end_ms = t.capture_ms;
            e.end_seq = t.seq;
            e.frames += 1;
            if score > e.peak_score {
                e.peak_score = score;
                e.peak_seq = t.seq;
            }
            e.bbox = [b.x1, b.y1, b.x2, b.y2];
            boxes.push(b);
            o.at[0] = (o.at[0] + o.step[0]).clamp(0.0, WIDTH as f32 - o.size[0]);
            o.at[1] = (o.at[1] + o.step[1]).clamp(0.0, HEIGHT as f32 - o.size[1]);
        }
    }

    // A new event is the store's cue for a snapshot; most are taken.
    let snapshot = (!started.is_empty() && rng.unit() < SNAPSHOTTED)
        .then(|| format!("snapshots/{}", key_for(&cam.id, t.seq, t.model)));
    if let Some(path) = &snapshot {
        totals.snapshots += 1;
        for run in cam.runs.iter_mut().flatten() {
            for o in &mut run.objects {
                if let Some((score, _)) = started.iter().find(|(_, id)| *id == o.event.id) {
                    o.event.best_snapshot = Some(path.clone());
                    o.event.best_score = *score;
                }
            }
        }
    }
    totals.frames += 1;
    totals.boxes += boxes.len() as u64;
    changes.frames.push(StoredFrame {
        detections: Detections {
            schema_version: SCHEMA_VERSION,
            camera_id: cam.id.clone(),
            seq: t.seq,
            capture_time_ms: t.capture_ms,
            width: WIDTH,
            height: HEIGHT,
            model_name: MODEL_NAME.to_string(),
            model_version: MODEL_VERSION.to_string(),
            inference_ms: rng.range(7.0, 14.0) as f32,
            boxes,
            detected_time_ms: t.capture_ms + rng.range(40.0, 120.0) as i64,
            source_topic: TOPIC_FRAMES.to_string(),
            source_partition: cam.partition,
            ..Detections::default()
        },
        model: t.model.to_string(),
        snapshot,
    });
}

/// A new object of `label`, somewhere in the frame, drifting across it.
fn object(rng: &mut Rng, label: usize) -> Object {
    let (w, h) = LABELS[label].3;
    let size = [w * rng.range(0.7, 1.3) as f32, h * rng.range(0.7, 1.3) as f32];
    Object {
        // Named by `frame` at its first box, which knows the camera, seq and box index.
        event: EventRow { open: true, ..EventRow::default() },
        at: [
            rng.range(0.0, f64::from(WIDTH) - f64::from(size[0])) as f32,
            rng.range(0.0, f64::from(HEIGHT) - f64::from(size[1])) as f32,
        ],
        size,
        step: [rng.range(-12.0, 12.0) as f32, rng.range(-3.0, 3.0) as f32],
        score: rng.range(0.45, 0.95),
    }
}
