//! The exit summary every binary prints: lines for people, or one JSON object on one line for scripts and
//! tests (`--summary-format json`, as `cargo --message-format json` and ripgrep's `--json` do), so that
//! nothing downstream parses prose.

use serde::Serialize;

/// How the exit summary is printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people: the lines each binary has always printed.
    #[default]
    Text,
    /// For scripts: one JSON object on one line, `{"summary":"<binary>",...}`.
    Json,
}

/// `fields` as one JSON object on one line, with `"summary": kind` first.
pub fn json<T: Serialize>(kind: &'static str, fields: &T) -> String {
    #[derive(Serialize)]
    struct Line<'a, T> {
        summary: &'static str,
        #[serde(flatten)]
        fields: &'a T,
    }
    // Plain numbers and strings cannot fail to serialise; if a field ever did, say so in JSON.
    serde_json::to_string(&Line { summary: kind, fields }).unwrap_or_else(|e| {
        let error = serde_json::Value::String(e.to_string());
        format!(r#"{{"summary":"{kind}","serialization_error":{error}}}"#)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_comes_first_then_the_fields_in_order() {
        #[derive(Serialize)]
        struct S {
            frames: u64,
            error: Option<String>,
        }
        assert_eq!(json("tail", &S { frames: 3, error: None }), r#"{"summary":"tail","frames":3,"error":null}"#);
    }
}
