use std::process::ExitCode;

use clap::Parser;
use framewire_ingest::{Config, run};

#[tokio::main]
async fn main() -> ExitCode {
    framewire_common::telemetry::init();
    let config = Config::parse();
    let shutdown = framewire_common::shutdown::on_signal();
    match run(config, shutdown).await {
        Ok(s) => {
            let fps = s.published as f64 / s.elapsed.as_secs_f64().max(1e-3);
            println!(
                "published {} frames of camera {} ({} decoded) in {:.1} s, {fps:.1} frames/s",
                s.published,
                s.camera,
                s.decoded,
                s.elapsed.as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ingest: error: {:#}", anyhow::Error::from(e));
            ExitCode::FAILURE
        }
    }
}
