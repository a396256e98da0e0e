//! Computing and storing the catalogue's vectors: all of them ([`reindex`]: `aethermart search
//! reindex`, `aethermart up`) or those of items whose text changed ([`refresh`]: the sync).
//! The model runs on a blocking thread. Behind the `embeddings` feature.

use super::embedding::{Embedded, Embedder};
use super::{Item, SearchError, vectors};
use crate::progress::Progress;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

/// What [`reindex`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IndexReport {
    /// Items in the catalogue.
    pub items: usize,
    /// Items whose vector was computed and stored.
    pub embedded: usize,
    /// Tokens the model read for them.
    pub tokens: usize,
    /// Seconds spent in the model.
    pub embed_seconds: f64,
    /// Seconds spent storing the vectors.
    pub store_seconds: f64,
    /// Stored vectors removed because their item is gone.
    pub orphans_removed: usize,
}

impl IndexReport {
    /// Texts embedded per second of model time.
    pub fn texts_per_second(&self) -> f64 {
        per_second(self.embedded, self.embed_seconds)
    }

    /// Tokens read per second of model time.
    pub fn tokens_per_second(&self) -> f64 {
        per_second(self.tokens, self.embed_seconds)
    }
}

fn per_second(n: usize, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

/// Passes of [`reindex`] at most: the first embeds what was asked, the others what changed
/// meanwhile.
const PASSES: usize = 3;

/// Computes and stores the vector of every product and service (`all`), or of those without a
/// current one, and removes the vectors of items that are gone. Progress counts texts under
/// the table name `search_embeddings`.
///
/// A worker may change items while this runs (and store their new vectors, which this pass
/// could then overwrite with an older text's): after each pass, the items whose stored vector
/// is not for their current text get another, up to three passes in all. Orphans are those of
/// the last pass's [`vectors::freshness`].
pub async fn reindex(
    mongo: &mongodb::Database,
    embedder: Arc<Embedder>,
    all: bool,
    progress: Arc<dyn Progress>,
) -> Result<IndexReport, SearchError> {
    let mut report = IndexReport::default();
    let mut orphans = Vec::new();
    for pass in 0..PASSES {
        let (items, freshness) = vectors::freshness(mongo).await?;
        report.items = items.len();
        orphans = freshness.orphans;
        let targets: Vec<&Item> = if all && pass == 0 {
            items.iter().collect()
        } else {
            freshness.stale.iter().map(|&i| &items[i]).collect()
        };
        if pass == 0 {
            progress.begin(vectors::COLLECTION, Some(targets.len() as u64));
        }
        if targets.is_empty() {
            break;
        }
        let embedding = Instant::now();
        let texts: Vec<String> = targets.iter().map(|i| i.text.clone()).collect();
        let embedded = embed(embedder.clone(), texts, progress.clone()).await?;
        report.embed_seconds += embedding.elapsed().as_secs_f64();
        let storing = Instant::now();
        vectors::store(mongo, &targets, &embedded.vectors).await?;
        report.store_seconds += storing.elapsed().as_secs_f64();
        report.embedded += targets.len();
        report.tokens += embedded.tokens;
    }
    vectors::remove_ids(mongo, &orphans).await?;
    report.orphans_removed = orphans.len();
    progress.finish(vectors::COLLECTION);
    Ok(report)
}

/// Recomputes the vectors of those of `items` whose stored one is not for their current text,
/// and only those; returns how many.
pub async fn refresh(
    mongo: &mongodb::Database,
    embedder: &Arc<Embedder>,
    items: &[Item],
) -> Result<usize, SearchError> {
    let stale = vectors::stale_among(mongo, items).await?;
    if stale.is_empty() {
        return Ok(0);
    }
    let targets: Vec<&Item> = stale.iter().map(|&i| &items[i]).collect();
    let texts = targets.iter().map(|i| i.text.clone()).collect();
    let embedded = embed(
        embedder.clone(),
        texts,
        Arc::new(crate::progress::NoProgress),
    )
    .await?;
    vectors::store(mongo, &targets, &embedded.vectors).await?;
    Ok(targets.len())
}

/// Embeds `texts` on a blocking thread (the model is CPU work).
pub async fn embed(
    embedder: Arc<Embedder>,
    texts: Vec<String>,
    progress: Arc<dyn Progress>,
) -> Result<Embedded, SearchError> {
    let task = tokio::task::spawn_blocking(move || {
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        embedder.embed_all(&texts, &|n| progress.advance(vectors::COLLECTION, n as u64))
    });
    match task.await {
        Ok(result) => Ok(result?),
        Err(e) => Err(super::embedding::ModelError::Compute(e.to_string()).into()),
    }
}
