//! [`MongoSink`]: applies writes with one unordered `update` command (upserts by `_id`) and one
//! unordered `delete` command per batch and collection, majority write concern. Both are
//! idempotent; the commands are MongoDB 6-compatible (8.0's `bulkWrite` is not needed).
//!
//! With an embedding model ([`MongoSink::with_embedder`], feature `embeddings`), a batch of
//! products or services then refreshes the search vectors of the items it wrote whose text
//! (name, description, category path) changed, and only those, and removes those of deleted
//! items. A failure a retry may cure (network, primary stepping down) fails the batch, which is
//! retried whole (its writes are idempotent); a vector that cannot be computed, read or stored
//! for any other reason is logged and left stale (search ignores it and ranks the item as an
//! average one of its category; `aethermart search reindex` repairs it): the search index never
//! stalls the sync. The embedding runs inside the batch, while its claim is held: a batch that
//! renames many items (a category rename) holds its keys for about 20 ms per item.

use super::{Sink, SyncError, Write, WriteOp};
use crate::mongo_write;
use crate::projection::Refused;
use async_trait::async_trait;
use mongodb::bson::RawDocumentBuf;

/// Writes documents into a MongoDB database.
#[derive(Debug, Clone)]
pub struct MongoSink {
    db: mongodb::Database,
    #[cfg(feature = "embeddings")]
    embedder: Option<std::sync::Arc<crate::search::embedding::Embedder>>,
}

impl MongoSink {
    /// A sink writing into `db`.
    pub fn new(db: mongodb::Database) -> Self {
        Self {
            db,
            #[cfg(feature = "embeddings")]
            embedder: None,
        }
    }

    /// The same sink, also keeping the search vectors of the products and services it writes
    /// fresh with `embedder`.
    #[cfg(feature = "embeddings")]
    pub fn with_embedder(
        self,
        embedder: std::sync::Arc<crate::search::embedding::Embedder>,
    ) -> Self {
        Self {
            embedder: Some(embedder),
            ..self
        }
    }

    /// Refreshes the search vectors of the items `writes` wrote or deleted (those not
    /// `refused`); see the module's documentation.
    #[cfg(feature = "embeddings")]
    async fn refresh_vectors(
        &self,
        embedder: &std::sync::Arc<crate::search::embedding::Embedder>,
        collection: &str,
        writes: &[Write],
        refused: &[Refused],
    ) -> Result<(), SyncError> {
        use crate::projection::document::{PRODUCTS, SERVICES};
        use crate::search::{Kind, SearchError, index, vectors};
        let (collection, kind) = match collection {
            PRODUCTS => (PRODUCTS, Kind::Product),
            SERVICES => (SERVICES, Kind::Service),
            _ => return Ok(()),
        };
        let applied = writes
            .iter()
            .filter(|w| !refused.iter().any(|r| r.key == w.key));
        let (mut items, mut deleted) = (Vec::new(), Vec::new());
        for w in applied {
            match &w.op {
                WriteOp::Replace(d) | WriteOp::Merge(d) => {
                    match crate::search::item(collection, kind, d) {
                        Ok(item) => items.push(item),
                        Err(e) => tracing::warn!(error = %e, "no search vector for this item"),
                    }
                }
                WriteOp::Delete => deleted.push(w.key),
            }
        }
        let result = match vectors::remove(&self.db, kind, &deleted).await {
            Ok(()) => index::refresh(&self.db, embedder, &items).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(refreshed) => {
                if refreshed > 0 {
                    tracing::debug!(collection, refreshed, "search vectors recomputed");
                }
                Ok(())
            }
            Err(SearchError::Write { source }) if source.is_retryable() => {
                Err(SyncError::MongoDb {
                    collection: vectors::COLLECTION.to_owned(),
                    source: *source,
                })
            }
            Err(SearchError::Mongo { source, .. }) if crate::retry::mongodb_idempotent(&source) => {
                Err(SyncError::MongoDb {
                    collection: vectors::COLLECTION.to_owned(),
                    source: mongo_write::CommandError::Driver(source),
                })
            }
            Err(e) => {
                tracing::warn!(collection, error = %e, "search vectors left stale");
                Ok(())
            }
        }
    }

    /// Runs a write command; a failure of the whole command is refused for its documents
    /// ([`SyncError::MongoDbRefused`]) or not ([`SyncError::MongoDb`]), as
    /// [`mongo_write::CommandError::lies_in_documents`] decides.
    async fn run(
        &self,
        collection: &str,
        command: RawDocumentBuf,
    ) -> Result<Vec<mongo_write::WriteError>, SyncError> {
        mongo_write::run(&self.db, command).await.map_err(|source| {
            let collection = collection.to_owned();
            if source.lies_in_documents() {
                SyncError::MongoDbRefused { collection, source }
            } else {
                SyncError::MongoDb { collection, source }
            }
        })
    }
}

#[async_trait]
impl Sink for MongoSink {
    async fn apply(&self, collection: &str, writes: &[Write]) -> Result<Vec<Refused>, SyncError> {
        let mut refused = Vec::new();
        let (mut upsert_keys, mut upserts) = (Vec::new(), Vec::new());
        let mut deletes: Vec<i64> = Vec::new();
        for w in writes {
            let (document, merge) = match &w.op {
                WriteOp::Merge(d) => (d, true),
                WriteOp::Replace(d) => (d, false),
                WriteOp::Delete => {
                    deletes.push(w.key);
                    continue;
                }
            };
            match mongo_write::encode(document) {
                Some(raw) => {
                    upsert_keys.push(w.key);
                    upserts.push(mongo_write::upsert_statement(w.key, raw, merge));
                }
                None => refused.push(Refused {
                    key: w.key,
                    reason: "the document cannot be encoded as BSON".into(),
                }),
            }
        }
        // Deletes first: a new document may take over the unique sku/code of a deleted one.
        if !deletes.is_empty() {
            let statements = deletes.iter().map(|k| mongo_write::delete_statement(*k));
            let command = mongo_write::command("delete", collection, "deletes", statements);
            for e in self.run(collection, command).await? {
                if let Some(key) = deletes.get(e.index) {
                    refused.push(Refused {
                        key: *key,
                        reason: format!(
                            "MongoDB refused the delete: {}",
                            mongo_write::describe(e.code)
                        ),
                    });
                }
            }
        }
        if !upserts.is_empty() {
            let command = mongo_write::command("update", collection, "updates", upserts);
            for e in self.run(collection, command).await? {
                let Some(key) = upsert_keys.get(e.index) else {
                    continue;
                };
                tracing::warn!(
                    collection,
                    key,
                    code = e.code,
                    "document refused by MongoDB"
                );
                refused.push(Refused {
                    key: *key,
                    reason: format!(
                        "MongoDB refused the document: {}",
                        mongo_write::describe(e.code)
                    ),
                });
            }
        }
        #[cfg(feature = "embeddings")]
        if let Some(embedder) = &self.embedder {
            self.refresh_vectors(embedder, collection, writes, &refused)
                .await?;
        }
        Ok(refused)
    }
}
