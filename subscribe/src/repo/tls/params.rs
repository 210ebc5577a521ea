//! libpq's TLS parameters, taken out of a `postgres://` URL and resolved with libpq's defaults and rules.

use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;

/// `sslmode`, as libpq spells and orders it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    const ALL: [SslMode; 6] =
        [SslMode::Disable, SslMode::Allow, SslMode::Prefer, SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull];

    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(s: &str) -> Option<SslMode> {
        SslMode::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Nothing: the connection is encrypted, but anyone in the middle could be the server.
    Nothing,
    /// Signed by a trusted CA, for whatever name.
    Chain,
    /// Signed by a trusted CA and issued for the host connected to.
    ChainAndName,
}

/// Where the trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    File(PathBuf),
    /// `sslrootcert=system`: well-known public CAs (Mozilla's list, built in).
    System,
}

/// The TLS parameters of one URL, as given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pub(super) sslmode: Option<String>,
    pub(super) sslrootcert: Option<String>,
    pub(super) sslcert: Option<String>,
    pub(super) sslkey: Option<String>,
    pub(super) sslsni: Option<String>,
}

/// What the parameters come to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The mode as given (or libpq's default), for messages.
    pub mode: SslMode,
    pub check: Check,
    /// Set whenever `check` is not `Nothing`.
    pub roots: Option<Roots>,
    /// A client certificate and its key.
    pub client: Option<(PathBuf, PathBuf)>,
    pub sni: bool,
}

/// Splits `url` into the URL tokio-postgres may see and the TLS parameters taken out of it: tokio-postgres
/// refuses all of them but `sslmode`, and reads that one as if nothing were ever verified. The rest of the
/// query is kept byte for byte; a parameter given twice counts the last time, as in libpq.
pub fn split(url: &str) -> (String, Params) {
    let mut params = Params::default();
    // As tokio-postgres reads a URL: the credentials end at the first `@`, the query starts at the next `?`.
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let after_user = url[after_scheme..].find('@').map_or(after_scheme, |i| after_scheme + i + 1);
    let Some(q) = url[after_user..].find('?').map(|i| after_user + i) else { return (url.to_string(), params) };
    let mut kept = Vec::new();
    for pair in url[q + 1..].split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode_str(value).decode_utf8_lossy().into_owned();
        let slot = match &*percent_decode_str(key).decode_utf8_lossy() {
            "sslmode" => &mut params.sslmode,
            "sslrootcert" => &mut params.sslrootcert,
            "sslcert" => &mut params.sslcert,
            "sslkey" => &mut params.sslkey,
            "sslsni" => &mut params.sslsni,
            _ => {
                kept.push(pair);
                continue;
            }
        };
        *slot = Some(value);
    }
    let mut rest = url[..q].to_string();
    if !kept.is_empty() {
        rest.push('?');
        rest.push_str(&kept.join("&"));
    }
    (rest, params)
}

impl Params {
    /// Applies libpq's defaults and rules; `home` is where `~/.postgresql/` is. The error says what to fix.
    pub fn resolve(&self, home: Option<&Path>) -> Result<Resolved, String> {
        let given_roots = match self.sslrootcert.as_deref() {
            None | Some("") => None,
            Some("system") => Some(Roots::System),
            Some(path) => Some(Roots::File(PathBuf::from(path))),
        };
        let mode = match self.sslmode.as_deref() {
            Some(s) => SslMode::parse(s).ok_or_else(|| {
                let all: Vec<&str> = SslMode::ALL.iter().map(|m| m.name()).collect();
                format!("sslmode={s} is not one of {}", all.join(", "))
            })?,
            // Public CAs vouch for names, so with them only the strongest check means anything.
            None if given_roots == Some(Roots::System) => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };
        if given_roots == Some(Roots::System) && mode != SslMode::VerifyFull {
            return Err(format!(
                "sslmode={} may not be used with sslrootcert=system: use sslmode=verify-full",
                mode.name()
            ));
        }
        let sni = match self.sslsni.as_deref() {
            None | Some("1") => true,
            Some("0") => false,
            Some(other) => return Err(format!("sslsni={other} is neither 0 nor 1")),
        };
        if mode == SslMode::Disable {
            return Ok(Resolved { mode, check: Check::Nothing, roots: None, client: None, sni });
        }
        let dot = home.map(|h| h.join(".postgresql"));
        let default_roots = dot.as_ref().map(|d| d.join("root.crt"));
        let check = match mode {
            SslMode::Disable | SslMode::Allow | SslMode::Prefer => Check::Nothing,
            // libpq's rule, kept for compatibility: require checks the CA when it has one.
            SslMode::Require if given_roots.is_some() || default_roots.as_deref().is_some_and(Path::exists) => {
                Check::Chain
            }
            SslMode::Require => Check::Nothing,
            SslMode::VerifyCa => Check::Chain,
            SslMode::VerifyFull => Check::ChainAndName,
        };
        let roots = match (check, given_roots) {
            (Check::Nothing, _) => None,
            (_, Some(roots)) => Some(roots),
            (_, None) => match default_roots {
                Some(path) if path.exists() => Some(Roots::File(path)),
                Some(path) => {
                    return Err(format!(
                        "sslmode={} needs the CA certificate that signed the server's: give sslrootcert=PATH \
                         (the default, {}, does not exist)",
                        mode.name(),
                        path.display()
                    ));
                }
                None => {
                    return Err(format!(
                        "sslmode={} needs the CA certificate that signed the server's: give sslrootcert=PATH",
                        mode.name()
                    ));
                }
            },
        };
        Ok(Resolved { mode, check, roots, client: self.client(dot.as_deref())?, sni })
    }

    /// The client certificate and key: those given, or libpq's `~/.postgresql/postgresql.crt` and `.key` when
    /// that certificate exists.
    fn client(&self, dot: Option<&Path>) -> Result<Option<(PathBuf, PathBuf)>, String> {
        let default = |name: &str| dot.map(|d| d.join(name));
        let cert = match self.sslcert.as_deref().filter(|c| !c.is_empty()) {
            Some(cert) => PathBuf::from(cert),
            None => match default("postgresql.crt") {
                Some(cert) if cert.exists() => cert,
                _ if self.sslkey.as_deref().is_some_and(|k| !k.is_empty()) => {
                    return Err("sslkey is given without sslcert: give both, or neither".into());
                }
                _ => return Ok(None),
            },
        };
        let key = match self.sslkey.as_deref().filter(|k| !k.is_empty()) {
            Some(key) => PathBuf::from(key),
            None => default("postgresql.key").ok_or_else(|| format!("sslcert={} needs sslkey=PATH", cert.display()))?,
        };
        Ok(Some((cert, key)))
    }
}
