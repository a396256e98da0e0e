//! `aethermart schema apply | status | teardown`.

use crate::opt::SchemaCommand;
use crate::output::print_json;
use crate::{EXIT_OK, EXIT_PROBLEM};
use aethermart_core::Error;
use aethermart_core::config::MariaDbConfig;
use aethermart_core::schema::{MariaDbSchema, SchemaApplier, VersionState};

pub async fn run(command: SchemaCommand) -> Result<u8, Error> {
    let schema = MariaDbSchema::new(MariaDbConfig::from_env()?);
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
        SchemaCommand::Status { json } => {
            let status = schema.status().await?;
            if json {
                let rows: Vec<_> = status
                    .iter()
                    .map(|s| {
                        serde_json::json!({
                            "version": s.version,
                            "description": s.description,
                            "state": s.state.to_string(),
                        })
                    })
                    .collect();
                print_json(&rows);
            }
            for s in status.iter().filter(|_| !json) {
                println!(
                    "{:>4}  {:<10}  {}",
                    s.version,
                    s.state.to_string(),
                    s.description
                );
            }
            let all_applied = status.iter().all(|s| s.state == VersionState::Applied);
            Ok(if all_applied { EXIT_OK } else { EXIT_PROBLEM })
        }
        SchemaCommand::Teardown { yes } => {
            schema.teardown(yes).await?;
            println!("database dropped and recreated empty");
            Ok(EXIT_OK)
        }
    }
}
