//! A real headless Chromium driven over the DevTools protocol: the web view's tests look at the page as a
//! browser renders it.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, http_get, stderr, stdout};

/// A headless Chromium with the DevTools protocol on a free port, killed on drop.
pub struct Chromium {
    child: Child,
    ws: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    next_id: u64,
    _home: tempfile::TempDir,
}

/// Runs NSS's `certutil` on a browser's certificate database.
fn certutil(args: &[&str]) {
    let out = Command::new("certutil")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run certutil ({e}): run `make setup` (Debian's libnss3-tools)"));
    assert!(out.status.success(), "certutil {args:?}: {}{}", stdout(&out), stderr(&out));
}

impl Chromium {
    /// A Chromium that trusts `ca`, if given, the way a user's does: the CA is in the NSS database of its
    /// HOME (`~/.pki/nssdb`, which Chromium on Linux reads), not waved through with a flag.
    pub fn start(ca: Option<&Path>) -> Chromium {
        let home = tempfile::tempdir().unwrap();
        if let Some(ca) = ca {
            let nssdb = home.path().join(".pki/nssdb");
            std::fs::create_dir_all(&nssdb).unwrap();
            let db = format!("sql:{}", nssdb.display());
            certutil(&["-d", &db, "-N", "--empty-password"]);
            certutil(&["-d", &db, "-A", "-t", "C,,", "-n", "framewire-test", "-i", ca.to_str().unwrap()]);
        }
        let profile = home.path().join("profile");
        let port = free_port();
        let child = Command::new("chromium")
            .env("HOME", home.path())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-dev-shm-usage",
                "--window-size=1280,900",
                &format!("--remote-debugging-port={port}"),
                &format!("--user-data-dir={}", profile.display()),
                "about:blank",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromium ({e}): run `make setup`"));
        // The page target's WebSocket address, from the DevTools HTTP endpoint.
        let deadline = Instant::now() + Duration::from_secs(30);
        let ws_url = loop {
            if let Some(body) = http_get(&format!("127.0.0.1:{port}"), "/json/list", None).map(|r| r.2)
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&body)
                && let Some(url) = v.as_array().and_then(|a| {
                    a.iter().find(|t| t["type"] == "page").and_then(|t| t["webSocketDebuggerUrl"].as_str())
                })
            {
                break url.to_string();
            }
            assert!(Instant::now() < deadline, "chromium did not open its DevTools port");
            std::thread::sleep(Duration::from_millis(100));
        };
        let (ws, _) = tungstenite::connect(ws_url.as_str()).unwrap();
        Chromium { child, ws, next_id: 0, _home: home }
    }

    /// Sends one DevTools command and returns its result, skipping the events in between.
    pub fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = serde_json::json!({ "id": id, "method": method, "params": params }).to_string();
        self.ws.send(tungstenite::Message::Text(msg.into())).unwrap();
        loop {
            let tungstenite::Message::Text(t) = self.ws.read().unwrap() else { continue };
            let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
            if v["id"].as_u64() == Some(id) {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluates a JavaScript expression in the page (awaiting it when it is a promise); returns its value.
    pub fn eval(&mut self, expr: &str) -> serde_json::Value {
        let params = serde_json::json!({ "expression": expr, "returnByValue": true, "awaitPromise": true });
        self.call("Runtime.evaluate", params)["result"]["value"].clone()
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
