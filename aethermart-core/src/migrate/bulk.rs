//! [`BulkMigrator`]: streams each entity with keyset pagination, writes unordered bulk upserts,
//! checkpoints after every acknowledged batch, runs entities in parallel (bounded), records one
//! lineage row per entity run.

use super::merge::{self, Merged};
use super::stages::{Stage, StageClock, StageTimes};
use super::verify::{self, VerifyReport};
use super::{EntityReport, MigrateError, MigrateOptions, MigrationReport, Migrator, collections};
use crate::binlog_position::store as checkpoint;
use crate::cluster;
use crate::config::MariaDbConfig;
use crate::connect::{self, PoolSize};
use crate::mongo_write::{self, DUPLICATE_KEY, VALIDATION_FAILED, WriteError};
use crate::progress::Progress;
use crate::projection::{self, Entity, Lookups, ReadError, Refused, Selection};
use crate::schema::{MariaDbSchema, SchemaApplier, VersionState};
use async_trait::async_trait;
use futures_util::StreamExt;
use mongodb::bson::{Document, RawDocumentBuf};
use sqlx::{Connection, MySqlConnection, MySqlPool};
use std::sync::Arc;
use std::time::Instant;

/// The bulk MariaDB → MongoDB migration.
#[derive(Debug, Clone)]
pub struct BulkMigrator {
    mariadb: MariaDbConfig,
    mongo: mongodb::Database,
}

impl BulkMigrator {
    /// A migrator from the configured MariaDB database into `mongo`.
    pub fn new(mariadb: MariaDbConfig, mongo: mongodb::Database) -> Self {
        Self { mariadb, mongo }
    }

    /// Takes the handoff row (`sync_handoff`, see [`crate::handoff`]) that tells sync workers a
    /// migration is running, in a transaction on a connection of its own (closing it releases
    /// the row, also when the process dies). Taking it waits for the batches in flight. Row
    /// locks belong to one server, so in a cluster it is also taken on every other node that
    /// takes writes: a worker on any of them sees it.
    async fn take_handoff_lock(&self) -> Result<HandoffLock, MigrateError> {
        let mut locked = Vec::new();
        for node in cluster::writable_nodes(&self.mariadb).await? {
            let mut conn = connect::node_connection(&node, true).await?;
            self.lock_on(&mut conn).await?;
            locked.push(conn);
        }
        let main = locked.remove(0);
        Ok(HandoffLock {
            main,
            others: locked,
        })
    }

    async fn lock_on(&self, conn: &mut MySqlConnection) -> Result<(), MigrateError> {
        connect::execute_script(
            conn,
            "SET TRANSACTION ISOLATION LEVEL READ COMMITTED; START TRANSACTION",
        )
        .await
        .map_err(MigrateError::State)?;
        match sqlx::query_scalar::<_, u8>(crate::handoff::MIGRATION_HANDOFF)
            .fetch_optional(&mut *conn)
            .await
        {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(MigrateError::HandoffMissing),
            Err(e) if crate::orders::server_error(&e).is_some_and(|(n, _)| n == 1205) => {
                Err(MigrateError::Busy(self.mariadb.database().to_owned()))
            }
            Err(e) => Err(MigrateError::State(e)),
        }
    }

    async fn pool(&self, options: &MigrateOptions) -> Result<MySqlPool, MigrateError> {
        let max = (options.parallel_entities.max(1) as u32) * 2 + 2;
        Ok(cluster::writable_pool(&self.mariadb, PoolSize { max }).await?)
    }
}

/// The migration's handoff lock: held on `main` (the node the migration works on) and on the
/// cluster's other writable nodes.
struct HandoffLock {
    main: MySqlConnection,
    others: Vec<MySqlConnection>,
}

/// Deletes the queued changes that the migration about to start covers, and returns how many.
///
/// Every entry committed now describes a row the migration will read *after* this point, so
/// its document will be written from a state at least as new. Deletes are kept: the migration
/// writes the rows that exist and never removes a document, so the workers replay those. A `DELETE` waits for entries
/// still being inserted by open transactions (their row locks), so an entry numbered below the
/// high-water mark but committed later is also covered. Entries queued from here on stay and
/// are replayed by the workers once the migration releases its lock: the two stores converge
/// without replaying the whole generated history through the workers.
async fn drop_covered_changes(conn: &mut MySqlConnection) -> Result<u64, MigrateError> {
    let mut dropped = 0;
    for entity in Entity::ALL {
        let queue = entity.queue_table();
        let high_water: Option<u64> =
            sqlx::query_scalar(&format!("SELECT MAX(queue_id) FROM {queue}"))
                .fetch_one(&mut *conn)
                .await
                .map_err(MigrateError::State)?;
        loop {
            let deleted = sqlx::query(&format!(
                "DELETE FROM {queue} WHERE queue_id <= ? AND operation <> 'delete' \
                 ORDER BY queue_id LIMIT 20000"
            ))
            .bind(high_water)
            .execute(&mut *conn)
            .await
            .map_err(MigrateError::State)?
            .rows_affected();
            dropped += deleted;
            if deleted == 0 {
                break;
            }
        }
    }
    if dropped > 0 {
        tracing::info!(dropped, "queued changes covered by the migration dropped");
    }
    Ok(dropped)
}

#[async_trait]
impl Migrator for BulkMigrator {
    async fn migrate(
        &self,
        options: MigrateOptions,
        progress: Arc<dyn Progress>,
    ) -> Result<MigrationReport, MigrateError> {
        let started = Instant::now();
        let status = MariaDbSchema::new(self.mariadb.clone()).status().await?;
        if status.iter().any(|s| s.state != VersionState::Applied) {
            return Err(MigrateError::SchemaNotApplied(
                self.mariadb.database().to_owned(),
            ));
        }
        collections::setup_collections(&self.mongo).await?;
        // Held until the end: sync workers pause while it is taken (see `sync`).
        let mut handoff = self.take_handoff_lock().await?;
        let pool = self.pool(&options).await?;
        let dropped = {
            let mut conn = pool.acquire().await.map_err(MigrateError::State)?;
            // Binlog capture resumes from a position no later than every row read below.
            let database = self.mariadb.database();
            if let Some(position) = checkpoint::snapshot_position(&mut conn)
                .await
                .map_err(MigrateError::State)?
            {
                checkpoint::migration_started(&self.mongo, database, &position, options.resume)
                    .await
                    .map_err(MigrateError::BinlogPosition)?;
            }
            if options.resume {
                0
            } else {
                drop_covered_changes(&mut conn).await?
            }
        };
        // Loaded by the first entity that needs them: the others start at once.
        let lookups = Arc::new(tokio::sync::OnceCell::new());
        let run_id = crate::lineage::new_run_id();
        let jobs = Entity::ALL.map(|entity| EntityJob {
            entity,
            pool: pool.clone(),
            mongo: self.mongo.clone(),
            lookups: lookups.clone(),
            run_id: run_id.clone(),
            options,
            progress: progress.clone(),
            clock: Arc::default(),
        });
        // At most `parallel_entities` entities at once: the next starts when one ends. A
        // JoinSet aborts its tasks when dropped: stopping `migrate` stops every entity.
        let mut waiting = jobs.into_iter();
        let mut tasks = tokio::task::JoinSet::new();
        for job in waiting.by_ref().take(options.parallel_entities.max(1)) {
            tasks.spawn(job.run());
        }
        let mut entities = Vec::new();
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            if let Some(job) = waiting.next() {
                tasks.spawn(job.run());
            }
            match joined.map_err(MigrateError::Task).and_then(|r| r) {
                Ok(report) => entities.push(report),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        entities.sort_by_key(|e| e.entity);
        pool.close().await;
        // Workers must have stayed paused throughout: the transaction holding the handoff row
        // must still be open on its connection (a dropped connection fails the query).
        let still_ours = sqlx::query_scalar::<_, i64>("SELECT CAST(@@in_transaction AS SIGNED)")
            .fetch_one(&mut handoff.main)
            .await
            .ok();
        drop(handoff.main.close().await);
        for conn in handoff.others {
            drop(conn.close().await);
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        if still_ours != Some(1) {
            return Err(MigrateError::HandoffLost);
        }
        checkpoint::migration_finished(&self.mongo, self.mariadb.database())
            .await
            .map_err(MigrateError::BinlogPosition)?;
        Ok(MigrationReport {
            run_id,
            entities,
            dropped_queue_entries: dropped,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    async fn verify(&self) -> Result<VerifyReport, MigrateError> {
        let pool = self.pool(&MigrateOptions::default()).await?;
        let report = verify::verify(&pool, &self.mongo).await;
        pool.close().await;
        report
    }
}

/// One entity's part of a run.
#[derive(Clone)]
struct EntityJob {
    entity: Entity,
    pool: MySqlPool,
    mongo: mongodb::Database,
    /// Shared by the entities; loaded by the first that [uses them](Entity::uses_lookups).
    lookups: Arc<tokio::sync::OnceCell<Lookups>>,
    run_id: String,
    options: MigrateOptions,
    progress: Arc<dyn Progress>,
    clock: Arc<StageClock>,
}

impl EntityJob {
    async fn run(self) -> Result<EntityReport, MigrateError> {
        let started = Instant::now();
        let lineage_id = self.lineage_start().await?;
        let mut report = EntityReport {
            entity: self.entity,
            read: 0,
            written: 0,
            refused: Vec::new(),
            seconds: 0.0,
            resumed_after: 0,
            stages: StageTimes::default(),
        };
        // Everything after the lineage row is opened ends in closing it, whatever happens.
        let result = self.checkpoint_and_copy(&mut report).await;
        report.seconds = started.elapsed().as_secs_f64();
        report.stages = self.clock.times();
        self.progress.finish(self.entity.name());
        if let Err(e) = self
            .lineage_finish(lineage_id, &report, result.as_ref().err())
            .await
        {
            match result {
                Ok(()) => return Err(e),
                // Keep the error that stopped the copy; the lineage failure goes to the log.
                Err(_) => {
                    tracing::error!(entity = %self.entity, error = %e, "recording the lineage failed")
                }
            }
        }
        result.map(|()| report)
    }

    async fn checkpoint_and_copy(&self, report: &mut EntityReport) -> Result<(), MigrateError> {
        let after = self.checkpoint_start().await?;
        report.resumed_after = after;
        let total: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {} WHERE {} > ?",
            self.entity.table(),
            self.entity.key_column()
        ))
        .bind(after)
        .fetch_one(&self.pool)
        .await
        .map_err(|source| ReadError::Query {
            entity: self.entity,
            source,
        })?;
        self.progress
            .begin(self.entity.name(), Some(total.max(0) as u64));
        self.copy(after, report).await
    }

    /// Pages through the entity and writes each page, moving the checkpoint after each
    /// acknowledged write. Reading runs ahead of writing (a bounded channel), so MariaDB and
    /// MongoDB work at the same time, and [`WRITES_IN_FLIGHT`] pages are written at once;
    /// their acknowledgements are taken in page order, so the checkpoint only ever passes
    /// pages that are all acknowledged.
    async fn copy(&self, after: u64, report: &mut EntityReport) -> Result<(), MigrateError> {
        let (tx, rx) = tokio::sync::mpsc::channel(PAGES_AHEAD);
        let (pool, entity, limit, clock) = (
            self.pool.clone(),
            self.entity,
            if self.entity.merges() {
                self.options.batch_size.clamp(1, MAX_MERGE_BATCH)
            } else {
                self.options.batch_size.clamp(1, MAX_BATCH)
            },
            self.clock.clone(),
        );
        let (shared, mongo) = (self.lookups.clone(), self.mongo.clone());
        let reader = tokio::spawn(async move {
            let none = Lookups::default();
            let lookups = if entity.uses_lookups() {
                shared
                    .get_or_try_init(|| Lookups::load(&pool, &mongo))
                    .await?
            } else {
                &none
            };
            let mut after = after;
            loop {
                let reading = Instant::now();
                let selection = Selection::After { after, limit };
                let Some(page) = projection::read_page(&pool, entity, selection, lookups).await?
                else {
                    break;
                };
                let seconds = reading.elapsed().as_secs_f64();
                clock.add(Stage::Query, page.query_seconds);
                clock.add(Stage::Build, seconds - page.query_seconds);
                after = page.last_key;
                let sending = Instant::now();
                if tx.send(page).await.is_err() {
                    break; // the writer stopped on an error, which it reports
                }
                clock.since(Stage::ReaderBlocked, sending);
            }
            Ok::<_, MigrateError>(())
        });
        let pages = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|page| (page, rx))
        });
        // Each write is a task of its own: it goes on while this loop records a checkpoint
        // (a profile page's transaction does not sit open meanwhile).
        let mut writes = std::pin::pin!(
            pages
                .map(|page| {
                    let job = self.clone();
                    AbortOnDrop(tokio::spawn(async move {
                        let written = job.write(&page.docs).await;
                        (page, written)
                    }))
                })
                .buffered(WRITES_IN_FLIGHT)
        );
        loop {
            let waiting = Instant::now();
            let Some(joined) = writes.next().await else {
                break;
            };
            let (page, written) = joined.map_err(MigrateError::Task)?;
            self.clock.since(Stage::WriterWaiting, waiting);
            let (written, refused) = written?;
            report.read += page.docs.len() as u64;
            report.written += written;
            report.refused.extend(refused);
            let checkpointing = Instant::now();
            sqlx::query(
                "UPDATE migration_checkpoints SET high_water = ? WHERE entity = ? AND run_id = ?",
            )
            .bind(page.last_key)
            .bind(self.entity.name())
            .bind(&self.run_id)
            .execute(&self.pool)
            .await
            .map_err(MigrateError::State)?;
            self.clock.since(Stage::Checkpoint, checkpointing);
            self.progress
                .advance(self.entity.name(), page.docs.len() as u64);
        }
        reader.await.map_err(MigrateError::Task)??;
        tracing::info!(entity = %self.entity, stages = ?self.clock.times(), "entity copied");
        sqlx::query(
            "UPDATE migration_checkpoints SET finished = TRUE WHERE entity = ? AND run_id = ?",
        )
        .bind(self.entity.name())
        .bind(&self.run_id)
        .execute(&self.pool)
        .await
        .map_err(MigrateError::State)?;
        Ok(())
    }

    /// Writes one page, idempotently, keyed by `_id`. Whole documents (products, services,
    /// orders) go first as one unordered `insert` (the fast path of a first migration); those
    /// that already exist (duplicate key) are then replaced with one unordered `update` of
    /// upserts. Profiles are merged into the stored documents, keeping the preferences that
    /// live only in MongoDB: whole-document writes in one transaction ([`merge`]), or, when
    /// that declines the page, `$set` upserts. Only `insert`/`update` commands and
    /// transactions: MongoDB 6+.
    ///
    /// A document is *refused* (reported with its id, the rest flowing on) only for a validation
    /// failure or a duplicate in a unique index other than `_id`; any other write error fails
    /// the batch, so the checkpoint does not move past it.
    async fn write(&self, docs: &[(i64, Document)]) -> Result<(u64, Vec<Refused>), MigrateError> {
        let mut refused = Vec::new();
        let encoding = Instant::now();
        // Each document is encoded once; one that cannot be is refused.
        let mut encoded: Vec<(i64, RawDocumentBuf)> = Vec::with_capacity(docs.len());
        for (id, d) in docs {
            match mongo_write::encode(d) {
                Some(raw) => encoded.push((*id, raw)),
                None => refused.push(Refused {
                    key: *id,
                    reason: "the document cannot be encoded as BSON".into(),
                }),
            }
        }
        self.clock.since(Stage::Encode, encoding);
        let collection = self.entity.collection();
        let conflicts: Vec<&(i64, RawDocumentBuf)> = if self.entity.merges() {
            match merge::merge_page(&self.mongo, collection, &encoded, &self.clock).await {
                Ok(Merged::Written) => Vec::new(),
                Ok(Merged::Declined) => encoded.iter().collect(),
                Err(e) => {
                    return Err(MigrateError::Write {
                        entity: self.entity,
                        source: e.into(),
                    });
                }
            }
        } else {
            let mut conflicts = Vec::new();
            for run in mongo_write::by_size(&encoded, |(_, d)| d.as_bytes().len()) {
                let inserts = run.iter().map(|(_, d)| d.clone());
                let command = mongo_write::command("insert", collection, "documents", inserts);
                for e in self.command(command).await? {
                    match run.get(e.index) {
                        Some(d) if e.code == DUPLICATE_KEY => conflicts.push(d),
                        Some((id, _)) if e.code == VALIDATION_FAILED => {
                            refused.push(self.refused(*id, e.code))
                        }
                        _ => return Err(self.batch_failed(e)),
                    }
                }
            }
            conflicts
        };
        let merge = self.entity.merges();
        for run in mongo_write::by_size(&conflicts, |(_, d)| d.as_bytes().len()) {
            let updates = run
                .iter()
                .map(|(id, d)| mongo_write::upsert_statement(*id, d.clone(), merge));
            let command = mongo_write::command("update", collection, "updates", updates);
            for e in self.command(command).await? {
                match run.get(e.index) {
                    // On an upsert by _id a duplicate key can only come from another unique index.
                    Some((id, _)) if e.code == VALIDATION_FAILED || e.code == DUPLICATE_KEY => {
                        refused.push(self.refused(*id, e.code))
                    }
                    _ => return Err(self.batch_failed(e)),
                }
            }
        }
        Ok(((docs.len() - refused.len()) as u64, refused))
    }

    /// A statement refused for a reason that is not its document's: the batch fails.
    fn batch_failed(&self, statement: WriteError) -> MigrateError {
        MigrateError::Write {
            entity: self.entity,
            source: mongo_write::CommandError::Statement(statement),
        }
    }

    /// Runs a write command through [`mongo_write::run`] (majority write concern, checked).
    async fn command(&self, command: RawDocumentBuf) -> Result<Vec<WriteError>, MigrateError> {
        let writing = Instant::now();
        let result = mongo_write::run(&self.mongo, command).await;
        self.clock.since(Stage::Write, writing);
        result.map_err(|source| MigrateError::Write {
            entity: self.entity,
            source,
        })
    }

    fn refused(&self, key: i64, code: i32) -> Refused {
        tracing::warn!(entity = %self.entity, key, code, "document refused by MongoDB");
        Refused {
            key,
            reason: format!(
                "MongoDB refused the document: {}",
                mongo_write::describe(code)
            ),
        }
    }

    /// The key to start after: the checkpoint when resuming, else 0 (and the checkpoint reset).
    async fn checkpoint_start(&self) -> Result<u64, MigrateError> {
        let name = self.entity.name();
        let previous: Option<u64> = if self.options.resume {
            sqlx::query_scalar("SELECT high_water FROM migration_checkpoints WHERE entity = ?")
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(MigrateError::State)?
        } else {
            None
        };
        let after = previous.unwrap_or(0);
        sqlx::query(
            "INSERT INTO migration_checkpoints (entity, run_id, high_water, finished) VALUES (?, ?, ?, FALSE) \
             ON DUPLICATE KEY UPDATE run_id = VALUES(run_id), high_water = VALUES(high_water), finished = FALSE",
        )
        .bind(name)
        .bind(&self.run_id)
        .bind(after)
        .execute(&self.pool)
        .await
        .map_err(MigrateError::State)?;
        Ok(after)
    }

    async fn lineage_start(&self) -> Result<u64, MigrateError> {
        let id: u64 = sqlx::query_scalar(
            "INSERT INTO data_lineage_tracker (run_id, job, source_tables, target) VALUES (?, 'migrate', ?, ?) RETURNING lineage_id",
        )
        .bind(&self.run_id)
        .bind(self.entity.sources())
        .bind(format!("mongodb:{}.{}", self.mongo.name(), self.entity.collection()))
        .fetch_one(&self.pool)
        .await
        .map_err(MigrateError::State)?;
        Ok(id)
    }

    async fn lineage_finish(
        &self,
        lineage_id: u64,
        report: &EntityReport,
        error: Option<&MigrateError>,
    ) -> Result<(), MigrateError> {
        let (status, message) = match (error, report.refused.first()) {
            (Some(e), _) => ("failed", Some(e.to_string())),
            (None, Some(first)) => {
                let ids: Vec<String> = report
                    .refused
                    .iter()
                    .take(50)
                    .map(|r| r.key.to_string())
                    .collect();
                let more = if report.refused.len() > 50 {
                    ", …"
                } else {
                    ""
                };
                (
                    "complete",
                    Some(format!(
                        "{} documents refused: _id {}{more}; first reason: {}",
                        report.refused.len(),
                        ids.join(", "),
                        first.reason
                    )),
                )
            }
            (None, None) => ("complete", None),
        };
        sqlx::query(
            "UPDATE data_lineage_tracker SET rows_read = ?, rows_written = ?, rows_rejected = ?, \
             finished_at = CURRENT_TIMESTAMP(6), status = ?, error = ? WHERE lineage_id = ?",
        )
        .bind(report.read)
        .bind(report.written)
        .bind(report.refused.len() as u64)
        .bind(status)
        .bind(message)
        .bind(lineage_id)
        .execute(&self.pool)
        .await
        .map_err(MigrateError::State)?;
        Ok(())
    }
}

/// A spawned task that is aborted when its handle is dropped: a stopped migration stops its
/// writes in flight too.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// Pages read ahead of those being written.
const PAGES_AHEAD: usize = 4;

/// Pages written at once per entity.
const WRITES_IN_FLIGHT: usize = 3;

/// Largest page (write commands are cut by size, [`mongo_write::by_size`]).
const MAX_BATCH: u32 = 5_000;

/// Largest page of a merged entity: its transaction stays short, so a concurrent write
/// conflicts with few documents.
const MAX_MERGE_BATCH: u32 = 1_000;
