//! Golden tests: the real model on real photos, through the same code path as the service (JPEG bytes in,
//! boxes in source pixels out).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../e2e/tests/support/oracle.rs"]
mod oracle;

use std::path::PathBuf;

use framewire_detect::Error;
use framewire_detect::model::{Detector, ModelOptions};
use oracle::{Agreement, Kind, OracleImage};

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
    encode(&img)
}

fn encode(img: &image::DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.to_rgb8().write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Jpeg).unwrap();
    out
}

fn yolo_model() -> PathBuf {
    let p = cache().join("test-models/yolov8n-nudenet-320.onnx");
    assert!(p.exists(), "{} missing: run scripts/fetch-test-models.sh", p.display());
    p
}

/// The oracle's boxes (e2e/tests/support/oracle.py) for the exact JPEG bytes detect is given.
fn oracle_of(o: &ModelOptions, kind: Kind, jpegs: &[&[u8]]) -> Vec<OracleImage> {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = jpegs
        .iter()
        .enumerate()
        .map(|(i, j)| {
            let p = dir.path().join(format!("{i}.jpg"));
            std::fs::write(&p, j).unwrap();
            p
        })
        .collect();
    let labels = cache().join("models/ssdlite_mobilenet_v2_coco.labels.txt");
    oracle::run(kind, &o.model, (kind == Kind::Ssd).then_some(labels.as_path()), o.conf, &files)
}

#[test]
fn astronaut_is_a_person_where_the_oracle_finds_it() {
    let o = options();
    let mut d = Detector::load(&o).unwrap();
    let mut pre = d.preprocessor().unwrap();
    let jpeg = jpeg_of("media/astronaut.png");
    let prepared = pre.prepare(&jpeg).unwrap();
    assert_eq!((prepared.src_width, prepared.src_height), (512, 512));
    let (boxes, ms) = d.detect(&[&prepared]).unwrap();
    eprintln!("{:?} in {ms} ms", boxes[0]);
    let person = boxes[0].iter().find(|b| b.label == "person").expect("a person");
    assert_eq!(person.class_id, 1);
    let want = oracle_of(&o, Kind::Ssd, &[&jpeg]);
    let mut agreement = Agreement::new();
    agreement.check("astronaut", o.conf, &boxes[0], &want[0]);
    assert!(agreement.matched >= 1, "{agreement:?}");
    eprintln!("SSD vs oracle: {agreement:?}");
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
    o.model = yolo_model();
    o.conf = 0.3;
    let mut d = Detector::load(&o).unwrap();
    assert_eq!(d.labels.len(), 18, "names from the ONNX metadata");
    assert_eq!((d.input_spec().width, d.input_spec().height), (320, 320));
    let mut pre = d.preprocessor().unwrap();
    let jpeg = jpeg_of("media/astronaut.png");
    let prepared = pre.prepare(&jpeg).unwrap();
    let (boxes, _) = d.detect(&[&prepared]).unwrap();
    eprintln!("{:?}", boxes[0]);
    assert!(boxes[0].iter().any(|b| b.label == "FACE_FEMALE"), "a face: {:?}", boxes[0]);
    let want = oracle_of(&o, Kind::YoloV8, &[&jpeg]);
    let mut agreement = Agreement::new();
    agreement.check("astronaut", o.conf, &boxes[0], &want[0]);
    assert!(agreement.matched >= 1, "{agreement:?}");
    eprintln!("YOLOv8 vs oracle: {agreement:?}");
}

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

/// Four different frames (three sizes and orientations) in one batch: each batched result must match the
/// oracle's boxes for its own frame, and its own single-frame result, so a result shifted to another batch
/// position (or a batch computed from one frame) fails.
#[test]
fn batches_of_different_frames_match_each_frame_s_oracle_boxes() {
    let mut o = options();
    o.model = yolo_model();
    // Low enough that most of these frames have boxes for this model (its classes are not COCO's).
    o.conf = 0.1;
    let mut d = Detector::load(&o).unwrap();
    assert_eq!(d.max_batch, 8, "dynamic batch dimension");
    let astronaut = image::open(cache().join("media/astronaut.png")).unwrap();
    let jpegs = [
        jpeg_of("media/chelsea.png"),
        jpeg_of("media/astronaut.png"),
        jpeg_of("media/rocket.jpg"),
        // A portrait crop: the letterbox pads left and right.
        encode(&astronaut.crop_imm(110, 0, 300, 512)),
    ];
    let mut pre = d.preprocessor().unwrap();
    let prepared: Vec<_> = jpegs.iter().map(|j| pre.prepare(j).unwrap()).collect();
    let (batched, _) = d.detect(&prepared.iter().collect::<Vec<_>>()).unwrap();
    assert_eq!(batched.len(), jpegs.len());
    let want = oracle_of(&o, Kind::YoloV8, &jpegs.iter().map(|j| j.as_slice()).collect::<Vec<_>>());
    // Frames with boxes differ in where they are, so only two empty frames could swap unnoticed.
    assert!(want.iter().filter(|w| w.boxes.is_empty()).count() <= 1, "{want:?}");
    let mut agreement = Agreement::new();
    for (i, (got, p)) in batched.iter().zip(&prepared).enumerate() {
        agreement.check(&format!("batch position {i}"), o.conf, got, &want[i]);
        let (single, _) = d.detect(&[p]).unwrap();
        assert_eq!(got.len(), single[0].len(), "position {i}: {got:?} vs {:?}", single[0]);
        for (x, y) in got.iter().zip(&single[0]) {
            assert_eq!(x.label, y.label);
            assert!((x.score - y.score).abs() < 1e-3 && (x.x1 - y.x1).abs() < 0.5, "{x:?} vs {y:?}");
        }
    }
    assert!(agreement.matched >= 3, "{agreement:?}");
    let per_frame: Vec<usize> = batched.iter().map(Vec::len).collect();
    eprintln!("YOLOv8 batch vs oracle: {agreement:?}, boxes per position {per_frame:?}");
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
