//! `aethermart report sales | low-stock | customer` (from a replica with `--from-replica`).

use crate::opt::{ReportArgs, ReportCommand};
use crate::output::{Format, print_json, print_rows};
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
        json,
        csv,
    } = args;
    let format = Format::from_flags(json, csv);
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
            print_rows(
                format,
                &rows,
                &["quarter", "category", "orders", "units", "revenue"],
                |r| {
                    vec![
                        r.quarter.clone(),
                        r.category.clone(),
                        r.orders.to_string(),
                        r.units.to_string(),
                        r.revenue.to_string(),
                    ]
                },
            );
        }
        ReportCommand::LowStock { limit } => {
            let rows = reports::low_stock(&pool, limit).await?;
            print_rows(
                format,
                &rows,
                &["id", "sku", "name", "category", "stock"],
                |p| {
                    vec![
                        p.product_id.to_string(),
                        p.sku.clone(),
                        p.name.clone(),
                        p.category.clone(),
                        p.stock.to_string(),
                    ]
                },
            );
        }
        ReportCommand::Customer { customer } => {
            let id = CustomerId(customer);
            let Some(summary) = reports::customer_summary(&pool, id).await? else {
                eprintln!("no customer {customer}");
                return Ok(EXIT_PROBLEM);
            };
            let orders = reports::customer_orders(&pool, id, 10).await?;
            if format == Format::Json {
                print_json(&serde_json::json!({ "summary": summary, "latest_orders": orders }));
                return Ok(EXIT_OK);
            }
            if format == Format::Table {
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
            }
            print_rows(
                format,
                &orders,
                &["order", "placed_at", "status", "total"],
                |o| {
                    vec![
                        o.id.to_string(),
                        o.placed_at.format("%Y-%m-%d %H:%M").to_string(),
                        o.status.to_string(),
                        o.total.to_string(),
                    ]
                },
            );
        }
    }
    Ok(EXIT_OK)
}
