//! `aethermart`: the AetherMart data platform's command line. Each subcommand is one call into
//! `aethermart-core`; this file only parses arguments, prints results and picks the exit code.

mod cluster;
mod progress;

use aethermart_core::bench::{self, PlaceOrderBench, SyncBench};
use aethermart_core::config::{Config, MariaDbConfig, env_lookup};
use aethermart_core::connect::{self, PoolSize};
use aethermart_core::generate::{self, GenerateConfig, LoadOptions, LoadSummary};
use aethermart_core::lifecycle;
use aethermart_core::lineage;
use aethermart_core::migrate::{
    BulkMigrator, MigrateOptions, MigrationReport, Migrator, VerifyReport,
};
use aethermart_core::model::{CustomerId, NewOrderLine, OrderId, ProductId, ServiceId};
use aethermart_core::orders::{self, CancelOrderError, PlaceOrderError};
use aethermart_core::quality;
use aethermart_core::schema::{MariaDbSchema, MigrationState, SchemaApplier};
use aethermart_core::security;
use aethermart_core::sync::{self, SyncOptions};
use aethermart_core::{Error, doctor, reports};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Parser, Subcommand};
use sqlx::MySqlPool;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Exit code: the command ran and everything it checked is fine.
const EXIT_OK: u8 = 0;
/// Exit code: the command ran and found a problem (a failed check, an unhealthy server).
const EXIT_PROBLEM: u8 = 1;
/// Exit code: the command could not run (bad configuration, bad arguments, a server error).
const EXIT_ERROR: u8 = 2;

/// AetherMart data platform: MariaDB (operational, 3NF) and MongoDB (documents), kept in sync.
///
/// Configuration comes from the environment: AETHERMART_MARIADB_URL, AETHERMART_MONGODB_URI and
/// optionally MARIA_DB_PASS / MONGO_ADMIN_PASS for the passwords. `scripts/services.sh env`
/// prints them for the local servers.
///
/// Exit codes: 0 success, 1 a check failed, 2 the command could not run.
#[derive(Debug, Parser)]
#[command(name = "aethermart", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Connect to both stores and check the settings the platform relies on.
    ///
    /// Prints each server's version and checks (character set, binlog format, read_only, Galera
    /// state, MongoDB version and primary). Exits 1 when a server is down or a check fails.
    ///
    /// Example: aethermart doctor --json
    Doctor {
        /// Print the report as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The whole platform in one command: schema, data, roles, initial migration, verification.
    ///
    /// Steps: teardown (only with --fresh --yes) -> schema apply -> generate (into an empty
    /// database; existing data is kept) -> security apply (when AETHERMART_ALEX_PASSWORD,
    /// AETHERMART_SARAH_PASSWORD and AETHERMART_MARIA_PASSWORD are set) -> migrate -> verify.
    /// Each step is timed; a failure stops at the step and names it. Safe to run again. Then
    /// start `aethermart-worker` to keep MongoDB in step.
    ///
    /// Example: aethermart up --fresh --yes --scale 0.05
    Up {
        /// Drop both databases first (needs --yes).
        #[arg(long, requires = "yes")]
        fresh: bool,
        /// Confirm --fresh.
        #[arg(long)]
        yes: bool,
        /// Size of the data set generated into an empty database (1.0 = 100,000 orders).
        #[arg(long, default_value_t = 0.05)]
        scale: f64,
        /// Seed of every random choice.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// The day the data ends, YYYY-MM-DD; today by default.
        #[arg(long)]
        as_of: Option<NaiveDate>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Apply, inspect or tear down the MariaDB schema (versioned scripts embedded in the binary).
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Generate realistic data and load it into both stores (empty, schema applied).
    ///
    /// Deterministic: the same --seed, --scale and --as-of always give byte-identical data.
    /// Scale 1 is about 10,000 customers, 2,000 products, 200 services, 100,000 orders
    /// (300,000 lines) and 30,000 reviews; scales are linear and may be fractional.
    ///
    /// Example: aethermart generate --scale 0.1 --seed 42
    Generate(GenerateArgs),
    /// Copy MariaDB into MongoDB documents (customer_profiles, products, services, orders).
    ///
    /// Sets up the collections (validators, indexes), then streams each entity in pages and
    /// writes idempotent bulk upserts, checkpointing after every batch. --resume continues after
    /// the checkpoints of an interrupted run; --verify compares both stores afterwards (or only
    /// verifies, with --verify-only). Exits 1 when a document was refused or stores differ.
    ///
    /// Example: aethermart migrate --verify
    Migrate {
        /// Continue each entity after its checkpoint.
        #[arg(long)]
        resume: bool,
        /// Compare counts and per-document hashes afterwards.
        #[arg(long)]
        verify: bool,
        /// Only compare, do not migrate.
        #[arg(long, conflicts_with_all = ["resume", "verify"])]
        verify_only: bool,
        /// Rows per page and per bulk write.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        batch_size: u32,
        /// Entities migrated at the same time (1 to 4).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=4))]
        parallel: u16,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Place or cancel orders through sp_PlaceOrder / sp_CancelOrder.
    #[command(subcommand)]
    Order(OrderCommand),
    /// Read the reporting views (from a replica with --from-replica).
    Report(ReportArgs),
    /// Show the lineage of data movements (generate, migrate, sync) from data_lineage_tracker.
    ///
    /// Without --run: the newest --limit rows. --openlineage prints OpenLineage RunEvents
    /// (START, then COMPLETE or FAIL, with input and output datasets), one JSON object per line.
    ///
    /// Example: aethermart lineage --run 6f76d2d3-1769-e4a1-35be-543854677d39 --openlineage
    Lineage {
        /// Only the rows of this run.
        #[arg(long)]
        run: Option<String>,
        /// How many of the newest rows (without --run).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print the rows as JSON.
        #[arg(long, conflicts_with = "openlineage")]
        json: bool,
        /// Print OpenLineage RunEvents (JSON lines).
        #[arg(long)]
        openlineage: bool,
    },
    /// Data quality and cross-store reconciliation checks, logged to data_quality_logs.
    #[command(subcommand)]
    Quality(QualityCommand),
    /// Roles and users: administration (alex), analytics (sarah), data engineering (maria).
    #[command(subcommand)]
    Security(SecurityCommand),
    /// Inspect the real-time sync (the worker itself is `aethermart-worker`).
    #[command(subcommand)]
    Sync(SyncCommand),
    /// A MariaDB cluster (Galera nodes, or a primary and replicas): node states, network rules.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Measure the platform's speed and print the figures.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, clap::Args)]
struct ReportArgs {
    #[command(subcommand)]
    report: ReportCommand,
    /// Read from the freshest replica among the nodes of AETHERMART_MARIADB_URL; refused
    /// (exit 2) when every replica lags more than --max-lag behind its primary.
    #[arg(long, global = true)]
    from_replica: bool,
    /// Seconds a replica may lag for --from-replica.
    #[arg(long, global = true, default_value_t = 5, requires = "from_replica")]
    max_lag: u64,
}

#[derive(Debug, Subcommand)]
enum QualityCommand {
    /// Run every check: invalid e-mails, negative stock, order totals, orphan reviews, stale
    /// sync, dead letters, and the reconciliation of both stores (counts and per-document
    /// hashes). Each result goes to data_quality_logs. Exits 1 when an error check fails.
    ///
    /// Example: aethermart quality check --stale-after 60
    Check {
        /// Seconds after which a queued change counts as stale.
        #[arg(long, default_value_t = 300)]
        stale_after: u64,
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum SecurityCommand {
    /// Create or update the roles, their grants on the database, and the users.
    ///
    /// Passwords come from AETHERMART_ALEX_PASSWORD, AETHERMART_SARAH_PASSWORD and
    /// AETHERMART_MARIA_PASSWORD; all three are checked before anything changes. Safe to run
    /// again (it also completes a run that stopped halfway).
    ///
    /// Example: aethermart security apply
    Apply,
}

#[derive(Debug, Subcommand)]
enum SyncCommand {
    /// Touch a customer in MariaDB and time until MongoDB shows it (a worker must run).
    ///
    /// Only the customer's updated_at changes. Exits 1 when the change does not arrive.
    ///
    /// Example: aethermart sync probe --customer 1
    Probe {
        /// The customer to touch.
        #[arg(long, default_value_t = 1)]
        customer: u64,
        /// Seconds to wait.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
    /// Each queue's waiting changes, retries, oldest age and dead letters.
    ///
    /// Exits 1 when a change sits in sync_dead_letters (it needs a look).
    ///
    /// Example: aethermart sync status --json
    Status {
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
struct GenerateArgs {
    /// Size of the data set (1.0 = 100,000 orders); between 0.0001 and 200.
    #[arg(long, default_value_t = 0.1)]
    scale: f64,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The day the data ends (orders cover the 8 quarters up to it), YYYY-MM-DD; today by default.
    #[arg(long)]
    as_of: Option<NaiveDate>,
    /// MariaDB connections writing in parallel.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
    connections: u16,
    /// Drop the MongoDB collections generate fills (reviews, customer_profiles) first.
    #[arg(long)]
    replace_documents: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

impl GenerateArgs {
    fn settings(&self) -> Result<(GenerateConfig, LoadOptions), Error> {
        let as_of = self.as_of.unwrap_or_else(|| Utc::now().date_naive());
        let settings = GenerateConfig::new(self.seed, self.scale, as_of)?;
        Ok((
            settings,
            LoadOptions {
                connections: usize::from(self.connections),
                replace_documents: self.replace_documents,
            },
        ))
    }
}

/// Pretty JSON on stdout (`--json`); the report types serialise infallibly.
fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

fn print_load_summary(summary: &LoadSummary) {
    println!("{:<12} {:<8} {:>10}", "table", "store", "rows");
    for t in &summary.tables {
        println!("{:<12} {:<8} {:>10}", t.table, t.store, t.rows);
    }
    println!(
        "MariaDB: {} rows in {:.2} s = {:.0} rows/s",
        summary.mariadb_rows,
        summary.mariadb_seconds,
        summary.mariadb_rows_per_second()
    );
    println!(
        "MongoDB: {} documents in {:.2} s = {:.0} documents/s",
        summary.mongodb_documents,
        summary.mongodb_seconds,
        summary.mongodb_documents_per_second()
    );
}

#[derive(Debug, Subcommand)]
enum OrderCommand {
    /// Place an order atomically. Exits 1 when the database refuses it (stock, unknown ids, …).
    ///
    /// Example: aethermart order place --customer 17 --product 3:2 --product 9 --service 4@2026-12-01T10:00:00Z
    Place {
        /// The customer's id.
        #[arg(long)]
        customer: u64,
        /// A product line, `ID` or `ID:QUANTITY` (repeatable).
        #[arg(long, value_parser = parse_product_line)]
        product: Vec<NewOrderLine>,
        /// A consultation line, `ID@START` with START in RFC 3339 (repeatable).
        #[arg(long, value_parser = parse_service_line)]
        service: Vec<NewOrderLine>,
    },
    /// Cancel a pending or paid order: stock goes back, consultation slots are freed.
    ///
    /// Example: aethermart order cancel 42
    Cancel {
        /// The order's id.
        order: u64,
    },
}

#[derive(Debug, Subcommand)]
enum ReportCommand {
    /// Revenue, orders and units per quarter and category (v_QuarterlySales).
    ///
    /// Example: aethermart report sales --since 2026-01-01
    Sales {
        /// Only orders placed on or after this day (YYYY-MM-DD); whole history without it.
        #[arg(long)]
        since: Option<NaiveDate>,
    },
    /// Active products with 10 units or fewer (v_LowStock).
    ///
    /// Example: aethermart report low-stock --limit 20
    LowStock {
        /// At most this many products.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// One customer's order summary and latest orders.
    ///
    /// Example: aethermart report customer 17
    Customer {
        /// The customer's id.
        customer: u64,
    },
}

fn print_migration(report: &MigrationReport) {
    println!(
        "{:<10} {:>10} {:>10} {:>9} {:>8}",
        "entity", "read", "written", "refused", "seconds"
    );
    for e in &report.entities {
        println!(
            "{:<10} {:>10} {:>10} {:>9} {:>8.2}",
            e.entity.name(),
            e.read,
            e.written,
            e.rejected.len(),
            e.seconds
        );
        for r in e.rejected.iter().take(10) {
            println!("  refused _id {}: {}", r.id, r.reason);
        }
    }
    println!(
        "run {}: {:.0} documents/s over {:.2} s",
        report.run_id,
        report.documents_per_second(),
        report.seconds
    );
}

fn print_verification(report: &VerifyReport) {
    println!(
        "{:<10} {:>10} {:>10} {:>10}  result",
        "entity", "rows", "documents", "mismatch"
    );
    for e in &report.entities {
        let result = if e.equal() {
            "equal".to_owned()
        } else {
            format!(
                "DIFFERENT missing {:?} different {:?}",
                e.missing, e.different
            )
        };
        println!(
            "{:<10} {:>10} {:>10} {:>10}  {result}",
            e.entity.name(),
            e.rows,
            e.documents,
            e.mismatches
        );
    }
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Documents/s of the whole migration beside MongoDB's raw insert_many rate, same run.
    ///
    /// Generates --scale into DATABASE_bench on both stores, migrates it, then inserts the same
    /// number of order documents with insert_many into a scratch collection.
    ///
    /// Example: aethermart bench migrate --scale 1
    Migrate(GenerateArgs),
    /// Rows/s into MariaDB and documents/s into MongoDB of `generate`, and peak memory.
    ///
    /// Runs in its own databases (DATABASE_bench on both stores), recreated each time.
    ///
    /// Example: aethermart bench generate --scale 1
    Generate(GenerateArgs),
    /// Orders/s and p50/p99 latency of sp_PlaceOrder at several client counts.
    ///
    /// Runs in its own database (DATABASE_bench), recreated each time.
    ///
    /// Example: aethermart bench place-order --clients 1,4,16 --seconds 10
    PlaceOrder {
        /// Concurrent clients, one run per value.
        #[arg(long, value_delimiter = ',', default_values_t = [1, 4, 16])]
        clients: Vec<usize>,
        /// Seconds per run.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// Sync worker: commit-to-MongoDB latency at fixed change rates, worker CPU per change,
    /// and the drain rate of one and two workers beside MongoDB's raw bulk-upsert rate.
    ///
    /// Runs in its own databases (DATABASE_bench on both stores), recreated each time. Each
    /// change updates one customer; each worker runs on a thread of its own.
    ///
    /// Example: aethermart bench sync --rates 500,2000 --seconds 10
    Sync {
        /// Changes per second of the latency runs, one run per value.
        #[arg(long, value_delimiter = ',', default_values_t = [500, 2000])]
        rates: Vec<u32>,
        /// Seconds per latency run.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Customers in the bench database (also the backlog of the drain runs).
        #[arg(long, default_value_t = 20_000)]
        customers: u32,
        /// Changes claimed per batch.
        #[arg(long, default_value_t = SyncOptions::default().batch_size)]
        batch_size: u32,
        /// Batches in flight per worker.
        #[arg(long, default_value_t = SyncOptions::default().lanes)]
        lanes: usize,
        /// Milliseconds a worker waits after a batch that was not full.
        #[arg(long, default_value_t = SyncOptions::default().poll_interval.as_millis() as u64)]
        poll_ms: u64,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn parse_product_line(text: &str) -> Result<NewOrderLine, String> {
    let (id, quantity) = text.split_once(':').unwrap_or((text, "1"));
    let product_id = id
        .parse()
        .map_err(|_| format!("product id {id:?} is not a number"))?;
    let quantity = quantity
        .parse()
        .map_err(|_| format!("quantity {quantity:?} is not a whole number"))?;
    Ok(NewOrderLine::Product {
        product_id: ProductId(product_id),
        quantity,
    })
}

fn parse_service_line(text: &str) -> Result<NewOrderLine, String> {
    let (id, start) = text
        .split_once('@')
        .ok_or_else(|| format!("{text:?} is not ID@START (e.g. 4@2026-12-01T10:00:00Z)"))?;
    let service_id = id
        .parse()
        .map_err(|_| format!("service id {id:?} is not a number"))?;
    let starts_at = DateTime::parse_from_rfc3339(start)
        .map_err(|e| format!("start {start:?} is not RFC 3339: {e}"))?
        .with_timezone(&Utc);
    Ok(NewOrderLine::Service {
        service_id: ServiceId(service_id),
        starts_at,
    })
}

async fn mariadb_pool() -> Result<MySqlPool, Error> {
    let config = MariaDbConfig::from_lookup(env_lookup)?;
    Ok(connect::mariadb_pool(&config, PoolSize::default()).await?)
}

#[derive(Debug, Subcommand)]
enum SchemaCommand {
    /// Apply every pending schema version, in order, under a lock. Safe to run again.
    ///
    /// Creates the database named in AETHERMART_MARIADB_URL if it does not exist. Refuses to
    /// continue when an applied script was edited since (drift) or failed half-way (dirty).
    ///
    /// Example: aethermart schema apply
    Apply,
    /// Show each schema version: applied, pending, drift, dirty. Exits 1 unless all are applied.
    ///
    /// Example: aethermart schema status
    Status,
    /// Drop the database and recreate it empty. Destroys all data: requires --yes.
    ///
    /// Example: aethermart schema teardown --yes
    Teardown {
        /// Confirm that the whole database may be dropped.
        #[arg(long)]
        yes: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {}", error_chain(&err));
            ExitCode::from(exit_code(&err))
        }
    }
}

/// A refusal by the database's rules is a finding (1); anything else means the command could
/// not run (2).
fn exit_code(err: &Error) -> u8 {
    match err {
        Error::PlaceOrder(PlaceOrderError::Database(_))
        | Error::CancelOrder(CancelOrderError::Database(_)) => EXIT_ERROR,
        Error::PlaceOrder(_) | Error::CancelOrder(_) => EXIT_PROBLEM,
        _ => EXIT_ERROR,
    }
}

async fn run(cli: Cli) -> Result<u8, Error> {
    match cli.command {
        Command::Doctor { json } => {
            let report = doctor::diagnose(&Config::from_env()?).await;
            if json {
                print_json(&report);
            } else {
                print!("{report}");
            }
            Ok(if report.healthy() {
                EXIT_OK
            } else {
                EXIT_PROBLEM
            })
        }
        Command::Schema(command) => {
            let schema = MariaDbSchema::new(MariaDbConfig::from_lookup(env_lookup)?);
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
                SchemaCommand::Status => {
                    let status = schema.status().await?;
                    for s in &status {
                        println!(
                            "{:>4}  {:<10}  {}",
                            s.version,
                            s.state.to_string(),
                            s.description
                        );
                    }
                    let all_applied = status.iter().all(|s| s.state == MigrationState::Applied);
                    Ok(if all_applied { EXIT_OK } else { EXIT_PROBLEM })
                }
                SchemaCommand::Teardown { yes } => {
                    schema.teardown(yes).await?;
                    println!("database dropped and recreated empty");
                    Ok(EXIT_OK)
                }
            }
        }
        Command::Generate(args) => {
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
        Command::Migrate {
            resume,
            verify,
            verify_only,
            batch_size,
            parallel,
            json,
        } => {
            let config = Config::from_env()?;
            let mongo = connect::mongodb_database(&config.mongodb).await?;
            let migrator = BulkMigrator::new(config.mariadb.clone(), mongo);
            let mut healthy = true;
            if !verify_only {
                let options = MigrateOptions {
                    resume,
                    batch_size,
                    parallel_entities: usize::from(parallel),
                };
                let report = migrator
                    .migrate(options, Arc::new(progress::Bars::new()))
                    .await?;
                healthy &= report.clean();
                if json {
                    print_json(&report);
                } else {
                    print_migration(&report);
                }
            }
            if verify || verify_only {
                let spinner = progress::Spinner::new("comparing MariaDB and MongoDB");
                let report = migrator.verify().await?;
                drop(spinner);
                healthy &= report.equal();
                if json {
                    print_json(&report);
                } else {
                    print_verification(&report);
                }
            }
            Ok(if healthy { EXIT_OK } else { EXIT_PROBLEM })
        }
        Command::Bench(BenchCommand::Migrate(args)) => {
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
        Command::Bench(BenchCommand::Generate(args)) => {
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
        Command::Order(OrderCommand::Place {
            customer,
            product,
            service,
        }) => {
            let lines: Vec<NewOrderLine> = product.into_iter().chain(service).collect();
            let placed =
                orders::place_order(&mariadb_pool().await?, CustomerId(customer), &lines).await?;
            println!("order {} placed, total {}", placed.order_id, placed.total);
            Ok(EXIT_OK)
        }
        Command::Order(OrderCommand::Cancel { order }) => {
            orders::cancel_order(&mariadb_pool().await?, OrderId(order)).await?;
            println!("order {order} cancelled; stock restored");
            Ok(EXIT_OK)
        }
        Command::Up {
            fresh,
            yes: _,
            scale,
            seed,
            as_of,
            json,
        } => {
            let config = Config::from_env()?;
            let passwords = match [
                security::ALEX_PASSWORD,
                security::SARAH_PASSWORD,
                security::MARIA_PASSWORD,
            ]
            .iter()
            .all(|v| env_lookup(v).is_none())
            {
                true => None,
                false => Some(security::Passwords::from_lookup(env_lookup)?),
            };
            let as_of = as_of.unwrap_or_else(|| Utc::now().date_naive());
            let options = lifecycle::UpOptions {
                fresh,
                data: GenerateConfig::new(seed, scale, as_of)?,
                passwords,
            };
            let progress: Arc<dyn generate::Progress> = if json {
                Arc::new(generate::NoProgress)
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
        Command::Lineage {
            run,
            limit,
            json,
            openlineage,
        } => {
            let config = Config::from_env()?;
            let pool = connect::mariadb_pool(&config.mariadb, PoolSize { max: 2 }).await?;
            let rows = lineage::read(&pool, run.as_deref(), limit.max(1)).await?;
            if openlineage {
                let ns = lineage::Namespaces {
                    mariadb_database: config.mariadb.database().to_owned(),
                    mariadb: format!("mysql://{}", config.mariadb.endpoint()),
                    mongodb: format!("mongodb://{}", config.mongodb.endpoint()),
                };
                for event in lineage::openlineage_events(&rows, &ns) {
                    println!("{event}");
                }
            } else if json {
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
        Command::Quality(QualityCommand::Check { stale_after, json }) => {
            let config = Config::from_env()?;
            let pool = connect::mariadb_pool(&config.mariadb, PoolSize { max: 4 }).await?;
            let mongo = connect::mongodb_database(&config.mongodb).await?;
            let reconciler = BulkMigrator::new(config.mariadb.clone(), mongo.clone());
            let options = quality::QualityOptions {
                stale_after: Duration::from_secs(stale_after),
            };
            let spinner = (!json).then(|| progress::Spinner::new("running the quality checks"));
            let report = quality::run_checks(&pool, &mongo, &reconciler, options).await?;
            drop(spinner);
            if json {
                print_json(&report);
            } else {
                println!(
                    "{:<22} {:<8} {:>9}  {:<6} sample keys",
                    "check", "severity", "failing", "result"
                );
                for c in &report.checks {
                    let result = if c.passed() { "pass" } else { "FAIL" };
                    let severity = match c.severity {
                        quality::Severity::Error => "error",
                        quality::Severity::Warning => "warning",
                    };
                    println!(
                        "{:<22} {:<8} {:>9}  {:<6} {}",
                        c.check,
                        severity,
                        c.failing,
                        result,
                        c.sample_keys.join(", ")
                    );
                }
                println!("run {} logged to data_quality_logs", report.run_id);
            }
            Ok(if report.ok() { EXIT_OK } else { EXIT_PROBLEM })
        }
        Command::Security(SecurityCommand::Apply) => {
            let passwords = security::Passwords::from_lookup(env_lookup)?;
            let config = MariaDbConfig::from_lookup(env_lookup)?;
            security::apply(&config, &passwords).await?;
            println!(
                "roles {}, {}, {} and users alex, sarah, maria applied on database {}",
                security::ADMIN_ROLE,
                security::ANALYST_ROLE,
                security::ENGINEER_ROLE,
                config.database()
            );
            Ok(EXIT_OK)
        }
        Command::Sync(SyncCommand::Probe { customer, timeout }) => {
            let config = Config::from_env()?;
            let pool = connect::mariadb_pool(&config.mariadb, PoolSize { max: 2 }).await?;
            let mongo = connect::mongodb_database(&config.mongodb).await?;
            match sync::probe(&pool, &mongo, customer, Duration::from_secs(timeout)).await {
                Ok(latency) => {
                    println!(
                        "customer {customer}: committed in MariaDB, visible in MongoDB {:.1} ms later",
                        latency.as_secs_f64() * 1e3
                    );
                    Ok(EXIT_OK)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(EXIT_PROBLEM)
                }
            }
        }
        Command::Sync(SyncCommand::Status { json }) => {
            let queues = sync::status(&mariadb_pool().await?).await?;
            if json {
                print_json(&queues);
            } else {
                println!(
                    "{:<22} {:<18} {:>9} {:>9} {:>11} {:>13}",
                    "queue", "collection", "pending", "retrying", "oldest s", "dead letters"
                );
                for q in &queues {
                    println!(
                        "{:<22} {:<18} {:>9} {:>9} {:>11.3} {:>13}",
                        q.queue,
                        q.collection,
                        q.pending,
                        q.retrying,
                        q.oldest_seconds,
                        q.dead_letters
                    );
                }
            }
            let dead = queues.iter().any(|q| q.dead_letters > 0);
            Ok(if dead { EXIT_PROBLEM } else { EXIT_OK })
        }
        Command::Cluster(command) => cluster::run(command).await,
        Command::Report(ReportArgs {
            report,
            from_replica,
            max_lag,
        }) => {
            let pool = if from_replica {
                let config = MariaDbConfig::from_lookup(env_lookup)?;
                let max_lag = Duration::from_secs(max_lag);
                let (replica, lag) =
                    aethermart_core::cluster::replica_node(&config, max_lag).await?;
                eprintln!(
                    "reading from replica {} ({} s behind its primary)",
                    replica.endpoint(),
                    lag.as_secs()
                );
                connect::mariadb_pool(&replica, PoolSize::default()).await?
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
        Command::Bench(BenchCommand::PlaceOrder { clients, seconds }) => {
            let settings = PlaceOrderBench {
                clients,
                duration: Duration::from_secs(seconds),
                ..PlaceOrderBench::default()
            };
            let config = MariaDbConfig::from_lookup(env_lookup)?;
            eprintln!(
                "place-order benchmark: {} s per run, database {}_bench",
                seconds,
                config.database()
            );
            println!(
                "{:>8} {:>10} {:>12} {:>10} {:>10}",
                "clients", "orders", "orders/s", "p50 ms", "p99 ms"
            );
            for r in bench::place_order_throughput(&config, &settings).await? {
                println!(
                    "{:>8} {:>10} {:>12.1} {:>10.2} {:>10.2}",
                    r.clients, r.orders, r.orders_per_second, r.p50_ms, r.p99_ms
                );
            }
            Ok(EXIT_OK)
        }
        Command::Bench(BenchCommand::Sync {
            rates,
            seconds,
            customers,
            batch_size,
            lanes,
            poll_ms,
            json,
        }) => {
            let settings = SyncBench {
                customers,
                rates,
                duration: Duration::from_secs(seconds),
                backlog: customers,
                options: SyncOptions {
                    batch_size: batch_size.max(1),
                    lanes: lanes.max(1),
                    poll_interval: Duration::from_millis(poll_ms),
                    ..SyncOptions::default()
                },
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
            println!(
                "{:>10} {:>12} {:>9} {:>9} {:>9} {:>16}",
                "changes/s", "achieved/s", "p50 ms", "p99 ms", "max ms", "worker CPU ms/chg"
            );
            for r in &figures.latency {
                println!(
                    "{:>10} {:>12.0} {:>9.2} {:>9.2} {:>9.2} {:>16.4}",
                    r.rate,
                    r.achieved_rate,
                    r.p50_ms,
                    r.p99_ms,
                    r.max_ms,
                    r.worker_cpu_ms_per_change
                );
            }
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

/// `top: cause: cause`, without repeating a cause already in the message.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Structured logs on stderr; level from `AETHERMART_LOG` (default `warn`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AETHERMART_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
