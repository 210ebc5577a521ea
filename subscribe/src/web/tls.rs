//! HTTPS for the web view: the certificate and key files, and a listener that runs each TLS handshake beside
//! the others, so that a client stalling mid-handshake holds up no one.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;

use super::{Error, Result};
use crate::events::web::{AcceptFailed, TlsHandshakeFailed};

/// A client has this long to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes under way at once. Browsers open a few connections each; more than this is a flood, whose
/// newest connections are closed rather than left to grow memory.
const MAX_HANDSHAKES: usize = 256;

/// The server's TLS settings from a PEM certificate chain and its PEM private key.
pub(super) fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>> {
    let bad = |flag, path: &Path, cause: String| Error::Tls { flag, path: path.to_path_buf(), cause };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| bad("cert", cert, pem_cause(e, "CERTIFICATE")))?;
    if certs.is_empty() {
        return Err(bad("cert", cert, pem_cause(pem::Error::NoItemsFound, "CERTIFICATE")));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| bad("key", key, pem_cause(e, "PRIVATE KEY")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, private))
        .map_err(|e| match e {
            rustls::Error::InvalidCertificate(_) => bad("cert", cert, e.to_string()),
            rustls::Error::InconsistentKeys(_) => {
                bad("key", key, format!("not the key of the certificate {}", cert.display()))
            }
            e => bad("key", key, e.to_string()),
        })?;
    // The router speaks HTTP/1.1 only; saying so spares a browser an HTTP/2 attempt.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What is wrong with a PEM file, without quoting its content: it may be a private key.
fn pem_cause(e: pem::Error, block: &str) -> String {
    match e {
        pem::Error::Io(e) => format!("cannot read it: {e}"),
        pem::Error::NoItemsFound => format!("no {block} block in it (a PEM file is expected)"),
        _ => "not a valid PEM file".to_string(),
    }
}

/// A TCP listener whose connections come out with their TLS handshake done.
pub(super) struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

impl TlsListener {
    pub(super) fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> Self {
        TlsListener { tcp, acceptor: TlsAcceptor::from(config), handshakes: JoinSet::new() }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((tcp, peer)) if self.handshakes.len() < MAX_HANDSHAKES => {
                        let acceptor = self.acceptor.clone();
                        self.handshakes.spawn(async move {
                            let error = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                                Ok(Ok(tls)) => return Some((tls, peer)),
                                Ok(Err(e)) => e,
                                Err(_) => io::Error::new(io::ErrorKind::TimedOut, "handshake not finished in time"),
                            };
                            TlsHandshakeFailed { peer, error: &error }.emit();
                            None
                        });
                    }
                    Ok(_) => {}
                    Err(error) => {
                        // Errors of one connection (reset before accepted) say nothing of the listener; others
                        // (out of file descriptors) last a while: wait rather than spin.
                        if !matches!(
                            error.kind(),
                            io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionRefused
                        ) {
                            AcceptFailed { error: &error }.emit();
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                },
                Some(done) = self.handshakes.join_next() => {
                    if let Ok(Some(connection)) = done {
                        return connection;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
