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
    for service in ["kafka:", "detect:", "tail:", "ingest:"] {
        assert!(config.contains(&format!("  {service}")), "service {service} missing:\n{config}");
    }
    assert!(config.contains("KAFKA_PROCESS_ROLES: broker,controller"), "Kafka must run in KRaft mode");
    assert!(config.contains("FRAMEWIRE_BROKERS: kafka:9092"));
    // The broker must accept what ingest produces by default (4,000,000 bytes).
    let max: u64 = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("KAFKA_MESSAGE_MAX_BYTES:"))
        .and_then(|v| v.trim().trim_matches('\'').trim_matches('"').parse().ok())
        .expect("KAFKA_MESSAGE_MAX_BYTES set");
    assert!(max >= 4_000_000, "{max}");
}
