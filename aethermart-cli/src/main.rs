//! `aethermart`: the AetherMart data platform's command line. Each subcommand is one call into
//! `aethermart-core`: `opt` holds every clap type, one file per command group runs it and
//! prints the result, and this file dispatches and picks the exit code.

/// mimalloc instead of glibc's malloc: the migration and the sync allocate per row and per
/// document, and glibc's malloc was a third of their CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod capture;
mod cluster;
mod generate;
mod lineage;
mod migrate;
mod opt;
mod order;
mod output;
mod progress;
mod quality;
mod report;
mod schema;
mod search;
mod security;
mod sync;
mod up;

use aethermart_core::config::MariaDbConfig;
use aethermart_core::connect::PoolSize;
use aethermart_core::orders::{CancelOrderError, PlaceOrderError};
use aethermart_core::{Error, doctor};
use clap::Parser;
use opt::{Cli, Command};
use sqlx::MySqlPool;
use std::process::ExitCode;

/// Exit code: the command ran and everything it checked is fine.
const EXIT_OK: u8 = 0;
/// Exit code: the command ran and found a problem (a failed check, an unhealthy server).
const EXIT_PROBLEM: u8 = 1;
/// Exit code: the command could not run (bad configuration, bad arguments, a server error).
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    // The embedding model runs faster with candle's per-operation threads off (see there).
    let not_pinned = aethermart_core::search::embedding::exec_with_operations_on_one_thread();
    let cli = Cli::parse();
    // Logs on stderr: AETHERMART_LOG (default `warn`), AETHERMART_LOG_FORMAT (text or json).
    if let Err(msg) = aethermart_core::logging::init("warn") {
        eprintln!("error: {msg}");
        return ExitCode::from(EXIT_ERROR);
    }
    if let Some(e) = not_pinned {
        tracing::warn!(error = %e, "could not re-run with candle's own threads off; embedding is slower");
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {}", error_chain(&err));
            ExitCode::from(exit_code(&err))
        }
    }
}

async fn run(command: Command) -> Result<u8, Error> {
    match command {
        Command::Doctor { json } => doctor(json).await,
        Command::Up(args) => up::run(args).await,
        Command::Schema(command) => schema::run(command).await,
        Command::Generate(args) => generate::run(args).await,
        Command::Migrate(args) => migrate::run(args).await,
        Command::Order(command) => order::run(command).await,
        Command::Report(args) => report::run(args).await,
        Command::Lineage(args) => lineage::run(args).await,
        Command::Search(args) => search::run(args).await,
        Command::Quality(command) => quality::run(command).await,
        Command::Security(command) => security::run(command).await,
        Command::Sync(command) => sync::run(command).await,
        Command::Capture(command) => capture::run(command).await,
        Command::Cluster(command) => cluster::run(command).await,
        Command::Bench(command) => bench::run(command).await,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cli = Cli::command();
            clap_complete::generate(shell, &mut cli, "aethermart", &mut std::io::stdout());
            Ok(EXIT_OK)
        }
    }
}

/// `aethermart doctor`: both stores' versions and settings; 1 when a check fails.
async fn doctor(json: bool) -> Result<u8, Error> {
    let report = doctor::diagnose(&aethermart_core::config::Config::from_env()?).await;
    if json {
        output::print_json(&report);
    } else {
        print!("{report}");
    }
    Ok(if report.healthy() {
        EXIT_OK
    } else {
        EXIT_PROBLEM
    })
}

/// A pool on the configured database's writable node, for commands that need only MariaDB.
async fn mariadb_pool() -> Result<MySqlPool, Error> {
    let config = MariaDbConfig::from_env()?;
    Ok(aethermart_core::cluster::writable_pool(&config, PoolSize::default()).await?)
}

/// A refusal by the database's rules is a finding (1); anything else means the command could
/// not run (2).
fn exit_code(err: &Error) -> u8 {
    match err {
        Error::PlaceOrder(PlaceOrderError::Database(_))
        | Error::CancelOrder(CancelOrderError::Database(_)) => EXIT_ERROR,
        Error::PlaceOrder(_) | Error::CancelOrder(_) => EXIT_PROBLEM,
        _ => EXIT_ERROR,
    }
}

/// `top: cause: cause`, without repeating a cause already in the message.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
