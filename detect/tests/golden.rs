//! Golden tests: the real model on real photos, through the same code path as the service (JPEG bytes in,
//! boxes in source pixels out).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use framewire_detect::Error;
use framewire_detect::model::{Detector, ModelOptions};

fn cache() -> PathBuf {
    PathBuf::from(
        std::env::var("FRAMEWIRE_CACHE").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../.cache").into()),
    )
}

fn options() -> ModelOptions {
    let c = cache();
    let runtime =
        std::env::var("ORT_DYLIB_PATH").map(PathBuf::from).unwrap_or_else(|_| c.join("onnxruntime/libonnxruntime.so"));
    ModelOptions::new(c.join("models/ssdlite_mobilenet_v2_coco.onnx"), runtime)
}

fn jpeg_of(path: &str) -> Vec<u8> {
    let img = image::open(cache().join(path)).unwrap_or_else(|e| panic!("{path}: {e} (run `make setup`)"));
    let mut out = Vec::new();
    img.to_rgb8().write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Jpeg).unwrap();
    out
}

fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
}

/// The astronaut's figure in astronaut.png (512x512), measured once from this model's output and checked
/// by eye: head to the bottom edge, from the left shoulder to the arm on the right.
pub const ASTRONAUT_PERSON: [f32; 4] = [14.0, 12.0, 385.0, 509.0];

#[test]
fn astronaut_is_a_person() {
    let mut d = Detector::load(&options()).unwrap();
    let mut pre = d.preprocessor().unwrap();
    let prepared = pre.prepare(&jpeg_of("media/astronaut.png")).unwrap();
    assert_eq!((prepared.src_width, prepared.src_height), (512, 512));
    let (boxes, ms) = d.detect(&[&prepared]).unwrap();
    eprintln!("{:?} in {ms} ms", boxes[0]);
    let person = boxes[0].iter().find(|b| b.label == "person").expect("a person");
    assert_eq!(person.class_id, 1);
    assert!(person.score > 0.6, "{person:?}");
    let got = [person.x1, person.y1, person.x2, person.y2];
    assert!(iou(got, ASTRONAUT_PERSON) >= 0.5, "{got:?} vs {ASTRONAUT_PERSON:?}");
}

#[test]
fn missing_model_is_a_clear_error() {
    let mut o = options();
    o.model = PathBuf::from("/nonexistent/model.onnx");
    let err = Detector::load(&o).err().expect("must fail");
    assert!(matches!(err, Error::ModelNotFound(_)), "{err}");
    assert!(err.to_string().contains("/nonexistent/model.onnx"));
}

/// A real YOLOv8n-architecture model (nudenet's 320n.onnx, fetched by scripts/fetch-test-models.sh), with no
/// metadata file: the decoder, input size (from the `imgsz` metadata), letterboxing and labels (from the
/// `names` metadata) are all inferred.
#[test]
fn yolov8_model_without_metadata_file_finds_the_astronauts_face() {
    let mut o = options();
    o.model = cache().join("test-models/yolov8n-nudenet-320.onnx");
    assert!(o.model.exists(), "{} missing: run scripts/fetch-test-models.sh", o.model.display());
    o.conf = 0.3;
    let mut d = Detector::load(&o).unwrap();
    assert_eq!(d.labels.len(), 18, "names from the ONNX metadata");
    assert_eq!((d.input_spec().width, d.input_spec().height), (320, 320));
    let mut pre = d.preprocessor().unwrap();
    let prepared = pre.prepare(&jpeg_of("media/astronaut.png")).unwrap();
    let (boxes, _) = d.detect(&[&prepared]).unwrap();
    eprintln!("{:?}", boxes[0]);
    let face = boxes[0].iter().find(|b| b.label == "FACE_FEMALE").expect("a face");
    let got = [face.x1, face.y1, face.x2, face.y2];
    assert!(iou(got, ASTRONAUT_FACE) >= 0.5, "{got:?} vs {ASTRONAUT_FACE:?}");
}

/// The astronaut's face in astronaut.png, measured once with the nudenet model.
const ASTRONAUT_FACE: [f32; 4] = [173.0, 83.0, 274.0, 179.0];

#[test]
fn class_filter_and_per_class_thresholds() {
    let mut o = options();
    o.conf = 0.3;
    o.classes = vec!["person".into(), "dog".into()];
    o.class_conf = vec![("person".into(), 0.99)];
    let mut d = Detector::load(&o).unwrap();
    let mut pre = d.preprocessor().unwrap();
    let prepared = pre.prepare(&jpeg_of("media/astronaut.png")).unwrap();
    let (boxes, _) = d.detect(&[&prepared]).unwrap();
    assert!(boxes[0].is_empty(), "person needs 0.99 here, and nothing else is allowed: {:?}", boxes[0]);

    o.class_conf = vec![("person".into(), 0.5)];
    let mut d = Detector::load(&o).unwrap();
    let (boxes, _) = d.detect(&[&prepared]).unwrap();
    assert!(boxes[0].iter().all(|b| b.label == "person" || b.label == "dog"), "{:?}", boxes[0]);
    assert!(boxes[0].iter().any(|b| b.label == "person"));

    o.classes = vec!["unicorn".into()];
    let err = Detector::load(&o).err().expect("unknown class");
    assert!(err.to_string().contains("unknown class \"unicorn\""), "{err}");
}

#[test]
fn a_gpu_provider_missing_from_the_build_is_an_error_not_a_silent_cpu_fallback() {
    let mut o = options();
    o.execution_provider = framewire_detect::model::ExecutionProvider::Cuda;
    match Detector::load(&o) {
        Err(e) if cfg!(not(feature = "cuda")) => assert!(e.to_string().contains("--features cuda"), "{e}"),
        // With the feature but without the GPU build of ONNX Runtime, registration must fail loudly too.
        Err(e) => assert!(e.to_string().contains("Cuda"), "{e}"),
        // The ONNX Runtime fetched by make setup is the CPU build: CUDA can never load with it.
        Ok(_) => panic!("CUDA loaded with the CPU build of ONNX Runtime"),
    }
}

#[test]
fn batches_of_several_frames_match_single_frame_results() {
    let mut o = options();
    o.model = cache().join("test-models/yolov8n-nudenet-320.onnx");
    o.conf = 0.3;
    let mut d = Detector::load(&o).unwrap();
    assert_eq!(d.max_batch, 8, "dynamic batch dimension");
    let mut pre = d.preprocessor().unwrap();
    let a = pre.prepare(&jpeg_of("media/astronaut.png")).unwrap();
    let (single, _) = d.detect(&[&a]).unwrap();
    let (batched, _) = d.detect(&[&a, &a, &a]).unwrap();
    assert_eq!(batched.len(), 3);
    for b in &batched {
        assert_eq!(b.len(), single[0].len());
        for (x, y) in b.iter().zip(&single[0]) {
            assert_eq!(x.label, y.label);
            assert!((x.score - y.score).abs() < 1e-3 && (x.x1 - y.x1).abs() < 0.5, "{x:?} vs {y:?}");
        }
    }
}

#[test]
fn a_file_that_is_not_onnx_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("model.onnx");
    std::fs::write(&bogus, b"this is not a protobuf model").unwrap();
    let mut o = options();
    o.model = bogus.clone();
    let err = Detector::load(&o).err().expect("must fail").to_string();
    assert!(err.starts_with(&format!("cannot load model {}", bogus.display())), "{err}");
}
