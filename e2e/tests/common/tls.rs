//! A certificate authority made by the test, for every TLS test (Kafka behind stunnel, PostgreSQL with
//! `ssl=on`, the web view over HTTPS): nothing is read from the machine's trust store, and a second
//! `TestCa` is a CA that does not match.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate (PEM), what clients are told to trust.
    pub cert: PathBuf,
}

/// A server certificate and its key, both PEM files.
pub struct ServerCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA; its certificate is written to `DIR/ca.pem` (or `ca-N.pem` when that exists).
    pub fn new(dir: &Path) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // A name of its own: a client that trusts another test CA then says "unknown issuer", as it would
        // for any foreign CA, rather than "bad signature" from a same-named one.
        params.distinguished_name.push(DnType::CommonName, format!("framewire test CA {}", super::unique("ca")));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA certificate");
        let path = (0..).map(|n| dir.join(if n == 0 { "ca.pem".into() } else { format!("ca-{n}.pem") }));
        let path = path.into_iter().find(|p| !p.exists()).expect("a free name");
        std::fs::write(&path, cert.pem()).expect("write CA certificate");
        Self { issuer: Issuer::new(params, key), cert: path }
    }

    /// A server certificate for `names` (DNS names or IP addresses), signed by this CA: `DIR/NAME.pem`
    /// and `DIR/NAME-key.pem`.
    pub fn issue(&self, dir: &Path, name: &str, names: &[&str]) -> ServerCert {
        let key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("server params");
        params.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or(name));
        let cert = params.signed_by(&key, &self.issuer).expect("server certificate");
        let (cert_path, key_path) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}-key.pem")));
        std::fs::write(&cert_path, cert.pem()).expect("write server certificate");
        std::fs::write(&key_path, key.serialize_pem()).expect("write server key");
        // PostgreSQL refuses a key file others can read.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
        }
        ServerCert { cert: cert_path, key: key_path }
    }
}
