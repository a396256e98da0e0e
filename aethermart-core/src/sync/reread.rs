//! The state a batch writes: the current rows of its keys, re-read after their changes
//! committed and built into documents by [`crate::projection`]. Both captures read here.

use super::{SyncError, Write, WriteOp};
use crate::projection::{self, Entity, Lookups, Refused, Selection, document};
use sqlx::MySqlPool;
use std::collections::HashMap;

/// Reads the current state of `keys`: a write per key, and the keys whose document could not
/// be built (with the reason). When a row cannot be turned into a document (a value the model
/// refuses), the batch is read again key by key, so that only the bad rows count as failed
/// attempts; any other error (connection, privileges, schema) fails the batch.
pub(super) async fn writes(
    pool: &MySqlPool,
    mongo: &mongodb::Database,
    entity: Entity,
    keys: &[u64],
) -> Result<(Vec<Write>, Vec<Refused>), SyncError> {
    match documents(pool, mongo, entity, keys).await {
        Ok(writes) => Ok((writes, Vec::new())),
        Err(e) if !e.is_row_error() => Err(e),
        Err(_) => {
            let (mut writes, mut failed) = (Vec::new(), Vec::new());
            for &key in keys {
                match documents(pool, mongo, entity, &[key]).await {
                    Ok(w) => writes.extend(w),
                    Err(e) if !e.is_row_error() => return Err(e),
                    Err(e) => failed.push(Refused {
                        key: document::key(key),
                        reason: e.to_string(),
                    }),
                }
            }
            Ok((writes, failed))
        }
    }
}

/// One write per key: the document of the row when it exists, a delete when it is gone.
async fn documents(
    pool: &MySqlPool,
    mongo: &mongodb::Database,
    entity: Entity,
    keys: &[u64],
) -> Result<Vec<Write>, SyncError> {
    let lookups = if entity.uses_lookups() {
        let products = if entity == Entity::Products {
            keys
        } else {
            &[]
        };
        Lookups::load_for_products(pool, mongo, products)
            .await
            .map_err(SyncError::Lookups)?
    } else {
        Lookups::default()
    };
    let page = projection::read_page(pool, entity, Selection::Keys(keys), &lookups).await?;
    let mut present: HashMap<i64, mongodb::bson::Document> = page
        .map(|p| p.docs.into_iter().collect())
        .unwrap_or_default();
    Ok(keys
        .iter()
        .map(|&k| {
            let key = document::key(k);
            let op = match present.remove(&key) {
                // Profiles are merged: preferences live only in MongoDB.
                Some(d) if entity.merges() => WriteOp::Merge(d),
                Some(d) => WriteOp::Replace(d),
                None => WriteOp::Delete,
            };
            Write { key, op }
        })
        .collect())
}
