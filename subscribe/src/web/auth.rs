//! Who may see the cameras: an exposed address needs a token, and every request must carry it.

use std::net::SocketAddr;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::login::login_url;
use super::{App, Error, escape};
use crate::events::web::AuthRefused;

const TOKEN_COOKIE: &str = "framewire_token";

/// Whether the listen address needs a token, and whether one was given. HTTPS does not stand in for the
/// token: it hides the cameras from the network, not from whoever can reach the address.
pub fn check_exposure(listen: &SocketAddr, token: Option<&str>) -> Result<(), Error> {
    if listen.ip().is_loopback() || token.is_some_and(|t| !t.is_empty()) {
        Ok(())
    } else {
        Err(Error::Exposed { listen: *listen })
    }
}

/// The token requests must carry. What is compared is SHA-256 digests, in constant time: how long a refusal
/// takes says neither how much of a guess was right nor how long the token is.
#[derive(Clone)]
pub(super) struct Token {
    digest: [u8; 32],
    /// The token percent-encoded, as the cookie holds it: a token may hold `;`, `,` or spaces, which a
    /// cookie value cannot.
    cookie: String,
}

impl Token {
    pub(super) fn new(token: &str) -> Token {
        Token {
            digest: Sha256::digest(token.as_bytes()).into(),
            cookie: utf8_percent_encode(token, NON_ALPHANUMERIC).to_string(),
        }
    }

    /// The token as its cookie holds it.
    pub(super) fn cookie(&self) -> &str {
        &self.cookie
    }

    pub(super) fn matches(&self, given: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(given).into();
        digest.ct_eq(&self.digest).into()
    }
}

/// Lets a request through with the token as a bearer header, the cookie, or `?token=`. The last sets the
/// cookie, so a link with the token opens a page whose own requests then carry it; a browser loading a page
/// that way is sent on to the same URL without the token, which then stays out of the address bar.
pub(super) async fn auth(State(app): State<App>, req: Request, next: Next) -> Response {
    let Some(token) = &app.token else { return next.run(req).await };
    if open_to_all(&req) {
        return next.run(req).await;
    }
    let headers = req.headers();
    let bearer = bearer(headers).is_some_and(|t| token.matches(t));
    let cookie = cookie_value(headers, TOKEN_COOKIE).is_some_and(|v| token.matches(&decoded(&v)));
    let query = query_token(req.uri().query()).is_some_and(|t| token.matches(&t));
    if !(bearer || cookie || query) {
        AuthRefused { path: req.uri().path() }.emit();
        // A person opening a page gets the login form, which brings them back here; a script gets a 401.
        if is_page_load(&req) {
            return Redirect::to(&login_url(&without_token(req.uri()))).into_response();
        }
        return (
            StatusCode::UNAUTHORIZED,
            "framewire: a valid token is needed (?token=… or Authorization: Bearer …)\n",
        )
            .into_response();
    }
    let set_cookie = (query && !cookie).then(|| session_cookie(&token.cookie, app.https));
    let mut resp =
        if query && is_page_load(&req) { refresh_page(&without_token(req.uri())) } else { next.run(req).await };
    if let Some(c) = set_cookie
        && let Ok(v) = HeaderValue::from_str(&c)
    {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// The cookie that keeps the token for the page's own requests: out of scripts' reach (`HttpOnly`), never
/// sent along with another site's requests (`SameSite=Strict`) and, over HTTPS, never sent in clear
/// (`Secure`; over plain HTTP a browser would refuse to keep it).
pub(super) fn session_cookie(value: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{TOKEN_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{secure}")
}

/// The same cookie, emptied and expired: logging out.
pub(super) fn clear_cookie(secure: bool) -> String {
    format!("{}; Max-Age=0", session_cookie("", secure))
}

/// What anyone may load: the login form, where it posts, and the style it is drawn with.
fn open_to_all(req: &Request) -> bool {
    matches!(req.uri().path(), "/login" | "/logout" | "/style.css")
}

/// The token of `Authorization: Bearer …`, as sent (the scheme's name is case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let v = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = v.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then_some(token)
}

/// `?token=`, percent-decoded: a token with `/`, `=`, `&` or `%` in it is given percent-encoded in a URL.
fn query_token(query: Option<&str>) -> Option<Vec<u8>> {
    query?.split('&').find_map(|kv| kv.strip_prefix("token=")).map(decoded)
}

/// Percent-decoded bytes. A `+` stays a `+` (it is not a form's space): a base64 token pasted into a URL
/// unencoded still works.
fn decoded(s: &str) -> Vec<u8> {
    percent_decode_str(s).collect()
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

/// Whether a browser is loading a page, whose URL the address bar and the history show (a script fetching
/// data, or curl, gets its answer at once).
fn is_page_load(req: &Request) -> bool {
    req.method() == Method::GET
        && req.headers().get_all(header::ACCEPT).iter().any(|v| v.to_str().is_ok_and(|v| v.contains("text/html")))
}

/// The request's URL without its `token` parameter, as a path on this server: never `//host/…`, which a
/// browser would read as another server.
fn without_token(uri: &Uri) -> String {
    let path = format!("/{}", uri.path().trim_start_matches(['/', '\\']));
    let rest: Vec<&str> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|kv| !kv.is_empty() && *kv != "token" && !kv.starts_with("token="))
        .collect();
    if rest.is_empty() { path } else { format!("{path}?{}", rest.join("&")) }
}

/// Sends the browser on to `to`, a URL of this server. A refresh from a page rather than an HTTP redirect:
/// a `SameSite=Strict` cookie is not sent along a redirect that a link on another site started (the link in
/// an e-mail or a chat), so that would end on a 401, while a navigation this page starts is same-site. The
/// refresh replaces the URL with the token in the history.
fn refresh_page(to: &str) -> Response {
    let to = escape(to);
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"0;url={to}\">\
         <title>framewire</title></head><body><a href=\"{to}\">framewire</a></body></html>"
    );
    ([(header::CACHE_CONTROL, "no-store")], Html(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposed_addresses_need_a_token() {
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert!(check_exposure(&lo, None).is_ok());
        assert!(check_exposure(&any, None).unwrap_err().to_string().contains("--token"));
        assert!(check_exposure(&any, Some("")).is_err());
        assert!(check_exposure(&any, Some("s3cret")).is_ok());
        assert!(check_exposure(&"[::1]:8080".parse().unwrap(), None).is_ok());
    }

    #[test]
    fn only_the_token_itself_matches() {
        let t = Token::new("s3cret");
        assert!(t.matches(b"s3cret"));
        for wrong in [&b"s3creT"[..], b"s3cre", b"s3crett", b"", b"S3CRET"] {
            assert!(!t.matches(wrong), "{wrong:?}");
        }
    }

    #[test]
    fn query_tokens_are_percent_decoded() {
        assert_eq!(query_token(Some("a=1&token=a%2Bb%2Fc%3Dd%25e%26f")).unwrap(), b"a+b/c=d%e&f");
        assert_eq!(query_token(Some("token=a+b/c=")).unwrap(), b"a+b/c=");
        assert_eq!(query_token(Some("tokens=x")), None);
        assert_eq!(query_token(None), None);
    }

    #[test]
    fn bearer_tokens_are_taken_as_sent() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer a%2Bb"));
        assert_eq!(bearer(&h), Some(&b"a%2Bb"[..]));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn the_cookie_holds_any_token_and_its_flags() {
        let t = Token::new("a; b=c,d %");
        let c = session_cookie(&t.cookie, true);
        assert!(c.ends_with("; Path=/; HttpOnly; SameSite=Strict; Secure"), "{c}");
        assert!(!session_cookie(&t.cookie, false).contains("Secure"));
        let mut h = HeaderMap::new();
        let pair = c.split(';').next().unwrap();
        h.insert(header::COOKIE, HeaderValue::from_str(&format!("a=1; {pair}; b=2")).unwrap());
        assert!(t.matches(&decoded(&cookie_value(&h, TOKEN_COOKIE).unwrap())));
        assert_eq!(cookie_value(&h, "c"), None);
    }

    #[test]
    fn the_url_left_after_the_token_stays_on_this_server() {
        let u = |s: &str| without_token(&s.parse().unwrap());
        assert_eq!(u("/?token=x"), "/");
        assert_eq!(u("/events/e1?a=1&token=x&b=2"), "/events/e1?a=1&b=2");
        assert_eq!(u("//evil.example/?token=x"), "/evil.example/");
        let page = refresh_page("/?a=1&b=\"2\"");
        assert_eq!(page.headers()[header::CACHE_CONTROL], "no-store");
    }

    #[test]
    fn only_a_browser_loading_a_page_is_sent_on() {
        let req = |accept: &str| {
            axum::http::Request::builder().header(header::ACCEPT, accept).body(axum::body::Body::empty()).unwrap()
        };
        assert!(is_page_load(&req("text/html,application/xhtml+xml,*/*;q=0.8")));
        assert!(!is_page_load(&req("*/*")));
        assert!(!is_page_load(&req("text/event-stream")));
    }
}
