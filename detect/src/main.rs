use std::process::ExitCode;

use clap::Parser;
use framewire_detect::{Config, run};

#[tokio::main]
async fn main() -> ExitCode {
    framewire_common::telemetry::init();
    let config = Config::parse();
    let shutdown = framewire_common::shutdown::on_signal();
    match run(config, shutdown).await {
        Ok(s) => {
            println!("detected {} frames, {} dead-lettered", s.detected, s.dead_lettered);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("detect: error: {:#}", anyhow::Error::from(e));
            ExitCode::FAILURE
        }
    }
}
