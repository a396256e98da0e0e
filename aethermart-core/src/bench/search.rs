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
    /// Products renamed in MariaDB while a sync with the model ran: milliseconds from each
    /// commit until a fresh read of the catalogue ranks it first for its new name, with a
    /// vector computed from its new text (each read takes ~0.1 s, the figures' resolution).
    pub rename_to_findable_ms: Vec<f64>,
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
    let (embedder, embedding, vectors_skipped, model) =
        embed_catalogue(&mongo, model_dir, progress).await?;
    let indexing = Instant::now();
    let catalogue = Catalogue::load(&mongo).await?;
    let index_seconds = indexing.elapsed().as_secs_f64();
    let mut rankings = vec![measure(&catalogue, &queries, Ranking::Lexical, None, None)?];
    if let Some(embed) = embedder {
        let vectors = queries
            .iter()
            .map(|q| embed(&q.query))
            .collect::<Result<Vec<_>, _>>()?;
        for ranking in [Ranking::Vector, Ranking::Hybrid] {
            rankings.push(measure(
                &catalogue,
                &queries,
                ranking,
                Some(&embed),
                Some(&vectors),
            )?);
        }
    }
    let rename_to_findable_ms = match model {
        Some(model) => rename_to_findable(&bench, &mongo, model).await?,
        None => Vec::new(),
    };
    Ok(SearchFigures {
        items: catalogue.items().len(),
        index_seconds,
        rankings,
        embedding,
        vectors_skipped,
        rename_to_findable_ms,
    })
}

/// Embeds one query text.
type QueryEmbedder = Box<dyn Fn(&str) -> Result<Vec<f32>, crate::search::SearchError>>;

/// What [`embed_catalogue`] gives: the query embedder, the model's figures, why there are
/// none, and the model itself for the freshness run.
type EmbeddedCatalogue = (
    Option<QueryEmbedder>,
    Option<EmbeddingFigures>,
    Option<String>,
    Option<Model>,
);

#[cfg(feature = "embeddings")]
type Model = Arc<crate::search::embedding::Embedder>;
/// Without the `embeddings` feature there is no model.
#[cfg(not(feature = "embeddings"))]
type Model = std::convert::Infallible;

/// Products to rename (those a small catalogue lacks are skipped) and their new names, each
/// with a word found nowhere else in the catalogue.
const RENAMES: [(u64, &str); 5] = [
    (11, "Quillfeather Study Lamp"),
    (222, "Brambleton Reading Light"),
    (333, "Marrowind Desk Fan"),
    (444, "Thistlecove Night Light"),
    (555, "Larkspurne Table Lamp"),
];

/// Renames products while a sync with the model runs, and times each until a fresh read of
/// the catalogue finds it first under its new name with its new vector.
#[cfg(feature = "embeddings")]
async fn rename_to_findable(
    bench: &Config,
    mongo: &mongodb::Database,
    model: Model,
) -> Result<Vec<f64>, BenchError> {
    use crate::search::Kind;
    use crate::sync::{MongoSink, QueueSource, SyncOptions, Syncer};
    let options = SyncOptions::default();
    let (source, _) = QueueSource::connect(bench, &options, 4).await?;
    let sink = MongoSink::new(mongo.clone()).with_embedder(model.clone());
    let syncer = Syncer::new(Arc::new(source), Arc::new(sink), options);
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(async move {
        syncer
            .run(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
    });
    let pool =
        crate::cluster::writable_pool(&bench.mariadb, crate::connect::PoolSize { max: 1 }).await?;
    let mut samples = Vec::new();
    for &(product, name) in &RENAMES {
        let vector = model
            .embed(&[name])
            .map_err(crate::search::SearchError::from)?
            .vectors
            .remove(0);
        let renamed = sqlx::query("UPDATE Products SET name = ? WHERE product_id = ?")
            .bind(name)
            .bind(product)
            .execute(&pool)
            .await
            .map_err(BenchError::Change)?;
        if renamed.rows_affected() == 0 {
            continue; // a small catalogue without this product
        }
        let committed = Instant::now();
        let id = i64::try_from(product).unwrap_or(i64::MAX);
        loop {
            let catalogue = Catalogue::load(mongo).await?;
            let first = catalogue
                .search(&Query {
                    vector: Some(&vector),
                    kind: Some(Kind::Product),
                    k: 1,
                    ..Query::new(name)
                })
                .pop();
            if first.is_some_and(|h| h.id == id) && catalogue.has_vector(Kind::Product, id) {
                samples.push(committed.elapsed().as_secs_f64() * 1_000.0);
                break;
            }
            if committed.elapsed() > Duration::from_secs(30) {
                let _ = stop.send(true);
                return Err(BenchError::NotSynced {
                    arrived: samples.len(),
                    total: RENAMES.len(),
                    seconds: 30,
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let _ = stop.send(true);
    worker.await.map_err(BenchError::Client)??;
    Ok(samples)
}

/// Without the `embeddings` feature there is no model.
#[cfg(not(feature = "embeddings"))]
async fn rename_to_findable(
    _bench: &Config,
    _mongo: &mongodb::Database,
    model: Model,
) -> Result<Vec<f64>, BenchError> {
    match model {}
}

/// Loads the model and stores the vector of every item; or why not.
#[cfg(feature = "embeddings")]
async fn embed_catalogue(
    mongo: &mongodb::Database,
    model_dir: &Path,
    progress: Arc<dyn Progress>,
) -> Result<EmbeddedCatalogue, BenchError> {
    use crate::search::{embedding::Embedder, index};
    let loading = Instant::now();
    let embedder = match Embedder::load(model_dir) {
        Ok(e) => Arc::new(e),
        Err(e) => return Ok((None, None, Some(e.to_string()), None)),
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
    let model = embedder.clone();
    let embed: QueryEmbedder = Box::new(move |text| Ok(embedder.embed(&[text])?.vectors.remove(0)));
    Ok((Some(embed), Some(figures), None, Some(model)))
}

/// Without the `embeddings` feature there is no model.
#[cfg(not(feature = "embeddings"))]
async fn embed_catalogue(
    _mongo: &mongodb::Database,
    _model_dir: &Path,
    _progress: Arc<dyn Progress>,
) -> Result<EmbeddedCatalogue, BenchError> {
    let why = "built without the `embeddings` feature".to_owned();
    Ok((None, None, Some(why), None))
}

/// Quality with the queries' vectors `query_vectors`, and the latency of embedding (with
/// `embed`) and searching each labelled query [`REPEATS`] times.
fn measure(
    catalogue: &Catalogue,
    queries: &[LabelledQuery],
    ranking: Ranking,
    embed: Option<&QueryEmbedder>,
    query_vectors: Option<&[Vec<f32>]>,
) -> Result<RankingFigures, BenchError> {
    let mut samples: Vec<Duration> = Vec::with_capacity(queries.len() * REPEATS);
    for _ in 0..REPEATS {
        for q in queries {
            let started = Instant::now();
            let vector = embed.map(|e| e(&q.query)).transpose()?;
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
    Ok(RankingFigures {
        ranking,
        quality: catalogue.evaluate(queries, query_vectors, ranking),
        searches: samples.len(),
        p50_ms: quantile_ms(&samples, 0.5),
        p99_ms: quantile_ms(&samples, 0.99),
    })
}
