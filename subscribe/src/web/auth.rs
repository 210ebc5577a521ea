//! Who may see the cameras: an exposed address needs a token, and every request must carry it.

use std::net::SocketAddr;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{App, Error};
use crate::events::web::AuthRefused;

const TOKEN_COOKIE: &str = "framewire_token";

/// Whether the listen address needs a token, and whether one was given.
pub fn check_exposure(listen: &SocketAddr, token: Option<&str>) -> Result<(), Error> {
    if listen.ip().is_loopback() || token.is_some_and(|t| !t.is_empty()) {
        Ok(())
    } else {
        Err(Error::Exposed { listen: *listen })
    }
}

/// Lets a request through with the token as a bearer header, the cookie, or `?token=`; the last one sets the
/// cookie, so a link with the token opens a page whose own requests then carry it.
pub(super) async fn auth(State(app): State<App>, req: Request, next: Next) -> Response {
    let Some(token) = &app.token else { return next.run(req).await };
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t == token);
    let cookie = cookie_value(req.headers(), TOKEN_COOKIE).is_some_and(|t| t == *token);
    let query = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")))
        .is_some_and(|t| t == token);
    if !(bearer || cookie || query) {
        AuthRefused { path: req.uri().path() }.emit();
        return (
            StatusCode::UNAUTHORIZED,
            "framewire: a valid token is needed (?token=… or Authorization: Bearer …)\n",
        )
            .into_response();
    }
    let mut resp = next.run(req).await;
    if query
        && !cookie
        && let Ok(v) = HeaderValue::from_str(&format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"))
    {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
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
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; framewire_token=xyz; b=2"));
        assert_eq!(cookie_value(&h, TOKEN_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie_value(&h, "c"), None);
    }
}
