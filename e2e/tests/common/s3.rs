//! A real S3 API endpoint per test (moto in server mode, from `.cache/servers-venv`, which
//! `scripts/fetch-test-servers.sh` installs), the tests' own uploads through boto3, and bucket notification
//! records exactly as MinIO's Kafka target writes them.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::{cache, free_port, root, stderr, stdout};

/// Access key and secret moto accepts (any pair works); passed to the binaries as the standard AWS variables.
pub const ACCESS_KEY: &str = "testing";
pub const SECRET_KEY: &str = "testing-secret-never-printed";

pub struct S3Server {
    child: Option<Child>,
    pub port: u16,
    _log: tempfile::NamedTempFile,
}

impl S3Server {
    pub fn start() -> S3Server {
        let bin = cache().join("servers-venv/bin/moto_server");
        assert!(bin.exists(), "{} is missing: run scripts/fetch-test-servers.sh (make test does)", bin.display());
        let port = free_port();
        // Its request log goes to a file, read only to say why it did not start.
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        // moto imports every AWS service it mocks before it listens: seconds, more on a loaded machine.
        let deadline = Instant::now() + Duration::from_secs(90);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                let err = std::fs::read_to_string(log.path()).unwrap_or_default();
                panic!("moto_server exited ({status}): {err}");
            }
            assert!(Instant::now() < deadline, "moto_server did not listen on port {port} within 90 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        S3Server { child: Some(child), port, _log: log }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a framewire binary needs to reach this server: credentials in the standard AWS
    /// variables, the endpoint by flag.
    pub fn env(&self, cmd: &mut Command) {
        cmd.env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_REGION", "us-east-1")
            .env("FRAMEWIRE_S3_ENDPOINT", self.endpoint());
    }

    fn boto(&self, args: &[&str]) -> String {
        let out = Command::new(cache().join("servers-venv/bin/python"))
            .arg(root().join("e2e/tests/support/s3.py"))
            .arg(self.endpoint())
            .args(args)
            .output()
            .expect("servers-venv python (scripts/fetch-test-servers.sh)");
        assert!(out.status.success(), "s3.py {args:?}: {}", stderr(&out));
        stdout(&out)
    }

    pub fn create_bucket(&self, bucket: &str) {
        self.boto(&["create", bucket]);
    }

    /// Uploads a file; returns its ETag (without quotes) and last-modified time (Unix ms).
    pub fn put(&self, bucket: &str, key: &str, file: &Path) -> (String, i64) {
        let out = self.boto(&["put", bucket, key, &file.display().to_string()]);
        let mut parts = out.split_whitespace();
        let etag = parts.next().expect("etag").to_string();
        let modified = parts.next().expect("last-modified").parse().expect("ms");
        (etag, modified)
    }

    pub fn delete(&self, bucket: &str, key: &str) {
        self.boto(&["delete", bucket, key]);
    }

    /// The objects under `prefix` as the test's own client reads them: key → bytes.
    pub fn objects(&self, bucket: &str, prefix: &str) -> BTreeMap<String, Vec<u8>> {
        self.boto(&["dump", bucket, prefix])
            .lines()
            .map(|l| {
                let (key, b64) = l.split_once(' ').expect("KEY BASE64");
                (key.to_string(), base64::engine::general_purpose::STANDARD.decode(b64).expect("base64"))
            })
            .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One object-created event.
pub struct Upload<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub size: u64,
    pub etag: &'a str,
    /// Unix ms of the event.
    pub time_ms: i64,
}

/// The Kafka message MinIO's Kafka target publishes for an upload: key `bucket/object`, value the JSON
/// `event.Log` (EventName, Key, Records) with the fields in Go's struct order, the object key
/// query-escaped, `eventTime` in `2006-01-02T15:04:05.000Z` form and the sequencer the upload time in
/// nanoseconds as upper-case hex (MinIO's internal/event/event.go, cmd/event-notification.go,
/// internal/event/target/kafka.go).
pub fn minio_record(u: &Upload) -> (String, String) {
    let s = |v: &str| serde_json::to_string(v).unwrap();
    let escaped = query_escape(u.key);
    let time = iso_ms(u.time_ms);
    let sequencer = format!("{:X}", u.time_ms as i128 * 1_000_000);
    let content_type = if u.key.ends_with(".mp4") { "video/mp4" } else { "image/jpeg" };
    let record = format!(
        concat!(
            r#"{{"eventVersion":"2.0","eventSource":"minio:s3","awsRegion":"","eventTime":{time},"#,
            r#""eventName":"s3:ObjectCreated:Put","userIdentity":{{"principalId":"minioadmin"}},"#,
            r#""requestParameters":{{"principalId":"minioadmin","region":"","sourceIPAddress":"172.18.0.1"}},"#,
            r#""responseElements":{{"content-length":"0","x-amz-id-2":"dd9025bab4ad464b049177c95eb6ebf374d3b3fd1af9251148b658df7ac2e3e8","#,
            r#""x-amz-request-id":"1801B1D1B2C9E5A4","x-minio-deployment-id":"b2a7dd0b-5b4c-4a6b-9d21-34e4c8e0f7a2","#,
            r#""x-minio-origin-endpoint":"http://172.18.0.3:9000"}},"s3":{{"s3SchemaVersion":"1.0","configurationId":"Config","#,
            r#""bucket":{{"name":{bucket},"ownerIdentity":{{"principalId":"minioadmin"}},"arn":{arn}}},"#,
            r#""object":{{"key":{key},"size":{size},"eTag":{etag},"contentType":{ct},"#,
            r#""userMetadata":{{"content-type":{ct}}},"sequencer":{seq}}}}},"#,
            r#""source":{{"host":"172.18.0.1","port":"","userAgent":"MinIO (linux; amd64) minio-go/v7.0.70 mc/RELEASE.2024-05-09T17-04-24Z"}}}}"#
        ),
        time = s(&time),
        bucket = s(u.bucket),
        arn = s(&format!("arn:aws:s3:::{}", u.bucket)),
        key = s(&escaped),
        size = u.size,
        etag = s(u.etag),
        ct = s(content_type),
        seq = s(&sequencer),
    );
    let log_key = format!("{}/{}", u.bucket, u.key);
    let value = format!(r#"{{"EventName":"s3:ObjectCreated:Put","Key":{},"Records":[{record}]}}"#, s(&log_key));
    (log_key, value)
}

/// Go's url.QueryEscape: unreserved bytes kept, space as `+`, the rest `%XX` (upper case).
pub fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Unix ms as `2006-01-02T15:04:05.000Z`.
pub fn iso_ms(ms: i64) -> String {
    let (secs, milli) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}
