//! `aethermart lineage`.

use crate::EXIT_OK;
use crate::opt::LineageArgs;
use crate::output::print_json;
use aethermart_core::config::Config;
use aethermart_core::connect::PoolSize;
use aethermart_core::{Error, cluster, lineage};

pub async fn run(args: LineageArgs) -> Result<u8, Error> {
    let config = Config::from_env()?;
    let pool = cluster::writable_pool(&config.mariadb, PoolSize { max: 2 }).await?;
    let rows = lineage::read(&pool, args.run.as_deref(), args.limit.max(1)).await?;
    if args.openlineage {
        let ns = lineage::Namespaces::of(&config);
        for event in lineage::openlineage_events(&rows, &ns) {
            println!("{event}");
        }
    } else if args.json {
        print_json(&rows);
    } else {
        println!(
            "{:<36} {:<9} {:<40} {:>9} {:>9} {:>8} {:<9} {:<19}",
            "run", "job", "target", "read", "written", "refused", "status", "started"
        );
        for r in &rows {
            println!(
                "{:<36} {:<9} {:<40} {:>9} {:>9} {:>8} {:<9} {:<19}",
                r.run_id,
                r.job,
                r.target,
                r.rows_read,
                r.rows_written,
                r.rows_rejected,
                r.status,
                r.started_at.format("%Y-%m-%d %H:%M:%S")
            );
            if let Some(e) = &r.error {
                println!("    {e}");
            }
        }
    }
    Ok(EXIT_OK)
}
