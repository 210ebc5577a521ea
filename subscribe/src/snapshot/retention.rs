//! Retention: snapshots older than `--snapshot-max-age` go, then the oldest while the rest are over
//! `--snapshot-max-bytes`. The same rule for a directory and for a bucket prefix.

use std::time::Duration;

use super::naming::seq_of;
use super::place::{Place, PlaceError, Stored};

/// Which snapshots to delete: those older than `max_age`, then the oldest until the rest fit in
/// `max_bytes`. Oldest by modification time, then by frame sequence (object stores keep times to the
/// second, so one camera's snapshots of the same second go in the order they were taken), then by key.
pub fn plan_retention(mut files: Vec<Stored>, now_ms: i64, max_age: Duration, max_bytes: u64) -> Vec<Stored> {
    files.sort_by(|a, b| {
        a.modified_ms
            .cmp(&b.modified_ms)
            .then_with(|| seq_of(&a.key).cmp(&seq_of(&b.key)))
            .then_with(|| a.key.cmp(&b.key))
    });
    let max_age_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
    let mut total: u64 = files.iter().map(|f| f.bytes).sum();
    let mut delete = Vec::new();
    for f in files {
        let too_old = now_ms.saturating_sub(f.modified_ms) > max_age_ms;
        if too_old || total > max_bytes {
            total -= f.bytes;
            delete.push(f);
        }
    }
    delete
}

/// Applies retention to `place`; returns (snapshots deleted, bytes freed). A failed deletion ends this
/// sweep with its error; the next sweep tries again.
pub async fn sweep(place: &Place, max_age: Duration, max_bytes: u64) -> Result<(u64, u64), PlaceError> {
    let files = place.list().await?;
    let mut deleted = (0, 0);
    for f in plan_retention(files, framewire_common::time::now_ms(), max_age, max_bytes) {
        place.delete(&f.key).await?;
        deleted.0 += 1;
        deleted.1 += f.bytes;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use framewire_common::objects::{ObjectStoreArgs, Objects};
    use std::time::SystemTime;

    fn file(key: &str, age_s: i64, bytes: u64, now_ms: i64) -> Stored {
        Stored { key: key.to_string(), modified_ms: now_ms - age_s * 1000, bytes }
    }

    fn keys(v: &[Stored]) -> Vec<&str> {
        v.iter().map(|f| f.key.as_str()).collect()
    }

    #[test]
    fn old_files_go_then_the_oldest_until_under_the_limit() {
        let now = 1_700_000_000_000;
        let files =
            vec![file("a", 10, 100, now), file("b", 1000, 100, now), file("c", 20, 100, now), file("d", 5, 100, now)];
        // b is too old; then 300 bytes remain, limit 250: the oldest of the rest (c) goes.
        assert_eq!(keys(&plan_retention(files.clone(), now, Duration::from_secs(500), 250)), ["b", "c"]);
        assert!(plan_retention(files.clone(), now, Duration::from_secs(5000), 400).is_empty());
        assert_eq!(plan_retention(files, now, Duration::from_secs(5000), 0).len(), 4);
    }

    #[test]
    fn snapshots_of_the_same_second_go_in_frame_order() {
        let now = 1_700_000_000_000;
        let files = vec![
            file("cam/10-m.jpg", 1, 100, now),
            file("cam/9-m.jpg", 1, 100, now),
            file("cam/11-m.jpg", 1, 100, now),
        ];
        // By key, "10" sorts before "9"; by frame, 9 was taken first.
        assert_eq!(keys(&plan_retention(files, now, Duration::from_secs(60), 100)), ["cam/9-m.jpg", "cam/10-m.jpg"]);
    }

    #[tokio::test]
    async fn sweep_deletes_files_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        for (i, name) in ["cam/1-m.jpg", "cam/2-m.jpg", "other/3-m.jpg"].iter().enumerate() {
            let p = dir.path().join(name);
            super::super::place::write_atomic(&p, &[0u8; 1000]).unwrap();
            let t = SystemTime::now() - Duration::from_secs(100 - i as u64);
            std::fs::File::options().write(true).open(&p).unwrap().set_modified(t).unwrap();
        }
        let place = Place::open(dir.path().to_str().unwrap(), &Objects::new(&ObjectStoreArgs::default())).unwrap();
        assert_eq!(sweep(&place, Duration::from_secs(3600), 2000).await.unwrap(), (1, 1000));
        assert!(!dir.path().join("cam/1-m.jpg").exists());
        assert!(dir.path().join("other/3-m.jpg").exists());
    }
}
