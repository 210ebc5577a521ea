//! The review page: stored events newest first, with their best snapshot, filtered by camera, label, time and
//! score, paged by keyset (see [`PageKey`]) so that the thousandth page is as quick as the first. The same
//! filters serve `/api/events`.

use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::App;
use super::api::{json, parse_limit};
use super::page::{datetime_local, escape, page, parse_time, query_string, utc};
use super::stored::with_db;
use crate::repo::{EventFilter, Page, PageKey};
use crate::track::EventRow;

/// The review page's filters and position, as its form and links give them: all text, so that a bad value
/// gets an answer saying what the parameter takes.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ReviewQuery {
    #[serde(default)]
    camera: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    min_score: String,
    #[serde(default)]
    limit: String,
    #[serde(default)]
    before: String,
    #[serde(default)]
    after: String,
}

/// A parameter the review cannot take: 400, saying what it takes.
#[derive(Debug)]
pub(super) struct BadParam(String);

fn bad(what: &str) -> BadParam {
    BadParam(what.to_string())
}

impl IntoResponse for BadParam {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, format!("{}\n", self.0)).into_response()
    }
}

impl ReviewQuery {
    fn filter(&self, default_limit: usize) -> Result<EventFilter, BadParam> {
        let limit = parse_limit(Some(&self.limit), default_limit)
            .ok_or_else(|| bad("limit must be a whole number from 1 to 500 (larger is taken as 500)"))?;
        let time = |name: &str, v: &str| match v {
            "" => Ok(None),
            v => parse_time(v)
                .map(Some)
                .ok_or_else(|| bad(&format!("{name} must be a date and time, YYYY-MM-DDTHH:MM in UTC, or Unix ms"))),
        };
        let min_score = match self.min_score.as_str() {
            "" => None,
            s => Some(
                s.parse::<f32>()
                    .ok()
                    .filter(|s| (0.0..=1.0).contains(s))
                    .ok_or_else(|| bad("min_score must be a number from 0 to 1"))?,
            ),
        };
        let key = |v: &str| {
            v.parse::<PageKey>().map_err(|()| bad("before and after take START_MS-ID, as the page's links give"))
        };
        let page = match (self.before.as_str(), self.after.as_str()) {
            ("", "") => None,
            (b, "") => Some(Page::Older(key(b)?)),
            ("", a) => Some(Page::Newer(key(a)?)),
            _ => return Err(bad("give before or after, not both")),
        };
        Ok(EventFilter {
            camera: Some(self.camera.clone()).filter(|c| !c.is_empty()),
            label: Some(self.label.clone()).filter(|l| !l.is_empty()),
            from_ms: time("from", &self.from)?,
            to_ms: time("to", &self.to)?,
            min_score,
            page,
            limit: limit as i64,
            ..EventFilter::default()
        })
    }

    /// This query's filters, without its position: what the pager's links keep.
    fn filters(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("camera", &self.camera),
            ("label", &self.label),
            ("from", &self.from),
            ("to", &self.to),
            ("min_score", &self.min_score),
            ("limit", &self.limit),
        ]
    }
}

/// One page of events, with whether there are older and newer ones beside it.
struct Window {
    /// Each event, and whether it has a snapshot to show.
    rows: Vec<(EventRow, bool)>,
    older: bool,
    newer: bool,
}

/// Reads one more row than the page shows: whether it comes says whether there is a page beyond.
async fn window(app: &App, filter: &EventFilter) -> Result<(Window, Vec<String>, Vec<String>), Response> {
    let probe = EventFilter { limit: filter.limit + 1, ..filter.clone() };
    let (mut rows, cameras, labels) = with_db(app, async |db| {
        let mut rows = Vec::new();
        for e in db.events(&probe).await? {
            // The event page shows the snapshots of every frame the event spans; the list shows one whenever
            // that page has any.
            let thumb = e.best_snapshot.is_some() || db.first_snapshot(&e).await?.is_some();
            rows.push((e, thumb));
        }
        Ok((rows, db.camera_names().await?, db.event_labels().await?))
    })
    .await?;
    let beyond = rows.len() as i64 > filter.limit;
    let (older, newer) = match &filter.page {
        // A newer page's extra row is its newest, at the front.
        Some(Page::Newer(_)) => {
            if beyond {
                rows.remove(0);
            }
            (true, beyond)
        }
        Some(Page::Older(_)) => (beyond, true),
        None => (beyond, false),
    };
    rows.truncate(filter.limit as usize);
    Ok((Window { rows, older, newer }, cameras, labels))
}

pub(super) async fn events_api(State(app): State<App>, Query(q): Query<ReviewQuery>) -> Response {
    let filter = match q.filter(20) {
        Ok(f) => f,
        Err(bad) => return bad.into_response(),
    };
    match with_db(&app, async |db| db.events(&filter).await).await {
        Ok(rows) => json(&rows),
        Err(r) => r,
    }
}

pub(super) async fn review_page(State(app): State<App>, Query(q): Query<ReviewQuery>) -> Response {
    let filter = match q.filter(50) {
        Ok(f) => f,
        Err(bad) => return bad.into_response(),
    };
    let (w, cameras, labels) = match window(&app, &filter).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut html = filters_form(&q, &cameras, &labels);
    let _ = write!(html, "<p id=\"summary\">{}</p>", summary(&w.rows));
    html.push_str("<ol id=\"events-list\">");
    for (e, thumb) in &w.rows {
        html.push_str(&event_item(e, *thumb));
    }
    html.push_str("</ol><nav class=\"pager\" aria-label=\"pages\">");
    let link = |id: &str, rel: &str, key: (&'static str, String), text: &str| {
        let mut pairs = q.filters();
        pairs.push((key.0, &key.1));
        format!("<a id=\"{id}\" rel=\"{rel}\" href=\"/review?{}\">{text}</a>", escape(&query_string(pairs)))
    };
    if let (true, Some((first, _))) = (w.newer, w.rows.first()) {
        html.push_str(&link("newer", "prev", ("after", PageKey::of(first).to_string()), "← newer"));
    }
    if let (true, Some((last, _))) = (w.older, w.rows.last()) {
        html.push_str(&link("older", "next", ("before", PageKey::of(last).to_string()), "older →"));
    }
    html.push_str("</nav>");
    page("review", "review", &html, app.token.is_some()).into_response()
}

fn summary(rows: &[(EventRow, bool)]) -> String {
    match (rows.first(), rows.last()) {
        (Some((newest, _)), Some((oldest, _))) => format!(
            "{n} event{s}, newest first: {a} to {b}",
            n = rows.len(),
            s = if rows.len() == 1 { "" } else { "s" },
            a = utc(oldest.start_ms),
            b = utc(newest.start_ms)
        ),
        _ => "No stored event matches.".into(),
    }
}

/// The filters as a form that asks for this page again: a plain GET, so the result is a link one can share.
fn filters_form(q: &ReviewQuery, cameras: &[String], labels: &[String]) -> String {
    let options = |all: &str, values: &[String], chosen: &str| {
        let mut o = format!("<option value=\"\">{all}</option>");
        for v in values {
            let sel = if v == chosen { " selected" } else { "" };
            let _ = write!(o, "<option value=\"{v}\"{sel}>{v}</option>", v = escape(v));
        }
        o
    };
    // A time given as Unix ms (by a script or a link) is shown as the form writes it.
    let when = |v: &str| parse_time(v).map(datetime_local).unwrap_or_default();
    format!(
        "<form id=\"filters\" method=\"get\" action=\"/review\">\
<label>camera <select name=\"camera\">{cams}</select></label>\
<label>label <select name=\"label\">{labels}</select></label>\
<label>from (UTC) <input type=\"datetime-local\" name=\"from\" value=\"{from}\"></label>\
<label>to (UTC) <input type=\"datetime-local\" name=\"to\" value=\"{to}\"></label>\
<label>min score <input type=\"number\" name=\"min_score\" min=\"0\" max=\"1\" step=\"0.05\" value=\"{score}\"></label>\
<button type=\"submit\">Show</button></form>",
        cams = options("all cameras", cameras, &q.camera),
        labels = options("all labels", labels, &q.label),
        from = escape(&when(&q.from)),
        to = escape(&when(&q.to)),
        score = escape(&q.min_score),
    )
}

fn event_item(e: &EventRow, thumb: bool) -> String {
    let id = escape(&e.id);
    let thumb = if thumb {
        format!(
            "<img class=\"thumb\" src=\"/snapshots/{id}/0\" loading=\"lazy\" alt=\"\" width=\"160\" height=\"120\">"
        )
    } else {
        "<span class=\"thumb none\">no snapshot</span>".to_string()
    };
    format!(
        "<li class=\"event\" data-id=\"{id}\" data-camera=\"{cam}\" data-label=\"{label}\" data-start-ms=\"{start}\" \
         data-score=\"{score:.3}\"><a href=\"/events/{id}\">{thumb}<span class=\"what\">{label} · {cam}</span>\
         <span class=\"when\">{when}</span><span class=\"how\">{dur:.1} s · {frames} frames · peak {score:.2}{open}</span></a></li>",
        cam = escape(&e.camera),
        label = escape(&e.label),
        start = e.start_ms,
        score = e.peak_score,
        when = utc(e.start_ms),
        dur = e.duration_ms() as f64 / 1000.0,
        frames = e.frames,
        open = if e.open { " · still open" } else { "" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> ReviewQuery {
        let s = query_string(pairs.iter().copied());
        serde_json::from_value(serde_json::Value::Object(
            url::form_urlencoded::parse(s.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned().into())).collect(),
        ))
        .unwrap()
    }

    #[test]
    fn the_form_and_links_give_a_filter() {
        let f = q(&[("camera", "door"), ("from", "2025-12-06T19:45"), ("min_score", "0.5"), ("before", "17-ab-c")])
            .filter(50)
            .unwrap();
        assert_eq!(f.camera.as_deref(), Some("door"));
        assert_eq!(f.label, None);
        assert_eq!(f.from_ms, Some(1_765_050_300_000));
        assert_eq!(f.min_score, Some(0.5));
        assert_eq!(f.page, Some(Page::Older(PageKey { start_ms: 17, id: "ab-c".into() })));
        assert_eq!(f.limit, 50);
        assert_eq!(
            q(&[("after", "5-x"), ("limit", "2")]).filter(50).unwrap().page,
            Some(Page::Newer(PageKey { start_ms: 5, id: "x".into() }))
        );
    }

    #[test]
    fn bad_values_say_what_they_take() {
        for (k, v, want) in [
            ("min_score", "2", "min_score must be"),
            ("from", "monday", "from must be"),
            ("before", "x-1", "before and after take"),
            ("limit", "0", "limit must be"),
        ] {
            let e = q(&[(k, v)]).filter(50).unwrap_err();
            assert!(e.0.starts_with(want), "{k}={v}: {}", e.0);
        }
        assert!(q(&[("before", "1-a"), ("after", "2-b")]).filter(50).is_err());
    }

    #[test]
    fn an_event_item_carries_what_the_page_filters_on() {
        let e = EventRow {
            id: "e<1".into(),
            camera: "door".into(),
            label: "person".into(),
            start_ms: 1000,
            end_ms: 3500,
            peak_score: 0.91,
            best_snapshot: Some("x.jpg".into()),
            ..EventRow::default()
        };
        let li = event_item(&e, true);
        assert!(
            li.contains("data-id=\"e&lt;1\" data-camera=\"door\" data-label=\"person\" data-start-ms=\"1000\""),
            "{li}"
        );
        assert!(li.contains("src=\"/snapshots/e&lt;1/0\"") && li.contains("2.5 s"), "{li}");
    }
}
