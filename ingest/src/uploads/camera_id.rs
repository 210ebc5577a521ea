//! Which camera an uploaded object belongs to, from its bucket and key by a pattern (`--camera-from`):
//! uploads are usually filed by device (`front/2024-05-10/img_001.jpg`), and a camera's frames must share
//! one id to stay in order on one partition and to be tracked together downstream.
//!
//! Placeholders: `{bucket}`; `{key}` (the whole key); `{dir}` (the key without its file name); `{1}`, `{2}`…
//! (the key's folders, from the left). A folder the key does not have, or a pattern that comes out empty,
//! gives the bucket name, so `{1}` (the default) files `front/a.jpg` under `front` and a bare `a.jpg` under
//! its bucket. Anything else in the pattern is kept as written (`{bucket}-{1}`).

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Bucket,
    Key,
    Dir,
    /// 1-based.
    Folder(usize),
}

/// A parsed `--camera-from` pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct CameraPattern {
    source: String,
    parts: Vec<Part>,
}

impl fmt::Debug for CameraPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

impl fmt::Display for CameraPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for CameraPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                return Err(format!("unclosed {{ in camera pattern {s:?}"));
            };
            let name = &after[..close];
            parts.push(match name {
                "bucket" => Part::Bucket,
                "key" => Part::Key,
                "dir" => Part::Dir,
                n => match n.parse::<usize>() {
                    Ok(i) if i >= 1 => Part::Folder(i),
                    _ => {
                        return Err(format!(
                            "unknown placeholder {{{name}}} in camera pattern {s:?}: use {{bucket}}, {{key}}, {{dir}} \
                             or a folder number {{1}}, {{2}}…"
                        ));
                    }
                },
            });
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        if parts.is_empty() {
            return Err("the camera pattern is empty: give e.g. {1} or {bucket}".into());
        }
        Ok(CameraPattern { source: s.to_string(), parts })
    }
}

impl CameraPattern {
    /// The camera id of object `key` in `bucket`.
    pub fn camera(&self, bucket: &str, key: &str) -> String {
        let dir = key.rsplit_once('/').map_or("", |(d, _)| d);
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Bucket => out.push_str(bucket),
                Part::Key => out.push_str(key),
                Part::Dir if dir.is_empty() => out.push_str(bucket),
                Part::Dir => out.push_str(dir),
                Part::Folder(i) => {
                    out.push_str(dir.split('/').filter(|s| !s.is_empty()).nth(i - 1).unwrap_or(bucket));
                }
            }
        }
        if out.is_empty() { bucket.to_string() } else { out }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camera(pattern: &str, bucket: &str, key: &str) -> String {
        pattern.parse::<CameraPattern>().unwrap().camera(bucket, key)
    }

    #[test]
    fn default_is_the_first_folder_or_the_bucket() {
        assert_eq!(camera("{1}", "uploads", "front/2024/a.jpg"), "front");
        assert_eq!(camera("{1}", "uploads", "a.jpg"), "uploads");
    }

    #[test]
    fn placeholders() {
        assert_eq!(camera("{2}", "u", "site/door/a.jpg"), "door");
        assert_eq!(camera("{2}", "u", "site/a.jpg"), "u", "a file name is not a folder");
        assert_eq!(camera("{bucket}-{1}", "u", "yard/x.png"), "u-yard");
        assert_eq!(camera("{dir}", "u", "site/door/a.jpg"), "site/door");
        assert_eq!(camera("{dir}", "u", "a.jpg"), "u");
        assert_eq!(camera("{key}", "u", "site/a.jpg"), "site/a.jpg");
        assert_eq!(camera("cam-{1}", "u", "a//b/c.jpg"), "cam-a", "empty folders are not counted");
        assert_eq!(camera("lobby", "u", "x/y.jpg"), "lobby");
    }

    #[test]
    fn bad_patterns_say_what_is_allowed() {
        let e = "{camera}".parse::<CameraPattern>().unwrap_err();
        assert!(e.contains("{camera}") && e.contains("{bucket}"), "{e}");
        assert!("{0}".parse::<CameraPattern>().is_err());
        assert!("{1".parse::<CameraPattern>().unwrap_err().contains("unclosed"));
        assert!("".parse::<CameraPattern>().is_err());
    }
}
