//! The stored embeddings: one document per item in [`COLLECTION`], apart from the item's own
//! document, which the migration and the sync replace whole (a stock change would otherwise
//! wipe the vector). Each names its item, the model and the SHA-256 of the text it was computed
//! from ([`Item::text`]); a vector counts for search only while both still match, so one left
//! behind by a missed recomputation is never used, only reported ([`freshness`]).
//!
//! ```text
//! { _id: "product:12", kind: "product", item_id: 12, model: "all-MiniLM-L6-v2",
//!   text_sha256: BinData(0, 32 bytes), vector: BinData(0, 384 × f32 little-endian),
//!   computed_at: Date }
//! ```

use super::model::{DIMENSIONS, MODEL};
use super::{Item, Kind, SearchError};
use crate::mongo_write;
use futures_util::TryStreamExt;
use mongodb::bson::{Binary, Bson, DateTime, Document, RawDocumentBuf, doc, spec::BinarySubtype};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The collection of stored embeddings.
pub const COLLECTION: &str = "search_embeddings";

/// Statements per write command (each document is about 1.6 kB).
const WRITE_CHUNK: usize = 500;

/// The SHA-256 of the text a vector is computed from.
pub fn text_sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// The `_id` of an item's stored vector.
pub fn stored_id(kind: Kind, item_id: i64) -> String {
    format!("{}:{item_id}", kind.name())
}

/// A stored vector as search reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredVector {
    /// The SHA-256 of the text it was computed from.
    pub text_sha256: [u8; 32],
    /// The vector (unit length, [`DIMENSIONS`] values).
    pub vector: Vec<f32>,
}

/// Every stored vector of [`MODEL`], by item. A document of another model or of the wrong
/// shape is left out (its item then counts as stale).
pub async fn load(
    mongo: &mongodb::Database,
) -> Result<HashMap<(Kind, i64), StoredVector>, SearchError> {
    let documents = read(mongo, doc! { "model": MODEL }, true).await?;
    Ok(documents
        .iter()
        .filter_map(|d| {
            let key = item_key(d)?;
            let vector = decode(binary(d, "vector")?)?;
            let text_sha256 = binary(d, "text_sha256")?.try_into().ok()?;
            Some((
                key,
                StoredVector {
                    text_sha256,
                    vector,
                },
            ))
        })
        .collect())
}

/// How the stored vectors stand against the catalogue's items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Freshness {
    /// Items with no vector, or one of another model or another text (indices into the items).
    pub stale: Vec<usize>,
    /// Stored vectors whose item is gone (their `_id`s).
    pub orphans: Vec<String>,
}

/// Reads the stored vectors, then the catalogue's items, and compares the vectors' model and
/// text hash with the items. In that order, a vector counts as an orphan only when its item is
/// missing from a read made after the vector's: an item a worker adds meanwhile keeps its.
pub async fn freshness(mongo: &mongodb::Database) -> Result<(Vec<Item>, Freshness), SearchError> {
    let documents = read(mongo, doc! {}, false).await?;
    let (items, _skipped) = super::read_items(mongo).await?;
    // Per item, the text hash of its vector when that vector is of our model.
    let mut stored: HashMap<(Kind, i64), Option<&[u8]>> = HashMap::new();
    let mut orphans = Vec::new();
    for d in &documents {
        match item_key(d) {
            Some(key) => {
                let ours = d.get_str("model").is_ok_and(|m| m == MODEL);
                stored.insert(key, binary(d, "text_sha256").filter(|_| ours));
            }
            None => orphans.push(match d.get("_id") {
                Some(Bson::String(id)) => id.clone(),
                other => other.map_or_else(|| "?".to_owned(), Bson::to_string),
            }),
        }
    }
    let mut fresh = Freshness::default();
    for (i, item) in items.iter().enumerate() {
        match stored.remove(&(item.kind, item.id)) {
            Some(Some(hash)) if hash == text_sha256(&item.text) => {}
            _ => fresh.stale.push(i),
        }
    }
    let mut gone: Vec<String> = stored.into_keys().map(|(k, id)| stored_id(k, id)).collect();
    gone.sort();
    orphans.extend(gone);
    fresh.orphans = orphans;
    Ok((items, fresh))
}

/// Of `items`, those whose stored vector is missing or not for their current text (indices),
/// reading only their own documents.
pub async fn stale_among(
    mongo: &mongodb::Database,
    items: &[Item],
) -> Result<Vec<usize>, SearchError> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = items.iter().map(|i| stored_id(i.kind, i.id)).collect();
    let documents = read(mongo, doc! { "_id": { "$in": ids }, "model": MODEL }, false).await?;
    let hashes: HashMap<(Kind, i64), &[u8]> = documents
        .iter()
        .filter_map(|d| Some((item_key(d)?, binary(d, "text_sha256")?)))
        .collect();
    Ok(items
        .iter()
        .enumerate()
        .filter(|(_, item)| {
            hashes
                .get(&(item.kind, item.id))
                .is_none_or(|h| *h != text_sha256(&item.text))
        })
        .map(|(i, _)| i)
        .collect())
}

/// Stores `vectors[i]` as the vector of `items[i]` (replacing what was stored).
pub async fn store(
    mongo: &mongodb::Database,
    items: &[&Item],
    vectors: &[Vec<f32>],
) -> Result<(), SearchError> {
    let now = DateTime::now();
    let statements: Vec<RawDocumentBuf> = items
        .iter()
        .zip(vectors)
        .map(|(item, vector)| {
            let id = stored_id(item.kind, item.id);
            let document = doc! {
                "_id": &id,
                "kind": item.kind.name(),
                "item_id": item.id,
                "model": MODEL,
                "text_sha256": generic(text_sha256(&item.text).to_vec()),
                "vector": generic(encode(vector)),
                "computed_at": now,
            };
            let document = RawDocumentBuf::from_document(&document).expect("fixed fields encode");
            mongo_write::upsert_statement(id.as_str(), document, false)
        })
        .collect();
    for chunk in statements.chunks(WRITE_CHUNK) {
        let command = mongo_write::command("update", COLLECTION, "updates", chunk.iter().cloned());
        write(mongo, command).await?;
    }
    Ok(())
}

/// Removes the stored vectors of these items (gone from the catalogue).
pub async fn remove(
    mongo: &mongodb::Database,
    kind: Kind,
    item_ids: &[i64],
) -> Result<(), SearchError> {
    let ids: Vec<String> = item_ids.iter().map(|&id| stored_id(kind, id)).collect();
    remove_ids(mongo, &ids).await
}

/// Removes the stored vectors with these `_id`s.
pub async fn remove_ids(mongo: &mongodb::Database, ids: &[String]) -> Result<(), SearchError> {
    for chunk in ids.chunks(WRITE_CHUNK) {
        let statements = chunk
            .iter()
            .map(|id| mongo_write::delete_statement(id.as_str()));
        write(
            mongo,
            mongo_write::command("delete", COLLECTION, "deletes", statements),
        )
        .await?;
    }
    Ok(())
}

async fn write(mongo: &mongodb::Database, command: RawDocumentBuf) -> Result<(), SearchError> {
    let refused = mongo_write::run(mongo, command)
        .await
        .map_err(|source| SearchError::Write {
            source: Box::new(source),
        })?;
    match refused.first() {
        None => Ok(()),
        Some(e) => Err(SearchError::Refused {
            reason: mongo_write::describe(e.code),
        }),
    }
}

async fn read(
    mongo: &mongodb::Database,
    filter: Document,
    with_vectors: bool,
) -> Result<Vec<Document>, SearchError> {
    let projection = if with_vectors {
        doc! { "kind": 1, "item_id": 1, "text_sha256": 1, "vector": 1 }
    } else {
        doc! { "kind": 1, "item_id": 1, "text_sha256": 1, "model": 1 }
    };
    let fail = |source| SearchError::Mongo {
        collection: COLLECTION,
        source,
    };
    mongo
        .collection::<Document>(COLLECTION)
        .find(filter)
        .projection(projection)
        .await
        .map_err(fail)?
        .try_collect()
        .await
        .map_err(fail)
}

fn item_key(d: &Document) -> Option<(Kind, i64)> {
    let kind = d.get_str("kind").ok()?.parse().ok()?;
    Some((kind, d.get_i64("item_id").ok()?))
}

fn binary<'a>(d: &'a Document, field: &str) -> Option<&'a [u8]> {
    match d.get(field) {
        Some(Bson::Binary(b)) => Some(&b.bytes),
        _ => None,
    }
}

fn generic(bytes: Vec<u8>) -> Binary {
    Binary {
        subtype: BinarySubtype::Generic,
        bytes,
    }
}

/// The vector as little-endian `f32`s.
fn encode(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The vector of [`encode`], when it has [`DIMENSIONS`] values.
fn decode(bytes: &[u8]) -> Option<Vec<f32>> {
    (bytes.len() == DIMENSIONS * 4).then(|| {
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vector_survives_its_encoding_and_a_wrong_length_is_refused() {
        let v: Vec<f32> = (0..DIMENSIONS).map(|i| i as f32 / 7.0 - 3.5).collect();
        assert_eq!(decode(&encode(&v)), Some(v.clone()));
        assert_eq!(decode(&encode(&v[1..])), None);
        assert_eq!(stored_id(Kind::Service, 7), "service:7");
        assert_ne!(text_sha256("Quiet PC"), text_sha256("Quiet PC."));
    }
}
