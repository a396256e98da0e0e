//! `aethermart`: the AetherMart data platform's command line. Each subcommand is one call into
//! `aethermart-core`; this file only parses arguments, prints results and picks the exit code.

use aethermart_core::config::{Config, MariaDbConfig, env_lookup};
use aethermart_core::doctor;
use aethermart_core::schema::{MariaDbSchema, MigrationState, SchemaApplier};
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Exit code: the command ran and everything it checked is fine.
const EXIT_OK: u8 = 0;
/// Exit code: the command ran and found a problem (a failed check, an unhealthy server).
const EXIT_PROBLEM: u8 = 1;
/// Exit code: the command could not run (bad configuration, bad arguments, a server error).
const EXIT_ERROR: u8 = 2;

/// AetherMart data platform: MariaDB (operational, 3NF) and MongoDB (documents), kept in sync.
///
/// Configuration comes from the environment: AETHERMART_MARIADB_URL, AETHERMART_MONGODB_URI and
/// optionally MARIA_DB_PASS / MONGO_ADMIN_PASS for the passwords. `scripts/services.sh env`
/// prints them for the local servers.
///
/// Exit codes: 0 success, 1 a check failed, 2 the command could not run.
#[derive(Debug, Parser)]
#[command(name = "aethermart", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Connect to both stores and check the settings the platform relies on.
    ///
    /// Prints each server's version and checks (character set, binlog format, read_only, Galera
    /// state, MongoDB version and primary). Exits 1 when a server is down or a check fails.
    ///
    /// Example: aethermart doctor --json
    Doctor {
        /// Print the report as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Apply, inspect or tear down the MariaDB schema (versioned scripts embedded in the binary).
    #[command(subcommand)]
    Schema(SchemaCommand),
}

#[derive(Debug, Subcommand)]
enum SchemaCommand {
    /// Apply every pending schema version, in order, under a lock. Safe to run again.
    ///
    /// Creates the database named in AETHERMART_MARIADB_URL if it does not exist. Refuses to
    /// continue when an applied script was edited since (drift) or failed half-way (dirty).
    ///
    /// Example: aethermart schema apply
    Apply,
    /// Show each schema version: applied, pending, drift, dirty. Exits 1 unless all are applied.
    ///
    /// Example: aethermart schema status
    Status,
    /// Drop the database and recreate it empty. Destroys all data: requires --yes.
    ///
    /// Example: aethermart schema teardown --yes
    Teardown {
        /// Confirm that the whole database may be dropped.
        #[arg(long)]
        yes: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {}", error_chain(&err));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

async fn run(cli: Cli) -> Result<u8, aethermart_core::Error> {
    match cli.command {
        Command::Doctor { json } => {
            let report = doctor::diagnose(&Config::from_env()?).await;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                print!("{report}");
            }
            Ok(if report.healthy() {
                EXIT_OK
            } else {
                EXIT_PROBLEM
            })
        }
        Command::Schema(command) => {
            let schema = MariaDbSchema::new(MariaDbConfig::from_lookup(env_lookup)?);
            match command {
                SchemaCommand::Apply => {
                    let report = schema.apply().await?;
                    if report.applied.is_empty() {
                        println!(
                            "schema up to date ({} versions applied)",
                            report.already_applied
                        );
                    } else {
                        println!("applied schema versions {:?}", report.applied);
                    }
                    Ok(EXIT_OK)
                }
                SchemaCommand::Status => {
                    let status = schema.status().await?;
                    for s in &status {
                        println!(
                            "{:>4}  {:<10}  {}",
                            s.version,
                            s.state.to_string(),
                            s.description
                        );
                    }
                    let all_applied = status.iter().all(|s| s.state == MigrationState::Applied);
                    Ok(if all_applied { EXIT_OK } else { EXIT_PROBLEM })
                }
                SchemaCommand::Teardown { yes } => {
                    schema.teardown(yes).await?;
                    println!("database dropped and recreated empty");
                    Ok(EXIT_OK)
                }
            }
        }
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

/// Structured logs on stderr; level from `AETHERMART_LOG` (default `warn`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AETHERMART_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
