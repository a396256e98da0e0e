//! `aethermart sync probe | status` (the worker itself is `aethermart-worker`).

use crate::opt::SyncCommand;
use crate::output::print_json;
use crate::{EXIT_OK, EXIT_PROBLEM, mariadb_pool};
use aethermart_core::config::Config;
use aethermart_core::connect::{self, PoolSize};
use aethermart_core::{Error, cluster, sync};
use std::time::Duration;

pub async fn run(command: SyncCommand) -> Result<u8, Error> {
    match command {
        SyncCommand::Probe { customer, timeout } => {
            let config = Config::from_env()?;
            let pool = cluster::writable_pool(&config.mariadb, PoolSize { max: 2 }).await?;
            let mongo = connect::mongodb_database(&config.mongodb).await?;
            let timeout = Duration::from_secs(timeout);
            match sync::measure_latency(&pool, &mongo, customer, timeout).await {
                Ok(latency) => {
                    println!(
                        "customer {customer}: committed in MariaDB, visible in MongoDB {:.1} ms later",
                        latency.as_secs_f64() * 1e3
                    );
                    Ok(EXIT_OK)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(EXIT_PROBLEM)
                }
            }
        }
        SyncCommand::Status { json } => {
            let queues = sync::queue_status(&mariadb_pool().await?).await?;
            if json {
                print_json(&queues);
            } else {
                println!(
                    "{:<22} {:<18} {:>9} {:>9} {:>7} {:>11} {:>13}",
                    "queue",
                    "collection",
                    "pending",
                    "retrying",
                    "parked",
                    "oldest s",
                    "dead letters"
                );
                for q in &queues {
                    println!(
                        "{:<22} {:<18} {:>9} {:>9} {:>7} {:>11.3} {:>13}",
                        q.queue,
                        q.collection,
                        q.pending,
                        q.retrying,
                        q.parked,
                        q.oldest_seconds,
                        q.dead_letters
                    );
                }
            }
            let dead = queues.iter().any(|q| q.dead_letters > 0);
            Ok(if dead { EXIT_PROBLEM } else { EXIT_OK })
        }
    }
}
