//! The URL's TLS parameters resolved as libpq does, and each mode's certificate check in a real TLS
//! handshake (in memory, rustls on both sides) with certificates made here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConnection, ServerConfig, ServerConnection};

use super::params::{Check, Roots};
use super::*;

fn resolve(query: &str, home: &Path) -> Result<Resolved, String> {
    split(&format!("postgres://fw:secret@db.example:5432/fw?{query}")).1.resolve(Some(home))
}

#[test]
fn split_takes_out_the_tls_parameters_and_keeps_the_rest_byte_for_byte() {
    let (rest, p) = split(
        "postgres://fw:p%40ss@h:5433/fw?sslmode=verify-full&application_name=a%20b&sslrootcert=%2Ftmp%2Fca.pem\
         &connect_timeout=5",
    );
    assert_eq!(rest, "postgres://fw:p%40ss@h:5433/fw?application_name=a%20b&connect_timeout=5");
    assert_eq!((p.sslmode.as_deref(), p.sslrootcert.as_deref()), (Some("verify-full"), Some("/tmp/ca.pem")));
    // Nothing else: no `?` left. The last of two counts, as in libpq.
    let (rest, p) = split("postgresql://h/fw?sslmode=require&sslmode=disable");
    assert_eq!((rest.as_str(), p.sslmode.as_deref()), ("postgresql://h/fw", Some("disable")));
    // A `?` in the password is not the query: tokio-postgres reads credentials up to the first `@`.
    let (rest, p) = split("postgres://fw:a?b@h/fw?sslmode=require&sslcert=c.pem&sslkey=k.pem&sslsni=0");
    assert_eq!(rest, "postgres://fw:a?b@h/fw");
    assert_eq!(
        (p.sslmode.as_deref(), p.sslcert.as_deref(), p.sslkey.as_deref(), p.sslsni.as_deref()),
        (Some("require"), Some("c.pem"), Some("k.pem"), Some("0"))
    );
    assert_eq!(split("postgres://fw@h/fw"), ("postgres://fw@h/fw".to_string(), Params::default()));
}

#[test]
fn each_sslmode_checks_what_libpq_documents() {
    let home = tempfile::tempdir().unwrap();
    let ca = || Some(Roots::File("/ca.pem".into()));
    let cases = [
        ("", SslMode::Prefer, Check::Nothing, None),
        ("sslmode=disable", SslMode::Disable, Check::Nothing, None),
        ("sslmode=allow", SslMode::Allow, Check::Nothing, None),
        ("sslmode=prefer", SslMode::Prefer, Check::Nothing, None),
        ("sslmode=prefer&sslrootcert=/ca.pem", SslMode::Prefer, Check::Nothing, None),
        ("sslmode=require", SslMode::Require, Check::Nothing, None),
        // libpq's rule: require with a root certificate is verify-ca.
        ("sslmode=require&sslrootcert=/ca.pem", SslMode::Require, Check::Chain, ca()),
        ("sslmode=verify-ca&sslrootcert=/ca.pem", SslMode::VerifyCa, Check::Chain, ca()),
        ("sslmode=verify-full&sslrootcert=/ca.pem", SslMode::VerifyFull, Check::ChainAndName, ca()),
        ("sslrootcert=system", SslMode::VerifyFull, Check::ChainAndName, Some(Roots::System)),
        ("sslmode=verify-full&sslrootcert=system", SslMode::VerifyFull, Check::ChainAndName, Some(Roots::System)),
    ];
    for (q, mode, check, roots) in cases {
        let r = resolve(q, home.path()).unwrap_or_else(|e| panic!("{q}: {e}"));
        assert_eq!((r.mode, r.check, r.roots), (mode, check, roots), "{q}");
        assert!(r.client.is_none() && r.sni, "{q}");
    }
}

#[test]
fn root_crt_in_home_makes_require_check_the_ca_and_verify_modes_need_a_root() {
    let home = tempfile::tempdir().unwrap();
    let default = home.path().join(".postgresql/root.crt");
    let err = resolve("sslmode=verify-full", home.path()).unwrap_err();
    assert_eq!(
        err,
        format!(
            "sslmode=verify-full needs the CA certificate that signed the server's: give sslrootcert=PATH \
             (the default, {}, does not exist)",
            default.display()
        )
    );
    let no_home = split("postgres://h/fw?sslmode=verify-ca").1.resolve(None).unwrap_err();
    assert!(no_home.ends_with("give sslrootcert=PATH"), "{no_home}");

    std::fs::create_dir(home.path().join(".postgresql")).unwrap();
    std::fs::write(&default, "").unwrap();
    for (q, check) in [
        ("sslmode=prefer", Check::Nothing),
        ("sslmode=require", Check::Chain),
        ("sslmode=verify-ca", Check::Chain),
        ("sslmode=verify-full", Check::ChainAndName),
    ] {
        let r = resolve(q, home.path()).unwrap();
        let roots = (check != Check::Nothing).then(|| Roots::File(default.clone()));
        assert_eq!((r.check, r.roots), (check, roots), "{q}");
    }
}

#[test]
fn settings_that_cannot_work_say_what_to_fix() {
    let home = tempfile::tempdir().unwrap();
    let err = |q: &str| resolve(q, home.path()).unwrap_err();
    assert_eq!(
        err("sslmode=verify"),
        "sslmode=verify is not one of disable, allow, prefer, require, verify-ca, verify-full"
    );
    assert_eq!(
        err("sslmode=require&sslrootcert=system"),
        "sslmode=require may not be used with sslrootcert=system: use sslmode=verify-full"
    );
    assert_eq!(err("sslsni=yes"), "sslsni=yes is neither 0 nor 1");
    assert_eq!(err("sslmode=require&sslkey=/k.pem"), "sslkey is given without sslcert: give both, or neither");
    // disable looks at nothing else, as in libpq.
    let off = resolve("sslmode=disable&sslcert=/nope.pem&sslrootcert=/nope.pem", home.path()).unwrap();
    assert_eq!((off.check, off.roots, off.client), (Check::Nothing, None, None));
    // Files are read when the client is made: a missing one is named with its parameter.
    let missing = Tls::with_home(&split("postgres://h/fw?sslmode=verify-ca&sslrootcert=/nope/ca.pem").1, None);
    let missing = missing.err().unwrap();
    assert!(missing.starts_with("sslrootcert /nope/ca.pem: "), "{missing}");
}

#[test]
fn a_client_certificate_is_the_one_given_or_libpqs_default() {
    let home = tempfile::tempdir().unwrap();
    let given = resolve("sslmode=require&sslcert=/c.pem&sslkey=/c-key.pem", home.path()).unwrap();
    assert_eq!(given.client, Some(("/c.pem".into(), "/c-key.pem".into())));
    assert_eq!(resolve("sslmode=require", home.path()).unwrap().client, None);
    let dot = home.path().join(".postgresql");
    std::fs::create_dir(&dot).unwrap();
    std::fs::write(dot.join("postgresql.crt"), "").unwrap();
    let default = resolve("sslmode=require", home.path()).unwrap();
    assert_eq!(default.client, Some((dot.join("postgresql.crt"), dot.join("postgresql.key"))));
    assert!(!resolve("sslsni=0", home.path()).unwrap().sni);
}

/// A CA made here, its certificate a PEM file.
struct Pki {
    _dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
    ca: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, params.self_signed(&key).unwrap().pem()).unwrap();
        Pki { _dir: dir, issuer: Issuer::new(params, key), ca }
    }

    /// A server with a certificate for `names`, signed by this CA.
    fn server(&self, names: &[&str]) -> ServerConfig {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .unwrap()
    }

    fn query(&self, mode: &str) -> String {
        format!("sslmode={mode}&sslrootcert={}", self.ca.display())
    }
}

/// A TLS handshake in memory between our client (under `query`'s settings, connecting to `host`) and
/// `server`; the client's verdict.
fn handshake(query: &str, server: ServerConfig, host: &str) -> Result<(), rustls::Error> {
    let home = tempfile::tempdir().unwrap();
    let config = connector::client_config(&resolve(query, home.path()).unwrap()).unwrap();
    let name = ServerName::try_from(host.to_string()).unwrap();
    let mut client = ClientConnection::new(Arc::new(config), name).unwrap();
    let mut server = ServerConnection::new(Arc::new(server)).unwrap();
    while client.is_handshaking() {
        let mut bytes = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut bytes).unwrap();
        }
        let mut sent = &bytes[..];
        while !sent.is_empty() {
            server.read_tls(&mut sent).unwrap();
            // The server's own verdict on an alert from the client is not what is tested.
            let _ = server.process_new_packets();
        }
        let mut answer = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut answer).unwrap();
        }
        assert!(!answer.is_empty(), "the handshake stalled");
        let mut got = &answer[..];
        while !got.is_empty() {
            client.read_tls(&mut got).unwrap();
            client.process_new_packets()?;
        }
    }
    Ok(())
}

#[test]
fn each_mode_checks_the_servers_certificate_in_a_real_handshake() {
    let (pki, other) = (Pki::new(), Pki::new());
    handshake(&pki.query("verify-full"), pki.server(&["localhost"]), "localhost").unwrap();
    handshake(&pki.query("verify-full"), pki.server(&["db.example", "10.0.0.5"]), "10.0.0.5").unwrap();
    let wrong_name = handshake(&pki.query("verify-full"), pki.server(&["localhost"]), "127.0.0.1").unwrap_err();
    assert!(
        matches!(&wrong_name, rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })),
        "{wrong_name:?}"
    );
    // verify-ca, and require with a root certificate: the chain, whatever the name.
    handshake(&pki.query("verify-ca"), pki.server(&["localhost"]), "127.0.0.1").unwrap();
    handshake(&pki.query("require"), pki.server(&["localhost"]), "127.0.0.1").unwrap();
    // Both CAs have the same (rcgen's default) name: the signature is what tells them apart.
    for mode in ["require", "verify-ca", "verify-full"] {
        let wrong_ca = handshake(&other.query(mode), pki.server(&["localhost"]), "localhost").unwrap_err();
        assert_eq!(wrong_ca, rustls::Error::InvalidCertificate(CertificateError::BadSignature), "{mode}");
    }
    // Without a root certificate require and prefer encrypt, and check nothing.
    handshake("sslmode=require", other.server(&["elsewhere"]), "localhost").unwrap();
    handshake("sslmode=prefer", other.server(&["elsewhere"]), "localhost").unwrap();
    // Public CAs do not vouch for a CA made here.
    let public = handshake("sslrootcert=system", pki.server(&["localhost"]), "localhost").unwrap_err();
    assert_eq!(public, rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer));
}

#[test]
fn handshake_failures_are_told_in_words() {
    let (pki, other) = (Pki::new(), Pki::new());
    let home = tempfile::tempdir().unwrap();
    let tls = |q: &str| Tls::with_home(&split(&format!("postgres://fw@localhost/fw?{q}")).1, Some(home.path()));
    let full = tls(&pki.query("verify-full")).unwrap();
    let wrong_name = handshake(&pki.query("verify-full"), pki.server(&["localhost", "db"]), "127.0.0.1").unwrap_err();
    assert_eq!(
        full.cause(&Failure::Tls(wrong_name), "127.0.0.1"),
        "server certificate is for localhost, db, not 127.0.0.1 (sslmode=verify-full)"
    );
    let wrong_ca = handshake(&pki.query("verify-full"), other.server(&["localhost"]), "localhost").unwrap_err();
    assert_eq!(
        full.cause(&Failure::Tls(wrong_ca), "localhost"),
        format!("TLS certificate verify failed (not signed by a CA in {}): check sslrootcert", pki.ca.display())
    );
    let asked = Failure::Tls(rustls::Error::AlertReceived(AlertDescription::CertificateRequired));
    assert_eq!(
        tls("sslmode=require").unwrap().cause(&asked, "localhost"),
        "the server requires a client certificate: give sslcert=PATH and sslkey=PATH"
    );
}

#[test]
fn messages_name_the_server_as_host_and_port() {
    let config = |url: &str| url.parse::<Config>().unwrap();
    let two = config("postgres://fw:pw@a:5433,b:6000/fw");
    assert_eq!(address(&two, None), "a:5433,b:6000");
    assert_eq!(address(&two, Some("b")), "b:6000");
    assert_eq!(address(&config("postgres://fw@db/fw"), None), "db:5432");
    assert_eq!(address(&config("postgres://fw@[::1]:6000/fw"), Some("::1")), "[::1]:6000");
}
