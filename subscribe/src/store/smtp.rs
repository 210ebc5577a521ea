//! The SMTP side of alert emails: `--smtp-url` and friends, the lettre transport they make, and what a
//! server's answer means for the outbox (sent, try again, give up).
//!
//! The URL follows lettre's connection URLs:
//! - `smtp://HOST[:PORT]`: no encryption (port 25), for a relay on a trusted network;
//! - `smtp://HOST[:PORT]?tls=required`: STARTTLS, refusing a server that does not offer it (port 587);
//! - `smtp://HOST[:PORT]?tls=opportunistic`: STARTTLS when the server offers it (port 587);
//! - `smtps://HOST[:PORT]`: TLS from the first byte (port 465).
//!
//! Credentials go in the URL (`smtps://USER:PASSWORD@HOST`, percent-encoded), and only with the two
//! forms that always encrypt: a password is never sent in the clear.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use framewire_common::error::chain;
use framewire_common::redact;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Longest wait for one SMTP conversation: the outbox delivers rows one after another.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default, clap::Args)]
pub struct SmtpArgs {
    /// SMTP server for alert rules with `email`: smtp://HOST:25 (no encryption),
    /// smtp://HOST:587?tls=required (STARTTLS), smtps://USER:PASSWORD@HOST:465 (TLS).
    #[arg(long, env = "FRAMEWIRE_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// Sender of alert emails. Default: framewire@<this host's name>.
    #[arg(long, env = "FRAMEWIRE_SMTP_FROM")]
    pub smtp_from: Option<String>,

    /// Extra CA certificates (PEM) to trust for the SMTP server's TLS, beside the public roots.
    #[arg(long, env = "FRAMEWIRE_SMTP_CA")]
    pub smtp_ca: Option<PathBuf>,

    /// Attempts to send an alert email before it is given up (logged and counted). A permanent refusal
    /// (5xx) is given up at once.
    #[arg(long, env = "FRAMEWIRE_EMAIL_RETRIES", default_value_t = 5)]
    pub email_retries: u32,
}

/// Why the SMTP settings cannot be used; URLs are shown without their password.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("--smtp-url {url}: {reason}")]
    Url { url: String, reason: String },
    #[error("--smtp-from {from:?} is not an address: {reason}")]
    From { from: String, reason: String },
    #[error("--smtp-ca {}: {reason}", path.display())]
    Ca { path: PathBuf, reason: String },
    #[error("SMTP TLS settings for {url}: {reason}")]
    Tls { url: String, reason: String },
}

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    Plain,
    Opportunistic,
    StartTls,
    Tls,
}

/// A checked `--smtp-url`.
#[derive(Debug, Clone, PartialEq)]
struct SmtpUrl {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<(String, String)>,
    /// The name to greet with (the URL's path), when not this host's name.
    hello: Option<String>,
}

impl SmtpUrl {
    fn parse(s: &str) -> Result<SmtpUrl, SmtpError> {
        let bad = |reason: String| SmtpError::Url { url: redact::url(s).into_owned(), reason };
        let u = url::Url::parse(s).map_err(|e| bad(e.to_string()))?;
        let tls = u.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
        let (security, port) = match (u.scheme(), tls.as_deref()) {
            ("smtp", None) => (Security::Plain, 25),
            ("smtp", Some("opportunistic")) => (Security::Opportunistic, 587),
            ("smtp", Some("required")) => (Security::StartTls, 587),
            ("smtps", None) => (Security::Tls, 465),
            ("smtp" | "smtps", Some(t)) => {
                return Err(bad(format!("tls={t} is not one of `required`, `opportunistic` (with smtp://)")));
            }
            (scheme, _) => return Err(bad(format!("{scheme}:// is not smtp:// or smtps://"))),
        };
        let host = u.host_str().filter(|h| !h.is_empty()).ok_or_else(|| bad("no host".into()))?;
        let decode = |v: &str| percent_encoding::percent_decode_str(v).decode_utf8().map(|c| c.into_owned());
        let credentials = match u.password() {
            None if u.username().is_empty() => None,
            None => return Err(bad("a user without a password: give USER:PASSWORD@".into())),
            Some(p) => {
                let user = decode(u.username()).map_err(|e| bad(format!("user name: {e}")))?;
                let password = decode(p).map_err(|e| bad(format!("password: {e}")))?;
                Some((user, password))
            }
        };
        if credentials.is_some() && matches!(security, Security::Plain | Security::Opportunistic) {
            return Err(bad("the password would go unencrypted: use smtps:// or smtp://…?tls=required".into()));
        }
        let hello = Some(u.path().trim_matches('/')).filter(|p| !p.is_empty()).map(String::from);
        Ok(SmtpUrl { host: host.to_string(), port: u.port().unwrap_or(port), security, credentials, hello })
    }
}

/// What became of one attempt to send.
#[derive(Debug)]
pub enum Refused {
    /// Worth another attempt: the server is unreachable, timed out, or answered 4xx.
    Transient(String),
    /// The server answered 5xx (unknown recipient, refused sender or message, failed login): given up.
    Permanent(String),
}

/// Sends alert emails.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    pub from: Mailbox,
    /// The URL as logs may show it.
    pub shown: String,
}

impl Mailer {
    /// The mailer `--smtp-url` asks for; `None` without one.
    pub fn new(args: &SmtpArgs) -> Result<Option<Mailer>, SmtpError> {
        let Some(raw) = &args.smtp_url else { return Ok(None) };
        let shown = redact::url(raw).into_owned();
        let url = SmtpUrl::parse(raw)?;
        let from = from_address(args.smtp_from.as_deref())?;
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&url.host).port(url.port).timeout(Some(TIMEOUT));
        if url.security != Security::Plain {
            let mut tls = TlsParameters::builder(url.host.clone());
            if let Some(path) = &args.smtp_ca {
                tls = tls.add_root_certificate(ca(path)?);
            }
            let tls = tls.build_rustls().map_err(|e| SmtpError::Tls { url: shown.clone(), reason: e.to_string() })?;
            builder = builder.tls(match url.security {
                Security::Opportunistic => Tls::Opportunistic(tls),
                Security::StartTls => Tls::Required(tls),
                _ => Tls::Wrapper(tls),
            });
        }
        if let Some((user, password)) = url.credentials {
            builder = builder.credentials(Credentials::new(user, password));
        }
        if let Some(name) = url.hello {
            builder = builder.hello_name(ClientId::Domain(name));
        }
        Ok(Some(Mailer { transport: builder.build(), from, shown }))
    }

    /// One attempt to hand the message to the server.
    pub async fn send(&self, message: &Message) -> Result<(), Refused> {
        match self.transport.send(message.clone()).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(Refused::Permanent(chain(&e))),
            Err(e) => Err(Refused::Transient(chain(&e))),
        }
    }
}

/// `--smtp-from`, or framewire@ this host's name (as lettre greets the server with it).
fn from_address(given: Option<&str>) -> Result<Mailbox, SmtpError> {
    match given {
        Some(f) => Mailbox::from_str(f).map_err(|e| SmtpError::From { from: f.to_string(), reason: e.to_string() }),
        None => {
            let host = match ClientId::default() {
                ClientId::Domain(d) => d,
                _ => "localhost".to_string(),
            };
            Mailbox::from_str(&format!("framewire@{host}"))
                .or_else(|_| Mailbox::from_str("framewire@localhost"))
                .map_err(|e| SmtpError::From { from: format!("framewire@{host}"), reason: e.to_string() })
        }
    }
}

fn ca(path: &PathBuf) -> Result<Certificate, SmtpError> {
    let bad = |reason: String| SmtpError::Ca { path: path.clone(), reason };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(bad("no PEM certificate in it".into()));
    }
    Certificate::from_pem(&pem).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_say_how_the_connection_is_secured_with_lettres_ports() {
        let u = SmtpUrl::parse("smtp://127.0.0.1:2525").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.security, u.credentials), ("127.0.0.1", 2525, Security::Plain, None));
        assert_eq!(SmtpUrl::parse("smtp://mx").unwrap().port, 25);
        let u = SmtpUrl::parse("smtp://a%40b:p%3Ass@mx?tls=required").unwrap();
        assert_eq!((u.port, u.security), (587, Security::StartTls));
        assert_eq!(u.credentials, Some(("a@b".into(), "p:ss".into())));
        assert_eq!(SmtpUrl::parse("smtp://mx?tls=opportunistic").unwrap().security, Security::Opportunistic);
        let u = SmtpUrl::parse("smtps://u:p@mail.example.com/relay.example.com").unwrap();
        assert_eq!((u.port, u.security, u.hello.as_deref()), (465, Security::Tls, Some("relay.example.com")));
    }

    #[test]
    fn bad_urls_say_why_without_the_password() {
        for (url, why) in [
            ("http://mx", "is not smtp://"),
            ("smtp://u:hunter2@mx", "unencrypted"),
            ("smtp://u:hunter2@mx?tls=opportunistic", "unencrypted"),
            ("smtps://u:hunter2@mx?tls=none", "tls=none"),
            ("smtp://u@mx?tls=required", "without a password"),
            ("smtp://", "no host"),
        ] {
            let e = SmtpUrl::parse(url).unwrap_err().to_string();
            assert!(e.contains(why) && !e.contains("hunter2"), "{url}: {e}");
        }
    }

    #[test]
    fn the_sender_defaults_to_this_host_and_a_bad_one_is_refused() {
        assert_eq!(from_address(None).unwrap().email.user(), "framewire");
        assert_eq!(from_address(Some("Cameras <cams@example.com>")).unwrap().email.domain(), "example.com");
        assert!(from_address(Some("not an address")).unwrap_err().to_string().contains("--smtp-from"));
    }
}
