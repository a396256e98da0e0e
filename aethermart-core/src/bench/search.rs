//! `bench search`: ranking quality over the labelled queries and query latency, on a catalogue
//! generated and migrated afresh into the bench databases.

use super::{BenchError, generated_bench, quantile_ms};
use crate::config::Config;
use crate::generate::{GenerateConfig, LoadOptions};
use crate::migrate::{BulkMigrator, MigrateOptions, Migrator};
use crate::progress::Progress;
use crate::search::quality::labelled_queries;
use crate::search::{Catalogue, Quality, Query};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Times each labelled query is run for the latency figures.
const REPEATS: usize = 20;

/// The figures of [`search_quality`].
#[derive(Debug, Clone, Serialize)]
pub struct SearchFigures {
    /// Items searched (products and services).
    pub items: usize,
    /// Seconds to read the catalogue from MongoDB and index it.
    pub index_seconds: f64,
    /// Lexical ranking (BM25) over the labelled queries.
    pub lexical: Quality,
    /// Searches timed (each labelled query, 20 times).
    pub searches: usize,
    /// Median search time in a warm process, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile search time, in milliseconds.
    pub p99_ms: f64,
}

/// Generates `settings` into fresh bench databases, migrates them, then measures search over
/// the migrated catalogue.
pub async fn search_quality(
    config: &Config,
    settings: GenerateConfig,
    options: LoadOptions,
    progress: Arc<dyn Progress>,
) -> Result<SearchFigures, BenchError> {
    let (bench, mongo) = generated_bench(config, settings, options, progress.clone()).await?;
    BulkMigrator::new(bench.mariadb.clone(), mongo.clone())
        .migrate(MigrateOptions::default(), progress)
        .await?;
    let indexing = Instant::now();
    let catalogue = Catalogue::load(&mongo).await?;
    let index_seconds = indexing.elapsed().as_secs_f64();
    let queries = labelled_queries();
    let lexical = catalogue.evaluate(&queries);
    let mut samples: Vec<Duration> = Vec::with_capacity(queries.len() * REPEATS);
    for _ in 0..REPEATS {
        for q in &queries {
            let query = Query {
                kind: q.kind,
                ..Query::new(&q.query)
            };
            let started = Instant::now();
            std::hint::black_box(catalogue.search(&query));
            samples.push(started.elapsed());
        }
    }
    samples.sort_unstable();
    Ok(SearchFigures {
        items: catalogue.items().len(),
        index_seconds,
        lexical,
        searches: samples.len(),
        p50_ms: quantile_ms(&samples, 0.5),
        p99_ms: quantile_ms(&samples, 0.99),
    })
}
