//! [`QueueSource`]: the MariaDB trigger queues as a [`Source`].
//!
//! A claim is one READ COMMITTED transaction on its own connection (no gap locks, so the
//! application's triggers keep appending while a batch is in flight): it takes the handoff row
//! in share mode (none while a migration runs: nothing is claimed), then `SELECT … FOR UPDATE
//! SKIP LOCKED` takes the oldest claimable entries together with the slot row of each entry's
//! key (`sync_key_slots`, see [`crate::handoff`]): a key whose slot another batch holds is left
//! for later, so no key is in two batches at once. Then the current rows are read, after every
//! claimed change committed. Acknowledging deletes the applied entries, records failures as the
//! loop's [`super::RetryPolicy`] decides (moving them to `sync_dead_letters` when it says so)
//! and commits, which releases the locks. A claim dropped on the floor (task aborted) closes
//! its connection: the server rolls back and frees the locks. Only the worker role (and the
//! admin) may read these tables, so no other account can take their locks.
//!
//! In a cluster (a [`ClusterPool`] on several nodes) the row locks, being per server (Galera
//! certifies writes at commit, it does not replicate locks), only work if every worker claims
//! on the same node: the *sync home*, a row of `sync_home` that Galera replicates and
//! certifies. A claim whose connection is not on the home claims nothing; the worker then
//! follows the home (its pool prefers that node), sets it when there is none, or moves it to
//! its own node when the home stopped taking writes. Workers converge on one node whatever
//! order their URLs list the nodes in.

use super::{
    Acknowledged, Backlog, ClaimedBatch, RetryPolicy, Sorted, Source, SyncError, Write, WriteOp,
};
use crate::cluster::ClusterPool;
use crate::connect::{execute_script, sql_literal};
use crate::projection::{Entity, Refused};
use async_trait::async_trait;
use sqlx::MySql;
use sqlx::Row;
use sqlx::pool::PoolConnection;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// How long after the sync home moved no worker claims on the new home.
const HOME_SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

/// The MariaDB queues (`*_sync_queue`) of one database.
#[derive(Debug, Clone)]
pub struct QueueSource {
    /// Names this worker's batches in `data_lineage_tracker`.
    run_id: String,
    /// Per entity: the last claim found entries, so the next one skips the cheap emptiness
    /// check and claims at once.
    busy: Arc<[AtomicBool; 4]>,
    /// Follows the writable node of a cluster (all workers of a database end on the same node,
    /// which the row locks need).
    mariadb: ClusterPool,
    mongo: mongodb::Database,
}

impl QueueSource {
    /// Claims from the queues of the pool's database; `mongo` is read for the products' rating
    /// summaries. `mariadb` is a [`sqlx::MySqlPool`] or a [`ClusterPool`].
    pub fn new(mariadb: impl Into<ClusterPool>, mongo: mongodb::Database) -> Self {
        Self {
            run_id: crate::lineage::new_run_id(),
            busy: Arc::new(Default::default()),
            mariadb: mariadb.into(),
            mongo,
        }
    }

    /// The MariaDB pool the source claims through.
    pub fn pool(&self) -> &ClusterPool {
        &self.mariadb
    }

    /// Cluster only: a claim found that its connection's server is not the sync home
    /// (`sync_home`, see `sql/0008_sync_home.sql`). With no home yet, this node becomes it; a
    /// home that took writes lately is followed (the pool moves there); a home that stopped
    /// taking writes is moved here, unless another worker moved it first.
    async fn find_home(&self, home: Option<String>, mine: String) -> Result<(), SyncError> {
        let pool = self.mariadb.pool();
        match home {
            None => {
                // A first home is settled at once (dated one settle time back): no worker
                // claimed anywhere before it, so no batch on an old home can still be running.
                let set = sqlx::query(
                    "INSERT IGNORE INTO sync_home (id, server, changed_at) \
                     VALUES (1, ?, NOW(6) - INTERVAL ? MICROSECOND)",
                )
                .bind(&mine)
                .bind(HOME_SETTLE.as_micros() as i64)
                .execute(pool)
                .await
                .map_err(db_err("setting the sync home"))?
                .rows_affected();
                if set == 1 {
                    tracing::info!(home = %mine, "sync home set");
                    self.mariadb.prefer(&mine);
                }
            }
            Some(home) if self.mariadb.recently_fit(&home) => {
                tracing::debug!(%home, "following the sync home");
                self.mariadb.prefer(&home);
            }
            Some(home) if !self.mariadb.has_server(&home) => {
                // Not a node this worker can judge or reach: never take such a home over.
                tracing::error!(%home, "the sync home is not among this worker's MariaDB nodes; \
                    list it in AETHERMART_MARIADB_URL (waiting)");
            }
            Some(_) if !self.mariadb.recently_fit(&mine) => {
                tracing::debug!(%mine, "not moving the sync home to a node that takes no writes");
            }
            Some(home) => {
                let moved = sqlx::query(
                    "UPDATE sync_home SET server = ?, changed_at = NOW(6) WHERE id = 1 AND server = ?",
                )
                .bind(&mine)
                .bind(&home)
                .execute(pool)
                .await
                .map_err(db_err("moving the sync home"))?
                .rows_affected();
                if moved == 1 {
                    tracing::warn!(from = %home, to = %mine, "sync home moves: the old one takes no writes");
                    self.mariadb.prefer(&mine);
                }
            }
        }
        Ok(())
    }

    /// Connects to both stores of `config` (a pool sized for `queues` queues with the lanes of
    /// `options`, on the writable node of a cluster and following it) and returns the source
    /// and the MongoDB database (for a [`super::MongoSink`]).
    pub async fn connect(
        config: &crate::config::Config,
        options: &super::SyncOptions,
        queues: usize,
    ) -> Result<(Self, mongodb::Database), crate::connect::ConnectError> {
        let size = crate::connect::PoolSize {
            max: options.pool_size(queues),
        };
        let pool = ClusterPool::connect(&config.mariadb, size).await?;
        let mongo = crate::connect::mongodb_database(&config.mongodb).await?;
        let source = Self::new(pool, mongo.clone());
        Ok((source, mongo))
    }

    /// The run id of this source's lineage rows (one row per acknowledged batch).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }
}

fn db_err(step: &'static str) -> impl FnOnce(sqlx::Error) -> SyncError {
    move |source| SyncError::MariaDb { step, source }
}

/// One claimed queue entry.
#[derive(Debug, Clone, Copy)]
struct Entry {
    queue_id: u64,
    key: u64,
    attempts: u32,
}

#[async_trait]
impl Source for QueueSource {
    async fn claim(
        &self,
        entity: Entity,
        limit: u32,
    ) -> Result<Option<Box<dyn ClaimedBatch>>, SyncError> {
        let queue = entity.queue_table();
        let busy = &self.busy[entity.index()];
        let cluster = self.mariadb.server().is_some();
        // An idle queue costs two primary-key reads, no transaction (and an idle worker learns
        // that the capture was switched under it).
        if !busy.load(Ordering::Relaxed) {
            let (any, capture, database): (Option<u64>, Option<String>, String) =
                sqlx::query_as(&format!(
                    "SELECT (SELECT queue_id FROM {queue} LIMIT 1), \
                     (SELECT capture FROM sync_settings WHERE id = 1), DATABASE()"
                ))
                .fetch_one(self.mariadb.pool())
                .await
                .map_err(db_err("polling the queue"))?;
            if capture.as_deref() != Some("triggers") {
                return Err(SyncError::CaptureMismatch {
                    database,
                    capture: capture.unwrap_or_default(),
                    mine: "triggers",
                });
            }
            if any.is_none() {
                return Ok(None);
            }
        }
        let conn = self
            .mariadb
            .pool()
            .acquire()
            .await
            .map_err(db_err("connecting"))?;
        let mut claim = Claim {
            lineage: BatchLineage {
                run_id: self.run_id.clone(),
                target: format!("mongodb:{}.{}", self.mongo.name(), entity.collection()),
            },
            conn: Some(conn),
            entity,
            queue,
            entries: Vec::new(),
            writes: Vec::new(),
            unreadable: Vec::new(),
            claimed_at: Instant::now(),
            lag_at_claim: 0.0,
            cluster: false,
        };
        let conn = claim.conn();
        // One round trip: the isolation level, the transaction, the handoff row (shared; none
        // while a migration holds it), then the claim, each claimed entry with the slot lock of
        // its key (none when another batch holds it), and in a cluster the sync home and this
        // connection's server (claims happen on the home only: row locks are per server). The
        // statement text is built from this crate's names and numbers: safe to inline.
        let home_columns = if cluster {
            format!(
                ", (SELECT server FROM sync_home WHERE id = 1), {}, \
                 TIMESTAMPDIFF(MICROSECOND, (SELECT changed_at FROM sync_home WHERE id = 1), NOW(6))",
                crate::cluster::SERVER_IDENTITY
            )
        } else {
            String::new()
        };
        let sql = format!(
            "SET TRANSACTION ISOLATION LEVEL READ COMMITTED; START TRANSACTION; {handoff}; \
             SELECT q.queue_id, q.entity_key, q.attempts, \
             TIMESTAMPDIFF(MICROSECOND, q.changed_at, NOW(6)), s.slot IS NOT NULL{home_columns} \
             FROM {queue} q LEFT JOIN sync_key_slots s ON s.slot = {slot} \
             WHERE q.retry_at IS NULL OR q.retry_at <= NOW(6) \
             ORDER BY q.queue_id LIMIT {limit} FOR UPDATE SKIP LOCKED",
            handoff = crate::handoff::CLAIM_HANDOFF,
            slot = crate::handoff::key_slot_sql(entity.index(), "q.entity_key"),
        );
        let results = sqlx::Executor::fetch_all(&mut **conn, sql.as_str())
            .await
            .map_err(db_err("claiming queue entries"))?;
        // The handoff row has three columns (the id, the capture, the database), claimed
        // entries more.
        let handoff = results.first().filter(|r| r.len() == 3);
        let handoff_free = handoff.is_some();
        if let Some(row) = handoff {
            let capture: Option<String> = row.try_get(1).map_err(db_err("reading the capture"))?;
            if capture.as_deref() != Some("triggers") {
                claim.finish().await;
                return Err(SyncError::CaptureMismatch {
                    database: row.try_get(2).unwrap_or_default(),
                    capture: capture.unwrap_or_default(),
                    mine: "triggers",
                });
            }
        }
        let rows: Vec<&sqlx::mysql::MySqlRow> = results.iter().filter(|r| r.len() > 3).collect();
        let mut entries = Vec::with_capacity(rows.len());
        let mut busy_keys = std::collections::HashSet::new();
        let mut lag_micros: i64 = 0;
        for r in &rows {
            let entry = Entry {
                queue_id: r.try_get(0).map_err(db_err("decoding the queue"))?,
                key: r.try_get(1).map_err(db_err("decoding the queue"))?,
                attempts: r.try_get(2).map_err(db_err("decoding the queue"))?,
            };
            lag_micros = lag_micros.max(r.try_get::<i64, _>(3).unwrap_or(0));
            if r.try_get::<Option<i64>, _>(4).ok().flatten() != Some(1) {
                busy_keys.insert(entry.key);
            }
            entries.push(entry);
        }
        busy.store(!entries.is_empty(), Ordering::Relaxed);
        if entries.is_empty() {
            claim.finish().await;
            return Ok(None);
        }
        if cluster {
            let home: Option<String> = rows[0]
                .try_get(5)
                .map_err(db_err("reading the sync home"))?;
            let mine: String = rows[0]
                .try_get(6)
                .map_err(db_err("reading the sync home"))?;
            if home.as_deref() != Some(mine.as_str()) {
                claim.finish().await;
                self.find_home(home, mine).await?;
                return Ok(None);
            }
            self.mariadb.prefer(&mine);
            // Just moved here: a worker on the old home may still finish a batch it claimed
            // there (its acknowledgement re-queues the keys, see `Claim::acknowledge`).
            let since: Option<i64> = rows[0]
                .try_get(7)
                .map_err(db_err("reading the sync home"))?;
            if since.is_some_and(|micros| micros < HOME_SETTLE.as_micros() as i64) {
                claim.finish().await;
                return Ok(None);
            }
            claim.cluster = true;
        }
        if !handoff_free {
            tracing::debug!(%entity, "an initial migration is running: sync paused");
            claim.finish().await;
            return Ok(None);
        }
        // Coalesce per key; keys another worker holds are left for later.
        if !busy_keys.is_empty() {
            tracing::debug!(%entity, busy = busy_keys.len(), "keys held by another worker left for later");
            entries.retain(|e| !busy_keys.contains(&e.key));
        }
        let locked: Vec<u64> = entries
            .iter()
            .map(|e| e.key)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if locked.is_empty() {
            claim.finish().await;
            return Ok(None);
        }
        let locked_at = claim.claimed_at.elapsed();
        let (writes, unreadable) =
            super::reread::writes(self.mariadb.pool(), &self.mongo, entity, &locked).await?;
        tracing::trace!(%entity, changes = entries.len(), keys = locked.len(),
            claim_ms = locked_at.as_secs_f64() * 1e3,
            read_ms = (claim.claimed_at.elapsed() - locked_at).as_secs_f64() * 1e3, "claimed");
        claim.entries = entries;
        claim.writes = writes;
        claim.unreadable = unreadable;
        claim.lag_at_claim = lag_micros as f64 / 1e6;
        Ok(Some(Box::new(claim)))
    }

    async fn backlog(&self, entity: Entity) -> Result<Backlog, SyncError> {
        type Row = (i64, i64, Option<i64>, Option<i64>, i64);
        let (pending, parked, next, oldest, dead): Row = sqlx::query_as(&format!(
            "SELECT COUNT(*), CAST(COALESCE(SUM(retry_at > NOW(6)), 0) AS SIGNED), \
             TIMESTAMPDIFF(MICROSECOND, NOW(6), MIN(IF(retry_at > NOW(6), retry_at, NULL))), \
             TIMESTAMPDIFF(MICROSECOND, MIN(changed_at), NOW(6)), \
             (SELECT COUNT(*) FROM sync_dead_letters WHERE queue = '{queue}') \
             FROM {queue}",
            queue = entity.queue_table()
        ))
        .fetch_one(self.mariadb.pool())
        .await
        .map_err(db_err("counting the queue"))?;
        let micros = |m: i64| std::time::Duration::from_micros(m.max(0) as u64);
        Ok(Backlog {
            pending: pending.max(0) as u64,
            parked: parked.max(0) as u64,
            next_retry_in: next.map(micros),
            oldest_age: oldest.map(micros),
            dead_letters: dead.max(0) as u64,
        })
    }
}

/// A batch's row in `data_lineage_tracker`.
pub(super) struct LineageRow<'a> {
    /// The worker's run.
    pub run_id: &'a str,
    /// The entity's source tables.
    pub sources: &'a str,
    /// `mongodb:<db>.<collection>`.
    pub target: &'a str,
    /// Changes read.
    pub read: usize,
    /// Documents written.
    pub written: usize,
    /// Changes dead-lettered.
    pub rejected: usize,
    /// How long the batch took.
    pub micros: u128,
    /// What failed, if anything.
    pub error: Option<&'a str>,
}

/// The `INSERT` of a batch's finished lineage row (values inlined as SQL literals).
pub(super) fn lineage_row_sql(row: &LineageRow<'_>) -> String {
    format!(
        "INSERT INTO data_lineage_tracker (run_id, job, source_tables, target, rows_read, \
         rows_written, rows_rejected, started_at, finished_at, status, error) VALUES \
         ({run}, 'sync', {sources}, {target}, {read}, {written}, {rejected}, \
         NOW(6) - INTERVAL {micros} MICROSECOND, NOW(6), 'complete', {error})",
        run = sql_literal(row.run_id),
        sources = sql_literal(row.sources),
        target = sql_literal(row.target),
        read = row.read,
        written = row.written,
        rejected = row.rejected,
        micros = row.micros,
        error = row.error.map_or("NULL".to_owned(), sql_literal),
    )
}

/// What a batch's lineage row names.
#[derive(Debug, Clone)]
struct BatchLineage {
    /// The worker's run.
    run_id: String,
    /// `mongodb:<db>.<collection>`.
    target: String,
}

/// A claim in progress: the transaction holding the entries' row locks and their key slots.
struct Claim {
    lineage: BatchLineage,
    /// `None` once committed or rolled back.
    conn: Option<PoolConnection<MySql>>,
    entity: Entity,
    queue: &'static str,
    entries: Vec<Entry>,
    writes: Vec<Write>,
    /// Keys whose document could not be built: they count as failed attempts.
    unreadable: Vec<Refused>,
    claimed_at: Instant,
    lag_at_claim: f64,
    /// Claimed on the sync home of a cluster: the acknowledgement re-queues the keys if the
    /// home moved meanwhile.
    cluster: bool,
}

impl Claim {
    fn conn(&mut self) -> &mut PoolConnection<MySql> {
        self.conn
            .as_mut()
            .expect("the claim's connection is held until it finishes")
    }

    /// Rolls back (releasing the locks); if that fails the connection is closed instead.
    async fn finish(&mut self) {
        if let Some(mut conn) = self.conn.take()
            && let Err(e) = execute_script(&mut conn, "ROLLBACK").await
        {
            tracing::debug!(error = %e, "rolling back a claim failed; closing its connection");
            conn.close_on_drop();
        }
    }

    async fn record(
        &mut self,
        failed: &[Refused],
        policy: RetryPolicy,
    ) -> Result<Acknowledged, SyncError> {
        let reasons = super::failed_keys(failed, &self.unreadable);
        let entries = std::mem::take(&mut self.entries);
        let sorted = Sorted::new(
            entries.iter().map(|e| (e, e.key, e.attempts)),
            &reasons,
            policy,
        );
        let error = sorted.summary(&reasons);
        let Sorted { done, retry, dead } = sorted;
        let mut done: Vec<u64> = done.iter().map(|e| e.queue_id).collect();
        let queue = self.queue;
        let written = self
            .writes
            .iter()
            .filter(|w| !u64::try_from(w.key).is_ok_and(|k| reasons.contains_key(&k)))
            .count();
        let (lineage, sources) = (self.lineage.clone(), self.entity.sources());
        let micros = self.claimed_at.elapsed().as_micros();
        // In a cluster: if the sync home moved while this batch ran, another worker may have
        // written some of these keys from a newer state before this batch's writes landed;
        // queueing the keys again makes the new home write their latest state last.
        let requeue = if self.cluster {
            let keys: Vec<String> = self
                .writes
                .iter()
                .map(|w| {
                    let op = if matches!(w.op, WriteOp::Delete) {
                        "delete"
                    } else {
                        "update"
                    };
                    format!("[{},\"{op}\"]", w.key)
                })
                .collect();
            format!(
                "INSERT INTO {queue} (entity_key, operation, source_table) \
                 SELECT k.entity_key, k.op, 'sync_home' FROM JSON_TABLE('[{keys}]', '$[*]' \
                 COLUMNS (entity_key BIGINT UNSIGNED PATH '$[0]', op VARCHAR(8) PATH '$[1]')) AS k \
                 WHERE NOT ((SELECT server FROM sync_home WHERE id = 1) <=> {server}); ",
                keys = keys.join(","),
                server = crate::cluster::SERVER_IDENTITY,
            )
        } else {
            String::new()
        };
        let conn = self.conn();
        for (e, reason, delay) in &retry {
            sqlx::query(&format!(
                "UPDATE {queue} SET attempts = attempts + 1, last_error = ?, \
                 retry_at = NOW(6) + INTERVAL ? MICROSECOND WHERE queue_id = ?"
            ))
            .bind(*reason)
            .bind(delay.as_micros() as u64)
            .bind(e.queue_id)
            .execute(&mut **conn)
            .await
            .map_err(db_err("recording a failed attempt"))?;
        }
        for (e, reason) in &dead {
            tracing::warn!(queue, key = e.key, attempts = e.attempts + 1, %reason, "change moved to sync_dead_letters");
            sqlx::query(&format!(
                "INSERT INTO sync_dead_letters (queue, entity_key, operation, source_table, changed_at, attempts, error) \
                 SELECT ?, entity_key, operation, source_table, changed_at, attempts + 1, ? FROM {queue} WHERE queue_id = ?"
            ))
            .bind(queue)
            .bind(*reason)
            .bind(e.queue_id)
            .execute(&mut **conn)
            .await
            .map_err(db_err("dead-lettering a change"))?;
            done.push(e.queue_id);
        }
        // The entries are deleted by primary key, driven by the list of ids (JSON_TABLE, joined
        // first): an `IN (…)` list may be planned as a full scan, whose DELETE would wait on the
        // rows other workers hold. Ids are numbers, so the text is safe to inline; the delete,
        // the batch's lineage row and the commit (which releases the locks) travel in one
        // round trip.
        let ids: Vec<String> = done.iter().map(u64::to_string).collect();
        let script = format!(
            "{requeue}DELETE q FROM JSON_TABLE('[{ids}]', '$[*]' COLUMNS (id BIGINT UNSIGNED PATH '$')) AS ids \
             STRAIGHT_JOIN {queue} q ON q.queue_id = ids.id; {lineage}; COMMIT",
            ids = ids.join(","),
            lineage = lineage_row_sql(&LineageRow {
                run_id: &lineage.run_id,
                sources,
                target: &lineage.target,
                read: entries.len(),
                written,
                rejected: dead.len(),
                micros,
                error: error.as_deref(),
            }),
        );
        execute_script(conn, &script)
            .await
            .map_err(db_err("removing applied queue entries"))?;
        self.conn = None;
        Ok(Acknowledged {
            applied: (done.len() - dead.len()) as u64,
            retried: retry.len() as u64,
            dead_lettered: dead.len() as u64,
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Not finished (the task was aborted): close the connection, so the server rolls the
        // transaction back and frees the locks, instead of pooling it mid-transaction.
        if let Some(conn) = self.conn.as_mut() {
            conn.close_on_drop();
        }
    }
}

#[async_trait]
impl ClaimedBatch for Claim {
    fn collection(&self) -> &str {
        self.entity.collection()
    }

    fn writes(&self) -> &[Write] {
        &self.writes
    }

    fn changes(&self) -> u64 {
        self.entries.len() as u64
    }

    fn lag_seconds(&self) -> f64 {
        self.lag_at_claim + self.claimed_at.elapsed().as_secs_f64()
    }

    async fn acknowledge(
        mut self: Box<Self>,
        failed: Vec<Refused>,
        policy: RetryPolicy,
    ) -> Result<Acknowledged, SyncError> {
        let result = self.record(&failed, policy).await;
        if result.is_err() {
            self.finish().await;
        }
        result
    }

    async fn abandon(mut self: Box<Self>) {
        self.finish().await;
    }
}
