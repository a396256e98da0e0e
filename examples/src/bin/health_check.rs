//! Embed the platform's health check in your own service: read the configuration the platform
//! way, check both stores, and decide whether to start.
//!
//! Run: `eval "$(scripts/services.sh env)"; cargo run -p aethermart-examples --bin health_check`

use aethermart_core::config::Config;
use aethermart_core::doctor;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration: {e}");
            return ExitCode::from(2);
        }
    };
    // `Display` of a config is redacted: safe to log.
    println!("checking {} and {}", config.mariadb, config.mongodb);
    let report = doctor::diagnose(&config).await;
    print!("{report}");
    if report.healthy() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
