//! `aethermart bench …`: the platform's figures.

use crate::opt::BenchCommand;
use crate::output::{print_json, print_load_summary, print_migration};
use crate::{EXIT_OK, progress};
use aethermart_core::Error;
use aethermart_core::bench::{self, PlaceOrderBench, SyncBench};
use aethermart_core::config::{Config, MariaDbConfig};
use std::sync::Arc;
use std::time::Duration;

pub async fn run(command: BenchCommand) -> Result<u8, Error> {
    match command {
        BenchCommand::Migrate(args) => {
            let (settings, options) = args.settings()?;
            let figures = bench::migrate_throughput(
                &Config::from_env()?,
                settings,
                options,
                Arc::new(progress::Bars::new()),
            )
            .await?;
            if args.json {
                print_json(&figures);
            } else {
                print_migration(&figures.migration);
                println!(
                    "migration {:.0} documents/s; raw insert_many {:.0} documents/s ({} documents); ratio {:.0}%",
                    figures.migration.documents_per_second(),
                    figures.raw_insert_per_second,
                    figures.raw_documents,
                    100.0 * figures.ratio()
                );
            }
            Ok(EXIT_OK)
        }
        BenchCommand::Generate(args) => {
            let (settings, options) = args.settings()?;
            let figures = bench::generate_throughput(
                &Config::from_env()?,
                settings,
                options,
                Arc::new(progress::Bars::new()),
            )
            .await?;
            if args.json {
                print_json(&figures);
            } else {
                println!(
                    "generate benchmark, scale {} seed {}",
                    settings.scale, settings.seed
                );
                print_load_summary(&figures.summary);
                match figures.peak_rss_mib {
                    Some(mib) => println!("peak RSS: {mib:.0} MiB"),
                    None => println!("peak RSS: not reported by this OS"),
                }
            }
            Ok(EXIT_OK)
        }
        BenchCommand::PlaceOrder {
            clients,
            seconds,
            json,
        } => {
            let settings = PlaceOrderBench {
                clients,
                duration: Duration::from_secs(seconds),
                ..PlaceOrderBench::default()
            };
            let config = MariaDbConfig::from_env()?;
            eprintln!(
                "place-order benchmark: {} s per run, database {}_bench",
                seconds,
                config.database()
            );
            let runs = bench::place_order_throughput(&config, &settings).await?;
            if json {
                print_json(&runs);
                return Ok(EXIT_OK);
            }
            println!(
                "{:>8} {:>10} {:>12} {:>10} {:>10}",
                "clients", "orders", "orders/s", "p50 ms", "p99 ms"
            );
            for r in runs {
                println!(
                    "{:>8} {:>10} {:>12.1} {:>10.2} {:>10.2}",
                    r.clients, r.orders, r.orders_per_second, r.p50_ms, r.p99_ms
                );
            }
            Ok(EXIT_OK)
        }
        BenchCommand::Sync {
            rates,
            seconds,
            customers,
            sync,
            json,
        } => {
            let settings = SyncBench {
                customers,
                rates,
                duration: Duration::from_secs(seconds),
                backlog: customers,
                options: sync.options(),
            };
            let config = Config::from_env()?;
            eprintln!(
                "sync benchmark: {customers} customers, {seconds} s per rate, databases {}_bench",
                config.mariadb.database()
            );
            let spinner = progress::Spinner::new("measuring (about a minute)");
            let figures = bench::sync_throughput(&config, &settings).await?;
            drop(spinner);
            if json {
                print_json(&figures);
                return Ok(EXIT_OK);
            }
            let ms = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.4}"));
            println!(
                "{:>10} {:>12} {:>9} {:>9} {:>9} {:>18} {:>19}",
                "changes/s",
                "achieved/s",
                "p50 ms",
                "p99 ms",
                "max ms",
                "worker CPU ms/chg",
                "MariaDB CPU ms/chg"
            );
            for r in &figures.latency {
                println!(
                    "{:>10} {:>12.0} {:>9.2} {:>9.2} {:>9.2} {:>18.4} {:>19}",
                    r.rate,
                    r.achieved_rate,
                    r.p50_ms,
                    r.p99_ms,
                    r.max_ms,
                    r.worker_cpu_ms_per_change,
                    ms(r.mariadb_cpu_ms_per_change)
                );
            }
            println!(
                "MariaDB CPU per change while one worker drains the backlog (the claim path): {} ms",
                ms(figures.one_worker_mariadb_cpu_ms_per_change)
            );
            println!(
                "drain of {} queued changes: one worker {:.0} changes/s, two workers {:.0} changes/s; \
                 raw bulk upsert {:.0} documents/s; one worker = {:.0}% of raw",
                figures.backlog,
                figures.one_worker_per_second,
                figures.two_workers_per_second,
                figures.raw_upsert_per_second,
                100.0 * figures.one_worker_ratio()
            );
            Ok(EXIT_OK)
        }
    }
}
