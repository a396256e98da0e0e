//! Run the data quality checks and read the lineage, as a monitoring job would.
//!
//! Prints each failing check with sample keys, then the newest lineage rows as OpenLineage
//! RunEvents (one JSON per line, ready for a lineage server). Exits 1 when an error-severity
//! check fails.
//!
//! `eval "$(scripts/services.sh env)"; cargo run -p aethermart-examples --bin quality_and_lineage`

use aethermart_core::cluster;
use aethermart_core::config::Config;
use aethermart_core::connect::{self, PoolSize};
use aethermart_core::lineage::{self, Namespaces};
use aethermart_core::migrate::BulkMigrator;
use aethermart_core::quality::{self, QualityOptions};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<bool, aethermart_core::Error> {
    let config = Config::from_env()?;
    let pool = cluster::writable_pool(&config.mariadb, PoolSize { max: 4 }).await?;
    let mongo = connect::mongodb_database(&config.mongodb).await?;
    let reconciler = BulkMigrator::new(config.mariadb.clone(), mongo.clone());
    let report = quality::run_checks(&pool, &mongo, &reconciler, QualityOptions::default()).await?;
    for check in &report.checks {
        if check.passed() {
            println!("pass  {}", check.check);
        } else {
            println!(
                "FAIL  {} ({:?}): {} failing, e.g. {}",
                check.check,
                check.severity,
                check.failing,
                check.sample_keys.join(", ")
            );
        }
    }
    let rows = lineage::read(&pool, None, 5).await?;
    let namespaces = Namespaces {
        mariadb_database: config.mariadb.database().to_owned(),
        mariadb: format!("mysql://{}", config.mariadb.endpoint()),
        mongodb: format!("mongodb://{}", config.mongodb.endpoint()),
    };
    for event in lineage::openlineage_events(&rows, &namespaces) {
        println!("{event}");
    }
    Ok(report.ok())
}
