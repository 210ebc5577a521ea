//! What a run did, printed on exit: a line for people, or one JSON object for scripts and tests
//! (`--summary-format json`), so nothing has to parse the prose.

use serde::Serialize;

use framewire_common::summary::Format as SummaryFormat;

/// What a run did, for the exit summary.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Frames run through the model whose Detections were delivered.
    pub detected: u64,
    /// Messages delivered to the dead-letter topic.
    pub dead_lettered: u64,
    /// Frames not run through the model because they were stale (`--max-frame-age`), whose records (a
    /// Detections saying so) were delivered. With `detected` and `dead_lettered`, every frame consumed.
    pub skipped_stale: u64,
}

impl Summary {
    /// The summary as printed on stdout (without the final newline).
    pub fn render(&self, format: SummaryFormat) -> String {
        match format {
            SummaryFormat::Text => format!(
                "detected {} frames, {} dead-lettered, {} skipped as stale",
                self.detected, self.dead_lettered, self.skipped_stale
            ),
            SummaryFormat::Json => framewire_common::summary::json("detect", self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_starts_with_the_line_printed_before_json_existed() {
        let s = Summary { detected: 4, dead_lettered: 1, skipped_stale: 2 };
        assert_eq!(s.render(SummaryFormat::Text), "detected 4 frames, 1 dead-lettered, 2 skipped as stale");
    }

    #[test]
    fn json_is_one_object_named_after_the_binary() {
        let s = Summary { detected: 4, dead_lettered: 1, skipped_stale: 2 };
        assert_eq!(
            s.render(SummaryFormat::Json),
            r#"{"summary":"detect","detected":4,"dead_lettered":1,"skipped_stale":2}"#
        );
    }
}
