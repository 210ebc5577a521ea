//! The rustls side: the client configuration a resolved URL asks for, the certificate check of each
//! `sslmode`, and a connector that remembers how each handshake went, so that a failure can be told in
//! words (tokio-postgres reports every one of them as "error performing TLS handshake").

use std::convert::Infallible;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::FutureExt;
use futures::future::BoxFuture;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::Socket;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::params::{Check, Resolved, Roots};

/// The TLS stream of a connection.
pub type Stream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;
type Inner = <MakeRustlsConnect as MakeTlsConnect<Socket>>::TlsConnect;

/// The rustls client for `r`; reads the certificate files, so a file replaced on disk counts at the next
/// connection. The error says which file and why.
pub fn client_config(r: &Resolved) -> Result<ClientConfig, String> {
    // ring, the one provider in the build (reqwest's); named here rather than installed process-wide.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = match &r.roots {
        Some(roots) => {
            let store = Arc::new(root_store(roots)?);
            let built = WebPkiServerVerifier::builder_with_provider(store, provider.clone()).build();
            Some(built.map_err(|e| format!("sslrootcert {}: {e}", describe(roots)))?)
        }
        None => None,
    };
    let verifier = Verifier { check: r.check, webpki, algorithms: provider.signature_verification_algorithms };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match &r.client {
        Some((cert, key)) => {
            let chain = certificates(cert, "sslcert")?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("sslkey {}: no private key read ({e})", key.display()))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| format!("sslcert {}: {e}", cert.display()))?
        }
        None => builder.with_no_client_auth(),
    };
    config.enable_sni = r.sni;
    // What PostgreSQL 17 expects (and needs for `sslnegotiation=direct`); older servers ignore it.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(config)
}

/// How `roots` is named in messages.
pub fn describe(roots: &Roots) -> String {
    match roots {
        Roots::File(path) => path.display().to_string(),
        Roots::System => "system (the built-in public CAs)".into(),
    }
}

fn root_store(roots: &Roots) -> Result<RootCertStore, String> {
    let path = match roots {
        Roots::System => return Ok(RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }),
        Roots::File(path) => path,
    };
    let mut store = RootCertStore::empty();
    for cert in certificates(path, "sslrootcert")? {
        store.add(cert).map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
    }
    Ok(store)
}

/// The certificates of a PEM file, at least one.
fn certificates(path: &Path, param: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let unreadable = |e: &dyn std::fmt::Display| format!("{param} {}: {e}", path.display());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| unreadable(&e))?
        .collect::<Result<_, _>>()
        .map_err(|e| unreadable(&e))?;
    if certs.is_empty() {
        return Err(unreadable(&"no PEM certificate in it"));
    }
    Ok(certs)
}

/// The server certificate check of one `sslmode`. The chain and the name are webpki's checks, which look
/// at the chain first: a name error therefore comes only from a certificate whose chain is trusted.
#[derive(Debug)]
struct Verifier {
    check: Check,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = self.webpki.as_ref().filter(|_| self.check != Check::Nothing) else {
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.check == Check::Chain => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    // The handshake's signatures are checked in every mode: without a checked certificate they prove little,
    // but a server that cannot sign with its own key is broken either way.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What the attempts of one connect call saw (tokio-postgres tries each host and address in turn and
/// returns only the last error, which may be a refused second address rather than the certificate).
#[derive(Debug, Default)]
pub struct Seen {
    /// The host of the latest attempt that reached the server, and whether a TLS handshake started (it
    /// starts only once the server has agreed to TLS).
    pub last: Option<(String, bool)>,
    /// The first handshake that failed: the host, and rustls' error when it was one.
    pub failed: Option<(String, Failure)>,
}

#[derive(Debug, Clone)]
pub enum Failure {
    Tls(rustls::Error),
    Io(String),
}

impl Failure {
    /// rustls' error inside an I/O error (how tokio-rustls reports one), or the I/O error.
    pub fn of(e: &io::Error) -> Failure {
        match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            Some(tls) => Failure::Tls(tls.clone()),
            None => Failure::Io(e.to_string()),
        }
    }
}

/// tokio-postgres-rustls' connector (which adds SCRAM channel binding), with a record of each handshake.
#[derive(Clone)]
pub struct Connector {
    inner: MakeRustlsConnect,
    seen: Arc<Mutex<Seen>>,
}

impl Connector {
    pub fn new(config: ClientConfig) -> Connector {
        Connector { inner: MakeRustlsConnect::new(config), seen: Arc::default() }
    }

    pub fn seen(&self) -> MutexGuard<'_, Seen> {
        lock(&self.seen)
    }
}

fn lock(seen: &Mutex<Seen>) -> MutexGuard<'_, Seen> {
    // Only plain assignments happen under the lock: a panic there leaves nothing half-done.
    seen.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MakeTlsConnect<Socket> for Connector {
    type Stream = Stream;
    type TlsConnect = Handshake;
    type Error = Infallible;

    fn make_tls_connect(&mut self, host: &str) -> Result<Handshake, Infallible> {
        let inner = <MakeRustlsConnect as MakeTlsConnect<Socket>>::make_tls_connect(&mut self.inner, host)?;
        lock(&self.seen).last = Some((host.to_string(), false));
        Ok(Handshake { inner, host: host.to_string(), seen: self.seen.clone() })
    }
}

/// One connection's handshake. tokio-postgres makes one per attempt once the socket is open, and calls it
/// only when the server has agreed to TLS.
pub struct Handshake {
    inner: Inner,
    host: String,
    seen: Arc<Mutex<Seen>>,
}

impl TlsConnect<Socket> for Handshake {
    type Stream = Stream;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<Stream>>;

    fn connect(self, socket: Socket) -> Self::Future {
        let Handshake { inner, host, seen } = self;
        lock(&seen).last = Some((host.clone(), true));
        let handshake = inner.connect(socket);
        async move {
            handshake.await.inspect_err(|e| {
                let mut seen = lock(&seen);
                if seen.failed.is_none() {
                    seen.failed = Some((host, Failure::of(e)));
                }
            })
        }
        .boxed()
    }
}
