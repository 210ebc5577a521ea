//! PostgreSQL over TLS as libpq does it. tokio-postgres knows only `sslmode=disable|prefer|require` and
//! verifies nothing itself, so the URL's TLS parameters (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`,
//! `sslsni`) are taken out here, checked with libpq's defaults and rules, and turned into a rustls client:
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow` | only when the server refuses the connection without it | not checked |
//! | `prefer` (default) | when the server offers it | not checked |
//! | `require` | always | not checked, unless a root certificate is given or `~/.postgresql/root.crt` exists: then as `verify-ca` |
//! | `verify-ca` | always | signed by a CA in `sslrootcert` (default `~/.postgresql/root.crt`) |
//! | `verify-full` | always | as `verify-ca`, and issued for the host name in the URL |
//!
//! `sslrootcert=system` trusts the public CAs built in (Mozilla's list) and, as in libpq, only with
//! `verify-full` (its default then). A client certificate is `sslcert` + `sslkey`, or libpq's
//! `~/.postgresql/postgresql.crt` and `.key` when that certificate exists. Unix-socket hosts never use TLS.
//!
//! # Layout
//! - `params`: the URL's parameters and what they resolve to.
//! - `connector`: the rustls client, the certificate check of each mode, and a connector that records how
//!   each handshake went, so that a failure is told in words.

mod connector;
mod params;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use rustls::{AlertDescription, CertificateError};
use tokio_postgres::config::{Host, SslMode as PgMode};
use tokio_postgres::{Client, Config, Connection, Socket};

use connector::{Connector, Failure, Stream};
pub use params::split;
use params::{Params, Resolved, SslMode};

/// How one URL connects.
pub struct Tls {
    resolved: Resolved,
    connector: Connector,
}

impl Tls {
    /// Resolves `params` (the error says what to fix) and reads the certificate files they name.
    pub fn new(params: &Params) -> Result<Tls, String> {
        // libpq's `~`: HOME (which libpq also reads first, since PostgreSQL 16).
        let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
        Tls::with_home(params, home.as_deref())
    }

    fn with_home(params: &Params, home: Option<&Path>) -> Result<Tls, String> {
        let resolved = params.resolve(home)?;
        let connector = Connector::new(connector::client_config(&resolved)?);
        Ok(Tls { resolved, connector })
    }

    /// The mode for `config`'s hosts: PostgreSQL never speaks TLS on a Unix socket, and libpq ignores
    /// `sslmode` there.
    fn mode(&self, config: &Config) -> SslMode {
        let hosts = config.get_hosts();
        let unix_only = !hosts.is_empty() && hosts.iter().all(|h| !matches!(h, Host::Tcp(_)));
        if unix_only { SslMode::Disable } else { self.resolved.mode }
    }

    pub async fn connect(
        &self,
        config: &Config,
    ) -> Result<(Client, Connection<Socket, Stream>), tokio_postgres::Error> {
        let mut config = config.clone();
        let pg = match self.mode(&config) {
            SslMode::Disable => PgMode::Disable,
            SslMode::Allow => {
                config.ssl_mode(PgMode::Disable);
                let refused = match config.connect(self.connector.clone()).await {
                    Err(e) if e.as_db_error().is_some() => e,
                    done => return done,
                };
                config.ssl_mode(PgMode::Require);
                return config.connect(self.connector.clone()).await.map_err(|e| {
                    // Without TLS on offer either, the first refusal is the one that explains.
                    if self.connector.seen().last.as_ref().is_some_and(|(_, started)| *started) { e } else { refused }
                });
            }
            SslMode::Prefer => PgMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgMode::Require,
        };
        config.ssl_mode(pg);
        config.connect(self.connector.clone()).await
    }

    /// The server and the cause, in words, when `error` (from [`Tls::connect`]) came from TLS.
    pub fn explain(&self, error: &tokio_postgres::Error, config: &Config) -> Option<(String, String)> {
        let seen = self.connector.seen();
        if let Some((host, failure)) = &seen.failed {
            return Some((address(config, Some(host)), self.cause(failure, host)));
        }
        let last = seen.last.as_ref();
        // A TLS 1.3 server judges a client certificate after the handshake: its alert comes with the next read.
        let late = std::error::Error::source(error)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .map(Failure::of)
            .filter(|f| matches!(f, Failure::Tls(_)));
        if let (Some(failure), Some((host, true))) = (late, last) {
            return Some((address(config, Some(host)), self.cause(&failure, host)));
        }
        let tls_required = matches!(self.mode(config), SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull);
        match last {
            // The server was reached, never started TLS and did not answer with an error of its own: it said
            // no to TLS (or died right then, which the next attempt will tell).
            Some((host, false)) if tls_required && error.as_db_error().is_none() => Some((
                address(config, Some(host)),
                format!("the server does not offer TLS (sslmode={})", self.resolved.mode.name()),
            )),
            _ => None,
        }
    }

    fn cause(&self, failure: &Failure, host: &str) -> String {
        let mode = self.resolved.mode.name();
        let roots = self.resolved.roots.as_ref().map(connector::describe).unwrap_or_default();
        let tls = match failure {
            Failure::Tls(e) => e,
            Failure::Io(e) => return format!("TLS handshake failed: {e}"),
        };
        match tls {
            rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { presented, .. })
                if !presented.is_empty() =>
            {
                let names: Vec<&str> = presented.iter().map(|n| plain(n)).collect();
                format!("server certificate is for {}, not {host} (sslmode={mode})", names.join(", "))
            }
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => format!("server certificate names no host, not {host} (sslmode={mode})"),
            // BadSignature: a CA of the same name, but not the key that signed it.
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer | CertificateError::BadSignature) => {
                format!("TLS certificate verify failed (not signed by a CA in {roots}): check sslrootcert")
            }
            rustls::Error::InvalidCertificate(e) => {
                format!("TLS certificate verify failed ({e}; CA from {roots}): check sslrootcert")
            }
            rustls::Error::AlertReceived(AlertDescription::CertificateRequired) => {
                "the server requires a client certificate: give sslcert=PATH and sslkey=PATH".into()
            }
            rustls::Error::AlertReceived(
                alert @ (AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateRevoked
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnsupportedCertificate),
            ) if self.resolved.client.is_some() => {
                format!("the server refused the client certificate ({alert:?}): check sslcert")
            }
            e => format!("TLS handshake failed: {e}"),
        }
    }
}

/// A name as webpki lists it (`DnsName("db.example")`, `IpAddress(10.0.0.5)`), as a person writes it.
fn plain(name: &str) -> &str {
    let dns = name.strip_prefix("DnsName(\"").and_then(|n| n.strip_suffix("\")"));
    dns.or_else(|| name.strip_prefix("IpAddress(").and_then(|n| n.strip_suffix(')'))).unwrap_or(name)
}

/// `HOST:PORT` of `host` in `config`, or of every host when `host` is None, for messages.
pub fn address(config: &Config, host: Option<&str>) -> String {
    let ports = config.get_ports();
    let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
    let mut hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            Host::Unix(dir) => dir.display().to_string(),
        })
        .collect();
    if hosts.is_empty() {
        hosts = config.get_hostaddrs().iter().map(|a| a.to_string()).collect();
    }
    let at =
        |h: &str, i: usize| if h.contains(':') { format!("[{h}]:{}", port(i)) } else { format!("{h}:{}", port(i)) };
    match host {
        Some(h) => at(h, hosts.iter().position(|x| x == h).unwrap_or(0)),
        None => hosts.iter().enumerate().map(|(i, h)| at(h, i)).collect::<Vec<_>>().join(","),
    }
}
