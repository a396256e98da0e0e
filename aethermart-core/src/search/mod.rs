//! Search over the catalogue: products and services ranked for a shopper's own words.
//!
//! Two rankings, fused: lexical ([`lexical`], BM25 over name, description and category path,
//! in process: the document store needs no text index) and vector similarity (cosine between
//! the query's embedding and the item's, blended half and half with the query's similarity to
//! the item's category, the mean of its items' vectors: one description names only a few of
//! the features and uses its category stands for; brute force: at 2,200 items a query compares
//! 0.8 M numbers). [`Ranking::Hybrid`] adds both after standardising each over the admitted
//! items (z-scores), the lexical one weighted 0.2: BM25's scores are heavy-tailed, one rare word
//! shared with a description would otherwise outweigh the meaning. Filters: kind, category,
//! price range, in stock. The vectors come from a local sentence-embedding model
//! ([`model`]; computing them needs the `embeddings` feature: `embedding`, `index`) and are
//! stored beside the items ([`vectors`]), each with the hash of the text it was computed from,
//! so a vector whose item changed is never used. The labelled query set and its metrics
//! ([`quality`]) measure the rankings.
//!
//! Brute force stays under a millisecond per query up to about 100,000 items (38 M
//! multiply-adds); past that, an HNSW index (e.g. MongoDB Atlas Vector Search's, or an
//! in-process `hnsw_rs`/`usearch` index rebuilt from the stored vectors) would take over.

#[cfg(feature = "embeddings")]
pub mod embedding;
#[cfg(feature = "embeddings")]
pub mod index;
pub mod lexical;
pub mod model;
pub mod quality;
pub mod vectors;

use crate::projection::document::{PRODUCTS, SERVICES};
use futures_util::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use quality::LabelledQuery;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

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

/// How hits are ranked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ranking {
    /// BM25 over the words.
    Lexical,
    /// Cosine similarity of the embeddings, the item's and its category's (no hits without a
    /// query vector).
    Vector,
    /// Both, standardised and added (lexical alone without a query vector).
    #[default]
    Hybrid,
}

impl Ranking {
    /// Every ranking, in the order the bench prints them.
    pub const ALL: [Self; 3] = [Self::Lexical, Self::Vector, Self::Hybrid];

    /// Its name, as `--ranking` spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Lexical => "lexical",
            Self::Vector => "vector",
            Self::Hybrid => "hybrid",
        }
    }
}

impl std::str::FromStr for Ranking {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| format!("unknown ranking `{s}`: lexical, vector or hybrid"))
    }
}

/// In the vector ranking, the weight of the item's own similarity; its category's takes the
/// rest.
const ITEM_WEIGHT: f64 = 0.5;
/// In the hybrid ranking, the weight of the lexical z-score (the vector one weighs 1).
const LEXICAL_WEIGHT: f64 = 0.2;

/// A search: the shopper's words, how many hits, and filters.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    /// The shopper's words.
    pub text: &'a str,
    /// The words' embedding (from the model the stored vectors are of), for the vector and
    /// hybrid rankings.
    pub vector: Option<&'a [f32]>,
    /// How hits are ranked.
    pub ranking: Ranking,
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
            vector: None,
            ranking: Ranking::Hybrid,
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
    /// Each item's vector, when one is stored for its current text.
    vectors: Vec<Option<Vec<f32>>>,
    /// Each item's category (index into `category_vectors`).
    category_of: Vec<usize>,
    /// Each category's vector (none when none of its items has one).
    category_vectors: Vec<Option<CategoryVector>>,
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
    /// Writing stored vectors failed.
    #[error("writing MongoDB collection {} failed: {source}", vectors::COLLECTION)]
    Write {
        /// The command's error.
        #[source]
        source: Box<crate::mongo_write::CommandError>,
    },
    /// MongoDB refused a stored vector.
    #[error("MongoDB refused a document of {}: {reason}", vectors::COLLECTION)]
    Refused {
        /// MongoDB's reason.
        reason: String,
    },
    /// The embedding model could not be loaded or run.
    #[cfg(feature = "embeddings")]
    #[error(transparent)]
    Model(#[from] embedding::ModelError),
}

impl Catalogue {
    /// Indexes `items`.
    pub fn new(items: Vec<Item>) -> Self {
        let lexical = lexical::Bm25::new(items.iter().map(|i| i.text.as_str()));
        let mut categories: HashMap<&[String], usize> = HashMap::new();
        let category_of = items
            .iter()
            .map(|i| {
                let next = categories.len();
                *categories.entry(&i.category_path).or_insert(next)
            })
            .collect();
        let category_count = categories.len();
        Self {
            vectors: vec![None; items.len()],
            category_of,
            category_vectors: vec![None; category_count],
            items,
            lexical,
            skipped: Vec::new(),
        }
    }

    /// The same catalogue with a vector for each item (`None`: that item has none).
    ///
    /// # Panics
    /// When `vectors` and the items differ in number.
    pub fn with_vectors(self, vectors: Vec<Option<Vec<f32>>>) -> Self {
        assert_eq!(
            vectors.len(),
            self.items.len(),
            "one vector (or None) per item"
        );
        let mut sums: Vec<Option<(Vec<f32>, usize)>> = vec![None; self.category_vectors.len()];
        for (v, &c) in vectors.iter().zip(&self.category_of) {
            let Some(v) = v else { continue };
            match &mut sums[c] {
                Some((sum, n)) => {
                    sum.iter_mut().zip(v).for_each(|(s, x)| *s += x);
                    *n += 1;
                }
                empty => *empty = Some((v.clone(), 1)),
            }
        }
        let category_vectors = sums
            .into_iter()
            .map(|sum| {
                let (mut sum, n) = sum?;
                let norm = dot(&sum, &sum).sqrt();
                (norm > 0.0).then(|| {
                    sum.iter_mut().for_each(|x| *x /= norm);
                    CategoryVector {
                        unit: sum,
                        mean_length: norm / n as f32,
                    }
                })
            })
            .collect();
        Self {
            vectors,
            category_vectors,
            ..self
        }
    }

    /// Reads every product and service from the document store with their stored vectors
    /// (those computed from the item's current text by [`model::MODEL`]) and indexes them. A
    /// document search cannot read is left out, logged and kept in [`Catalogue::skipped`]; only
    /// a failed read of a collection is an error.
    pub async fn load(mongo: &mongodb::Database) -> Result<Self, SearchError> {
        let (items, skipped) = read_items(mongo).await?;
        let mut stored = vectors::load(mongo).await?;
        let vectors = items
            .iter()
            .map(|item| {
                stored
                    .remove(&(item.kind, item.id))
                    .filter(|s| s.text_sha256 == vectors::text_sha256(&item.text))
                    .map(|s| s.vector)
            })
            .collect();
        Ok(Self {
            skipped,
            ..Self::new(items).with_vectors(vectors)
        })
    }

    /// Whether this item has a vector for its current text.
    pub fn has_vector(&self, kind: Kind, id: i64) -> bool {
        self.items
            .iter()
            .zip(&self.vectors)
            .any(|(i, v)| i.kind == kind && i.id == id && v.is_some())
    }

    /// Items with a vector for their current text.
    pub fn vectors_present(&self) -> usize {
        self.vectors.iter().filter(|v| v.is_some()).count()
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
        let mut ranked = match (query.ranking, query.vector) {
            (Ranking::Lexical, _) | (Ranking::Hybrid, None) => self.lexical_ranking(query),
            (Ranking::Vector, None) => Vec::new(),
            (Ranking::Vector, Some(v)) => self.vector_ranking(query, v),
            (Ranking::Hybrid, Some(v)) => self.hybrid_ranking(query, v),
        };
        ranked.truncate(query.k);
        ranked
    }

    /// Every admitted item matching at least one word, by BM25, best first.
    fn lexical_ranking(&self, query: &Query<'_>) -> Vec<(usize, f64)> {
        let scores = self.lexical.scores(query.text).into_iter().enumerate();
        best_first(scores.filter(|&(i, s)| s > 0.0 && query.admits(&self.items[i])))
    }

    /// Every admitted item with a vector (its own or its category's), by similarity to
    /// `vector`, best first.
    fn vector_ranking(&self, query: &Query<'_>, vector: &[f32]) -> Vec<(usize, f64)> {
        best_first(self.vector_scores(query, vector).into_iter())
    }

    /// The admitted items' vector scores: the item's cosine similarity to `vector` blended
    /// with its category's ([`ITEM_WEIGHT`]). An item without a current vector of its own
    /// counts as an average item of its category there: the mean of its category's items'
    /// similarities (the query against their mean vector), so it never outranks them all.
    fn vector_scores(&self, query: &Query<'_>, vector: &[f32]) -> Vec<(usize, f64)> {
        // Per category: (cosine with its unit vector, mean similarity of its items).
        let categories: Vec<Option<(f64, f64)>> = self
            .category_vectors
            .iter()
            .map(|c| {
                let c = c.as_ref()?;
                let cosine = f64::from(dot(&c.unit, vector));
                Some((cosine, cosine * f64::from(c.mean_length)))
            })
            .collect();
        (0..self.items.len())
            .filter(|&i| query.admits(&self.items[i]))
            .filter_map(|i| {
                let own = self.vectors[i].as_ref().map(|v| f64::from(dot(v, vector)));
                let score = match (own, categories[self.category_of[i]]) {
                    (Some(own), Some((category, _))) => {
                        ITEM_WEIGHT * own + (1.0 - ITEM_WEIGHT) * category
                    }
                    (None, Some((category, average))) => {
                        ITEM_WEIGHT * average + (1.0 - ITEM_WEIGHT) * category
                    }
                    (Some(own), None) => own,
                    (None, None) => return None,
                };
                Some((i, score))
            })
            .collect()
    }

    /// Every admitted item by the sum of its vector z-score and [`LEXICAL_WEIGHT`] times its
    /// lexical z-score (each standardised over the admitted items; an item without a vector
    /// score counts as average there), best first.
    fn hybrid_ranking(&self, query: &Query<'_>, vector: &[f32]) -> Vec<(usize, f64)> {
        let lexical = self.lexical.scores(query.text);
        let admitted: Vec<usize> = (0..self.items.len())
            .filter(|&i| query.admits(&self.items[i]))
            .collect();
        let lexical_z = standardise(admitted.iter().map(|&i| lexical[i]));
        let mut fused: HashMap<usize, f64> = admitted
            .iter()
            .zip(lexical_z)
            .map(|(&i, z)| (i, LEXICAL_WEIGHT * z))
            .collect();
        let vector_scores = self.vector_scores(query, vector);
        let vector_z = standardise(vector_scores.iter().map(|&(_, s)| s));
        for ((i, _), z) in vector_scores.iter().zip(vector_z) {
            *fused.entry(*i).or_default() += z;
        }
        best_first(fused.into_iter())
    }

    /// nDCG@10 and recall@10 of `ranking` over `queries` (means); `query_vectors` holds each
    /// query's embedding, in order, for the vector and hybrid rankings.
    pub fn evaluate(
        &self,
        queries: &[LabelledQuery],
        query_vectors: Option<&[Vec<f32>]>,
        ranking: Ranking,
    ) -> Quality {
        let (mut ndcg, mut recall) = (0.0, 0.0);
        for (n, q) in queries.iter().enumerate() {
            let query = Query {
                kind: q.kind,
                ranking,
                vector: query_vectors.and_then(|v| v.get(n)).map(Vec::as_slice),
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

/// A category's meaning: the mean of its items' vectors.
#[derive(Debug, Clone)]
struct CategoryVector {
    /// The mean, normalised to length 1.
    unit: Vec<f32>,
    /// The mean's length before (1 when its items' vectors agree, less as they spread).
    mean_length: f32,
}

/// Sorted by score, best first (ties: catalogue order).
fn best_first(scores: impl Iterator<Item = (usize, f64)>) -> Vec<(usize, f64)> {
    let mut ranked: Vec<(usize, f64)> = scores.collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
}

/// The scores as z-scores (minus their mean, over their standard deviation; all 0 when they
/// do not vary).
fn standardise(scores: impl ExactSizeIterator<Item = f64> + Clone) -> Vec<f64> {
    let n = scores.len().max(1) as f64;
    let mean = scores.clone().sum::<f64>() / n;
    let deviation = (scores.clone().map(|s| (s - mean).powi(2)).sum::<f64>() / n).sqrt();
    scores
        .map(|s| {
            if deviation > 0.0 {
                (s - mean) / deviation
            } else {
                0.0
            }
        })
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Every product and service the document store holds, and the documents that could not be
/// read as items (logged).
pub(crate) async fn read_items(
    mongo: &mongodb::Database,
) -> Result<(Vec<Item>, Vec<SearchError>), SearchError> {
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
    Ok((items, skipped))
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

/// The item a product or service document describes (the stored document, or the one the
/// sync is about to write).
pub(crate) fn item(
    collection: &'static str,
    kind: Kind,
    d: &Document,
) -> Result<Item, SearchError> {
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
    fn vectors_find_what_words_miss_and_the_fusion_keeps_both() {
        // Toy 3-d "embeddings": 1 and 2 are about computers, 3 about heating, 4 (a service
        // about networks) has none.
        let c = catalogue().with_vectors(vec![
            Some(vec![1.0, 0.0, 0.0]),
            Some(vec![0.8, 0.6, 0.0]),
            Some(vec![0.0, 0.0, 1.0]),
            None,
        ]);
        assert_eq!(c.vectors_present(), 3);
        let heating = [0.0, 0.1, 0.995];
        // No word of "warm house cheaply" is in the catalogue: lexical finds nothing, the
        // vector finds the thermostat first, and so does the fusion.
        let words = Query::new("warm house cheaply");
        assert!(c.search(&words).is_empty());
        let by_vector = c.search(&Query {
            vector: Some(&heating),
            ranking: Ranking::Vector,
            ..words.clone()
        });
        assert_eq!(
            by_vector.iter().map(|h| h.id).collect::<Vec<_>>(),
            vec![3, 2, 1]
        );
        let hybrid = c.search(&Query {
            vector: Some(&heating),
            ..words.clone()
        });
        assert_eq!(hybrid.first().map(|h| h.id), Some(3));
        // Found by both comes first; found by the words alone (4 has no vector) comes before
        // what neither ranking favours.
        let hybrid = c.search(&Query {
            vector: Some(&[0.0, 0.0, 1.0]),
            ..Query::new("slow internet thermostat")
        });
        let ids: Vec<i64> = hybrid.iter().map(|h| h.id).collect();
        assert_eq!(ids[..2], [3, 4], "{hybrid:?}");
        // Filters hold for the vector ranking too; without a query vector, hybrid is lexical
        // and vector finds nothing.
        let services = c.search(&Query {
            vector: Some(&heating),
            ranking: Ranking::Vector,
            kind: Some(Kind::Service),
            ..words.clone()
        });
        assert!(
            services.is_empty(),
            "item 4, the only service, has no vector"
        );
        assert_eq!(
            c.search(&Query::new("cooling")),
            c.search(&Query {
                ranking: Ranking::Lexical,
                ..Query::new("cooling")
            })
        );
        assert!(
            c.search(&Query {
                ranking: Ranking::Vector,
                ..Query::new("cooling")
            })
            .is_empty()
        );
        assert_eq!("vector".parse::<Ranking>(), Ok(Ranking::Vector));
        assert!("semantic".parse::<Ranking>().is_err());
    }

    #[test]
    fn an_item_shares_its_categorys_meaning_even_without_a_vector_of_its_own() {
        let c = Catalogue::new(vec![
            item(
                Kind::Product,
                1,
                "Nano Tower",
                "Small Form Factor PCs",
                999,
                "quiet",
            ),
            item(
                Kind::Product,
                2,
                "Warmth One",
                "Thermostats",
                199,
                "schedules",
            ),
            item(
                Kind::Product,
                5,
                "Warmth Two",
                "Thermostats",
                149,
                "app control",
            ),
            item(
                Kind::Product,
                6,
                "Warmth Three",
                "Thermostats",
                99,
                "renamed, not yet embedded",
            ),
        ])
        .with_vectors(vec![
            Some(vec![1.0, 0.0]),
            Some(vec![0.6, 0.8]),
            Some(vec![0.0, 1.0]),
            None,
        ]);
        let hits = c.search(&Query {
            vector: Some(&[0.0, 1.0]),
            ranking: Ranking::Vector,
            ..Query::new("heating")
        });
        let scores: Vec<(i64, f64)> = hits.iter().map(|h| (h.id, h.score)).collect();
        // Thermostats' mean vector: (0.3, 0.9), length 0.948683; the query's cosine with it
        // 0.948683, and the mean similarity of the two thermostats with a vector 0.9.
        let category = 0.9 / (0.09_f64 + 0.81).sqrt();
        let expect = [
            (5, 0.5 + 0.5 * category),
            (6, 0.5 * 0.9 + 0.5 * category),
            (2, 0.4 + 0.5 * category),
            (1, 0.0),
        ];
        assert_eq!(scores.len(), expect.len(), "{scores:?}");
        for ((id, score), (want_id, want)) in scores.iter().zip(expect) {
            assert_eq!(*id, want_id, "{scores:?}");
            assert!((score - want).abs() < 1e-5, "{scores:?}");
        }
    }

    #[test]
    fn evaluation_scores_a_ranking_against_the_labels() {
        let c = catalogue();
        let labelled: Vec<LabelledQuery> = serde_json::from_value(serde_json::json!([
            { "query": "heating bill schedule", "answers": ["Thermostats"] },
            { "query": "nothing in here", "answers": ["Thermostats"] },
        ]))
        .unwrap();
        let q = c.evaluate(&labelled, None, Ranking::Lexical);
        assert_eq!(q.queries, 2);
        assert!((q.ndcg_at_10 - 0.5).abs() < 1e-12, "{q:?}");
        assert!((q.recall_at_10 - 0.5).abs() < 1e-12, "{q:?}");
    }
}
