use std::process::ExitCode;

use clap::Parser;
use framewire_subscribe::{Cli, Command, query, store, tail, web};

#[tokio::main]
async fn main() -> ExitCode {
    framewire_common::telemetry::init();
    let cli = Cli::parse();
    let shutdown = framewire_common::shutdown::on_signal();
    let result: anyhow::Result<()> = match &cli.command {
        Command::Tail(args) => tail::run(&cli.kafka, args, &cli.metrics, shutdown)
            .await
            .map(|s| {
                if let Some(line) = args.summary_line(&s) {
                    eprintln!("{line}");
                }
            })
            .map_err(anyhow::Error::from),
        Command::Store(args) => store::run(&cli.kafka, args, &cli.metrics, shutdown)
            .await
            .map(|s| eprintln!("{}", s.render(args.summary_format)))
            .map_err(anyhow::Error::from),
        Command::Query(args) => query::run_query(args).await.map(|_| ()).map_err(anyhow::Error::from),
        Command::Show(args) => query::run_show(args).await.map(|_| ()).map_err(anyhow::Error::from),
        Command::Web(args) => web::run(&cli.kafka, args, &cli.metrics, shutdown).await.map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("subscribe: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
