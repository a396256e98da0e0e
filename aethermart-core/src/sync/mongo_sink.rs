//! [`MongoSink`]: applies writes with one unordered `update` command (upserts by `_id`) and one
//! unordered `delete` command per batch and collection, majority write concern. Both are
//! idempotent; the commands are MongoDB 6-compatible (8.0's `bulkWrite` is not needed).

use super::{Sink, SyncError, Write, WriteOp};
use crate::mongo_write;
use crate::projection::Refused;
use async_trait::async_trait;
use mongodb::bson::RawDocumentBuf;

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
        Ok(refused)
    }
}
