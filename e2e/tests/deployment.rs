//! The deployment files, checked without a Docker engine: both compose files (the plain one and
//! `docker-compose.secure.yml`, Kafka over SASL_SSL, PostgreSQL over TLS, the web view over HTTPS), the
//! script that makes the secured one's certificates and secrets, Prometheus and Grafana.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

const SECURE: &str = "docker-compose.secure.yml";

/// `docker-compose -f FILE config`: the file as docker-compose reads it (merged, interpolated, normalised).
fn compose_config(file: &str) -> String {
    let out = Command::new("docker-compose")
        .args(["-f", file, "config"])
        .current_dir(root())
        .output()
        .expect("docker-compose (make setup installs it)");
    assert!(out.status.success(), "docker-compose rejects {file}: {}", stderr(&out));
    stdout(&out)
}

/// [`compose_config`] as JSON, read with the YAML parser docker-compose itself uses (Debian's docker-compose
/// is Python with PyYAML), so the checks below see what it sees, not a text search.
fn compose_json(file: &str) -> Value {
    let mut python = Command::new("/usr/bin/python3")
        .args(["-c", "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 (Debian's docker-compose runs on it)");
    python.stdin.take().unwrap().write_all(compose_config(file).as_bytes()).unwrap();
    let out = python.wait_with_output().unwrap();
    assert!(out.status.success(), "PyYAML (python3-yaml, a dependency of docker-compose): {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The services that run framewire's image, by name.
fn framewire_services(config: &Value) -> BTreeMap<String, Value> {
    let services = config["services"].as_object().expect("services");
    services.iter().filter(|(_, s)| s["image"] == "framewire:latest").map(|(n, s)| (n.clone(), s.clone())).collect()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

/// The secrets a service mounts (docker-compose normalises them to `{source: NAME}`).
fn secrets_of(service: &Value) -> BTreeSet<String> {
    let list = service["secrets"].as_array().cloned().unwrap_or_default();
    list.iter().map(|s| s["source"].as_str().or(s.as_str()).expect("secret name").to_string()).collect()
}

/// `KEY=VALUE` lines of a Java properties file (Kafka's).
fn properties(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_once('=').unwrap_or_else(|| panic!("not key=value in {}: {l}", path.display())))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn docker_compose_file_is_valid_and_wires_the_services_to_kafka() {
    let config = compose_config("docker-compose.yml");
    for service in ["kafka:", "detect:", "tail:", "ingest:", "store:", "web:", "postgres:"] {
        assert!(config.contains(&format!("  {service}")), "service {service} missing:\n{config}");
    }
    assert!(config.contains("KAFKA_PROCESS_ROLES: broker,controller"), "Kafka must run in KRaft mode");
    assert!(config.contains("FRAMEWIRE_BROKERS: kafka:9092"));
    // The store writes to the compose PostgreSQL; the web view on a public port cannot run without a token.
    assert!(config.contains("FRAMEWIRE_DB: postgres://framewire:framewire@postgres:5432/framewire"));
    assert!(config.contains("0.0.0.0:8080") && config.contains("FRAMEWIRE_WEB_TOKEN"), "{config}");
    // The broker must accept what ingest produces by default (4,000,000 bytes).
    let max: u64 = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("KAFKA_MESSAGE_MAX_BYTES:"))
        .and_then(|v| v.trim().trim_matches('\'').trim_matches('"').parse().ok())
        .expect("KAFKA_MESSAGE_MAX_BYTES set");
    assert!(max >= 4_000_000, "{max}");
}

#[test]
fn the_grafana_dashboard_is_well_formed_and_uses_the_provisioned_datasource() {
    let text = std::fs::read_to_string(root().join("deploy/grafana/dashboards/framewire.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    assert_eq!(dash["uid"], "framewire");
    let datasources =
        std::fs::read_to_string(root().join("deploy/grafana/provisioning/datasources/prometheus.yml")).unwrap();
    assert!(datasources.contains("uid: prometheus") && datasources.contains("url: http://prometheus:9090"));
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10, "{} panels", panels.len());
    let mut ids = std::collections::HashSet::new();
    for p in panels {
        let title = p["title"].as_str().expect("title");
        assert!(ids.insert(p["id"].as_u64().expect("id")), "duplicate id in {title}");
        assert_eq!(p["datasource"]["uid"], "prometheus", "{title}");
        for k in ["h", "w", "x", "y"] {
            assert!(p["gridPos"][k].is_u64(), "{title}: gridPos.{k}");
        }
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}");
        for t in targets {
            let expr = t["expr"].as_str().expect("expr");
            assert!(!metrics_in(expr).is_empty(), "{title}: {expr} reads no framewire metric");
            assert_eq!(expr.matches('(').count(), expr.matches(')').count(), "{title}: {expr}");
        }
    }
    // Every binary the dashboard reads is scraped.
    let prom = std::fs::read_to_string(root().join("deploy/prometheus.yml")).unwrap();
    for job in ["job_name: ingest", "job_name: detect", "job_name: store", "job_name: web"] {
        assert!(prom.contains(job), "{job}");
    }
}

#[test]
fn promtool_accepts_the_prometheus_config() {
    let out = Command::new("promtool")
        .args(["check", "config"])
        .arg(root().join("deploy/prometheus.yml"))
        .output()
        .expect("promtool (make setup installs Debian's prometheus package)");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

#[test]
fn compose_runs_prometheus_grafana_and_two_detect_replicas() {
    let config = compose_config("docker-compose.yml");
    for service in ["prometheus:", "grafana:"] {
        assert!(config.contains(&format!("  {service}")), "service {service} missing");
    }
    assert!(config.contains("deploy/prometheus.yml") && config.contains("deploy/grafana/dashboards"));
    assert!(config.contains("replicas: 2"), "detect should start with two replicas");
    // Replicas must not bind fixed host ports, or `--scale detect=4` fails.
    let detect: Vec<&str> = config
        .lines()
        .skip_while(|l| *l != "  detect:")
        .skip(1)
        .take_while(|l| l.starts_with("   ") || l.is_empty())
        .collect();
    assert!(!detect.is_empty() && !detect.iter().any(|l| l.trim() == "ports:"), "{detect:?}");
}

#[test]
fn compose_wires_minio_uploads_to_ingest_and_store_snapshots_to_a_bucket() {
    let config = compose_json("docker-compose.yml");
    let services = &config["services"];
    let env = |name: &str, key: &str| services[name]["environment"][key].as_str().unwrap_or_default().to_string();

    // MinIO's Kafka notification target: a target id, the compose broker and a topic.
    let minio = &services["minio"]["environment"];
    let target = minio
        .as_object()
        .expect("minio environment")
        .keys()
        .find_map(|k| k.strip_prefix("MINIO_NOTIFY_KAFKA_ENABLE_"))
        .expect("a MinIO Kafka notification target");
    assert_eq!(minio[format!("MINIO_NOTIFY_KAFKA_ENABLE_{target}")], "on");
    assert_eq!(minio[format!("MINIO_NOTIFY_KAFKA_BROKERS_{target}")], "kafka:9092");
    let topic = minio[format!("MINIO_NOTIFY_KAFKA_TOPIC_{target}")].as_str().expect("target topic");
    assert!(minio[format!("MINIO_NOTIFY_KAFKA_QUEUE_DIR_{target}")].is_string(), "events must wait out a Kafka outage");

    // The init service binds the uploads bucket's object-created events to that target.
    let init = strings(&services["minio-init"]["command"]).join("\n");
    let arn = format!("arn:minio:sqs::{target}:kafka");
    let bind = init.lines().find(|l| l.contains("mc event add")).unwrap_or_else(|| panic!("no mc event add: {init}"));
    assert!(bind.contains("local/uploads") && bind.contains(&arn) && bind.contains("--event put"), "{bind}");
    assert!(init.contains("mc mb --ignore-existing local/uploads"), "{init}");
    // The topic exists before MinIO publishes to it: the broker does not create topics by itself.
    let topic_cmd = strings(&services["uploads-topic"]["command"]);
    assert!(topic_cmd.windows(2).any(|w| w == ["--topic", topic]), "{topic_cmd:?}");
    assert_eq!(services["minio"]["depends_on"]["uploads-topic"]["condition"], "service_completed_successfully");

    // ingest reads those notifications from that topic and fetches the objects from MinIO.
    let ingest = strings(&services["ingest-uploads"]["command"]);
    assert!(ingest.windows(2).any(|w| w == ["--uploads", topic]), "{ingest:?}");
    // The store writes snapshots to a MinIO bucket that minio-init makes; the web view reads them back there.
    let dir = env("store", "FRAMEWIRE_SNAPSHOT_DIR");
    let bucket = dir.strip_prefix("s3://").and_then(|r| r.split('/').next()).unwrap_or_else(|| panic!("{dir}"));
    assert!(init.contains(&format!("mc mb --ignore-existing local/{bucket}")), "{init}");
    for name in ["ingest-uploads", "store", "web"] {
        assert_eq!(env(name, "FRAMEWIRE_S3_ENDPOINT"), "http://minio:9000", "{name}");
        assert!(!env(name, "AWS_ACCESS_KEY_ID").is_empty() && !env(name, "AWS_SECRET_ACCESS_KEY").is_empty(), "{name}");
        assert_eq!(services[name]["depends_on"]["minio-init"]["condition"], "service_completed_successfully", "{name}");
    }
    // The credentials the services sign with are MinIO's own user.
    assert_eq!(env("store", "AWS_ACCESS_KEY_ID"), minio["MINIO_ROOT_USER"].as_str().unwrap());
    assert_eq!(env("store", "AWS_SECRET_ACCESS_KEY"), minio["MINIO_ROOT_PASSWORD"].as_str().unwrap());
}

#[test]
fn the_secure_compose_file_runs_every_framewire_service_on_sasl_ssl_and_every_store_on_tls() {
    let config = compose_json(SECURE);
    let services = framewire_services(&config);
    // The same framewire services as the plain deployment, each of them secured.
    // ingest-uploads reads MinIO's notifications; the secured file has no MinIO (see its header).
    let plain: BTreeSet<String> = framewire_services(&compose_json("docker-compose.yml"))
        .into_keys()
        .filter(|name| name != "ingest-uploads")
        .collect();
    assert_eq!(services.keys().cloned().collect::<BTreeSet<_>>(), plain);
    let declared = config["secrets"].as_object().expect("top-level secrets");
    for (name, s) in &services {
        let env = &s["environment"];
        assert_eq!(env["FRAMEWIRE_BROKERS"], "kafka:9092", "{name}");
        let options: BTreeSet<&str> =
            env["FRAMEWIRE_KAFKA_OPTIONS"].as_str().unwrap_or_default().lines().map(str::trim).collect();
        for want in ["security.protocol=SASL_SSL", "sasl.mechanisms=SCRAM-SHA-512", "ssl.ca.location=/certs/ca.pem"] {
            assert!(options.contains(want), "{name}: FRAMEWIRE_KAFKA_OPTIONS lacks {want}: {options:?}");
        }
        // The user and password come from a secret, through the entrypoint that reads FRAMEWIRE_*_FILE.
        assert_eq!(env["FRAMEWIRE_KAFKA_OPTIONS_FILE"], "/run/secrets/kafka_credentials", "{name}");
        assert!(secrets_of(s).contains("kafka_credentials"), "{name}");
        assert_eq!(strings(&s["entrypoint"])[..2], ["/bin/sh", "/etc/framewire/with-secrets.sh"], "{name}");
        let volumes = strings(&s["volumes"]);
        for mount in
            ["/deploy/secure/with-secrets.sh:/etc/framewire/with-secrets.sh:ro", "/certs/ca.pem:/certs/ca.pem:ro"]
        {
            assert!(volumes.iter().any(|v| v.ends_with(mount)), "{name} does not mount {mount}: {volumes:?}");
        }
        for secret in secrets_of(s) {
            let file = declared.get(&secret).and_then(|d| d["file"].as_str());
            let file = file.unwrap_or_else(|| panic!("{name} mounts the undeclared secret {secret}"));
            assert!(Path::new(file).starts_with(root().join("secrets")), "{secret} is not under ./secrets: {file}");
        }
    }

    // Kafka: SASL_SSL is its only listener beyond the container's loopback, with SCRAM-SHA-512 users made
    // before it starts; its keystore password is not in its properties.
    let kafka = &config["services"]["kafka"];
    assert!(kafka["ports"].is_null(), "the services reach Kafka on the compose network: {kafka}");
    let props = properties(&root().join("deploy/secure/kafka.properties"));
    let protocol: BTreeMap<&str, &str> =
        props["listener.security.protocol.map"].split(',').filter_map(|p| p.split_once(':')).collect();
    let exposed: Vec<(&str, &str)> = props["listeners"]
        .split(',')
        .map(|l| l.split_once("://").unwrap_or_else(|| panic!("listener {l}")))
        .filter(|(_, addr)| !addr.starts_with("127.0.0.1:"))
        .map(|(name, _)| (name, protocol[name]))
        .collect();
    assert_eq!(exposed, [("SASL_SSL", "SASL_SSL")], "only SASL_SSL may listen beyond the loopback: {props:?}");
    assert!(props["advertised.listeners"].split(',').any(|l| l == "SASL_SSL://kafka:9092"), "{props:?}");
    assert_eq!(props["sasl.enabled.mechanisms"], "SCRAM-SHA-512");
    assert_eq!(props["ssl.keystore.location"], "/run/secrets/kafka_keystore");
    assert!(props["message.max.bytes"].parse::<u64>().unwrap() >= 4_000_000, "ingest produces up to 4,000,000 bytes");
    assert!(!props.keys().any(|k| k.contains("password")), "{props:?}");
    let start = std::fs::read_to_string(root().join("deploy/secure/kafka-start.sh")).unwrap();
    assert!(start.contains("--add-scram \"SCRAM-SHA-512=[name=$user,password=$password]\""), "{start}");
    let want: BTreeSet<String> =
        ["kafka_credentials", "kafka_keystore", "kafka_keystore_password"].map(String::from).into();
    assert!(secrets_of(kafka).is_superset(&want), "{kafka}");

    // PostgreSQL: TLS on, and over the network only TLS connections are let in.
    let postgres = &config["services"]["postgres"];
    let command = strings(&postgres["command"]);
    for want in ["ssl=on", "hba_file=/etc/framewire/pg_hba.conf", "ssl_cert_file=/certs/postgres.pem"] {
        assert!(command.contains(&want), "postgres: {want} missing from {command:?}");
    }
    assert!(postgres["environment"]["POSTGRES_PASSWORD"].is_null(), "{postgres}");
    assert_eq!(postgres["environment"]["POSTGRES_PASSWORD_FILE"], "/run/secrets/postgres_password");
    let hba = std::fs::read_to_string(root().join("deploy/secure/pg_hba.conf")).unwrap();
    let kinds: BTreeSet<&str> =
        hba.lines().filter(|l| !l.trim_start().starts_with('#')).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(kinds, BTreeSet::from(["hostssl", "local"]), "network connections must be hostssl only:\n{hba}");
    // The store and the web view get their database URL (sslmode=verify-full, see make-secrets.sh) from a secret.
    for name in ["store", "web"] {
        let env = &services[name]["environment"];
        assert!(env["FRAMEWIRE_DB"].is_null(), "{name}: the URL holds a password: {env}");
        assert_eq!(env["FRAMEWIRE_DB_FILE"], "/run/secrets/framewire_db", "{name}");
    }

    // The web view: HTTPS on all interfaces, with a token from a secret.
    let web = &services["web"];
    let command = strings(&web["command"]);
    for want in ["--tls-cert", "/certs/web.pem", "--tls-key", "/run/secrets/web_tls_key", "0.0.0.0:8443"] {
        assert!(command.contains(&want), "web: {want} missing from {command:?}");
    }
    assert_eq!(web["environment"]["FRAMEWIRE_WEB_TOKEN_FILE"], "/run/secrets/web_token");
    assert!(secrets_of(web).contains("web_token") && secrets_of(web).contains("web_tls_key"), "{web}");
}

#[test]
fn the_secure_compose_file_holds_no_secret_and_git_and_docker_builds_skip_the_generated_ones() {
    let config = compose_json(SECURE);
    let mut found = Vec::new();
    visit(&config, "", &mut |key, value| {
        let upper = key.to_ascii_uppercase();
        let secret_name = ["PASSWORD", "TOKEN", "SECRET", "CREDENTIAL"].iter().any(|w| upper.contains(w));
        if secret_name && !upper.ends_with("_FILE") && !value.is_empty() {
            found.push(format!("{key}: {value}"));
        }
        if value.contains("password=") || value.contains("sasl.password") || url_credentials(value) {
            found.push(format!("{key}: {value}"));
        }
    });
    assert!(found.is_empty(), "secrets written in {SECURE} (they belong in ./secrets): {found:#?}");
    // What make-secrets.sh writes never reaches git, nor the image's build context.
    for ignore in [".gitignore", ".dockerignore"] {
        let text = std::fs::read_to_string(root().join(ignore)).unwrap();
        for dir in ["certs", "secrets"] {
            assert!(text.lines().any(|l| l.trim_matches('/') == dir), "{ignore} does not list {dir}/");
        }
    }
}

/// Calls `f(key, value)` for every string in `v`, `key` being the name it sits under (the variable name
/// for an environment entry).
fn visit(v: &Value, key: &str, f: &mut dyn FnMut(&str, &str)) {
    match v {
        Value::String(s) => f(key, s),
        Value::Array(items) => items.iter().for_each(|i| visit(i, key, f)),
        Value::Object(map) => map.iter().for_each(|(k, i)| visit(i, k, f)),
        _ => {}
    }
}

/// Whether `s` holds a URL with `user:password@`.
fn url_credentials(s: &str) -> bool {
    s.match_indices("://").any(|(i, _)| {
        let rest = &s[i + 3..];
        let authority = &rest[..rest.find(['/', '?', '#', ' ']).unwrap_or(rest.len())];
        authority.rsplit_once('@').is_some_and(|(userinfo, _)| userinfo.contains(':'))
    })
}

/// Runs deploy/secure/make-secrets.sh into `dir`.
fn make_secrets(dir: &Path) -> std::process::Output {
    Command::new("bash").arg(root().join("deploy/secure/make-secrets.sh")).arg(dir).output().unwrap()
}

#[test]
fn make_secrets_makes_every_file_the_secure_compose_mounts_with_certificates_for_its_host_names() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let out = make_secrets(dir.path());
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let (certs, secrets) = (dir.path().join("certs"), dir.path().join("secrets"));

    // Every secret and every certificate the compose file mounts is made, readable by the containers'
    // own users (nobody, appuser, postgres) while the secrets directory is its owner's alone.
    let config = compose_json(SECURE);
    let mut mounted: Vec<String> =
        config["secrets"].as_object().unwrap().values().map(|d| d["file"].as_str().unwrap().to_string()).collect();
    for service in config["services"].as_object().unwrap().values() {
        mounted.extend(strings(&service["volumes"]).iter().map(|v| v.split(':').next().unwrap().to_string()));
    }
    let mut made = 0;
    for source in &mounted {
        let Ok(relative) = Path::new(source).strip_prefix(root()) else { continue };
        if !(relative.starts_with("certs") || relative.starts_with("secrets")) {
            continue;
        }
        let file = dir.path().join(relative);
        let mode = std::fs::metadata(&file).unwrap_or_else(|_| panic!("{} was not made", file.display())).mode();
        assert!(mode & 0o004 != 0, "{} ({mode:o}) cannot be read inside its container", file.display());
        made += 1;
    }
    assert!(made >= 10, "{mounted:#?}");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
    assert_eq!(mode(&secrets), 0o700);
    assert_eq!(mode(&secrets.join("ca-key.pem")), 0o600, "the CA's key is never mounted");

    // Each server certificate verifies against the CA for the name its clients use, and for no other.
    let ca = certs.join("ca.pem");
    let verify = |cert: &str, host: &str| {
        let out = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(&ca)
            .args(["-verify_hostname", host])
            .arg(certs.join(cert))
            .output()
            .unwrap();
        out.status.success()
    };
    for (cert, host) in [("kafka.pem", "kafka"), ("postgres.pem", "postgres"), ("web.pem", "localhost")] {
        assert!(verify(cert, host), "{cert} does not verify for {host}");
        assert!(!verify(cert, "elsewhere.example"), "{cert} verifies for a host it does not name");
    }
    // Kafka's keystore opens with its password and holds the kafka certificate.
    let out = Command::new("openssl")
        .args(["pkcs12", "-nokeys", "-clcerts", "-in"])
        .arg(secrets.join("kafka_keystore.p12"))
        .arg("-passin")
        .arg(format!("file:{}", secrets.join("kafka_keystore_password").display()))
        .output()
        .unwrap();
    assert!(out.status.success() && stdout(&out).contains("CN = kafka"), "{}{}", stdout(&out), stderr(&out));

    let read = |name: &str| std::fs::read_to_string(secrets.join(name)).unwrap().trim_end().to_string();
    let credentials = read("kafka_credentials");
    let kafka_password = credentials.lines().find_map(|l| l.strip_prefix("sasl.password=")).unwrap_or_default();
    assert!(credentials.lines().any(|l| l == "sasl.username=framewire"), "{credentials}");
    let postgres_password = read("postgres_password");
    assert_eq!(
        read("framewire_db"),
        format!(
            "postgres://framewire:{postgres_password}@postgres:5432/framewire?sslmode=verify-full&sslrootcert=/certs/ca.pem"
        )
    );
    let generated = [kafka_password.to_string(), postgres_password, read("web_token"), read("kafka_keystore_password")];
    assert!(generated.iter().all(|s| s.len() >= 32), "{generated:?}");
    assert_eq!(generated.iter().collect::<BTreeSet<_>>().len(), generated.len(), "each secret is its own");

    // It never overwrites what running services use.
    let out = make_secrets(dir.path());
    assert!(!out.status.success() && stderr(&out).contains("exists"), "{}", stderr(&out));
    assert_eq!(read("web_token"), generated[2]);
}

#[test]
fn the_secure_kafka_settings_are_accepted_and_the_credentials_stay_out_of_what_ingest_prints() {
    // The secured ingest's own start: its entrypoint and environment from the compose file, the secrets made
    // by make-secrets.sh, against an address where nothing listens. librdkafka (built with TLS) must accept
    // every setting and fail only to connect, and nothing printed may hold the password.
    let dir = tempfile::tempdir().unwrap();
    assert!(make_secrets(dir.path()).status.success());
    let ca = dir.path().join("certs/ca.pem");
    let credentials = dir.path().join("secrets/kafka_credentials");
    let password = std::fs::read_to_string(&credentials).unwrap();
    let password = password.lines().find_map(|l| l.strip_prefix("sasl.password=")).unwrap().to_string();
    let config = compose_json(SECURE);
    let env = &config["services"]["ingest"]["environment"];
    let options = env["FRAMEWIRE_KAFKA_OPTIONS"].as_str().unwrap().replace("/certs/ca.pem", ca.to_str().unwrap());
    let clip = dir.path().join("a.mp4");
    still_clip(&media("astronaut.png"), 1, 2, &clip);

    let ingest = bin("ingest");
    let started = std::time::Instant::now();
    let out = Command::new("/bin/sh")
        .arg(root().join("deploy/secure/with-secrets.sh"))
        .arg(ingest)
        .args(["--connect-timeout", "2s", "--camera", "a"])
        .arg(&clip)
        .env("FRAMEWIRE_BROKERS", "127.0.0.1:9")
        .env("FRAMEWIRE_METRICS_LISTEN", "off")
        .env("FRAMEWIRE_KAFKA_OPTIONS", options)
        .env("FRAMEWIRE_KAFKA_OPTIONS_FILE", &credentials)
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!out.status.success(), "{text}");
    assert!(started.elapsed() < Duration::from_secs(30), "ingest did not give up within its connect timeout");
    assert!(text.contains("127.0.0.1:9"), "the error should name the broker: {text}");
    for refused in ["refused the setting", "invalid Kafka setting", "No such configuration property", "not available"] {
        assert!(!text.contains(refused), "a setting of {SECURE} was refused: {text}");
    }
    assert!(!text.contains(&password), "the SASL password was printed: {text}");
}

#[test]
fn every_flag_the_compose_files_give_a_binary_is_one_it_has() {
    const BINARIES: [&str; 3] = ["ingest", "detect", "subscribe"];
    const SUBCOMMANDS: [&str; 5] = ["tail", "store", "web", "query", "show"];
    let help = |binary: &str, sub: Option<&str>| {
        let out = Command::new(bin(binary)).args(sub).arg("--help").output().unwrap();
        assert!(out.status.success(), "{binary} {sub:?} --help: {}", stderr(&out));
        stdout(&out)
    };
    for file in ["docker-compose.yml", SECURE] {
        for (name, service) in framewire_services(&compose_json(file)) {
            let mut args = strings(&service["entrypoint"]);
            args.extend(strings(&service["command"]));
            // The secured file starts the binary through its secrets loader.
            let args: Vec<&str> = args.into_iter().skip_while(|a| !BINARIES.contains(a)).collect();
            let (binary, rest) =
                args.split_first().unwrap_or_else(|| panic!("{file}: {name} runs no framewire binary"));
            let sub = rest.iter().copied().find(|a| SUBCOMMANDS.contains(a));
            let mut listed = help(binary, None);
            if sub.is_some() {
                listed += &help(binary, sub);
            }
            for flag in rest.iter().filter(|a| a.starts_with("--")) {
                let flag = flag.split('=').next().unwrap();
                let known = listed.match_indices(flag).any(|(i, _)| {
                    !listed[i + flag.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-')
                });
                assert!(
                    known,
                    "{file}: {name} runs `{binary}` with {flag}, which `{binary} {} --help` does not list",
                    sub.unwrap_or("")
                );
            }
        }
    }
}
