//! The second direction: MongoDB's `reviews` → the products' `rating` summary.
//!
//! [`ReviewFollower`] follows the change stream of `reviews` (inserts, deletes, replacements,
//! and updates of `rating` or `product_id`), names the products each event affects (from the
//! review and its pre-image), and queues them on `product_sync_queue` — in one MariaDB
//! transaction with the stream's resume token (`sync_stream_positions`). The product sync then
//! rewrites those documents as it rewrites any product: from the current row and a rating
//! aggregated from the reviews themselves, by the one worker that holds the product's key.
//!
//! So a product document has a single writer that reads both sides after the events that
//! queued it: a rating refresh can neither overwrite a newer name from MariaDB nor a MariaDB
//! change a newer rating, a replayed event only queues a key again, and a restart resumes from
//! the stored token (at-least-once). A token the server no longer has (its oplog rolled over),
//! or no token at all (the first start), makes the follower queue every product once, with a
//! log line saying why: never a silent gap.

use super::SyncMetrics;
use crate::cluster::ClusterPool;
use crate::projection::document::REVIEWS;
use mongodb::bson::{Bson, Document, doc};
use mongodb::change_stream::ChangeStream;
use mongodb::change_stream::event::{ChangeStreamEvent, OperationType, ResumeToken};
use mongodb::options::{FullDocumentBeforeChangeType, FullDocumentType};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// The stream's name in `sync_stream_positions`.
pub const REVIEW_STREAM: &str = "reviews";
/// Events applied in one transaction at most.
const BATCH: usize = 500;
/// How long a batch waits for more events once it has one.
const GATHER: Duration = Duration::from_millis(20);
/// How often the position is stored while the stream is quiet.
const IDLE_STORE: Duration = Duration::from_secs(30);
/// The longest pause between attempts after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Following the review stream failed in a way retrying does not fix.
#[derive(Debug, thiserror::Error)]
pub enum ReviewStreamError {
    /// MariaDB refused (e.g. a missing privilege).
    #[error("review stream: {step} failed: {source}")]
    MariaDb {
        /// What was being done.
        step: &'static str,
        /// The server's error.
        #[source]
        source: sqlx::Error,
    },
    /// MongoDB refused (e.g. change streams unsupported).
    #[error("review stream: {step} failed: {source}")]
    MongoDb {
        /// What was being done.
        step: &'static str,
        /// The command's failure (described by its code).
        #[source]
        source: crate::mongo_write::CommandError,
    },
}

/// Follows `reviews` and queues the products whose rating changed (see the module docs).
#[derive(Debug, Clone)]
pub struct ReviewFollower {
    mariadb: ClusterPool,
    mongo: mongodb::Database,
    metrics: Arc<SyncMetrics>,
    /// Pause after a transient failure before opening the stream again.
    backoff: Duration,
}

/// Why the stream (re)starts from the beginning of time instead of a stored position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restart {
    /// Resumed from the stored token.
    Resumed,
    /// No position stored yet.
    FirstStart,
    /// The server no longer has the stored position.
    HistoryLost,
}

impl ReviewFollower {
    /// A follower queuing on `mariadb`'s product queue, reading `mongo`'s `reviews`, counting
    /// in `metrics` (the worker's, so `/metrics` shows it).
    pub fn new(mariadb: ClusterPool, mongo: mongodb::Database, metrics: Arc<SyncMetrics>) -> Self {
        Self {
            mariadb,
            mongo,
            metrics,
            backoff: Duration::from_millis(500),
        }
    }

    /// Follows until `stop` resolves. Whatever fails (either store unreachable, a lost cursor,
    /// a missing privilege, a schema not yet applied) is logged, counted
    /// (`aethermart_sync_review_stream_errors_total`, and `/readyz` says so) and retried from
    /// the stored position after a backoff growing to a minute: the review stream never stops
    /// the queue sync, and heals by itself once the cause is fixed. A stream the server ends
    /// (the collection dropped) is opened again after the same pause.
    pub async fn run(&self, stop: impl std::future::Future<Output = ()> + Send) {
        tokio::pin!(stop);
        let mut backoff = self.backoff;
        loop {
            let outcome = tokio::select! {
                _ = &mut stop => return,
                result = self.follow_once() => result,
            };
            match outcome {
                Ok(()) => {
                    tracing::info!("the review stream ended (reviews dropped?); opening it again")
                }
                Err(e) => {
                    self.metrics.review_stream_error();
                    if is_transient(&e) {
                        tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64,
                            "review stream interrupted; resuming from the stored position");
                    } else {
                        tracing::error!(error = %e, retry_in_ms = backoff.as_millis() as u64,
                            "review stream failed; retrying (product ratings are not refreshed meanwhile)");
                    }
                }
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Opens the stream at the stored position and applies events until it fails.
    async fn follow_once(&self) -> Result<(), ReviewStreamError> {
        if let Err(e) = crate::migrate::keep_review_pre_images(&self.mongo).await {
            // Without pre-images a deleted review's product is unknown; such an event then
            // queues every product (see `products_of`), so this is slower, not wrong. No
            // collection yet (code 26): the migration or the first review creates it.
            let code = crate::mongo_write::CommandError::from(e.source).code();
            if code == Some(26) {
                tracing::debug!("reviews does not exist yet: pre-images switched on later");
            } else {
                tracing::warn!(code, "reviews: could not switch on pre-images");
            }
        }
        let stored = self.stored_token().await?;
        let (mut stream, restart) = match stored {
            Some(token) => match self.open(Some(token)).await {
                Ok(stream) => (stream, Restart::Resumed),
                Err(e) if history_lost(&e) => (self.open(None).await?, Restart::HistoryLost),
                Err(e) => return Err(e),
            },
            None => (self.open(None).await?, Restart::FirstStart),
        };
        match restart {
            Restart::Resumed => tracing::info!("review stream resumed from its stored position"),
            Restart::FirstStart | Restart::HistoryLost => {
                let why = if restart == Restart::FirstStart {
                    "no stored position (first start)"
                } else {
                    "the server no longer has the stored position (its oplog moved on)"
                };
                // The stream is open before the products are queued: nothing falls between.
                let queued = self.queue_every_product(stream.resume_token()).await?;
                tracing::warn!(
                    products = queued,
                    reason = why,
                    "review stream: recomputing every product's rating"
                );
            }
        }
        let mut stored_at = std::time::Instant::now();
        loop {
            if !stream.is_alive() {
                return Ok(());
            }
            let mut events = Vec::new();
            // Waits up to the server's await time (about a second) for a batch.
            match stream
                .next_if_any()
                .await
                .map_err(mongo("reading the change stream"))?
            {
                Some(event) => events.push(event),
                None => {
                    // Quiet: keep the stored position near the stream's, so a restart after a
                    // long quiet spell does not start from a point the oplog no longer holds.
                    if stored_at.elapsed() >= IDLE_STORE {
                        self.store_only(stream.resume_token()).await?;
                        stored_at = std::time::Instant::now();
                    }
                    continue;
                }
            }
            while events.len() < BATCH {
                match tokio::time::timeout(GATHER, stream.next_if_any()).await {
                    Ok(Ok(Some(event))) => events.push(event),
                    Ok(Ok(None)) | Err(_) => break,
                    Ok(Err(e)) => return Err(mongo("reading the change stream")(e)),
                }
            }
            self.apply(stream.resume_token(), &events).await?;
            stored_at = std::time::Instant::now();
        }
    }

    async fn open(
        &self,
        token: Option<ResumeToken>,
    ) -> Result<ChangeStream<ChangeStreamEvent<Document>>, ReviewStreamError> {
        let pipeline = [
            doc! { "$match": { "operationType": { "$in": ["insert", "update", "replace", "delete"] } } },
        ];
        self.mongo
            .collection::<Document>(REVIEWS)
            .watch()
            .pipeline(pipeline)
            .full_document(FullDocumentType::UpdateLookup)
            .full_document_before_change(FullDocumentBeforeChangeType::WhenAvailable)
            .resume_after(token)
            .await
            .map_err(mongo("opening the change stream on reviews"))
    }

    /// Queues the products of `events` and stores the stream's position after them, in one
    /// transaction.
    async fn apply(
        &self,
        token: Option<ResumeToken>,
        events: &[ChangeStreamEvent<Document>],
    ) -> Result<(), ReviewStreamError> {
        let mut products = BTreeSet::new();
        let mut unknown = false;
        for event in events {
            match products_of(event) {
                Some(keys) => products.extend(keys),
                None => unknown = true,
            }
        }
        let newest = events
            .iter()
            .filter_map(|e| e.wall_time.map(|t| t.timestamp_millis()))
            .max();
        let mut tx = self.begin().await?;
        if unknown {
            tracing::warn!("a review event names no product (no pre-image): queuing every product");
            queue_all(&mut tx).await?;
        } else if !products.is_empty() {
            let mut insert = sqlx::QueryBuilder::<sqlx::MySql>::new(
                "INSERT INTO product_sync_queue (entity_key, operation, source_table) ",
            );
            insert.push_values(&products, |mut row, key| {
                row.push_bind(*key).push_bind("update").push_bind(REVIEWS);
            });
            insert
                .build()
                .execute(&mut *tx)
                .await
                .map_err(db("queuing products"))?;
        }
        store_position(&mut tx, token, newest, events.len() as u64).await?;
        tx.commit().await.map_err(db("committing"))?;
        self.metrics.review_events(events.len() as u64, newest);
        self.metrics.review_position_stored();
        tracing::debug!(
            events = events.len(),
            products = products.len(),
            "review events applied"
        );
        Ok(())
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::MySql>, ReviewStreamError> {
        self.mariadb
            .pool()
            .begin()
            .await
            .map_err(db("starting a transaction"))
    }

    /// Stores the stream's position alone (no events: the stream was quiet).
    async fn store_only(&self, token: Option<ResumeToken>) -> Result<(), ReviewStreamError> {
        let mut tx = self.begin().await?;
        store_position(&mut tx, token, None, 0).await?;
        tx.commit().await.map_err(db("committing"))?;
        self.metrics.review_position_stored();
        Ok(())
    }

    async fn queue_every_product(
        &self,
        token: Option<ResumeToken>,
    ) -> Result<u64, ReviewStreamError> {
        let mut tx = self.begin().await?;
        let queued = queue_all(&mut tx).await?;
        store_position(&mut tx, token, None, 0).await?;
        tx.commit().await.map_err(db("committing"))?;
        Ok(queued)
    }

    async fn stored_token(&self) -> Result<Option<ResumeToken>, ReviewStreamError> {
        let raw: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT resume_token FROM sync_stream_positions WHERE stream = ?")
                .bind(REVIEW_STREAM)
                .fetch_optional(self.mariadb.pool())
                .await
                .map_err(db("reading the stream's position"))?;
        Ok(raw.and_then(|bytes| match mongodb::bson::from_slice::<ResumeToken>(&bytes) {
            Ok(token) => Some(token),
            Err(e) => {
                tracing::warn!(error = %e, "the stored resume token is unreadable; starting over");
                None
            }
        }))
    }
}

/// The products a review event changes the rating of: the review's product before and after.
/// `None` when a delete or replacement carries no pre-image (the product is unknown).
fn products_of(event: &ChangeStreamEvent<Document>) -> Option<BTreeSet<i64>> {
    let product = |d: Option<&Document>| d.and_then(|d| key(d.get("product_id")));
    let before_image = event.full_document_before_change.as_ref();
    let keys: BTreeSet<i64> = product(before_image)
        .into_iter()
        .chain(product(event.full_document.as_ref()))
        .collect();
    let update = event.update_description.as_ref();
    let touches = |field: &str| {
        update.is_none_or(|u| {
            u.updated_fields.contains_key(field) || u.removed_fields.iter().any(|f| f == field)
        })
    };
    let moved = update.is_some_and(|u| u.updated_fields.contains_key("product_id"));
    match event.operation_type {
        OperationType::Insert => Some(keys),
        OperationType::Update if !touches("rating") && !touches("product_id") => {
            Some(BTreeSet::new())
        }
        // Moved to another product without a pre-image: its old product is unknown.
        OperationType::Update if moved && before_image.is_none() => None,
        OperationType::Update => Some(keys),
        OperationType::Replace | OperationType::Delete if before_image.is_none() => None,
        OperationType::Replace | OperationType::Delete => Some(keys),
        _ => Some(BTreeSet::new()),
    }
}

/// A product key from a review's `product_id`: a positive integer, or nothing (a review naming
/// no product, or a malformed one, refreshes no rating and must not stop the stream).
fn key(value: Option<&Bson>) -> Option<i64> {
    let key = match value? {
        Bson::Int64(n) => *n,
        Bson::Int32(n) => i64::from(*n),
        _ => return None,
    };
    (key > 0).then_some(key)
}

/// Queues every product (marked `reviews:all`), unless such a full requeue is still waiting:
/// a catch-up full of unattributable deletes queues the catalogue once, not once per batch.
async fn queue_all(tx: &mut sqlx::MySqlConnection) -> Result<u64, ReviewStreamError> {
    let pending: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM product_sync_queue WHERE source_table = 'reviews:all' LIMIT 1",
    )
    .fetch_optional(&mut *tx)
    .await
    .map_err(db("looking for a pending full requeue"))?;
    if pending.is_some() {
        return Ok(0);
    }
    sqlx::query(
        "INSERT INTO product_sync_queue (entity_key, operation, source_table) \
         SELECT product_id, 'update', 'reviews:all' FROM Products",
    )
    .execute(tx)
    .await
    .map(|r| r.rows_affected())
    .map_err(db("queuing every product"))
}

/// Stores `token` (the stream's resume token after the applied events; the newest token wins,
/// so with several followers a restart may replay a little, which only queues keys again);
/// `newest` (Unix ms) is the newest applied event's time, kept for `sync status` only.
async fn store_position(
    tx: &mut sqlx::MySqlConnection,
    token: Option<ResumeToken>,
    newest: Option<i64>,
    events: u64,
) -> Result<(), ReviewStreamError> {
    let Some(token) = token else {
        return Ok(());
    };
    let bytes = mongodb::bson::to_vec(&token).unwrap_or_default();
    let at = newest.map(|ms| ms as f64 / 1e3);
    sqlx::query(
        "INSERT INTO sync_stream_positions (stream, resume_token, event_time, events) \
         VALUES (?, ?, COALESCE(FROM_UNIXTIME(?), NOW(6)), ?) \
         ON DUPLICATE KEY UPDATE \
           resume_token = VALUES(resume_token), \
           event_time = IF(? IS NULL, event_time, GREATEST(event_time, VALUES(event_time))), \
           events = events + VALUES(events), \
           updated_at = NOW(6)",
    )
    .bind(REVIEW_STREAM)
    .bind(bytes)
    .bind(at)
    .bind(events)
    .bind(at)
    .execute(tx)
    .await
    .map(drop)
    .map_err(db("storing the stream's position"))
}

fn db(step: &'static str) -> impl Fn(sqlx::Error) -> ReviewStreamError {
    move |source| ReviewStreamError::MariaDb { step, source }
}

fn mongo(step: &'static str) -> impl Fn(mongodb::error::Error) -> ReviewStreamError {
    move |e| ReviewStreamError::MongoDb {
        step,
        source: e.into(),
    }
}

/// The stored position is no use to the server: gone from its oplog (ChangeStreamHistoryLost
/// 286, 280) or a token it cannot read (InvalidResumeToken 260, 40647 "resume token is not
/// valid", e.g. from another deployment after a restore).
fn history_lost(e: &ReviewStreamError) -> bool {
    matches!(e, ReviewStreamError::MongoDb { source, .. } if source.code().is_some_and(|c| [260, 280, 286, 40647].contains(&c)))
}

fn is_transient(e: &ReviewStreamError) -> bool {
    match e {
        ReviewStreamError::MariaDb { source, .. } => crate::retry::mariadb_idempotent(source),
        ReviewStreamError::MongoDb { source, .. } => {
            source.is_retryable() || source.code().is_none()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_positive_integer_product_ids_are_keys() {
        assert_eq!(key(Some(&Bson::Int64(7))), Some(7));
        assert_eq!(key(Some(&Bson::Int32(7))), Some(7));
        for bad in [
            Bson::Int64(-1),
            Bson::Int64(0),
            Bson::String("7".into()),
            Bson::Double(7.0),
            Bson::Null,
        ] {
            assert_eq!(key(Some(&bad)), None, "{bad:?}");
        }
        assert_eq!(key(None), None);
    }
}
