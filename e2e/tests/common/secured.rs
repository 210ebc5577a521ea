//! A broker secured as managed Kafka services are (Confluent Cloud, Aiven, MSK, Redpanda Cloud): clients
//! speak SASL_SSL, authenticate with SCRAM-SHA-512 and verify the broker's certificate, host name included.
//! tansu 0.6.0 requires SASL with `--authentication`; TLS is stunnel4's in front of it (tansu's own TLS flags
//! cannot be combined in 0.6.0). Both are started by `start_tansu` in `scripts/common.sh`.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::tls::TestCa;
use super::{Broker, Launch, Service, free_port};

/// A SASL_SSL broker with one SCRAM user and a certificate from a CA made by the test. Everything a
/// [`Broker`] does works on it (through `Deref`: `cmd`, `service`, `detect`, the readers, `Tally`,
/// `read_all`), each client configured with [`SecuredBroker::options`]; dropping it stops tansu and stunnel.
pub struct SecuredBroker {
    broker: Broker,
    ca: PathBuf,
    user: String,
    password: String,
}

impl SecuredBroker {
    /// A fresh CA and server certificate (for `localhost` and `127.0.0.1`), a user with a random password,
    /// tansu on SQLite storage requiring SASL, and stunnel terminating TLS in front of it.
    pub fn start() -> SecuredBroker {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new(dir.path());
        let server = ca.issue(dir.path(), "broker", &["localhost", "127.0.0.1"]);
        let (port, tls_port) = (free_port(), free_port());
        let (user, password) = ("framewire".to_string(), random_password());
        let path = |p: &Path| p.to_str().unwrap().to_string();
        let launch = Launch {
            args: vec![
                "sqlite".into(),
                "--user".into(),
                user.clone(),
                "--tls".into(),
                tls_port.to_string(),
                path(&server.cert),
                path(&server.key),
            ],
            password: Some(password.clone()),
            client: [
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanisms", "SCRAM-SHA-512"),
                ("sasl.username", &user),
                ("sasl.password", &password),
                ("ssl.ca.location", &path(&ca.cert)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        };
        // The certificate names localhost: that is the name clients must find in it.
        let broker = Broker::launch(dir, port, format!("localhost:{tls_port}"), launch);
        SecuredBroker { broker, ca: ca.cert, user, password }
    }

    /// The bootstrap address, over TLS: `localhost:TLSPORT`.
    pub fn brokers(&self) -> String {
        self.broker.addr.clone()
    }

    /// tansu's own port behind stunnel: plaintext, still SASL-only. Its metadata sends clients back to
    /// [`SecuredBroker::brokers`], so only a client's first exchange (the SASL handshake) stays on it.
    pub fn plain_brokers(&self) -> String {
        format!("127.0.0.1:{}", self.broker.port)
    }

    /// The CA certificate (PEM) that signed the broker's.
    pub fn ca(&self) -> &Path {
        &self.ca
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// The FRAMEWIRE_KAFKA_OPTIONS lines a user writes for this broker: `security.protocol=SASL_SSL`,
    /// `sasl.mechanisms=SCRAM-SHA-512`, `sasl.username`, `sasl.password`, `ssl.ca.location`. Host-name
    /// verification is librdkafka's default (`ssl.endpoint.identification.algorithm=https`).
    pub fn options(&self) -> String {
        self.broker.kafka_options()
    }

    /// A binary pointed at this broker (FRAMEWIRE_BROKERS) with [`SecuredBroker::options`] in
    /// FRAMEWIRE_KAFKA_OPTIONS: the password travels in the environment, never in argv.
    pub fn cmd(&self, bin: &str) -> Command {
        self.broker.cmd(bin)
    }

    /// A long-running binary, as [`Broker::service`].
    pub fn service(&self, bin: &str, args: &[&str]) -> Service {
        self.broker.service(bin, args)
    }
}

impl Deref for SecuredBroker {
    type Target = Broker;

    fn deref(&self) -> &Broker {
        &self.broker
    }
}

/// 32 hex digits from the kernel's random source: each broker its own password.
fn random_password() -> String {
    let mut bytes = [0u8; 16];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
