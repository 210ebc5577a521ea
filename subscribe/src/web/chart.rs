//! The camera page's pictures, drawn as inline SVG by the server: a timeline of events and a chart of events
//! per label and hour. Nothing to load, no script: they work within the page's content policy and offline.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::page::{colour, escape, utc};
use crate::repo::HourCount;
use crate::track::EventRow;

const HOUR_MS: i64 = 3_600_000;
/// The drawing's own width: the SVG scales to its box, so this only sets the precision.
const WIDTH: f64 = 1000.0;

/// Events per label for each hour of a window, oldest hour first: what the chart and its API show.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(super) struct HourGrid {
    /// Each hour's start, Unix ms.
    pub(super) hours: Vec<i64>,
    /// Per label, the events of each hour of `hours`.
    pub(super) labels: BTreeMap<String, Vec<i64>>,
}

impl HourGrid {
    /// The start of the window of the `hours` whole hours up to and including the one `now_ms` is in: what
    /// the store is asked for before the grid is made.
    pub(super) fn window_start(now_ms: i64, hours: usize) -> i64 {
        now_ms.div_euclid(HOUR_MS) * HOUR_MS - (hours as i64 - 1) * HOUR_MS
    }

    /// The `hours` whole hours up to and including the one `now_ms` is in.
    pub(super) fn new(counts: &[HourCount], now_ms: i64, hours: usize) -> HourGrid {
        let first = Self::window_start(now_ms, hours);
        let hours_v: Vec<i64> = (0..hours as i64).map(|i| first + i * HOUR_MS).collect();
        let mut labels: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for c in counts {
            let i = (c.hour_ms - first).div_euclid(HOUR_MS);
            if let Ok(i) = usize::try_from(i)
                && i < hours
            {
                labels.entry(c.label.clone()).or_insert_with(|| vec![0; hours])[i] += c.events;
            }
        }
        HourGrid { hours: hours_v, labels }
    }

    fn total(&self, i: usize) -> i64 {
        self.labels.values().map(|v| v[i]).sum()
    }
}

/// Stacked bars, one per hour, one colour per label, with the largest hour's total on the axis.
pub(super) fn counts_chart(grid: &HourGrid) -> String {
    let n = grid.hours.len().max(1);
    let top = (0..grid.hours.len()).map(|i| grid.total(i)).max().unwrap_or(0).max(1);
    let (height, axis) = (200.0, 20.0);
    let slot = WIDTH / n as f64;
    let mut svg = format!(
        "<svg id=\"counts-chart\" viewBox=\"0 0 {WIDTH} {}\" role=\"img\" aria-label=\"events per label and hour\">",
        height + axis
    );
    for (i, hour) in grid.hours.iter().enumerate() {
        let mut y = height;
        for (label, counts) in &grid.labels {
            let count = counts[i];
            if count == 0 {
                continue;
            }
            let h = height * count as f64 / top as f64;
            y -= h;
            let _ = write!(
                svg,
                "<rect class=\"bar\" data-label=\"{l}\" data-hour-ms=\"{hour}\" data-count=\"{count}\" x=\"{x:.1}\" \
                 y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"{c}\"><title>{l}: {count} at {t}</title></rect>",
                l = escape(label),
                x = i as f64 * slot + 1.0,
                w = (slot - 2.0).max(1.0),
                c = colour(label),
                t = utc(*hour),
            );
        }
        if i % 3 == 0 {
            let _ = write!(
                svg,
                "<text x=\"{x:.1}\" y=\"{y}\" class=\"tick\">{t}</text>",
                x = i as f64 * slot + 2.0,
                y = height + axis - 4.0,
                t = hour_of_day(*hour)
            );
        }
    }
    let _ =
        write!(svg, "<text x=\"{}\" y=\"14\" class=\"tick top\" text-anchor=\"end\">{top}</text></svg>", WIDTH - 4.0);
    svg
}

/// The same figures as a table, for screen readers and for copying: the hours with any event.
pub(super) fn counts_table(grid: &HourGrid) -> String {
    let mut t = String::from("<table id=\"counts-table\"><thead><tr><th>hour (UTC)</th>");
    for label in grid.labels.keys() {
        let _ = write!(t, "<th>{}</th>", escape(label));
    }
    t.push_str("</tr></thead><tbody>");
    for (i, hour) in grid.hours.iter().enumerate().filter(|(i, _)| grid.total(*i) > 0) {
        let _ = write!(t, "<tr><td>{}</td>", utc(*hour));
        for counts in grid.labels.values() {
            let _ = write!(t, "<td>{}</td>", counts[i]);
        }
        t.push_str("</tr>");
    }
    t.push_str("</tbody></table>");
    t
}

/// The events of a window as bars on a time axis, one row per label; each bar links to its event.
pub(super) fn timeline(events: &[EventRow], from_ms: i64, to_ms: i64) -> String {
    let span = (to_ms - from_ms).max(1) as f64;
    let x = |ms: i64| (ms.clamp(from_ms, to_ms) - from_ms) as f64 / span * WIDTH;
    let mut labels: Vec<&str> = events.iter().map(|e| e.label.as_str()).collect();
    labels.sort_unstable();
    labels.dedup();
    let (row, axis) = (22.0, 20.0);
    let height = axis + row * labels.len().max(1) as f64;
    let mut svg = format!(
        "<svg id=\"timeline\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"events of the last hours\">"
    );
    for (r, label) in labels.iter().enumerate() {
        let _ = write!(
            svg,
            "<text x=\"2\" y=\"{:.1}\" class=\"tick\">{}</text>",
            r as f64 * row + row - 6.0,
            escape(label)
        );
    }
    for e in events {
        let r = labels.iter().position(|l| *l == e.label).unwrap_or(0);
        let (x1, x2) = (x(e.start_ms), x(e.end_ms.max(e.start_ms)));
        let _ = write!(
            svg,
            "<a class=\"event-bar\" href=\"/events/{id}\" data-id=\"{id}\"><rect x=\"{x1:.1}\" y=\"{y:.1}\" \
             width=\"{w:.1}\" height=\"{h:.1}\" fill=\"{c}\"><title>{l} {t}, {d:.1} s</title></rect></a>",
            id = escape(&e.id),
            y = r as f64 * row + 3.0,
            w = (x2 - x1).max(3.0),
            h = row - 6.0,
            c = colour(&e.label),
            l = escape(&e.label),
            t = utc(e.start_ms),
            d = e.duration_ms() as f64 / 1000.0,
        );
    }
    let first_tick = (from_ms + 3 * HOUR_MS - 1).div_euclid(3 * HOUR_MS) * 3 * HOUR_MS;
    // A tick too near an edge would have half its text cut off.
    let inside = |t: &i64| x(*t) > 30.0 && x(*t) < WIDTH - 30.0;
    for tick in (first_tick..=to_ms).step_by(3 * HOUR_MS as usize).filter(inside) {
        let _ = write!(
            svg,
            "<line x1=\"{p:.1}\" x2=\"{p:.1}\" y1=\"0\" y2=\"{y}\" class=\"grid\"/><text x=\"{p:.1}\" y=\"{t}\" \
             class=\"tick\" text-anchor=\"middle\">{h}</text>",
            p = x(tick),
            y = height - axis,
            t = height - 4.0,
            h = hour_of_day(tick),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// `19:00` for the hour a time is in (UTC).
fn hour_of_day(ms: i64) -> String {
    format!("{:02}:00", ms.div_euclid(HOUR_MS).rem_euclid(24))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(label: &str, hour: i64, events: i64) -> HourCount {
        HourCount { label: label.into(), hour_ms: hour * HOUR_MS, events }
    }

    #[test]
    fn the_grid_places_each_count_in_its_hour_and_drops_the_rest() {
        let now = 100 * HOUR_MS + 5;
        let g = HourGrid::new(
            &[count("person", 100, 3), count("car", 98, 1), count("person", 97, 2), count("dog", 50, 9)],
            now,
            3,
        );
        assert_eq!(g.hours, vec![98 * HOUR_MS, 99 * HOUR_MS, 100 * HOUR_MS]);
        assert_eq!(g.labels["person"], vec![0, 0, 3]);
        assert_eq!(g.labels["car"], vec![1, 0, 0]);
        assert!(!g.labels.contains_key("dog"), "outside the window");
    }

    #[test]
    fn the_chart_has_a_bar_per_label_and_hour_with_events() {
        let g = HourGrid::new(&[count("person", 10, 4), count("car", 10, 2), count("person", 11, 1)], 11 * HOUR_MS, 2);
        let svg = counts_chart(&g);
        assert_eq!(svg.matches("class=\"bar\"").count(), 3, "{svg}");
        assert!(svg.contains(&format!("data-label=\"car\" data-hour-ms=\"{}\" data-count=\"2\"", 10 * HOUR_MS)));
        assert!(svg.contains(">6</text></svg>"), "the tallest hour's total: {svg}");
        let table = counts_table(&g);
        assert_eq!(table.matches("<tr><td>").count(), 2, "{table}");
    }

    #[test]
    fn the_timeline_links_every_event_and_escapes_labels() {
        let e = |id: &str, label: &str, start: i64| EventRow {
            id: id.into(),
            label: label.into(),
            start_ms: start,
            end_ms: start + 60_000,
            ..EventRow::default()
        };
        let svg = timeline(&[e("a1", "person", HOUR_MS), e("b2", "<dog>", 2 * HOUR_MS)], 0, 24 * HOUR_MS);
        assert_eq!(svg.matches("class=\"event-bar\"").count(), 2);
        assert!(svg.contains("href=\"/events/b2\"") && svg.contains("&lt;dog&gt;") && !svg.contains("<dog>"), "{svg}");
        assert!(svg.contains(">03:00</text>"), "{svg}");
    }
}
