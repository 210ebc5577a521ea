//! Where snapshots are kept: a local directory, or a location in object storage (S3 and S3-compatible
//! stores, GCS, Azure) named by URL. Both hold the same keys (`CAMERA/SEQ-MODEL.jpg`); what the database
//! records for a snapshot is its file path or its full URL, which `Objects::read` takes back as it is.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use framewire_common::objects::{self, Location, ObjectError, Objects};
use framewire_common::redact;

/// A directory or an object-store location.
///
/// A directory is written with plain files rather than through object_store's `LocalFileSystem`: the
/// snapshot error metric tells a full disk from a read-only one by the `io::Error`'s kind, which
/// `LocalFileSystem` keeps only as text; and rows written before keep their plain file paths.
#[derive(Debug)]
pub enum Place {
    Dir(PathBuf),
    Objects(Location),
}

/// A snapshot that was not saved, with its metric label (disk_full, read_only, io, upload).
#[derive(Debug)]
pub struct PutError {
    pub kind: &'static str,
    pub error: String,
}

/// One snapshot as the retention sweep sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// Relative to the place: `CAMERA/SEQ-MODEL.jpg`.
    pub key: String,
    pub modified_ms: i64,
    pub bytes: u64,
}

/// Why listing or deleting snapshots failed.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("{}: {source}", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", shown(.0))]
    Objects(#[from] ObjectError),
}

impl Place {
    /// The directory or the store a `--snapshot-dir` names; nothing is reached yet (a store that cannot be
    /// reached fails each snapshot, counted, like a full disk).
    pub fn open(place: &str, objects: &Objects) -> Result<Place, ObjectError> {
        match objects::parse(place)? {
            None => Ok(Place::Dir(PathBuf::from(place.strip_prefix("file://").unwrap_or(place)))),
            Some(_) => Ok(Place::Objects(objects.open(place)?)),
        }
    }

    /// Writes one snapshot whole (a reader never sees half a file or object); returns what the database
    /// records for it: the file's path, or the object's URL.
    pub async fn put(&self, key: &str, jpeg: Vec<u8>) -> Result<String, PutError> {
        match self {
            Place::Dir(dir) => {
                let path = dir.join(key);
                let p = path.clone();
                match tokio::task::spawn_blocking(move || write_atomic(&p, &jpeg)).await {
                    Ok(Ok(())) => Ok(path.display().to_string()),
                    Ok(Err(e)) => Err(PutError { kind: failure_kind(&e), error: format!("{}: {e}", path.display()) }),
                    Err(e) => Err(PutError { kind: "io", error: format!("{}: {e}", path.display()) }),
                }
            }
            // object_store retries timeouts and 5xx replies itself (--s3-retries, with backoff) before this
            // counts as failed.
            Place::Objects(loc) => loc.put(key, jpeg).await.map_err(|e| {
                let error = match e {
                    // A write cannot miss an object: S3 says 404 when the bucket itself is missing.
                    ObjectError::NotFound { url } => {
                        format!("{url}: no such bucket (create it, or fix --snapshot-dir)")
                    }
                    e => shown(&e),
                };
                PutError { kind: "upload", error }
            }),
        }
    }

    /// Every `.jpg` snapshot under the place.
    pub async fn list(&self) -> Result<Vec<Stored>, PlaceError> {
        match self {
            Place::Dir(dir) => {
                let d = dir.clone();
                tokio::task::spawn_blocking(move || list_dir(&d))
                    .await
                    .map_err(|e| PlaceError::Dir { path: dir.clone(), source: std::io::Error::other(e) })?
            }
            Place::Objects(loc) => Ok(loc
                .list("", None)
                .await?
                .into_iter()
                .filter(|o| o.key.ends_with(".jpg"))
                .map(|o| Stored { key: o.key, modified_ms: o.modified_ms, bytes: o.size })
                .collect()),
        }
    }

    /// Deletes one snapshot; one already gone is no error.
    pub async fn delete(&self, key: &str) -> Result<(), PlaceError> {
        match self {
            Place::Dir(dir) => {
                let path = dir.join(key);
                let p = path.clone();
                let removed = tokio::task::spawn_blocking(move || std::fs::remove_file(p))
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e)));
                match removed {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(source) => Err(PlaceError::Dir { path, source }),
                }
            }
            Place::Objects(loc) => Ok(loc.delete(key).await?),
        }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Dir(dir) => write!(f, "{}", dir.display()),
            Place::Objects(loc) => write!(f, "{}", redact::url(loc.base())),
        }
    }
}

/// An object-storage error as it may be printed. object_store's messages name the URL and the HTTP
/// status, never the credentials; scrubbing them anyway keeps that true whatever a server echoes back.
pub fn shown(e: &dyn std::fmt::Display) -> String {
    let secrets: Vec<String> = ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_STORAGE_ACCOUNT_KEY"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .collect();
    redact::scrub(&e.to_string(), secrets.iter().map(String::as_str))
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
fn failure_kind(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => "disk_full",
        std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied => "read_only",
        _ => "io",
    }
}

/// Every `.jpg` under `dir`, keyed relative to it; a directory not made yet holds none.
fn list_dir(dir: &Path) -> Result<Vec<Stored>, PlaceError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(PlaceError::Dir { path: d, source }),
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            let path = entry.path();
            if meta.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "jpg")
                && let Ok(rel) = path.strip_prefix(dir)
            {
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                let ms = modified.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
                let key: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
                out.push(Stored { key: key.join("/"), modified_ms: ms, bytes: meta.len() });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use framewire_common::objects::ObjectStoreArgs;

    #[tokio::test]
    async fn a_directory_keeps_file_paths_and_lists_its_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::new(&ObjectStoreArgs::default());
        let place = Place::open(&dir.path().join("snaps").display().to_string(), &objects).unwrap();
        let path = place.put("door/3-m.jpg", b"jpeg".to_vec()).await.unwrap();
        assert_eq!(path, dir.path().join("snaps/door/3-m.jpg").display().to_string());
        assert_eq!(objects.read(&path).await.unwrap().as_ref(), b"jpeg");
        std::fs::write(dir.path().join("snaps/door/notes.txt"), b"not a snapshot").unwrap();
        let listed = place.list().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].key.as_str(), listed[0].bytes), ("door/3-m.jpg", 4));
        place.delete("door/3-m.jpg").await.unwrap();
        place.delete("door/3-m.jpg").await.unwrap();
        assert!(place.list().await.unwrap().is_empty());
    }

    #[test]
    fn urls_open_object_stores_and_paths_directories() {
        let objects = Objects::new(&ObjectStoreArgs::default());
        let p = Place::open("s3://bucket/snaps", &objects).unwrap();
        assert!(matches!(&p, Place::Objects(l) if l.url_of("door/3-m.jpg") == "s3://bucket/snaps/door/3-m.jpg"));
        assert_eq!(p.to_string(), "s3://bucket/snaps");
        assert!(
            matches!(Place::open("file:///tmp/snaps", &objects).unwrap(), Place::Dir(d) if d == Path::new("/tmp/snaps"))
        );
    }
}
