//! [`MongoSink`]: applies writes with one unordered `update` command (upserts by `_id`) and one
//! unordered `delete` command per batch and collection, majority write concern. Both are
//! idempotent; the commands are MongoDB 6-compatible (8.0's `bulkWrite` is not needed).

use super::{Sink, SyncError, Write, WriteOp};
use crate::mongo_write;
use crate::projection::Refused;
use async_trait::async_trait;
use mongodb::bson::{Document, doc};

/// Writes documents into a MongoDB database.
#[derive(Debug, Clone)]
pub struct MongoSink {
    db: mongodb::Database,
}

impl MongoSink {
    /// A sink writing into `db`.
    pub fn new(db: mongodb::Database) -> Self {
        Self { db }
    }

    /// Runs a write command; a failure of the whole command is refused for its documents
    /// ([`SyncError::MongoDbRefused`]) or not ([`SyncError::MongoDb`]), as
    /// [`mongo_write::CommandError::lies_in_documents`] decides.
    async fn run(
        &self,
        collection: &str,
        command: Document,
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
        let mut upserts: Vec<(i64, Document)> = Vec::new();
        let mut deletes: Vec<i64> = Vec::new();
        for w in writes {
            match &w.op {
                WriteOp::Merge(d) => upserts.push((
                    w.key,
                    doc! { "q": { "_id": w.key }, "u": { "$set": d }, "upsert": true },
                )),
                WriteOp::Replace(d) => upserts.push((
                    w.key,
                    doc! { "q": { "_id": w.key }, "u": d, "upsert": true },
                )),
                WriteOp::Delete => deletes.push(w.key),
            }
        }
        // Deletes first: a new document may take over the unique sku/code of a deleted one.
        let mut refused = Vec::new();
        if !deletes.is_empty() {
            let statements: Vec<Document> = deletes
                .iter()
                .map(|k| doc! { "q": { "_id": k }, "limit": 1 })
                .collect();
            let errors = self
                .run(
                    collection,
                    doc! { "delete": collection, "deletes": statements, "ordered": false },
                )
                .await?;
            for e in errors {
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
            let updates: Vec<&Document> = upserts.iter().map(|(_, u)| u).collect();
            let errors = self
                .run(
                    collection,
                    doc! { "update": collection, "updates": updates, "ordered": false },
                )
                .await?;
            for e in errors {
                let Some((key, _)) = upserts.get(e.index) else {
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
        Ok(refused)
    }
}
