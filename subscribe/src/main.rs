use std::process::ExitCode;

use clap::Parser;
use framewire_subscribe::{Cli, Command, tail};

#[tokio::main]
async fn main() -> ExitCode {
    framewire_common::telemetry::init();
    let cli = Cli::parse();
    let shutdown = framewire_common::shutdown::on_signal();
    let result = match &cli.command {
        Command::Tail(args) => tail::run(&cli.kafka, args, &cli.metrics, shutdown).await.map(|s| {
            if args.summary {
                eprintln!("{}", s.render());
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("subscribe: error: {:#}", anyhow::Error::from(e));
            ExitCode::FAILURE
        }
    }
}
