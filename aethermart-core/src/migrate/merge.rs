//! Profiles at insert speed: a page of relational fields merged into the documents that exist
//! as whole-document writes, keeping every field only MongoDB holds (`preferences`).
//!
//! Updating documents one statement at a time costs the server several times an insert, so
//! a page is written in one transaction: read the page's documents, delete them, insert each
//! merged with its relational fields. A write an application makes to one of those documents
//! after the transaction read it conflicts with the delete: the transaction aborts (MongoDB's
//! write-conflict rule) and the page starts again, reading the application's write. One made
//! while the transaction is open waits for it and then applies to the merged document. So a
//! preference written during the migration is never lost.
//!
//! A page that keeps conflicting, or whose insert MongoDB refuses (a document breaking the
//! validator), is left to the caller's `$set` merge, which reports refusals one document at a
//! time; so is every page on a MongoDB without transactions (a standalone server).

use super::stages::{Stage, StageClock};
use crate::mongo_write;
use futures_util::TryStreamExt;
use mongodb::bson::{RawDocumentBuf, doc};
use mongodb::error::{ErrorKind, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT};
use mongodb::options::{ReadConcern, ReadPreference, SelectionCriteria, TransactionOptions};
use mongodb::{ClientSession, Collection, Database};
use std::collections::HashMap;
use std::time::Instant;

/// Tries of a page's transaction before it is left to the `$set` merge.
const ATTEMPTS: usize = 3;

/// Pause after a conflict, times the attempt.
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

/// Logs why a page goes to the `$set` merge (never a document's values).
fn decline(collection: &str, reason: &str) {
    tracing::info!(collection, reason, "page merged with $set statements");
}

/// How a page's merge ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Merged {
    /// Every document of the page is written, merged.
    Written,
    /// Nothing was written: the page conflicted [`ATTEMPTS`] times with other writers, MongoDB
    /// refused a document, or the deployment has no transactions. The caller merges it with
    /// `$set` statements.
    Declined,
}

/// Merges `fields` (`_id`, relational fields without `_id`) into `collection`'s documents in
/// one transaction (see the module's description). An error is one of the whole page (the
/// network, the server): nothing of it was written.
pub(super) async fn merge_page(
    mongo: &Database,
    collection: &str,
    fields: &[(i64, RawDocumentBuf)],
    clock: &StageClock,
) -> Result<Merged, mongodb::error::Error> {
    if fields.is_empty() {
        return Ok(Merged::Written);
    }
    let target = mongo.collection::<RawDocumentBuf>(collection);
    // Transactions read from the primary, whatever the connection string prefers.
    let options = TransactionOptions::builder()
        .read_concern(ReadConcern::snapshot())
        .write_concern(mongo_write::durable_write_concern(mongo.write_concern()))
        .selection_criteria(SelectionCriteria::ReadPreference(ReadPreference::Primary))
        .build();
    let mut session = mongo.client().start_session().await?;
    for attempt in 1..=ATTEMPTS {
        let started = session
            .start_transaction()
            .with_options(options.clone())
            .await;
        if let Err(e) = started {
            return if transactions_unsupported(&e) {
                decline(collection, "the deployment has no transactions");
                Ok(Merged::Declined)
            } else {
                Err(e)
            };
        }
        match in_transaction(&target, fields, &mut session, clock).await {
            Ok(()) => return Ok(Merged::Written),
            Err(e) => {
                // Aborting an ended or failed transaction may fail too: nothing to add.
                drop(session.abort_transaction().await);
                if refused_documents(&e) {
                    decline(collection, "MongoDB refused a document");
                    return Ok(Merged::Declined);
                }
                if transactions_unsupported(&e) {
                    decline(collection, "the deployment has no transactions");
                    return Ok(Merged::Declined);
                }
                if !(e.contains_label(TRANSIENT_TRANSACTION_ERROR)
                    || e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT))
                {
                    return Err(e);
                }
                tracing::debug!(collection, attempt, "merge transaction conflicted, again");
                // Let the writer that conflicted finish before trying again.
                tokio::time::sleep(RETRY_PAUSE * attempt as u32).await;
            }
        }
    }
    decline(
        collection,
        "it conflicted with other writers at every attempt",
    );
    Ok(Merged::Declined)
}

/// Reads, deletes and inserts the page's documents, and commits. The page is rewritten whole
/// on a retry, so an unknown commit result may simply be tried again.
async fn in_transaction(
    target: &Collection<RawDocumentBuf>,
    fields: &[(i64, RawDocumentBuf)],
    session: &mut ClientSession,
    clock: &StageClock,
) -> Result<(), mongodb::error::Error> {
    let reading = Instant::now();
    let ids: Vec<i64> = fields.iter().map(|(id, _)| *id).collect();
    let mut existing: HashMap<i64, RawDocumentBuf> = HashMap::with_capacity(ids.len());
    let mut cursor = target
        .find(doc! { "_id": { "$in": &ids } })
        .session(&mut *session)
        .await?;
    while let Some(document) = cursor.stream(&mut *session).try_next().await? {
        if let Ok(id) = document.get_i64("_id") {
            existing.insert(id, document);
        }
    }
    drop(cursor);
    clock.since(Stage::MergeRead, reading);
    let writing = Instant::now();
    let written = write_merged(target, fields, &existing, session).await;
    clock.since(Stage::Write, writing);
    written
}

/// Deletes the stored documents and inserts the merged ones, and commits.
async fn write_merged(
    target: &Collection<RawDocumentBuf>,
    fields: &[(i64, RawDocumentBuf)],
    existing: &HashMap<i64, RawDocumentBuf>,
    session: &mut ClientSession,
) -> Result<(), mongodb::error::Error> {
    if !existing.is_empty() {
        let found: Vec<i64> = existing.keys().copied().collect();
        target
            .delete_many(doc! { "_id": { "$in": found } })
            .session(&mut *session)
            .await?;
    }
    let merged = fields
        .iter()
        .map(|(id, own)| merged(*id, own, existing.get(id)))
        .collect::<Result<Vec<_>, _>>()?;
    target
        .insert_many(merged)
        .ordered(false)
        .session(&mut *session)
        .await?;
    session.commit_transaction().await
}

/// The document `{_id, <own fields>, <the stored document's other fields>}`: the relational
/// fields replace their stored values, everything else stored is kept as it is.
fn merged(
    id: i64,
    own: &RawDocumentBuf,
    stored: Option<&RawDocumentBuf>,
) -> Result<RawDocumentBuf, mongodb::bson::raw::Error> {
    let mut document = RawDocumentBuf::new();
    document.append("_id", id);
    for element in own {
        let (key, value) = element?;
        if key != "_id" {
            document.append(key, value.to_raw_bson());
        }
    }
    if let Some(stored) = stored {
        for element in stored {
            let (key, value) = element?;
            if key != "_id" && own.get(key)?.is_none() {
                document.append(key, value.to_raw_bson());
            }
        }
    }
    Ok(document)
}

/// MongoDB's code for an operation the deployment cannot do (a standalone server asked for a
/// transaction).
const ILLEGAL_OPERATION: i32 = 20;

/// True when the deployment has no transactions: the driver knows it from the topology (a
/// standalone server: "Transactions are not supported by this deployment"), or the server
/// refuses the transaction's first command.
fn transactions_unsupported(e: &mongodb::error::Error) -> bool {
    match &*e.kind {
        ErrorKind::Transaction { message, .. } => {
            message.contains("not supported by this deployment")
        }
        ErrorKind::Command(c) => c.code == ILLEGAL_OPERATION,
        _ => false,
    }
}

/// True when MongoDB refused documents of the insert (validation, a duplicate in another unique
/// index): the page goes to the statement-by-statement merge, which names them.
fn refused_documents(e: &mongodb::error::Error) -> bool {
    match &*e.kind {
        ErrorKind::InsertMany(failure) => failure
            .write_errors
            .as_ref()
            .is_some_and(|errors| !errors.is_empty()),
        ErrorKind::Write(mongodb::error::WriteFailure::WriteError(_)) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::{Document, doc};

    fn raw(d: Document) -> RawDocumentBuf {
        RawDocumentBuf::from_document(&d).unwrap()
    }

    #[test]
    fn own_fields_replace_stored_ones_and_the_rest_is_kept() {
        let own = raw(doc! { "email": "new@x.example", "orders": { "count": 2_i64 } });
        let stored = raw(doc! {
            "_id": 7_i64,
            "preferences": { "newsletter": true },
            "email": "old@x.example",
            "loyalty": "gold",
        });
        let m = merged(7, &own, Some(&stored))
            .unwrap()
            .to_document()
            .unwrap();
        assert_eq!(
            m,
            doc! {
                "_id": 7_i64,
                "email": "new@x.example",
                "orders": { "count": 2_i64 },
                "preferences": { "newsletter": true },
                "loyalty": "gold",
            }
        );
    }

    #[test]
    fn a_new_document_is_its_own_fields() {
        let own = raw(doc! { "email": "a@x.example" });
        let m = merged(3, &own, None).unwrap().to_document().unwrap();
        assert_eq!(m, doc! { "_id": 3_i64, "email": "a@x.example" });
    }
}
