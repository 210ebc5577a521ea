//! One camera's worker, on its own thread: open the source, decode, sample, encode, queue for the producer;
//! and for live sources, reconnect with backoff whenever the source ends, stalls or refuses, forever by
//! default, without disturbing the other cameras.
//!
//! `seq` counts frame slots: +1 per frame sent to the producer, and after an outage it jumps by the frames
//! the camera would have delivered meanwhile, so a subscriber sees every loss as a gap. Files start at 0; live
//! cameras at the Unix time in ms when ingest started them, so a restart never reuses a seq. Frames left out
//! by `--motion` take no seq: the next Frame counts them in `unchanged_before`.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ffmpeg_next::frame::Video as VideoFrame;
use tokio_util::sync::CancellationToken;

use framewire_common::backoff::Backoff;
use framewire_common::objects::Objects;
use framewire_common::time::now_us;
use framewire_proto::{CaptureClock, Encoding, Frame, SCHEMA_VERSION, SourceObject, StageTimes};

use crate::cameras::{CameraSpec, LiveTiming, SourceKind};
use crate::decode::{End, FrameTime, OpenOptions, SourceInfo, VideoSource, Watchdog};
use crate::events::{
    CameraClockOff, DamagedData, FrameDecoded, FrameDropped, FrameEncoded, FrameKeptAlive, FrameQueued, FrameShrunk,
    FrameTooLarge, FrameUnchanged, LiveSeqStarted, SourceDown, SourceLost, SourceOpened, SourceReconnected,
};
use crate::jpeg::JpegEncoder;
use crate::metrics::Metrics;
use crate::motion::{Decision, Motion};
use crate::progress::{CameraStatus, State};
use crate::queue::{CameraQueue, Full};
use crate::sample::FpsSampler;
use crate::{Error, Result};

/// What every camera worker shares.
pub struct Shared {
    pub metrics: Metrics,
    pub shutdown: CancellationToken,
    pub timing: LiveTiming,
    /// Largest JPEG that fits one Kafka message with the rest of the `Frame` and its headers.
    pub max_image_bytes: usize,
    /// How often a watched folder or bucket is listed.
    pub watch_interval: Duration,
    /// The runtime that object storage's async client runs on: camera threads are not async, they block on
    /// it.
    pub runtime: tokio::runtime::Handle,
    /// Object stores of bucket sources, one client per bucket.
    pub objects: Objects,
}

/// A camera clock further than this from ours is not trusted (an unset NTP on the camera).
const CLOCK_TRUST: Duration = Duration::from_secs(600);

/// One camera's decoding state, kept across reconnects.
pub struct Worker {
    pub spec: CameraSpec,
    pub shared: Arc<Shared>,
    pub queue: Arc<CameraQueue<Frame>>,
    pub status: Arc<CameraStatus>,
    /// A worker is made on its camera's thread: its swscale context cannot move between threads.
    encoder: JpegEncoder,
    sampler: FpsSampler,
    /// The next `seq` to assign.
    seq: u64,
    pacing: Option<(Instant, i64)>,
    /// Wall-clock time of the last frame slot filled (a frame sent, or left out by `--motion` or for its
    /// size), to size the `seq` gap after an outage: a quiet stretch before an outage is not lost frames.
    last_slot: Option<Instant>,
    /// Set when a live source came back: the next frame accounts for the outage in `seq`.
    resumed: bool,
    /// Nominal interval between published frames, µs (from `--fps` or the source's rate).
    slot_us: Option<i64>,
    clock_warned: bool,
    /// `--motion` gating, when on for this camera.
    motion: Option<Motion>,
    /// Frames left out by `--motion` since the last Frame: its `unchanged_before`.
    unchanged: u32,
    /// The object being read, for a bucket source: every frame carries it, with `frame_index` counting the
    /// object's sampled frames.
    pub object: Option<SourceObject>,
}

impl Worker {
    pub fn new(
        spec: CameraSpec,
        shared: Arc<Shared>,
        queue: Arc<CameraQueue<Frame>>,
        status: Arc<CameraStatus>,
    ) -> Result<Self> {
        let encoder = JpegEncoder::new(spec.settings.jpeg_quality)?;
        let sampler = FpsSampler::new(spec.settings.fps);
        let slot_us = spec.settings.fps.map(|f| (1e6 / f) as i64);
        let motion = spec.settings.motion().map(Motion::new);
        shared.metrics.add_camera(&spec.id);
        Ok(Worker {
            spec,
            shared,
            queue,
            status,
            encoder,
            sampler,
            seq: 0,
            pacing: None,
            last_slot: None,
            resumed: false,
            slot_us,
            clock_warned: false,
            motion,
            unchanged: 0,
            object: None,
        })
    }

    /// Runs the camera until its source is finished (files), shutdown, or a fatal error. The queue is marked
    /// finished in every case so that the producer can end. `opened` is the source if it was already opened
    /// (files are opened before ingest touches Kafka, so a bad file is reported at once).
    pub fn run(mut self, opened: Option<VideoSource>) -> Result<()> {
        let result = match self.spec.kind() {
            SourceKind::Folder => crate::folder::run(&mut self),
            SourceKind::Bucket => crate::bucket::run(&mut self),
            _ => self.run_stream(opened),
        };
        self.status.set_state(if result.is_ok() { State::Finished } else { State::Failed });
        SourceDown { camera: &self.spec.id }.emit(&self.shared.metrics);
        self.queue.finish();
        result
    }

    /// Live unless configured otherwise; HTTP is live unless the stream declares a duration.
    fn live(&self, info: Option<&SourceInfo>) -> bool {
        self.spec.live.unwrap_or_else(|| match (self.spec.kind(), info) {
            (SourceKind::Http, Some(info)) => info.duration_us.is_none(),
            (kind, _) => kind.is_live(),
        })
    }

    fn open(&self) -> Result<VideoSource> {
        open(&self.spec, &self.shared)
    }

    fn run_stream(&mut self, mut opened: Option<VideoSource>) -> Result<()> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.spec.id.hash(&mut hasher);
        let timing = self.shared.timing;
        let mut backoff = Backoff::new(timing.reconnect_min, timing.reconnect_max, hasher.finish());
        let mut lost_at: Option<Instant> = None;
        let uri = framewire_common::redact::url(&self.spec.source).into_owned();
        loop {
            if self.shared.shutdown.is_cancelled() {
                return Ok(());
            }
            self.status.set_state(if lost_at.is_some() { State::Reconnecting } else { State::Connecting });
            let source = match opened.take() {
                Some(s) => Ok(s),
                None => self.open(),
            };
            let failure = match source {
                Ok(mut source) => {
                    let live = self.live(Some(&source.info));
                    self.queue.set_policy(if live { Full::DropOldest } else { Full::Wait });
                    self.status.opened(source.info.duration_us, live);
                    if live && self.last_slot.is_none() && self.seq == 0 {
                        // A live camera's seq starts at the current Unix time in ms, so a restarted ingest never
                        // reuses a seq of its previous run (no camera sends more than a frame per ms), and
                        // subscribers that key on camera + seq do not take new frames for duplicates. A file
                        // starts at 0: reading the same file again gives the same frames the same seqs.
                        self.seq = now_us() as u64 / 1000;
                        LiveSeqStarted { camera: &self.spec.id, first_seq: self.seq }.emit();
                    }
                    if self.slot_us.is_none() {
                        self.slot_us = source.info.fps.map(|f| (1e6 / f) as i64);
                    }
                    // Stream time restarts with each connection.
                    self.sampler = FpsSampler::new(self.spec.settings.fps);
                    self.pacing = None;
                    if let Some(motion) = self.motion.as_mut() {
                        motion.reset();
                    }
                    let (camera, metrics) = (self.spec.id.as_str(), &self.shared.metrics);
                    if let Some(since) = lost_at.take() {
                        let attempts = backoff.attempts();
                        SourceReconnected { camera, source: &uri, down: since.elapsed(), attempts }.emit(metrics);
                        self.resumed = true;
                    } else {
                        SourceOpened { camera, info: &source.info, live }.emit(metrics);
                    }
                    let decoded_before = source.stats.frames;
                    let end = source.run(|frame, time| self.emit(frame, time, &uri, live));
                    let (camera, metrics) = (self.spec.id.as_str(), &self.shared.metrics);
                    SourceDown { camera }.emit(metrics);
                    let frames = source.stats.damaged();
                    if frames > 0 {
                        DamagedData { camera, source: &uri, frames }.emit(metrics);
                    }
                    if source.stats.frames > decoded_before {
                        backoff.reset();
                    }
                    match end {
                        Ok(End::Stopped) => return Ok(()),
                        Ok(End::Eof) if !live => return Ok(()),
                        Err(e) if !live => return Err(e),
                        Ok(End::Eof) => "the stream ended".to_string(),
                        Err(e) => e.to_string(),
                    }
                }
                Err(e) if !self.live(None) => return Err(e),
                Err(e) => e.to_string(),
            };
            if self.shared.shutdown.is_cancelled() {
                return Ok(());
            }
            lost_at.get_or_insert_with(Instant::now);
            let gave_up = timing.max_reconnects.is_some_and(|max| backoff.attempts() >= max);
            let retry_in = (!gave_up).then(|| backoff.next_delay());
            let (camera, attempt) = (self.spec.id.as_str(), backoff.attempts());
            SourceLost { camera, source: &uri, reason: &failure, attempt, retry_in }.emit(&self.shared.metrics);
            let Some(delay) = retry_in else {
                return Err(Error::GaveUp { source_uri: uri, attempts: attempt, last: failure });
            };
            self.status.set_state(State::Reconnecting);
            if !sleep_unless(&self.shared.shutdown, delay) {
                return Ok(());
            }
        }
    }

    /// Samples, gates, encodes and queues one decoded frame. Returns false when the camera should stop.
    pub fn emit(&mut self, frame: &VideoFrame, time: FrameTime, uri: &str, live: bool) -> Result<bool> {
        let shared = self.shared.clone();
        let (camera, metrics) = (self.spec.id.as_str(), &shared.metrics);
        FrameDecoded { camera }.emit(metrics);
        self.status.position_us.store(time.stream_us, Ordering::Relaxed);
        if self.shared.shutdown.is_cancelled() {
            return Ok(false);
        }
        if !self.sampler.keep(time.stream_us) {
            return Ok(true);
        }
        // A camera paces itself; a file forced live (`live = true`) is read as fast as it decodes unless paced.
        let paced = self.spec.settings.realtime && !(live && self.spec.kind().is_live());
        if paced && !pace(&mut self.pacing, time.stream_us, &self.shared.shutdown) {
            return Ok(false);
        }
        // Taken after pacing: a paced file's frame waits for its due time as a camera's frame would not yet
        // exist, and that wait is no stage of the pipeline.
        let (decoded_us, decoded_at) = (now_us(), Instant::now());
        // A gated frame still takes its place in the object (`frame_index` counts sampled frames).
        let object = self.object.as_mut().map(|o| {
            let this = o.clone();
            o.frame_index += 1;
            this
        });
        let mut keepalive = false;
        if let Some(motion) = self.motion.as_mut() {
            match motion.check(frame, time.stream_us)? {
                Decision::Unchanged(changed_percent) => {
                    self.last_slot = Some(decoded_at);
                    self.unchanged = self.unchanged.saturating_add(1);
                    FrameUnchanged { camera, stream_us: time.stream_us, changed_percent }.emit(metrics);
                    return Ok(true);
                }
                Decision::KeepAlive => keepalive = true,
                Decision::First | Decision::Changed(_) => {}
            }
        }
        if std::mem::take(&mut self.resumed)
            && let (Some(last), Some(slot)) = (self.last_slot, self.slot_us.filter(|s| *s > 0))
        {
            // The slots the outage swallowed, minus the one this frame fills.
            let missed = (last.elapsed().as_micros() as i64 / slot - 1).max(0);
            self.seq += missed as u64;
        }
        let started = Instant::now();
        let encoded = match self.encoder.encode_within(frame, shared.max_image_bytes) {
            Ok(e) => e,
            Err(error @ Error::TooLarge { .. }) => {
                // The slot stays empty: the gap in seq shows the loss, and the reason is logged and counted.
                // Frames gated before it are told by the next Frame.
                FrameTooLarge { camera: &self.spec.id, seq: self.seq, error: &error }.emit(metrics);
                self.seq += 1;
                self.last_slot = Some(Instant::now());
                return Ok(true);
            }
            Err(e) => return Err(e),
        };
        let encoded_us = now_us();
        let camera = self.spec.id.as_str();
        if let Some(how) = encoded.shrunk {
            let (seq, height, limit) = (self.seq, encoded.height, shared.max_image_bytes);
            FrameShrunk { camera, seq, how, height, limit }.emit(metrics);
        }
        let (took, since_decoded) = (started.elapsed(), decoded_at.elapsed());
        FrameEncoded { camera, bytes: encoded.data.len(), took, since_decoded }.emit(metrics);
        if keepalive {
            FrameKeptAlive { camera }.emit(metrics);
        }
        let (capture_time_ms, clock) = self.capture_time(time, decoded_us);
        let msg = Frame {
            schema_version: SCHEMA_VERSION,
            camera_id: self.spec.id.clone(),
            seq: self.seq,
            capture_time_ms,
            stream_time_us: time.stream_us,
            width: encoded.width,
            height: encoded.height,
            encoding: Encoding::Jpeg as i32,
            image: encoded.data,
            source_uri: uri.to_string(),
            capture_clock: clock as i32,
            object,
            stage_times: Some(StageTimes { decoded_us, encoded_us, ..StageTimes::default() }),
            unchanged_before: std::mem::take(&mut self.unchanged),
            keepalive,
        };
        self.seq += 1;
        self.last_slot = Some(Instant::now());
        match self.queue.push(msg) {
            Ok(dropped) => {
                let camera = self.spec.id.as_str();
                if dropped.is_some() {
                    FrameDropped { camera }.emit(metrics);
                }
                FrameQueued { camera, queued: self.queue.len() }.emit(metrics);
                Ok(true)
            }
            // The producer hit a fatal error; it reports it.
            Err(_) => Ok(false),
        }
    }

    /// The camera's clock when it is trusted, else ours when the frame was decoded (`decoded_us`), so that a
    /// frame is not dated after its own `stage_times.decoded_us` by the JPEG time.
    fn capture_time(&mut self, time: FrameTime, decoded_us: i64) -> (i64, CaptureClock) {
        if let Some(camera_us) = time.camera_clock_us {
            let off = Duration::from_micros(camera_us.abs_diff(decoded_us));
            if off <= CLOCK_TRUST {
                return (camera_us / 1000, CaptureClock::Camera);
            }
            if !std::mem::replace(&mut self.clock_warned, true) {
                CameraClockOff { camera: &self.spec.id, off }.emit();
            }
        }
        (decoded_us / 1000, CaptureClock::Ingest)
    }

    /// The next `seq`: frames sent so far plus slots left empty.
    pub fn next_seq(&self) -> u64 {
        self.seq
    }
}

/// Opens a camera's source with its settings (also used before Kafka is touched, for files).
pub fn open(spec: &CameraSpec, shared: &Shared) -> Result<VideoSource> {
    let live = spec.live.unwrap_or(spec.kind().is_live());
    let stall = shared.timing.stall_timeout;
    let mut options = std::collections::BTreeMap::new();
    let stall_us = stall.as_micros().to_string();
    match spec.kind() {
        SourceKind::Rtsp => {
            options.insert("rtsp_transport".to_string(), spec.settings.rtsp_transport.as_str().to_string());
            // Socket-level timeout as well as the watchdog: it also bounds the connection attempt.
            options.insert("timeout".into(), stall_us);
        }
        SourceKind::Http | SourceKind::Network => {
            options.insert("rw_timeout".into(), stall_us);
        }
        _ => {}
    }
    options.extend(spec.settings.options.clone());
    let opts = OpenOptions {
        options,
        watchdog: Watchdog::new(live.then_some(stall), shared.shutdown.clone()),
        keyframes_only: spec.settings.keyframes_only,
        low_delay: live,
    };
    VideoSource::open(&spec.source, opts)
}

/// Sleeps until stream time `t_us` is due in wall-clock time. Returns false if shutdown fired meanwhile.
pub fn pace(anchor: &mut Option<(Instant, i64)>, t_us: i64, shutdown: &CancellationToken) -> bool {
    let (wall0, t0) = *anchor.get_or_insert((Instant::now(), t_us));
    let due = wall0 + Duration::from_micros((t_us - t0).max(0) as u64);
    while let Some(left) = due.checked_duration_since(Instant::now()) {
        if shutdown.is_cancelled() {
            return false;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
    true
}

/// Sleeps for `d`; false if shutdown fired first.
pub fn sleep_unless(shutdown: &CancellationToken, d: Duration) -> bool {
    let until = Instant::now() + d;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        if shutdown.is_cancelled() {
            return false;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
    !shutdown.is_cancelled()
}
