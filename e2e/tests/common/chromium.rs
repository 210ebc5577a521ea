//! A real headless Chromium driven over the DevTools protocol: the web view's tests look at the page as a
//! browser renders it.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, http_get, root, stderr, stdout};

/// Where a test's screenshot `name` goes: `target/test-artifacts/`, kept after the run.
pub fn artifact(name: &str) -> PathBuf {
    let dir = root().join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

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
        self.try_call(method, params).unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// [`Chromium::call`], with the protocol's error as the `Err`.
    pub fn try_call(
        &mut self,
        method: &str,
        params: serde_json::Value,
    ) -> Result<serde_json::Value, serde_json::Value> {
        self.next_id += 1;
        let id = self.next_id;
        let msg = serde_json::json!({ "id": id, "method": method, "params": params }).to_string();
        self.ws.send(tungstenite::Message::Text(msg.into())).unwrap();
        loop {
            let tungstenite::Message::Text(t) = self.ws.read().unwrap() else { continue };
            let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
            if v["id"].as_u64() == Some(id) {
                return match v.get("error") {
                    Some(e) => Err(e.clone()),
                    None => Ok(v["result"].clone()),
                };
            }
        }
    }

    /// Evaluates a JavaScript expression in the page (awaiting it when it is a promise); returns its value.
    pub fn eval(&mut self, expr: &str) -> serde_json::Value {
        let params = serde_json::json!({ "expression": expr, "returnByValue": true, "awaitPromise": true });
        self.call("Runtime.evaluate", params)["result"]["value"].clone()
    }

    /// [`Chromium::eval`] that tolerates a page between two documents (the old one's context is gone before
    /// the new one has its own): None then, and for a script that threw.
    pub fn try_eval(&mut self, expr: &str) -> Option<serde_json::Value> {
        let params = serde_json::json!({ "expression": expr, "returnByValue": true, "awaitPromise": true });
        let r = self.try_call("Runtime.evaluate", params).ok()?;
        r.get("exceptionDetails").is_none().then(|| r["result"]["value"].clone())
    }

    /// Polls `expr` until `done` accepts its value, then returns that value; panics after `within` with
    /// `what` and the last value, which is the page's state the failure shows.
    pub fn wait_until(
        &mut self,
        expr: &str,
        within: Duration,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            let v = self.try_eval(expr);
            if let Some(v) = &v
                && done(v)
            {
                return v.clone();
            }
            assert!(Instant::now() < deadline, "{what}: not so within {within:?}; the page: {v:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// [`Chromium::wait_until`] `expr` is truthy (not false, null, 0 or "").
    pub fn wait_for(&mut self, expr: &str, within: Duration, what: &str) -> serde_json::Value {
        self.wait_until(expr, within, what, |v| match v {
            serde_json::Value::Null | serde_json::Value::Bool(false) => false,
            serde_json::Value::Number(n) => n.as_f64() != Some(0.0),
            serde_json::Value::String(s) => !s.is_empty(),
            _ => true,
        })
    }

    /// Marks the current document, so that [`Chromium::wait_new_document`] can tell the next one from it.
    pub fn mark_document(&mut self) {
        // The mark lives on the window, which a navigation replaces.
        self.eval("window.__fw_old_document = true");
    }

    /// Waits until a document other than the marked one has loaded; returns its URL.
    pub fn wait_new_document(&mut self, within: Duration) -> String {
        let expr = "!window.__fw_old_document && document.readyState === 'complete' && location.href";
        let url = self.wait_for(expr, within, "a new page loaded");
        url.as_str().unwrap_or_default().to_string()
    }

    /// Opens `url` and waits until it has loaded; returns the URL it ended on (after any redirect).
    pub fn navigate(&mut self, url: &str) -> String {
        self.mark_document();
        self.call("Page.navigate", serde_json::json!({ "url": url }));
        self.wait_new_document(Duration::from_secs(30))
    }

    /// A user's click on the element `selector` matches: the mouse pressed and released over its centre,
    /// scrolled into view first. Panics if no element matches.
    pub fn click(&mut self, selector: &str) {
        let at = self.eval(&format!(
            "(() => {{ const e = document.querySelector({selector:?}); if (!e) return null; \
             e.scrollIntoView({{ block: 'center', inline: 'center' }}); const r = e.getBoundingClientRect(); \
             return [r.left + r.width / 2, r.top + r.height / 2]; }})()"
        ));
        let (Some(x), Some(y)) = (at[0].as_f64(), at[1].as_f64()) else {
            panic!("nothing to click: no {selector} on {}", self.eval("location.href"))
        };
        for kind in ["mousePressed", "mouseReleased"] {
            let params = serde_json::json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 });
            self.call("Input.dispatchMouseEvent", params);
        }
    }

    /// Types `text` into the element `selector` matches, as a keyboard would (focus, then input events).
    pub fn type_into(&mut self, selector: &str, text: &str) {
        let found = self.eval(&format!(
            "(() => {{ const e = document.querySelector({selector:?}); if (!e) return false; e.focus(); return true; }})()"
        ));
        assert_eq!(found, serde_json::json!(true), "nothing to type into: no {selector}");
        self.call("Input.insertText", serde_json::json!({ "text": text }));
    }

    /// Lays the page out as on a screen of `width` x `height` CSS pixels; `mobile` as a phone does (its
    /// viewport meta tag honoured, overlay scrollbars).
    pub fn set_viewport(&mut self, width: u32, height: u32, scale: f64, mobile: bool) {
        let params =
            serde_json::json!({ "width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile });
        self.call("Emulation.setDeviceMetricsOverride", params);
    }

    /// Back to the window's own size.
    pub fn reset_viewport(&mut self) {
        self.call("Emulation.clearDeviceMetricsOverride", serde_json::json!({}));
    }

    /// Saves what the page shows now as a PNG at `path`.
    pub fn screenshot(&mut self, path: &Path) {
        use base64::Engine;
        let shot = self.call("Page.captureScreenshot", serde_json::json!({ "format": "png" }));
        let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        std::fs::write(path, &png).unwrap();
    }

    /// Every cookie the browser holds for `url`, HttpOnly ones included (which the page's scripts cannot see).
    pub fn cookies(&mut self, url: &str) -> Vec<serde_json::Value> {
        let r = self.call("Network.getCookies", serde_json::json!({ "urls": [url] }));
        r["cookies"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
