//! The JSON form of `Detections` printed by `subscribe tail --json`: one object per line, stable keys.

use serde::Serialize;

use crate::{Detections, Skipped};

/// One `Detections` message as JSON.
#[derive(Debug, Serialize, PartialEq)]
pub struct DetectionsJson<'a> {
    pub camera: &'a str,
    pub seq: u64,
    pub capture_ms: i64,
    pub width: u32,
    pub height: u32,
    pub model: String,
    pub inference_ms: f32,
    pub detections: Vec<BoxJson<'a>>,
    /// `"stale"` when the frame was not run through the model (`detect --max-frame-age`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<&'static str>,
    /// Frames of this camera left out by motion gating just before this one; absent when none.
    #[serde(skip_serializing_if = "is_zero")]
    pub unchanged_before: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One box as JSON; `box` is `[x1, y1, x2, y2]` in source-frame pixels.
#[derive(Debug, Serialize, PartialEq)]
pub struct BoxJson<'a> {
    pub label: &'a str,
    pub class_id: u32,
    pub score: f32,
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
}

impl<'a> From<&'a Detections> for DetectionsJson<'a> {
    fn from(d: &'a Detections) -> Self {
        DetectionsJson {
            camera: &d.camera_id,
            seq: d.seq,
            capture_ms: d.capture_time_ms,
            width: d.width,
            height: d.height,
            model: model_tag(d),
            inference_ms: d.inference_ms,
            detections: d
                .boxes
                .iter()
                .map(|b| BoxJson {
                    label: &b.label,
                    class_id: b.class_id,
                    score: b.score,
                    bbox: [b.x1, b.y1, b.x2, b.y2],
                })
                .collect(),
            skipped: match d.skipped() {
                Skipped::None => None,
                Skipped::Stale => Some("stale"),
            },
            unchanged_before: d.unchanged_before,
        }
    }
}

/// `name@version`, or just the name when the writer did not set a version.
pub fn model_tag(d: &Detections) -> String {
    if d.model_version.is_empty() { d.model_name.clone() } else { format!("{}@{}", d.model_name, d.model_version) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DetectionBox;

    #[test]
    fn json_has_the_documented_shape() {
        let d = Detections {
            schema_version: 1,
            camera_id: "lobby".into(),
            seq: 3,
            capture_time_ms: 1000,
            width: 640,
            height: 480,
            model_name: "ssd".into(),
            model_version: "0123456789ab".into(),
            inference_ms: 12.5,
            boxes: vec![DetectionBox {
                class_id: 1,
                label: "person".into(),
                score: 0.5,
                x1: 1.0,
                y1: 2.0,
                x2: 30.0,
                y2: 40.0,
            }],
            ..Default::default()
        };
        let v = serde_json::to_value(DetectionsJson::from(&d)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "camera": "lobby", "seq": 3, "capture_ms": 1000, "width": 640, "height": 480,
                "model": "ssd@0123456789ab", "inference_ms": 12.5,
                "detections": [{"label": "person", "class_id": 1, "score": 0.5, "box": [1.0, 2.0, 30.0, 40.0]}]
            })
        );
    }
}
