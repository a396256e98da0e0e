//! `aethermart report sales | low-stock | customer` (from a replica with `--from-replica`).

use crate::opt::{ReportArgs, ReportCommand};
use crate::{EXIT_OK, EXIT_PROBLEM, mariadb_pool};
use aethermart_core::config::MariaDbConfig;
use aethermart_core::connect::{self, PoolSize};
use aethermart_core::model::CustomerId;
use aethermart_core::{Error, reports};
use std::time::Duration;

pub async fn run(args: ReportArgs) -> Result<u8, Error> {
    let ReportArgs {
        report,
        from_replica,
        max_lag,
    } = args;
    let pool = if from_replica {
        let config = MariaDbConfig::from_env()?;
        let max_lag = Duration::from_secs(max_lag);
        let (replica, lag) = aethermart_core::cluster::replica_node(&config, max_lag).await?;
        eprintln!(
            "reading from replica {} ({} s behind its primary)",
            replica.endpoint(),
            lag.as_secs()
        );
        connect::node_pool(&replica, PoolSize::default()).await?
    } else {
        mariadb_pool().await?
    };
    match report {
        ReportCommand::Sales { since } => {
            let rows = match since {
                Some(day) => {
                    reports::sales_since(
                        &pool,
                        day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
                    )
                    .await?
                }
                None => reports::quarterly_sales(&pool).await?,
            };
            println!(
                "{:<8} {:<28} {:>8} {:>10} {:>14}",
                "quarter", "category", "orders", "units", "revenue"
            );
            for r in rows {
                println!(
                    "{:<8} {:<28} {:>8} {:>10} {:>14}",
                    r.quarter, r.category, r.orders, r.units, r.revenue
                );
            }
        }
        ReportCommand::LowStock { limit } => {
            println!(
                "{:>8} {:<16} {:<40} {:<24} {:>6}",
                "id", "sku", "name", "category", "stock"
            );
            for p in reports::low_stock(&pool, limit).await? {
                println!(
                    "{:>8} {:<16} {:<40} {:<24} {:>6}",
                    p.product_id, p.sku, p.name, p.category, p.stock
                );
            }
        }
        ReportCommand::Customer { customer } => {
            let id = CustomerId(customer);
            let Some(summary) = reports::customer_summary(&pool, id).await? else {
                eprintln!("no customer {customer}");
                return Ok(EXIT_PROBLEM);
            };
            println!(
                "customer {}: {} orders, lifetime value {}, last order {}",
                summary.customer_id,
                summary.order_count,
                summary.lifetime_value,
                summary
                    .last_order_at
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_else(|| "never".into())
            );
            for o in reports::customer_orders(&pool, id, 10).await? {
                println!(
                    "  order {:>8}  {}  {:<10} {:>12}",
                    o.id,
                    o.placed_at.format("%Y-%m-%d %H:%M"),
                    o.status,
                    o.total
                );
            }
        }
    }
    Ok(EXIT_OK)
}
