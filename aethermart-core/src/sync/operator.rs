//! What an operator does to the pipeline by hand: list dead letters, put them back or discard
//! them, and ask for documents to be synced again. Everything goes through the engineer's
//! views and definer-rights procedures (schema version 9), which validate their input and
//! record the caller in `sync_operator_log`; so an engineer's account, which may write no
//! pipeline table, can do all of it.

use super::predicate::{self, Literal, PredicateError};
use crate::progress::Progress;
use crate::projection::Entity;
use chrono::NaiveDateTime;
use futures_util::TryStreamExt;
use sqlx::{Connection, MySqlPool};
use std::collections::BTreeSet;

/// Most keys one `sp_RequestResync` call takes (its own limit).
pub const RESYNC_CHUNK: usize = 10_000;

/// A change that failed too often, as `v_sync_dead_letters` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeadLetter {
    /// Its id (what `requeue --id` and `discard --id` take).
    pub dead_letter_id: u64,
    /// The queue it came from.
    pub queue: String,
    /// The document's key.
    pub entity_key: u64,
    /// `insert`, `update` or `delete`.
    pub operation: String,
    /// The table whose change queued it.
    pub source_table: String,
    /// When the change was made.
    pub changed_at: NaiveDateTime,
    /// How often it was tried.
    pub attempts: u32,
    /// Why it failed (field, key and rule; never a value).
    pub error: String,
    /// When it was given up.
    pub dead_at: NaiveDateTime,
}

/// Which dead letters an operation takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetters {
    /// One, by id.
    Id(u64),
    /// Every one of one entity's queue.
    Queue(Entity),
    /// Every one.
    All,
}

/// What to do with dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Back on their queue (after the data was fixed).
    Requeue,
    /// Gone (the document is right as it is, or its row is gone).
    Discard,
}

impl Resolution {
    fn action(self) -> &'static str {
        match self {
            Self::Requeue => "requeue",
            Self::Discard => "discard",
        }
    }
}

/// Which documents a resync request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResyncKeys {
    /// These keys.
    Keys(Vec<u64>),
    /// The keys of the entity's table rows matching a predicate (see [`predicate`]), read with
    /// the caller's own SELECT rights.
    Where(String),
    /// Every row of the entity's table.
    All,
}

/// An operator's request failed.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The `--where` predicate was refused.
    #[error(transparent)]
    Predicate(#[from] PredicateError),
    /// The caller may not read the entity's table (`--where` and `--all` select its keys with
    /// the caller's own rights; an engineer gives `--keys`).
    #[error(
        "{table} is not readable by this account: --where and --all select its keys with your own SELECT rights (give --keys instead)"
    )]
    NoReadAccess {
        /// The table.
        table: &'static str,
    },
    /// `--id N` named no dead letter.
    #[error("no dead letter with id {0} (see `aethermart sync dead-letters list`)")]
    UnknownDeadLetter(u64),
    /// MariaDB refused or failed; nothing of this operation was applied.
    #[error("{step} failed: {source}")]
    MariaDb {
        /// What was being done.
        step: String,
        /// The server's error.
        #[source]
        source: sqlx::Error,
    },
}

fn db(step: impl Into<String>) -> impl FnOnce(sqlx::Error) -> OperatorError {
    let step = step.into();
    move |source| OperatorError::MariaDb { step, source }
}

/// The dead letters, oldest first, of one queue or all.
pub async fn dead_letters(
    pool: &MySqlPool,
    queue: Option<Entity>,
) -> Result<Vec<DeadLetter>, OperatorError> {
    sqlx::query_as::<_, DeadLetter>(
        "SELECT dead_letter_id, queue, entity_key, operation, source_table, changed_at, \
         attempts, error, dead_at FROM v_sync_dead_letters \
         WHERE ? IS NULL OR queue = ? ORDER BY dead_letter_id",
    )
    .bind(queue.map(Entity::queue_table))
    .bind(queue.map(Entity::queue_table))
    .fetch_all(pool)
    .await
    .map_err(db("reading v_sync_dead_letters"))
}

impl sqlx::FromRow<'_, sqlx::mysql::MySqlRow> for DeadLetter {
    fn from_row(row: &sqlx::mysql::MySqlRow) -> sqlx::Result<Self> {
        use sqlx::Row;
        Ok(Self {
            dead_letter_id: row.try_get("dead_letter_id")?,
            queue: row.try_get("queue")?,
            entity_key: row.try_get("entity_key")?,
            operation: row.try_get("operation")?,
            source_table: row.try_get("source_table")?,
            changed_at: row.try_get("changed_at")?,
            attempts: row.try_get("attempts")?,
            error: row.try_get("error")?,
            dead_at: row.try_get("dead_at")?,
        })
    }
}

/// Requeues or discards the chosen dead letters in one transaction: all of them or, on any
/// error, none. Returns how many. Each is recorded in `sync_operator_log` with the caller.
pub async fn resolve_dead_letters(
    pool: &MySqlPool,
    which: DeadLetters,
    resolution: Resolution,
) -> Result<u64, OperatorError> {
    let ids: Vec<u64> = match which {
        DeadLetters::Id(id) => vec![id],
        DeadLetters::Queue(entity) => ids_of(dead_letters(pool, Some(entity)).await?),
        DeadLetters::All => ids_of(dead_letters(pool, None).await?),
    };
    let mut conn = pool.acquire().await.map_err(db("connecting to MariaDB"))?;
    let mut tx = conn.begin().await.map_err(db("starting a transaction"))?;
    let bulk = !matches!(which, DeadLetters::Id(_));
    let mut resolved_count = 0_u64;
    for &id in &ids {
        let resolved = sqlx::query("CALL sp_ResolveDeadLetter(?, ?)")
            .bind(id)
            .bind(resolution.action())
            .execute(&mut *tx)
            .await;
        match resolved {
            Ok(_) => resolved_count += 1,
            // Listed, then resolved by another operator meanwhile: nothing left to do for it.
            Err(e) if bulk && crate::orders::server_error(&e).is_some_and(|(n, _)| n == 30044) => {}
            Err(e) if crate::orders::server_error(&e).is_some_and(|(n, _)| n == 30044) => {
                return Err(OperatorError::UnknownDeadLetter(id));
            }
            Err(source) => {
                return Err(OperatorError::MariaDb {
                    step: format!("{} dead letter {id}", resolution.action()),
                    source,
                });
            }
        }
    }
    tx.commit().await.map_err(db("committing"))?;
    tracing::info!(
        count = resolved_count,
        action = resolution.action(),
        "dead letters resolved"
    );
    Ok(resolved_count)
}

fn ids_of(letters: Vec<DeadLetter>) -> Vec<u64> {
    letters.into_iter().map(|d| d.dead_letter_id).collect()
}

/// Queues the chosen documents of `entity` for the sync again, [`RESYNC_CHUNK`] keys per
/// `sp_RequestResync` call (each recorded in `sync_operator_log`); a running worker rewrites
/// them from the current rows. Returns how many keys were requested (0 when none was given or
/// matched: nothing is called then). `progress` counts keys
/// under the entity's name.
pub async fn request_resync(
    pool: &MySqlPool,
    entity: Entity,
    keys: ResyncKeys,
    progress: &dyn Progress,
) -> Result<u64, OperatorError> {
    let mut keys = match keys {
        ResyncKeys::Keys(keys) => keys,
        ResyncKeys::Where(text) => {
            let columns = table_columns(pool, entity).await?;
            let filter = predicate::parse(&text, &columns)?;
            matching_keys(pool, entity, Some(filter)).await?
        }
        ResyncKeys::All => {
            table_columns(pool, entity).await?;
            matching_keys(pool, entity, None).await?
        }
    };
    keys.sort_unstable();
    keys.dedup();
    let name = entity.name();
    progress.begin(name, Some(keys.len() as u64));
    for chunk in keys.chunks(RESYNC_CHUNK) {
        let json = serde_json::to_string(chunk).unwrap_or_default();
        sqlx::query("CALL sp_RequestResync(?, ?)")
            .bind(name)
            .bind(json)
            .execute(pool)
            .await
            .map_err(db(format!("requesting a resync of {} {name}", chunk.len())))?;
        progress.advance(name, chunk.len() as u64);
    }
    progress.finish(name);
    tracing::info!(%entity, keys = keys.len(), "resync requested");
    Ok(keys.len() as u64)
}

/// The column names of the entity's table.
async fn table_columns(
    pool: &MySqlPool,
    entity: Entity,
) -> Result<BTreeSet<String>, OperatorError> {
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
    )
    .bind(entity.table())
    .fetch_all(pool)
    .await
    .map_err(db(format!("reading the columns of {}", entity.table())))?;
    if columns.is_empty() {
        // information_schema shows only what the account may read.
        return Err(OperatorError::NoReadAccess {
            table: entity.table(),
        });
    }
    Ok(columns.into_iter().collect())
}

/// Keys of the entity's table rows matching `filter` (all rows without one), ascending.
async fn matching_keys(
    pool: &MySqlPool,
    entity: Entity,
    filter: Option<predicate::Predicate>,
) -> Result<Vec<u64>, OperatorError> {
    let (condition, binds) = filter.map_or(("TRUE".to_owned(), Vec::new()), |p| (p.sql, p.binds));
    let sql = format!(
        "SELECT CAST(`{key}` AS UNSIGNED) FROM `{table}` WHERE {condition} ORDER BY `{key}`",
        key = entity.key_column(),
        table = entity.table()
    );
    let mut query = sqlx::query_scalar::<_, u64>(&sql);
    for literal in binds {
        query = match literal {
            Literal::Int(n) => query.bind(n),
            Literal::Decimal(d) => query.bind(d),
            Literal::Text(t) => query.bind(t),
            Literal::Bool(b) => query.bind(b),
        };
    }
    query
        .fetch(pool)
        .try_collect()
        .await
        .map_err(db(format!("selecting the {} to resync", entity.name())))
}
