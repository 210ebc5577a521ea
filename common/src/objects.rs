//! Object storage behind one API: S3 and S3-compatible stores (MinIO, Ceph, moto), Google Cloud Storage,
//! Azure Blob Storage and local directories, named by URL (`s3://bucket/prefix`, `gs://…`, `az://…`,
//! `file:///dir` or a plain path). `ingest` reads uploads from here; `subscribe store` writes snapshots and
//! the web view and `subscribe show` read them back.
//!
//! Credentials come from each cloud's standard environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, instance and web-identity credentials; `GOOGLE_APPLICATION_CREDENTIALS`;
//! `AZURE_STORAGE_ACCOUNT_NAME`/`AZURE_STORAGE_ACCOUNT_KEY`), never from flags, so they reach neither `--help`
//! nor a log line.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientOptions, ObjectMeta, ObjectStore, PutPayload, RetryConfig};

use crate::error::chain;

/// Where object storage is, for the stores that need telling (the rest is in the environment).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ObjectStoreArgs {
    /// S3-compatible endpoint for `s3://` URLs, e.g. `http://minio:9000` for MinIO (path-style requests).
    /// Default: AWS S3 of the region (or `AWS_ENDPOINT_URL`). Credentials come from the standard
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` variables, never from a flag.
    #[arg(long, env = "FRAMEWIRE_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// Region for `s3://` URLs. Default: `AWS_REGION`, `AWS_DEFAULT_REGION`, else us-east-1.
    #[arg(long, env = "FRAMEWIRE_S3_REGION")]
    pub s3_region: Option<String>,

    /// Retries of a failed object-storage request (timeouts, 5xx, throttling) before it counts as failed,
    /// with exponential backoff; a missing object or a refused credential is not retried.
    #[arg(long, env = "FRAMEWIRE_S3_RETRIES", default_value_t = 5)]
    pub s3_retries: usize,

    /// Time limit of one object-storage request.
    #[arg(long, env = "FRAMEWIRE_S3_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub s3_timeout: Duration,
}

/// Why an object could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("{url} is not an object-store URL or path: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("{url}: no such object")]
    NotFound { url: String },
    #[error("{url}: {reason}")]
    Failed { url: String, reason: String },
}

impl ObjectError {
    fn of(url: &str, e: object_store::Error) -> ObjectError {
        match e {
            object_store::Error::NotFound { .. } => ObjectError::NotFound { url: url.to_string() },
            e => ObjectError::Failed { url: url.to_string(), reason: s3_error_document(&chain(&e)) },
        }
    }
}

/// An S3 error document in a message (`<Error><Code>NoSuchBucket</Code><Message>…</Message>…</Error>`, which
/// object_store passes on as the response body) as `NoSuchBucket: …`: the request and host ids after it are
/// for AWS support, not for the person reading the log.
fn s3_error_document(reason: &str) -> String {
    let field = |doc: &str, tag: &str| {
        let start = doc.find(&format!("<{tag}>"))? + tag.len() + 2;
        let len = doc[start..].find(&format!("</{tag}>"))?;
        Some(doc[start..start + len].to_string())
    };
    let Some(error_at) = reason.find("<Error>") else { return reason.to_string() };
    let at = reason[..error_at].rfind("<?xml").unwrap_or(error_at);
    let doc = &reason[at..];
    let end = doc.find("</Error>").map_or(doc.len(), |i| i + "</Error>".len());
    match (field(doc, "Code"), field(doc, "Message")) {
        (Some(code), Some(message)) => format!("{}{code}: {message}{}", &reason[..at], &doc[end..]),
        (Some(code), None) => format!("{}{code}{}", &reason[..at], &doc[end..]),
        _ => reason.to_string(),
    }
}

/// One store and the prefix inside it that a URL names.
#[derive(Clone)]
pub struct Location {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// The URL up to the prefix, without a trailing slash (`s3://bucket/prefix`, `/var/snapshots`).
    base: String,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Location").field("base", &self.base).finish()
    }
}

/// An object as listed: its key relative to the location, size and modification time.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub modified_ms: i64,
    pub e_tag: Option<String>,
    pub version: Option<String>,
}

/// An object read whole, with what identifies this version of it.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Bytes,
    pub e_tag: Option<String>,
    pub version: Option<String>,
    pub modified_ms: i64,
}

impl Location {
    /// The URL this location was opened from, for messages.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Whether this is a local directory (where a file path, not a URL, names each object).
    pub fn is_local(&self) -> bool {
        !self.base.contains("://")
    }

    /// The full URL (or path) of `key` under this location: what is stored in a database and read back with
    /// [`Objects::read`].
    pub fn url_of(&self, key: &str) -> String {
        format!("{}/{}", self.base, key.trim_start_matches('/'))
    }

    fn path(&self, key: &str) -> ObjectPath {
        let mut p = self.prefix.clone();
        for part in key.split('/').filter(|s| !s.is_empty()) {
            p = p.child(part);
        }
        p
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<String, ObjectError> {
        let url = self.url_of(key);
        self.store.put(&self.path(key), PutPayload::from(bytes)).await.map_err(|e| ObjectError::of(&url, e))?;
        Ok(url)
    }

    pub async fn get(&self, key: &str) -> Result<Fetched, ObjectError> {
        let url = self.url_of(key);
        let got = self.store.get(&self.path(key)).await.map_err(|e| ObjectError::of(&url, e))?;
        let meta = got.meta.clone();
        let bytes = got.bytes().await.map_err(|e| ObjectError::of(&url, e))?;
        Ok(Fetched {
            bytes,
            e_tag: meta.e_tag.map(|t| t.trim_matches('"').to_string()),
            version: meta.version,
            modified_ms: meta.last_modified.timestamp_millis(),
        })
    }

    pub async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        let url = self.url_of(key);
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(ObjectError::of(&url, e)),
        }
    }

    /// Every object under `sub` (relative to the location), in key order, with keys relative to the
    /// location. `after` lists only keys greater than it (S3's `start-after`), so a watcher lists only
    /// what is new.
    pub async fn list(&self, sub: &str, after: Option<&str>) -> Result<Vec<Listed>, ObjectError> {
        let url = self.url_of(sub);
        let dir = self.path(sub);
        let stream = match after {
            Some(a) => self.store.list_with_offset(Some(&dir), &self.path(a)),
            None => self.store.list(Some(&dir)),
        };
        let metas: Vec<ObjectMeta> = stream.try_collect().await.map_err(|e| ObjectError::of(&url, e))?;
        let strip = self.prefix.as_ref().len();
        let mut out: Vec<Listed> = metas
            .into_iter()
            .map(|m| {
                let full = m.location.as_ref();
                let key = if strip == 0 { full } else { full.get(strip..).unwrap_or(full) };
                Listed {
                    key: key.trim_start_matches('/').to_string(),
                    size: m.size,
                    modified_ms: m.last_modified.timestamp_millis(),
                    e_tag: m.e_tag.map(|t| t.trim_matches('"').to_string()),
                    version: m.version,
                }
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

/// The parts of an object-store URL: scheme, bucket (or container) and key prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedUrl {
    pub scheme: String,
    pub bucket: String,
    pub prefix: String,
}

/// Splits `s3://bucket/some/prefix/` into its parts; `None` for a local path (no scheme, or `file://`).
pub fn parse(url: &str) -> Result<Option<ParsedUrl>, ObjectError> {
    let bad = |reason: &str| ObjectError::BadUrl { url: url.to_string(), reason: reason.to_string() };
    let Some((scheme, rest)) = url.split_once("://") else { return Ok(None) };
    let scheme = scheme.to_ascii_lowercase();
    match scheme.as_str() {
        "file" => return Ok(None),
        "s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss" => {}
        other => return Err(bad(&format!("unknown scheme {other:?}: use s3://, gs://, az:// or a local path"))),
    }
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(bad("no bucket"));
    }
    Ok(Some(ParsedUrl { scheme, bucket: bucket.to_string(), prefix: prefix.trim_matches('/').to_string() }))
}

/// Object stores opened so far, one per bucket, shared by every URL that names it.
#[derive(Debug, Clone)]
pub struct Objects {
    args: ObjectStoreArgs,
    stores: Arc<Mutex<HashMap<(String, String), Location>>>,
}

impl Objects {
    pub fn new(args: &ObjectStoreArgs) -> Objects {
        Objects { args: args.clone(), stores: Arc::default() }
    }

    /// Opens the location a URL or local path names (a local directory is created if missing).
    pub fn open(&self, url: &str) -> Result<Location, ObjectError> {
        let Some(parsed) = parse(url)? else {
            let dir = url.strip_prefix("file://").unwrap_or(url).trim_end_matches('/');
            let dir = if dir.is_empty() { "/" } else { dir };
            std::fs::create_dir_all(dir)
                .map_err(|e| ObjectError::Failed { url: url.to_string(), reason: format!("cannot create: {e}") })?;
            let store = LocalFileSystem::new_with_prefix(dir)
                .map_err(|e| ObjectError::BadUrl { url: url.to_string(), reason: chain(&e) })?;
            return Ok(Location { store: Arc::new(store), prefix: ObjectPath::default(), base: dir.to_string() });
        };
        let key = (parsed.scheme.clone(), parsed.bucket.clone());
        let mut stores = self.stores.lock().unwrap_or_else(|p| p.into_inner());
        let bucket_root = match stores.get(&key) {
            Some(l) => l.clone(),
            None => {
                let store = self.build(&parsed, url)?;
                let base = format!("{}://{}", parsed.scheme, parsed.bucket);
                let l = Location { store, prefix: ObjectPath::default(), base };
                stores.insert(key, l.clone());
                l
            }
        };
        let prefix = ObjectPath::from(parsed.prefix.as_str());
        let base = if parsed.prefix.is_empty() { bucket_root.base.clone() } else { bucket_root.url_of(&parsed.prefix) };
        Ok(Location { store: bucket_root.store, prefix, base })
    }

    /// Reads a whole object by its full URL, or a local file by its path: what a stored snapshot names.
    pub async fn read(&self, url: &str) -> Result<Bytes, ObjectError> {
        match parse(url)? {
            None => {
                let path = url.strip_prefix("file://").unwrap_or(url).to_string();
                let read = tokio::task::spawn_blocking(move || std::fs::read(&path)).await.map_err(|e| {
                    ObjectError::Failed { url: url.to_string(), reason: format!("read task failed: {e}") }
                })?;
                match read {
                    Ok(b) => Ok(Bytes::from(b)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        Err(ObjectError::NotFound { url: url.to_string() })
                    }
                    Err(e) => Err(ObjectError::Failed { url: url.to_string(), reason: e.to_string() }),
                }
            }
            Some(p) => {
                let root = self.open(&format!("{}://{}", p.scheme, p.bucket))?;
                Ok(root.get(&p.prefix).await?.bytes)
            }
        }
    }

    fn build(&self, p: &ParsedUrl, url: &str) -> Result<Arc<dyn ObjectStore>, ObjectError> {
        let bad = |e: object_store::Error| ObjectError::BadUrl { url: url.to_string(), reason: chain(&e) };
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(5),
                base: 2.0,
            },
            max_retries: self.args.s3_retries,
            retry_timeout: self.args.s3_timeout * (self.args.s3_retries as u32 + 1),
        };
        let endpoint = self.args.s3_endpoint.clone().or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
        let http = endpoint.as_deref().is_some_and(|e| e.starts_with("http://"));
        let client = ClientOptions::new()
            .with_timeout(self.args.s3_timeout)
            .with_connect_timeout(self.args.s3_timeout.min(Duration::from_secs(10)))
            .with_allow_http(http);
        let store: Arc<dyn ObjectStore> = match p.scheme.as_str() {
            "s3" | "s3a" => {
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(&p.bucket)
                    .with_retry(retry)
                    .with_client_options(client);
                if let Some(e) = &endpoint {
                    // Path-style requests: MinIO and most S3-compatible servers have no per-bucket host names.
                    b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
                }
                let region = self
                    .args
                    .s3_region
                    .clone()
                    .or_else(|| std::env::var("AWS_REGION").ok())
                    .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok());
                if let Some(r) = region {
                    b = b.with_region(r);
                }
                Arc::new(b.build().map_err(bad)?)
            }
            "gs" => Arc::new(
                GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(&p.bucket)
                    .with_retry(retry)
                    .with_client_options(client)
                    .build()
                    .map_err(bad)?,
            ),
            _ => Arc::new(
                MicrosoftAzureBuilder::from_env()
                    .with_container_name(&p.bucket)
                    .with_retry(retry)
                    .with_client_options(client)
                    .build()
                    .map_err(bad)?,
            ),
        };
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_error_documents_shrink_to_code_and_message() {
        let body = "Generic S3 error: Error performing list request: Received redirect or error: \
                    <?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The specified bucket does not \
                    exist</Message><BucketName>fw-1</BucketName><RequestId>39D1</RequestId></Error>";
        assert_eq!(
            s3_error_document(body),
            "Generic S3 error: Error performing list request: Received redirect or error: NoSuchBucket: The \
             specified bucket does not exist"
        );
        assert_eq!(s3_error_document("connection refused"), "connection refused");
    }

    #[test]
    fn parses_urls() {
        let p = parse("s3://uploads/cams/front/").unwrap().unwrap();
        assert_eq!((p.scheme.as_str(), p.bucket.as_str(), p.prefix.as_str()), ("s3", "uploads", "cams/front"));
        assert_eq!(parse("s3://uploads").unwrap().unwrap().prefix, "");
        assert!(parse("/var/snapshots").unwrap().is_none());
        assert!(parse("file:///var/snapshots").unwrap().is_none());
        assert!(matches!(parse("ftp://x/y"), Err(ObjectError::BadUrl { .. })));
        assert!(matches!(parse("s3:///key"), Err(ObjectError::BadUrl { .. })));
    }

    #[tokio::test]
    async fn local_directory_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::new(&ObjectStoreArgs::default());
        let loc = objects.open(&dir.path().join("snaps").display().to_string()).unwrap();
        assert!(loc.is_local());
        let url = loc.put("door/2-m.jpg", b"two".to_vec()).await.unwrap();
        loc.put("door/1-m.jpg", b"one".to_vec()).await.unwrap();
        loc.put("yard/1-m.jpg", b"three".to_vec()).await.unwrap();
        assert_eq!(objects.read(&url).await.unwrap().as_ref(), b"two");
        let keys: Vec<String> = loc.list("", None).await.unwrap().into_iter().map(|l| l.key).collect();
        assert_eq!(keys, ["door/1-m.jpg", "door/2-m.jpg", "yard/1-m.jpg"]);
        let after: Vec<String> = loc.list("", Some("door/1-m.jpg")).await.unwrap().into_iter().map(|l| l.key).collect();
        assert_eq!(after, ["door/2-m.jpg", "yard/1-m.jpg"]);
        loc.delete("door/2-m.jpg").await.unwrap();
        assert!(matches!(objects.read(&url).await, Err(ObjectError::NotFound { .. })));
        loc.delete("door/2-m.jpg").await.unwrap();
    }
}
