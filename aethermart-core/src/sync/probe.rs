//! Looking at the sync from outside: each queue's state ([`queue_status`], `aethermart sync
//! status`) and the end-to-end latency right now ([`measure_latency`], `aethermart sync probe`).

use super::SyncError;
use crate::projection::{Entity, document};
use mongodb::bson::doc;
use serde::Serialize;
use std::time::Duration;

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
pub async fn queue_status(pool: &sqlx::MySqlPool) -> Result<Vec<QueueStatus>, SyncError> {
    let mut out = Vec::new();
    for entity in Entity::ALL {
        let queue = entity.queue_table();
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
