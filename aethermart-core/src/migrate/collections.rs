//! The MongoDB collections: `$jsonSchema` validators that reject a document breaking the model,
//! and the indexes the platform's queries need. Idempotent: run it as often as you like.
//!
//! The validators check types, required fields, enums, ranges and lengths, but no `pattern`:
//! formats (e-mail, country code, URL) are already enforced by MariaDB's CHECK constraints and
//! the model, and regex validation made writes about 30 times slower on the test server.

use crate::projection::document::{CUSTOMER_PROFILES, ORDERS, PRODUCTS, REVIEWS, SERVICES};
use mongodb::bson::{Bson, Document, doc};

/// Creating a collection, its validator or an index failed.
#[derive(Debug, thiserror::Error)]
#[error("setting up MongoDB collection {collection} failed: {source}")]
pub struct CollectionSetupError {
    /// The collection.
    pub collection: &'static str,
    /// The driver's error.
    #[source]
    pub source: mongodb::error::Error,
}

const INT: [&str; 2] = ["int", "long"];

fn validator(collection: &str) -> Document {
    let schema = match collection {
        CUSTOMER_PROFILES => doc! {
            // Preferences may arrive before the relational fields: only types are enforced.
            "bsonType": "object",
            "required": ["_id"],
            "properties": {
                "_id": { "bsonType": INT.to_vec() },
                "email": { "bsonType": "string", "minLength": 3 },
                "addresses": { "bsonType": "array", "items": {
                    "bsonType": "object",
                    "required": ["kind", "line1", "city", "postal_code", "country"],
                    "properties": {
                        "kind": { "enum": ["shipping", "billing"] },
                        "country": { "bsonType": "string", "minLength": 2, "maxLength": 2 },
                    },
                } },
                "orders": { "bsonType": "object", "properties": {
                    "count": { "bsonType": INT.to_vec(), "minimum": 0 },
                    "lifetime_value": { "bsonType": "decimal" },
                } },
                "preferences": { "bsonType": "object" },
            },
        },
        PRODUCTS => doc! {
            "bsonType": "object",
            "required": ["_id", "sku", "name", "category", "price", "stock", "is_active"],
            "properties": {
                "sku": { "bsonType": "string", "minLength": 1 },
                "name": { "bsonType": "string", "minLength": 1 },
                "category": { "bsonType": "object", "required": ["id", "path"] },
                "price": { "bsonType": "decimal" },
                "stock": { "bsonType": INT.to_vec(), "minimum": 0 },
                "is_active": { "bsonType": "bool" },
                "rating": { "bsonType": "object" },
            },
        },
        SERVICES => doc! {
            "bsonType": "object",
            "required": ["_id", "code", "name", "category", "price", "duration_minutes", "consultant"],
            "properties": {
                "price": { "bsonType": "decimal" },
                "duration_minutes": { "bsonType": INT.to_vec(), "minimum": 1 },
                "consultant": { "bsonType": "string", "minLength": 1 },
            },
        },
        ORDERS => doc! {
            "bsonType": "object",
            "required": ["_id", "customer_id", "status", "total", "placed_at", "lines"],
            "properties": {
                "status": { "enum": ["pending", "paid", "shipped", "delivered", "cancelled", "returned"] },
                "total": { "bsonType": "decimal" },
                "placed_at": { "bsonType": "date" },
                "lines": { "bsonType": "array", "minItems": 1, "items": {
                    "bsonType": "object",
                    "required": ["line_id", "kind", "item_id", "name", "quantity", "unit_price"],
                    "properties": {
                        "kind": { "enum": ["product", "service"] },
                        "quantity": { "bsonType": INT.to_vec(), "minimum": 1 },
                        "unit_price": { "bsonType": "decimal" },
                    },
                } },
            },
        },
        _ => doc! {
            // reviews
            "bsonType": "object",
            "required": ["_id", "product_id", "customer_id", "rating", "created_at"],
            "properties": {
                "rating": { "bsonType": INT.to_vec(), "minimum": 1, "maximum": 5 },
                "created_at": { "bsonType": "date" },
                "media": { "bsonType": "array", "items": {
                    "bsonType": "object",
                    "required": ["type", "url"],
                    "properties": {
                        "type": { "enum": ["image", "video"] },
                        "url": { "bsonType": "string", "minLength": 8 },
                    },
                } },
            },
        },
    };
    doc! { "$jsonSchema": schema }
}

/// An index: `(collection, name, keys with direction, unique)`.
type IndexSpec = (
    &'static str,
    &'static str,
    &'static [(&'static str, i32)],
    bool,
);

/// The indexes of the platform's real queries.
const INDEXES: &[IndexSpec] = &[
    (
        ORDERS,
        "customer_orders_by_date",
        &[("customer_id", 1), ("placed_at", -1)],
        false,
    ),
    (
        REVIEWS,
        "product_reviews_by_date",
        &[("product_id", 1), ("created_at", -1)],
        false,
    ),
    (REVIEWS, "reviews_by_customer", &[("customer_id", 1)], false),
    (
        PRODUCTS,
        "catalogue_by_category_price",
        &[("category.id", 1), ("price", 1)],
        false,
    ),
    (PRODUCTS, "unique_sku", &[("sku", 1)], true),
    (SERVICES, "unique_code", &[("code", 1)], true),
];

/// Creates `scratch` (dropped first) with the validator and indexes of `like`: benchmarks
/// compare against a collection that does the same work per document.
pub async fn create_like(
    db: &mongodb::Database,
    like: &'static str,
    scratch: &'static str,
) -> Result<(), CollectionSetupError> {
    let fail = |source| CollectionSetupError {
        collection: scratch,
        source,
    };
    db.collection::<Document>(scratch)
        .drop()
        .await
        .map_err(fail)?;
    db.create_collection(scratch)
        .validator(validator(like))
        .await
        .map_err(fail)?;
    create_indexes(db, like, scratch).await
}

/// Creates the collections with their validators (or updates the validators of existing ones)
/// and the indexes.
pub async fn setup_collections(db: &mongodb::Database) -> Result<(), CollectionSetupError> {
    let existing = db
        .list_collection_names()
        .await
        .map_err(|source| CollectionSetupError {
            collection: "*",
            source,
        })?;
    for collection in [CUSTOMER_PROFILES, PRODUCTS, SERVICES, ORDERS, REVIEWS] {
        let fail = |source| CollectionSetupError { collection, source };
        if existing.iter().any(|c| c == collection) {
            db.run_command(doc! { "collMod": collection, "validator": validator(collection), "validationLevel": "strict" })
                .await
                .map_err(fail)?;
        } else {
            db.create_collection(collection)
                .validator(validator(collection))
                .await
                .map_err(fail)?;
        }
    }
    for collection in [CUSTOMER_PROFILES, PRODUCTS, SERVICES, ORDERS, REVIEWS] {
        create_indexes(db, collection, collection).await?;
    }
    keep_review_pre_images(db).await
}

/// Makes the `reviews` change stream carry each changed review's previous version (MongoDB
/// 6+ `changeStreamPreAndPostImages`): a deleted review's product is known only from it.
/// Idempotent; the sync workers call it too, for collections set up before.
pub async fn keep_review_pre_images(db: &mongodb::Database) -> Result<(), CollectionSetupError> {
    db.run_command(doc! { "collMod": REVIEWS, "changeStreamPreAndPostImages": { "enabled": true } })
        .await
        .map(drop)
        .map_err(|source| CollectionSetupError {
            collection: REVIEWS,
            source,
        })
}

/// Creates on `target` the indexes [`INDEXES`] lists for `of` (`createIndexes` is idempotent).
async fn create_indexes(
    db: &mongodb::Database,
    of: &str,
    target: &'static str,
) -> Result<(), CollectionSetupError> {
    for (_, name, keys, unique) in INDEXES.iter().filter(|(c, ..)| *c == of) {
        let key: Document = keys
            .iter()
            .map(|(k, dir)| ((*k).to_owned(), Bson::Int32(*dir)))
            .collect();
        db.run_command(doc! { "createIndexes": target, "indexes": [{ "key": key, "name": *name, "unique": *unique }] })
            .await
            .map_err(|source| CollectionSetupError { collection: target, source })?;
    }
    Ok(())
}
