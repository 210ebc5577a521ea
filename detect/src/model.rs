//! The ONNX model: loading it into an ONNX Runtime session (the runtime itself is [`crate::runtime`]),
//! checking that its inputs and outputs fit the metadata, and turning a batch of prepared frames into boxes.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::ArrayViewD;
use ort::session::Session;
use ort::value::{TensorRef, ValueType};
use sha2::{Digest, Sha256};
use tracing::info;

use framewire_proto::DetectionBox;

use crate::labels::Labels;
use crate::nms::{self, Candidate};
use crate::preprocess::{Prepared, Preprocessor};
pub use crate::runtime::ExecutionProvider;
use crate::runtime::{environment, with_provider};
use crate::spec::{DecoderSpec, InputSpec, Layout, ModelSpec, Resize};
use crate::{Error, Result, ssd, yolo};

/// What `Detector::load` needs.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    pub model: PathBuf,
    /// Metadata file; `model.toml` next to the model when absent.
    pub spec: Option<PathBuf>,
    /// Labels file; overrides the metadata's.
    pub labels: Option<PathBuf>,
    /// The ONNX Runtime shared library.
    pub runtime: PathBuf,
    /// ONNX Runtime intra-op threads.
    pub threads: usize,
    pub conf: f32,
    pub iou: f32,
    pub max_detections: usize,
    /// Report only these classes (labels or numeric ids); all when empty.
    pub classes: Vec<String>,
    /// Per-class minimum scores (label or id, score), overriding `conf`.
    pub class_conf: Vec<(String, f32)>,
    pub execution_provider: ExecutionProvider,
    /// Upper bound on frames per inference call (models with a dynamic batch dimension only).
    pub max_batch: usize,
}

impl ModelOptions {
    /// The defaults of the `detect` command line for `model`, with ONNX Runtime loaded from `runtime`.
    pub fn new(model: PathBuf, runtime: PathBuf) -> Self {
        ModelOptions {
            model,
            spec: None,
            labels: None,
            runtime,
            threads: 1,
            conf: 0.5,
            iou: 0.45,
            max_detections: 100,
            classes: vec![],
            class_conf: vec![],
            execution_provider: ExecutionProvider::Cpu,
            max_batch: 8,
        }
    }
}

/// A loaded model with its decoder settings.
pub struct Detector {
    session: Session,
    pub spec: ModelSpec,
    pub labels: Labels,
    /// Model name reported in every `Detections`.
    pub name: String,
    /// First 12 hex digits of the model file's SHA-256, reported in every `Detections`.
    pub version: String,
    input_name: String,
    /// Largest batch the model accepts in one call (1 unless its batch dimension is dynamic).
    pub max_batch: usize,
    conf: f32,
    iou: f32,
    max_detections: usize,
    /// Allowed class ids; `None` allows all.
    allowed: Option<std::collections::HashSet<u32>>,
    /// Per-class score thresholds.
    class_conf: std::collections::HashMap<u32, f32>,
}

impl Detector {
    pub fn load(opts: &ModelOptions) -> Result<Self> {
        let env = environment(&opts.runtime)?;
        if !opts.model.exists() {
            return Err(Error::ModelNotFound(opts.model.clone()));
        }
        let bytes = std::fs::read(&opts.model)
            .map_err(|e| Error::ModelLoad { path: opts.model.clone(), reason: e.to_string() })?;
        let version = hex12(&Sha256::digest(&bytes));
        let load_err = |e: ort::Error| Error::ModelLoad { path: opts.model.clone(), reason: e.to_string() };
        let builder = Session::builder(env)
            .map_err(load_err)?
            .with_intra_threads(opts.threads.max(1))
            .map_err(|e| load_err(e.into()))?
            .with_inter_threads(1)
            .map_err(|e| load_err(e.into()))?;
        let session = with_provider(builder, opts.execution_provider)?.commit_from_memory(&bytes).map_err(load_err)?;

        let spec_path = opts.spec.clone().or_else(|| ModelSpec::sidecar(&opts.model));
        let spec = match &spec_path {
            Some(p) => ModelSpec::load(p)?,
            None => infer_spec(&session, &opts.model)?,
        };
        let labels = match opts.labels.as_ref().or(spec.labels.as_ref()) {
            Some(p) => Labels::load(p, spec.labels_first_id)?,
            // Ultralytics exports carry their class names in the ONNX metadata.
            None => Labels::from_pairs(
                session
                    .metadata()
                    .ok()
                    .and_then(|m| m.custom("names"))
                    .map(|n| yolo::parse_names(&n))
                    .unwrap_or_default(),
            ),
        };
        let class_id = |c: &str| -> Result<u32> {
            c.parse::<u32>().ok().or_else(|| labels.id_of(c)).ok_or_else(|| Error::Spec {
                path: opts.model.clone(),
                reason: format!("unknown class {c:?} (not a label of this model)"),
            })
        };
        let allowed = if opts.classes.is_empty() {
            None
        } else {
            Some(opts.classes.iter().map(|c| class_id(c)).collect::<Result<_>>()?)
        };
        let class_conf = opts.class_conf.iter().map(|(c, v)| Ok((class_id(c)?, *v))).collect::<Result<_>>()?;
        let input_name = match &spec.input.name {
            Some(n) => n.clone(),
            None => session
                .inputs()
                .first()
                .map(|i| i.name().to_string())
                .ok_or_else(|| Error::OutputMismatch(format!("model {} has no inputs", opts.model.display())))?,
        };
        let input = session.inputs().iter().find(|i| i.name() == input_name).ok_or_else(|| {
            Error::OutputMismatch(format!(
                "model has no input {input_name:?} (inputs: {:?})",
                session.inputs().iter().map(|i| i.name()).collect::<Vec<_>>()
            ))
        })?;
        let max_batch = match input.dtype() {
            ValueType::Tensor { shape, .. } if shape.first().is_some_and(|d| *d < 0) => opts.max_batch.max(1),
            _ => 1,
        };
        let name = spec.name.clone();
        let mut detector = Detector {
            session,
            spec,
            labels,
            name,
            version,
            input_name,
            max_batch,
            conf: opts.conf,
            iou: opts.iou,
            max_detections: opts.max_detections,
            allowed,
            class_conf,
        };
        detector.check_outputs()?;
        info!(model = %detector.name, version = %detector.version, threads = opts.threads, max_batch,
            labels = detector.labels.len(), "model loaded");
        Ok(detector)
    }

    /// A preprocessor producing this model's input.
    pub fn preprocessor(&self) -> Result<Preprocessor> {
        Preprocessor::new(self.spec.input.clone())
    }

    pub fn input_spec(&self) -> &InputSpec {
        &self.spec.input
    }

    /// Runs one inference on a blank frame so a model whose outputs do not fit its decoder fails at start-up,
    /// not on every frame.
    fn check_outputs(&mut self) -> Result<()> {
        let (w, h) = (self.spec.input.width as usize, self.spec.input.height as usize);
        let blank = Prepared {
            tensor: vec![0.0; w * h * 3],
            src_width: w as u32,
            src_height: h as u32,
            transform: crate::preprocess::Transform { sx: 1.0, sy: 1.0, pad_x: 0.0, pad_y: 0.0 },
        };
        self.detect(&[&blank]).map(|_| ())
    }

    /// ONNX Runtime alone on one prepared input, outputs discarded: the baseline the benchmark compares the
    /// whole pipeline against.
    pub fn run_raw(&mut self, p: &Prepared) -> Result<()> {
        let input = input_view(self.spec.input.layout, self.input_size(), 1, &p.tensor)?;
        self.session.run(ort::inputs![self.input_name.as_str() => TensorRef::from_array_view(input)?])?;
        Ok(())
    }

    /// Model input width and height.
    fn input_size(&self) -> (usize, usize) {
        (self.spec.input.width as usize, self.spec.input.height as usize)
    }

    /// Detects objects in a batch of prepared frames (at most `max_batch`). Returns each frame's boxes in
    /// source pixels and the inference time in milliseconds.
    pub fn detect(&mut self, batch: &[&Prepared]) -> Result<(Vec<Vec<DetectionBox>>, f32)> {
        let (w, h) = self.input_size();
        // A single frame (the common case) is fed in place; only a real batch is copied together.
        let joined: Vec<f32>;
        let data: &[f32] = match batch {
            [one] => &one.tensor,
            _ => {
                joined = batch.iter().flat_map(|p| p.tensor.iter().copied()).collect();
                &joined
            }
        };
        let array = input_view(self.spec.input.layout, (w, h), batch.len(), data)?;
        let started = Instant::now();
        let input = TensorRef::from_array_view(array)?;
        let outputs = self.session.run(ort::inputs![self.input_name.as_str() => input])?;
        let infer_ms = started.elapsed().as_secs_f32() * 1000.0;
        // Collect at the lowest threshold in use; per-class thresholds are applied after decoding.
        let conf = self.class_conf.values().fold(self.conf, |a, b| a.min(*b));
        let decoder = &self.spec.decoder;
        let get = |name: Option<&str>, what: &str| -> Result<ArrayViewD<'_, f32>> {
            let v = match name {
                Some(n) => outputs.get(n),
                None => outputs.keys().next().and_then(|k| outputs.get(k)),
            };
            let v = v.ok_or_else(|| {
                Error::OutputMismatch(format!(
                    "model has no output {name:?} required by the {what} decoder (outputs: {:?})",
                    outputs.keys().collect::<Vec<_>>()
                ))
            })?;
            v.try_extract_array::<f32>().map_err(|e| Error::OutputMismatch(format!("output {name:?}: {e}")))
        };
        let per_image = match decoder {
            DecoderSpec::Ssd { scores, boxes, class_offset } => ssd::decode(
                get(Some(scores), "SSD")?,
                get(Some(boxes), "SSD")?,
                conf,
                *class_offset,
                w as f32,
                h as f32,
            )?,
            DecoderSpec::Yolov5 { output } => yolo::decode_v5(get(output.as_deref(), "YOLOv5")?, conf)?,
            DecoderSpec::Yolov8 { output } => yolo::decode_v8(get(output.as_deref(), "YOLOv8")?, conf)?,
            DecoderSpec::EndToEnd { output } => yolo::decode_end_to_end(get(output.as_deref(), "end-to-end")?, conf)?,
        };
        drop(outputs);
        if per_image.len() != batch.len() {
            return Err(Error::OutputMismatch(format!(
                "model returned {} results for a batch of {}",
                per_image.len(),
                batch.len()
            )));
        }
        let boxes = per_image.into_iter().zip(batch).map(|(cands, p)| self.finish(cands, p)).collect();
        Ok((boxes, infer_ms))
    }

    /// NMS, then map to source pixels, clip, and label.
    fn finish(&self, candidates: Vec<Candidate>, p: &Prepared) -> Vec<DetectionBox> {
        let (sw, sh) = (p.src_width as f32, p.src_height as f32);
        let candidates: Vec<Candidate> = candidates
            .into_iter()
            .filter(|c| self.allowed.as_ref().is_none_or(|a| a.contains(&c.class_id)))
            .filter(|c| c.score >= self.class_conf.get(&c.class_id).copied().unwrap_or(self.conf))
            .collect();
        let kept = if self.spec.decoder.needs_nms() {
            nms::nms(candidates, self.iou, self.max_detections)
        } else {
            let mut c = candidates;
            c.truncate(self.max_detections);
            c
        };
        kept.into_iter()
            .filter_map(|c| {
                let r = p.transform.to_source(&c.rect).clip(sw, sh);
                (r.area() > 0.0).then(|| DetectionBox {
                    class_id: c.class_id,
                    label: self.labels.name(c.class_id),
                    score: c.score,
                    x1: r.x1,
                    y1: r.y1,
                    x2: r.x2,
                    y2: r.y2,
                })
            })
            .collect()
    }
}

/// `n` images of `w x h` laid out for the model, viewed without copying.
fn input_view(layout: Layout, (w, h): (usize, usize), n: usize, data: &[f32]) -> Result<ndarray::ArrayView4<'_, f32>> {
    let shape = match layout {
        Layout::Nhwc => [n, h, w, 3],
        Layout::Nchw => [n, 3, h, w],
    };
    ndarray::ArrayView4::from_shape(shape, data)
        .map_err(|e| Error::Inference(format!("input tensor does not match {shape:?}: {e}")))
}

fn hex12(digest: &[u8]) -> String {
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// Metadata for a model without a metadata file, from its tensor shapes. Only unambiguous cases are
/// accepted: an image input and SSD-style `[N,A,C]` + `[N,A,(1,)4]` outputs.
fn infer_spec(session: &Session, model: &Path) -> Result<ModelSpec> {
    let shape_of = |t: &ValueType| match t {
        ValueType::Tensor { shape, .. } => Some(shape.to_vec()),
        _ => None,
    };
    let help = format!("add a metadata file {} (see models/README.md)", model.with_extension("toml").display());
    let input =
        session.inputs().first().ok_or_else(|| Error::OutputMismatch(format!("model has no inputs; {help}")))?;
    let ishape = shape_of(input.dtype()).unwrap_or_default();
    // Ultralytics exports with dynamic axes state their training size in the metadata ("[640, 640]").
    let imgsz: Option<(i64, i64)> = session.metadata().ok().and_then(|m| m.custom("imgsz")).and_then(|v| {
        let n: Vec<i64> = v.split(|c: char| !c.is_ascii_digit()).filter_map(|x| x.parse().ok()).collect();
        match n.as_slice() {
            [h, w] => Some((*h, *w)),
            [s] => Some((*s, *s)),
            _ => None,
        }
    });
    let size = |h: i64, w: i64| if h > 0 && w > 0 { Some((h, w)) } else { imgsz };
    let (layout, (h, w)) = match ishape.as_slice() {
        [_, 3, h, w] if size(*h, *w).is_some() => (Layout::Nchw, size(*h, *w).unwrap_or_default()),
        [_, h, w, 3] if size(*h, *w).is_some() => (Layout::Nhwc, size(*h, *w).unwrap_or_default()),
        s => {
            return Err(Error::OutputMismatch(format!(
                "cannot tell the image layout and size of input shape {s:?}; {help}"
            )));
        }
    };
    let outs: Vec<(String, Vec<i64>)> =
        session.outputs().iter().filter_map(|o| shape_of(o.dtype()).map(|s| (o.name().to_string(), s))).collect();
    let is_boxes = |s: &[i64]| s.last() == Some(&4) && (s.len() == 3 || (s.len() == 4 && s[2] == 1));
    let known = |d: i64| d > 0;
    let yolo = |decoder: DecoderSpec| (decoder, Resize::Letterbox, 1.0 / 255.0);
    let (decoder, resize, scale) = match outs.as_slice() {
        [(a, sa), (b, sb)] if is_boxes(sb) && sa.len() == 3 => {
            (DecoderSpec::Ssd { scores: a.clone(), boxes: b.clone(), class_offset: 0 }, Resize::Stretch, 1.0)
        }
        [(a, sa), (b, sb)] if is_boxes(sa) && sb.len() == 3 => {
            (DecoderSpec::Ssd { scores: b.clone(), boxes: a.clone(), class_offset: 0 }, Resize::Stretch, 1.0)
        }
        // [N, 4+C, A]: channels first, fewer channels than anchors (anchors may be symbolic).
        [(o, s)] if s.len() == 3 && known(s[1]) && s[1] >= 5 && (!known(s[2]) || s[2] > s[1]) => {
            yolo(DecoderSpec::Yolov8 { output: Some(o.clone()) })
        }
        [(o, s)] if s.len() == 3 && known(s[2]) && s[2] == 6 => {
            return Err(Error::OutputMismatch(format!(
                "output {o} {s:?} fits both a one-class YOLOv5 [N,A,5+C] and an end-to-end [N,D,6] model; {help} with decoder kind \"yolov5\" or \"end_to_end\""
            )));
        }
        [(o, s)] if s.len() == 3 && known(s[2]) && s[2] > 6 && (!known(s[1]) || s[1] > s[2]) => {
            yolo(DecoderSpec::Yolov5 { output: Some(o.clone()) })
        }
        _ => {
            let shapes: Vec<_> = outs.iter().map(|(n, s)| format!("{n} {s:?}")).collect();
            return Err(Error::OutputMismatch(format!("cannot tell the decoder for outputs {shapes:?}; {help}")));
        }
    };
    let name = model.file_stem().map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    Ok(ModelSpec {
        name,
        labels: None,
        labels_first_id: if matches!(decoder, DecoderSpec::Ssd { .. }) { 1 } else { 0 },
        source: None,
        license: None,
        sha256: None,
        input: InputSpec {
            name: Some(input.name().to_string()),
            layout,
            width: w as u32,
            height: h as u32,
            resize,
            scale,
            mean: [0.0; 3],
            std: [1.0; 3],
        },
        decoder,
    })
}
