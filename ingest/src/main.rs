use std::process::ExitCode;

use clap::Parser;
use framewire_ingest::{Config, run};

#[tokio::main]
async fn main() -> ExitCode {
    framewire_common::telemetry::init();
    let config = Config::parse();
    let format = config.summary_format;
    let shutdown = framewire_common::shutdown::on_signal();
    let summary = match run(config, shutdown).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ingest: error: {:#}", anyhow::Error::from(e));
            return ExitCode::FAILURE;
        }
    };
    print!("{}", summary.render(format));
    for e in summary.errors() {
        eprintln!("ingest: error: {e}");
    }
    if summary.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
