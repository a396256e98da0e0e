//! Benchmarks that print the figures the issues ask for (`aethermart bench …`).
//!
//! Each benchmark works in its own database (`<configured database>_bench`), recreated on every
//! run, so it never touches real data.

mod search;
mod server_process;
mod sync;

use server_process::ServerProcess;

pub use search::{EmbeddingFigures, RankingFigures, SearchFigures, search_quality};
pub use sync::{SyncBench, SyncFigures, SyncLatency, sync_throughput};

use crate::cluster;
use crate::config::Config;
use crate::connect::{self, ConnectError, PoolSize};
use crate::generate::{self, GenerateConfig, LoadError, LoadOptions, LoadSummary};
use crate::migrate::{BulkMigrator, MigrateError, MigrateOptions, MigrationReport, Migrator};
use crate::model::{CustomerId, NewOrderLine, ProductId};
use crate::orders::{self, PlaceOrderError};
use crate::progress::{NoProgress, Progress};
use crate::projection::Entity;
use crate::schema::{MariaDbSchema, SchemaApplier, SchemaError};
use futures_util::TryStreamExt;
use mongodb::bson::{Document, doc};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// Connecting failed.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// Preparing the bench database failed.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// Seeding the bench data failed.
    #[error("seeding the bench database failed: {0}")]
    Seed(#[source] sqlx::Error),
    /// An order failed for a reason other than the benchmark's own design.
    #[error("an order failed during the benchmark: {0}")]
    Order(#[from] PlaceOrderError),
    /// Loading generated data failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Dropping the MongoDB bench database failed.
    #[error("dropping the MongoDB bench database failed: {0}")]
    Mongo(#[source] mongodb::error::Error),
    /// The migration failed.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    /// Syncing failed during the benchmark.
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
    /// Reading the catalogue for search failed.
    #[error(transparent)]
    Search(#[from] crate::search::SearchError),
    /// Changing the bench data (outside the measured work) failed.
    #[error("changing the bench data failed: {0}")]
    Change(#[source] sqlx::Error),
    /// A client task panicked or was cancelled.
    #[error("a benchmark client stopped unexpectedly: {0}")]
    Client(#[source] tokio::task::JoinError),
    /// A worker thread or its runtime could not be started.
    #[error("starting a benchmark worker thread failed: {0}")]
    Thread(#[source] std::io::Error),
    /// A worker thread panicked, or ended before it was ready without an error.
    #[error("a benchmark worker thread stopped unexpectedly")]
    WorkerGone,
    /// Not every change reached MongoDB in time.
    #[error("only {arrived} of {total} changes reached MongoDB within {seconds} s")]
    NotSynced {
        /// Changes seen in MongoDB.
        arrived: usize,
        /// Changes made.
        total: usize,
        /// The wait.
        seconds: u64,
    },
    /// The backlog was not drained in time.
    #[error("{left} changes still queued after {seconds} s")]
    NotDrained {
        /// Changes left.
        left: i64,
        /// The wait.
        seconds: u64,
    },
}

/// Settings of [`place_order_throughput`].
#[derive(Debug, Clone)]
pub struct PlaceOrderBench {
    /// Concurrent client counts to measure, one run each.
    pub clients: Vec<usize>,
    /// How long each run lasts.
    pub duration: Duration,
    /// Customers in the bench catalogue.
    pub customers: u32,
    /// Products in the bench catalogue (orders pick 1–3 of them at random).
    pub products: u32,
    /// The capture of the bench database: the capture triggers fire on every order, or
    /// (binlog) they are dropped.
    pub capture: crate::sync::Capture,
    /// Whether a sync worker follows the orders into MongoDB meanwhile (on its own thread,
    /// after an initial migration of the catalogue), as in production.
    pub worker: bool,
}

impl Default for PlaceOrderBench {
    fn default() -> Self {
        Self {
            clients: vec![1, 4, 16],
            duration: Duration::from_secs(5),
            customers: 1_000,
            products: 1_000,
            capture: crate::sync::Capture::Triggers,
            worker: false,
        }
    }
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Concurrent clients.
    pub clients: usize,
    /// Orders placed.
    pub orders: u64,
    /// Orders per second.
    pub orders_per_second: f64,
    /// Median latency of one `sp_PlaceOrder` call, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, in milliseconds.
    pub p99_ms: f64,
}

/// The name of the bench database beside `database`.
fn bench_database(database: &str) -> String {
    let mut name = format!("{database}_bench");
    name.truncate(64);
    name
}

/// The figures of [`generate_throughput`].
#[derive(Debug, Clone, Serialize)]
pub struct GenerateFigures {
    /// What was written, and how fast.
    pub summary: LoadSummary,
    /// Peak resident memory of this process so far, in MiB (`VmHWM`), when the OS reports it.
    pub peak_rss_mib: Option<f64>,
}

/// Peak resident set size of this process, from `/proc/self/status` (Linux).
pub fn peak_rss_mib() -> Option<f64> {
    crate::process::peak_resident_bytes().map(|b| b as f64 / (1024.0 * 1024.0))
}

/// The figures of [`migrate_throughput`].
#[derive(Debug, Clone, Serialize)]
pub struct MigrateFigures {
    /// The migration's own report (with each entity's stage times).
    pub migration: MigrationReport,
    /// CPU used during the migration.
    pub migration_cpu: PhaseCpu,
    /// Documents written by the raw `insert_many` comparison.
    pub raw_documents: u64,
    /// MongoDB's raw `insert_many` rate (unordered batches of 1,000, into a collection with the
    /// validator and indexes of `orders`) in documents/s.
    pub raw_insert_per_second: f64,
    /// CPU used during the raw `insert_many`.
    pub raw_cpu: PhaseCpu,
}

impl MigrateFigures {
    /// Migrated documents/s as a fraction of the raw insert rate.
    pub fn ratio(&self) -> f64 {
        self.migration.documents_per_second() / self.raw_insert_per_second.max(1e-9)
    }

    /// Documents/s of one entity in this run, if it wrote any.
    pub fn entity_rate(&self, entity: Entity) -> Option<f64> {
        let e = self
            .migration
            .entities
            .iter()
            .find(|e| e.entity == entity)?;
        (e.written > 0).then(|| e.written as f64 / e.seconds.max(1e-9))
    }

    /// Profiles/s as a fraction of orders/s: the cost of the merge path per document.
    pub fn profiles_to_orders(&self) -> Option<f64> {
        Some(self.entity_rate(Entity::Customers)? / self.entity_rate(Entity::Orders)?)
    }
}

/// The medians of several [`MigrateFigures`] (each ratio is the median of the runs' ratios).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MigrateMedians {
    /// Runs.
    pub runs: usize,
    /// Migrated documents/s.
    pub migration_per_second: f64,
    /// Raw `insert_many` documents/s.
    pub raw_insert_per_second: f64,
    /// Migration rate / raw rate, per run.
    pub ratio: f64,
    /// [`MigrateFigures::profiles_to_orders`], per run.
    pub profiles_to_orders: Option<f64>,
}

impl MigrateMedians {
    /// The medians of `runs` (zeros when there are none).
    pub fn of(runs: &[MigrateFigures]) -> Self {
        let m = |f: fn(&MigrateFigures) -> f64| median(runs.iter().map(f)).unwrap_or(0.0);
        Self {
            runs: runs.len(),
            migration_per_second: m(|r| r.migration.documents_per_second()),
            raw_insert_per_second: m(|r| r.raw_insert_per_second),
            ratio: m(MigrateFigures::ratio),
            profiles_to_orders: median(runs.iter().filter_map(MigrateFigures::profiles_to_orders)),
        }
    }
}

/// CPU seconds the processes of one phase of a benchmark used (those found on this machine),
/// beside the phase's wall time: where a 2-core machine's time went.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PhaseCpu {
    /// Wall-clock seconds of the phase.
    pub seconds: f64,
    /// This process (the migration, or the driver inserting).
    pub this_process: Option<f64>,
    /// The MariaDB server.
    pub mariadb: Option<f64>,
    /// The MongoDB server.
    pub mongodb: Option<f64>,
}

/// Measures [`PhaseCpu`] around a phase.
struct CpuMeter {
    mariadb: ServerProcess,
    mongodb: ServerProcess,
    started: Instant,
    at_start: [Option<Duration>; 3],
}

impl CpuMeter {
    fn start(mariadb: ServerProcess, mongodb: ServerProcess) -> Self {
        let at_start = [
            crate::process::cpu_time("self"),
            mariadb.cpu(),
            mongodb.cpu(),
        ];
        Self {
            mariadb,
            mongodb,
            started: Instant::now(),
            at_start,
        }
    }

    fn stop(self) -> PhaseCpu {
        let [this, mariadb, mongodb] = self.at_start;
        let own = crate::process::cpu_time("self").zip(this);
        PhaseCpu {
            seconds: self.started.elapsed().as_secs_f64(),
            this_process: own.map(|(now, then)| now.saturating_sub(then).as_secs_f64()),
            mariadb: self.mariadb.cpu_since(mariadb).map(|d| d.as_secs_f64()),
            mongodb: self.mongodb.cpu_since(mongodb).map(|d| d.as_secs_f64()),
        }
    }
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// Generates `settings` into fresh bench databases (the load figures are not the subject of the
/// benchmarks that call it) and returns their configuration and the MongoDB bench database.
async fn generated_bench(
    config: &Config,
    settings: GenerateConfig,
    options: LoadOptions,
    progress: Arc<dyn Progress>,
) -> Result<(Config, mongodb::Database), BenchError> {
    generate_throughput(
        config,
        settings,
        options,
        crate::sync::Capture::Triggers,
        progress,
    )
    .await?;
    let bench = bench_config(config)?;
    let mongo = connect::mongodb_database(&bench.mongodb).await?;
    Ok((bench, mongo))
}

/// Generates `settings` into fresh bench databases, migrates them, then measures the same
/// server's raw `insert_many` rate with the migrated order documents (the physical limit).
pub async fn migrate_throughput(
    config: &Config,
    settings: GenerateConfig,
    options: LoadOptions,
    migrate: MigrateOptions,
    progress: Arc<dyn Progress>,
) -> Result<MigrateFigures, BenchError> {
    let (bench, mongo) = generated_bench(config, settings, options, progress.clone()).await?;
    let pool = cluster::writable_pool(&bench.mariadb, PoolSize { max: 1 }).await?;
    let mariadb = ServerProcess::find(&pool).await;
    pool.close().await;
    let meter = CpuMeter::start(
        mariadb,
        ServerProcess::listening_on(bench.mongodb.endpoint()),
    );
    let migration = BulkMigrator::new(bench.mariadb.clone(), mongo.clone())
        .migrate(migrate, progress)
        .await?;
    let migration_cpu = meter.stop();
    let docs: Vec<Document> = mongo
        .collection::<Document>(crate::projection::document::ORDERS)
        .find(doc! {})
        .await
        .map_err(BenchError::Mongo)?
        .try_collect()
        .await
        .map_err(BenchError::Mongo)?;
    // The same validator and indexes as `orders`: the limit for inserting exactly these documents.
    crate::migrate::create_like(
        &mongo,
        crate::projection::document::ORDERS,
        "raw_insert_bench",
    )
    .await
    .map_err(MigrateError::from)?;
    let scratch = mongo.collection::<Document>("raw_insert_bench");
    let meter = CpuMeter::start(
        ServerProcess::none(),
        ServerProcess::listening_on(bench.mongodb.endpoint()),
    );
    for chunk in docs.chunks(1_000) {
        scratch
            .insert_many(chunk)
            .ordered(false)
            .await
            .map_err(BenchError::Mongo)?;
    }
    let raw_cpu = meter.stop();
    scratch.drop().await.map_err(BenchError::Mongo)?;
    Ok(MigrateFigures {
        migration,
        migration_cpu,
        raw_documents: docs.len() as u64,
        raw_insert_per_second: docs.len() as f64 / raw_cpu.seconds.max(1e-9),
        raw_cpu,
    })
}

fn bench_config(config: &Config) -> Result<Config, BenchError> {
    Ok(Config {
        mariadb: config
            .mariadb
            .with_database(&bench_database(config.mariadb.database()))
            .map_err(ConnectError::from)?,
        mongodb: config
            .mongodb
            .with_database(&bench_database(config.mongodb.database()))
            .map_err(ConnectError::from)?,
    })
}

/// Recreates the bench databases beside the configured ones (`<database>_bench` on both
/// stores: MariaDB with the schema applied, MongoDB empty) and returns their configuration.
async fn fresh_bench_databases(config: &Config) -> Result<Config, BenchError> {
    let bench = bench_config(config)?;
    let schema = MariaDbSchema::new(bench.mariadb.clone());
    schema.teardown(true).await?;
    schema.apply().await?;
    connect::mongodb_database(&bench.mongodb)
        .await?
        .drop()
        .await
        .map_err(BenchError::Mongo)?;
    Ok(bench)
}

/// Generates and loads `settings` into fresh bench databases (`<database>_bench` on both
/// stores) under `capture` (binlog capture has no capture triggers to fire) and reports rows/s,
/// documents/s and peak memory.
pub async fn generate_throughput(
    config: &Config,
    settings: GenerateConfig,
    options: LoadOptions,
    capture: crate::sync::Capture,
    progress: Arc<dyn Progress>,
) -> Result<GenerateFigures, BenchError> {
    let bench = fresh_bench_databases(config).await?;
    if capture == crate::sync::Capture::Binlog {
        crate::sync::capture::switch(&bench, capture, "aethermart bench generate").await?;
    }
    let summary = generate::generate_into(&bench, settings, options, progress).await?;
    Ok(GenerateFigures {
        summary,
        peak_rss_mib: peak_rss_mib(),
    })
}

/// The `q`-quantile (0..=1) of sorted samples, in milliseconds.
fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[rank].as_secs_f64() * 1_000.0
}

/// Places orders through `sp_PlaceOrder` from `clients` concurrent connections for a fixed
/// time per run and reports throughput and latency. Stock is large enough never to run out.
pub async fn place_order_throughput(
    config: &Config,
    settings: &PlaceOrderBench,
) -> Result<Vec<Throughput>, BenchError> {
    let bench = bench_config(config)?;
    let config = bench.mariadb.clone();
    let schema = MariaDbSchema::new(config.clone());
    schema.teardown(true).await?;
    schema.apply().await?;
    if settings.capture == crate::sync::Capture::Binlog {
        crate::sync::capture::switch(&bench, settings.capture, "aethermart bench place-order")
            .await?;
    }
    let max_clients = settings.clients.iter().copied().max().unwrap_or(1);
    let pool = cluster::writable_pool(
        &config,
        PoolSize {
            max: max_clients as u32 + 2,
        },
    )
    .await?;
    let seed = format!(
        "INSERT INTO Categories (category_id, name, slug) VALUES (1, 'Bench', 'bench');
         INSERT INTO Customers (customer_id, first_name, last_name, email)
           SELECT seq, 'Bench', CONCAT('Customer ', seq), CONCAT('bench', seq, '@example.com') FROM seq_1_to_{c};
         INSERT INTO Products (product_id, sku, name, category_id, price, stock)
           SELECT seq, CONCAT('BENCH-', seq), CONCAT('Bench product ', seq), 1, 1 + seq % 500, 1000000000
           FROM seq_1_to_{p};",
        c = settings.customers.max(1),
        p = settings.products.max(1),
    );
    let mut conn = pool.acquire().await.map_err(BenchError::Seed)?;
    connect::execute_script(&mut conn, &seed)
        .await
        .map_err(BenchError::Seed)?;
    drop(conn);
    if settings.worker {
        let mongo = connect::mongodb_database(&bench.mongodb).await?;
        mongo.drop().await.map_err(BenchError::Mongo)?;
        BulkMigrator::new(bench.mariadb.clone(), mongo.clone())
            .migrate(MigrateOptions::default(), Arc::new(NoProgress))
            .await?;
    }
    // One worker follows every run, on every entity.
    let worker = match settings.worker {
        true => Some(
            sync::WorkerThread::on(
                bench.clone(),
                crate::sync::SyncOptions::default(),
                settings.capture,
                &crate::projection::Entity::ALL,
                None,
            )
            .await?,
        ),
        false => None,
    };

    let mut results = Vec::new();
    for &clients in &settings.clients {
        let deadline = Instant::now() + settings.duration;
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|client| {
                let pool = pool.clone();
                let (customers, products) = (settings.customers.max(1), settings.products.max(1));
                tokio::spawn(async move {
                    let mut rng = StdRng::seed_from_u64(client as u64);
                    let mut latencies = Vec::new();
                    while Instant::now() < deadline {
                        let lines: Vec<NewOrderLine> = (0..rng.random_range(1..=3))
                            .map(|_| NewOrderLine::Product {
                                product_id: ProductId(u64::from(rng.random_range(1..=products))),
                                quantity: rng.random_range(1..=3),
                            })
                            .collect();
                        let customer = CustomerId(u64::from(rng.random_range(1..=customers)));
                        let t = Instant::now();
                        orders::place_order(&pool, customer, &lines).await?;
                        latencies.push(t.elapsed());
                    }
                    Ok::<_, PlaceOrderError>(latencies)
                })
            })
            .collect();
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.map_err(BenchError::Client)??);
        }
        let elapsed = started.elapsed().as_secs_f64();
        latencies.sort_unstable();
        let run = Throughput {
            clients,
            orders: latencies.len() as u64,
            orders_per_second: latencies.len() as f64 / elapsed,
            p50_ms: quantile_ms(&latencies, 0.50),
            p99_ms: quantile_ms(&latencies, 0.99),
        };
        tracing::info!(?run, "place-order run finished");
        results.push(run);
    }
    if let Some(worker) = worker {
        let (report, cpu) = worker.stop().await?;
        tracing::info!(
            ?report,
            cpu_ms = cpu.as_millis() as u64,
            "place-order: the worker's share"
        );
    }
    pool.close().await;
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_take_the_middle() {
        assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median([f64::NAN, 5.0]), Some(5.0));
        assert_eq!(median([]), None);
    }

    #[test]
    fn quantiles_pick_the_right_sample() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile_ms(&samples, 0.5), 51.0);
        assert_eq!(quantile_ms(&samples, 0.99), 99.0);
        assert_eq!(quantile_ms(&[], 0.5), 0.0);
    }
}
