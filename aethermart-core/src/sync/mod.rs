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
//! The loop owns the policy, whatever the source: a change whose document keeps failing is
//! retried later ([`RetryPolicy`]) and moves to the dead letters after
//! [`SyncOptions::max_attempts`], so it stops blocking the others; transient failures (MariaDB
//! deadlock, lock wait, lost connection; MongoDB network errors, see [`crate::retry`]) are
//! retried with a backoff. While an initial migration runs, workers pause: the migration holds
//! a lock they check.
//!
//! Documents are built by [`crate::projection`], the same code the migration uses.

#[cfg(feature = "cli")]
mod args;
pub mod binlog;
pub mod capture;
mod http;
pub mod leadership;
mod metrics;
mod mongo_sink;
mod operator;
pub mod predicate;
mod probe;
mod queue;
mod reread;
mod reviews;
mod status_page;
mod syncer;
#[cfg(test)]
mod tests;

#[cfg(feature = "cli")]
pub use args::SyncArgs;
pub use binlog::{BinlogError, BinlogSource};
pub use capture::Capture;
pub use http::{HEALTHY_POLL_AGE, Probes, READY_WRITE_WINDOW, serve_http};
pub use leadership::{Candidate, Lease};
pub use metrics::{Leadership, QueueLine, RecentError, Sample, Snapshot, SyncMetrics};
pub use mongo_sink::MongoSink;
pub use operator::{
    DeadLetter, DeadLetters, OperatorError, RESYNC_CHUNK, Resolution, ResyncKeys, dead_letters,
    request_resync, resolve_dead_letters,
};
pub use probe::{
    BinlogStatus, LeaderStatus, ProbeError, QueueStatus, StreamStatus, WorkerStatus, binlog_status,
    measure_latency, queue_status, stream_status,
};
pub use queue::QueueSource;
pub use reviews::{REVIEW_STREAM, ReviewFollower, ReviewStreamError};
pub use syncer::{SyncReport, Syncer};

use crate::mongo_write::CommandError;
use crate::projection::{Entity, LookupError, ReadError, Refused};
use async_trait::async_trait;
use mongodb::bson::Document;
use serde::Serialize;
use std::collections::BTreeMap;
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
    /// Records the outcome: the changes of the keys in `failed` failed once more, and `policy`
    /// decides, per change and from its earlier attempts, whether it is retried later or
    /// dead-lettered; all other claimed changes are done. Keys whose document the source
    /// could not build count as failed too.
    async fn acknowledge(
        self: Box<Self>,
        failed: Vec<Refused>,
        policy: RetryPolicy,
    ) -> Result<Acknowledged, SyncError>;
    /// Gives the batch back untouched (e.g. the sink is unreachable).
    async fn abandon(self: Box<Self>);
}

/// What a source still holds for one entity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Changes queued, parked ones included.
    pub pending: u64,
    /// Changes parked until a later retry (not claimable now).
    pub parked: u64,
    /// How long until the first parked change may be retried (none when nothing is parked).
    pub next_retry_in: Option<Duration>,
    /// Age of the oldest change queued, parked ones included (none when nothing is queued).
    pub oldest_age: Option<Duration>,
    /// Changes of this entity given up on (in the dead letters).
    pub dead_letters: u64,
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
    /// What is still queued for `entity`, and how much of it waits for a later retry.
    async fn backlog(&self, entity: Entity) -> Result<Backlog, SyncError>;
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
    /// Attempts before a failing change moves to the dead letters.
    pub max_attempts: u32,
    /// [`Syncer::drain`] waits for a parked change only if it becomes due within this time;
    /// changes parked longer are reported ([`SyncReport::parked`]) and left queued.
    pub drain_wait: Duration,
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
            drain_wait: Duration::from_secs(10),
        }
    }
}

impl SyncOptions {
    /// MariaDB connections a worker following `queues` queues needs: per lane, the claim's
    /// transaction and two concurrent reads.
    pub fn pool_size(&self, queues: usize) -> u32 {
        (queues * self.lanes.max(1) * 3 + 2) as u32
    }

    /// The policy for changes whose document failed.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts.max(1),
        }
    }
}

/// What happens to a change whose document failed (it could not be built, or the sink refused
/// it): the loop decides, every source records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Failed attempts after which a change is dead-lettered (at least 1).
    pub max_attempts: u32,
}

/// The decision for one failed change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Claim it again after this delay.
    RetryAfter(Duration),
    /// Move it to the dead letters: it stops blocking the others.
    DeadLetter,
}

/// The keys of a batch that failed, with why: refused by the sink or unreadable.
pub(crate) fn failed_keys(refused: &[Refused], unreadable: &[Refused]) -> BTreeMap<u64, String> {
    refused
        .iter()
        .chain(unreadable)
        .filter_map(|r| Some((u64::try_from(r.key).ok()?, r.reason.clone())))
        .collect()
}

/// A batch's entries sorted by what their acknowledgement does with them (both sources).
pub(crate) struct Sorted<'a, T> {
    /// Written: done with.
    pub done: Vec<T>,
    /// Failed, to be tried again after the delay.
    pub retry: Vec<(T, &'a str, Duration)>,
    /// Failed for the last time: to the dead letters.
    pub dead: Vec<(T, &'a str)>,
}

impl<'a, T> Sorted<'a, T> {
    /// Sorts `entries` (`(entry, key, earlier failed attempts)`) by `failed` (the keys that
    /// failed, see [`failed_keys`]) and `policy`.
    pub(crate) fn new(
        entries: impl IntoIterator<Item = (T, u64, u32)>,
        failed: &'a BTreeMap<u64, String>,
        policy: RetryPolicy,
    ) -> Self {
        let mut sorted = Self {
            done: Vec::new(),
            retry: Vec::new(),
            dead: Vec::new(),
        };
        for (entry, key, attempts) in entries {
            match failed.get(&key) {
                None => sorted.done.push(entry),
                Some(reason) => match policy.after_failure(attempts) {
                    Disposition::DeadLetter => sorted.dead.push((entry, reason)),
                    Disposition::RetryAfter(delay) => sorted.retry.push((entry, reason, delay)),
                },
            }
        }
        sorted
    }

    /// The batch's error for its lineage row: how many failed, and the first key's reason.
    pub(crate) fn summary(&self, failed: &BTreeMap<u64, String>) -> Option<String> {
        failed.iter().next().map(|(key, reason)| {
            format!(
                "{} changes failed ({} dead-lettered); key {key}: {reason}",
                self.retry.len() + self.dead.len(),
                self.dead.len()
            )
        })
    }
}

impl RetryPolicy {
    /// Longest wait before a failed change is retried.
    pub const MAX_DELAY: Duration = Duration::from_secs(60);

    /// The decision for a change that failed once more after `earlier` failed attempts: the
    /// delay doubles with the attempts (0.2 s, 0.4 s, 0.8 s, … at most a minute) until the
    /// attempts reach `max_attempts`.
    pub fn after_failure(&self, earlier: u32) -> Disposition {
        if earlier.saturating_add(1) >= self.max_attempts {
            Disposition::DeadLetter
        } else {
            let millis = (100u64 << (earlier + 1).min(9)).min(Self::MAX_DELAY.as_millis() as u64);
            Disposition::RetryAfter(Duration::from_millis(millis))
        }
    }
}

/// Why syncing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// A store could not be reached at start.
    #[error(transparent)]
    Connect(#[from] crate::connect::ConnectError),
    /// A MariaDB statement of the source failed (claiming, recording).
    #[error("{step} failed: {source}")]
    MariaDb {
        /// What was being done.
        step: &'static str,
        /// The server's error.
        #[source]
        source: sqlx::Error,
    },
    /// Reading the changed rows failed, or one of them cannot become a document.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Reading the category paths or ratings failed.
    #[error("reading lookups failed: {0}")]
    Lookups(#[source] LookupError),
    /// MongoDB failed a write command as a whole (not a per-document refusal).
    #[error("writing to MongoDB collection {collection} failed: {source}")]
    MongoDb {
        /// The collection.
        collection: String,
        /// The command's failure.
        #[source]
        source: CommandError,
    },
    /// MongoDB refused the whole batch for a reason that lies in its documents (too large,
    /// invalid field names, …): the documents are then written one by one.
    #[error("MongoDB refused a batch for {collection}: {source}")]
    MongoDbRefused {
        /// The collection.
        collection: String,
        /// The command's failure.
        #[source]
        source: CommandError,
    },
    /// A sink of another kind failed.
    #[error("the sink failed: {source}")]
    Sink {
        /// Whether retrying may succeed.
        transient: bool,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The database's capture is not this worker's (it was switched, or the worker was
    /// started with the other one): the worker stops rather than write beside the other.
    #[error(
        "the capture of database {database} is {capture:?}, not {mine}: this worker stops; start \
         the worker without --capture (it follows the database's setting) or switch with \
         `aethermart capture set {mine}`"
    )]
    CaptureMismatch {
        /// The database.
        database: String,
        /// Its capture.
        capture: String,
        /// This worker's.
        mine: &'static str,
    },
    /// Binlog capture failed.
    #[error(transparent)]
    Binlog(#[from] BinlogError),
    /// A worker task stopped unexpectedly.
    #[error("a sync task stopped unexpectedly: {0}")]
    Task(#[source] tokio::task::JoinError),
}

impl SyncError {
    /// True when retrying the same work may succeed (see [`crate::retry`]).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::MariaDb { source, .. } | Self::Read(ReadError::Query { source, .. }) => {
                crate::retry::mariadb_idempotent(source)
            }
            Self::MongoDb { source, .. } => source.is_retryable(),
            Self::Sink { transient, .. } => *transient,
            Self::Binlog(e) => e.is_transient(),
            Self::Lookups(_) | Self::Connect(_) => true,
            _ => false,
        }
    }

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
        matches!(self, Self::Read(e) if e.is_row_fault())
    }
}
