//! A real SMTP server per test (aiosmtpd, from `.cache/servers-venv`, which `scripts/fetch-test-servers.sh`
//! installs): it refuses the first message with 451 and writes every accepted one to a file.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

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
    pub fn start(dir: &Path) -> SmtpServer {
        let python = cache().join("servers-venv/bin/python");
        assert!(python.exists(), "{} is missing: run scripts/fetch-test-servers.sh (make test does)", python.display());
        let port = free_port();
        let mut child = Command::new(&python)
            .arg(root().join("e2e/tests/support/smtp_server.py"))
            .arg(port.to_string())
            .arg(dir)
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

    /// A plain (unencrypted) URL for the store's `--smtp-url`.
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
