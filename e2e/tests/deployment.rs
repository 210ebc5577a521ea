//! The deployment files, checked without a Docker engine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

#[test]
fn docker_compose_file_is_valid_and_wires_the_services_to_kafka() {
    let out = std::process::Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "config"])
        .current_dir(root())
        .output()
        .expect("docker-compose (make setup installs it)");
    assert!(out.status.success(), "docker-compose rejects the file: {}", stderr(&out));
    let config = stdout(&out);
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
    let out = std::process::Command::new("promtool")
        .args(["check", "config"])
        .arg(root().join("deploy/prometheus.yml"))
        .output()
        .expect("promtool (make setup installs Debian's prometheus package)");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

#[test]
fn compose_runs_prometheus_grafana_and_two_detect_replicas() {
    let out = std::process::Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "config"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let config = stdout(&out);
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
