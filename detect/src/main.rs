use std::process::ExitCode;

use clap::Parser;
use framewire_detect::{Config, run};

#[tokio::main]
async fn main() -> ExitCode {
    framewire_common::telemetry::init();
    let config = Config::parse();
    let format = config.summary_format;
    let shutdown = framewire_common::shutdown::on_signal();
    match run(config, shutdown).await {
        Ok(s) => {
            println!("{}", s.render(format));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("detect: error: {:#}", anyhow::Error::from(e));
            ExitCode::FAILURE
        }
    }
}
