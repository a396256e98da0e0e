//! [`BinlogSource`]: binlog capture, a [`Source`] that follows MariaDB's binary log as a
//! replica, so capture costs the application's transactions nothing (no trigger work, no queue
//! rows on the write path).
//!
//! - A reader task streams committed transactions of the platform's database from a GTID
//!   position (`stream`), turns each row change into the documents it affects (`fanout`:
//!   the same fan-out as the capture triggers, with a query for renames that reach embedding
//!   documents) and hands the keys to a `Tracker`, which coalesces them per key.
//! - A claim takes keys of one entity, waits until the last transaction read is visible (a
//!   locking read of one of its rows: the server sends a transaction's events to replicas
//!   before its commit is visible to readers), re-reads the current rows through the
//!   projection (`reread`) and hands them to the sink; the loop's retry policy and
//!   the dead letters work as with the queues. The handoff row is taken in share mode for the
//!   batch, so workers pause while a migration runs.
//! - The position is stored in MongoDB ([`crate::binlog_position`]) only after the writes of every change
//!   before it were acknowledged: a restart replays a little, never skips. A migration sets a
//!   new position (the binlog position of its snapshot) with a new epoch; a worker from an
//!   older epoch starts over from there.
//! - Entries inserted into the sync queues (resync requests, requeued dead letters, the review
//!   stream) arrive through the binlog like any row and name their key; the source deletes
//!   them once the position passed them.

pub(crate) mod fanout;
mod rows;
mod stream;
mod tracker;

pub use crate::binlog_position::{CheckpointError, GtidPosition, POSITIONS};

use crate::binlog_position::{gtid, store as checkpoint};

use super::leadership::Lease;
use super::{Acknowledged, Backlog, ClaimedBatch, RetryPolicy, Sorted, Source, SyncError, Write};
use crate::connect::{execute_script, sql_literal};
use crate::projection::{Entity, Refused};
use async_trait::async_trait;
use fanout::Target;
use sqlx::pool::PoolConnection;
use sqlx::{MySql, MySqlPool};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stream::{Reader, Received, Transaction};
use tokio::sync::{Notify, mpsc};
use tracker::Tracker;

/// How often a changed checkpoint is stored (and applied queue entries deleted).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// Why binlog capture cannot go on.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BinlogError {
    /// The server refused or failed a request.
    #[error("MariaDB at {endpoint} (binlog): error {code}: {message}")]
    Server {
        /// `host:port`.
        endpoint: String,
        /// The server's error number.
        code: u16,
        /// The server's message.
        message: String,
    },
    /// The connection failed.
    #[error("MariaDB at {endpoint} (binlog): {message}")]
    Io {
        /// `host:port`.
        endpoint: String,
        /// What failed.
        message: String,
    },
    /// No answer within the connect timeout.
    #[error("MariaDB at {endpoint} (binlog): no answer within 10 s")]
    Timeout {
        /// `host:port`.
        endpoint: String,
    },
    /// Neither an event nor a heartbeat for a while.
    #[error("MariaDB at {endpoint} (binlog): nothing received for {seconds} s; reconnecting")]
    Silent {
        /// `host:port`.
        endpoint: String,
        /// How long.
        seconds: u64,
    },
    /// The server ended the stream.
    #[error("MariaDB at {endpoint} (binlog): the server closed the stream")]
    Closed {
        /// `host:port`.
        endpoint: String,
    },
    /// The server no longer has the binlogs from the position asked for.
    #[error(
        "MariaDB at {endpoint} no longer has the binlog from GTID position {asked} (the oldest it \
         has starts at {oldest}): the changes since are lost to binlog capture; run \
         `aethermart migrate` to copy the current state again (it records a new position)"
    )]
    Purged {
        /// `host:port`.
        endpoint: String,
        /// The position asked for.
        asked: String,
        /// The oldest position the server has (or a note why it is unknown).
        oldest: String,
    },
    /// An event could not be decoded.
    #[error(
        "cannot decode {what} from the binlog (compressed binlog events are not supported: set log_bin_compress=OFF)"
    )]
    Decode {
        /// Which.
        what: &'static str,
    },
    /// The server is not set up for binlog capture.
    #[error(
        "MariaDB at {endpoint}: binlog capture needs {variable}={wanted} (it is {value:?}); set \
         it in the server's configuration (see deploy/mariadb) and restart the server"
    )]
    Setting {
        /// `host:port`.
        endpoint: String,
        /// The server variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// What it must be.
        wanted: &'static str,
    },
    /// Nothing says where to start.
    #[error(
        "no binlog position is recorded for database {database} (MongoDB collection \
         {POSITIONS}): run `aethermart migrate` first (it records the position the capture \
         starts from); binlog capture never starts silently from \"now\""
    )]
    NoPosition {
        /// The MariaDB database.
        database: String,
    },
    /// Storing or reading the position failed.
    #[error("{0}")]
    Checkpoint(String),
    /// Finding the documents a rename reaches failed for good (privileges, schema).
    #[error("finding the documents a rename reaches failed: {0}")]
    Expand(String),
    /// This worker's lease lapsed or another worker took it over: it stops reading, writing
    /// and storing the position (and waits as a standby).
    #[error(
        "this worker no longer holds the binlog lease (its term {term} ended): it stops reading \
         and writing"
    )]
    NotLeader {
        /// The term that ended.
        term: i64,
    },
    /// Another worker leads and kept its lease (e.g. for `aethermart-worker --once`).
    #[error(
        "another worker ({host}, pid {pid}) reads the binlog and renews its lease: stop it first \
         or let this one run as its standby"
    )]
    Led {
        /// The leader's host.
        host: String,
        /// Its pid.
        pid: u32,
    },
}

impl BinlogError {
    /// From a driver error while reading from `asked`.
    fn from_server(endpoint: &str, asked: &GtidPosition, e: mysql_async::Error) -> Self {
        match e {
            // "Could not find GTID state requested by slave in any binlog files. Probably the
            // slave state is too old and required binlog files have been purged." Other 1236
            // answers (a position this server has not reached, or diverged GTIDs) stay
            // `Server` errors: another node, or this one later, may serve the position.
            mysql_async::Error::Server(s)
                if s.code == 1236 && s.message.contains("Could not find GTID state") =>
            {
                Self::Purged {
                    endpoint: endpoint.to_owned(),
                    asked: asked.to_string(),
                    oldest: "unknown".into(),
                }
            }
            mysql_async::Error::Server(s) => Self::Server {
                endpoint: endpoint.to_owned(),
                code: s.code,
                message: s.message,
            },
            other => Self::Io {
                endpoint: endpoint.to_owned(),
                message: other.to_string(),
            },
        }
    }

    /// True when reconnecting may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Io { .. }
            | Self::Timeout { .. }
            | Self::Silent { .. }
            | Self::Closed { .. }
            | Self::Checkpoint(_) => true,
            // Access denied, missing privileges, a bad request: a setup problem.
            Self::Server { code, .. } => !matches!(code, 1044 | 1045 | 1227 | 1236 | 1142),
            _ => false,
        }
    }
}

/// Follows the binlog of one MariaDB server for the platform's database.
#[derive(Clone)]
pub struct BinlogSource {
    inner: Arc<Inner>,
    _tasks: Arc<Tasks>,
}

impl std::fmt::Debug for BinlogSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinlogSource")
            .field("database", &self.inner.database)
            .field("endpoint", &self.inner.endpoint)
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// Re-reads, claims and records go through it (the writable node of a cluster).
    cluster: crate::cluster::ClusterPool,
    pool: MySqlPool,
    mongo: mongodb::Database,
    database: String,
    endpoint: String,
    run_id: String,
    state: Mutex<State>,
    /// A batch was acknowledged: the checkpoint may move.
    settled: Notify,
    /// The worker's metrics, once attached.
    metrics: std::sync::OnceLock<Arc<super::SyncMetrics>>,
    /// The stored epoch changed: the reader starts over.
    restart: Notify,
    /// Reading, writing and storing the position only while it is held.
    lease: Lease,
}

struct State {
    tracker: Tracker,
    /// Bumped when the tracker starts over; batches of an older generation settle nothing.
    generation: u64,
    epoch: i64,
    /// The error that stopped the reader for good.
    fatal: Option<BinlogError>,
    /// The last row read, for the visibility wait: `(table, key column, key)`.
    barrier: Option<(&'static str, &'static str, u64)>,
    /// Per transaction number, the requests it inserted into the sync queues, `(entity,
    /// queue_id)`: deleted once applied (exactly those: entries the triggers wrote belong to
    /// trigger capture's workers).
    queue_entries: BTreeMap<u64, Vec<(Entity, u64)>>,
    /// Requests applied, waiting to be deleted.
    deletable: Vec<(Entity, u64)>,
    /// A claim found the database's capture to be binlog (no entry is deleted before).
    capture_confirmed: bool,
    /// A server position the reader must reach before it counts as caught up.
    catch_up: Option<GtidPosition>,
    /// Running beside trigger capture (see [`BinlogSource::shadow`]).
    shadow: bool,
    /// The server the binlog is read from (`host:port`).
    reading: String,
}

/// The source's background tasks, stopped with the last clone.
struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

impl BinlogSource {
    /// Connects to both stores of `config`, checks that the server writes what binlog capture
    /// needs, loads the stored position (refusing to start without one) and starts reading,
    /// for as long as `lease` is held ([`super::Candidate::acquire`]): then it stops reading,
    /// claims fail with [`BinlogError::NotLeader`], and the position is stored only under
    /// the lease's term. Returns the source and the MongoDB database (for a
    /// [`super::MongoSink`]).
    pub async fn connect(
        config: &crate::config::Config,
        options: &super::SyncOptions,
        queues: usize,
        lease: &Lease,
    ) -> Result<(Self, mongodb::Database), SyncError> {
        let endpoint = config.mariadb.endpoint();
        let size = crate::connect::PoolSize {
            max: options.pool_size(queues),
        };
        let cluster = crate::cluster::ClusterPool::connect(&config.mariadb, size).await?;
        let pool = cluster.pool().clone();
        let mongo = crate::connect::mongodb_database(&config.mongodb).await?;
        check_settings(&pool, &cluster.node().unwrap_or_else(|| endpoint.clone())).await?;
        let database = config.mariadb.database().to_owned();
        let stored = checkpoint::load(&mongo, &database)
            .await
            .map_err(|e| BinlogError::Checkpoint(e.to_string()))?
            .ok_or_else(|| BinlogError::NoPosition {
                database: database.clone(),
            })?;
        let readers = readers(&config.mariadb).await;
        tracing::info!(position = %stored.position, epoch = stored.epoch, by = %stored.by,
            from = %readers[0].endpoint, "binlog capture resumes");
        let inner = Arc::new(Inner {
            cluster,
            pool,
            mongo: mongo.clone(),
            database: database.clone(),
            endpoint: endpoint.clone(),
            run_id: crate::lineage::new_run_id(),
            state: Mutex::new(State {
                tracker: Tracker::new(stored.position),
                generation: 0,
                epoch: stored.epoch,
                fatal: None,
                barrier: None,
                queue_entries: BTreeMap::new(),
                deletable: Vec::new(),
                capture_confirmed: false,
                catch_up: None,
                shadow: false,
                reading: readers[0].endpoint.clone(),
            }),
            settled: Notify::new(),
            metrics: std::sync::OnceLock::new(),
            restart: Notify::new(),
            lease: lease.clone(),
        });
        let tasks = vec![
            tokio::spawn(read_forever(inner.clone(), readers)),
            tokio::spawn(store_forever(inner.clone())),
        ];
        Ok((
            Self {
                inner,
                _tasks: Arc::new(Tasks(tasks)),
            },
            mongo,
        ))
    }

    /// Shadow mode: binlog capture beside trigger capture on the same database, into another
    /// MongoDB database (e.g. to compare the two before switching). The source then runs
    /// whatever the database's capture is and leaves the sync queues to the trigger capture's
    /// workers.
    pub fn shadow(&self) {
        self.inner.lock().shadow = true;
    }

    /// Reports what the reader reads (events, bytes, lag, GTID) and when the position was
    /// stored in `metrics` (the syncer's: [`super::Syncer::metrics`]).
    pub fn attach_metrics(&self, metrics: Arc<super::SyncMetrics>) {
        let _ = self.inner.metrics.set(metrics);
    }

    /// Stores the checkpoint now (e.g. before the worker exits).
    pub async fn flush(&self) -> Result<(), SyncError> {
        store_checkpoint(&self.inner, &mut None).await
    }

    /// The MariaDB pool the source reads rows through (a cluster's writable node).
    pub fn pool(&self) -> crate::cluster::ClusterPool {
        self.inner.cluster.clone()
    }

    /// The server (`host:port`) the binlog is read from now.
    pub fn reading_from(&self) -> String {
        self.inner.lock().reading.clone()
    }

    /// The position after the last transaction read.
    pub fn read_position(&self) -> GtidPosition {
        self.inner.lock().tracker.latest().clone()
    }

    /// The position a restart would resume from now.
    pub fn checkpoint(&self) -> GtidPosition {
        self.inner.lock().tracker.checkpoint().clone()
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A replica `server_id` for this reader: random in the upper half of the range, so readers
/// do not collide with each other (the server drops the older of two with one id) nor with
/// the small ids servers are given.
fn replica_server_id() -> u32 {
    rand::random_range(1u32 << 31..u32::MAX)
}

/// Refuses a server that does not write what binlog capture reads (`endpoint` names it).
pub async fn check_settings(pool: &MySqlPool, endpoint: &str) -> Result<(), SyncError> {
    let row: (i64, String, String, String) = sqlx::query_as(
        "SELECT CAST(@@log_bin AS SIGNED), @@binlog_format, @@binlog_row_image, @@binlog_row_metadata",
    )
    .fetch_one(pool)
    .await
    .map_err(|source| SyncError::MariaDb {
        step: "reading the binlog settings",
        source,
    })?;
    let missing = crate::binlog_position::missing_settings(row.0 == 1, &row.1, &row.2, &row.3);
    if let Some((variable, wanted, value)) = missing.into_iter().next() {
        return Err(BinlogError::Setting {
            endpoint: endpoint.to_owned(),
            variable,
            value,
            wanted,
        }
        .into());
    }
    Ok(())
}

/// The key column of a table a row event may come from, for the visibility wait.
fn key_column(table: &str) -> Option<(&'static str, &'static str)> {
    Some(match table {
        "Customers" => ("Customers", "customer_id"),
        "Customer_Addresses" => ("Customer_Addresses", "address_id"),
        "Orders" => ("Orders", "order_id"),
        "Order_Items" => ("Order_Items", "order_item_id"),
        "Products" => ("Products", "product_id"),
        "Services" => ("Services", "service_id"),
        "Categories" => ("Categories", "category_id"),
        _ => {
            let entity = Entity::ALL.into_iter().find(|e| e.queue_table() == table)?;
            (entity.queue_table(), "queue_id")
        }
    })
}

/// The servers the binlog may be read from, in the order to try them: the nodes of `config`,
/// healthy ones that do not take writes (replicas replicating: reading there offloads the
/// primary) first, then those that take writes, then those that answer but are not healthy (a
/// replica whose replication stopped, a Galera node not synced), then those that did not
/// answer, each group in the configured order. One server: just it.
async fn readers(config: &crate::config::MariaDbConfig) -> Vec<Reader> {
    let nodes = config.nodes();
    let order: Vec<usize> = if nodes.len() < 2 {
        vec![0]
    } else {
        let statuses = crate::cluster::probe_nodes(config).await;
        let rank = |i: usize| {
            let status = &statuses[i];
            match (status.info(), status.takes_writes(), status.healthy()) {
                (Some(_), Err(_), true) => 0,
                (Some(_), Ok(()), _) => 1,
                (Some(_), Err(_), false) => 2,
                (None, _, _) => 3,
            }
        };
        let mut order: Vec<usize> = (0..nodes.len()).collect();
        order.sort_by_key(|&i| (rank(i), i));
        order
    };
    order
        .into_iter()
        .map(|i| Reader {
            opts: nodes[i].replication_options(),
            endpoint: nodes[i].endpoint(),
            database: config.database().to_owned(),
            server_id: replica_server_id(),
        })
        .collect()
}

/// True for a server that can never serve the position asked for (it lacks the binlogs:
/// purged, or it rejoined a Galera cluster by a full state transfer) while another may.
fn position_missing_here(e: &BinlogError) -> bool {
    matches!(e, BinlogError::Purged { .. })
}

/// True for a refusal another server (or this one, a little later) may not give: a position
/// it has not reached yet (a node a few write sets behind), diverged GTIDs.
fn position_refused_here(e: &BinlogError) -> bool {
    matches!(e, BinlogError::Server { code: 1236, .. })
}

/// Reads the binlog until a fatal error: reconnects after transient ones (from the last
/// transaction read), moving on to the next server of `readers` after a failure (a dead node,
/// one without the position), and starts over when the stored epoch changes. Stops for good
/// when no server has the position.
async fn read_forever(inner: Arc<Inner>, readers: Vec<Reader>) {
    let mut backoff = Duration::from_millis(100);
    let mut current = 0;
    // The servers that lacked the position, since the last progress.
    let mut lacking: BTreeMap<usize, BinlogError> = BTreeMap::new();
    // When the last transaction or heartbeat arrived from the server read before a move.
    let last_heard = Arc::new(Mutex::new(Instant::now()));
    loop {
        let reader = &readers[current];
        inner.lease.set_reading(&reader.endpoint);
        let (start, generation) = {
            let mut s = inner.lock();
            s.reading.clone_from(&reader.endpoint);
            (s.tracker.latest().clone(), s.generation)
        };
        let (tx, mut rx) = mpsc::channel::<Received>(4096);
        let heard = last_heard.clone();
        let consume = async {
            while let Some(received) = rx.recv().await {
                *heard.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                match received {
                    Received::Transaction(t) => take_in(&inner, generation, t).await,
                    Received::Heartbeat => {
                        if let Some(m) = inner.metrics.get() {
                            m.binlog_caught_up();
                        }
                    }
                }
            }
        };
        let (restart, lease, from) = (&inner.restart, &inner.lease, start.clone());
        let watched = &*inner;
        let reading = async move {
            let tx = tx;
            tokio::select! {
                r = reader.follow(from, &tx) => Some(r),
                () = restart.notified() => None,
                () = lease.lost() => Some(Err(lease.not_leader())),
                seconds = stalled(watched) => Some(Err(BinlogError::Silent {
                    endpoint: reader.endpoint.clone(),
                    seconds,
                })),
            }
            // `tx` is dropped here: the consumer ends once it took in what was received.
        };
        // Whatever was received is taken in before reconnecting from the last position.
        let (outcome, ()) = tokio::join!(reading, consume);
        let progressed = inner.lock().tracker.latest() != &start;
        if progressed {
            lacking.clear();
            backoff = Duration::from_millis(100);
        }
        match outcome {
            None => {
                tracing::warn!(
                    "the stored binlog position has a new epoch (a migration or a capture switch): reading again from it"
                );
                backoff = Duration::from_millis(100);
                lacking.clear();
            }
            Some(Ok(())) => return,
            Some(Err(e @ BinlogError::NotLeader { .. })) => {
                tracing::info!(error = %e, "binlog reader stopped");
                inner.lock().fatal.get_or_insert(e);
                return;
            }
            Some(Err(e))
                if readers.len() > 1
                    && (e.is_transient()
                        || position_missing_here(&e)
                        || position_refused_here(&e)) =>
            {
                if position_missing_here(&e) {
                    lacking.insert(current, e.clone());
                }
                let next = (1..=readers.len())
                    .map(|step| (current + step) % readers.len())
                    .find(|i| !lacking.contains_key(i));
                let Some(next) = next else {
                    let e = lacking_everywhere(&inner, &readers, lacking).await;
                    tracing::error!(error = %e, "binlog capture stopped");
                    inner.lock().fatal = Some(e);
                    return;
                };
                let silent = last_heard
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .elapsed();
                tracing::warn!(error = %e, from = %reader.endpoint, to = %readers[next].endpoint,
                    position = %inner.lock().tracker.latest(),
                    silent_ms = silent.as_millis() as u64,
                    "binlog reader moves to another server at the same GTID position");
                if let Some(m) = inner.metrics.get() {
                    m.binlog_source_moved();
                }
                // Straight on to the next server; a pause once every server failed in turn.
                if next <= current {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                current = next;
            }
            Some(Err(e)) if e.is_transient() => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "binlog stream failed; reconnecting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Some(Err(e)) => {
                let e = match e {
                    BinlogError::Purged {
                        endpoint, asked, ..
                    } => BinlogError::Purged {
                        oldest: oldest_position(&inner.pool).await,
                        endpoint,
                        asked,
                    },
                    e => e,
                };
                tracing::error!(error = %e, "binlog capture stopped");
                inner.lock().fatal = Some(e);
                return;
            }
        }
    }
}

/// The error when no server of `readers` has the position: [`BinlogError::Purged`] naming
/// every server (each one's refusal is logged).
async fn lacking_everywhere(
    inner: &Inner,
    readers: &[Reader],
    lacking: BTreeMap<usize, BinlogError>,
) -> BinlogError {
    let asked = inner.lock().tracker.latest().to_string();
    let why: Vec<String> = lacking
        .iter()
        .map(|(i, e)| format!("{}: {e}", readers[*i].endpoint))
        .collect();
    tracing::warn!(servers = %why.join("; "), "no server has the binlog position");
    BinlogError::Purged {
        endpoint: readers
            .iter()
            .map(|r| r.endpoint.as_str())
            .collect::<Vec<_>>()
            .join(","),
        asked,
        oldest: oldest_position(&inner.pool).await,
    }
}

/// How long the reader may trail the writable node without reading anything before it leaves
/// the server it reads (see [`stalled`]).
const STALLED_AFTER: Duration = Duration::from_secs(10);

/// Resolves (with the seconds it waited) once the reader has trailed the writable node's
/// position, in the domains it follows, for [`STALLED_AFTER`] without reading anything: the
/// server it reads answers (heartbeats) but receives nothing, e.g. a replica whose replication
/// stopped or a Galera node cut off from the primary component. Checks once a second.
async fn stalled(inner: &Inner) -> u64 {
    let mut behind_since: Option<(Instant, GtidPosition)> = None;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Ok(target) = server_position(&inner.pool).await else {
            // The writable node does not answer: the pool moves, nothing to compare with.
            behind_since = None;
            continue;
        };
        let latest = inner.lock().tracker.latest().clone();
        if latest.covers(&target.within_domains_of(&latest)) {
            behind_since = None;
            continue;
        }
        match &behind_since {
            // Read something since: not stalled, start over.
            Some((_, at)) if *at != latest => behind_since = Some((Instant::now(), latest)),
            Some((since, _)) if since.elapsed() >= STALLED_AFTER => {
                return since.elapsed().as_secs();
            }
            Some(_) => {}
            None => behind_since = Some((Instant::now(), latest)),
        }
    }
}

/// How long a claim waits for the last transaction read to become visible.
const VISIBILITY_WAIT: Duration = Duration::from_millis(50);

/// Waits until the last transaction read is visible to readers: once its row lock is free
/// (commits become visible in binlog order, so every earlier one is too). The lock is tried
/// without waiting, again every millisecond for at most [`VISIBILITY_WAIT`]: a commit in
/// flight frees it within that; a lock still held then belongs to a later transaction (the
/// one read had committed for another to take it), and an application holding a transaction
/// open on that row must not stall the sync.
async fn visible(
    conn: &mut sqlx::MySqlConnection,
    barrier @ (table, _, id): (&'static str, &'static str, u64),
) -> Result<(), SyncError> {
    let started = Instant::now();
    let sql = visibility_sql(barrier);
    loop {
        match sqlx::Executor::fetch_all(&mut *conn, sql.as_str()).await {
            Ok(_) => return Ok(()),
            Err(e) if is_lock_wait(&e) => {
                if started.elapsed() >= VISIBILITY_WAIT {
                    tracing::debug!(
                        table,
                        id,
                        "the last row read is locked by a later transaction"
                    );
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(source) => {
                return Err(SyncError::MariaDb {
                    step: "waiting for the last transaction read to be visible",
                    source,
                });
            }
        }
    }
}

/// The visibility read of `barrier`: a shared lock on the row, not waited for, taken and released
/// at once (autocommit).
fn visibility_sql((table, column, id): (&'static str, &'static str, u64)) -> String {
    format!("SELECT 1 FROM {table} WHERE {column} = {id} LOCK IN SHARE MODE NOWAIT")
}

/// A lock not granted at once (`NOWAIT`: 3572, or a lock wait timeout: 1205).
fn is_lock_wait(e: &sqlx::Error) -> bool {
    crate::orders::server_error(e).is_some_and(|(n, _)| n == 1205 || n == 3572)
}

/// The GTID position at the start of the oldest binlog the server has.
async fn oldest_position(pool: &MySqlPool) -> String {
    let first: Result<Vec<(String, u64)>, _> =
        sqlx::query_as("SHOW BINARY LOGS").fetch_all(pool).await;
    match first {
        Ok(logs) => match logs.first() {
            Some((file, _)) => sqlx::query_scalar::<_, String>("SELECT BINLOG_GTID_POS(?, 4)")
                .bind(file)
                .fetch_one(pool)
                .await
                .unwrap_or_else(|e| format!("unknown: {e}")),
            None => "unknown: no binlog files".into(),
        },
        Err(e) => format!("unknown: SHOW BINARY LOGS failed ({e})"),
    }
}

/// What one transaction means for the sync.
struct Effects {
    /// The documents it affects.
    keys: BTreeSet<(Entity, u64)>,
    /// Its last row in a known table, for the visibility wait.
    barrier: Option<(&'static str, &'static str, u64)>,
    /// The requests it inserted into the sync queues, `(entity, queue_id)`.
    requests: Vec<(Entity, u64)>,
}

/// The effects of `t`: its documents, with the queries of the fan-outs that need one retried
/// while the error is transient (a transaction is never dropped).
async fn effects(pool: &MySqlPool, t: &Transaction) -> Result<Effects, BinlogError> {
    let mut targets = Vec::new();
    let mut effects = Effects {
        keys: BTreeSet::new(),
        barrier: None,
        requests: Vec::new(),
    };
    for change in &t.changes {
        fanout::targets(change, &mut targets);
        if let Some((table, column)) = key_column(change.table)
            && let Some(id) = change
                .after
                .as_ref()
                .or(change.before.as_ref())
                .and_then(|i| i.id(column))
        {
            effects.barrier = Some((table, column, id));
        }
        if let Some((entity, queue_id, _)) = fanout::request(change) {
            effects.requests.push((entity, queue_id));
        }
    }
    let mut queries = Vec::new();
    for target in targets {
        match target {
            Target::Key(e, k) => {
                effects.keys.insert((e, k));
            }
            other => queries.push(other),
        }
    }
    let mut backoff = Duration::from_millis(50);
    while !queries.is_empty() {
        match expand(pool, &queries).await {
            Ok(found) => {
                effects.keys.extend(found);
                break;
            }
            Err(e) if crate::retry::mariadb_idempotent(&e) => {
                tracing::warn!(error = %e, "finding the documents of a rename failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(BinlogError::Expand(e.to_string())),
        }
    }
    Ok(effects)
}

/// Takes one transaction in: its documents into the tracker.
async fn take_in(inner: &Inner, generation: u64, t: Transaction) {
    if let Some(ddl) = &t.ddl {
        tracing::info!(statement = %ddl, "DDL in the binlog");
    }
    if let Some(m) = inner.metrics.get() {
        m.binlog_read(t.events, t.bytes, t.committed, t.gtid.sequence);
    }
    let effects = match effects(&inner.pool, &t).await {
        Ok(effects) => effects,
        Err(e) => {
            tracing::error!(error = %e, "binlog capture stopped");
            inner.lock().fatal = Some(e);
            return;
        }
    };
    let mut s = inner.lock();
    if s.generation != generation {
        return;
    }
    let seq = s.tracker.next_seq();
    s.tracker.record(t.position, t.read_at, effects.keys);
    if effects.barrier.is_some() {
        s.barrier = effects.barrier;
    }
    if !effects.requests.is_empty() {
        s.queue_entries.insert(seq, effects.requests);
    }
}

/// The documents changed by the transactions after `from` up to `to` (used when switching
/// back to trigger capture: they are queued). Reads as a replica, like the source.
pub(crate) async fn changed_keys(
    config: &crate::config::Config,
    pool: &MySqlPool,
    from: GtidPosition,
    to: GtidPosition,
) -> Result<BTreeSet<(Entity, u64)>, SyncError> {
    let mut keys = BTreeSet::new();
    if from.covers(&to) {
        return Ok(keys);
    }
    let reader = Reader {
        opts: config.mariadb.replication_options(),
        endpoint: config.mariadb.endpoint(),
        database: config.mariadb.database().to_owned(),
        server_id: replica_server_id(),
    };
    let (tx, mut rx) = mpsc::channel::<Received>(4096);
    let consume = async {
        while let Some(received) = rx.recv().await {
            if let Received::Transaction(t) = received {
                keys.extend(effects(pool, &t).await?.keys);
                if t.position.covers(&to) {
                    return Ok::<_, BinlogError>(());
                }
            }
        }
        Ok(())
    };
    let read = async move {
        let tx = tx;
        reader.follow(from, &tx).await
    };
    tokio::select! {
        done = consume => done?,
        failed = read => {
            failed?;
        }
    }
    Ok(keys)
}

/// The documents of the fan-outs that need a query.
async fn expand(pool: &MySqlPool, targets: &[Target]) -> Result<Vec<(Entity, u64)>, sqlx::Error> {
    let mut found = Vec::new();
    let list = |f: fn(&Target) -> Option<u64>| -> String {
        targets
            .iter()
            .filter_map(f)
            .map(|id| id.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let products = list(|t| match t {
        Target::OrdersOfProduct(id) => Some(*id),
        _ => None,
    });
    let services = list(|t| match t {
        Target::OrdersOfService(id) => Some(*id),
        _ => None,
    });
    let categories = list(|t| match t {
        Target::CategorySubtree(id) => Some(*id),
        _ => None,
    });
    // The lists are numbers: safe to inline.
    if !products.is_empty() || !services.is_empty() {
        let orders: Vec<u64> = sqlx::query_scalar(&format!(
            "SELECT DISTINCT order_id FROM Order_Items WHERE product_id IN ({p}) OR service_id IN ({s})",
            p = if products.is_empty() { "NULL" } else { &products },
            s = if services.is_empty() { "NULL" } else { &services },
        ))
        .fetch_all(pool)
        .await?;
        found.extend(orders.into_iter().map(|o| (Entity::Orders, o)));
    }
    if !categories.is_empty() {
        let rows: Vec<(i64, u64)> = sqlx::query_as(&format!(
            "WITH RECURSIVE subtree (id, depth) AS ( \
               SELECT category_id, 1 FROM Categories WHERE category_id IN ({categories}) \
               UNION ALL \
               SELECT c.category_id, s.depth + 1 FROM Categories c JOIN subtree s ON c.parent_id = s.id \
               WHERE s.depth < 64) \
             SELECT 0, p.product_id FROM Products p JOIN subtree s ON p.category_id = s.id \
             UNION ALL SELECT 1, v.service_id FROM Services v JOIN subtree s ON v.category_id = s.id"
        ))
        .fetch_all(pool)
        .await?;
        found.extend(rows.into_iter().map(|(kind, id)| {
            let e = if kind == 0 {
                Entity::Products
            } else {
                Entity::Services
            };
            (e, id)
        }));
    }
    Ok(found)
}

/// Stores the checkpoint whenever it moved (at most every [`CHECKPOINT_EVERY`]).
async fn store_forever(inner: Arc<Inner>) {
    let mut last = None;
    loop {
        let _ = tokio::time::timeout(CHECKPOINT_EVERY, inner.settled.notified()).await;
        if let Err(e) = store_checkpoint(&inner, &mut last).await {
            tracing::warn!(error = %e, "storing the binlog position failed; retrying");
        }
        tokio::time::sleep(CHECKPOINT_EVERY).await;
    }
}

/// Stores the checkpoint if it differs from `last`; on a changed epoch, starts the reader
/// over from the stored position. Then deletes the queue entries the position passed.
async fn store_checkpoint(inner: &Inner, last: &mut Option<GtidPosition>) -> Result<(), SyncError> {
    let (position, epoch, covered) = {
        let s = inner.lock();
        (s.tracker.checkpoint().clone(), s.epoch, s.tracker.covered())
    };
    if last.as_ref() == Some(&position) {
        // Stored already and still current.
        if let Some(m) = inner.metrics.get() {
            m.binlog_stored();
        }
        return Ok(());
    }
    let checkpoint_err =
        |e: CheckpointError| SyncError::from(BinlogError::Checkpoint(e.to_string()));
    let lease = (inner.lease.term(), inner.lease.holder());
    let advanced = checkpoint::advance(&inner.mongo, &inner.database, epoch, lease, &position)
        .await
        .map_err(checkpoint_err)?;
    if advanced == checkpoint::Advanced::LeaseLost {
        inner.lease.mark_lost();
        let e = inner.lease.not_leader();
        inner.lock().fatal.get_or_insert(e.clone());
        return Err(e.into());
    }
    if advanced == checkpoint::Advanced::NewEpoch {
        let stored = checkpoint::load(&inner.mongo, &inner.database)
            .await
            .map_err(checkpoint_err)?
            .ok_or_else(|| BinlogError::NoPosition {
                database: inner.database.clone(),
            })?;
        {
            let mut s = inner.lock();
            s.tracker = Tracker::new(stored.position);
            s.generation += 1;
            s.epoch = stored.epoch;
            s.queue_entries.clear();
        }
        *last = None;
        inner.restart.notify_one();
        return Ok(());
    }
    *last = Some(position);
    if let Some(m) = inner.metrics.get() {
        m.binlog_stored();
    }
    let deletable = {
        let mut s = inner.lock();
        if s.shadow || !s.capture_confirmed {
            // Beside trigger capture (or not yet known not to be): the queues are theirs.
            return Ok(());
        }
        let passed: Vec<u64> = s.queue_entries.range(..covered).map(|(k, _)| *k).collect();
        for seq in passed {
            if let Some(ids) = s.queue_entries.remove(&seq) {
                s.deletable.extend(ids);
            }
        }
        std::mem::take(&mut s.deletable)
    };
    for entity in Entity::ALL {
        let ids: Vec<String> = deletable
            .iter()
            .filter(|(e, _)| *e == entity)
            .map(|(_, id)| id.to_string())
            .collect();
        for chunk in ids.chunks(1_000) {
            // Ids are numbers: safe to inline.
            let deleted = sqlx::query(&format!(
                "DELETE FROM {} WHERE queue_id IN ({})",
                entity.queue_table(),
                chunk.join(",")
            ))
            .execute(&inner.pool)
            .await;
            if let Err(source) = deleted {
                // Kept for the next try (an entry left behind would show as pending).
                inner.lock().deletable.extend(deletable);
                return Err(SyncError::MariaDb {
                    step: "deleting applied queue entries",
                    source,
                });
            }
        }
    }
    Ok(())
}

#[async_trait]
impl Source for BinlogSource {
    async fn claim(
        &self,
        entity: Entity,
        limit: u32,
    ) -> Result<Option<Box<dyn ClaimedBatch>>, SyncError> {
        let inner = &self.inner;
        if !inner.lease.is_held() {
            return Err(inner.lease.not_leader().into());
        }
        let (claimed, generation, barrier, shadow) = {
            let mut s = inner.lock();
            if let Some(e) = &s.fatal {
                return Err(e.clone().into());
            }
            let claimed = s.tracker.claim(entity, limit as usize, Instant::now());
            (claimed, s.generation, s.barrier, s.shadow)
        };
        let Some(claimed) = claimed else {
            return Ok(None);
        };
        let mut batch = Batch {
            inner: inner.clone(),
            generation,
            entity,
            keys: claimed.keys,
            writes: Vec::new(),
            unreadable: Vec::new(),
            conn: None,
            oldest_read_at: claimed.oldest_read_at,
            claimed_at: Instant::now(),
            finished: false,
        };
        let db_err = |step| move |source| SyncError::MariaDb { step, source };
        let mut conn = inner.pool.acquire().await.map_err(db_err("connecting"))?;
        // The last transaction read made visible (see `visible`), then the handoff row in
        // share mode for the batch (none while a migration runs): one round trip unless
        // another transaction holds that last row.
        let handoff_sql = format!(
            "SET TRANSACTION ISOLATION LEVEL READ COMMITTED; START TRANSACTION; {}",
            crate::handoff::CLAIM_HANDOFF
        );
        let results = match barrier {
            Some(barrier) => {
                let both = format!("{}; {handoff_sql}", visibility_sql(barrier));
                match sqlx::Executor::fetch_all(&mut *conn, both.as_str()).await {
                    Err(e) if is_lock_wait(&e) => {
                        visible(&mut conn, barrier).await?;
                        sqlx::Executor::fetch_all(&mut *conn, handoff_sql.as_str()).await
                    }
                    other => other,
                }
            }
            None => sqlx::Executor::fetch_all(&mut *conn, handoff_sql.as_str()).await,
        }
        .map_err(db_err("taking the handoff row"))?;
        batch.conn = Some(conn);
        // The handoff row has three columns (the visibility read's has one).
        let Some(handoff) = results.iter().find(|r| sqlx::Row::len(*r) == 3) else {
            tracing::debug!(%entity, "an initial migration is running: sync paused");
            batch.give_back().await;
            return Ok(None);
        };
        let capture: Option<String> =
            sqlx::Row::try_get(handoff, 1).map_err(db_err("reading the capture"))?;
        let confirmed = capture.as_deref() == Some("binlog");
        inner.lock().capture_confirmed = confirmed;
        if !confirmed && !shadow {
            batch.give_back().await;
            return Err(SyncError::CaptureMismatch {
                database: inner.database.clone(),
                capture: capture.unwrap_or_default(),
                mine: "binlog",
            });
        }
        let keys: Vec<u64> = batch.keys.iter().map(|k| k.0).collect();
        let (writes, unreadable) =
            super::reread::writes(&inner.pool, &inner.mongo, entity, &keys).await?;
        batch.writes = writes;
        batch.unreadable = unreadable;
        Ok(Some(Box::new(batch)))
    }

    async fn backlog(&self, entity: Entity) -> Result<Backlog, SyncError> {
        let behind = self.behind().await?;
        let waiting = self.inner.lock().tracker.waiting(entity, Instant::now());
        let dead: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM sync_dead_letters WHERE queue = ?")
                .bind(entity.queue_table())
                .fetch_one(&self.inner.pool)
                .await
                .map_err(|source| SyncError::MariaDb {
                    step: "counting dead letters",
                    source,
                })?;
        Ok(Backlog {
            pending: waiting.keys + u64::from(behind),
            parked: waiting.parked,
            next_retry_in: waiting.next_retry_in,
            oldest_age: waiting.oldest_age,
            dead_letters: dead.max(0) as u64,
        })
    }
}

impl BinlogSource {
    /// Waits until the reader has read what the server had written when it was called (e.g.
    /// before measuring: the stream is connected and caught up); fails after `within`.
    pub async fn wait_caught_up(&self, within: Duration) -> Result<(), SyncError> {
        let target = server_position(&self.inner.pool).await?;
        let deadline = Instant::now() + within;
        loop {
            {
                let s = self.inner.lock();
                if let Some(e) = &s.fatal {
                    return Err(e.clone().into());
                }
                let latest = s.tracker.latest();
                if latest.covers(&target.within_domains_of(latest)) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(BinlogError::Silent {
                    endpoint: self.inner.endpoint.clone(),
                    seconds: within.as_secs(),
                }
                .into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// True while the reader has not reached a position the server had written: the first
    /// call notes the server's position, later ones say whether the reader reached it.
    async fn behind(&self) -> Result<bool, SyncError> {
        let target = self.inner.lock().catch_up.clone();
        let target = match target {
            Some(t) => t,
            None => server_position(&self.inner.pool).await?,
        };
        let mut s = self.inner.lock();
        if let Some(e) = &s.fatal {
            return Err(e.clone().into());
        }
        // Only the domains the reader follows: a node's own domain (Galera writes that do
        // not replicate) is in no other node's binlog.
        let latest = s.tracker.latest();
        let reached = latest.covers(&target.within_domains_of(latest));
        s.catch_up = (!reached).then_some(target);
        Ok(!reached)
    }
}

/// The server's binlog position now (`@@gtid_binlog_pos`), read through `conn` (a pool, or
/// a transaction's connection).
pub(crate) async fn server_position<'c>(
    conn: impl sqlx::Executor<'c, Database = MySql>,
) -> Result<GtidPosition, SyncError> {
    let text: String = sqlx::query_scalar("SELECT @@gtid_binlog_pos")
        .fetch_one(conn)
        .await
        .map_err(|source| SyncError::MariaDb {
            step: "reading the binlog position",
            source,
        })?;
    Ok(text
        .parse()
        .map_err(|e: gtid::BadPosition| BinlogError::Checkpoint(e.to_string()))?)
}

/// A batch of keys claimed from the tracker.
struct Batch {
    inner: Arc<Inner>,
    generation: u64,
    entity: Entity,
    /// `(key, failed attempts so far)`.
    keys: Vec<(u64, u32)>,
    writes: Vec<Write>,
    unreadable: Vec<Refused>,
    /// The transaction holding the handoff row.
    conn: Option<PoolConnection<MySql>>,
    oldest_read_at: Instant,
    claimed_at: Instant,
    finished: bool,
}

impl Batch {
    /// Rolls back and makes the keys claimable again.
    async fn give_back(&mut self) {
        if let Some(mut conn) = self.conn.take()
            && execute_script(&mut conn, "ROLLBACK").await.is_err()
        {
            conn.close_on_drop();
        }
        self.release();
    }

    fn release(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let mut s = self.inner.lock();
        if s.generation == self.generation {
            s.tracker
                .release(self.entity, self.keys.iter().map(|k| k.0));
        }
    }

    async fn record(
        &mut self,
        failed: &[Refused],
        policy: RetryPolicy,
    ) -> Result<Acknowledged, SyncError> {
        let reasons = super::failed_keys(failed, &self.unreadable);
        let sorted = Sorted::new(
            self.keys
                .iter()
                .map(|&(key, attempts)| ((key, attempts), key, attempts)),
            &reasons,
            policy,
        );
        let error = sorted.summary(&reasons);
        let Sorted { done, retry, dead } = sorted;
        let queue = self.entity.queue_table();
        let mut script = String::new();
        for ((key, attempts), reason) in &dead {
            tracing::warn!(queue, key, attempts = attempts + 1, %reason, "change moved to sync_dead_letters");
            script.push_str(&format!(
                "INSERT INTO sync_dead_letters (queue, entity_key, operation, source_table, changed_at, attempts, error) \
                 VALUES ('{queue}', {key}, 'update', 'binlog', NOW(6), {}, {}); ",
                attempts + 1,
                sql_literal(reason)
            ));
        }
        let written = self.writes.len().saturating_sub(reasons.len());
        script.push_str(&super::queue::lineage_row_sql(&super::queue::LineageRow {
            run_id: &self.inner.run_id,
            sources: self.entity.sources(),
            target: &format!(
                "mongodb:{}.{}",
                self.inner.mongo.name(),
                self.entity.collection()
            ),
            read: self.keys.len(),
            written,
            rejected: dead.len(),
            micros: self.claimed_at.elapsed().as_micros(),
            error: error.as_deref(),
        }));
        script.push_str("; COMMIT");
        let conn = self
            .conn
            .as_mut()
            .expect("a batch holds its connection until it finishes");
        execute_script(conn, &script)
            .await
            .map_err(|source| SyncError::MariaDb {
                step: "recording the batch",
                source,
            })?;
        self.conn = None;
        self.finished = true;
        let applied = done.len() as u64;
        let dead_lettered = dead.len() as u64;
        let retried = retry.len() as u64;
        {
            let mut s = self.inner.lock();
            if s.generation == self.generation {
                let settled = done.iter().chain(dead.iter().map(|d| &d.0)).map(|k| k.0);
                let retry = retry.into_iter().map(|((key, _), _, delay)| (key, delay));
                s.tracker
                    .settle(self.entity, settled, retry, Instant::now());
            }
        }
        self.inner.settled.notify_one();
        Ok(Acknowledged {
            applied,
            retried,
            dead_lettered,
        })
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        // Not finished (the task was aborted): close the connection (the server rolls back)
        // and make the keys claimable again.
        if let Some(conn) = self.conn.as_mut() {
            conn.close_on_drop();
        }
        self.release();
    }
}

#[async_trait]
impl ClaimedBatch for Batch {
    fn collection(&self) -> &str {
        self.entity.collection()
    }

    fn writes(&self) -> &[Write] {
        &self.writes
    }

    fn changes(&self) -> u64 {
        self.keys.len() as u64
    }

    fn lag_seconds(&self) -> f64 {
        self.oldest_read_at.elapsed().as_secs_f64()
    }

    async fn acknowledge(
        mut self: Box<Self>,
        failed: Vec<Refused>,
        policy: RetryPolicy,
    ) -> Result<Acknowledged, SyncError> {
        let result = self.record(&failed, policy).await;
        if result.is_err() {
            self.give_back().await;
        }
        result
    }

    async fn abandon(mut self: Box<Self>) {
        self.give_back().await;
    }
}
