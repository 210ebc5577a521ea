//! A real SMTP server per test (aiosmtpd, from `.cache/servers-venv`, which `scripts/fetch-test-servers.sh`
//! installs): plain and refusing the first message with 451, or over STARTTLS or implicit TLS with a login;
//! every accepted message is written to a file.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use super::tls::ServerCert;
use super::{cache, free_port, root};

pub struct SmtpServer {
    child: Option<Child>,
    pub port: u16,
    /// Where accepted messages land, as `N.eml`.
    pub dir: PathBuf,
    /// The server's lines after "ready": `refused 451`, `accepted PATH to=...`.
    log: Arc<Mutex<Vec<String>>>,
}

impl SmtpServer {
    /// A plain server that refuses the first message with 451.
    pub fn start(dir: &Path) -> SmtpServer {
        SmtpServer::spawn(dir, &["--refuse-first"])
    }

    /// A server that speaks TLS with `cert` (`mode`: `starttls` or `implicit`) and takes mail only after a
    /// login as `user:password`.
    pub fn start_tls(dir: &Path, mode: &str, cert: &ServerCert, login: &str) -> SmtpServer {
        let (c, k) = (cert.cert.to_str().unwrap(), cert.key.to_str().unwrap());
        SmtpServer::spawn(dir, &["--tls", mode, "--cert", c, "--key", k, "--login", login])
    }

    fn spawn(dir: &Path, options: &[&str]) -> SmtpServer {
        let python = cache().join("servers-venv/bin/python");
        assert!(python.exists(), "{} is missing: run scripts/fetch-test-servers.sh (make test does)", python.display());
        let port = free_port();
        let mut child = Command::new(&python)
            .arg(root().join("e2e/tests/support/smtp_server.py"))
            .arg(port.to_string())
            .arg(dir)
            .args(options)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        assert_eq!(
            first.trim(),
            "ready",
            "SMTP server on {port} did not start (aiosmtpd: scripts/fetch-test-servers.sh)"
        );
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                l.lock().unwrap().push(line);
            }
        });
        SmtpServer { child: Some(child), port, dir: dir.to_path_buf(), log }
    }

    /// A plain (unencrypted) URL for the store's `--smtp-url`; a TLS server's is the test's to write.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The accepted messages, in the order they came.
    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<(u32, PathBuf)> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p| {
                let n = p.file_name()?.to_str()?.strip_suffix(".eml")?.parse().ok()?;
                Some((n, p))
            })
            .collect();
        files.sort();
        files.iter().map(|(_, p)| std::fs::read_to_string(p).unwrap()).collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
