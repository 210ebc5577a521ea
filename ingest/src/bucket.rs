//! A bucket prefix as a camera (`s3://bucket/prefix/`, `gs://…`, `az://…`), for object stores that send no
//! notifications: every object under the prefix in key order, once; with `watch`, listed again every
//! `--watch-interval` for keys after the last one read (S3's start-after), so it remembers how far it got
//! in one key, not in a set that grows with the bucket. Objects are decoded like an image folder's files
//! ([`crate::folder::read_media`]): an image is one frame, a video its frames sampled by `--fps`.
//!
//! One that cannot be fetched or decoded is logged, counted and skipped, like a bad file in a folder. A
//! bucket that cannot be listed at start fails before Kafka is touched; while watching, a failed listing
//! is retried with backoff (an object store has outages like a camera).
//!
//! Keys are read in order, so a watcher does not see an object that appears with a key before the last one
//! it read: uploads should be named to sort by time (a timestamp prefix).

use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use framewire_common::backoff::Backoff;
use framewire_common::objects::{self, Listed, Location, ObjectError, Objects};
use framewire_proto::SourceObject;

use crate::camera::{Shared, Worker, sleep_unless};
use crate::cameras::CameraSpec;
use crate::events::{BucketOpened, ObjectSkipped, SourceLost, SourceReconnected};
use crate::folder::{Read, read_media};
use crate::progress::State;
use crate::{Error, Result};

/// A bucket source: the bucket's root (so that listed keys are full keys) and the prefix read under it.
struct Bucket {
    root: Location,
    bucket: String,
    prefix: String,
    /// The source as configured, for messages (object-store URLs carry no credentials).
    shown: String,
}

impl Bucket {
    fn open(source: &str, objects: &Objects) -> Result<Bucket> {
        let bad = |reason: String| Error::Bucket { source_uri: source.to_string(), reason };
        let parsed = objects::parse(source)
            .map_err(|e| bad(reason(e)))?
            .ok_or_else(|| bad("not an object-store URL (s3://, gs://, az://)".into()))?;
        let root = objects.open(&format!("{}://{}", parsed.scheme, parsed.bucket)).map_err(|e| bad(reason(e)))?;
        Ok(Bucket { root, bucket: parsed.bucket, prefix: parsed.prefix, shown: source.to_string() })
    }

    /// Objects under the prefix with keys after `after`, in key order; on failure, why.
    fn list(&self, shared: &Shared, after: Option<&str>) -> std::result::Result<Vec<Listed>, String> {
        shared.runtime.block_on(self.root.list(&self.prefix, after)).map_err(|e| match e {
            ObjectError::NotFound { .. } => self.missing(),
            // S3 answers a listing of a missing bucket with 404 NoSuchBucket, which object_store passes on.
            ObjectError::Failed { reason, .. } if reason.contains("NoSuchBucket") => self.missing(),
            e => reason(e),
        })
    }

    fn missing(&self) -> String {
        format!("there is no bucket {} (check its name, and --s3-endpoint for S3-compatible stores)", self.bucket)
    }
}

/// Lists a bucket source once, before Kafka is touched, so that a wrong bucket name, endpoint or refused
/// credentials fail the run at once with the reason.
pub fn check(spec: &CameraSpec, shared: &Shared) -> Result<()> {
    let bucket = Bucket::open(&spec.source, &shared.objects)?;
    bucket.list(shared, None).map(drop).map_err(|reason| Error::Bucket {
        source_uri: bucket.shown.clone(),
        reason: format!("cannot list it: {reason}"),
    })
}

pub fn run(worker: &mut Worker) -> Result<()> {
    let shared = worker.shared.clone();
    let bucket = Bucket::open(&worker.spec.source, &shared.objects)?;
    let watch = worker.spec.settings.watch;
    let camera = worker.spec.id.clone();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    camera.hash(&mut hasher);
    let mut backoff = Backoff::new(shared.timing.reconnect_min, shared.timing.reconnect_max, hasher.finish());
    let mut lost_at: Option<Instant> = None;
    // The last key read: the next listing starts after it.
    let mut after: Option<String> = None;
    let mut t_us: i64 = 0;
    worker.status.opened(None, watch);
    BucketOpened { camera: &camera, source: &bucket.shown, watch }.emit(&shared.metrics);
    loop {
        let listed = match bucket.list(&shared, after.as_deref()) {
            Ok(listed) => listed,
            Err(reason) if !watch => {
                return Err(Error::Bucket { source_uri: bucket.shown, reason: format!("cannot list it: {reason}") });
            }
            Err(reason) => {
                lost_at.get_or_insert_with(Instant::now);
                let delay = backoff.next_delay();
                let attempt = backoff.attempts();
                SourceLost { camera: &camera, source: &bucket.shown, reason: &reason, attempt, retry_in: Some(delay) }
                    .emit(&shared.metrics);
                worker.status.set_state(State::Reconnecting);
                if !sleep_unless(&shared.shutdown, delay) {
                    return Ok(());
                }
                continue;
            }
        };
        if let Some(since) = lost_at.take() {
            let (down, attempts) = (since.elapsed(), backoff.attempts());
            SourceReconnected { camera: &camera, source: &bucket.shown, down, attempts }.emit(&shared.metrics);
            backoff.reset();
            worker.status.set_state(State::Streaming);
        }
        for object in listed {
            let read = read_object(worker, &bucket, &object, t_us);
            // Passed even when skipped: a bad object is reported once, not at every listing.
            after = Some(object.key.clone());
            match read {
                Ok(Read { go_on: true, next_us }) => t_us = next_us,
                Ok(Read { go_on: false, .. }) => return Ok(()),
                Err(error) => {
                    let url = bucket.root.url_of(&object.key);
                    ObjectSkipped { camera: &camera, object: &url, error: &error }.emit(&shared.metrics);
                }
            }
            if shared.shutdown.is_cancelled() {
                return Ok(());
            }
        }
        if !watch || !sleep_unless(&shared.shutdown, shared.watch_interval) {
            return Ok(());
        }
    }
}

/// Fetches one object and queues its frames, each carrying the object.
fn read_object(worker: &mut Worker, bucket: &Bucket, listed: &Listed, start_us: i64) -> Result<Read> {
    let url = bucket.root.url_of(&listed.key);
    let fetched = worker.shared.runtime.block_on(bucket.root.get(&listed.key)).map_err(|e| Error::Open {
        source_uri: url.clone(),
        reason: format!("cannot fetch the object: {}", reason(e)),
    })?;
    // FFmpeg reads files: the object goes to a temporary file, removed when this returns.
    let file = spool(&listed.key, &fetched.bytes)
        .map_err(|e| Error::Open { source_uri: url.clone(), reason: format!("cannot write a temporary copy: {e}") })?;
    worker.object = Some(SourceObject {
        bucket: bucket.bucket.clone(),
        key: listed.key.clone(),
        version_id: fetched.version.unwrap_or_default(),
        etag: fetched.e_tag.unwrap_or_default(),
        frame_index: 0,
        event_time_ms: fetched.modified_ms,
    });
    drop(fetched.bytes);
    let read = read_media(worker, file.path(), &url, start_us);
    worker.object = None;
    read
}

/// Writes an object's bytes to a temporary file named with the key's extension, which FFmpeg uses to pick
/// some formats.
fn spool(key: &str, bytes: &[u8]) -> std::io::Result<tempfile::NamedTempFile> {
    let suffix = extension(key).map(|e| format!(".{e}")).unwrap_or_default();
    let mut file = tempfile::Builder::new().prefix("framewire-object-").suffix(&suffix).tempfile()?;
    file.write_all(bytes)?;
    file.flush()?;
    Ok(file)
}

fn extension(key: &str) -> Option<&str> {
    Path::new(key.rsplit('/').next().unwrap_or(key))
        .extension()
        .and_then(|e| e.to_str())
        .filter(|e| e.len() <= 8 && e.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// Why object storage failed, without the URL the caller's error already names.
fn reason(e: ObjectError) -> String {
    match e {
        ObjectError::NotFound { .. } => "no such object".into(),
        ObjectError::BadUrl { reason, .. } | ObjectError::Failed { reason, .. } => reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_copies_keep_a_plain_extension_only() {
        assert_eq!(extension("cam/2026/12/06/yard-0001.JPG"), Some("JPG"));
        assert_eq!(extension("cam/clip.mp4"), Some("mp4"));
        assert_eq!(extension("cam.d/noext"), None);
        assert_eq!(extension("cam/odd.ext with space"), None);
        assert_eq!(extension("cam/.hidden"), None);
    }

    #[test]
    fn a_spooled_object_holds_its_bytes_under_its_extension() {
        let file = spool("cam/a.png", b"\x89PNG").unwrap();
        assert!(file.path().to_string_lossy().ends_with(".png"));
        assert_eq!(std::fs::read(file.path()).unwrap(), b"\x89PNG");
    }
}
