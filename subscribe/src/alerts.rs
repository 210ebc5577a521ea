//! Alert rules: a TOML file of `[[rule]]` tables, each "this label, on this camera, at least this score,
//! inside this zone, for at least this long". A rule runs its own tracker over the boxes it accepts and
//! alerts once per track, when the track has lasted `min_duration`.
//!
//! ```toml
//! [[rule]]
//! name = "person-at-door"
//! camera = "door"                 # optional: every camera when left out
//! label = "person"
//! min_score = 0.6                 # optional, default 0
//! min_duration = "2s"             # optional, default 0 (alert on the first frame)
//! zone = [[0.0, 0.5], [0.5, 0.5], [0.5, 1.0], [0.0, 1.0]]   # optional polygon, x/width and y/height
//! webhook = "https://hooks.example.com/T0/B0"               # optional: POST the alert as JSON
//! email = ["ops@example.com"]     # optional: mail the alert, snapshot attached (needs --smtp-url)
//! ```

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use framewire_proto::{DetectionBox, Detections};
use serde::{Deserialize, Serialize};

use crate::track::EventRow;

/// Errors in a rules file; each names the file and the rule.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("reading alert rules {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("alert rules {path}: {message}")]
    Parse { path: String, message: String },
    #[error("alert rules {path}, rule {rule:?}: {message}")]
    Invalid { path: String, rule: String, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    camera: Option<String>,
    label: String,
    #[serde(default)]
    min_score: f32,
    min_duration: Option<String>,
    zone: Option<Vec<[f64; 2]>>,
    webhook: Option<String>,
    #[serde(default)]
    email: Vec<String>,
}

/// One checked rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub camera: Option<String>,
    pub label: String,
    pub min_score: f32,
    pub min_duration: Duration,
    pub zone: Option<Vec<[f64; 2]>>,
    pub webhook: Option<String>,
    /// Recipients of the alert by email; empty for none.
    pub email: Vec<String>,
}

/// Reads and checks a rules file.
pub fn load(path: &Path) -> Result<Vec<Rule>, RulesError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read { path: p.clone(), source })?;
    parse(&text, &p)
}

/// Parses rules; `path` only names the source in errors.
pub fn parse(text: &str, path: &str) -> Result<Vec<Rule>, RulesError> {
    let raw: RulesFile =
        toml::from_str(text).map_err(|e| RulesError::Parse { path: path.into(), message: e.to_string() })?;
    let mut rules: Vec<Rule> = Vec::new();
    for r in raw.rule {
        let bad = |message: String| RulesError::Invalid { path: path.into(), rule: r.name.clone(), message };
        if r.name.trim().is_empty() {
            return Err(bad("name is empty".into()));
        }
        if rules.iter().any(|x| x.name == r.name) {
            return Err(bad("a rule of this name comes earlier in the file".into()));
        }
        if r.label.trim().is_empty() {
            return Err(bad("label is empty".into()));
        }
        if !(0.0..=1.0).contains(&r.min_score) {
            return Err(bad(format!("min_score {} is not between 0 and 1", r.min_score)));
        }
        let min_duration = match &r.min_duration {
            None => Duration::ZERO,
            Some(s) => humantime::parse_duration(s).map_err(|e| bad(format!("min_duration {s:?}: {e}")))?,
        };
        if let Some(zone) = &r.zone {
            if zone.len() < 3 {
                return Err(bad(format!("zone has {} points; a polygon needs at least 3", zone.len())));
            }
            if let Some(p) = zone.iter().find(|p| !(0.0..=1.0).contains(&p[0]) || !(0.0..=1.0).contains(&p[1])) {
                return Err(bad(format!(
                    "zone point [{}, {}] is outside 0..1 (zones are fractions of the frame's width and height)",
                    p[0], p[1]
                )));
            }
        }
        if let Some(url) = &r.webhook
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(bad(format!("webhook {url:?} is not an http(s) URL")));
        }
        for to in &r.email {
            lettre::message::Mailbox::from_str(to).map_err(|e| bad(format!("email {to:?} is not an address: {e}")))?;
        }
        rules.push(Rule {
            name: r.name.clone(),
            camera: r.camera.clone(),
            label: r.label.clone(),
            min_score: r.min_score,
            min_duration,
            zone: r.zone.clone(),
            webhook: r.webhook.clone(),
            email: r.email.clone(),
        });
    }
    Ok(rules)
}

/// Refuses rules that send email when no SMTP server is given: found at start, not at the first alert.
pub fn require_smtp(rules: &[Rule], path: &Path, smtp_given: bool) -> Result<(), RulesError> {
    match rules.iter().find(|r| !r.email.is_empty()) {
        Some(r) if !smtp_given => Err(RulesError::Invalid {
            path: path.display().to_string(),
            rule: r.name.clone(),
            message: format!(
                "sends email to {} but no SMTP server is given: give --smtp-url (or FRAMEWIRE_SMTP_URL), \
                 e.g. smtps://USER:PASSWORD@mail.example.com or smtp://mail.example.com:587?tls=required",
                r.email.join(", ")
            ),
        }),
        _ => Ok(()),
    }
}

impl Rule {
    /// Whether a box of frame `d` counts for this rule: camera, label, score and, with a zone, the box's
    /// centre inside it.
    pub fn accepts(&self, d: &Detections, b: &DetectionBox) -> bool {
        if self.camera.as_deref().is_some_and(|c| c != d.camera_id) || b.label != self.label || b.score < self.min_score
        {
            return false;
        }
        match &self.zone {
            None => true,
            Some(zone) => {
                if d.width == 0 || d.height == 0 {
                    return false;
                }
                let cx = f64::from(b.x1 + b.x2) / 2.0 / f64::from(d.width);
                let cy = f64::from(b.y1 + b.y2) / 2.0 / f64::from(d.height);
                inside(zone, cx, cy)
            }
        }
    }

    /// Whether a track of this rule has lasted long enough to alert.
    pub fn due(&self, track: &EventRow) -> bool {
        !track.alerted && track.duration_ms() >= self.min_duration.as_millis() as i64
    }
}

/// Point in polygon (even-odd ray casting).
pub fn inside(poly: &[[f64; 2]], x: f64, y: f64) -> bool {
    let mut c = false;
    let mut j = poly.len() - 1;
    for i in 0..poly.len() {
        let (xi, yi) = (poly[i][0], poly[i][1]);
        let (xj, yj) = (poly[j][0], poly[j][1]);
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            c = !c;
        }
        j = i;
    }
    c
}

/// The alert record published to the `alerts` topic and POSTed to the rule's webhook.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Alert {
    /// Stable per rule and track: a receiver can drop repeats (delivery is at-least-once).
    pub id: String,
    pub rule: String,
    pub camera: String,
    pub label: String,
    pub model: String,
    /// Highest score of the track so far.
    pub score: f32,
    /// The frame that made the track old enough.
    pub seq: u64,
    pub capture_ms: i64,
    pub started_ms: i64,
    pub duration_ms: i64,
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
}

impl Alert {
    pub fn from_track(rule: &Rule, t: &EventRow) -> Alert {
        Alert {
            id: t.id.clone(),
            rule: rule.name.clone(),
            camera: t.camera.clone(),
            label: t.label.clone(),
            model: t.model.clone(),
            score: t.peak_score,
            seq: t.end_seq,
            capture_ms: t.end_ms,
            started_ms: t.start_ms,
            duration_ms: t.duration_ms(),
            bbox: t.bbox,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[rule]]
name = "door"
camera = "door"
label = "person"
min_score = 0.5
min_duration = "2s"
zone = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]
webhook = "http://127.0.0.1:9/hook"
email = ["ops@example.com", "Night Shift <night@example.com>"]

[[rule]]
name = "any-car"
label = "car"
"#;

    fn det(camera: &str, label: &str, score: f32, b: [f32; 4]) -> (Detections, DetectionBox) {
        let d = Detections { camera_id: camera.into(), width: 100, height: 100, ..Default::default() };
        let bx =
            DetectionBox { label: label.into(), score, x1: b[0], y1: b[1], x2: b[2], y2: b[3], ..Default::default() };
        (d, bx)
    }

    #[test]
    fn rules_parse_with_defaults() {
        let rules = parse(GOOD, "rules.toml").unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].min_duration, Duration::from_secs(2));
        assert_eq!(rules[1].camera, None);
        assert_eq!(rules[1].min_score, 0.0);
        assert_eq!(rules[1].min_duration, Duration::ZERO);
        assert_eq!(rules[0].email, ["ops@example.com", "Night Shift <night@example.com>"]);
        assert!(rules[1].email.is_empty());
    }

    #[test]
    fn email_needs_addresses_and_an_smtp_server() {
        let e = parse("[[rule]]\nname='m'\nlabel='p'\nemail=['ops at example']\n", "r.toml").unwrap_err().to_string();
        assert!(e.contains("\"m\"") && e.contains("ops at example"), "{e}");
        let rules = parse(GOOD, "rules.toml").unwrap();
        let e = require_smtp(&rules, Path::new("rules.toml"), false).unwrap_err().to_string();
        assert!(e.contains("rules.toml") && e.contains("\"door\"") && e.contains("--smtp-url"), "{e}");
        require_smtp(&rules, Path::new("rules.toml"), true).unwrap();
        require_smtp(&rules[1..], Path::new("rules.toml"), false).unwrap();
    }

    #[test]
    fn bad_rules_name_the_file_the_rule_and_the_key() {
        let e = parse("[[rule]]\nname='a'\nlabel='person'\nmin_scor=0.5\n", "r.toml").unwrap_err().to_string();
        assert!(e.contains("r.toml") && e.contains("min_scor"), "{e}");
        let e = parse("[[rule]]\nname='a'\nlabel='person'\nmin_score=1.5\n", "r.toml").unwrap_err().to_string();
        assert!(e.contains("\"a\"") && e.contains("min_score"), "{e}");
        let e = parse("[[rule]]\nname='z'\nlabel='p'\nzone=[[0.0,0.0],[1.0,1.0]]\n", "r.toml").unwrap_err().to_string();
        assert!(e.contains("at least 3"), "{e}");
        let e = parse("[[rule]]\nname='z'\nlabel='p'\nzone=[[0,0],[2,0],[0,1]]\n", "r.toml").unwrap_err().to_string();
        assert!(e.contains("outside 0..1"), "{e}");
        let e = parse("[[rule]]\nname='d'\nlabel='p'\nmin_duration='soon'\n", "r.toml").unwrap_err().to_string();
        assert!(e.contains("min_duration"), "{e}");
        let e =
            parse("[[rule]]\nname='d'\nlabel='p'\n[[rule]]\nname='d'\nlabel='q'\n", "r.toml").unwrap_err().to_string();
        assert!(e.contains("earlier"), "{e}");
        let e = parse("[[rule]]\nname='w'\nlabel='p'\nwebhook='ftp://x'\n", "r.toml").unwrap_err().to_string();
        assert!(e.contains("webhook"), "{e}");
    }

    #[test]
    fn zone_camera_label_and_score_filter_boxes() {
        let rules = parse(GOOD, "rules.toml").unwrap();
        let door = &rules[0];
        let (d, b) = det("door", "person", 0.9, [10., 10., 30., 90.]); // centre (0.2, 0.5): inside
        assert!(door.accepts(&d, &b));
        let (d, b) = det("door", "person", 0.9, [60., 10., 90., 90.]); // centre x 0.75: outside
        assert!(!door.accepts(&d, &b));
        let (d, b) = det("door", "person", 0.4, [10., 10., 30., 90.]);
        assert!(!door.accepts(&d, &b));
        let (d, b) = det("yard", "person", 0.9, [10., 10., 30., 90.]);
        assert!(!door.accepts(&d, &b));
        let (d, b) = det("door", "car", 0.9, [10., 10., 30., 90.]);
        assert!(!door.accepts(&d, &b));
        assert!(rules[1].accepts(&d, &b));
    }

    #[test]
    fn point_in_polygon() {
        let tri = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]];
        assert!(inside(&tri, 0.2, 0.2));
        assert!(!inside(&tri, 0.8, 0.8));
        let concave = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 0.2], [0.0, 1.0]];
        assert!(!inside(&concave, 0.5, 0.6));
        assert!(inside(&concave, 0.9, 0.6));
    }
}
