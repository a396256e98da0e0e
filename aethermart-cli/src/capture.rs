//! `aethermart capture`.

use crate::EXIT_OK;
use crate::opt::CaptureCommand;
use crate::output::print_json;
use aethermart_core::config::Config;
use aethermart_core::connect::PoolSize;
use aethermart_core::sync::{Capture, capture};
use aethermart_core::{Error, cluster};

pub async fn run(command: CaptureCommand) -> Result<u8, Error> {
    let config = Config::from_env()?;
    match command {
        CaptureCommand::Show { json } => {
            let pool = cluster::writable_pool(&config.mariadb, PoolSize { max: 1 }).await?;
            let now = capture::current(&pool).await?;
            if json {
                print_json(&serde_json::json!({ "capture": now }));
            } else {
                println!("{now}");
            }
        }
        CaptureCommand::Set { capture: to, json } => {
            // The parser allows only the two names.
            let to: Capture = to.parse().unwrap_or(Capture::Triggers);
            let by = format!("aethermart capture set ({})", config.mariadb.user());
            let switched = capture::switch(&config, to, &by).await?;
            if json {
                print_json(&switched);
            } else if switched.from == switched.to {
                println!("the capture is already {}", switched.to);
            } else {
                println!(
                    "capture switched from {} to {} at GTID position {}; {} keys queued as requests",
                    switched.from,
                    switched.to,
                    switched.position.as_deref().unwrap_or("-"),
                    switched.requeued
                );
                println!("restart the workers of the old capture (they stop at their next batch)");
            }
        }
    }
    Ok(EXIT_OK)
}
