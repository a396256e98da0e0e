//! Looking at the sync from outside: each queue's state ([`queue_status`], `aethermart sync
//! status`) and the end-to-end latency right now ([`measure_latency`], `aethermart sync probe`).

use super::SyncError;
use crate::projection::document;
use mongodb::bson::doc;
use serde::Serialize;
use std::time::Duration;

/// Where one queue stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueStatus {
    /// The queue table.
    pub queue: String,
    /// The collection it feeds.
    pub collection: String,
    /// Entries waiting (including those waiting for a retry).
    pub pending: u64,
    /// Entries that failed at least once and wait for a retry.
    pub retrying: u64,
    /// Entries parked until a later retry (not claimable now).
    pub parked: u64,
    /// Age in seconds of the oldest waiting entry (0 when empty).
    pub oldest_seconds: f64,
    /// Seconds until the next parked entry may be retried (none when nothing is parked).
    pub next_retry_in_seconds: Option<f64>,
    /// Changes of this queue in `sync_dead_letters`.
    pub dead_letters: u64,
}

/// Where a followed change stream stands (`sync_stream_positions`, through `v_sync_streams`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamStatus {
    /// The stream (`reviews`).
    pub stream: String,
    /// Seconds since the newest event whose products were queued.
    pub last_event_seconds_ago: f64,
    /// Events applied since the position was first stored.
    pub events: u64,
    /// Seconds since the position was last stored.
    pub stored_seconds_ago: f64,
}

/// Every followed stream's position (none before a worker first followed one).
pub async fn stream_status(pool: &sqlx::MySqlPool) -> Result<Vec<StreamStatus>, SyncError> {
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT stream, TIMESTAMPDIFF(MICROSECOND, event_time, NOW(6)), CAST(events AS SIGNED), \
         TIMESTAMPDIFF(MICROSECOND, updated_at, NOW(6)) FROM v_sync_streams ORDER BY stream",
    )
    .fetch_all(pool)
    .await
    .map_err(|source| SyncError::MariaDb {
        step: "reading the change streams' positions",
        source,
    })?;
    Ok(rows
        .into_iter()
        .map(|(stream, event, events, stored)| StreamStatus {
            stream,
            last_event_seconds_ago: event.max(0) as f64 / 1e6,
            events: events.max(0) as u64,
            stored_seconds_ago: stored.max(0) as f64 / 1e6,
        })
        .collect())
}

/// Reads every queue's depth, retries, parked entries, age and dead letters (`aethermart sync
/// status`) through the engineer's views (`v_sync_queue_status`, `v_sync_dead_letters`), so
/// reading them takes no lock a worker could wait for.
pub async fn queue_status(pool: &sqlx::MySqlPool) -> Result<Vec<QueueStatus>, SyncError> {
    type Row = (String, String, i64, i64, i64, Option<i64>, Option<i64>, i64);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT s.queue, s.collection, s.pending, s.retrying, s.parked, \
         TIMESTAMPDIFF(MICROSECOND, s.oldest_changed_at, NOW(6)), \
         TIMESTAMPDIFF(MICROSECOND, NOW(6), s.next_retry_at), \
         (SELECT COUNT(*) FROM v_sync_dead_letters d WHERE d.queue = s.queue) \
         FROM v_sync_queue_status s",
    )
    .fetch_all(pool)
    .await
    .map_err(|source| SyncError::MariaDb {
        step: "reading the queues",
        source,
    })?;
    let count = |n: i64| n.max(0) as u64;
    Ok(rows
        .into_iter()
        .map(
            |(queue, collection, pending, retrying, parked, oldest, next, dead)| QueueStatus {
                queue,
                collection,
                pending: count(pending),
                retrying: count(retrying),
                parked: count(parked),
                oldest_seconds: oldest.unwrap_or(0).max(0) as f64 / 1e6,
                next_retry_in_seconds: next.map(|m| m.max(0) as f64 / 1e6),
                dead_letters: count(dead),
            },
        )
        .collect())
}

/// Why measuring the sync latency failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// Touching or reading the customer in MariaDB failed.
    #[error("{step} failed: {source}")]
    MariaDb {
        /// What was being done.
        step: &'static str,
        /// The server's error.
        #[source]
        source: sqlx::Error,
    },
    /// The customer to touch does not exist.
    #[error("customer {0} does not exist")]
    UnknownCustomer(u64),
    /// Reading the profile from MongoDB failed.
    #[error("reading the profile failed: {0}")]
    ReadProfile(#[source] mongodb::error::Error),
    /// The change did not arrive in time.
    #[error("the change did not reach MongoDB within {seconds} s: is aethermart-worker running?")]
    NotArrived {
        /// The timeout.
        seconds: u64,
    },
}

/// Touches a customer in MariaDB (its `updated_at`, nothing else) and waits until MongoDB's
/// profile shows the new time: the end-to-end latency of the sync right now (a worker must be
/// running). `aethermart sync probe`.
pub async fn measure_latency(
    pool: &sqlx::MySqlPool,
    mongo: &mongodb::Database,
    customer: u64,
    timeout: Duration,
) -> Result<Duration, ProbeError> {
    let step = |step| move |source| ProbeError::MariaDb { step, source };
    let mut tx = pool.begin().await.map_err(step("touching the customer"))?;
    let touched = sqlx::query("UPDATE Customers SET updated_at = NOW(6) WHERE customer_id = ?")
        .bind(customer)
        .execute(&mut *tx)
        .await
        .map_err(step("touching the customer"))?
        .rows_affected();
    if touched == 0 {
        return Err(ProbeError::UnknownCustomer(customer));
    }
    let updated: chrono::NaiveDateTime =
        sqlx::query_scalar("SELECT updated_at FROM Customers WHERE customer_id = ?")
            .bind(customer)
            .fetch_one(&mut *tx)
            .await
            .map_err(step("reading the customer"))?;
    tx.commit().await.map_err(step("committing the touch"))?;
    let committed = std::time::Instant::now();
    let profiles = mongo.collection::<mongodb::bson::Document>(document::CUSTOMER_PROFILES);
    let expected = document::date(updated.and_utc());
    loop {
        let seen = profiles
            .find_one(doc! { "_id": document::key(customer), "updated_at": expected })
            .await
            .map_err(ProbeError::ReadProfile)?;
        if seen.is_some() {
            return Ok(committed.elapsed());
        }
        if committed.elapsed() > timeout {
            return Err(ProbeError::NotArrived {
                seconds: timeout.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Where binlog capture stands (`aethermart sync status`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BinlogStatus {
    /// The database's capture.
    pub capture: super::Capture,
    /// The stored position (none before a migration or a switch recorded one).
    pub stored: Option<String>,
    /// Since the stored position was last written.
    pub stored_seconds_ago: Option<f64>,
    /// The server's position (`@@gtid_binlog_pos`; none when it writes no binlog).
    pub server: Option<String>,
    /// Transactions the server wrote after the stored position, every database of the server
    /// counted (0: the capture is caught up).
    pub behind_transactions: Option<u64>,
    /// The worker holding the binlog lease, if any ever did.
    pub leader: Option<LeaderStatus>,
    /// The other binlog workers alive (hot standbys).
    pub standbys: Vec<WorkerStatus>,
}

/// The binlog leader as `aethermart sync status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaderStatus {
    /// Its host.
    pub host: String,
    /// Its pid.
    pub pid: u32,
    /// The lease's term (bumped by every takeover).
    pub term: i64,
    /// When its term began (its clock), RFC 3339.
    pub since: String,
    /// Seconds since its last renewal (by this machine's clock).
    pub renewed_seconds_ago: f64,
    /// The lease's TTL in seconds: a renewal older than that means the leader is gone and a
    /// standby takes over.
    pub ttl_seconds: f64,
    /// The MariaDB server it reads the binlog from.
    pub reading: Option<String>,
    /// It gave the lease up at a clean stop (no leader until a standby takes it).
    pub released: bool,
}

/// A binlog worker that is alive, as `aethermart sync status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerStatus {
    /// Its host.
    pub host: String,
    /// Its pid.
    pub pid: u32,
    /// Seconds since it last showed itself.
    pub seen_seconds_ago: f64,
}

/// The database's capture and, for binlog capture, how far the stored position is behind the
/// server.
pub async fn binlog_status(
    pool: &sqlx::MySqlPool,
    mongo: &mongodb::Database,
    database: &str,
) -> Result<BinlogStatus, SyncError> {
    let capture = super::capture::current(pool).await?;
    let server: Option<String> =
        sqlx::query_scalar("SELECT IF(@@log_bin = 1, CAST(@@gtid_binlog_pos AS CHAR), NULL)")
            .fetch_one(pool)
            .await
            .map_err(|source| SyncError::MariaDb {
                step: "reading the binlog position",
                source,
            })?;
    let stored = crate::binlog_position::store::load(mongo, database)
        .await
        .map_err(|e| super::BinlogError::Checkpoint(e.to_string()))?;
    let behind = match (&stored, server.as_deref().map(str::parse)) {
        (Some(stored), Some(Ok(server))) => Some(stored.position.transactions_before(&server)),
        _ => None,
    };
    let failed = |e: mongodb::error::Error| super::BinlogError::Checkpoint(e.to_string());
    use crate::binlog_position::lease;
    let now_ms = mongodb::bson::DateTime::now().timestamp_millis();
    let ago = |at: mongodb::bson::DateTime| (now_ms - at.timestamp_millis()).max(0) as f64 / 1e3;
    let leader = match lease::read(mongo, database).await.map_err(failed)? {
        lease::Seen::Held(l) => Some(l),
        lease::Seen::Vacant | lease::Seen::NoPosition => None,
    };
    let standbys = lease::present(mongo, database)
        .await
        .map_err(failed)?
        .into_iter()
        .filter(|p| {
            leader
                .as_ref()
                .is_none_or(|l| l.holder != p.id || l.released)
        })
        .map(|p| WorkerStatus {
            host: p.host,
            pid: p.pid,
            seen_seconds_ago: ago(p.seen_at),
        })
        .collect();
    let leader = leader.map(|l| LeaderStatus {
        since: l.since.try_to_rfc3339_string().unwrap_or_default(),
        renewed_seconds_ago: ago(l.renewed_at),
        ttl_seconds: l.ttl_ms as f64 / 1e3,
        host: l.host,
        pid: l.pid,
        term: l.term,
        reading: l.reading,
        released: l.released,
    });
    Ok(BinlogStatus {
        leader,
        standbys,
        capture,
        stored_seconds_ago: stored.as_ref().and_then(|s| s.age).map(|a| a.as_secs_f64()),
        stored: stored.map(|s| s.position.to_string()),
        server,
        behind_transactions: behind,
    })
}
