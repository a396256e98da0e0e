//! The canonical document hash: SHA-256 of a document's BSON with keys sorted at every level,
//! so the document built from MariaDB rows and the one stored in MongoDB compare equal
//! whatever order their fields came in, and any difference in value or type shows.

use super::Entity;
use mongodb::bson::{Bson, Document};
use sha2::{Digest, Sha256};

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
pub fn content_hash(doc: &Document) -> [u8; 32] {
    let mut bytes = Vec::new();
    if let Bson::Document(d) = canonical(&Bson::Document(doc.clone())) {
        // Writing a document to a Vec cannot fail.
        let _ = d.to_writer(&mut bytes);
    }
    Sha256::digest(&bytes).into()
}

/// An integer `_id` of either width (other writers may store small ids as int32).
pub fn integer_id(doc: &Document) -> Option<i64> {
    match doc.get("_id")? {
        Bson::Int64(v) => Some(*v),
        Bson::Int32(v) => Some(i64::from(*v)),
        _ => None,
    }
}

/// The part of a stored document that the projection owns, comparable with what
/// [`super::read_page`] builds: a merged profile without its `_id` and MongoDB-only
/// `preferences`, any other document whole.
pub fn owned_part(entity: Entity, mut stored: Document) -> Document {
    if entity.merges() {
        stored.remove("_id");
        stored.remove("preferences");
    }
    stored
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::doc;

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
