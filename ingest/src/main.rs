use std::process::ExitCode;

use clap::Parser;
use framewire_ingest::{Config, run};

#[tokio::main]
async fn main() -> ExitCode {
    framewire_common::telemetry::init();
    let config = Config::parse();
    let shutdown = framewire_common::shutdown::on_signal();
    let summary = match run(config, shutdown).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ingest: error: {:#}", anyhow::Error::from(e));
            return ExitCode::FAILURE;
        }
    };
    let secs = summary.elapsed.as_secs_f64().max(1e-3);
    for c in &summary.cameras {
        let mut detail = format!("{} decoded", c.decoded);
        for (n, what) in [
            (c.dropped, "dropped"),
            (c.reconnects, "reconnects"),
            (c.skipped, "files skipped"),
            (c.damaged, "lost to damaged data"),
        ] {
            if n > 0 {
                detail += &format!(", {n} {what}");
            }
        }
        println!(
            "published {} frames of camera {} ({detail}) in {secs:.1} s, {:.1} frames/s",
            c.published,
            c.camera,
            c.published as f64 / secs
        );
        if let Some(e) = &c.error {
            eprintln!("ingest: error: camera {}: {e}", c.camera);
        }
    }
    if let Some(e) = &summary.undelivered {
        eprintln!("ingest: error: {e}");
    }
    if summary.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
