//! `subscribe store`, `query`, `show` and `web --db` against PostgreSQL over TLS: Debian's server with
//! `ssl = on`, a certificate from a CA the test makes, and a pg_hba.conf that takes TCP connections only over
//! TLS with a password (SCRAM). Each `sslmode` connects or fails as libpq documents; every failure exits
//! non-zero with one line that names the server and the cause, and never the password.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::postgres::{Postgres, Setup};
use common::tls::TestCa;
use common::*;

const PASSWORD: &str = "pg-S3cret-pw";

/// A server that takes TCP connections only over TLS, with a certificate for `localhost` alone; its CA. The
/// user `certuser` logs in with a client certificate from that CA, everyone else with a password.
fn tls_server(dir: &Path) -> (Postgres, TestCa) {
    let ca = TestCa::new(dir);
    let cert = ca.issue(dir, "pg", &["localhost"]);
    let pg = Postgres::start_with(&Setup {
        conf: &["ssl = on", "ssl_cert_file = 'pg.pem'", "ssl_key_file = 'pg-key.pem'", "ssl_ca_file = 'ca.pem'"],
        hba: Some(
            "local all all trust\n\
             hostssl all certuser 127.0.0.1/32 cert\n\
             hostssl all certuser ::1/128 cert\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n\
             hostssl all all ::1/128 scram-sha-256\n",
        ),
        files: &[&cert.cert, &cert.key, &ca.cert],
    });
    pg.psql(&format!("ALTER USER postgres PASSWORD '{PASSWORD}'"));
    pg.psql("CREATE ROLE certuser LOGIN SUPERUSER");
    (pg, ca)
}

fn url(pg: &Postgres, host: &str, query: &str) -> String {
    format!("postgres://postgres:{PASSWORD}@{host}:{}/postgres?{query}", pg.port)
}

fn root(ca: &TestCa) -> String {
    format!("sslrootcert={}", ca.cert.display())
}

/// `subscribe ARGS`, with a HOME of its own: libpq's defaults (`~/.postgresql/root.crt`) are looked for
/// there, and the developer's own must not count.
fn subscribe(broker: Option<&Broker>, home: &Path, args: &[&str]) -> Output {
    let mut cmd = match broker {
        Some(b) => b.cmd("subscribe"),
        None => std::process::Command::new(bin("subscribe")),
    };
    cmd.args(args).env("HOME", home).output().unwrap()
}

/// `subscribe query` against `db`: it connects, creates the tables if need be, and lists what is stored.
fn query(home: &Path, db: &str) -> Output {
    subscribe(None, home, &["query", "--db", db, "--json"])
}

fn connects(home: &Path, db: &str) {
    let out = query(home, db);
    assert!(out.status.success(), "{db}: {}", stderr(&out));
}

/// Runs `query` against `db`, which must fail with `cause` on one line; returns that line.
fn fails(home: &Path, db: &str, cause: &str) -> String {
    let out = query(home, db);
    let err = stderr(&out);
    assert!(!out.status.success(), "{db} connected");
    assert!(!err.contains(PASSWORD), "the password leaked: {err}");
    let line = err.lines().find(|l| l.starts_with("subscribe: error: ")).unwrap_or_else(|| panic!("{err}"));
    assert!(line.contains(cause), "{db}:\n{line}\nexpected: {cause}");
    println!("{line}");
    line.to_string()
}

#[test]
fn verify_full_stores_detections_that_query_show_and_web_read_back_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let (pg, ca) = tls_server(dir.path());
    let broker = Broker::start();
    let clip = dir.path().join("astronaut.mp4");
    still_clip(&media("astronaut.png"), 2, 5, &clip);
    let (frames, dets) = (unique("frames"), unique("dets"));
    let detect = broker.detect(&frames, &dets, &unique("group"));
    broker.ingest_ok("astro", &frames, &clip, &[]);
    let detections = broker.read_detections(&dets, 10, Duration::from_secs(120));
    drop(detect);
    assert_eq!(detections.len(), 10, "detect answered every frame");
    let boxes: usize = detections.iter().map(|d| d.boxes.len()).sum();
    assert!(detections.iter().all(|d| d.boxes.iter().any(|b| b.label == "person")), "{detections:?}");

    let db = url(&pg, "localhost", &format!("sslmode=verify-full&{}", root(&ca)));
    let snaps = dir.path().join("snaps");
    let (events, alerts) = (unique("events"), unique("alerts"));
    let store = subscribe(
        Some(&broker),
        home.path(),
        &[
            "store",
            "--db",
            &db,
            "--topic",
            &dets,
            "--frames-topic",
            &frames,
            "--group",
            &unique("store"),
            "--events-topic",
            &events,
            "--alerts-topic",
            &alerts,
            "--snapshot-dir",
            snaps.to_str().unwrap(),
            "--idle-exit",
            "4s",
        ],
    );
    let err = stderr(&store);
    assert!(store.status.success(), "{err}");
    assert!(err.contains("stored 10 frames"), "{err}");
    assert!(!err.contains(PASSWORD), "the password leaked: {err}");
    // pg_hba.conf takes TCP connections only over TLS: the rows came that way.
    assert_eq!(pg.psql("SELECT count(*) FROM boxes").trim(), boxes.to_string());

    let rows = subscribe(None, home.path(), &["query", "--db", &db, "--json", "--limit", "100000"]);
    assert!(rows.status.success(), "{}", stderr(&rows));
    assert_eq!(stdout(&rows).lines().count(), boxes, "{}", stdout(&rows));
    let listed = subscribe(None, home.path(), &["query", "--events", "--json", "--db", &db]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let event: serde_json::Value = serde_json::from_str(stdout(&listed).lines().next().unwrap()).unwrap();
    assert_eq!(event["label"], "person", "{event}");
    let id = event["id"].as_str().unwrap();
    let out = dir.path().join("shown");
    let shown = subscribe(None, home.path(), &["show", id, "--db", &db, "--out", out.to_str().unwrap()]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    assert!(stdout(&shown).contains("camera     astro"), "{}", stdout(&shown));
    assert!(std::fs::read_dir(&out).unwrap().count() >= 1, "show copied the event's snapshots");

    let addr = format!("127.0.0.1:{}", free_port());
    let _web = broker
        .service("subscribe", &["web", "--listen", &addr, "--db", &db, "--topic", &dets, "--frames-topic", &frames]);
    wait_listening(&addr);
    let (status, _, body) = http_get(&addr, "/api/events", None).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(id), "{body}");
}

#[test]
fn each_sslmode_connects_or_fails_as_libpq_documents() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let (pg, ca) = tls_server(dir.path());
    let other = TestCa::new(dir.path());
    let h = home.path();
    let port = pg.port;

    connects(h, &url(&pg, "localhost", &format!("sslmode=verify-full&{}", root(&ca))));
    // verify-ca checks the chain and not the name: the certificate names only localhost.
    connects(h, &url(&pg, "127.0.0.1", &format!("sslmode=verify-ca&{}", root(&ca))));
    // require, prefer (libpq's default) and allow encrypt without a root certificate, checking nothing; allow
    // only once the server has refused plaintext.
    for q in ["sslmode=require", "sslmode=prefer", "", "sslmode=allow"] {
        connects(h, &url(&pg, "127.0.0.1", q));
    }

    fails(
        h,
        &url(&pg, "localhost", &format!("sslmode=verify-full&{}", root(&other))),
        &format!(
            "PostgreSQL at localhost:{port}: TLS certificate verify failed (not signed by a CA in {}): check sslrootcert",
            other.cert.display()
        ),
    );
    fails(
        h,
        &url(&pg, "127.0.0.1", &format!("sslmode=verify-full&{}", root(&ca))),
        &format!(
            "PostgreSQL at 127.0.0.1:{port}: server certificate is for localhost, not 127.0.0.1 (sslmode=verify-full)"
        ),
    );
    // libpq's rule: require with a root certificate is verify-ca.
    fails(
        h,
        &url(&pg, "127.0.0.1", &format!("sslmode=require&{}", root(&other))),
        &format!("PostgreSQL at 127.0.0.1:{port}: TLS certificate verify failed (not signed by a CA in"),
    );
    fails(
        h,
        &url(&pg, "localhost", "sslmode=verify-full"),
        &format!(
            "PostgreSQL at localhost:{port}: sslmode=verify-full needs the CA certificate that signed the server's: \
             give sslrootcert=PATH (the default, {}, does not exist)",
            h.join(".postgresql/root.crt").display()
        ),
    );
    // The server's own refusal of plaintext.
    fails(h, &url(&pg, "127.0.0.1", "sslmode=disable"), "no encryption");
    fails(h, &url(&pg, "127.0.0.1", "sslmode=verify"), "sslmode=verify is not one of disable, allow, prefer,");

    // A client certificate (the user's name is its CN) in place of a password.
    let client = ca.issue(dir.path(), "certuser", &["certuser"]);
    let as_certuser = |q: &str| format!("postgres://certuser@localhost:{port}/postgres?{q}");
    let pair = format!("sslcert={}&sslkey={}", client.cert.display(), client.key.display());
    connects(h, &as_certuser(&format!("sslmode=verify-full&{}&{pair}", root(&ca))));
    fails(
        h,
        &as_certuser(&format!("sslmode=verify-full&{}", root(&ca))),
        "connection requires a valid client certificate",
    );

    // A root.crt in ~/.postgresql is libpq's default CA, and makes require check it.
    std::fs::create_dir(h.join(".postgresql")).unwrap();
    std::fs::copy(&ca.cert, h.join(".postgresql/root.crt")).unwrap();
    connects(h, &url(&pg, "localhost", "sslmode=verify-full"));
    std::fs::copy(&other.cert, h.join(".postgresql/root.crt")).unwrap();
    fails(h, &url(&pg, "127.0.0.1", "sslmode=require"), "TLS certificate verify failed");
}

#[test]
fn tls_against_a_server_without_it_fails_clearly_and_prefer_goes_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let pg = Postgres::start();
    let ca = TestCa::new(dir.path());
    let port = pg.port;
    let at = |host: &str, q: &str| format!("postgres://postgres:{PASSWORD}@{host}:{port}/postgres?{q}");
    fails(
        home.path(),
        &at("127.0.0.1", "sslmode=require"),
        &format!("PostgreSQL at 127.0.0.1:{port}: the server does not offer TLS (sslmode=require)"),
    );
    fails(
        home.path(),
        &at("localhost", &format!("sslmode=verify-full&{}", root(&ca))),
        &format!("PostgreSQL at localhost:{port}: the server does not offer TLS (sslmode=verify-full)"),
    );
    connects(home.path(), &at("127.0.0.1", "sslmode=prefer"));
    connects(home.path(), &at("127.0.0.1", "sslmode=allow"));
}
