//! [`sync_throughput`]: commit-to-visible latency at fixed change rates, the worker's CPU time
//! per change, and the drain rate of one and two workers beside MongoDB's raw bulk-upsert rate.
//!
//! Each worker runs on a thread of its own with a single-threaded runtime, so the CPU time of
//! that thread (`/proc/thread-self/schedstat`) is the worker's CPU time, drivers included.

use super::server_process::ServerProcess;
use super::{BenchError, fresh_bench_databases, quantile_ms};
use crate::binlog_position::GtidPosition;
use crate::cluster;
use crate::config::Config;
use crate::connect::{self, PoolSize};
use crate::migrate::{BulkMigrator, MigrateOptions, Migrator};
use crate::progress::NoProgress;
use crate::projection::document::CUSTOMER_PROFILES;
use crate::projection::{Entity, Refused};
use crate::sync::{
    BinlogSource, Capture, MongoSink, QueueSource, Sink, Source, SyncError, SyncOptions,
    SyncReport, Syncer, Write, WriteOp,
};
use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{Document, doc};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Settings of [`sync_throughput`].
#[derive(Debug, Clone)]
pub struct SyncBench {
    /// Customers in the bench database (each change updates one; a latency run never touches
    /// a customer twice when `customers >= rate × seconds`).
    pub customers: u32,
    /// Change rates (changes/s) of the latency runs.
    pub rates: Vec<u32>,
    /// Length of each latency run.
    pub duration: Duration,
    /// Changes queued at once for the drain-rate runs.
    pub backlog: u32,
    /// The workers' settings.
    pub options: SyncOptions,
    /// How changes are captured: the queues the triggers fill, or the binlog.
    pub capture: Capture,
}

impl Default for SyncBench {
    fn default() -> Self {
        Self {
            customers: 20_000,
            rates: vec![500, 2_000],
            duration: Duration::from_secs(5),
            backlog: 20_000,
            options: SyncOptions::default(),
            capture: Capture::Triggers,
        }
    }
}

/// One latency run.
#[derive(Debug, Clone, Serialize)]
pub struct SyncLatency {
    /// Target changes/s.
    pub rate: u32,
    /// Changes/s the writers achieved.
    pub achieved_rate: f64,
    /// Changes made.
    pub changes: u64,
    /// Median commit-in-MariaDB to acknowledged-by-MongoDB time, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Slowest change, ms.
    pub max_ms: f64,
    /// The worker thread's CPU time per change made, ms.
    pub worker_cpu_ms_per_change: f64,
    /// The MariaDB server process's CPU time per change made, ms (the writers' updates and
    /// their capture included), when the server runs on this machine.
    pub mariadb_cpu_ms_per_change: Option<f64>,
    /// The MongoDB server process's CPU time per change made, ms, when the server runs on
    /// this machine (found by the port it listens on).
    pub mongodb_cpu_ms_per_change: Option<f64>,
}

impl SyncLatency {
    /// Worker + MariaDB + MongoDB CPU time per change made, ms, when both servers are local.
    pub fn system_cpu_ms_per_change(&self) -> Option<f64> {
        Some(
            self.worker_cpu_ms_per_change
                + self.mariadb_cpu_ms_per_change?
                + self.mongodb_cpu_ms_per_change?,
        )
    }
}

/// The figures of [`sync_throughput`].
#[derive(Debug, Clone, Serialize)]
pub struct SyncFigures {
    /// The capture measured.
    pub capture: Capture,
    /// One run per rate.
    pub latency: Vec<SyncLatency>,
    /// Changes in each drain-rate run.
    pub backlog: u32,
    /// One worker draining the backlog, changes/s.
    pub one_worker_per_second: f64,
    /// The MariaDB server's CPU time per change while one worker drains the backlog, ms (the
    /// claim path alone: the backlog was queued before), when the server runs on this machine.
    pub one_worker_mariadb_cpu_ms_per_change: Option<f64>,
    /// Two workers draining the backlog, changes/s (trigger capture only: binlog capture runs
    /// one reader per database).
    pub two_workers_per_second: Option<f64>,
    /// The same MongoDB server upserting the same profile documents in batches of the same
    /// size with the same command, documents/s: the better of one writer and of as many
    /// concurrent writers as a worker has lanes.
    pub raw_upsert_per_second: f64,
}

impl SyncFigures {
    /// One worker's drain rate as a fraction of the raw upsert rate.
    pub fn one_worker_ratio(&self) -> f64 {
        self.one_worker_per_second / self.raw_upsert_per_second.max(1e-9)
    }
}

/// Prepares `<database>_bench` on both stores with `settings.customers` synced customers, then
/// runs the latency runs, the drain runs and the raw upsert comparison.
pub async fn sync_throughput(
    config: &Config,
    settings: &SyncBench,
) -> Result<SyncFigures, BenchError> {
    let bench = fresh_bench_databases(config).await?;
    let mongo = connect::mongodb_database(&bench.mongodb).await?;
    let pool = cluster::writable_pool(&bench.mariadb, PoolSize { max: 8 }).await?;
    let seed = format!(
        "INSERT INTO Customers (customer_id, first_name, last_name, email)
           SELECT seq, 'Bench', CONCAT('Customer ', seq), CONCAT('sync', seq, '@example.com') FROM seq_1_to_{c};
         INSERT INTO Customer_Addresses (customer_id, kind, line1, city, postal_code, country, is_default)
           SELECT customer_id, 'shipping', CONCAT(customer_id, ' Bench Street'), 'Lyon', '69001', 'FR', TRUE FROM Customers;",
        c = settings.customers.max(1)
    );
    let mut conn = pool.acquire().await.map_err(BenchError::Seed)?;
    connect::execute_script(&mut conn, &seed)
        .await
        .map_err(BenchError::Seed)?;
    drop(conn);
    // The initial migration writes every profile and drops the seed's queued changes.
    if settings.capture == Capture::Binlog {
        crate::sync::capture::switch(&bench, Capture::Binlog, "aethermart bench sync").await?;
    }
    // The initial migration writes every profile, drops the seed's queued changes and
    // records where binlog capture starts.
    BulkMigrator::new(bench.mariadb.clone(), mongo.clone())
        .migrate(MigrateOptions::default(), Arc::new(NoProgress))
        .await?;

    let mut latency = Vec::new();
    for (run, &rate) in settings.rates.iter().enumerate() {
        latency.push(latency_run(&bench, &pool, settings, run as u32 + 1, rate).await?);
    }
    let backlog = settings.backlog.clamp(1, settings.customers.max(1));
    let server = ServerProcess::find(&pool).await;
    let (one, one_cpu) = drain_rate(&bench, &pool, settings, 1, backlog, "+8", &server).await?;
    let two = match settings.capture {
        Capture::Triggers => Some(
            drain_rate(&bench, &pool, settings, 2, backlog, "+9", &server)
                .await?
                .0,
        ),
        Capture::Binlog => None,
    };
    let raw = raw_upsert_rate(&mongo, settings.options.batch_size, settings.options.lanes).await?;
    pool.close().await;
    Ok(SyncFigures {
        capture: settings.capture,
        latency,
        backlog,
        one_worker_per_second: one,
        one_worker_mariadb_cpu_ms_per_change: one_cpu,
        two_workers_per_second: two,
        raw_upsert_per_second: raw,
    })
}

/// Nanoseconds since `origin`, never 0 (0 means "not yet" in the recorders).
fn stamp(origin: Instant) -> u64 {
    (origin.elapsed().as_nanos() as u64).max(1)
}

/// The phone number that identifies change `seq` of run `run`.
fn token(run: u32, seq: usize) -> String {
    format!("+{run} {seq}")
}

/// Writes `rate` changes/s for the run's duration from four paced writers, while one worker
/// follows the queue; each change's latency runs from its commit to MongoDB's acknowledgement
/// of a document carrying it.
async fn latency_run(
    bench: &Config,
    pool: &sqlx::MySqlPool,
    settings: &SyncBench,
    run: u32,
    rate: u32,
) -> Result<SyncLatency, BenchError> {
    let total = (f64::from(rate) * settings.duration.as_secs_f64()).round() as usize;
    let origin = Instant::now();
    let committed: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let recorder = Arc::new(Recorder {
        run,
        origin,
        acked: acked.clone(),
    });
    let worker = WorkerThread::start(bench.clone(), settings, Some(recorder)).await?;
    let server = ServerProcess::find(pool).await;
    let mongodb = ServerProcess::listening_on(bench.mongodb.endpoint());
    let (server_at_start, mongodb_at_start) = (server.cpu(), mongodb.cpu());
    let started = Instant::now();
    const WRITERS: usize = 4;
    let customers = settings.customers.max(1) as usize;
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let (pool, committed) = (pool.clone(), committed.clone());
        writers.spawn(async move {
            for seq in (w..total).step_by(WRITERS) {
                let due = started + Duration::from_secs_f64(seq as f64 / f64::from(rate));
                tokio::time::sleep_until(due.into()).await;
                sqlx::query("UPDATE Customers SET phone = ? WHERE customer_id = ?")
                    .bind(token(run, seq))
                    .bind((seq % customers + 1) as u64)
                    .execute(&pool)
                    .await
                    .map_err(BenchError::Seed)?;
                committed[seq].store(stamp(origin), Ordering::Relaxed);
            }
            Ok::<_, BenchError>(())
        });
    }
    while let Some(r) = writers.join_next().await {
        r.map_err(BenchError::Client)??;
    }
    let writing = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.iter().any(|a| a.load(Ordering::Relaxed) == 0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (report, cpu) = worker.stop().await?;
    let server_cpu = server.cpu_since(server_at_start);
    let mongodb_cpu = mongodb.cpu_since(mongodb_at_start);
    let per_change = |cpu: Duration| cpu.as_secs_f64() * 1e3 / total.max(1) as f64;
    let mut latencies: Vec<Duration> = committed
        .iter()
        .zip(acked.iter())
        .filter_map(|(c, a)| {
            let (c, a) = (c.load(Ordering::Relaxed), a.load(Ordering::Relaxed));
            (c > 0 && a > 0).then(|| Duration::from_nanos(a.saturating_sub(c)))
        })
        .collect();
    if latencies.len() < total {
        return Err(BenchError::NotSynced {
            arrived: latencies.len(),
            total,
            seconds: 60,
        });
    }
    latencies.sort_unstable();
    let figures = SyncLatency {
        rate,
        achieved_rate: total as f64 / writing,
        changes: total as u64,
        p50_ms: quantile_ms(&latencies, 0.50),
        p99_ms: quantile_ms(&latencies, 0.99),
        max_ms: latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        worker_cpu_ms_per_change: per_change(cpu),
        mariadb_cpu_ms_per_change: server_cpu.map(per_change),
        mongodb_cpu_ms_per_change: mongodb_cpu.map(per_change),
    };
    tracing::info!(?figures, ?report, "sync latency run finished");
    Ok(figures)
}

/// Queues `backlog` changes in one transaction, then times `workers` workers draining them.
async fn drain_rate(
    bench: &Config,
    pool: &sqlx::MySqlPool,
    settings: &SyncBench,
    workers: usize,
    backlog: u32,
    prefix: &str,
    server: &ServerProcess,
) -> Result<(f64, Option<f64>), BenchError> {
    let mut running = Vec::new();
    for _ in 0..workers {
        running.push(WorkerThread::start(bench.clone(), settings, None).await?);
    }
    sqlx::query("UPDATE Customers SET phone = CONCAT(?, ' ', customer_id) WHERE customer_id <= ?")
        .bind(prefix)
        .bind(backlog)
        .execute(pool)
        .await
        .map_err(BenchError::Seed)?;
    // Binlog capture: drained once every change up to the update is applied (the position a
    // restart would resume from is past it).
    let target: Option<GtidPosition> = match settings.capture {
        Capture::Binlog => Some(crate::sync::binlog::server_position(pool).await?),
        Capture::Triggers => None,
    };
    let server_at_start = server.cpu();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    loop {
        let left: i64 = match (&target, running.first().and_then(|w| w.binlog.as_ref())) {
            (Some(target), Some(binlog)) => i64::from(!binlog.checkpoint().covers(target)),
            _ => sqlx::query_scalar("SELECT COUNT(*) FROM customer_sync_queue")
                .fetch_one(pool)
                .await
                .map_err(BenchError::Seed)?,
        };
        if left == 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err(BenchError::NotDrained { left, seconds: 600 });
        }
        // Counting the queue costs the server too: every 20 ms keeps it small (the binlog
        // position is in memory: every 2 ms).
        let pause = if target.is_some() { 2 } else { 20 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let server_cpu = server.cpu_since(server_at_start);
    for w in running {
        w.stop().await?;
    }
    let per_second = f64::from(backlog) / seconds;
    let cpu_ms_per_change = server_cpu.map(|c| c.as_secs_f64() * 1e3 / f64::from(backlog));
    tracing::info!(
        workers,
        backlog,
        seconds,
        per_second,
        ?cpu_ms_per_change,
        "sync drain run finished"
    );
    Ok((per_second, cpu_ms_per_change))
}

/// Upserts the stored profiles (merged with `$set`, as the worker does) into a scratch
/// collection with the validator and indexes of `customer_profiles`, through the same sink.
async fn raw_upsert_rate(
    mongo: &mongodb::Database,
    batch_size: u32,
    lanes: usize,
) -> Result<f64, BenchError> {
    let docs: Vec<Document> = mongo
        .collection::<Document>(CUSTOMER_PROFILES)
        .find(doc! {})
        .await
        .map_err(BenchError::Mongo)?
        .try_collect()
        .await
        .map_err(BenchError::Mongo)?;
    crate::migrate::create_like(mongo, CUSTOMER_PROFILES, "raw_upsert_bench")
        .await
        .map_err(crate::migrate::MigrateError::from)?;
    let writes: Vec<Write> = docs
        .into_iter()
        .filter_map(|mut d| {
            let key = d.get_i64("_id").ok()?;
            d.remove("_id");
            Some(Write {
                key,
                op: WriteOp::Merge(d),
            })
        })
        .collect();
    let sink = MongoSink::new(mongo.clone());
    let batch = batch_size.max(1) as usize;
    // First pass creates the documents; the timed passes update them, as the worker does:
    // batches one after the other, then from `lanes` concurrent writers. The better counts.
    for chunk in writes.chunks(batch) {
        sink.apply("raw_upsert_bench", chunk).await?;
    }
    let mut best: f64 = 0.0;
    for (pass, writers) in [1, lanes.max(1)].into_iter().enumerate() {
        // Every timed pass changes each document (a new phone), as the worker's changes do:
        // rewriting identical values would let the server skip the work.
        let changed: Vec<Write> = writes
            .iter()
            .map(|w| {
                let mut w = w.clone();
                if let WriteOp::Merge(d) = &mut w.op {
                    d.insert("phone", format!("+7{pass} {}", w.key));
                }
                w
            })
            .collect();
        let started = Instant::now();
        let next = AtomicU64::new(0);
        let chunks: Vec<&[Write]> = changed.chunks(batch).collect();
        let one_writer = || async {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(chunk) = chunks.get(i) else {
                    return Ok::<_, SyncError>(());
                };
                sink.apply("raw_upsert_bench", chunk).await?;
            }
        };
        futures_util::future::try_join_all((0..writers).map(|_| one_writer())).await?;
        let rate = writes.len() as f64 / started.elapsed().as_secs_f64().max(1e-9);
        tracing::info!(writers, rate, "raw bulk upsert");
        best = best.max(rate);
    }
    mongo
        .collection::<Document>("raw_upsert_bench")
        .drop()
        .await
        .map_err(BenchError::Mongo)?;
    Ok(best)
}

/// Notes when MongoDB acknowledged a profile carrying each change of the current run.
pub(super) struct Recorder {
    run: u32,
    origin: Instant,
    acked: Arc<Vec<AtomicU64>>,
}

/// A [`MongoSink`] that reports acknowledged documents to a [`Recorder`].
struct RecordingSink {
    inner: MongoSink,
    recorder: Arc<Recorder>,
}

#[async_trait]
impl Sink for RecordingSink {
    async fn apply(&self, collection: &str, writes: &[Write]) -> Result<Vec<Refused>, SyncError> {
        let refused = self.inner.apply(collection, writes).await?;
        let now = stamp(self.recorder.origin);
        let prefix = format!("+{} ", self.recorder.run);
        for w in writes {
            let WriteOp::Merge(d) = &w.op else { continue };
            let seq = d
                .get_str("phone")
                .ok()
                .and_then(|p| p.strip_prefix(&prefix))
                .and_then(|s| s.parse::<usize>().ok());
            if let Some(slot) = seq.and_then(|s| self.recorder.acked.get(s))
                && !refused.iter().any(|r| r.key == w.key)
            {
                let _ = slot.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
        Ok(refused)
    }
}

/// A worker on a thread of its own (single-threaded runtime), so its CPU time is measurable.
pub(super) struct WorkerThread {
    stop: watch::Sender<bool>,
    /// Binlog capture: the source, whose position tells when a backlog is applied.
    binlog: Option<BinlogSource>,
    handle: std::thread::JoinHandle<Result<(SyncReport, Duration), BenchError>>,
}

impl WorkerThread {
    /// Starts a worker on the customer queue and returns once it is connected and polling.
    async fn start(
        config: Config,
        settings: &SyncBench,
        recorder: Option<Arc<Recorder>>,
    ) -> Result<Self, BenchError> {
        Self::on(
            config,
            settings.options,
            settings.capture,
            &[Entity::Customers],
            recorder,
        )
        .await
    }

    /// Starts a worker on `entities` under `capture` and returns once it is connected and
    /// polling.
    pub(super) async fn on(
        config: Config,
        options: SyncOptions,
        capture: Capture,
        entities: &[Entity],
        recorder: Option<Arc<Recorder>>,
    ) -> Result<Self, BenchError> {
        let entities = entities.to_vec();
        let (stop, stop_rx) = watch::channel(false);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("sync-worker".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(BenchError::Thread)?;
                runtime.block_on(async move {
                    let (source, mongo, binlog, lease): (Arc<dyn Source>, _, _, _) = match capture {
                        Capture::Triggers => {
                            let (s, mongo) = QueueSource::connect(&config, &options, 1).await?;
                            (Arc::new(s), mongo, None, None)
                        }
                        Capture::Binlog => {
                            let mongo = crate::connect::mongodb_database(&config.mongodb).await?;
                            let lease = crate::sync::Candidate::new(
                                mongo,
                                config.mariadb.database(),
                                crate::sync::leadership::DEFAULT_TTL,
                            )
                            .acquire(None)
                            .await
                            .map_err(SyncError::from)?;
                            let (s, mongo) =
                                BinlogSource::connect(&config, &options, 1, &lease).await?;
                            // Measured from a stream that is connected and at the end.
                            s.wait_caught_up(Duration::from_secs(30)).await?;
                            (Arc::new(s.clone()), mongo, Some(s), Some(lease))
                        }
                    };
                    let inner = MongoSink::new(mongo);
                    let sink: Arc<dyn Sink> = match recorder {
                        Some(recorder) => Arc::new(RecordingSink { inner, recorder }),
                        None => Arc::new(inner),
                    };
                    let syncer = Syncer::new(source, sink, options).with_entities(&entities);
                    let cpu_at_start = thread_cpu();
                    let _ = ready_tx.send(binlog);
                    let mut stop_rx = stop_rx;
                    let stopped = async move {
                        let _ = stop_rx.wait_for(|s| *s).await;
                    };
                    let report = syncer.run(stopped).await;
                    if let Some(lease) = lease {
                        lease.release().await;
                    }
                    Ok((report?, thread_cpu().saturating_sub(cpu_at_start)))
                })
            });
        let handle = spawned.map_err(BenchError::Thread)?;
        match ready_rx.await {
            Ok(binlog) => Ok(Self {
                stop,
                handle,
                binlog,
            }),
            // The thread ended before it was ready: report its error.
            Err(_) => Err(join(handle).err().unwrap_or(BenchError::WorkerGone)),
        }
    }

    /// Stops the worker and returns its report and CPU time since it started polling.
    pub(super) async fn stop(self) -> Result<(SyncReport, Duration), BenchError> {
        self.stop.send_replace(true);
        let handle = self.handle;
        tokio::task::spawn_blocking(move || join(handle))
            .await
            .map_err(BenchError::Client)?
    }
}

fn join(
    handle: std::thread::JoinHandle<Result<(SyncReport, Duration), BenchError>>,
) -> Result<(SyncReport, Duration), BenchError> {
    handle.join().map_err(|_| BenchError::WorkerGone)?
}

/// CPU time of the calling thread so far (`/proc/thread-self/schedstat`, nanoseconds on CPU).
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map(Duration::from_nanos)
        .unwrap_or_default()
}
