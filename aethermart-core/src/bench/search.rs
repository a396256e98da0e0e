//! `bench search`: ranking quality over the labelled queries (lexical, vector, hybrid), query
//! latency and the model's throughput, on a catalogue generated and migrated afresh into the
//! bench databases. Without the `embeddings` feature, or without the model, only the lexical
//! ranking is measured.

use super::{BenchError, generated_bench, quantile_ms};
use crate::config::Config;
use crate::generate::{GenerateConfig, LoadOptions};
use crate::migrate::{BulkMigrator, MigrateOptions, Migrator};
use crate::progress::Progress;
use crate::search::quality::{LabelledQuery, labelled_queries};
use crate::search::{Catalogue, Quality, Query, Ranking};
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Times each labelled query is run for the latency figures.
const REPEATS: usize = 10;

/// The figures of [`search_quality`].
#[derive(Debug, Clone, Serialize)]
pub struct SearchFigures {
    /// Items searched (products and services).
    pub items: usize,
    /// Seconds to read the catalogue (items and stored vectors) from MongoDB and index it.
    pub index_seconds: f64,
    /// Per ranking measured: quality and latency.
    pub rankings: Vec<RankingFigures>,
    /// The model's figures, when it was there.
    pub embedding: Option<EmbeddingFigures>,
    /// Why the vector and hybrid rankings were not measured, when they were not.
    pub vectors_skipped: Option<String>,
}

/// One ranking's figures.
#[derive(Debug, Clone, Serialize)]
pub struct RankingFigures {
    /// The ranking.
    pub ranking: Ranking,
    /// nDCG@10 and recall@10 over the labelled queries.
    pub quality: Quality,
    /// Searches timed.
    pub searches: usize,
    /// Median time of one search in a warm process (embedding the query included), ms.
    pub p50_ms: f64,
    /// Its 99th percentile, ms.
    pub p99_ms: f64,
}

/// The embedding model's figures.
#[derive(Debug, Clone, Serialize)]
pub struct EmbeddingFigures {
    /// Seconds to load the model (a search process's cold start pays it once).
    pub model_load_seconds: f64,
    /// Texts embedded: the whole catalogue.
    pub texts: usize,
    /// Tokens in them.
    pub tokens: usize,
    /// Seconds in the model for them.
    pub seconds: f64,
    /// Texts per second.
    pub texts_per_second: f64,
    /// Tokens per second.
    pub tokens_per_second: f64,
    /// Seconds to store the vectors in MongoDB.
    pub store_seconds: f64,
}

/// Generates `settings` into fresh bench databases, migrates them, computes the search vectors
/// with the model in `model_dir`, then measures search over the migrated catalogue.
pub async fn search_quality(
    config: &Config,
    settings: GenerateConfig,
    options: LoadOptions,
    model_dir: &Path,
    progress: Arc<dyn Progress>,
) -> Result<SearchFigures, BenchError> {
    let (bench, mongo) = generated_bench(config, settings, options, progress.clone()).await?;
    BulkMigrator::new(bench.mariadb.clone(), mongo.clone())
        .migrate(MigrateOptions::default(), progress.clone())
        .await?;
    let queries = labelled_queries();
    let (embedder, embedding, vectors_skipped) =
        embed_catalogue(&mongo, model_dir, progress).await?;
    let indexing = Instant::now();
    let catalogue = Catalogue::load(&mongo).await?;
    let index_seconds = indexing.elapsed().as_secs_f64();
    let mut rankings = vec![measure(&catalogue, &queries, Ranking::Lexical, &|_| None)];
    if let Some(embed) = embedder {
        let vectors: Vec<Vec<f32>> = queries.iter().filter_map(|q| embed(&q.query)).collect();
        for ranking in [Ranking::Vector, Ranking::Hybrid] {
            let mut figures = measure(&catalogue, &queries, ranking, &embed);
            figures.quality = catalogue.evaluate(&queries, Some(&vectors), ranking);
            rankings.push(figures);
        }
    }
    Ok(SearchFigures {
        items: catalogue.items().len(),
        index_seconds,
        rankings,
        embedding,
        vectors_skipped,
    })
}

/// Embeds one query text (`None`: the model failed).
type QueryEmbedder = Box<dyn Fn(&str) -> Option<Vec<f32>>>;

/// Loads the model and stores the vector of every item; or why not.
#[cfg(feature = "embeddings")]
async fn embed_catalogue(
    mongo: &mongodb::Database,
    model_dir: &Path,
    progress: Arc<dyn Progress>,
) -> Result<
    (
        Option<QueryEmbedder>,
        Option<EmbeddingFigures>,
        Option<String>,
    ),
    BenchError,
> {
    use crate::search::{embedding::Embedder, index};
    let loading = Instant::now();
    let embedder = match Embedder::load(model_dir) {
        Ok(e) => Arc::new(e),
        Err(e) => return Ok((None, None, Some(e.to_string()))),
    };
    let model_load_seconds = loading.elapsed().as_secs_f64();
    let report = index::reindex(mongo, embedder.clone(), true, progress).await?;
    let figures = EmbeddingFigures {
        model_load_seconds,
        texts: report.embedded,
        tokens: report.tokens,
        seconds: report.embed_seconds,
        texts_per_second: report.texts_per_second(),
        tokens_per_second: report.tokens_per_second(),
        store_seconds: report.store_seconds,
    };
    let embed: QueryEmbedder =
        Box::new(move |text| embedder.embed(&[text]).ok()?.vectors.into_iter().next());
    Ok((Some(embed), Some(figures), None))
}

/// Without the `embeddings` feature there is no model.
#[cfg(not(feature = "embeddings"))]
async fn embed_catalogue(
    _mongo: &mongodb::Database,
    _model_dir: &Path,
    _progress: Arc<dyn Progress>,
) -> Result<
    (
        Option<QueryEmbedder>,
        Option<EmbeddingFigures>,
        Option<String>,
    ),
    BenchError,
> {
    let why = "built without the `embeddings` feature".to_owned();
    Ok((None, None, Some(why)))
}

/// Quality with the query vectors `embed` gives, and the latency of embedding and searching
/// each labelled query [`REPEATS`] times.
fn measure(
    catalogue: &Catalogue,
    queries: &[LabelledQuery],
    ranking: Ranking,
    embed: &dyn Fn(&str) -> Option<Vec<f32>>,
) -> RankingFigures {
    let mut samples: Vec<Duration> = Vec::with_capacity(queries.len() * REPEATS);
    for _ in 0..REPEATS {
        for q in queries {
            let started = Instant::now();
            let vector = embed(&q.query);
            let query = Query {
                kind: q.kind,
                ranking,
                vector: vector.as_deref(),
                ..Query::new(&q.query)
            };
            std::hint::black_box(catalogue.search(&query));
            samples.push(started.elapsed());
        }
    }
    samples.sort_unstable();
    RankingFigures {
        ranking,
        quality: catalogue.evaluate(queries, None, ranking),
        searches: samples.len(),
        p50_ms: quantile_ms(&samples, 0.5),
        p99_ms: quantile_ms(&samples, 0.99),
    }
}
