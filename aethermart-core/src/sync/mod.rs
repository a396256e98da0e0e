//! Real-time sync MariaDB → MongoDB (the original `sync.sql` + `mongo_sync_worker.py`, made
//! correct under concurrency and failure).
//!
//! Capture is in the database (`sql/0005_sync_capture.sql`): triggers append the key of every
//! affected document to its collection's queue in the same transaction as the change. The
//! [`Syncer`] moves changes from a [`Source`] to a [`Sink`]:
//!
//! 1. the source claims a batch of queued changes ([`QueueSource`]: `SELECT … FOR UPDATE SKIP
//!    LOCKED`, so several workers share a queue), coalesces them per key, takes a per-key lock
//!    (one worker per key at a time) and re-reads the *current* rows, so each key becomes one
//!    [`Write`] carrying the latest committed state (or a delete when the row is gone);
//! 2. the sink applies the writes of a collection idempotently ([`MongoSink`]: one unordered
//!    `update` command of upserts and one `delete` command, majority write concern);
//! 3. only then the source removes the applied queue rows ([`ClaimedBatch::acknowledge`]).
//!
//! Guarantees: at-least-once delivery plus an idempotent sink give an exactly-once effect; per
//! key, the document ends equal to the last committed row, whatever the order of the events.
//! A change whose document keeps failing moves to `sync_dead_letters` after
//! [`SyncOptions::max_attempts`] and stops blocking the others. Transient failures (MariaDB
//! deadlock, lock wait, lost connection; MongoDB network errors) are retried with backoff.
//! While an initial migration runs, workers pause: the migration holds a lock they check.

mod metrics;
mod mongo_sink;
mod queue;
mod syncer;

pub use metrics::{SyncMetrics, serve_metrics};
pub use mongo_sink::MongoSink;
pub use queue::QueueSource;
pub use syncer::{SyncReport, Syncer};

use crate::migrate::Entity;
use async_trait::async_trait;
use mongodb::bson::Document;
use serde::Serialize;
use std::time::Duration;

/// What a sink must make true for one document.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    /// Upsert by merging these fields (`$set`): fields the source does not own survive (the
    /// customer profile's preferences).
    Merge(Document),
    /// Upsert the whole document (replacement).
    Replace(Document),
    /// The source row is gone: delete the document (a missing document is fine).
    Delete,
}

/// The latest state of one document, keyed by `_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    /// The document's `_id` (the row's key).
    pub key: i64,
    /// What to do.
    pub op: WriteOp,
}

/// A document the sink refused (it will be retried, then dead-lettered), with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refused {
    /// The document's `_id`.
    pub key: i64,
    /// Why.
    pub reason: String,
}

/// What acknowledging a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Acknowledged {
    /// Queue entries removed because their document was written.
    pub applied: u64,
    /// Queue entries kept for a later retry (their document failed).
    pub retried: u64,
    /// Queue entries moved to the dead-letter table.
    pub dead_lettered: u64,
}

/// A claimed batch: the writes to apply, held until acknowledged. Dropping it without
/// acknowledging returns every change to the queue (nothing is lost, nothing half-applied).
#[async_trait]
pub trait ClaimedBatch: Send {
    /// The collection the writes go to.
    fn collection(&self) -> &str;
    /// One write per changed key, with the key's latest state.
    fn writes(&self) -> &[Write];
    /// Queue entries claimed (≥ the number of writes: changes are coalesced per key).
    fn changes(&self) -> u64;
    /// Seconds from the oldest claimed change's commit to now.
    fn lag_seconds(&self) -> f64;
    /// Records the outcome: entries of the keys in `failed` are kept for a retry (or
    /// dead-lettered after too many attempts), all other claimed entries are removed.
    async fn acknowledge(self: Box<Self>, failed: Vec<Refused>) -> Result<Acknowledged, SyncError>;
    /// Gives the batch back untouched (e.g. the sink is unreachable).
    async fn abandon(self: Box<Self>);
}

/// Where changes come from.
///
/// Contract: at-least-once. A change is handed out until a batch containing it is
/// acknowledged; a key is in at most one claimed batch at a time; the state in a batch was
/// read after every change it contains had committed.
#[async_trait]
pub trait Source: Send + Sync {
    /// Claims up to `limit` pending changes of `entity`, or `None` when none is claimable now
    /// (queue empty, entries waiting for a retry, or the source paused).
    async fn claim(
        &self,
        entity: Entity,
        limit: u32,
    ) -> Result<Option<Box<dyn ClaimedBatch>>, SyncError>;
    /// Entries still queued for `entity` (including those waiting for a retry).
    async fn pending(&self, entity: Entity) -> Result<u64, SyncError>;
}

/// Where changes go.
///
/// Contract: idempotent. Applying the same writes twice leaves the same documents; when `apply`
/// returns, every write not listed as refused is durable. An `Err` means nothing can be
/// assumed about the batch: a transient one ([`SyncError::is_transient`]) is retried whole
/// after a backoff; [`SyncError::MongoDbRefused`] (or a [`SyncError::Sink`] that is not
/// transient) makes the loop write the batch one document at a time, so only the documents at
/// fault are refused; any other error stops the loop (a setup problem such as a revoked
/// privilege must not dead-letter the whole backlog).
#[async_trait]
pub trait Sink: Send + Sync {
    /// Applies `writes` to `collection`.
    async fn apply(&self, collection: &str, writes: &[Write]) -> Result<Vec<Refused>, SyncError>;
}

/// How the loop runs.
#[derive(Debug, Clone, Copy)]
pub struct SyncOptions {
    /// Changes claimed per batch.
    pub batch_size: u32,
    /// Batches of one queue in flight at once in this worker (while one batch is written to
    /// MongoDB, the next is claimed and read). Per-key locks keep them off each other's keys.
    pub lanes: usize,
    /// Wait after a batch that was not full (a full batch re-polls at once).
    pub poll_interval: Duration,
    /// Longest wait while idle: the wait doubles from `poll_interval` up to this.
    pub max_idle_wait: Duration,
    /// First backoff after a transient error (doubles, up to `max_backoff`).
    pub backoff: Duration,
    /// Longest backoff.
    pub max_backoff: Duration,
    /// Attempts before a failing change moves to `sync_dead_letters`.
    pub max_attempts: u32,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            batch_size: 500,
            lanes: 2,
            poll_interval: Duration::from_millis(2),
            max_idle_wait: Duration::from_millis(100),
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_attempts: 5,
        }
    }
}

impl SyncOptions {
    /// MariaDB connections a worker following `queues` queues needs: per lane, the claim's
    /// transaction and two concurrent reads.
    pub fn pool_size(&self, queues: usize) -> u32 {
        (queues * self.lanes.max(1) * 3 + 2) as u32
    }
}

/// Why syncing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// A store could not be reached at start.
    #[error(transparent)]
    Connect(#[from] crate::connect::ConnectError),
    /// A MariaDB statement failed.
    #[error("{step} failed: {source}")]
    MariaDb {
        /// What was being done.
        step: &'static str,
        /// The server's error.
        #[source]
        source: sqlx::Error,
    },
    /// Reading the category paths or ratings failed.
    #[error("reading lookups failed: {0}")]
    Lookups(String),
    /// MongoDB failed as a whole (not a per-document refusal).
    #[error("writing to MongoDB collection {collection} failed: {reason}")]
    MongoDb {
        /// The collection.
        collection: String,
        /// Whether retrying may succeed (network, election, write concern).
        transient: bool,
        /// The driver's message.
        reason: String,
    },
    /// MongoDB refused the whole batch for a reason that lies in its documents (too large,
    /// invalid field names, …): the documents are then written one by one.
    #[error("MongoDB refused a batch for {collection} (code {code}): {reason}")]
    MongoDbRefused {
        /// The collection.
        collection: String,
        /// MongoDB's error code.
        code: i32,
        /// MongoDB's message.
        reason: String,
    },
    /// A sink of another kind failed.
    #[error("the sink failed: {reason}")]
    Sink {
        /// Whether retrying may succeed.
        transient: bool,
        /// Why.
        reason: String,
    },
    /// The sync probe found a problem.
    #[error("{0}")]
    Probe(String),
    /// A worker task stopped unexpectedly.
    #[error("a sync task stopped unexpectedly: {0}")]
    Task(String),
}

impl SyncError {
    /// True when retrying the same work may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::MariaDb { source, .. } => mariadb_transient(source),
            Self::MongoDb { transient, .. } | Self::Sink { transient, .. } => *transient,
            Self::Lookups(_) | Self::Connect(_) => true,
            Self::Task(_) | Self::MongoDbRefused { .. } | Self::Probe(_) => false,
        }
    }
}

impl SyncError {
    /// True when a sink refused a batch because of the documents in it (see [`Sink`]).
    pub fn is_document_error(&self) -> bool {
        matches!(
            self,
            Self::MongoDbRefused { .. }
                | Self::Sink {
                    transient: false,
                    ..
                }
        )
    }

    /// True when the error comes from one row's values (it cannot become a document), not
    /// from the servers or the setup: such a change is retried, then dead-lettered.
    pub fn is_row_error(&self) -> bool {
        matches!(
            self,
            Self::MariaDb {
                source: sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. },
                ..
            }
        )
    }
}

/// Deadlock (1213, also a Galera certification conflict), lock wait timeout (1205), a Galera
/// node not ready (1047), lost or refused connections, pool timeouts: errors after which the
/// same statement may succeed (on the same node, or on another one a cluster pool moved to).
fn mariadb_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            let code = db
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .map(|m| m.number());
            // 1213 deadlock, 1205 lock wait, 1053/1077/1927 shutdown or killed, 2006/2013 gone,
            // 1040/1203 too many connections, 1047 Galera node not prepared for queries.
            matches!(
                code,
                Some(1213 | 1205 | 1053 | 1077 | 1927 | 2006 | 2013 | 1040 | 1203 | 1047)
            )
        }
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => true,
        _ => false,
    }
}

/// The queue table of an entity's collection.
pub const fn queue_table(entity: Entity) -> &'static str {
    match entity {
        Entity::Customers => "customer_sync_queue",
        Entity::Products => "product_sync_queue",
        Entity::Services => "service_sync_queue",
        Entity::Orders => "order_sync_queue",
    }
}

/// The name of a MariaDB user lock private to `database` (named locks are server-wide and at
/// most 64 characters, so the database name is hashed).
pub(crate) fn lock_name(database: &str, what: &str) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(database.as_bytes());
    let hex: String = hash[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("amt:{hex}:{what}")
}

/// The lock an initial migration holds while it runs; workers pause while it is taken.
pub(crate) fn migration_lock(database: &str) -> String {
    lock_name(database, "migration")
}

/// Where one queue stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueStatus {
    /// The queue table.
    pub queue: &'static str,
    /// The collection it feeds.
    pub collection: &'static str,
    /// Entries waiting (including those waiting for a retry).
    pub pending: u64,
    /// Entries that failed at least once and wait for a retry.
    pub retrying: u64,
    /// Age in seconds of the oldest waiting entry (0 when empty).
    pub oldest_seconds: f64,
    /// Changes of this queue in `sync_dead_letters`.
    pub dead_letters: u64,
}

/// Reads every queue's depth, retries, age and dead letters (`aethermart sync status`).
pub async fn status(pool: &sqlx::MySqlPool) -> Result<Vec<QueueStatus>, SyncError> {
    let mut out = Vec::new();
    for entity in Entity::ALL {
        let queue = queue_table(entity);
        let (pending, retrying, oldest): (i64, Option<rust_decimal::Decimal>, Option<i64>) =
            sqlx::query_as(&format!(
                "SELECT COUNT(*), SUM(attempts > 0), \
                 TIMESTAMPDIFF(MICROSECOND, MIN(changed_at), NOW(6)) FROM {queue}"
            ))
            .fetch_one(pool)
            .await
            .map_err(|source| SyncError::MariaDb {
                step: "reading the queues",
                source,
            })?;
        let dead: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM sync_dead_letters WHERE queue = ?")
                .bind(queue)
                .fetch_one(pool)
                .await
                .map_err(|source| SyncError::MariaDb {
                    step: "reading the dead letters",
                    source,
                })?;
        out.push(QueueStatus {
            queue,
            collection: entity.collection(),
            pending: pending.max(0) as u64,
            retrying: retrying.and_then(|d| u64::try_from(d).ok()).unwrap_or(0),
            oldest_seconds: oldest.unwrap_or(0).max(0) as f64 / 1e6,
            dead_letters: dead.max(0) as u64,
        });
    }
    Ok(out)
}

/// Touches a customer in MariaDB (its `updated_at`, nothing else) and waits until MongoDB's
/// profile shows the new time: the end-to-end latency of the sync right now (a worker must be
/// running). `aethermart sync probe`.
pub async fn probe(
    pool: &sqlx::MySqlPool,
    mongo: &mongodb::Database,
    customer: u64,
    timeout: Duration,
) -> Result<Duration, SyncError> {
    use mongodb::bson::doc;
    let step = |step| move |source| SyncError::MariaDb { step, source };
    let mut tx = pool.begin().await.map_err(step("touching the customer"))?;
    let touched = sqlx::query("UPDATE Customers SET updated_at = NOW(6) WHERE customer_id = ?")
        .bind(customer)
        .execute(&mut *tx)
        .await
        .map_err(step("touching the customer"))?
        .rows_affected();
    if touched == 0 {
        return Err(SyncError::Probe(format!(
            "customer {customer} does not exist"
        )));
    }
    let updated: chrono::NaiveDateTime =
        sqlx::query_scalar("SELECT updated_at FROM Customers WHERE customer_id = ?")
            .bind(customer)
            .fetch_one(&mut *tx)
            .await
            .map_err(step("reading the customer"))?;
    tx.commit().await.map_err(step("committing the touch"))?;
    let committed = std::time::Instant::now();
    let profiles = mongo.collection::<mongodb::bson::Document>(crate::document::CUSTOMER_PROFILES);
    let expected = crate::document::date(updated.and_utc());
    loop {
        let seen = profiles
            .find_one(doc! { "_id": crate::document::key(customer), "updated_at": expected })
            .await
            .map_err(|e| SyncError::Probe(format!("reading the profile failed: {e}")))?;
        if seen.is_some() {
            return Ok(committed.elapsed());
        }
        if committed.elapsed() > timeout {
            return Err(SyncError::Probe(format!(
                "the change did not reach MongoDB within {} s: is aethermart-worker running?",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
