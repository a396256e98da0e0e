//! Choosing the capture: a property of the database (`sync_settings`, schema version 15), set
//! by the administrator, read by the workers.
//!
//! - [`Capture::Triggers`]: triggers queue the key of every change in the writer's transaction
//!   ([`super::QueueSource`]). Works everywhere, a Galera cluster included.
//! - [`Capture::Binlog`]: the workers follow the binary log ([`super::BinlogSource`]); the
//!   capture triggers are dropped (and would do nothing: they read the setting), so writers
//!   run no trigger for the sync; the stock part of the order-line trigger stays. Switching
//!   back recreates them from the schema script that last restated them.
//!
//! [`switch`] changes it while writes go on, losing no change: it takes the handoff row (so no
//! batch of either capture is in flight) and the setting row (a trigger reads the setting with
//! a shared lock, so the switch waits for every transaction that read the old value). To
//! binlog: it records the current GTID position as where binlog capture starts (a new epoch)
//! and turns the entries the triggers had queued into requests the binlog reader sees. To
//! triggers: it reads the binlog from the stored position and queues the keys of what changed
//! since, in the switch's own transaction. A worker of the other capture stops at its next
//! claim with [`super::SyncError::CaptureMismatch`].

use super::SyncError;
use super::binlog;
use crate::binlog_position::store as checkpoint;
use crate::config::Config;
use crate::projection::Entity;
use sqlx::MySqlPool;
use std::fmt;
use std::str::FromStr;

/// How changes are captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Capture {
    /// Triggers queue the keys in the writer's transaction.
    Triggers,
    /// The workers follow the binary log.
    Binlog,
}

impl Capture {
    /// The name in `sync_settings` and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Triggers => "triggers",
            Self::Binlog => "binlog",
        }
    }
}

impl fmt::Display for Capture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Capture {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "triggers" => Ok(Self::Triggers),
            "binlog" => Ok(Self::Binlog),
            other => Err(format!(
                "unknown capture {other:?}: expected binlog or triggers"
            )),
        }
    }
}

/// The capture of the pool's database.
pub async fn current(pool: &MySqlPool) -> Result<Capture, SyncError> {
    let name: Option<String> = sqlx::query_scalar("SELECT capture FROM sync_settings WHERE id = 1")
        .fetch_optional(pool)
        .await
        .map_err(|source| SyncError::MariaDb {
            step: "reading the capture (sync_settings)",
            source,
        })?;
    Ok(name
        .and_then(|n| n.parse().ok())
        .unwrap_or(Capture::Triggers))
}

/// The capture a worker runs: the database's, refused when the worker was started for the
/// other one (`wanted`).
pub async fn resolve(config: &Config, wanted: Option<Capture>) -> Result<Capture, SyncError> {
    let pool =
        crate::cluster::writable_pool(&config.mariadb, crate::connect::PoolSize { max: 1 }).await?;
    let now = current(&pool).await;
    pool.close().await;
    let now = now?;
    match wanted {
        Some(w) if w != now => Err(SyncError::CaptureMismatch {
            database: config.mariadb.database().to_owned(),
            capture: now.name().to_owned(),
            mine: w.name(),
        }),
        _ => Ok(now),
    }
}

/// What a switch did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Switched {
    /// The capture before.
    pub from: Capture,
    /// The capture now.
    pub to: Capture,
    /// To binlog: where binlog capture starts; to triggers: where the binlog was read to.
    pub position: Option<String>,
    /// Keys queued as requests (entries the triggers had queued, or changes read from the
    /// binlog since the stored position).
    pub requeued: u64,
}

/// Where the capture triggers begin in the script that last restated them.
const CAPTURE_SECTION: &str = "-- ---- capture ----";
/// The schema version whose script holds the capture triggers as they are now (a version that
/// restates them moves this, a unit test checks it).
const CAPTURE_TRIGGERS_VERSION: u32 = 15;

/// The SQL that (re)creates the capture triggers, and their names. Under binlog capture they
/// are dropped: writers then run no trigger at all for the sync (the stock part of the
/// order-line trigger, which is not among them, stays).
fn capture_triggers() -> (&'static str, Vec<&'static str>) {
    let script = crate::schema::VERSIONS
        .iter()
        .find(|v| v.version == CAPTURE_TRIGGERS_VERSION)
        .map_or("", |v| v.sql);
    let section = script.find(CAPTURE_SECTION).map_or("", |at| &script[at..]);
    let names = section
        .match_indices("CREATE OR REPLACE TRIGGER ")
        .filter_map(|(at, m)| section[at + m.len()..].split_whitespace().next())
        .collect();
    (section, names)
}

/// Makes the capture triggers match `capture`: present (recreated, so a switch heals a missing
/// one) for trigger capture, absent for binlog capture. Idempotent.
async fn set_capture_triggers(
    conn: &mut sqlx::MySqlConnection,
    capture: Capture,
) -> Result<usize, sqlx::Error> {
    let (sql, names) = capture_triggers();
    match capture {
        Capture::Triggers => crate::connect::execute_script(conn, sql).await?,
        Capture::Binlog => {
            for name in &names {
                crate::connect::execute_script(conn, &format!("DROP TRIGGER IF EXISTS {name}"))
                    .await?;
            }
        }
    }
    Ok(names.len())
}

/// Switches the capture of `config`'s database to `to` (see the module documentation); `by`
/// names who did it in `sync_settings`. Switching to the capture in place changes nothing.
pub async fn switch(config: &Config, to: Capture, by: &str) -> Result<Switched, SyncError> {
    let db_err = |step: &'static str| move |source| SyncError::MariaDb { step, source };
    let cluster =
        crate::cluster::ClusterPool::connect(&config.mariadb, crate::connect::PoolSize { max: 2 })
            .await?;
    let pool = cluster.pool().clone();
    if to == Capture::Binlog {
        // Every node the reader may follow writes what it reads.
        for node in config.mariadb.nodes() {
            let node_pool =
                crate::connect::node_pool(&node, crate::connect::PoolSize { max: 1 }).await?;
            binlog::check_settings(&node_pool, &node.endpoint()).await?;
        }
    }
    let mongo = crate::connect::mongodb_database(&config.mongodb).await?;
    let mut conn = pool.acquire().await.map_err(db_err("connecting"))?;
    // Trigger capture: the triggers exist before the setting says they work (until then they
    // read `binlog` and do nothing).
    if to == Capture::Triggers {
        set_capture_triggers(&mut conn, Capture::Triggers)
            .await
            .map_err(db_err("creating the capture triggers"))?;
    }
    // The requeue below must see every entry committed before it.
    sqlx::query("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .execute(&mut *conn)
        .await
        .map_err(db_err("starting the switch"))?;
    let switched = record_switch(&mut conn, config, &pool, &mongo, to, by).await?;
    // Binlog capture: the triggers read `binlog` now and do nothing; without them writers run
    // no trigger for the sync at all. Also when the capture was binlog already (a switch that
    // failed after its commit is completed by running it again).
    if to == Capture::Binlog {
        set_capture_triggers(&mut conn, Capture::Binlog)
            .await
            .map_err(db_err(
                "dropping the capture triggers (binlog capture is on; run the switch again)",
            ))?;
    }
    Ok(switched)
}

/// The switch's transaction on `conn`: waits for batches in flight and for transactions that
/// read the old setting, records `to`, and hands what the old capture had pending to the new.
async fn record_switch(
    conn: &mut sqlx::MySqlConnection,
    config: &Config,
    pool: &MySqlPool,
    mongo: &mongodb::Database,
    to: Capture,
    by: &str,
) -> Result<Switched, SyncError> {
    let db_err = |step: &'static str| move |source| SyncError::MariaDb { step, source };
    let database = config.mariadb.database();
    let mut tx = sqlx::Connection::begin(conn)
        .await
        .map_err(db_err("starting the switch"))?;
    // No batch of either capture in flight from here on.
    sqlx::query(crate::handoff::MIGRATION_HANDOFF)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err(
            "taking the handoff row (a migration or a long batch may hold it)",
        ))?;
    // Every transaction that read the old setting has ended once this returns. New writers
    // queue behind this request: it gives up after 5 s rather than hold them longer.
    let from: String =
        sqlx::query_scalar("SELECT capture FROM sync_settings WHERE id = 1 FOR UPDATE WAIT 5")
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err("locking the capture setting"))?;
    let from: Capture = from.parse().unwrap_or(Capture::Triggers);
    if from == to {
        tx.rollback().await.map_err(db_err("ending the switch"))?;
        return Ok(Switched {
            from,
            to,
            position: None,
            requeued: 0,
        });
    }
    sqlx::query(
        "UPDATE sync_settings SET capture = ?, changed_at = NOW(6), changed_by = ? WHERE id = 1",
    )
    .bind(to.name())
    .bind(by)
    .execute(&mut *tx)
    .await
    .map_err(db_err("setting the capture"))?;
    let now = binlog::server_position(&mut *tx).await?;
    let mut requeued = 0;
    // The capture triggers' own entries (named after the table that changed; this crate's
    // table names: safe to inline).
    let captured = binlog::fanout::CAPTURED
        .map(|t| format!("'{t}'"))
        .join(", ");
    match to {
        Capture::Binlog => {
            // What the triggers queued and no worker applied yet: requests the reader sees.
            for entity in Entity::ALL {
                let q = entity.queue_table();
                let moved = sqlx::query(&format!(
                    "INSERT INTO {q} (entity_key, operation, source_table) \
                     SELECT DISTINCT entity_key, 'update', 'capture switch' FROM {q} \
                     WHERE source_table IN ({captured})"
                ))
                .execute(&mut *tx)
                .await
                .map_err(db_err("requeueing the triggers' entries"))?
                .rows_affected();
                sqlx::query(&format!(
                    "DELETE FROM {q} WHERE source_table IN ({captured})"
                ))
                .execute(&mut *tx)
                .await
                .map_err(db_err("requeueing the triggers' entries"))?;
                requeued += moved;
            }
            checkpoint::reset(mongo, database, &now, "capture switch")
                .await
                .map_err(|e| binlog::BinlogError::Checkpoint(e.to_string()))?;
        }
        Capture::Triggers => {
            let start = checkpoint::load(mongo, database)
                .await
                .map_err(|e| binlog::BinlogError::Checkpoint(e.to_string()))?;
            if let Some(start) = start {
                let keys = binlog::changed_keys(config, pool, start.position, now.clone()).await?;
                for entity in Entity::ALL {
                    let of_entity: Vec<String> = keys
                        .iter()
                        .filter(|(e, _)| *e == entity)
                        .map(|(_, k)| k.to_string())
                        .collect();
                    for chunk in of_entity.chunks(10_000) {
                        requeued += sqlx::query(&format!(
                            "INSERT INTO {q} (entity_key, operation, source_table) \
                             SELECT k, 'update', 'capture switch' FROM JSON_TABLE('[{keys}]', '$[*]' \
                             COLUMNS (k BIGINT UNSIGNED PATH '$')) AS t",
                            q = entity.queue_table(),
                            keys = chunk.join(",")
                        ))
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err("queueing the changes read from the binlog"))?
                        .rows_affected();
                    }
                }
            } else {
                tracing::warn!(%database, "no binlog position stored: nothing to replay from the binlog");
            }
        }
    }
    tx.commit().await.map_err(db_err("committing the switch"))?;
    tracing::info!(%database, %from, %to, position = %now, requeued, "capture switched");
    Ok(Switched {
        from,
        to,
        position: Some(now.to_string()),
        requeued,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_capture_triggers_come_from_the_script_that_last_restated_them() {
        let (sql, names) = capture_triggers();
        assert_eq!(names.len(), 16, "{names:?}");
        assert!(names.iter().all(|n| n.contains("_sync_")), "{names:?}");
        assert!(sql.contains("aethermart_capture_by_triggers()"));
        let last = crate::schema::VERSIONS
            .iter()
            .filter(|v| {
                v.sql
                    .contains("CREATE OR REPLACE TRIGGER trg_customers_sync_insert")
            })
            .map(|v| v.version)
            .max();
        assert_eq!(
            last,
            Some(CAPTURE_TRIGGERS_VERSION),
            "a version restated the capture triggers: move CAPTURE_TRIGGERS_VERSION to it"
        );
    }
}
