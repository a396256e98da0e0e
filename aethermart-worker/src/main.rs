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
use aethermart_core::projection::Entity;
use aethermart_core::sync::{
    BinlogSource, Capture, MongoSink, Probes, QueueSource, ReviewFollower, Source, SyncArgs,
    SyncError, Syncer, capture, serve_http,
};
use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// AetherMart sync worker: applies the changes captured in MariaDB to MongoDB, and follows the
/// change stream of MongoDB's reviews to keep the products' ratings fresh.
///
/// The capture is the database's (`aethermart capture show|set`): with `triggers` the worker
/// applies the queues the triggers fill, and several workers may share them; with `binlog` it
/// follows the server's binary log as a replica (one worker per database) and stores its GTID
/// position in MongoDB. A worker whose capture is switched under it stops (exit 1).
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
///   AETHERMART_LOG              log filter (default info)
///   AETHERMART_LOG_FORMAT       text (default) or json
///
/// A host list in AETHERMART_MARIADB_URL names the nodes of a cluster: all workers then claim on
/// one node, the sync home (table sync_home), and move it to another node when it dies.
///
/// HTTP on AETHERMART_METRICS_ADDR: / (live status page), /metrics (Prometheus), /healthz (the
/// loop turns), /readyz (both stores answer, MongoDB took the last write).
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
    let (source, mongo, pool, binlog): (Arc<dyn Source>, _, ClusterPool, _) = match capture {
        Capture::Triggers => {
            let (source, mongo) = QueueSource::connect(&config, &options, queues)
                .await
                .map_err(|e| start(&e))?;
            let pool = source.pool().clone();
            (Arc::new(source), mongo, pool, None)
        }
        Capture::Binlog => {
            let (source, mongo) = BinlogSource::connect(&config, &options, queues)
                .await
                .map_err(|e| start(&e))?;
            let pool = source.pool();
            (Arc::new(source.clone()), mongo, pool, Some(source))
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
    let syncer = Syncer::new(source, Arc::new(sink), options);
    if let Some(binlog) = &binlog {
        binlog.attach_metrics(syncer.metrics());
    }
    let started = Instant::now();
    if args.once {
        let report = syncer.drain().await.map_err(Failure::Sync)?;
        if let Some(binlog) = &binlog {
            binlog.flush().await.map_err(Failure::Sync)?;
        }
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
    let metrics = if args.metrics_addr == "off" {
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
            let (metrics, pool) = (syncer.metrics(), pool.clone());
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(1));
                loop {
                    every.tick().await;
                    metrics.record_mariadb_switches(pool.switches());
                }
            });
        }
        Some(tokio::spawn(serve_http(listener, syncer.metrics(), probes)))
    };
    // One stop for both directions: a signal, or the review stream failing for good.
    let stop = Arc::new(watch::Sender::new(false));
    let until_stopped = |stop: &watch::Sender<bool>| {
        let mut stopped = stop.subscribe();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
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
        let follower = ReviewFollower::new(pool.clone(), mongo.clone(), syncer.metrics());
        let until = until_stopped(&stop);
        tokio::spawn(async move { follower.run(until).await })
    });
    let result = syncer.run(until_stopped(&stop)).await;
    stop.send_replace(true);
    signal.abort();
    if let Some(m) = metrics {
        m.abort();
    }
    if let Some(reviews) = reviews {
        if let Err(e) = reviews.await {
            tracing::error!(error = %e, "the review stream's task ended abnormally");
        }
    }
    if let Some(binlog) = &binlog
        && let Err(e) = binlog.flush().await
    {
        tracing::warn!(error = %e, "storing the binlog position at exit failed (a restart replays a little more)");
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
