//! Alert emails: `subscribe store` mails each alert of a rule with `email` through a real SMTP server
//! (aiosmtpd): one that refuses the first attempt, with the event's snapshot attached; and servers over
//! STARTTLS and implicit TLS that want a login, their certificate checked against the test's CA.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use base64::Engine;
use common::smtp::SmtpServer;
use common::subscribers::{Topics, astronaut_detected, detect_all};
use common::tls::TestCa;
use common::*;

/// The store's command line, run until idle for 4 s.
fn store_cmd<'a>(t: &'a Topics, db: &'a str, group: &'a str, snaps: &'a str) -> Vec<&'a str> {
    let mut args = t.store_args(db, group, snaps);
    args.extend(["--idle-exit", "4s"]);
    args
}

/// The value of a header of a raw message (first occurrence).
fn header<'a>(eml: &'a str, name: &str) -> Option<&'a str> {
    eml.lines().take_while(|l| !l.trim().is_empty()).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The decoded body of the message's image/jpeg part.
fn jpeg_attachment(eml: &str) -> Option<Vec<u8>> {
    let start = eml.find("Content-Type: image/jpeg")?;
    let part = &eml[start..];
    let body_at = part.find("\r\n\r\n").map(|i| i + 4).or_else(|| part.find("\n\n").map(|i| i + 2))?;
    let b64: String =
        part[body_at..].lines().take_while(|l| !l.starts_with("--")).map(str::trim).collect::<Vec<_>>().concat();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

#[test]
fn alerts_are_mailed_once_each_with_the_snapshot_after_the_server_refused_the_first_attempt() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("astronaut.mp4");
    still_clip(&media("astronaut.png"), 3, 5, &clip);
    let t = Topics::new();
    // Real-time pacing: capture times span the clip's 3 s, which is what the rule's duration is measured in.
    detect_all(&broker, &t, "astro", &clip, &["--realtime"], 15);

    let smtp = SmtpServer::start(&dir.path().join("mail"));
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"astro-person\"\ncamera = \"astro\"\nlabel = \"person\"\nmin_duration = \"1s\"\n\
         email = [\"ops@example.com\"]\n",
    )
    .unwrap();
    let db = format!("sqlite://{}/fw.db", dir.path().display());
    let snaps = dir.path().join("snaps");
    let smtp_url = smtp.url();
    let group = unique("email-store");
    let mut args = store_cmd(&t, &db, &group, snaps.to_str().unwrap());
    args.extend(["--rules", rules.to_str().unwrap(), "--smtp-url", &smtp_url, "--smtp-from", "cams@example.com"]);
    let out = broker.cmd("subscribe").args(&args).output().unwrap();
    assert!(out.status.success(), "store failed: {}", stderr(&out));

    let alerts: Vec<serde_json::Value> = read_all(&broker, &t.alerts, Duration::from_secs(10))
        .iter()
        .map(|m| serde_json::from_slice(rdkafka::Message::payload(m).unwrap()).unwrap())
        .collect();
    assert!(!alerts.is_empty(), "the astronaut raises an alert: {}", stderr(&out));

    let deadline = Instant::now() + Duration::from_secs(20);
    while smtp.messages().len() < alerts.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let mails = smtp.messages();
    assert_eq!(mails.len(), alerts.len(), "one email per alert; server log {:?}", smtp.log());
    let log = smtp.log();
    assert_eq!(log.iter().filter(|l| l.starts_with("refused 451")).count(), 1, "{log:?}");
    assert!(stderr(&out).contains("alert email failed; will retry"), "{}", stderr(&out));

    let mut ids: BTreeSet<String> = alerts.iter().map(|a| a["id"].as_str().unwrap().to_string()).collect();
    for eml in &mails {
        let id = header(eml, "X-Framewire-Alert-Id").expect("alert id header").to_string();
        assert!(ids.remove(&id), "an email for alert {id}, once");
        assert_eq!(header(eml, "Message-ID"), Some(format!("<{id}@framewire>").as_str()));
        assert_eq!(header(eml, "To"), Some("ops@example.com"));
        assert_eq!(header(eml, "From"), Some("cams@example.com"));
        let subject = header(eml, "Subject").unwrap();
        assert!(
            subject.contains("astro-person") && subject.contains("person") && subject.contains("astro"),
            "{subject}"
        );
        assert!(eml.contains("Camera:   astro") && eml.contains("Label:    person"), "{eml}");
        let jpeg = jpeg_attachment(eml).expect("an image/jpeg attachment");
        assert_eq!(&jpeg[..3], &[0xFF, 0xD8, 0xFF], "JPEG start-of-image");
        assert_eq!(&jpeg[jpeg.len() - 2..], &[0xFF, 0xD9], "JPEG end-of-image");
        assert!(jpeg.windows(2).any(|w| w == [0xFF, 0xC0] || w == [0xFF, 0xC2]), "a JPEG frame header");
        println!("email for alert {id}: {} bytes, snapshot {} bytes", eml.len(), jpeg.len());
    }

    // The same detections stored again by a new group (a replay) raise the same alerts: already stored, they
    // are not mailed again.
    let replay_group = unique("email-replay");
    let mut replay = store_cmd(&t, &db, &replay_group, snaps.to_str().unwrap());
    replay.extend(["--rules", rules.to_str().unwrap(), "--smtp-url", &smtp_url]);
    let again = broker.cmd("subscribe").args(&replay).output().unwrap();
    assert!(again.status.success(), "replay failed: {}", stderr(&again));
    assert_eq!(smtp.messages().len(), mails.len(), "a replay mailed the alerts again");
    println!("{} alerts, {} emails accepted, 1 refused with 451, 0 more after a replay", alerts.len(), mails.len());
}

#[test]
fn a_rule_with_email_and_no_smtp_server_is_refused_at_start() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, "[[rule]]\nname = \"mail-me\"\nlabel = \"person\"\nemail = [\"ops@example.com\"]\n")
        .unwrap();
    let t = Topics::new();
    let db = format!("sqlite://{}/fw.db", dir.path().display());
    let mut args = store_cmd(&t, &db, "email-store", "off");
    args.extend(["--rules", rules.to_str().unwrap()]);
    let out = broker.cmd("subscribe").args(&args).env_remove("FRAMEWIRE_SMTP_URL").output().unwrap();
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("mail-me") && e.contains("--smtp-url") && e.contains("rules.toml"), "{e}");

    // A password over an unencrypted connection is refused, and not printed.
    args.extend(["--smtp-url", "smtp://fw:hunter2@127.0.0.1:2525"]);
    let out = broker.cmd("subscribe").args(&args).output().unwrap();
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("--smtp-url") && e.contains("unencrypted") && !e.contains("hunter2"), "{e}");
}

#[test]
fn alerts_are_mailed_over_starttls_and_implicit_tls_with_a_login_and_the_certificate_checked() {
    const PASSWORD: &str = "mail-pass-5e1d";
    let (broker, dir, t, _) = astronaut_detected();
    let ca = TestCa::new(dir.path());
    let cert = ca.issue(dir.path(), "smtp", &["127.0.0.1"]);
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, "[[rule]]\nname = \"astro\"\nlabel = \"person\"\nemail = [\"ops@example.com\"]\n").unwrap();
    let run_store = |name: &str, url: &str, extra: &[&str]| {
        let db = format!("sqlite://{}/{name}.db", dir.path().display());
        let group = unique(name);
        let snaps = dir.path().join(format!("{name}-snaps"));
        let mut args = t.store_args(&db, &group, snaps.to_str().unwrap());
        args.extend(["--idle-exit", "4s", "--rules", rules.to_str().unwrap()]);
        args.extend(extra);
        // The password only in the environment, as a user passes it; the log at debug, lettre's included.
        let out = broker.cmd("subscribe").args(&args).env("FRAMEWIRE_SMTP_URL", url).env("RUST_LOG", "debug").output();
        let out = out.unwrap();
        let printed = format!("{}{}", stdout(&out), stderr(&out));
        assert!(out.status.success(), "{printed}");
        assert!(!printed.contains(PASSWORD), "the SMTP password was printed");
        printed
    };
    let ca_path = ca.cert.to_str().unwrap();

    for mode in ["starttls", "implicit"] {
        let smtp = SmtpServer::start_tls(&dir.path().join(mode), mode, &cert, &format!("fw:{PASSWORD}"));
        let url = match mode {
            "starttls" => format!("smtp://fw:{PASSWORD}@127.0.0.1:{}?tls=required", smtp.port),
            _ => format!("smtps://fw:{PASSWORD}@127.0.0.1:{}", smtp.port),
        };
        let printed = run_store(mode, &url, &["--smtp-ca", ca_path]);
        let mails = smtp.messages();
        assert_eq!(mails.len(), 1, "one alert, one email over {mode}: {printed}\n{:?}", smtp.log());
        assert!(smtp.log().iter().any(|l| l.starts_with("auth") && l.ends_with(" ok")), "{:?}", smtp.log());
        assert!(jpeg_attachment(&mails[0]).is_some(), "the snapshot is attached");
        println!("{mode}: 1 email accepted after a login, certificate checked against the test CA");
    }

    // Without the CA the server's certificate is not trusted: nothing is sent, the reason is logged.
    let smtp = SmtpServer::start_tls(&dir.path().join("untrusted"), "starttls", &cert, &format!("fw:{PASSWORD}"));
    let url = format!("smtp://fw:{PASSWORD}@127.0.0.1:{}?tls=required", smtp.port);
    let printed = run_store("untrusted", &url, &["--email-retries", "1"]);
    assert!(smtp.messages().is_empty(), "mail sent to a server whose certificate is not trusted");
    let given_up = printed.lines().find(|l| l.contains("alert email given up")).unwrap_or_else(|| panic!("{printed}"));
    assert!(given_up.to_lowercase().contains("certificate"), "{given_up}");
    assert!(!given_up.contains("Connection error: Connection error"), "the cause said once: {given_up}");
    println!("untrusted certificate: not sent; {}", given_up.trim());
}
