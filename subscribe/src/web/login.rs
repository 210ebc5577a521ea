//! The login form: the token typed once into a password field rather than put in a URL, where the address
//! bar, the history and any proxy's log would keep it. Kept afterwards in the same `HttpOnly` cookie as a
//! `?token=` link sets.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::App;
use super::auth::{clear_cookie, session_cookie};
use super::page::{escape, page};
use crate::events::web::{AuthRefused, LoggedIn};

#[derive(Deserialize)]
pub(super) struct NextQuery {
    #[serde(default)]
    next: String,
}

/// Where to go after logging in: a path on this server, never `//host/…` or a full URL, which would make the
/// form a way to send people elsewhere. Only visible ASCII: browsers drop tabs and line breaks from a URL,
/// so `/<tab>/host` would become `//host`; and no backslash, which they read as a slash.
pub(super) fn local_path(next: &str) -> &str {
    let visible = next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    let ok = visible && next.starts_with('/') && !next.starts_with("//");
    if ok { next } else { "/" }
}

/// The URL of the login form that comes back to `to`.
pub(super) fn login_url(to: &str) -> String {
    format!("/login?{}", super::page::query_string([("next", to)]))
}

fn form(next: &str, error: Option<&str>) -> String {
    let error = error.map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))).unwrap_or_default();
    format!(
        "<h2>Log in</h2>{error}<form id=\"login\" method=\"post\" action=\"/login\">\
<input type=\"hidden\" name=\"next\" value=\"{next}\">\
<label>Access token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" required autofocus></label>\
<button type=\"submit\">Log in</button></form>\
<p class=\"hint\">The token is the web view's <code>--token</code> (<code>FRAMEWIRE_WEB_TOKEN</code>).</p>",
        next = escape(local_path(next))
    )
}

pub(super) async fn login_page(State(app): State<App>, Query(q): Query<NextQuery>) -> Response {
    if app.token.is_none() {
        return Redirect::to(local_path(&q.next)).into_response();
    }
    page("log in", "login", &form(&q.next, None), false).into_response()
}

pub(super) async fn login_post(State(app): State<App>, body: Bytes) -> Response {
    let (mut token, mut next) = (Vec::new(), String::from("/"));
    for (k, v) in url::form_urlencoded::parse(&body) {
        match &*k {
            "token" => token = v.as_bytes().to_vec(),
            "next" => next = v.into_owned(),
            _ => {}
        }
    }
    let Some(expected) = &app.token else { return Redirect::to(local_path(&next)).into_response() };
    if !expected.matches(&token) {
        AuthRefused { path: "/login" }.emit();
        let body = form(&next, Some("That is not the token."));
        return (StatusCode::UNAUTHORIZED, page("log in", "login", &body, false)).into_response();
    }
    LoggedIn.emit();
    let mut resp = Redirect::to(local_path(&next)).into_response();
    if let Ok(v) = HeaderValue::from_str(&session_cookie(expected.cookie(), app.https)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

pub(super) async fn logout(State(app): State<App>) -> Response {
    let mut resp = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&clear_cookie(app.https)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logging_in_only_leads_to_this_server() {
        assert_eq!(local_path("/review?camera=a"), "/review?camera=a");
        for away in
            ["//evil.example/", "/\\evil.example", "https://evil.example/", "", "review", "/\t/evil.example", "/\n"]
        {
            assert_eq!(local_path(away), "/", "{away}");
        }
        assert_eq!(login_url("/review?camera=a&label=b"), "/login?next=%2Freview%3Fcamera%3Da%26label%3Db");
        assert!(form("//evil", None).contains("name=\"next\" value=\"/\""));
    }
}
