//! `aethermart migrate`.

use crate::opt::MigrateArgs;
use crate::output::{print_json, print_migration, print_verification};
use crate::{EXIT_OK, EXIT_PROBLEM, progress};
use aethermart_core::config::Config;
use aethermart_core::migrate::{BulkMigrator, MigrateOptions, Migrator};
use aethermart_core::{Error, connect};
use std::sync::Arc;

pub async fn run(args: MigrateArgs) -> Result<u8, Error> {
    let config = Config::from_env()?;
    let mongo = connect::mongodb_database(&config.mongodb).await?;
    let migrator = BulkMigrator::new(config.mariadb.clone(), mongo);
    let mut healthy = true;
    if !args.verify_only {
        let options = MigrateOptions {
            resume: args.resume,
            batch_size: args.batch_size,
            parallel_entities: usize::from(args.parallel),
        };
        let report = migrator
            .migrate(options, Arc::new(progress::Bars::new()))
            .await?;
        healthy &= report.clean();
        if args.json {
            print_json(&report);
        } else {
            print_migration(&report);
        }
    }
    if args.verify || args.verify_only {
        let spinner = progress::Spinner::new("comparing MariaDB and MongoDB");
        let report = migrator.verify().await?;
        drop(spinner);
        healthy &= report.equal();
        if args.json {
            print_json(&report);
        } else {
            print_verification(&report);
        }
    }
    Ok(if healthy { EXIT_OK } else { EXIT_PROBLEM })
}
