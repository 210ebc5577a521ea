//! Keeping secrets out of everything framewire prints: `--help`, logs, metrics, error messages and the
//! `source_uri` of published frames. Two kinds of text carry secrets here: URLs (camera and database URLs,
//! with `user:password@` or `?token=`), and librdkafka `key=value` settings (`sasl.password=...`).
//! Whatever prints one of them goes through this module first.

use std::borrow::Cow;

/// What a hidden secret is shown as.
pub const HIDDEN: &str = "***";

/// Whether a setting, query parameter or connection-string keyword named `name` holds a secret.
///
/// Errs on the side of hiding: a hidden value that was not secret costs a little clarity in a message,
/// a shown one that was costs a leaked credential. Matching is by word (`sasl.oauthbearer.client.secret`
/// → `sasl`, `oauthbearer`, `client`, `secret`) so that `keyframes` or `ssl.key.location` (a path) stay
/// visible while `key`, `api_key` and `ssl.key.pem` do not.
pub fn is_secret_key(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let words: Vec<&str> = name.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
    const INSIDE: [&str; 11] =
        ["pass", "secret", "token", "auth", "credential", "signature", "jaas", "apikey", "pwd", "psw", "private"];
    // `loginpas`: the password parameter of many IP cameras' CGI URLs (`videostream.cgi?loginuse=&loginpas=`).
    const WHOLE: [&str; 3] = ["pw", "sig", "loginpas"];
    // `auth` also covers `sasl.oauthbearer.config`, which holds `clientSecret=...` pairs of its own.
    words.iter().any(|w| INSIDE.iter().any(|s| w.contains(s)) || WHOLE.contains(w))
        || matches!(words.last(), Some(&("key" | "pem" | "keytab")))
}

/// `value` as it may be printed for the setting `key`: hidden when the key names a secret, otherwise with
/// any URL credentials in it hidden (e.g. `sasl.oauthbearer.token.endpoint.url=https://u:p@idp/`).
pub fn value<'a>(key: &str, value: &'a str) -> Cow<'a, str> {
    if is_secret_key(key) { Cow::Borrowed(HIDDEN) } else { url(value) }
}

/// `key=value` as it may be printed.
pub fn setting(key: &str, value: &str) -> String {
    format!("{key}={}", self::value(key, value))
}

/// A URL, or a connection string, as it may be printed: a password in `user:password@` becomes `***`
/// (the user name stays, it helps to see which account was used), and so do the values of query and
/// fragment parameters that name a secret (`?password=`, `?token=`, `?auth=`, `?key=`, `?signature=`,
/// `#access_token=`). A libpq-style `host=db user=fw password=x` string has its secret keywords hidden.
/// Anything else (a file path, a URL without secrets) comes back unchanged, byte for byte.
pub fn url(s: &str) -> Cow<'_, str> {
    if !s.contains("://") {
        return keywords(s);
    }
    match url::Url::parse(s) {
        Ok(parsed) => match hide_in_url(parsed) {
            Some(hidden) => Cow::Owned(hidden),
            None => Cow::Borrowed(s),
        },
        Err(_) => Cow::Owned(unparsed(s)),
    }
}

/// The URL with its secrets hidden, or None when it has none (so the caller keeps the original text:
/// re-serialising would normalise it, e.g. add a trailing `/`).
fn hide_in_url(mut u: url::Url) -> Option<String> {
    let mut changed = false;
    if u.password().is_some_and(|p| !p.is_empty()) {
        // Only URLs that cannot have a host refuse a password, and those cannot have parsed with one.
        changed |= u.set_password(Some(HIDDEN)).is_ok();
    }
    if let Some(q) = u.query().and_then(params) {
        u.set_query(Some(&q));
        changed = true;
    }
    if let Some(f) = u.fragment().and_then(params) {
        u.set_fragment(Some(&f));
        changed = true;
    }
    changed.then(|| u.to_string())
}

/// `a=1&token=x` → `Some("a=1&token=***")`; None when no parameter is secret.
fn params(q: &str) -> Option<String> {
    let mut hid = false;
    let out: Vec<String> = q
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret_key(&decoded(k)) => {
                hid = true;
                format!("{k}={HIDDEN}")
            }
            _ => pair.to_string(),
        })
        .collect();
    hid.then(|| out.join("&"))
}

fn decoded(k: &str) -> String {
    url::form_urlencoded::parse(k.as_bytes()).next().map(|(k, _)| k.into_owned()).unwrap_or_default()
}

/// A URL the parser refused can still hold credentials, and it is often refused because of them: a
/// password typed with `#`, `?` or `/` unescaped (`rtsp://admin:pa#ss@cam/s`) ends the authority early,
/// and the rest reads as a port. So the host is taken to start after the last `@`, everything before it
/// is hidden (in a broken URL with an `@` in its query, some of the address too: hiding errs that way), and
/// a secret parameter is hidden wherever it stands.
fn unparsed(s: &str) -> String {
    let Some((scheme, rest)) = s.split_once("://") else { return s.to_string() };
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((_, host_on)) => (format!("{HIDDEN}@"), host_on),
        None => (String::new(), rest),
    };
    let mut out = format!("{scheme}://{userinfo}");
    // Every `name=value` between `?`, `&`, `#` and `;`, wherever the parser would have put it.
    let mut piece_start = 0;
    for (i, c) in rest.char_indices().chain([(rest.len(), '&')]) {
        if matches!(c, '?' | '&' | '#' | ';') {
            let piece = &rest[piece_start..i];
            match piece.split_once('=') {
                Some((k, _)) if piece_start > 0 && is_secret_key(&decoded(k)) => out.push_str(&format!("{k}={HIDDEN}")),
                _ => out.push_str(piece),
            }
            if i < rest.len() {
                out.push(c);
            }
            piece_start = i + c.len_utf8();
        }
    }
    out
}

/// libpq's `keyword=value` connection strings (`host=db password=x`), space-separated, values optionally
/// single-quoted. Text with no secret keyword comes back as it was.
fn keywords(s: &str) -> Cow<'_, str> {
    let mut out = String::with_capacity(s.len());
    let mut hid = false;
    let mut rest = s;
    while let Some(eq) = rest.find('=') {
        let before = &rest[..eq];
        let key_start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let key = &before[key_start..];
        let after = &rest[eq + 1..];
        let value_len = if let Some(quoted) = after.strip_prefix('\'') {
            // Up to the closing quote that is not escaped with a backslash.
            let mut escaped = false;
            let close = quoted.char_indices().find(|&(_, c)| {
                let end = c == '\'' && !escaped;
                escaped = c == '\\' && !escaped;
                end
            });
            close.map_or(after.len(), |(i, _)| i + 2)
        } else {
            after.find(char::is_whitespace).unwrap_or(after.len())
        };
        out.push_str(&rest[..eq + 1]);
        if !key.is_empty() && is_secret_key(key) {
            out.push_str(HIDDEN);
            hid = true;
        } else {
            out.push_str(&after[..value_len]);
        }
        rest = &after[value_len..];
    }
    if !hid {
        return Cow::Borrowed(s);
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// `text` with every occurrence of each of `secrets` replaced by [`HIDDEN`]: for messages written by
/// someone else (librdkafka) that may quote a value framewire knows to be secret.
pub fn scrub<'a>(text: &str, secrets: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = text.to_string();
    // Longest first, so a secret that contains another is hidden whole.
    let mut secrets: Vec<&str> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in secrets {
        out = out.replace(s, HIDDEN);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_are_recognised() {
        for k in [
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.config",
            "sasl.oauthbearer.assertion.private.key.passphrase",
            "ssl.key.pem",
            "ssl_key_pem",
            "password",
            "PASSWORD",
            "token",
            "access_token",
            "X-Amz-Security-Token",
            "X-Amz-Signature",
            "X-Amz-Credential",
            "sig",
            "auth",
            "key",
            "api_key",
            "apikey",
            "pwd",
            "passwd",
            "psw",
            "loginpas",
        ] {
            assert!(is_secret_key(k), "{k} should be secret");
        }
        for k in [
            "bootstrap.servers",
            "linger.ms",
            "debug",
            "sasl.username",
            "sasl.mechanisms",
            "ssl.key.location",
            "ssl.keystore.location",
            "ssl.cipher.suites",
            "security.protocol",
            "keyframes",
            "channel",
            "user",
        ] {
            assert!(!is_secret_key(k), "{k} should not be secret");
        }
    }

    #[test]
    fn settings_hide_secret_values_and_credentials_in_url_values() {
        assert_eq!(setting("sasl.password", "hunter2"), "sasl.password=***");
        assert_eq!(setting("ssl.cipher.suites", "A,B"), "ssl.cipher.suites=A,B");
        assert_eq!(
            setting("sasl.oauthbearer.token.endpoint.url", "https://u:hunter2@idp/t"),
            "sasl.oauthbearer.token.endpoint.url=***"
        );
        assert_eq!(setting("client.rack", "https://u:hunter2@idp/t"), "client.rack=https://u:***@idp/t");
    }

    #[test]
    fn url_passwords_are_hidden_and_users_kept() {
        assert_eq!(url("rtsp://admin:secret@10.0.0.5:554/stream1"), "rtsp://admin:***@10.0.0.5:554/stream1");
        assert_eq!(url("postgres://fw:secret@db:5432/fw"), "postgres://fw:***@db:5432/fw");
        assert_eq!(url("http://u:p@host"), "http://u:***@host/");
        // An `@` in the password, unescaped, as people type it.
        assert!(!url("rtsp://admin:p@ss@cam/s").contains("p@ss"), "{}", url("rtsp://admin:p@ss@cam/s"));
    }

    #[test]
    fn text_without_secrets_comes_back_unchanged() {
        for s in [
            "rtsp://10.0.0.5/s",
            "postgres://fw@db/fw",
            "sqlite://x.db",
            "http://host",
            "/videos/a@b.mp4",
            "rtsp://cam/s?channel=1&subtype=0",
            "C:\\videos\\a.mp4",
            "",
        ] {
            assert_eq!(url(s), s);
            assert!(matches!(url(s), Cow::Borrowed(_)), "{s} was copied");
        }
    }

    #[test]
    fn secret_query_and_fragment_parameters_are_hidden() {
        assert_eq!(
            url("http://cam/video.mjpg?user=admin&password=hunter2&res=hd"),
            "http://cam/video.mjpg?user=admin&password=***&res=hd"
        );
        assert_eq!(url("rtsp://cam:554/live?token=abc.def"), "rtsp://cam:554/live?token=***");
        assert_eq!(
            url("https://s3/b/k.mp4?X-Amz-Signature=f00&X-Amz-Expires=60"),
            "https://s3/b/k.mp4?X-Amz-Signature=***&X-Amz-Expires=60"
        );
        assert_eq!(
            url("https://h/p?auth=1&key=2&sig=3&keyframes=1"),
            "https://h/p?auth=***&key=***&sig=***&keyframes=1"
        );
        assert_eq!(url("https://h/cb#access_token=xyz&state=1"), "https://h/cb#access_token=***&state=1");
        // Percent-encoded names are recognised too.
        assert_eq!(url("https://h/p?pass%77ord=x"), "https://h/p?pass%77ord=***");
    }

    #[test]
    fn camera_urls_with_credentials_in_both_places_hide_both() {
        assert_eq!(
            url("rtsp://admin:hunter2@10.0.0.5:554/Streaming/101?token=abc&channel=1"),
            "rtsp://admin:***@10.0.0.5:554/Streaming/101?token=***&channel=1"
        );
        // CGI cameras take the account in the query, under names of their own.
        assert_eq!(url("http://cam/v.cgi?user=x&pwd=hunter2"), "http://cam/v.cgi?user=x&pwd=***");
        assert_eq!(
            url("http://cam:88/cgi-bin/CGIStream.cgi?cmd=GetMJStream&usr=admin&pwd=hunter2"),
            "http://cam:88/cgi-bin/CGIStream.cgi?cmd=GetMJStream&usr=admin&pwd=***"
        );
        assert_eq!(
            url("http://cam/videostream.cgi?loginuse=admin&loginpas=hunter2"),
            "http://cam/videostream.cgi?loginuse=admin&loginpas=***"
        );
        assert_eq!(url("rtsp://cam/live?passwd=a&psw=b&auth=c"), "rtsp://cam/live?passwd=***&psw=***&auth=***");
    }

    #[test]
    fn urls_the_parser_refuses_are_still_redacted() {
        let shown = url("rtsp://admin:hunter2@cam:99999/s?token=abc");
        assert_eq!(shown, "rtsp://***@cam:99999/s?token=***");
        assert_eq!(url("rtsp://cam:99999/s?channel=1&x=2#t"), "rtsp://cam:99999/s?channel=1&x=2#t");
        // A password typed with `#`, `?` or `/` unescaped ends the authority early, which is why the parser
        // refuses it: none of it shows.
        for typed in ["rtsp://admin:hun#ter2@cam/s", "rtsp://admin:hun?ter2@cam:554/s", "rtsp://admin:hun/ter2@cam/s"] {
            let shown = url(typed);
            assert!(!shown.contains("hun") && !shown.contains("ter2"), "{typed} -> {shown}");
            assert!(shown.starts_with("rtsp://***@cam"), "{typed} -> {shown}");
        }
        assert_eq!(url("rtsp://admin:hun/ter2@cam/s?auth=x;token=y"), "rtsp://***@cam/s?auth=***;token=***");
    }

    #[test]
    fn libpq_keyword_strings_hide_passwords() {
        assert_eq!(url("host=db user=fw password=hunter2 dbname=fw"), "host=db user=fw password=*** dbname=fw");
        assert_eq!(url("host=db password='hun ter\\'2' user=fw"), "host=db password=*** user=fw");
        assert_eq!(url("host=db user=fw"), "host=db user=fw");
    }

    #[test]
    fn scrub_hides_known_secrets_in_foreign_messages() {
        let msg = r#"Invalid value "hunter2" for configuration property "sasl.password""#;
        assert_eq!(scrub(msg, ["hunter2"]), r#"Invalid value "***" for configuration property "sasl.password""#);
        assert_eq!(scrub("a ab abc", ["ab", "abc", ""]), "a *** ***");
    }
}
