use std::process::ExitCode;

use clap::Parser;
use framewire_ingest::{Config, run, uploads};

#[tokio::main]
async fn main() -> ExitCode {
    framewire_common::telemetry::init();
    let config = Config::parse();
    let format = config.summary_format;
    let shutdown = framewire_common::shutdown::on_signal();
    let result = match config.uploads.topic {
        Some(_) => uploads::run(config, shutdown).await.map_err(anyhow::Error::from),
        None => run(config, shutdown).await.map_err(anyhow::Error::from),
    };
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ingest: error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", summary.render(format));
    for e in summary.errors() {
        eprintln!("ingest: error: {e}");
    }
    if summary.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
