//! Snapshot files: where they go, writing them safely, and the retention sweep (age and total size).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Flags for snapshots.
#[derive(Debug, Clone, clap::Args)]
pub struct SnapshotArgs {
    /// Directory for annotated JPEG snapshots; "off" saves none.
    #[arg(long, env = "FRAMEWIRE_SNAPSHOT_DIR", default_value = "snapshots")]
    pub snapshot_dir: String,

    /// Labels whose frames are saved as snapshots (comma-separated).
    #[arg(long, env = "FRAMEWIRE_SNAPSHOT_CLASSES", value_delimiter = ',', default_value = "person")]
    pub snapshot_classes: Vec<String>,

    /// At most one snapshot per camera in this much capture time (a new event always gets one).
    #[arg(long, env = "FRAMEWIRE_SNAPSHOT_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub snapshot_interval: Duration,

    /// Delete snapshots older than this.
    #[arg(long, env = "FRAMEWIRE_SNAPSHOT_MAX_AGE", default_value = "7days", value_parser = humantime::parse_duration)]
    pub snapshot_max_age: Duration,

    /// Delete the oldest snapshots while the directory holds more than this (e.g. 500MB, 2GiB).
    #[arg(long, env = "FRAMEWIRE_SNAPSHOT_MAX_BYTES", default_value = "1GiB", value_parser = parse_bytes)]
    pub snapshot_max_bytes: u64,

    /// How often the retention sweep runs.
    #[arg(long, env = "FRAMEWIRE_SNAPSHOT_SWEEP", default_value = "1m", value_parser = humantime::parse_duration)]
    pub snapshot_sweep: Duration,
}

impl SnapshotArgs {
    pub fn dir(&self) -> Option<PathBuf> {
        (!self.snapshot_dir.eq_ignore_ascii_case("off")).then(|| PathBuf::from(&self.snapshot_dir))
    }

    pub fn wants(&self, label: &str) -> bool {
        self.snapshot_classes.iter().any(|c| c.trim() == label)
    }
}

/// `1GiB`, `500MB`, `64k`, `1000`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("{s:?} is not a size such as 500MB or 2GiB"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" => 1e12,
        "tib" => 1024f64.powi(4),
        u => return Err(format!("unknown size unit {u:?} in {s:?}")),
    };
    Ok((n * mult) as u64)
}

/// Keeps a name usable as one path component on every filesystem.
pub fn sanitize(s: &str) -> String {
    let out: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    if out.is_empty() || out.starts_with('.') { format!("_{out}") } else { out }
}

/// The file of one frame's snapshot: `DIR/CAMERA/SEQ-MODEL.jpg` (a replay with the same model writes the
/// same file, a new model its own).
pub fn path_for(dir: &Path, camera: &str, seq: u64, model: &str) -> PathBuf {
    dir.join(sanitize(camera)).join(format!("{seq}-{}.jpg", sanitize(model)))
}

/// Writes a file whole or not at all (temporary file, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("jpg.part");
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The metric label of a write failure: disks fill up and get mounted read-only; both need a person.
pub fn failure_kind(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => "disk_full",
        std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied => "read_only",
        _ => "io",
    }
}

/// One snapshot file as the sweep sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileInfo {
    pub path: PathBuf,
    pub modified: SystemTime,
    pub bytes: u64,
}

/// Which files to delete: those older than `max_age`, then the oldest until the rest fit in `max_bytes`.
pub fn plan_retention(mut files: Vec<FileInfo>, now: SystemTime, max_age: Duration, max_bytes: u64) -> Vec<PathBuf> {
    files.sort_by(|a, b| a.modified.cmp(&b.modified).then_with(|| a.path.cmp(&b.path)));
    let mut total: u64 = files.iter().map(|f| f.bytes).sum();
    let mut delete = Vec::new();
    for f in files {
        let too_old = now.duration_since(f.modified).is_ok_and(|age| age > max_age);
        if too_old || total > max_bytes {
            total -= f.bytes;
            delete.push(f.path);
        }
    }
    delete
}

/// Every `.jpg` under `dir`.
pub fn list(dir: &Path) -> std::io::Result<Vec<FileInfo>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            let path = entry.path();
            if meta.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "jpg") {
                out.push(FileInfo {
                    path,
                    modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    bytes: meta.len(),
                });
            }
        }
    }
    Ok(out)
}

/// Applies retention to `dir`; returns (files deleted, bytes freed).
pub fn sweep(dir: &Path, max_age: Duration, max_bytes: u64) -> std::io::Result<(u64, u64)> {
    let files = list(dir)?;
    let sizes: std::collections::HashMap<PathBuf, u64> = files.iter().map(|f| (f.path.clone(), f.bytes)).collect();
    let mut deleted = (0, 0);
    for path in plan_retention(files, SystemTime::now(), max_age, max_bytes) {
        if std::fs::remove_file(&path).is_ok() {
            deleted.0 += 1;
            deleted.1 += sizes.get(&path).copied().unwrap_or(0);
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, age_s: u64, bytes: u64, now: SystemTime) -> FileInfo {
        FileInfo { path: PathBuf::from(name), modified: now - Duration::from_secs(age_s), bytes }
    }

    #[test]
    fn retention_drops_old_files_then_the_oldest_until_under_the_limit() {
        let now = SystemTime::now();
        let files =
            vec![file("a", 10, 100, now), file("b", 1000, 100, now), file("c", 20, 100, now), file("d", 5, 100, now)];
        // b is too old; then 300 bytes remain, limit 250: the oldest of the rest (c) goes.
        let del = plan_retention(files.clone(), now, Duration::from_secs(500), 250);
        assert_eq!(del, vec![PathBuf::from("b"), PathBuf::from("c")]);
        assert!(plan_retention(files.clone(), now, Duration::from_secs(5000), 400).is_empty());
        assert_eq!(plan_retention(files, now, Duration::from_secs(5000), 0).len(), 4);
    }

    #[test]
    fn sweep_deletes_files_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        for (i, name) in ["cam/1-m.jpg", "cam/2-m.jpg", "other/3-m.jpg"].iter().enumerate() {
            let p = dir.path().join(name);
            write_atomic(&p, &vec![0u8; 1000]).unwrap();
            let t = SystemTime::now() - Duration::from_secs(100 - i as u64);
            std::fs::File::options().write(true).open(&p).unwrap().set_modified(t).unwrap();
        }
        assert_eq!(sweep(dir.path(), Duration::from_secs(3600), 2000).unwrap(), (1, 1000));
        assert!(!dir.path().join("cam/1-m.jpg").exists());
        assert!(dir.path().join("other/3-m.jpg").exists());
    }

    #[test]
    fn sizes_names_and_paths() {
        assert_eq!(parse_bytes("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("500MB").unwrap(), 500_000_000);
        assert_eq!(parse_bytes("64k").unwrap(), 64_000);
        assert!(parse_bytes("lots").is_err());
        assert_eq!(sanitize("door/1"), "door_1");
        assert_eq!(sanitize(".."), "_..");
        assert_eq!(path_for(Path::new("s"), "lobby", 7, "ssd@1"), PathBuf::from("s/lobby/7-ssd_1.jpg"));
    }
}
