//! What every server-rendered page shares: the document around its content, its header and navigation, and
//! the way it writes times and colours.

use axum::response::Html;
use framewire_common::time::rfc3339_ms;

/// Text made safe to put in HTML, inside elements and quoted attributes.
pub(super) fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A whole page: `main` is its content, already HTML. The header links the live view and the review, and
/// holds a log-out button where a token guards the pages.
pub(super) fn page(title: &str, class: &str, main: &str, logout: bool) -> Html<String> {
    let title = escape(title);
    let logout = if logout {
        "<form method=\"post\" action=\"/logout\" class=\"logout\"><button type=\"submit\">Log out</button></form>"
    } else {
        ""
    };
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title} · framewire</title>\
<link rel=\"stylesheet\" href=\"/style.css\"></head><body class=\"{class}\"><header><h1><a href=\"/\">framewire</a></h1>\
<nav><a href=\"/\">Live</a><a href=\"/review\">Review</a></nav>{logout}</header><main>{main}</main></body></html>"
    ))
}

/// A Unix time in ms as `2026-12-06 19:45:01 UTC`: the pages are rendered by the server, which does not know
/// the reader's time zone, so they say which one they use.
pub(super) fn utc(ms: i64) -> String {
    let t = rfc3339_ms(ms);
    format!("{} UTC", t.get(..19).unwrap_or_default().replace('T', " "))
}

/// A Unix time in ms as an `<input type="datetime-local">` value (`2026-12-06T19:45`), in UTC.
pub(super) fn datetime_local(ms: i64) -> String {
    rfc3339_ms(ms).get(..16).unwrap_or_default().to_string()
}

/// A time as a form or a URL gives it: a `datetime-local` value (UTC, with or without seconds), RFC 3339 or
/// Unix ms.
pub(super) fn parse_time(s: &str) -> Option<i64> {
    // A `datetime-local` value leaves the seconds out.
    let full = if s.len() == 16 { format!("{s}:00") } else { s.to_string() };
    framewire_common::time::parse_ms(&full).ok()
}

/// How long ago, in words: `just now`, `12 s ago`, `3 min ago`, `2 h ago`, `4 days ago`.
pub(super) fn ago(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=1 => "just now".into(),
        2..=119 => format!("{s} s ago"),
        120..=7199 => format!("{} min ago", s / 60),
        7200..=172_799 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

/// A label's colour, the same as on the snapshots and the live page.
pub(super) fn colour(label: &str) -> String {
    let c = crate::annotate::colour(label);
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

/// A query string of the non-empty pairs, percent-encoded.
pub(super) fn query_string<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.into_iter().filter(|(_, v)| !v.is_empty()) {
        q.append_pair(k, v);
    }
    q.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_back_as_written() {
        let ms = 1_765_050_300_000; // 2025-12-06 19:45:00 UTC
        assert_eq!(utc(ms + 1_234), "2025-12-06 19:45:01 UTC");
        assert_eq!(datetime_local(ms), "2025-12-06T19:45");
        assert_eq!(parse_time("2025-12-06T19:45"), Some(ms));
        assert_eq!(parse_time("2025-12-06T19:45:30"), Some(ms + 30_000));
        assert_eq!(parse_time(&ms.to_string()), Some(ms));
        for bad in ["", "yesterday", "2025-13-06T19:45", "-5"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn ages_read_as_people_say_them() {
        assert_eq!(ago(-50), "just now");
        assert_eq!(ago(12_400), "12 s ago");
        assert_eq!(ago(180_000), "3 min ago");
        assert_eq!(ago(2 * 3_600_000 + 5), "2 h ago");
        assert_eq!(ago(4 * 86_400_000), "4 days ago");
    }

    #[test]
    fn pages_escape_their_title_and_query_strings_skip_empty_values() {
        let Html(p) = page("<cam>", "x", "<p>hi</p>", true);
        assert!(p.contains("<title>&lt;cam&gt; · framewire</title>") && p.contains("action=\"/logout\""), "{p}");
        assert!(!page("a", "x", "", false).0.contains("/logout"));
        assert_eq!(
            query_string([("camera", "door 1"), ("label", ""), ("before", "5-a&b")]),
            "camera=door+1&before=5-a%26b"
        );
    }
}
