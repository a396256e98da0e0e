//! Search over the catalogue: products and services ranked for a shopper's own words.
//!
//! Work in progress (issue 19): ranking is lexical today ([`lexical`], BM25 over name,
//! description and category path, in process: the document store needs no text index), with
//! filters (kind, category, price range, in stock); the labelled query set and its metrics
//! ([`quality`]) measure it. Vector similarity over local embeddings, and the fusion of both
//! rankings, come next.

pub mod lexical;
pub mod quality;

use crate::projection::document::{PRODUCTS, SERVICES};
use futures_util::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use quality::LabelledQuery;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// What an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A product (`products`).
    Product,
    /// A consultation (`services`).
    Service,
}

impl Kind {
    /// Its name, as `--kind` and the JSON hits spell it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Product => "product",
            Self::Service => "service",
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Product, Self::Service]
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown kind `{s}`: product or service"))
    }
}

/// One searchable item, as the document store holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Product or service.
    pub kind: Kind,
    /// Its `_id`.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its category, root first.
    pub category_path: Vec<String>,
    /// Its price.
    pub price: Decimal,
    /// Active, and for a product with stock on hand.
    pub in_stock: bool,
    /// What is searched: name, description and category path.
    pub text: String,
}

impl Item {
    /// Its leaf category (the last of the path), or "" when it has none.
    pub fn leaf(&self) -> &str {
        self.category_path.last().map_or("", String::as_str)
    }
}

/// A search: the shopper's words, how many hits, and filters.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    /// The shopper's words.
    pub text: &'a str,
    /// At most this many hits.
    pub k: usize,
    /// Only products or only services.
    pub kind: Option<Kind>,
    /// Only items with a category of this name (any level, case-insensitive).
    pub category: Option<&'a str>,
    /// Only items at this price or above.
    pub min_price: Option<Decimal>,
    /// Only items at this price or below.
    pub max_price: Option<Decimal>,
    /// Only items in stock.
    pub in_stock: bool,
}

impl<'a> Query<'a> {
    /// The ten best hits for `text`, unfiltered.
    pub fn new(text: &'a str) -> Self {
        Self {
            text,
            k: 10,
            kind: None,
            category: None,
            min_price: None,
            max_price: None,
            in_stock: false,
        }
    }

    fn admits(&self, item: &Item) -> bool {
        self.kind.is_none_or(|k| k == item.kind)
            && self
                .category
                .is_none_or(|c| item.category_path.iter().any(|p| p.eq_ignore_ascii_case(c)))
            && self.min_price.is_none_or(|p| item.price >= p)
            && self.max_price.is_none_or(|p| item.price <= p)
            && (!self.in_stock || item.in_stock)
    }
}

/// One hit of a search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// Product or service.
    pub kind: Kind,
    /// Its `_id`.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its category, root first.
    pub category_path: Vec<String>,
    /// Its price.
    pub price: Decimal,
    /// The ranking's score (higher is better; comparable within one search only).
    pub score: f64,
}

/// The catalogue, indexed for search.
#[derive(Debug)]
pub struct Catalogue {
    items: Vec<Item>,
    lexical: lexical::Bm25,
    skipped: Vec<SearchError>,
}

/// Why the catalogue could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SearchError {
    /// Reading a collection failed.
    #[error("reading MongoDB collection {collection} failed: {source}")]
    Mongo {
        /// The collection.
        collection: &'static str,
        /// The driver's error.
        #[source]
        source: mongodb::error::Error,
    },
    /// A stored document lacks a field search needs, or holds it with the wrong type (the
    /// document is left out of the catalogue, see [`Catalogue::skipped`]).
    #[error("{collection} document {id}: field `{field}` is missing or has the wrong type")]
    Document {
        /// The collection.
        collection: &'static str,
        /// The document's `_id`.
        id: String,
        /// The field.
        field: &'static str,
    },
}

impl Catalogue {
    /// Indexes `items`.
    pub fn new(items: Vec<Item>) -> Self {
        let lexical = lexical::Bm25::new(items.iter().map(|i| i.text.as_str()));
        Self {
            items,
            lexical,
            skipped: Vec::new(),
        }
    }

    /// Reads every product and service from the document store and indexes them. A document
    /// search cannot read is left out, logged and kept in [`Catalogue::skipped`]; only a failed
    /// read of a collection is an error.
    pub async fn load(mongo: &mongodb::Database) -> Result<Self, SearchError> {
        let mut read_items = read(mongo, PRODUCTS, Kind::Product).await?;
        read_items.extend(read(mongo, SERVICES, Kind::Service).await?);
        let mut items = Vec::with_capacity(read_items.len());
        let mut skipped = Vec::new();
        for result in read_items {
            match result {
                Ok(item) => items.push(item),
                Err(e) => {
                    tracing::warn!(error = %e, "left out of the search catalogue");
                    skipped.push(e);
                }
            }
        }
        Ok(Self {
            skipped,
            ..Self::new(items)
        })
    }

    /// The documents [`Catalogue::load`] could not read, each naming collection, `_id` and field.
    pub fn skipped(&self) -> &[SearchError] {
        &self.skipped
    }

    /// The indexed items.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// The best hits for `query`, best first (only items that match at least one word).
    pub fn search(&self, query: &Query<'_>) -> Vec<Hit> {
        self.ranked(query)
            .into_iter()
            .map(|(i, score)| {
                let item = &self.items[i];
                Hit {
                    kind: item.kind,
                    id: item.id,
                    name: item.name.clone(),
                    category_path: item.category_path.clone(),
                    price: item.price,
                    score,
                }
            })
            .collect()
    }

    /// The first `query.k` items as (index in [`Catalogue::items`], score), best first.
    fn ranked(&self, query: &Query<'_>) -> Vec<(usize, f64)> {
        let mut ranked: Vec<(usize, f64)> = self
            .lexical
            .scores(query.text)
            .into_iter()
            .enumerate()
            .filter(|&(i, s)| s > 0.0 && query.admits(&self.items[i]))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(query.k);
        ranked
    }

    /// nDCG@10 and recall@10 of this catalogue's ranking over `queries` (means).
    pub fn evaluate(&self, queries: &[LabelledQuery]) -> Quality {
        let (mut ndcg, mut recall) = (0.0, 0.0);
        for q in queries {
            let query = Query {
                kind: q.kind,
                ..Query::new(&q.query)
            };
            let ranked: Vec<u8> = self
                .ranked(&query)
                .iter()
                .map(|&(i, _)| q.grade(self.items[i].leaf()))
                .collect();
            let ideal: Vec<u8> = self
                .items
                .iter()
                .filter(|i| query.admits(i))
                .map(|i| q.grade(i.leaf()))
                .collect();
            ndcg += quality::ndcg_at(10, &ranked, &ideal);
            recall += quality::recall_at(10, &ranked, &ideal);
        }
        let n = queries.len().max(1) as f64;
        Quality {
            queries: queries.len(),
            ndcg_at_10: ndcg / n,
            recall_at_10: recall / n,
        }
    }
}

/// Ranking quality over a labelled query set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quality {
    /// Queries evaluated.
    pub queries: usize,
    /// Mean nDCG@10 (graded: answers 2, related 1).
    pub ndcg_at_10: f64,
    /// Mean recall@10 (relevant = graded 1 or 2).
    pub recall_at_10: f64,
}

/// Every document of `collection` as an [`Item`], or why it cannot be one.
async fn read(
    mongo: &mongodb::Database,
    collection: &'static str,
    kind: Kind,
) -> Result<Vec<Result<Item, SearchError>>, SearchError> {
    let projection = doc! {
        "name": 1, "description": 1, "category.path": 1, "price": 1, "stock": 1, "is_active": 1,
    };
    let documents: Vec<Document> = mongo
        .collection::<Document>(collection)
        .find(doc! {})
        .sort(doc! { "_id": 1 })
        .projection(projection)
        .await
        .map_err(|source| SearchError::Mongo { collection, source })?
        .try_collect()
        .await
        .map_err(|source| SearchError::Mongo { collection, source })?;
    Ok(documents
        .iter()
        .map(|d| item(collection, kind, d))
        .collect())
}

fn item(collection: &'static str, kind: Kind, d: &Document) -> Result<Item, SearchError> {
    let wrong = |field| SearchError::Document {
        collection,
        id: d.get("_id").map_or_else(|| "?".to_owned(), Bson::to_string),
        field,
    };
    let id = d.get_i64("_id").map_err(|_| wrong("_id"))?;
    let name = d.get_str("name").map_err(|_| wrong("name"))?.to_owned();
    let description = d.get_str("description").unwrap_or_default();
    let category_path: Vec<String> = d
        .get_document("category")
        .and_then(|c| c.get_array("path"))
        .map_err(|_| wrong("category.path"))?
        .iter()
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect();
    let price = match d.get("price") {
        Some(Bson::Decimal128(p)) => crate::model::stored::decimal128::to_decimal(p),
        _ => None,
    }
    .ok_or_else(|| wrong("price"))?;
    let active = d.get_bool("is_active").unwrap_or(true);
    let stock = match d.get("stock") {
        Some(Bson::Int32(n)) => i64::from(*n),
        Some(Bson::Int64(n)) => *n,
        _ => 1, // services have no stock: bookable while active
    };
    let text = format!("{name}. {description}. {}", category_path.join(", "));
    Ok(Item {
        kind,
        id,
        name,
        category_path,
        price,
        in_stock: active && stock > 0,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(kind: Kind, id: i64, name: &str, leaf: &str, price: i64, text: &str) -> Item {
        Item {
            kind,
            id,
            name: name.into(),
            category_path: vec!["Root".into(), leaf.into()],
            price: Decimal::from(price),
            in_stock: id != 3,
            text: format!("{name}. {text}. Root, {leaf}"),
        }
    }

    fn catalogue() -> Catalogue {
        Catalogue::new(vec![
            item(
                Kind::Product,
                1,
                "Nano Tower",
                "Small Form Factor PCs",
                999,
                "near-silent cooling, fits under a desk",
            ),
            item(
                Kind::Product,
                2,
                "Apex Tower",
                "Enthusiast Gaming PCs",
                2999,
                "liquid cooling, RGB lighting, made for streaming",
            ),
            item(
                Kind::Product,
                3,
                "Smart Thermostat",
                "Thermostats",
                199,
                "learns your schedule, saves energy",
            ),
            item(
                Kind::Service,
                4,
                "Wi-Fi coverage survey",
                "Network Audits",
                129,
                "finding why the internet is slow",
            ),
        ])
    }

    #[test]
    fn the_best_matching_items_come_first_and_filters_apply() {
        let c = catalogue();
        let hits = c.search(&Query::new("pc that fits under my desk"));
        assert_eq!(hits.first().map(|h| h.id), Some(1), "{hits:?}");
        let hits = c.search(&Query::new("cooling"));
        assert_eq!(hits.len(), 2);
        let cheap = c.search(&Query {
            max_price: Some(Decimal::from(1000)),
            ..Query::new("cooling")
        });
        assert_eq!(cheap.iter().map(|h| h.id).collect::<Vec<_>>(), vec![1]);
        let services = c.search(&Query {
            kind: Some(Kind::Service),
            ..Query::new("slow internet cooling")
        });
        assert_eq!(services.iter().map(|h| h.id).collect::<Vec<_>>(), vec![4]);
        assert!(
            c.search(&Query {
                in_stock: true,
                ..Query::new("thermostat")
            })
            .is_empty()
        );
        let by_category = c.search(&Query {
            category: Some("thermostats"),
            ..Query::new("energy")
        });
        assert_eq!(by_category.len(), 1);
        assert!(c.search(&Query::new("zzz")).is_empty());
    }

    #[test]
    fn evaluation_scores_a_ranking_against_the_labels() {
        let c = catalogue();
        let labelled: Vec<LabelledQuery> = serde_json::from_value(serde_json::json!([
            { "query": "heating bill schedule", "answers": ["Thermostats"] },
            { "query": "nothing in here", "answers": ["Thermostats"] },
        ]))
        .unwrap();
        let q = c.evaluate(&labelled);
        assert_eq!(q.queries, 2);
        assert!((q.ndcg_at_10 - 0.5).abs() < 1e-12, "{q:?}");
        assert!((q.recall_at_10 - 0.5).abs() < 1e-12, "{q:?}");
    }
}
