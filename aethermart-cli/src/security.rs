//! `aethermart security apply`.

use crate::EXIT_OK;
use crate::opt::SecurityCommand;
use aethermart_core::config::MariaDbConfig;
use aethermart_core::{Error, security};

pub async fn run(command: SecurityCommand) -> Result<u8, Error> {
    let SecurityCommand::Apply = command;
    let passwords = security::Passwords::from_env()?;
    let config = MariaDbConfig::from_env()?;
    security::apply(&config, &passwords).await?;
    println!(
        "roles {}, {}, {}, {} and users alex, sarah, maria, {} applied on database {}",
        security::ADMIN_ROLE,
        security::ANALYST_ROLE,
        security::ENGINEER_ROLE,
        security::WORKER_ROLE,
        security::WORKER_USER,
        config.database()
    );
    Ok(EXIT_OK)
}
