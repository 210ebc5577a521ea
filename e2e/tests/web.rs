//! `subscribe web` in a real headless Chromium (Debian's `chromium`), driven over the DevTools protocol.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;

/// A headless Chromium with the DevTools protocol on a free port, killed on drop.
struct Chromium {
    child: Child,
    ws: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Chromium {
    fn start() -> Chromium {
        let profile = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-dev-shm-usage",
                "--window-size=1280,900",
                &format!("--remote-debugging-port={port}"),
                &format!("--user-data-dir={}", profile.path().display()),
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
        Chromium { child, ws, next_id: 0, _profile: profile }
    }

    /// Sends one DevTools command and returns its result, skipping the events in between.
    fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = serde_json::json!({ "id": id, "method": method, "params": params }).to_string();
        self.ws.send(tungstenite::Message::Text(msg.into())).unwrap();
        loop {
            let m = self.ws.read().unwrap();
            let tungstenite::Message::Text(t) = m else { continue };
            let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
            if v["id"].as_u64() == Some(id) {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluates a JavaScript expression in the page; returns its value.
    fn eval(&mut self, expr: &str) -> serde_json::Value {
        let r = self.call("Runtime.evaluate", serde_json::json!({ "expression": expr, "returnByValue": true }));
        r["result"]["value"].clone()
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn artifact(name: &str) -> PathBuf {
    let dir = root().join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn slow_live_page_in_chromium_draws_a_person_box_on_the_camera() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("astronaut.mp4");
    still_clip(&media("astronaut.png"), 30, 5, &clip);
    let (frames, dets) = (unique("frames"), unique("dets"));
    let group = unique("group");
    let _detect = broker.detect(&frames, &dets, &group);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let _web = broker.service(
        "subscribe",
        &["web", "--listen", &addr, "--topic", &dets, "--frames-topic", &frames, "--detect-group", &group],
    );
    wait_listening(&addr);
    // Two cameras at real-time pace, so the page is live while the browser watches.
    let _astro =
        broker.service("ingest", &["--camera", "astro", "--topic", &frames, "--realtime", clip.to_str().unwrap()]);
    let _bikes = broker.service(
        "ingest",
        &["--camera", "bikes", "--topic", &frames, "--realtime", "--fps", "5", media("bikes.mp4").to_str().unwrap()],
    );

    let mut chrome = Chromium::start();
    chrome.call("Page.enable", serde_json::json!({}));
    chrome.call("Page.navigate", serde_json::json!({ "url": format!("http://{addr}/") }));
    let deadline = Instant::now() + Duration::from_secs(90);
    let labels = loop {
        let v = chrome.eval(
            r#"(() => {
                const card = document.querySelector('.camera[data-camera="astro"]');
                if (!card) return null;
                const img = card.querySelector('img');
                if (!img || !img.complete || img.naturalWidth === 0) return null;
                return [...card.querySelectorAll('.box')].map(b => b.dataset.label + '|' + b.textContent);
            })()"#,
        );
        if let Some(a) = v.as_array()
            && a.iter().any(|l| l.as_str().unwrap_or("").starts_with("person|person "))
        {
            break a.clone();
        }
        assert!(Instant::now() < deadline, "no person box drawn on camera astro within 90 s: {v}");
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!("boxes on astro: {labels:?}");

    // The box sits where the model found the astronaut: about x 3–75 %, y 2–99 % of the frame.
    let geom = chrome.eval(
        r#"(() => {
            const card = document.querySelector('.camera[data-camera="astro"]');
            const b = card.querySelector('.box[data-label="person"]');
            const img = card.querySelector('img').getBoundingClientRect();
            const r = b.getBoundingClientRect();
            return [(r.left - img.left) / img.width, (r.top - img.top) / img.height, r.width / img.width, r.height / img.height];
        })()"#,
    );
    let g: Vec<f64> = geom.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert!(g[0] < 0.15 && g[1] < 0.15 && g[2] > 0.5 && g[3] > 0.8, "person box geometry {g:?}");

    // Both cameras show, the figures table lists them, the recent list filters by label.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = chrome.eval(
            r#"[document.querySelectorAll('.camera').length,
                [...document.querySelectorAll('#figures tbody tr')].map(r => r.dataset.camera).sort().join(','),
                document.querySelectorAll('#recent li').length,
                document.getElementById('lag').textContent]"#,
        );
        // The detectors' lag comes from their group's committed offsets.
        let lag_shown = v[3].as_str().unwrap_or("").starts_with("detector lag: ");
        if v[0] == 2 && v[1] == "astro,bikes" && v[2].as_u64().unwrap_or(0) > 0 && lag_shown {
            break;
        }
        assert!(Instant::now() < deadline, "page did not show both cameras and figures: {v}");
        std::thread::sleep(Duration::from_millis(250));
    }
    let filtered = chrome.eval(
        r#"(() => {
            const s = document.getElementById('f-label');
            if (![...s.options].some(o => o.value === 'person')) return 'no person option';
            s.value = 'person';
            s.onchange();
            const items = [...document.querySelectorAll('#recent li')];
            return items.length > 0 && items.every(li => li.dataset.label === 'person');
        })()"#,
    );
    assert_eq!(filtered, serde_json::json!(true), "label filter");

    // Everything the page loaded came from the binary itself: no CDN.
    let resources = chrome.eval("performance.getEntriesByType('resource').map(e => e.name)");
    for r in resources.as_array().unwrap() {
        assert!(r.as_str().unwrap().starts_with(&format!("http://{addr}/")), "external resource {r}");
    }

    let shot = chrome.call("Page.captureScreenshot", serde_json::json!({ "format": "png" }));
    let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let path = artifact("web-live-view.png");
    std::fs::write(&path, &png).unwrap();
    eprintln!("screenshot: {}", path.display());
}

#[test]
fn an_exposed_web_view_needs_its_token() {
    let broker = Broker::start();
    // Anything but loopback without a token is refused at start-up.
    let out = broker.cmd("subscribe").args(["web", "--listen", "0.0.0.0:0"]).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("without --token"), "{}", stderr(&out));

    let addr = format!("127.0.0.1:{}", free_port());
    let _web = broker.service("subscribe", &["web", "--listen", &addr, "--token", "s3cret"]);
    wait_listening(&addr);
    assert_eq!(http_get(&addr, "/", None).unwrap().0, 401);
    assert_eq!(http_get(&addr, "/api/state", None).unwrap().0, 401);
    assert_eq!(http_get(&addr, "/?token=wrong", None).unwrap().0, 401);
    let (status, head, body) = http_get(&addr, "/?token=s3cret", None).unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("<title>framewire"), "{body}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no cookie in {head}"));
    // The cookie alone opens the rest of the page (the browser sends it with every request).
    let (status, _, body) = http_get(&addr, "/api/state", Some(cookie)).unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("\"cameras\""), "{body}");
}
