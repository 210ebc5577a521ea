//! Snapshots in object storage: `subscribe store --snapshot-dir s3://…` against a real S3 API server (moto),
//! the event page in a real headless Chromium and `subscribe show` reading them back from the bucket, and
//! the retention sweep deleting the oldest objects.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::Engine;
use common::chromium::Chromium;
use common::s3::{S3Server, SECRET_KEY};
use common::subscribers::{Topics, astronaut_detected, query};
use common::*;

/// `subscribe store` over the test's topics, with the S3 server's credentials and endpoint in its
/// environment, until it has been idle for 4 s.
fn store(broker: &Broker, s3: &S3Server, t: &Topics, db: &str, group: &str, place: &str, extra: &[&str]) -> Output {
    let mut cmd = broker.cmd("subscribe");
    s3.env(&mut cmd);
    // Debug logging, object_store's and the HTTP client's included: the secret must stay out even there.
    cmd.env("RUST_LOG", "debug");
    cmd.args(t.store_args(db, group, place)).args(["--idle-exit", "4s", "--summary-format", "json"]);
    cmd.args(extra);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "store failed: {}", stderr(&out));
    out
}

/// The frame sequence number of a snapshot key `…/CAMERA/SEQ-MODEL.jpg`.
fn seq_of(key: &str) -> u64 {
    key.rsplit('/').next().unwrap().split_once('-').unwrap().0.parse().unwrap()
}

/// `subscribe web` with the S3 server's environment, serving the store's database at `addr`.
fn start_web(broker: &Broker, s3: &S3Server, addr: &str, db: &str, t: &Topics) -> Service {
    let mut cmd = broker.cmd("subscribe");
    s3.env(&mut cmd);
    cmd.env("RUST_LOG", "debug");
    cmd.args(["web", "--listen", addr, "--db", db, "--topic", &t.detections, "--frames-topic", &t.frames]);
    let web = Service::spawn(cmd);
    wait_listening(addr);
    web
}

fn is_jpeg(b: &[u8]) -> bool {
    b.len() > 4 && b[..2] == [0xFF, 0xD8] && b[b.len() - 2..] == [0xFF, 0xD9]
}

#[test]
fn snapshots_go_to_a_bucket_are_read_back_from_it_and_retention_deletes_the_oldest() {
    // 20 frames of the astronaut, a person in each, detected.
    let (broker, dir, t, _) = astronaut_detected();
    let s3 = S3Server::start();
    let bucket = "framewire-snapshots";
    s3.create_bucket(bucket);
    let mut printed_everywhere = Vec::new();

    // The store writes its snapshots to the bucket: every frame's (the file's frames share a capture instant).
    let db = format!("sqlite://{}/fw.db", dir.path().display());
    let group = unique("store");
    let place = format!("s3://{bucket}/snaps");
    let first = store(&broker, &s3, &t, &db, &group, &place, &["--snapshot-interval", "0s"]);
    let summary = summary_json(&stderr(&first), "store");
    printed_everywhere.push(first);
    assert_eq!(summary["frames"], 20, "{summary}");
    assert_eq!(summary["snapshot_errors"], 0, "{summary}");
    let saved = summary["snapshots"].as_u64().unwrap();
    assert_eq!(saved, 20, "a snapshot of every frame: {summary}");
    let stored = s3.objects(bucket, "snaps/");
    assert_eq!(stored.len() as u64, saved, "{:?}", stored.keys());
    for (key, bytes) in &stored {
        assert!(key.starts_with("snaps/astro/") && key.ends_with(".jpg"), "{key}");
        assert!(is_jpeg(bytes), "{key} is a whole JPEG");
    }
    // The database names each snapshot by its URL, which is the object's.
    let rows = query(&broker, &db, &[]);
    assert_eq!(rows.len(), 20, "every frame stored");
    let urls: BTreeSet<String> = rows.iter().filter_map(|r| r["snapshot"].as_str().map(String::from)).collect();
    let want: BTreeSet<String> = stored.keys().map(|k| format!("s3://{bucket}/{k}")).collect();
    assert_eq!(urls, want);
    let events = query(&broker, &db, &["--events"]);
    let person = events.iter().find(|e| e["label"] == "person").expect("a person event");
    let id = person["id"].as_str().unwrap().to_string();
    let best = person["best_snapshot"].as_str().expect("the event has a best snapshot").to_string();
    let best_key = best.strip_prefix(&format!("s3://{bucket}/")).expect("the best snapshot is in the bucket");
    eprintln!("{saved} snapshots in s3://{bucket}/snaps/astro/, event {id}, best {best}");

    // The event page in Chromium shows the best snapshot, read from the bucket, byte for byte.
    let addr = format!("127.0.0.1:{}", free_port());
    let web = start_web(&broker, &s3, &addr, &db, &t);
    let mut chrome = Chromium::start(None);
    chrome.call("Page.navigate", serde_json::json!({ "url": format!("http://{addr}/events/{id}") }));
    let deadline = Instant::now() + Duration::from_secs(30);
    let shown = loop {
        let v = chrome.eval(
            r#"(async () => {
                const img = document.querySelector('section.snapshots img');
                if (!img || !img.complete || img.naturalWidth === 0) return null;
                const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
                let s = '';
                for (const b of bytes) s += String.fromCharCode(b);
                return [img.getAttribute('src'), img.naturalWidth, img.naturalHeight, btoa(s)];
            })()"#,
        );
        if !v.is_null() {
            break v;
        }
        assert!(Instant::now() < deadline, "the event page's snapshot did not load");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(shown[0], format!("/snapshots/{id}/0"));
    assert_eq!((shown[1].as_u64(), shown[2].as_u64()), (Some(512), Some(512)), "the frame at full size");
    let in_page = base64::engine::general_purpose::STANDARD.decode(shown[3].as_str().unwrap()).unwrap();
    assert_eq!(in_page, stored[best_key], "the page's image is the bucket's object");
    drop(chrome);

    // `show` copies the event's snapshots out of the bucket, the best one first.
    let out_dir = dir.path().join("show");
    let mut show = broker.cmd("subscribe");
    s3.env(&mut show);
    let show = show.args(["show", &id, "--db", &db, "--out", out_dir.to_str().unwrap()]).output().unwrap();
    assert!(show.status.success(), "{}", stderr(&show));
    let written: BTreeMap<String, Vec<u8>> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap())
        })
        .collect();
    let best_name = Path::new(best_key).file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(written.get(&format!("{id}-best-{best_name}")), Some(&stored[best_key]), "{:?}", written.keys());
    for (name, bytes) in &written {
        assert!(is_jpeg(bytes), "{name}");
        let key = format!("snaps/astro/{}", name.rsplit_once(&format!("{id}-")).unwrap().1.trim_start_matches("best-"));
        assert_eq!(Some(bytes), stored.get(&key), "{name} is the object {key}");
    }
    printed_everywhere.push(show);

    // Retention: a limit that holds just the two newest snapshots. The same group has nothing left to
    // read, so this run only sweeps (every second).
    let mut by_seq: Vec<(&String, &Vec<u8>)> = stored.iter().collect();
    by_seq.sort_by_key(|(k, _)| seq_of(k));
    let newest: BTreeSet<String> = by_seq.iter().rev().take(2).map(|(k, _)| k.to_string()).collect();
    let limit: usize = by_seq.iter().rev().take(2).map(|(_, b)| b.len()).sum();
    let limit = limit.to_string();
    let swept =
        store(&broker, &s3, &t, &db, &group, &place, &["--snapshot-max-bytes", &limit, "--snapshot-sweep", "1s"]);
    assert_eq!(summary_json(&stderr(&swept), "store")["frames"], 0, "nothing new was read");
    printed_everywhere.push(swept);
    let left: BTreeSet<String> = s3.objects(bucket, "snaps/").into_keys().collect();
    assert_eq!(left, newest, "the oldest deleted, the two newest kept (of {:?})", stored.keys());
    eprintln!("retention kept {} of {} snapshots ({limit} bytes)", left.len(), stored.len());

    // A deleted snapshot: the page answers 404 as for a removed file, `show` says it is gone.
    let oldest = by_seq[0].0;
    let n = {
        let (status, _, body) = http_get(&addr, &format!("/api/events/{id}"), None).unwrap();
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["snapshots"].as_array().unwrap().len()
    };
    let statuses: Vec<u16> =
        (0..n).map(|i| http_get(&addr, &format!("/snapshots/{id}/{i}"), None).unwrap().0).collect();
    assert!(statuses.contains(&404) && statuses.contains(&200), "{statuses:?}");
    let (_, _, gone) =
        http_get(&addr, &format!("/snapshots/{id}/{}", statuses.iter().position(|s| *s == 404).unwrap()), None)
            .unwrap();
    assert!(gone.contains("removed by retention"), "{gone}");
    let mut show = broker.cmd("subscribe");
    s3.env(&mut show);
    let out_dir = dir.path().join("show-after");
    let show = show.args(["show", &id, "--db", &db, "--out", out_dir.to_str().unwrap()]).output().unwrap();
    assert!(show.status.success(), "{}", stderr(&show));
    assert!(
        stdout(&show).contains(&format!("s3://{bucket}/{oldest}: gone (removed by retention?)")),
        "{}",
        stdout(&show)
    );
    printed_everywhere.push(show);
    printed_everywhere.push(web.stop());

    // An upload that fails (no such bucket) is a snapshot error: counted, logged, the frames stored anyway.
    let db2 = format!("sqlite://{}/nobucket.db", dir.path().display());
    let failed = store(&broker, &s3, &t, &db2, &unique("store"), "s3://no-such-bucket/snaps", &["--s3-retries", "1"]);
    let summary = summary_json(&stderr(&failed), "store");
    assert_eq!(summary["frames"], 20, "{summary}");
    assert_eq!(summary["snapshots"], 0, "{summary}");
    assert!(summary["snapshot_errors"].as_u64().unwrap() >= 1, "{summary}");
    let err = stderr(&failed);
    assert!(err.contains("kind=\"upload\"") && err.contains("s3://no-such-bucket/snaps/astro/"), "{err}");
    assert!(err.contains("no such bucket"), "{err}");
    assert!(query(&broker, &db2, &[]).iter().all(|r| r["snapshot"].is_null()));
    printed_everywhere.push(failed);

    // The secret key reached none of it, debug logs included (nor `--help`).
    let help = {
        let mut c = broker.cmd("subscribe");
        s3.env(&mut c);
        c.args(["store", "--help"]).output().unwrap()
    };
    printed_everywhere.push(help);
    for out in &printed_everywhere {
        for text in [stdout(out), stderr(out)] {
            assert!(!text.contains(SECRET_KEY), "the secret key was printed:\n{text}");
        }
    }
}

#[test]
fn a_snapshot_url_of_an_unknown_store_is_refused_at_start() {
    let out = Command::new(bin("subscribe")).args(["store", "--snapshot-dir", "ftp://host/snaps"]).output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("--snapshot-dir") && err.contains("unknown scheme") && err.contains("s3://"), "{err}");
}
