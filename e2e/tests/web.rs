//! `subscribe web` in a real headless Chromium (Debian's `chromium`), driven over the DevTools protocol, and
//! over HTTP(S) with curl: the token, the cookie, the headers every answer carries, HTTPS with a test CA.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::chromium::Chromium;
use common::tls::{ServerCert, TestCa};
use common::*;

/// The token of the tests: `+`, `/`, `=` and `%` in it must be percent-encoded in a URL, and `%41` read
/// as written would be `A`.
const TOKEN: &str = "tok+en/with=pct%41";

/// Every byte but letters and digits percent-encoded, for a query string.
fn enc(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

fn artifact(name: &str) -> PathBuf {
    let dir = root().join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// One request with curl: (status, head, body). Over HTTPS it trusts `ca` and verifies the server's name.
/// `extra`: more curl arguments (headers, a shorter time limit).
fn curl(url: &str, ca: Option<&Path>, extra: &[&str]) -> (u16, String, String) {
    let mut c = Command::new("curl");
    c.args(["-sS", "-i", "--max-time", "5"]);
    if let Some(ca) = ca {
        c.arg("--cacert").arg(ca);
    }
    let out = c.args(extra).arg(url).output().unwrap_or_else(|e| panic!("cannot run curl ({e}): run `make setup`"));
    // 28: out of time, as on the live stream, which never ends; its head came first.
    assert!(matches!(out.status.code(), Some(0 | 28)), "curl {url}: {}", stderr(&out));
    let text = stdout(&out);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    let status = status.unwrap_or_else(|| panic!("no HTTP status from {url}: {text}"));
    (status, head.to_string(), body.to_string())
}

/// The values of the header `name` in a response head.
fn header<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

/// The answer's token cookie, with its attributes.
fn token_cookie(head: &str) -> &str {
    let cookie = header(head, "set-cookie").into_iter().find(|c| c.starts_with("framewire_token="));
    cookie.unwrap_or_else(|| panic!("no token cookie in {head}"))
}

/// The headers every answer must carry, whatever it is.
fn assert_hardened(head: &str, what: &str) {
    assert_eq!(header(head, "x-content-type-options"), ["nosniff"], "{what}: {head}");
    assert_eq!(header(head, "referrer-policy"), ["no-referrer"], "{what}: {head}");
    let csp = header(head, "content-security-policy");
    assert!(csp.len() == 1 && csp[0].starts_with("default-src 'self'"), "{what}: {head}");
}

/// A folder with a test CA and the certificate it signed for the web view on localhost and 127.0.0.1.
fn web_cert() -> (tempfile::TempDir, TestCa, ServerCert) {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let cert = ca.issue(dir.path(), "web", &["localhost", "127.0.0.1"]);
    (dir, ca, cert)
}

#[test]
fn slow_live_page_over_https_in_chromium_draws_a_person_box_on_the_camera() {
    let broker = Broker::start();
    let (dir, ca, cert) = web_cert();
    let clip = dir.path().join("astronaut.mp4");
    still_clip(&media("astronaut.png"), 30, 5, &clip);
    let (frames, dets) = (unique("frames"), unique("dets"));
    let group = unique("group");
    let _detect = broker.detect(&frames, &dets, &group);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let (cert_path, key_path) = (cert.cert.to_str().unwrap(), cert.key.to_str().unwrap());
    let _web = broker.service(
        "subscribe",
        &[
            "web",
            "--listen",
            &addr,
            "--token",
            TOKEN,
            "--tls-cert",
            cert_path,
            "--tls-key",
            key_path,
            "--topic",
            &dets,
            "--frames-topic",
            &frames,
            "--detect-group",
            &group,
        ],
    );
    wait_listening(&addr);
    // Two cameras at real-time pace, so the page is live while the browser watches.
    let _astro =
        broker.service("ingest", &["--camera", "astro", "--topic", &frames, "--realtime", clip.to_str().unwrap()]);
    let _bikes = broker.service(
        "ingest",
        &["--camera", "bikes", "--topic", &frames, "--realtime", "--fps", "5", media("bikes.mp4").to_str().unwrap()],
    );

    let mut chrome = Chromium::start(Some(&ca.cert));
    chrome.call("Page.enable", serde_json::json!({}));
    // Whatever the page's own policy blocks is recorded from the first script on: the page must work within it.
    chrome.call(
        "Page.addScriptToEvaluateOnNewDocument",
        serde_json::json!({ "source": "window.__blocked = []; document.addEventListener('securitypolicyviolation', \
            e => window.__blocked.push(e.violatedDirective + ' ' + e.blockedURI));" }),
    );
    // The token comes the way users get it: a link with it on another site (https://127.0.0.1 is another site
    // than https://localhost), whose SameSite=Strict cookie must still reach the page it leads to.
    let origin = format!("https://localhost:{port}");
    let link = format!("{origin}/?token={}", enc(TOKEN));
    chrome.call("Page.navigate", serde_json::json!({ "url": format!("https://{addr}/elsewhere") }));
    let deadline = Instant::now() + Duration::from_secs(30);
    while chrome.eval("document.readyState === 'complete' && location.host") != serde_json::json!(addr) {
        assert!(Instant::now() < deadline, "the other site's page did not load over HTTPS");
        std::thread::sleep(Duration::from_millis(100));
    }
    chrome.eval(&format!(
        "(() => {{ const a = document.createElement('a'); a.href = {link:?}; document.body.appendChild(a); a.click(); }})()"
    ));
    let deadline = Instant::now() + Duration::from_secs(90);
    let labels = loop {
        let v = chrome.eval(
            r#"(() => {
                const card = document.querySelector('.camera[data-camera="astro"]');
                const img = card && card.querySelector('img');
                if (!img || !img.complete || img.naturalWidth === 0) return [location.href, document.title, null];
                return [location.href, document.title, [...card.querySelectorAll('.box')].map(b => b.dataset.label + '|' + b.textContent)];
            })()"#,
        );
        if let Some(a) = v[2].as_array()
            && a.iter().any(|l| l.as_str().unwrap_or("").starts_with("person|person "))
        {
            break v;
        }
        assert!(Instant::now() < deadline, "no person box drawn on camera astro within 90 s: {v}");
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!("boxes on astro: {labels:?}");
    // The token is gone from the address bar, and the cookie that holds it is out of the page's scripts' reach.
    assert_eq!(labels[0], format!("{origin}/"), "the page's URL");
    assert_eq!(chrome.eval("document.cookie"), "", "the token cookie is HttpOnly");

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

    // Everything the page loaded came from the binary itself (no CDN), and its policy blocked nothing.
    let resources = chrome.eval("performance.getEntriesByType('resource').map(e => e.name)");
    for r in resources.as_array().unwrap() {
        assert!(r.as_str().unwrap().starts_with(&format!("{origin}/")), "external resource {r}");
    }
    assert_eq!(chrome.eval("window.__blocked"), serde_json::json!([]), "blocked by the page's policy");
    // ...and that record is real: an inline script, which the policy forbids, shows in it.
    chrome.eval("document.head.appendChild(Object.assign(document.createElement('script'), { textContent: '1' }))");
    let deadline = Instant::now() + Duration::from_secs(5);
    while chrome.eval("window.__blocked.length") == 0 {
        assert!(Instant::now() < deadline, "an inline script was not reported as blocked");
        std::thread::sleep(Duration::from_millis(100));
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
    // Wrong tokens, of the same length and of others.
    for wrong in ["s3creT", "s3cre", "s3crets", ""] {
        assert_eq!(http_get(&addr, &format!("/?token={wrong}"), None).unwrap().0, 401, "{wrong}");
        assert_eq!(http_get(&addr, "/api/state", Some(&format!("framewire_token={wrong}"))).unwrap().0, 401);
    }
    let (status, head, body) = http_get(&addr, "/?token=s3cret", None).unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("<title>framewire"), "{body}");
    // Over plain HTTP the cookie cannot be `Secure`: a browser would drop it.
    let cookie = token_cookie(&head);
    assert_eq!(cookie, "framewire_token=s3cret; Path=/; HttpOnly; SameSite=Strict");
    // The cookie alone opens the rest of the page (the browser sends it with every request).
    let (status, _, body) = http_get(&addr, "/api/state", Some(cookie.split(';').next().unwrap())).unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("\"cameras\""), "{body}");
}

#[test]
fn a_web_view_over_https_takes_its_token_safely_and_hardens_every_answer() {
    let broker = Broker::start();
    let (dir, ca, cert) = web_cert();
    let port = free_port();
    let (cert_path, key_path) = (cert.cert.to_str().unwrap(), cert.key.to_str().unwrap());
    let listen = format!("127.0.0.1:{port}");
    let web = broker.service(
        "subscribe",
        &["web", "--listen", &listen, "--token", TOKEN, "--tls-cert", cert_path, "--tls-key", key_path],
    );
    wait_listening(&listen);
    let url = |path: &str| format!("https://localhost:{port}{path}");
    let get = |path: &str, extra: &[&str]| curl(&url(path), Some(&ca.cert), extra);
    let bearer = format!("authorization: Bearer {TOKEN}");
    let with_token = ["-H", bearer.as_str()];

    // A client that trusts another CA does not get through: the certificate is really checked. (curl says 60,
    // or 35 when, as here, the other CA has the same name and OpenSSL finds the signature wrong.)
    let other = TestCa::new(dir.path());
    let out = Command::new("curl").args(["-sS", "--max-time", "5", "--cacert"]).arg(&other.cert).arg(url("/")).output();
    let code = out.as_ref().unwrap().status.code();
    assert!(matches!(code, Some(35 | 60)), "curl with another CA: {out:?}");

    // ?token= is percent-decoded: as written, `%41` would read as `A`.
    assert_eq!(get(&format!("/api/state?token={TOKEN}"), &[]).0, 401);
    let (status, head, body) = get(&format!("/api/state?token={}", enc(TOKEN)), &[]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"cameras\""), "{body}");
    let cookie = token_cookie(&head);
    assert!(cookie.ends_with("; Path=/; HttpOnly; SameSite=Strict; Secure"), "{cookie}");
    let pair = format!("cookie: {}", cookie.split(';').next().unwrap());
    assert_eq!(get("/api/state", &["-H", &pair]).0, 200, "the cookie alone");
    assert_eq!(get("/api/state", &with_token).0, 200, "the bearer header");
    assert_eq!(get("/api/state", &["-H", &format!("authorization: bearer {TOKEN}")]).0, 200);

    // Wrong tokens, of the same length and of others, wherever a token is taken.
    for wrong in ["tok+en/with=pct%42", "Tok+en/with=pct%41", "tok+en/with=pct%4", "tok+en/with=pct%411", "x"] {
        assert_eq!(get(&format!("/api/state?token={}", enc(wrong)), &[]).0, 401, "?token={wrong}");
        assert_eq!(get("/api/state", &["-H", &format!("authorization: Bearer {wrong}")]).0, 401, "bearer {wrong}");
        assert_eq!(get("/api/state", &["-H", &format!("cookie: framewire_token={}", enc(wrong))]).0, 401, "{wrong}");
    }

    // A browser loading a page with the token is sent on to the same URL without it, other parameters kept.
    let (status, head, body) =
        get(&format!("/?camera=a&token={}&label=b", enc(TOKEN)), &["-H", "accept: text/html,*/*;q=0.8"]);
    assert_eq!(status, 200);
    assert!(body.contains(r#"http-equiv="refresh" content="0;url=/?camera=a&amp;label=b""#), "{body}");
    assert!(!body.contains("token"), "{body}");
    assert_eq!(header(&head, "cache-control"), ["no-store"], "{head}");
    assert!(token_cookie(&head).ends_with("; Secure"), "{head}");

    // Every answer carries the same headers: pages, assets, the API, the live stream, errors and refusals.
    for (path, want) in [
        ("/", 200),
        ("/app.js", 200),
        ("/style.css", 200),
        ("/api/state", 200),
        ("/api/recent", 200),
        ("/api/stream", 200),
        ("/api/events", 404),
        ("/api/events/e1", 404),
        ("/events/e1", 404),
        ("/snapshots/e1/0", 404),
        ("/frames/cam/1", 404),
        ("/nothing/here", 404),
        ("/api/recent?limit=0", 400),
    ] {
        let (status, head, _) = get(path, &["-H", bearer.as_str(), "--max-time", "2"]);
        assert_eq!(status, want, "{path}");
        assert_hardened(&head, path);
    }
    let (status, head, _) = get("/api/state", &[]);
    assert_eq!(status, 401);
    assert_hardened(&head, "a refusal");

    // ?limit= is bounded: larger is taken as the most, nonsense is refused with what it takes.
    for (limit, want) in [("1", 200), ("500", 200), ("501", 200), ("99999999999999999999999", 200)] {
        assert_eq!(get(&format!("/api/recent?limit={limit}"), &with_token).0, want, "limit={limit}");
    }
    for limit in ["0", "-1", "abc", "1.5"] {
        let (status, _, body) = get(&format!("/api/recent?limit={limit}"), &with_token);
        assert_eq!(status, 400, "limit={limit}");
        assert!(body.starts_with("limit must be a whole number from 1 to 500"), "limit={limit}: {body}");
    }

    // With a browser's live stream open over HTTPS, a SIGTERM still ends the web view at once, cleanly.
    let mut stream = Command::new("curl")
        .args(["-sS", "-N", "--cacert", ca.cert.to_str().unwrap(), "-H", &bearer, &url("/api/stream")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let t = Instant::now();
    let out = web.stop();
    let _ = stream.kill();
    let _ = stream.wait();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(t.elapsed() < Duration::from_secs(10), "shutdown took {:?}", t.elapsed());
}

#[test]
fn the_web_view_never_shows_database_errors() {
    let broker = Broker::start();
    let addr = format!("127.0.0.1:{}", free_port());
    let web = broker.service("subscribe", &["web", "--listen", &addr, "--db", "postgres://fw:SECRET@127.0.0.1:1/x"]);
    wait_listening(&addr);
    for path in ["/api/events", "/api/events/e1", "/events/e1", "/snapshots/e1/0"] {
        let (status, head, body) = http_get(&addr, path, None).unwrap();
        assert_eq!((status, body.as_str()), (503, "the store's database is unavailable\n"), "{path}");
        assert_hardened(&head, path);
    }
    // The cause is in the log, with the password hidden.
    let log = stderr(&web.stop());
    assert!(log.contains("store database unavailable") && log.contains("fw:***@127.0.0.1:1"), "{log}");
    assert!(!log.contains("SECRET"), "{log}");
}

/// `subscribe web` with `args`, against no broker: whatever it refuses, it must refuse before waiting for one.
fn web_refusing(args: &[&str]) -> String {
    let t = Instant::now();
    let out: Output = Command::new(bin("subscribe"))
        .env("FRAMEWIRE_BROKERS", "127.0.0.1:1")
        .env("FRAMEWIRE_METRICS_LISTEN", "off")
        .env("RUST_LOG", "warn")
        .arg("web")
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "subscribe web {args:?} started");
    assert!(t.elapsed() < Duration::from_secs(5), "subscribe web {args:?} took {:?} to refuse", t.elapsed());
    let err = stderr(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn bad_tls_files_end_the_web_view_at_once_naming_the_file() {
    let (dir, ca, web) = web_cert();
    let other = ca.issue(dir.path(), "other", &["localhost"]);
    let missing = dir.path().join("missing.pem");
    let p = |p: &Path| p.to_str().unwrap().to_string();
    let (cert, key, missing) = (p(&web.cert), p(&web.key), p(&missing));
    let listen = format!("127.0.0.1:{}", free_port());
    for (c, k, want) in [
        (&missing, &key, format!("--tls-cert {missing}: cannot read it: No such file")),
        (&cert, &missing, format!("--tls-key {missing}: cannot read it: No such file")),
        (&key, &key, format!("--tls-cert {key}: no CERTIFICATE block in it")),
        (&cert, &cert, format!("--tls-key {cert}: no PRIVATE KEY block in it")),
        (&cert, &p(&other.key), format!("--tls-key {}: not the key of the certificate {cert}", p(&other.key))),
    ] {
        let err = web_refusing(&["--listen", &listen, "--tls-cert", c, "--tls-key", k]);
        assert!(err.starts_with("subscribe: error: ") && err.contains(&want), "want {want:?}: {err}");
    }
    let err = web_refusing(&["--listen", &listen, "--tls-cert", &cert]);
    assert!(err.contains("--tls-cert and --tls-key go together"), "{err}");
    // HTTPS does not stand in for the token on an exposed address.
    let err = web_refusing(&["--listen", "0.0.0.0:0", "--tls-cert", &cert, "--tls-key", &key]);
    assert!(err.contains("without --token"), "{err}");
}
