//! `aethermart quality check`.

use crate::opt::QualityCommand;
use crate::output::print_json;
use crate::{EXIT_OK, EXIT_PROBLEM, progress};
use aethermart_core::config::Config;
use aethermart_core::connect::{self, PoolSize};
use aethermart_core::migrate::BulkMigrator;
use aethermart_core::{Error, cluster, quality};
use std::time::Duration;

pub async fn run(command: QualityCommand) -> Result<u8, Error> {
    let QualityCommand::Check { stale_after, json } = command;
    let config = Config::from_env()?;
    let pool = cluster::writable_pool(&config.mariadb, PoolSize { max: 4 }).await?;
    let mongo = connect::mongodb_database(&config.mongodb).await?;
    let reconciler = BulkMigrator::new(config.mariadb.clone(), mongo.clone());
    let options = quality::QualityOptions {
        stale_after: Duration::from_secs(stale_after),
    };
    let spinner = (!json).then(|| progress::Spinner::new("running the quality checks"));
    let report = quality::run_checks(&pool, &mongo, &reconciler, options).await?;
    drop(spinner);
    if json {
        print_json(&report);
    } else {
        println!(
            "{:<22} {:<8} {:>9}  {:<6} sample keys",
            "check", "severity", "failing", "result"
        );
        for c in &report.checks {
            let result = if c.passed() { "pass" } else { "FAIL" };
            let severity = match c.severity {
                quality::Severity::Error => "error",
                quality::Severity::Warning => "warning",
            };
            println!(
                "{:<22} {:<8} {:>9}  {:<6} {}",
                c.check,
                severity,
                c.failing,
                result,
                c.sample_keys.join(", ")
            );
        }
        println!("run {} logged to data_quality_logs", report.run_id);
    }
    Ok(if report.ok() { EXIT_OK } else { EXIT_PROBLEM })
}
