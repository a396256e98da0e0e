//! `aethermart-worker`: the long-running process that keeps MongoDB in step with MariaDB.
//!
//! A thin shell around [`aethermart_core::sync::Syncer`]: configuration from the environment,
//! signals, logs, and the metrics endpoint.

/// mimalloc instead of glibc's malloc: the migration and the sync allocate per row and per
/// document, and glibc's malloc was a third of their CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use aethermart_core::cluster::ClusterPool;
use aethermart_core::config::Config;
use aethermart_core::connect::PoolSize;
use aethermart_core::projection::Entity;
use aethermart_core::sync::BinlogError;
use aethermart_core::sync::{
    BinlogSource, Candidate, Capture, MongoSink, Probes, QueueSource, ReviewFollower, Sink,
    SyncArgs, SyncError, SyncMetrics, SyncOptions, SyncReport, Syncer, capture, serve_http,
};
use clap::Parser;
use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// AetherMart sync worker: applies the changes captured in MariaDB to MongoDB, and follows the
/// change stream of MongoDB's reviews to keep the products' ratings fresh.
///
/// The capture is the database's (`aethermart capture show|set`): with `triggers` the worker
/// applies the queues the triggers fill, and several workers may share them; with `binlog` it
/// follows the server's binary log as a replica and stores its GTID position in MongoDB. Any
/// number of binlog workers may run: one holds the lease (stored with the position) and reads,
/// the others are hot standbys and take over within the lease TTL when it dies. A worker
/// whose capture is switched under it stops (exit 1).
///
/// Environment (every flag below also has its variable, shown with it):
///   AETHERMART_MARIADB_URL      mysql://USER@HOST:PORT[,HOST:PORT...]/DATABASE[?ssl-mode=...]
///   AETHERMART_MONGODB_URI      mongodb://USER@HOSTS/DATABASE[?options]
///   MARIA_DB_PASS, MONGO_ADMIN_PASS   the passwords (or in the URLs)
///   MARIA_DB_PASS_FILE, ...     any of the four with _FILE: read it from a file (systemd credentials)
///   AETHERMART_EMBEDDING_MODEL_DIR   the search's embedding model (--embedding-model-dir): with
///                               it the worker recomputes an item's search vector when its
///                               text changes; without it (a warning) they go stale until
///                               `aethermart search reindex`
///   AETHERMART_BINLOG_LEASE_TTL_MS   binlog capture: the lease TTL (--lease-ttl-ms, default
///                               10000): a standby takes over this long after the leader's last
///                               renewal
///   AETHERMART_LOG              log filter (default info)
///   AETHERMART_LOG_FORMAT       text (default) or json
///
/// A host list in AETHERMART_MARIADB_URL names the nodes of a cluster: all workers then claim on
/// one node, the sync home (table sync_home), and move it to another node when it dies.
///
/// HTTP on AETHERMART_METRICS_ADDR: / (live status page: leader or standby under binlog capture),
/// /metrics (Prometheus), /healthz (the loop turns; a standby's wait for the lease counts),
/// /readyz (both stores answer, MongoDB took the last write; a standby that reaches both is
/// ready).
///
/// Examples:
///   aethermart-worker                    follow the queues until SIGINT/SIGTERM
///   aethermart-worker --once             apply everything queued, then exit
///   aethermart-worker --check            connect to both stores and exit
///
/// Exit codes: 0 success (also after SIGINT/SIGTERM), 1 syncing stopped on an error that
/// retrying cannot fix, 2 the worker could not start (configuration, unreachable store, the
/// metrics address taken).
#[derive(Debug, Parser)]
#[command(name = "aethermart-worker", version, verbatim_doc_comment)]
struct Args {
    /// Connect to both stores, report, and exit.
    #[arg(long)]
    check: bool,
    /// Apply what is due, report what is parked for a later retry, and exit.
    #[arg(long)]
    once: bool,
    /// The loop's options (each also from its AETHERMART_SYNC_* variable).
    #[command(flatten)]
    sync: SyncArgs,
    /// The capture this worker is for: auto (the database's), triggers or binlog (refused
    /// when the database's differs).
    #[arg(long, env = "AETHERMART_CAPTURE", default_value = "auto",
          value_parser = ["auto", "triggers", "binlog"])]
    capture: String,
    /// Binlog capture: the lease TTL in milliseconds. The leader renews every fifth of it and
    /// stops writing after four fifths without a renewal; a standby takes over after a whole
    /// TTL without one (or at once after a clean stop).
    #[arg(long, env = aethermart_core::config::BINLOG_LEASE_TTL_MS,
          default_value_t = aethermart_core::sync::leadership::DEFAULT_TTL.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(500..=600_000))]
    lease_ttl_ms: u64,
    /// Do not follow the change stream of `reviews` (product ratings then refresh only when a
    /// product changes in MariaDB). For MongoDB deployments without change streams.
    #[arg(long, env = "AETHERMART_NO_REVIEW_STREAM")]
    no_review_stream: bool,
    /// Address of the HTTP endpoint (/, /metrics, /healthz, /readyz; "off" to serve none). The
    /// default port is outside the 9100-9999 range Prometheus exporters take and below Linux's
    /// ephemeral ports.
    #[arg(
        long,
        env = "AETHERMART_METRICS_ADDR",
        default_value = "127.0.0.1:19187"
    )]
    metrics_addr: String,
    // The search's embedding model (see the environment list above).
    #[command(flatten)]
    model: aethermart_core::search::model::ModelArgs,
}

/// Why the worker stopped.
enum Failure {
    /// It could not start.
    Start(String),
    /// Syncing failed for good.
    Sync(SyncError),
}

fn main() -> ExitCode {
    // The embedding model runs faster with candle's per-operation threads off (see there).
    let not_pinned = aethermart_core::search::embedding::exec_with_operations_on_one_thread();
    let args = Args::parse();
    // Logs on stderr: AETHERMART_LOG (default `info`), AETHERMART_LOG_FORMAT (text or json).
    if let Err(msg) = aethermart_core::logging::init("info") {
        eprintln!("error: {msg}");
        return ExitCode::from(2);
    }
    if let Some(e) = not_pinned {
        tracing::warn!(error = %e, "could not re-run with candle's own threads off; embedding is slower");
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Start(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Sync(err)) => {
            eprintln!("error: syncing stopped: {err}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: Args) -> Result<(), Failure> {
    let start = |e: &dyn std::fmt::Display| Failure::Start(e.to_string());
    let config = Config::from_env().map_err(|e| start(&e))?;
    let options = args.sync.options();
    let queues = Entity::ALL.len();
    let wanted = args.capture.parse::<Capture>().ok();
    let capture = capture::resolve(&config, wanted)
        .await
        .map_err(|e| start(&e))?;
    // Under binlog capture the source exists only while this worker leads: the probes and the
    // review stream use a pool of their own.
    let (queue_source, mongo, pool) = match capture {
        Capture::Triggers => {
            let (source, mongo) = QueueSource::connect(&config, &options, queues)
                .await
                .map_err(|e| start(&e))?;
            let pool = source.pool().clone();
            (Some(source), mongo, pool)
        }
        Capture::Binlog => {
            let mongo = aethermart_core::connect::mongodb_database(&config.mongodb)
                .await
                .map_err(|e| start(&e))?;
            // The cluster pool: the probes and the review stream follow the writable node.
            let pool = ClusterPool::connect(&config.mariadb, PoolSize { max: 4 })
                .await
                .map_err(|e| start(&e))?;
            let node = pool.node().unwrap_or_else(|| config.mariadb.endpoint());
            aethermart_core::sync::binlog::check_settings(pool.pool(), &node)
                .await
                .map_err(|e| start(&e))?;
            let database = config.mariadb.database();
            let stored = aethermart_core::binlog_position::store::load(&mongo, database)
                .await
                .map_err(|e| start(&e))?;
            if stored.is_none() {
                let e = BinlogError::NoPosition {
                    database: database.to_owned(),
                };
                return Err(start(&e));
            }
            (None, mongo, pool)
        }
    };
    tracing::info!(mariadb = %config.mariadb, mongodb = %config.mongodb, %capture, "both stores reachable");
    if args.check {
        return Ok(());
    }
    let probes = Probes::new(
        pool.clone(),
        config.mariadb.endpoint(),
        mongo.clone(),
        config.mongodb.endpoint(),
    );
    let mut sink = MongoSink::new(mongo.clone());
    let model_dir = args.model.dir();
    match aethermart_core::search::embedding::Embedder::load(&model_dir) {
        Ok(embedder) => {
            tracing::info!(model_dir = %model_dir.display(), "search vectors kept fresh");
            sink = sink.with_embedder(Arc::new(embedder));
        }
        Err(e) => tracing::warn!(error = %e, "search vectors of changed items will go stale"),
    }
    let sink: Arc<dyn Sink> = Arc::new(sink);
    let metrics = Arc::new(SyncMetrics::default());
    let worker = match queue_source {
        Some(source) => {
            Work::Queues(Syncer::new(Arc::new(source), sink, options).with_metrics(metrics.clone()))
        }
        None => Work::Binlog(Box::new(Binlog {
            candidate: Candidate::new(
                mongo.clone(),
                config.mariadb.database(),
                Duration::from_millis(args.lease_ttl_ms),
            )
            .with_metrics(metrics.clone()),
            config: config.clone(),
            options,
            sink,
            metrics: metrics.clone(),
        })),
    };
    let started = Instant::now();
    if args.once {
        let report = worker.once().await.map_err(Failure::Sync)?;
        tracing::info!(
            changes = report.changes,
            documents = report.documents,
            dead_lettered = report.dead_lettered,
            parked = report.parked,
            next_retry_in_s = report.next_retry_in_ms.map(|ms| ms as f64 / 1e3),
            seconds = started.elapsed().as_secs_f64(),
            "queues drained"
        );
        if report.parked > 0 {
            eprintln!(
                "{} changes parked for a later retry (the first in {:.0} s) are left queued",
                report.parked,
                report.next_retry_in_ms.unwrap_or(0) as f64 / 1e3
            );
        }
        return Ok(());
    }
    let http = if args.metrics_addr == "off" {
        None
    } else {
        let listener = tokio::net::TcpListener::bind(&args.metrics_addr)
            .await
            .map_err(|e| {
                Failure::Start(format!(
                    "cannot serve metrics on {} (AETHERMART_METRICS_ADDR): {e}",
                    args.metrics_addr
                ))
            })?;
        tracing::info!(addr = %args.metrics_addr, "serving the status page, /metrics, /healthz and /readyz");
        if pool.server().is_some() {
            // A cluster: publish the pool's node switches.
            let (metrics, pool) = (metrics.clone(), pool.clone());
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(1));
                loop {
                    every.tick().await;
                    metrics.record_mariadb_switches(pool.switches());
                }
            });
        }
        Some(tokio::spawn(serve_http(listener, metrics.clone(), probes)))
    };
    // One stop for both directions: a signal, or the review stream failing for good.
    let stop = Arc::new(watch::Sender::new(false));
    let signal = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let signal = shutdown_signal().await;
            tracing::info!(signal, "stopping after the batch in flight");
            stop.send_replace(true);
        })
    };
    // The review stream retries whatever fails (counted, and /readyz says so): it never stops
    // the queue sync.
    let reviews = (!args.no_review_stream).then(|| {
        let follower = ReviewFollower::new(pool.clone(), mongo.clone(), metrics.clone());
        let until = until_stopped(&stop);
        tokio::spawn(async move { follower.run(until).await })
    });
    let result = worker.run(&stop).await;
    stop.send_replace(true);
    signal.abort();
    if let Some(http) = http {
        http.abort();
    }
    if let Some(reviews) = reviews {
        if let Err(e) = reviews.await {
            tracing::error!(error = %e, "the review stream's task ended abnormally");
        }
    }
    let report = result.map_err(Failure::Sync)?;
    tracing::info!(
        changes = report.changes,
        documents = report.documents,
        dead_lettered = report.dead_lettered,
        transient_errors = report.transient_errors,
        seconds = started.elapsed().as_secs_f64(),
        "worker stopped"
    );
    Ok(())
}

/// Resolves once `stop` is set.
fn until_stopped(stop: &watch::Sender<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut stopped = stop.subscribe();
    async move {
        let _ = stopped.wait_for(|s| *s).await;
    }
}

/// What the worker runs.
enum Work {
    /// Trigger capture: the queues, shared with any other worker.
    Queues(Syncer),
    /// Binlog capture: leads or stands by.
    Binlog(Box<Binlog>),
}

/// Binlog capture's worker: a standby until it holds the lease, then a syncer over a binlog
/// source for as long as it holds it.
struct Binlog {
    candidate: Candidate,
    config: Config,
    options: SyncOptions,
    sink: Arc<dyn Sink>,
    metrics: Arc<SyncMetrics>,
}

impl Work {
    /// Applies what is due and returns (`--once`); under binlog capture it first waits for the
    /// lease, at most two TTLs while another worker renews it.
    async fn once(self) -> Result<SyncReport, SyncError> {
        match self {
            Self::Queues(syncer) => syncer.drain().await,
            Self::Binlog(b) => {
                let deadline = Instant::now() + 2 * b.candidate.ttl();
                let lease = b.candidate.acquire(Some(deadline)).await?;
                let (source, syncer) = match b.term(&lease).await {
                    Ok(started) => started,
                    Err(e) => {
                        lease.release().await;
                        b.candidate.withdraw().await;
                        return Err(e);
                    }
                };
                let report = syncer.drain().await;
                let flushed = source.flush().await;
                lease.release().await;
                b.candidate.withdraw().await;
                let report = report?;
                flushed?;
                Ok(report)
            }
        }
    }

    /// Runs until `stop` is set.
    async fn run(self, stop: &watch::Sender<bool>) -> Result<SyncReport, SyncError> {
        match self {
            Self::Queues(syncer) => syncer.run(until_stopped(stop)).await,
            Self::Binlog(b) => b.run(stop).await,
        }
    }
}

impl Binlog {
    /// A source and a syncer for one term of `lease`.
    async fn term(
        &self,
        lease: &aethermart_core::sync::Lease,
    ) -> Result<(BinlogSource, Syncer), SyncError> {
        let (source, _) =
            BinlogSource::connect(&self.config, &self.options, Entity::ALL.len(), lease).await?;
        source.attach_metrics(self.metrics.clone());
        let syncer = Syncer::new(
            Arc::new(source.clone()),
            lease.fence(self.sink.clone()),
            self.options,
        )
        .with_metrics(self.metrics.clone());
        Ok((source, syncer))
    }

    /// Stands by, leads while it holds the lease, stands by again when it loses it; until
    /// `stop` is set (the lease is then released for a standby to take at once) or syncing
    /// fails for good.
    async fn run(self, stop: &watch::Sender<bool>) -> Result<SyncReport, SyncError> {
        let mut total = SyncReport::default();
        let result = loop {
            let lease = tokio::select! {
                lease = self.candidate.acquire(None) => match lease {
                    Ok(lease) => lease,
                    Err(e) => break Err(e.into()),
                },
                () = until_stopped(stop) => break Ok(()),
            };
            tracing::info!(term = lease.term(), "this worker leads binlog capture");
            let (source, syncer) = match self.term(&lease).await {
                Ok(started) => started,
                Err(e) => {
                    lease.release().await;
                    if !e.is_transient() {
                        break Err(e);
                    }
                    tracing::warn!(error = %e, "starting binlog capture failed; standing by");
                    tokio::time::sleep(self.candidate.ttl() / 5).await;
                    continue;
                }
            };
            let ended = {
                let lost = lease.clone();
                let stopped = until_stopped(stop);
                async move {
                    tokio::select! {
                        () = stopped => {}
                        () = lost.lost() => {}
                    }
                }
            };
            let result = syncer.run(ended).await;
            if lease.is_held()
                && let Err(e) = source.flush().await
            {
                tracing::warn!(error = %e, "storing the binlog position failed (the next leader replays a little more)");
            }
            drop(source);
            let led = !lease.is_held();
            match result {
                Ok(report) => total.add(&report),
                Err(e) if led || matches!(e, SyncError::Binlog(BinlogError::NotLeader { .. })) => {
                    tracing::warn!(error = %e, "lost the binlog lease");
                }
                Err(e) => {
                    lease.release().await;
                    break Err(e);
                }
            }
            if *stop.borrow() {
                lease.release().await;
                break Ok(());
            }
            tracing::warn!(term = lease.term(), "lost the binlog lease: standing by");
        };
        self.candidate.withdraw().await;
        result.map(|()| total)
    }
}

/// Waits for SIGINT or SIGTERM and names it.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}
