//! [`MongoSink`]: applies writes with one unordered `update` command (upserts by `_id`) and one
//! unordered `delete` command per batch and collection, majority write concern. Both are
//! idempotent; the commands are MongoDB 6-compatible (8.0's `bulkWrite` is not needed).

use super::{Refused, Sink, SyncError, Write, WriteOp};
use crate::mongo_write::{self, CommandError};
use async_trait::async_trait;
use mongodb::bson::{Document, doc};
use mongodb::error::ErrorKind;

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

    async fn run(
        &self,
        collection: &str,
        command: Document,
    ) -> Result<Vec<mongo_write::WriteError>, SyncError> {
        let errors = mongo_write::run(&self.db, command).await.map_err(|e| {
            let code = match &e {
                CommandError::Driver(d) => match &*d.kind {
                    ErrorKind::Command(c) => Some(c.code),
                    _ => None,
                },
                CommandError::WriteConcern { .. } => None,
            };
            match code {
                Some(code) if DOCUMENT_CODES.contains(&code) => SyncError::MongoDbRefused {
                    collection: collection.to_owned(),
                    code,
                    reason: e.to_string(),
                },
                _ => SyncError::MongoDb {
                    collection: collection.to_owned(),
                    transient: match &e {
                        CommandError::WriteConcern { .. } => true,
                        CommandError::Driver(d) => driver_transient(d),
                    },
                    reason: e.to_string(),
                },
            }
        })?;
        // A statement refused for a passing reason (an election, a shutdown) is no fault of
        // its document: the whole batch is retried instead of counting an attempt.
        if let Some(e) = errors.iter().find(|e| RETRYABLE_CODES.contains(&e.code)) {
            return Err(SyncError::MongoDb {
                collection: collection.to_owned(),
                transient: true,
                reason: format!("code {}: {}", e.code, e.reason),
            });
        }
        Ok(errors)
    }
}

/// Errors after which the same write may succeed: NotWritablePrimary, InterruptedAtShutdown,
/// InterruptedDueToReplStateChange, PrimarySteppedDown, ShutdownInProgress, HostUnreachable,
/// HostNotFound, NetworkTimeout, SocketException, NotPrimaryNoSecondaryOk,
/// NotPrimaryOrSecondary, ExceededTimeLimit, MaxTimeMSExpired, WriteConcernFailed.
const RETRYABLE_CODES: [i32; 14] = [
    10107, 11600, 11602, 189, 91, 6, 7, 89, 9001, 13435, 13436, 262, 50, 64,
];

/// Errors that lie in the documents of a batch: BadValue, FailedToParse, TypeMismatch,
/// DollarPrefixedFieldName, DocumentValidationFailure, BSONObjectTooLarge, DuplicateKey, …
const DOCUMENT_CODES: [i32; 12] = [2, 9, 14, 17, 52, 55, 56, 57, 121, 10334, 11000, 17419];

/// Network trouble, no server to select, elections, shutdowns, write concern not met: worth
/// retrying. Anything else (a malformed command, an authorization failure) is not.
fn driver_transient(e: &mongodb::error::Error) -> bool {
    if e.contains_label("RetryableWriteError") {
        return true;
    }
    match &*e.kind {
        ErrorKind::Io(_)
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. } => true,
        ErrorKind::Command(c) => RETRYABLE_CODES.contains(&c.code),
        ErrorKind::Write(mongodb::error::WriteFailure::WriteConcernError(_)) => true,
        _ => false,
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
                            "MongoDB refused the delete (code {}): {}",
                            e.code, e.reason
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
                tracing::warn!(collection, key, code = e.code, reason = %e.reason, "document refused by MongoDB");
                refused.push(Refused {
                    key: *key,
                    reason: format!(
                        "MongoDB refused the document (code {}): {}",
                        e.code, e.reason
                    ),
                });
            }
        }
        Ok(refused)
    }
}
