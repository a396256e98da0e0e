//! `aethermart up`: the whole platform, step by step.

use crate::opt::UpArgs;
use crate::output::print_json;
use crate::{EXIT_OK, EXIT_PROBLEM, error_chain, progress};
use aethermart_core::config::{Config, env_lookup};
use aethermart_core::generate::GenerateConfig;
use aethermart_core::progress::{NoProgress, Progress};
use aethermart_core::{Error, lifecycle, security};
use chrono::Utc;
use std::sync::Arc;

pub async fn run(args: UpArgs) -> Result<u8, Error> {
    let config = Config::from_env()?;
    let passwords = match security::Passwords::VARIABLES
        .iter()
        .all(|v| env_lookup(v).is_none())
    {
        true => None,
        false => Some(security::Passwords::from_env()?),
    };
    let as_of = args.as_of.unwrap_or_else(|| Utc::now().date_naive());
    let options = lifecycle::UpOptions {
        fresh: args.fresh,
        data: GenerateConfig::new(args.seed, args.scale, as_of)?,
        passwords,
        // The parser allows only the two names.
        capture: args.capture.as_deref().and_then(|c| c.parse().ok()),
        embedding_model_dir: args.model.dir(),
    };
    let json = args.json;
    let progress: Arc<dyn Progress> = if json {
        Arc::new(NoProgress)
    } else {
        Arc::new(progress::Bars::new())
    };
    let on_step = |step: &'static str| {
        if !json {
            eprintln!("==> {step}");
        }
    };
    let report = match lifecycle::up(&config, options, progress, &on_step).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            return Ok(EXIT_PROBLEM);
        }
    };
    if json {
        print_json(&report);
    } else {
        println!("{:<10} {:>9}  what", "step", "seconds");
        for s in &report.steps {
            println!("{:<10} {:>9.2}  {}", s.step, s.seconds, s.detail);
        }
        let total: f64 = report.steps.iter().map(|s| s.seconds).sum();
        println!("{:<10} {:>9.2}", "total", total);
        println!(
            "ready: start `aethermart-worker` to keep MongoDB in step; lineage of the migration: aethermart lineage --run {}",
            report.migration_run
        );
    }
    Ok(EXIT_OK)
}
