//! Snapshots: the flags, their names, where they are kept (a local directory or object storage) and the
//! retention sweep (age and total size).
//!
//! # Layout
//! - `naming`: the key of one frame's snapshot, `CAMERA/SEQ-MODEL.jpg`, the same under every kind of place.
//! - `place`: [`Place`], a local directory or an object-store location: writing, listing, deleting.
//! - `retention`: which snapshots the sweep deletes, and the sweep itself.
//!
//! Reading a snapshot back (the web view, `subscribe show`) needs none of this: the database holds its file
//! path or full URL, which `framewire_common::objects::Objects::read` takes as it is.

mod naming;
mod place;
mod retention;

use std::time::Duration;

pub use naming::{key_for, sanitize};
pub use place::{Place, PlaceError, PutError, Stored, shown};
pub use retention::{plan_retention, sweep};

/// Flags for snapshots.
#[derive(Debug, Clone, clap::Args)]
pub struct SnapshotArgs {
    /// Where annotated JPEG snapshots go: a directory, or object storage by URL (s3://bucket/prefix,
    /// gs://…, az://…; see --s3-endpoint); "off" saves none.
    #[arg(long, env = "FRAMEWIRE_SNAPSHOT_DIR", default_value = "snapshots", value_parser = parse_place)]
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

    /// Delete the oldest snapshots while the directory (or bucket prefix) holds more than this (e.g. 500MB,
    /// 2GiB).
    #[arg(long, env = "FRAMEWIRE_SNAPSHOT_MAX_BYTES", default_value = "1GiB", value_parser = parse_bytes)]
    pub snapshot_max_bytes: u64,

    /// How often the retention sweep runs.
    #[arg(long, env = "FRAMEWIRE_SNAPSHOT_SWEEP", default_value = "1m", value_parser = humantime::parse_duration)]
    pub snapshot_sweep: Duration,
}

impl SnapshotArgs {
    /// The directory or URL snapshots go to; `None` when they are off.
    pub fn place(&self) -> Option<&str> {
        (!self.snapshot_dir.eq_ignore_ascii_case("off")).then_some(self.snapshot_dir.as_str())
    }

    pub fn wants(&self, label: &str) -> bool {
        self.snapshot_classes.iter().any(|c| c.trim() == label)
    }
}

/// A directory, `off`, or a URL of a store framewire can write to: a typo in the scheme ends the process at
/// start instead of failing every snapshot.
fn parse_place(s: &str) -> Result<String, String> {
    framewire_common::objects::parse(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("500MB").unwrap(), 500_000_000);
        assert_eq!(parse_bytes("64k").unwrap(), 64_000);
        assert!(parse_bytes("lots").is_err());
    }

    #[test]
    fn places() {
        for ok in ["snapshots", "/var/snaps", "file:///var/snaps", "s3://bucket/snaps", "gs://b", "off"] {
            assert_eq!(parse_place(ok).as_deref(), Ok(ok));
        }
        let bad = parse_place("ftp://host/snaps").unwrap_err();
        assert!(bad.contains("unknown scheme") && bad.contains("s3://"), "{bad}");
    }
}
