//! Model metadata: how to feed a model and how to read its outputs. Kept in a TOML file next to the model
//! (`model.onnx` -> `model.toml`), so a new model needs a file, not a code change.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{Error, Result};

/// Memory layout of the image input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `[N, H, W, C]` (TensorFlow exports).
    Nhwc,
    /// `[N, C, H, W]` (PyTorch exports).
    Nchw,
}

/// How a frame is fitted to the model's input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resize {
    /// Scale each axis independently (what SSD models were trained with).
    #[default]
    Stretch,
    /// Keep the aspect ratio and pad (what YOLO models were trained with).
    Letterbox,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Input tensor name; the model's first input if absent.
    pub name: Option<String>,
    pub layout: Layout,
    pub width: u32,
    pub height: u32,
    #[serde(default)]
    pub resize: Resize,
    /// Each 0..255 RGB value becomes `(v * scale - mean[c]) / std[c]`.
    #[serde(default = "one")]
    pub scale: f32,
    #[serde(default)]
    pub mean: [f32; 3],
    #[serde(default = "ones")]
    pub std: [f32; 3],
}

/// How to read detections from the outputs.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum DecoderSpec {
    /// SSD post-processed outputs: per-anchor class scores `[N, A, C]` (already activated) and decoded
    /// normalized boxes `[N, A, 1, 4]` or `[N, A, 4]` as `ymin, xmin, ymax, xmax`.
    Ssd {
        scores: String,
        boxes: String,
        /// Class id of score column 0 (TF label maps start at 1 because column "background" was removed).
        #[serde(default)]
        class_offset: u32,
    },
    /// YOLOv5 `[N, A, 5 + C]` (objectness + class scores), boxes as centre/size in input pixels.
    Yolov5 {
        /// Output name; the first output if absent.
        output: Option<String>,
    },
    /// YOLOv8 / YOLO11 `[N, 4 + C, A]`, boxes as centre/size in input pixels.
    Yolov8 { output: Option<String> },
    /// Models with NMS inside: `[N, D, 6]` rows of `x1, y1, x2, y2, score, class` in input pixels.
    #[serde(rename = "end_to_end")]
    EndToEnd { output: Option<String> },
}

impl DecoderSpec {
    /// Whether the decoder's boxes still need NMS.
    pub fn needs_nms(&self) -> bool {
        !matches!(self, DecoderSpec::EndToEnd { .. })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub name: String,
    /// Labels file, relative to the metadata file.
    pub labels: Option<PathBuf>,
    /// Class id named by the labels file's first line.
    #[serde(default = "one_u32")]
    pub labels_first_id: u32,
    /// Where the model comes from and under which licence (informational).
    pub source: Option<String>,
    pub license: Option<String>,
    pub sha256: Option<String>,
    pub input: InputSpec,
    pub decoder: DecoderSpec,
}

fn one() -> f32 {
    1.0
}
fn ones() -> [f32; 3] {
    [1.0; 3]
}
fn one_u32() -> u32 {
    1
}

impl ModelSpec {
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut spec: ModelSpec =
            toml::from_str(text).map_err(|e| Error::Spec { path: path.into(), reason: e.to_string() })?;
        if spec.input.width == 0 || spec.input.height == 0 {
            return Err(Error::Spec { path: path.into(), reason: "input width and height must be positive".into() });
        }
        if let (Some(labels), Some(dir)) = (&spec.labels, path.parent()) {
            spec.labels = Some(dir.join(labels));
        }
        Ok(spec)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::Spec { path: path.into(), reason: e.to_string() })?;
        Self::parse(&text, path)
    }

    /// The metadata file that belongs to `model` (`x.onnx` -> `x.toml`), if it exists.
    pub fn sidecar(model: &Path) -> Option<PathBuf> {
        let p = model.with_extension("toml");
        p.exists().then_some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_shipped_ssd_metadata() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/ssdlite_mobilenet_v2_coco.toml");
        let spec = ModelSpec::load(&path).unwrap();
        assert_eq!(spec.input.layout, Layout::Nhwc);
        assert_eq!((spec.input.width, spec.input.height), (300, 300));
        assert!(matches!(spec.decoder, DecoderSpec::Ssd { class_offset: 1, .. }));
        assert!(spec.labels.unwrap().ends_with("ssdlite_mobilenet_v2_coco.labels.txt"));
    }

    #[test]
    fn unknown_keys_are_errors() {
        let text = "name='x'\nbogus=1\n[input]\nlayout='nchw'\nwidth=1\nheight=1\n[decoder]\nkind='ssd'\nscores='a'\nboxes='b'\n";
        let err = ModelSpec::parse(text, Path::new("m.toml")).unwrap_err().to_string();
        assert!(err.contains("bogus"), "{err}");
    }
}
