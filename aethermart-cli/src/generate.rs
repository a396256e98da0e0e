//! `aethermart generate`.

use crate::opt::GenerateArgs;
use crate::output::{print_json, print_load_summary};
use crate::{EXIT_OK, progress};
use aethermart_core::config::Config;
use aethermart_core::{Error, generate};
use std::sync::Arc;

pub async fn run(args: GenerateArgs) -> Result<u8, Error> {
    let (settings, options) = args.settings()?;
    let summary = generate::generate_into(
        &Config::from_env()?,
        settings,
        options,
        Arc::new(progress::Bars::new()),
    )
    .await?;
    if args.json {
        print_json(&summary);
    } else {
        print_load_summary(&summary);
    }
    Ok(EXIT_OK)
}
