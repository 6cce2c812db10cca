//! `shardcast`: parse flags, set up logging, run the server (see `shardcast --help`).

use clap::Parser;
use shardcast_server::config::{Args, Config};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::load(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shardcast: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = shardcast_server::logfilter::log_filter(&config.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let stop = shardcast_engine::StopFlag::new();
    if let Err(e) = shardcast_server::shutdown::on_signals(stop.clone()) {
        eprintln!("shardcast: cannot install signal handlers: {e}");
        return ExitCode::from(1);
    }
    let demo = if config.no_demo { Vec::new() } else { config.demo.clone() };
    let result = shardcast_server::server::run(config, stop, |addr| {
        // Tests and scripts wait for this exact line on stdout.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {addr}");
        let _ = out.flush();
        if !demo.is_empty() {
            let apps: Vec<_> = demo.iter().map(|k| k.name()).collect();
            tracing::info!("live map: http://{addr}/  (demo publishing: {})", apps.join(", "));
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shardcast: {e:#}");
            ExitCode::from(1)
        }
    }
}
