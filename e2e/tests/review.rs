//! The web view's review pages in a real headless Chromium, over a store filled by a real run (broker,
//! detect with the real model, `subscribe store`): the live page as it is on arrival after the stream went
//! quiet, the stored events' list with its filters and pages, an event's neighbours, a camera's page with its
//! chart, the phone-sized layout, and the login form. Screenshots go to `target/test-artifacts/review-*.png`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::chromium::{Chromium, artifact};
use common::subscribers::{Topics, query};
use common::*;
use serde_json::Value;

/// Frames per second of every clip: enough for the tracker, few enough for detect on two cores.
const FPS: u32 = 5;

/// Cameras that show the astronaut's still while the web view runs: one person event each.
const STILLS: [&str; 3] = ["door", "yard", "gate"];

/// How long the stream stays quiet before the browser opens the page.
const QUIET: Duration = Duration::from_secs(4);

/// A stored event, as `subscribe query --events --json` gives it.
#[derive(Debug, Clone)]
struct Event {
    id: String,
    camera: String,
    label: String,
}

/// Every stored event, in the review page's order: newest start first, then the larger id.
fn stored_events(broker: &Broker, db: &str) -> Vec<Event> {
    let mut rows = query(broker, db, &["--events"]);
    rows.sort_by(|a, b| {
        let key = |r: &Value| (r["start_ms"].as_i64().unwrap(), r["id"].as_str().unwrap().to_string());
        key(b).cmp(&key(a))
    });
    rows.iter()
        .map(|r| Event {
            id: r["id"].as_str().unwrap().into(),
            camera: r["camera"].as_str().unwrap().into(),
            label: r["label"].as_str().unwrap().into(),
        })
        .collect()
}

fn ids<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<String> {
    events.into_iter().map(|e| e.id.clone()).collect()
}

/// Events per label.
fn per_label<'a>(events: impl IntoIterator<Item = &'a Event>) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for e in events {
        *counts.entry(e.label.clone()).or_default() += 1;
    }
    counts
}

/// Waits until detect has answered every frame `published` counts (per camera) and the store holds a row for
/// every box among the answers: then nothing more is on its way to the store or to the web view.
fn wait_settled(broker: &Broker, t: &Topics, db: &str, published: &BTreeMap<String, u64>, store: &mut Service) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let boxed = loop {
        let mut answered: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
        let mut boxed = BTreeSet::new();
        for d in all_detections(broker, &t.detections) {
            if !d.boxes.is_empty() {
                boxed.insert((d.camera_id.clone(), d.seq));
            }
            answered.entry(d.camera_id).or_default().insert(d.seq);
        }
        let counts: BTreeMap<&String, u64> = answered.iter().map(|(c, s)| (c, s.len() as u64)).collect();
        if published.iter().all(|(c, n)| counts.get(c).copied().unwrap_or(0) >= *n) {
            break boxed;
        }
        assert!(Instant::now() < deadline, "detect answered {counts:?} of {published:?} frames in 120 s");
        std::thread::sleep(Duration::from_millis(500));
    };
    loop {
        store.assert_running();
        // None while the store has not created its tables yet.
        let out = broker.cmd("subscribe").args(["query", "--db", db, "--json", "--limit", "1000000"]).output().unwrap();
        let stored: BTreeSet<(String, u64)> = stdout(&out)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|r| (r["camera"].as_str().unwrap_or_default().to_string(), r["seq"].as_u64().unwrap_or_default()))
            .collect();
        let missing = boxed.difference(&stored).count();
        if missing == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the store lacks {missing} of {} frames with boxes", boxed.len());
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// An ingest of `source` as `camera` at real-time pace, printing its summary as JSON.
fn ingest_live(broker: &Broker, topic: &str, camera: &str, source: &std::path::Path, extra: &[&str]) -> Child {
    let mut args = vec!["--camera", camera, "--topic", topic, "--realtime", "--summary-format", "json"];
    args.extend(extra);
    let mut cmd = broker.cmd("ingest");
    cmd.args(args).arg(source).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.spawn().unwrap()
}

/// Seconds an `.age` text such as "just now", "12 s ago", "3 min ago" or "2 h ago" stands for, as the range
/// of ages it rounds down from; None for any other text.
fn age_range(text: &str) -> Option<(f64, f64)> {
    let text = text.trim();
    if text == "just now" {
        return Some((0.0, 10.0));
    }
    let (n, unit) = text.strip_suffix(" ago")?.split_once(' ')?;
    let n: f64 = n.parse().ok()?;
    let unit = match unit {
        "s" => 1.0,
        "min" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    Some((n * unit, (n + 1.0) * unit))
}

/// The live page's cards, its recent detections and its link to the review page.
const LIVE_STATE: &str = r#"(() => ({
    cards: [...document.querySelectorAll('.camera')].map(c => {
        const img = c.querySelector('img');
        const age = c.querySelector('.age');
        return {
            camera: c.dataset.camera,
            stored: c.classList.contains('stored'),
            capture_ms: c.dataset.captureMs ? Number(c.dataset.captureMs) : null,
            age: age ? age.textContent : null,
            counts: [...c.querySelectorAll('.counts span[data-label]')].map(s => s.textContent.trim()),
            link: [...c.querySelectorAll('h3 a')].map(a => a.getAttribute('href')),
            img: !!img && img.complete && img.naturalWidth > 0,
        };
    }),
    recent: [...document.querySelectorAll('#recent li')].map(li => [li.dataset.camera, li.dataset.label]),
    review_link: !!document.querySelector('a[href="/review"]'),
}))()"#;

/// The review page's list, its pagination links and its summary.
const REVIEW_STATE: &str = r#"(() => ({
    events: [...document.querySelectorAll('#events-list .event')].map(e => ({
        id: e.dataset.id, camera: e.dataset.camera, label: e.dataset.label,
        start_ms: Number(e.dataset.startMs), score: Number(e.dataset.score),
        link: !!e.querySelector('a[href="/events/' + encodeURIComponent(e.dataset.id) + '"]'),
        thumb: (e.querySelector('img.thumb') || { getAttribute: () => null }).getAttribute('src'),
    })),
    older: (document.querySelector('a#older') || { rel: null }).rel,
    newer: (document.querySelector('a#newer') || { rel: null }).rel,
    summary: (document.getElementById('summary') || { textContent: null }).textContent,
    cameras: [...document.querySelectorAll('form#filters select[name=camera] option')].map(o => o.value),
    labels: [...document.querySelectorAll('form#filters select[name=label] option')].map(o => o.value),
    url: location.pathname + location.search,
}))()"#;

/// Every listed event's thumbnail, scrolled into view (they load lazily) and waited for, with how many
/// snapshots the event has (from the page's own API): [id, snapshots, naturalWidth].
const THUMBS: &str = r#"(async () => {
    const out = [];
    for (const e of document.querySelectorAll('#events-list .event')) {
        const r = await fetch('/api/events/' + encodeURIComponent(e.dataset.id));
        const snaps = r.ok ? (await r.json()).snapshots.length : -r.status;
        const img = e.querySelector('img.thumb');
        if (img) {
            img.scrollIntoView();
            if (!img.complete || img.naturalWidth === 0) {
                await new Promise(done => {
                    img.addEventListener('load', done, { once: true });
                    img.addEventListener('error', done, { once: true });
                    setTimeout(done, 5000);
                });
            }
        }
        out.push([e.dataset.id, snaps, img ? img.naturalWidth : null]);
    }
    return out;
})()"#;

/// The camera page: its latest picture, the timeline's bars (their links) and the chart's counts per label.
const CAMERA_STATE: &str = r#"(() => {
    const img = document.getElementById('latest');
    const counts = {};
    for (const r of document.querySelectorAll('svg#counts-chart rect.bar')) {
        counts[r.dataset.label] = (counts[r.dataset.label] || 0) + Number(r.dataset.count);
    }
    return {
        img: !!img && img.complete && img.naturalWidth > 0,
        bars: [...document.querySelectorAll('svg#timeline a.event-bar')]
            .map(a => a.getAttribute('href') || a.getAttribute('xlink:href')),
        counts,
        table: !!document.querySelector('table#counts-table'),
    };
})()"#;

/// Whether the page is wider than the screen: [scrollWidth, innerWidth].
const WIDTHS: &str = "[document.documentElement.scrollWidth, window.innerWidth]";

/// The event id of the page shown, from its URL.
const EVENT_ID: &str = "location.pathname.startsWith('/events/') && decodeURIComponent(location.pathname.slice(8))";

/// Clicks `selector` as a user and waits for the page it leads to; returns that page's URL.
fn follow(chrome: &mut Chromium, selector: &str) -> String {
    chrome.mark_document();
    chrome.click(selector);
    chrome.wait_new_document(Duration::from_secs(30))
}

/// Submits `form#filters` with its selects set to `values` (name, value), by a click on its button.
fn filter(chrome: &mut Chromium, values: &[(&str, &str)]) -> String {
    for (name, value) in values {
        let set = chrome.eval(&format!(
            "(() => {{ const s = document.querySelector('form#filters select[name={name}]'); \
             if (!s || ![...s.options].some(o => o.value === {value:?})) return false; \
             s.value = {value:?}; s.dispatchEvent(new Event('change', {{ bubbles: true }})); return true; }})()"
        ));
        assert_eq!(set, Value::Bool(true), "form#filters has no {name} option {value:?}");
    }
    follow(chrome, "form#filters button[type=submit], form#filters input[type=submit], form#filters button")
}

/// The ids listed on the review page shown.
fn listed(chrome: &mut Chromium) -> (Value, Vec<String>) {
    let state = chrome.eval(REVIEW_STATE);
    let ids = state["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect();
    (state, ids)
}

#[test]
fn slow_review_pages_in_chromium_show_what_a_real_run_stored() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let t = Topics::new();
    let detect_group = unique("detect");
    let _detect = broker.detect(&t.frames, &t.detections, &detect_group);
    let db = format!("sqlite://{}/fw.db", dir.path().display());
    let snaps = dir.path().join("snaps");
    let store_group = unique("store");
    let mut args = t.store_args(&db, &store_group, snaps.to_str().unwrap());
    args.extend(["--snapshot-classes", "person"]);
    let mut store = broker.service("subscribe", &args);

    // Camera `archive` is stored before the web view starts, which reads the topics from their newest
    // offsets: it knows `archive` only from the store.
    let clip = dir.path().join("astronaut.mp4");
    still_clip(&media("astronaut.png"), 6, FPS, &clip);
    let printed = broker.ingest_ok("archive", &t.frames, &clip, &["--summary-format", "json"]);
    let mut published = BTreeMap::from([("archive".to_string(), ingest_count(&printed, "archive", "published"))]);
    wait_settled(&broker, &t, &db, &published, &mut store);

    let addr = format!("127.0.0.1:{}", free_port());
    let mut web = broker.service(
        "subscribe",
        &[
            "web",
            "--listen",
            &addr,
            "--db",
            &db,
            "--topic",
            &t.detections,
            "--frames-topic",
            &t.frames,
            "--detect-group",
            &detect_group,
        ],
    );
    wait_listening(&addr);
    // It answers once its consumers are made.
    while http_get(&addr, "/api/state", None).map(|r| r.0) != Some(200) {
        web.assert_running();
        std::thread::sleep(Duration::from_millis(100));
    }

    // The live cameras, at real-time pace: street first, until the web view shows one of its frames with its
    // detections (both of its consumers have their partitions then, which a loaded machine can take seconds
    // to give), then the stills, whose every frame it must see.
    let started_ms = now_ms();
    let bikes = media("bikes.mp4");
    let mut ingests = vec![("street", ingest_live(&broker, &t.frames, "street", &bikes, &["--fps", &FPS.to_string()]))];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = http_get(&addr, "/api/state", None).map(|r| r.2).unwrap_or_default();
        let state: Value = serde_json::from_str(&state).unwrap_or_default();
        let cameras = state["cameras"].as_array().cloned().unwrap_or_default();
        if cameras.iter().any(|c| c["camera"] == "street" && c["latest"]["frame_url"].is_string()) {
            break;
        }
        assert!(Instant::now() < deadline, "the web view showed no frame of street in 60 s: {state}");
        std::thread::sleep(Duration::from_millis(200));
    }
    ingests.extend(STILLS.iter().map(|cam| (*cam, ingest_live(&broker, &t.frames, cam, &clip, &[]))));
    for (camera, child) in ingests {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "ingest {camera}: {}", stderr(&out));
        published.insert(camera.to_string(), ingest_count(&stdout(&out), camera, "published"));
    }
    // Every frame was captured by now (ingest stamps a file's frames with the time it sends them).
    let ended_ms = now_ms();
    eprintln!("published {published:?} in {} ms", ended_ms - started_ms);
    wait_settled(&broker, &t, &db, &published, &mut store);
    std::thread::sleep(QUIET);

    let events = stored_events(&broker, &db);
    let of = |camera: &str| events.iter().filter(|e| e.camera == camera).cloned().collect::<Vec<Event>>();
    eprintln!("stored events: {:?}", events.iter().map(|e| (&e.camera, &e.label)).collect::<Vec<_>>());
    for camera in STILLS.iter().chain(&["archive"]) {
        assert_eq!(per_label(&of(camera)), BTreeMap::from([("person".into(), 1)]), "{camera}: {events:?}");
    }
    let street = of("street");
    assert!(street.len() >= 2, "the bikes clip makes several events on camera street: {events:?}");
    assert!(events.len() >= 5, "{events:?}");

    let mut chrome = Chromium::start(None);
    chrome.call("Page.enable", serde_json::json!({}));
    let base = format!("http://{addr}");

    // 1. The live page, opened with no frame on its way: what it shows comes from the server's state.
    chrome.navigate(&format!("{base}/"));
    let all_cameras: BTreeSet<&str> = STILLS.iter().copied().chain(["street", "archive"]).collect();
    let live = chrome.wait_until(LIVE_STATE, Duration::from_secs(20), "every camera's card with its picture", |v| {
        let cards = v["cards"].as_array().unwrap();
        let shown: BTreeSet<&str> = cards.iter().filter_map(|c| c["camera"].as_str()).collect();
        shown == all_cameras && cards.iter().all(|c| c["img"] == true && (c["age"].is_string() || c["stored"] == true))
    });
    let read_ms = now_ms();
    eprintln!("live page on arrival: {live}");
    assert_eq!(live["review_link"], true, "a link to /review in the header");
    let recent = live["recent"].as_array().unwrap();
    assert!(!recent.is_empty(), "recent detections on arrival: {live}");
    for r in recent {
        let camera = r[0].as_str().unwrap_or_default();
        assert!(all_cameras.contains(camera) && camera != "archive", "a recent detection of {r}: {live}");
    }
    let mut ages = BTreeMap::new();
    for card in live["cards"].as_array().unwrap() {
        let camera = card["camera"].as_str().unwrap();
        assert_eq!(card["link"], serde_json::json!([format!("/cameras/{camera}")]), "{camera}'s title: {card}");
        assert_eq!(card["stored"], camera == "archive", "class `stored` on {camera}'s card only if from the store");
        if camera == "archive" {
            continue;
        }
        let capture_ms = card["capture_ms"].as_i64().unwrap_or_else(|| panic!("no data-capture-ms on {card}"));
        assert!((started_ms..=ended_ms).contains(&capture_ms), "{camera} captured at {capture_ms}: {card}");
        // The picture is at least as old as the quiet time, and the text says how old it is.
        let age_s = (read_ms - capture_ms) as f64 / 1000.0;
        assert!(age_s >= QUIET.as_secs_f64(), "{camera}'s latest picture is {age_s} s old");
        let text = card["age"].as_str().unwrap();
        let (low, high) = age_range(text).unwrap_or_else(|| panic!("{camera}'s age reads {text:?}"));
        assert!(low - 1.0 <= age_s && age_s <= high + 1.0, "{camera}'s picture is {age_s:.1} s old; it reads {text:?}");
        // Seconds tick visibly within the next few seconds; minutes and hours do not.
        if text.ends_with(" s ago") {
            ages.insert(camera.to_string(), low);
        }
        if STILLS.contains(&camera) {
            assert!(card["counts"].as_array().unwrap().contains(&"person 1".into()), "{camera}'s counts: {card}");
        }
    }
    chrome.screenshot(&artifact("review-live.png"));
    // And it keeps ageing with no frame arriving.
    chrome.wait_until(LIVE_STATE, Duration::from_secs(5), "the pictures' ages to grow", |v| {
        v["cards"].as_array().unwrap().iter().all(|c| match (c["camera"].as_str(), c["age"].as_str()) {
            (Some(camera), Some(text)) => {
                ages.get(camera).is_none_or(|before| age_range(text).is_some_and(|(low, _)| low > *before))
            }
            _ => false,
        })
    });

    // 2. The review page: every stored event, newest first, with its thumbnail.
    chrome.navigate(&format!("{base}/review"));
    let (page, shown) = listed(&mut chrome);
    assert_eq!(shown, ids(&events), "the list, newest first: {page}");
    for e in page["events"].as_array().unwrap() {
        let id = e["id"].as_str().unwrap();
        assert_eq!(e["link"], true, "{id} links to its page: {e}");
        // An event without a snapshot (its label not in --snapshot-classes) has no thumbnail.
        assert!(e["thumb"].is_null() || e["thumb"] == format!("/snapshots/{id}/0"), "{id}'s thumbnail: {e}");
    }
    let have: BTreeSet<&str> = page["cameras"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(have.is_superset(&all_cameras), "camera filter's options: {page}");
    let thumbs = chrome.eval(THUMBS);
    for t in thumbs.as_array().unwrap() {
        let (id, snaps, width) = (t[0].as_str().unwrap(), t[1].as_i64().unwrap(), t[2].as_i64().unwrap_or(0));
        let event = events.iter().find(|e| e.id == id).unwrap();
        if event.label == "person" {
            assert!(snaps >= 1, "person event {id} has a snapshot: {thumbs}");
        }
        assert_eq!(t[2].is_null(), snaps == 0, "a thumbnail for {id} if and only if it has snapshots: {thumbs}");
        if snaps >= 1 {
            assert!(width > 0, "{id}'s thumbnail did not load: {thumbs}");
        }
    }
    chrome.eval("window.scrollTo(0, 0)");
    chrome.screenshot(&artifact("review-list.png"));

    // Filters, as a user sets them: a camera, then a label.
    let url = filter(&mut chrome, &[("camera", "door")]);
    assert!(url.contains("camera=door"), "{url}");
    let (page, shown) = listed(&mut chrome);
    assert_eq!(shown, ids(&of("door")), "camera=door: {page}");
    let url = filter(&mut chrome, &[("camera", ""), ("label", "person")]);
    assert!(url.contains("label=person"), "{url}");
    let (page, shown) = listed(&mut chrome);
    assert_eq!(shown, ids(events.iter().filter(|e| e.label == "person")), "label=person: {page}");

    // Pages of two, older and older: every event exactly once, in order; then back one page.
    chrome.navigate(&format!("{base}/review?limit=2"));
    let mut pages: Vec<Vec<String>> = Vec::new();
    loop {
        let (page, shown) = listed(&mut chrome);
        assert!(!shown.is_empty() && shown.len() <= 2, "page {}: {page}", pages.len() + 1);
        assert_eq!(page["newer"], if pages.is_empty() { Value::Null } else { "prev".into() }, "a#newer: {page}");
        assert!(page["summary"].as_str().is_some_and(|s| !s.trim().is_empty()), "#summary: {page}");
        pages.push(shown);
        if page["older"].is_null() {
            break;
        }
        assert_eq!(page["older"], "next", "a#older's rel: {page}");
        assert!(pages.len() <= events.len(), "a#older never ends: {pages:?}");
        follow(&mut chrome, "a#older");
    }
    let paged: Vec<String> = pages.concat();
    assert_eq!(paged.iter().collect::<BTreeSet<_>>().len(), paged.len(), "an event on two pages: {pages:?}");
    assert_eq!(paged, ids(&events), "the pages together: {pages:?}");
    if pages.len() >= 2 {
        follow(&mut chrome, "a#newer");
        let (page, shown) = listed(&mut chrome);
        assert_eq!(shown, pages[pages.len() - 2], "a#newer from the last page: {page}");
    }

    // 3. An event's neighbours are the same camera's: street's events, newest to oldest and back.
    chrome.navigate(&format!("{base}/events/{}", street[0].id));
    assert_eq!(chrome.eval("!!document.querySelector('a#next-event')"), false, "the newest has no next event");
    let mut chain = vec![chrome.eval(EVENT_ID).as_str().unwrap_or_default().to_string()];
    while chrome.eval("!!document.querySelector('a#prev-event')") == true {
        assert!(chain.len() <= street.len(), "a#prev-event never ends: {chain:?}");
        follow(&mut chrome, "a#prev-event");
        let id = chrome.eval(EVENT_ID).as_str().unwrap_or_default().to_string();
        let event = events.iter().find(|e| e.id == id);
        assert_eq!(event.map(|e| e.camera.as_str()), Some("street"), "a#prev-event from {chain:?} led to {id}");
        assert_ne!(chain.last(), Some(&id));
        chain.push(id);
    }
    assert_eq!(chain, ids(&street), "street's events by a#prev-event");
    follow(&mut chrome, "a#next-event");
    assert_eq!(chrome.eval(EVENT_ID), street[street.len() - 2].id.as_str(), "a#next-event from the oldest");
    let door_event = of("door")[0].id.clone();
    chrome.navigate(&format!("{base}/events/{door_event}"));
    chrome.screenshot(&artifact("review-event.png"));

    // 4. Camera pages: the latest picture, one bar per event of the last 24 h, the counts per label.
    for camera in ["street", "door"] {
        chrome.navigate(&format!("{base}/cameras/{camera}"));
        let page = chrome.wait_until(CAMERA_STATE, Duration::from_secs(10), "img#latest loaded", |v| v["img"] == true);
        let mine = of(camera);
        let bars: BTreeSet<&str> = page["bars"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        let want: BTreeSet<String> = mine.iter().map(|e| format!("/events/{}", e.id)).collect();
        assert_eq!(page["bars"].as_array().unwrap().len(), mine.len(), "{camera}'s timeline: {page}");
        assert_eq!(bars, want.iter().map(String::as_str).collect(), "{camera}'s timeline links: {page}");
        assert_eq!(page["counts"], serde_json::json!(per_label(&mine)), "{camera}'s chart: {page}");
        assert_eq!(page["table"], true, "{camera}'s table#counts-table: {page}");
    }
    chrome.screenshot(&artifact("review-camera.png"));

    // 5. On a phone, no page scrolls sideways.
    chrome.set_viewport(390, 844, 3.0, true);
    for (name, path, ready) in [
        ("live", "/".to_string(), "document.querySelectorAll('.camera img').length > 0"),
        ("list", "/review".to_string(), "document.querySelectorAll('#events-list .event').length > 0"),
        ("camera", "/cameras/door".to_string(), "document.getElementById('latest')?.naturalWidth > 0"),
        ("event", format!("/events/{door_event}"), "document.readyState === 'complete'"),
    ] {
        chrome.navigate(&format!("{base}{path}"));
        chrome.wait_for(ready, Duration::from_secs(10), &format!("{path} on a phone"));
        let w = chrome.eval(WIDTHS);
        let shot = artifact(&format!("review-phone-{name}.png"));
        chrome.screenshot(&shot);
        eprintln!("screenshot: {}", shot.display());
        assert!(w[0].as_i64() <= w[1].as_i64(), "{path} on a 390 px phone is {} px wide", w[0]);
    }
    chrome.reset_viewport();
    for name in ["live", "list", "event", "camera"] {
        eprintln!("screenshot: {}", artifact(&format!("review-{name}.png")).display());
    }
    store.assert_running();
    web.assert_running();
}

/// A token with characters a form must encode: `+`, `/`, `=` and `%`.
const TOKEN: &str = "tok+en/with=pct%41";

#[test]
fn the_login_form_takes_the_token_into_an_http_only_cookie() {
    let broker = Broker::start();
    let addr = format!("127.0.0.1:{}", free_port());
    let _web = broker.service("subscribe", &["web", "--listen", &addr, "--token", TOKEN]);
    wait_listening(&addr);
    let base = format!("http://{addr}");
    let mut chrome = Chromium::start(None);
    chrome.call("Page.enable", serde_json::json!({}));

    // Without a token, the page asks for it.
    chrome.navigate(&format!("{base}/"));
    let form = "(() => { const f = document.querySelector('form#login'); \
        return !!f && !!f.querySelector('input[name=token][type=password]') && document.body.innerText; })()";
    let asked = chrome.wait_for(form, Duration::from_secs(10), "form#login on / without a token");
    let shot = artifact("review-login.png");
    chrome.screenshot(&shot);
    eprintln!("screenshot: {}", shot.display());

    // A wrong token: the form again, saying so, and no cookie.
    chrome.type_into("form#login input[name=token]", "tok+en/with=pct%42");
    follow(&mut chrome, "form#login button, form#login input[type=submit]");
    let again = chrome.wait_for(form, Duration::from_secs(10), "form#login after a wrong token");
    assert_ne!(again, asked, "the page after a wrong token says nothing more than the form");
    let cookies = chrome.cookies(&format!("{base}/"));
    assert!(cookies.iter().all(|c| c["name"] != "framewire_token"), "a cookie for a wrong token: {cookies:?}");

    // The right one: on to the live page, the token in a cookie its scripts cannot read but its requests carry.
    chrome.type_into("form#login input[name=token]", TOKEN);
    let landed = follow(&mut chrome, "form#login button, form#login input[type=submit]");
    assert_eq!(landed, format!("{base}/"), "where the right token leads");
    assert_eq!(chrome.eval("document.cookie"), "", "the token cookie is HttpOnly");
    let cookies = chrome.cookies(&format!("{base}/"));
    let cookie = cookies.iter().find(|c| c["name"] == "framewire_token");
    assert!(cookie.is_some_and(|c| c["httpOnly"] == true), "the token's cookie: {cookies:?}");
    let status = chrome.eval("fetch('/api/state').then(r => r.status)");
    assert_eq!(status, 200, "/api/state from the page");

    // Log out: the button shows where a token guards the page, and the cookie goes with it.
    chrome.wait_for(
        "(() => { const f = document.getElementById('logout'); return !!f && !f.hidden; })()",
        Duration::from_secs(10),
        "the log-out button",
    );
    let out = follow(&mut chrome, "#logout button");
    assert!(out.starts_with(&format!("{base}/login")), "after logging out: {out}");
    let cookies = chrome.cookies(&format!("{base}/"));
    assert!(cookies.iter().all(|c| c["name"] != "framewire_token"), "a cookie after logging out: {cookies:?}");
    assert_eq!(chrome.eval("fetch('/api/state').then(r => r.status)"), 401, "/api/state after logging out");

    // A link into the pages leads through the form and back to where it pointed; the error is said as one.
    chrome.navigate(&format!("{base}/review?camera=door&label=person"));
    chrome.wait_for(form, Duration::from_secs(10), "form#login for a deep link");
    chrome.type_into("form#login input[name=token]", "wrong");
    follow(&mut chrome, "form#login button");
    let said = chrome.eval("document.querySelector('[role=alert]')?.textContent");
    assert_eq!(said, "That is not the token.", "the refusal");
    chrome.type_into("form#login input[name=token]", TOKEN);
    let landed = follow(&mut chrome, "form#login button");
    assert_eq!(landed, format!("{base}/review?camera=door&label=person"), "where a deep link's login leads");
}
