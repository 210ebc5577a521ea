//! Per-frame cost of JPEG decoding + preprocessing, for profiling: `prep_cost JPEG [ITERATIONS]`.
use std::time::Instant;

use framewire_detect::preprocess::Preprocessor;
use framewire_detect::spec::{InputSpec, Layout, Resize};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let jpeg = std::fs::read(&args[1])?;
    let n: usize = args.get(2).map_or(Ok(500), |s| s.parse())?;
    let spec = InputSpec {
        name: None,
        layout: Layout::Nhwc,
        width: 300,
        height: 300,
        resize: Resize::Stretch,
        scale: 1.0,
        mean: [0.0; 3],
        std: [1.0; 3],
    };
    let mut p = Preprocessor::new(spec)?;
    let t = Instant::now();
    for _ in 0..n {
        p.prepare(&jpeg)?;
    }
    println!("prepare: {:.3} ms/frame", t.elapsed().as_secs_f64() * 1000.0 / n as f64);
    Ok(())
}
