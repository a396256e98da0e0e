//! `aethermart-worker`: the long-running process that keeps MongoDB in step with MariaDB.
//!
//! This build knows how to reach both stores (`--check`); the sync loop itself (queue source,
//! MongoDB sink, metrics) is tracked as its own issue and is not part of this build yet.

use aethermart_core::config::Config;
use aethermart_core::connect;
use clap::Parser;
use std::process::ExitCode;

/// AetherMart sync worker. Reads AETHERMART_MARIADB_URL and AETHERMART_MONGODB_URI.
///
/// Exit codes: 0 success, 2 the worker could not run (configuration, unreachable store).
#[derive(Debug, Parser)]
#[command(name = "aethermart-worker", version)]
struct Args {
    /// Connect to both stores, report, and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("AETHERMART_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<(), aethermart_core::Error> {
    let config = Config::from_env()?;
    connect::mariadb_pool(&config.mariadb, Default::default()).await?;
    connect::mongodb_database(&config.mongodb).await?;
    tracing::info!(mariadb = %config.mariadb, mongodb = %config.mongodb, "both stores reachable");
    if !args.check {
        eprintln!(
            "aethermart-worker: the sync loop is not part of this build yet; only --check is available"
        );
        std::process::exit(2);
    }
    Ok(())
}
