//! Verification after a migration: counts per entity, and a SHA-256 per document computed the
//! same way on both sides (the expected document from MariaDB rows, the stored one from MongoDB,
//! both with keys sorted), so any difference in content is found, not only in numbers.

use super::bulk::table;
use super::source::{self, Lookups, Selection};
use super::{Entity, MigrateError};
use futures_util::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::MySqlPool;
use std::collections::HashMap;

/// Ids listed per kind of difference, at most.
const SAMPLE: usize = 20;

/// One entity's comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntityVerification {
    /// The entity.
    pub entity: Entity,
    /// Rows in MariaDB.
    pub rows: u64,
    /// Documents in MongoDB.
    pub documents: u64,
    /// Ids with no document.
    pub missing: Vec<i64>,
    /// Ids whose document differs from what the rows say.
    pub different: Vec<i64>,
    /// How many differ (missing or different) in all.
    pub mismatches: u64,
}

impl EntityVerification {
    /// Counts equal and every document equal.
    pub fn equal(&self) -> bool {
        self.rows == self.documents && self.mismatches == 0
    }
}

/// The comparison of every entity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    /// Per entity.
    pub entities: Vec<EntityVerification>,
}

impl VerifyReport {
    /// True when both stores agree on everything.
    pub fn equal(&self) -> bool {
        self.entities.iter().all(EntityVerification::equal)
    }
}

/// A document with keys sorted at every level, so field order never matters.
fn canonical(value: &Bson) -> Bson {
    match value {
        Bson::Document(d) => {
            let mut keys: Vec<&String> = d.keys().collect();
            keys.sort();
            Bson::Document(
                keys.into_iter()
                    .map(|k| {
                        (
                            k.clone(),
                            canonical(&d.get(k).cloned().unwrap_or(Bson::Null)),
                        )
                    })
                    .collect(),
            )
        }
        Bson::Array(items) => Bson::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// SHA-256 of the canonical BSON bytes of a document.
pub(crate) fn content_hash(doc: &Document) -> [u8; 32] {
    let mut bytes = Vec::new();
    if let Bson::Document(d) = canonical(&Bson::Document(doc.clone())) {
        // Writing a document to a Vec cannot fail.
        let _ = d.to_writer(&mut bytes);
    }
    Sha256::digest(&bytes).into()
}

/// An integer `_id` of either width (other writers may store small ids as int32).
fn integer_id(doc: &Document) -> Option<i64> {
    match doc.get("_id")? {
        Bson::Int64(v) => Some(*v),
        Bson::Int32(v) => Some(i64::from(*v)),
        _ => None,
    }
}

/// The part of a stored document that the migration owns.
fn owned_part(entity: Entity, mut stored: Document) -> Document {
    if entity == Entity::Customers {
        stored.remove("_id");
        stored.remove("preferences");
    }
    stored
}

pub(crate) async fn verify(
    pool: &MySqlPool,
    mongo: &mongodb::Database,
) -> Result<super::VerifyReport, MigrateError> {
    let lookups = Lookups::load(pool, mongo)
        .await
        .map_err(|e| MigrateError::Task(e.to_string()))?;
    let mut entities = Vec::new();
    for entity in Entity::ALL {
        let coll = mongo.collection::<Document>(entity.collection());
        let write_err = |source| MigrateError::Write { entity, source };
        let rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", table(entity)))
            .fetch_one(pool)
            .await
            .map_err(|source| MigrateError::Read { entity, source })?;
        let documents = coll.count_documents(doc! {}).await.map_err(write_err)?;
        let mut result = EntityVerification {
            entity,
            rows: rows.max(0) as u64,
            documents,
            missing: Vec::new(),
            different: Vec::new(),
            mismatches: 0,
        };
        let mut after = 0u64;
        while let Some(page) = source::read_page(
            pool,
            entity,
            Selection::After {
                after,
                limit: 1_000,
            },
            &lookups,
        )
        .await
        .map_err(|source| MigrateError::Read { entity, source })?
        {
            after = page.last_key;
            let ids: Vec<i64> = page.docs.iter().map(|(id, _)| *id).collect();
            let stored: Vec<Document> = coll
                .find(doc! { "_id": { "$in": ids } })
                .await
                .map_err(write_err)?
                .try_collect()
                .await
                .map_err(write_err)?;
            let mut stored: HashMap<i64, Document> = stored
                .into_iter()
                .filter_map(|d| Some((integer_id(&d)?, d)))
                .collect();
            for (id, expected) in &page.docs {
                let same = stored
                    .remove(id)
                    .map(|doc| content_hash(&owned_part(entity, doc)) == content_hash(expected));
                let sample = match same {
                    Some(true) => continue,
                    None => &mut result.missing,
                    Some(false) => &mut result.different,
                };
                if sample.len() < SAMPLE {
                    sample.push(*id);
                }
                result.mismatches += 1;
            }
        }
        entities.push(result);
    }
    Ok(super::VerifyReport { entities })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_ignore_field_order_but_not_values() {
        let a =
            doc! { "x": 1_i64, "y": { "b": "2", "a": [1_i64, { "q": true, "p": Bson::Null }] } };
        let b =
            doc! { "y": { "a": [1_i64, { "p": Bson::Null, "q": true }], "b": "2" }, "x": 1_i64 };
        assert_eq!(content_hash(&a), content_hash(&b));
        let c =
            doc! { "x": 1_i64, "y": { "b": "3", "a": [1_i64, { "q": true, "p": Bson::Null }] } };
        assert_ne!(content_hash(&a), content_hash(&c));
        let d =
            doc! { "x": 1_i32, "y": { "b": "2", "a": [1_i64, { "q": true, "p": Bson::Null }] } };
        assert_ne!(content_hash(&a), content_hash(&d), "types count");
    }
}
