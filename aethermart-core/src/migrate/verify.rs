//! Verification after a migration: counts per entity, and a SHA-256 per document computed the
//! same way on both sides (the expected document from MariaDB rows, the stored one from MongoDB,
//! both with keys sorted), so any difference in content is found, not only in numbers.

use super::MigrateError;
use crate::projection::{
    self, Entity, Lookups, ReadError, Selection, content_hash, integer_id, owned_part,
};
use futures_util::TryStreamExt;
use mongodb::bson::{Document, doc};
use serde::Serialize;
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

pub(crate) async fn verify(
    pool: &MySqlPool,
    mongo: &mongodb::Database,
) -> Result<super::VerifyReport, MigrateError> {
    let lookups = Lookups::load(pool, mongo).await?;
    let mut entities = Vec::new();
    for entity in Entity::ALL {
        let coll = mongo.collection::<Document>(entity.collection());
        let read_err = |source| MigrateError::MongoRead { entity, source };
        let rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", entity.table()))
            .fetch_one(pool)
            .await
            .map_err(|source| ReadError::Query { entity, source })?;
        let documents = coll.count_documents(doc! {}).await.map_err(read_err)?;
        let mut result = EntityVerification {
            entity,
            rows: rows.max(0) as u64,
            documents,
            missing: Vec::new(),
            different: Vec::new(),
            mismatches: 0,
        };
        let mut after = 0u64;
        while let Some(page) = projection::read_page(
            pool,
            entity,
            Selection::After {
                after,
                limit: 1_000,
            },
            &lookups,
        )
        .await?
        {
            after = page.last_key;
            let ids: Vec<i64> = page.docs.iter().map(|(id, _)| *id).collect();
            let stored: Vec<Document> = coll
                .find(doc! { "_id": { "$in": ids } })
                .await
                .map_err(read_err)?
                .try_collect()
                .await
                .map_err(read_err)?;
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
