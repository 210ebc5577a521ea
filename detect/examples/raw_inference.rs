//! Baseline for the detect benchmark: ONNX Runtime alone, in a loop over one pre-built input tensor.
//! `cargo run --release -p framewire-detect --example raw_inference -- MODEL THREADS SECONDS`
//! Prints `raw_fps=<frames per second>`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use framewire_detect::model::{Detector, ModelOptions};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let model = PathBuf::from(args.get(1).map_or(".cache/models/ssdlite_mobilenet_v2_coco.onnx", String::as_str));
    let threads: usize = args.get(2).map_or(Ok(1), |s| s.parse())?;
    let seconds: u64 = args.get(3).map_or(Ok(10), |s| s.parse())?;
    let runtime = std::env::var("ORT_DYLIB_PATH").unwrap_or_else(|_| ".cache/onnxruntime/libonnxruntime.so".into());
    let mut options = ModelOptions::new(model, runtime.into());
    options.threads = threads;
    let mut detector = Detector::load(&options)?;
    let (w, h) = (detector.input_spec().width as usize, detector.input_spec().height as usize);
    let tensor = framewire_detect::preprocess::Prepared {
        tensor: (0..w * h * 3).map(|i| (i % 255) as f32).collect(),
        src_width: w as u32,
        src_height: h as u32,
        transform: framewire_detect::preprocess::Transform { sx: 1.0, sy: 1.0, pad_x: 0.0, pad_y: 0.0 },
    };
    for _ in 0..5 {
        detector.run_raw(&tensor)?;
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(seconds) {
        detector.run_raw(&tensor)?;
        n += 1;
    }
    println!("raw_fps={:.1}", n as f64 / start.elapsed().as_secs_f64());
    Ok(())
}
