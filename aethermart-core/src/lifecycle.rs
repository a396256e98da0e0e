//! The whole platform in one call (`aethermart up`): teardown (only when asked), schema,
//! data, roles, initial migration, verification — each step timed, the first failure named.
//!
//! Re-running is safe: the schema applier skips applied versions, data is generated only into
//! an empty database (a database that has customers keeps them), roles are re-applied, the
//! migration is idempotent. A failed step leaves a state that the next run repairs (a failed
//! load needs `--fresh`: the error says so).

use crate::cluster;
use crate::config::Config;
use crate::connect::{self, PoolSize};
use crate::generate::{self, GenerateConfig, LoadOptions};
use crate::migrate::{BulkMigrator, MigrateOptions, Migrator, VerifyReport};
use crate::progress::Progress;
use crate::schema::{MariaDbSchema, SchemaApplier};
use crate::security::{self, Passwords};
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

/// What `up` does.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Drop both databases first (the caller has the user's confirmation).
    pub fresh: bool,
    /// Data to generate into an empty database.
    pub data: GenerateConfig,
    /// The users' passwords; `None` skips the roles step (and says so).
    pub passwords: Option<Passwords>,
    /// The capture to switch to before the migration (`None`: keep the database's).
    pub capture: Option<crate::sync::Capture>,
    /// The search's embedding model directory: after the verification, `up` computes the
    /// search vectors with it (step `search`). A missing model skips the step, naming the
    /// path and the command that fetches it; so does a build without the `embeddings` feature.
    pub embedding_model_dir: std::path::PathBuf,
}

/// One step's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// The step's name.
    pub step: &'static str,
    /// Seconds it took.
    pub seconds: f64,
    /// What it did, in a few words.
    pub detail: String,
}

/// Everything `up` did.
#[derive(Debug, Clone, Serialize)]
pub struct UpReport {
    /// The steps, in order.
    pub steps: Vec<StepReport>,
    /// The migration's run id (its lineage).
    pub migration_run: String,
}

/// `up` stopped at a step.
#[derive(Debug, thiserror::Error)]
#[error("step `{step}` failed: {source}")]
pub struct UpError {
    /// The step.
    pub step: &'static str,
    /// Why.
    #[source]
    pub source: StepError,
}

/// Why a step of `up` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    /// The job the step runs failed.
    #[error(transparent)]
    Job(Box<crate::Error>),
    /// Counting the customers (does the database already have data?) failed.
    #[error("checking whether the database already has data failed: {0}")]
    DataCheck(#[source] sqlx::Error),
    /// The migration's verification found differences.
    #[error("the stores differ after the migration: {}", differing(.0))]
    StoresDiffer(VerifyReport),
}

/// `orders (3 mismatches), …` for the entities that differ.
fn differing(report: &VerifyReport) -> String {
    report
        .entities
        .iter()
        .filter(|e| !e.equal())
        .map(|e| format!("{} ({} mismatches)", e.entity, e.mismatches))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs the lifecycle; `on_step` hears each step start (to show progress).
pub async fn up(
    config: &Config,
    options: UpOptions,
    progress: Arc<dyn Progress>,
    on_step: &(dyn Fn(&'static str) + Send + Sync),
) -> Result<UpReport, UpError> {
    let mut steps = Vec::new();
    let schema = MariaDbSchema::new(config.mariadb.clone());
    let mut step = |name: &'static str, started: Instant, detail: String| {
        steps.push(StepReport {
            step: name,
            seconds: started.elapsed().as_secs_f64(),
            detail,
        })
    };
    let fail = |step: &'static str| {
        move |e: crate::Error| UpError {
            step,
            source: StepError::Job(Box::new(e)),
        }
    };

    if options.fresh {
        on_step("teardown");
        let t = Instant::now();
        async {
            schema.teardown(true).await?;
            connect::mongodb_database(&config.mongodb)
                .await?
                .drop()
                .await
                .map_err(|source| crate::connect::ConnectError::MongoDb {
                    endpoint: config.mongodb.endpoint().to_owned(),
                    source,
                })?;
            Ok::<_, crate::Error>(())
        }
        .await
        .map_err(fail("teardown"))?;
        step("teardown", t, "both databases dropped".into());
    }

    on_step("schema");
    let t = Instant::now();
    let applied = schema.apply().await.map_err(|e| fail("schema")(e.into()))?;
    let detail = if applied.applied.is_empty() {
        format!("up to date ({} versions)", applied.already_applied)
    } else {
        format!("applied versions {:?}", applied.applied)
    };
    step("schema", t, detail);

    on_step("generate");
    let t = Instant::now();
    let pool = cluster::writable_pool(&config.mariadb, PoolSize { max: 2 })
        .await
        .map_err(|e| fail("generate")(e.into()))?;
    let customers: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM Customers")
        .fetch_one(&pool)
        .await
        .map_err(|e| UpError {
            step: "generate",
            source: StepError::DataCheck(e),
        })?;
    pool.close().await;
    if customers == 0 {
        let summary = generate::generate_into(
            config,
            options.data,
            LoadOptions {
                replace_documents: true,
                ..LoadOptions::default()
            },
            progress.clone(),
        )
        .await
        .map_err(|e| fail("generate")(e.into()))?;
        step(
            "generate",
            t,
            format!(
                "{} rows, {} documents (scale {}, seed {})",
                summary.mariadb_rows,
                summary.mongodb_documents,
                options.data.scale,
                options.data.seed
            ),
        );
    } else {
        step(
            "generate",
            t,
            format!("kept the {customers} customers already there"),
        );
    }

    on_step("security");
    let t = Instant::now();
    match &options.passwords {
        Some(passwords) => {
            security::apply(&config.mariadb, passwords)
                .await
                .map_err(|e| fail("security")(e.into()))?;
            step(
                "security",
                t,
                "roles and users alex, sarah, maria, aethermart_worker".into(),
            );
        }
        None => step(
            "security",
            t,
            "skipped: AETHERMART_*_PASSWORD not set".into(),
        ),
    }

    on_step("capture");
    let t = Instant::now();
    let detail = match options.capture {
        Some(to) => {
            let switched = crate::sync::capture::switch(config, to, "aethermart up")
                .await
                .map_err(|e| fail("capture")(e.into()))?;
            if switched.from == switched.to {
                format!("{to} (unchanged)")
            } else {
                format!("{} -> {to}", switched.from)
            }
        }
        None => {
            let pool = crate::cluster::writable_pool(&config.mariadb, connect::PoolSize { max: 1 })
                .await
                .map_err(|e| fail("capture")(e.into()))?;
            let now = crate::sync::capture::current(&pool)
                .await
                .map_err(|e| fail("capture")(e.into()))?;
            format!("{now} (unchanged)")
        }
    };
    step("capture", t, detail);

    on_step("migrate");
    let t = Instant::now();
    let mongo = connect::mongodb_database(&config.mongodb)
        .await
        .map_err(|e| fail("migrate")(e.into()))?;
    let migrator = BulkMigrator::new(config.mariadb.clone(), mongo.clone());
    let progress_for_search = progress.clone();
    let migration = migrator
        .migrate(MigrateOptions::default(), progress)
        .await
        .map_err(|e| fail("migrate")(e.into()))?;
    let written: u64 = migration.entities.iter().map(|e| e.written).sum();
    let refused: usize = migration.entities.iter().map(|e| e.refused.len()).sum();
    step(
        "migrate",
        t,
        format!("{written} documents, {refused} refused"),
    );

    on_step("verify");
    let t = Instant::now();
    let verified = migrator
        .verify()
        .await
        .map_err(|e| fail("verify")(e.into()))?;
    if !verified.equal() {
        return Err(UpError {
            step: "verify",
            source: StepError::StoresDiffer(verified),
        });
    }
    step("verify", t, "MariaDB and MongoDB hold the same".into());

    on_step("search");
    let t = Instant::now();
    let detail = search_vectors(&mongo, &options.embedding_model_dir, progress_for_search)
        .await
        .map_err(fail("search"))?;
    step("search", t, detail);
    Ok(UpReport {
        steps,
        migration_run: migration.run_id,
    })
}

/// Computes the search vectors that are missing or stale (the `search` step: all of them on a
/// new database), or says why it is skipped.
#[cfg(feature = "embeddings")]
async fn search_vectors(
    mongo: &mongodb::Database,
    model_dir: &std::path::Path,
    progress: Arc<dyn Progress>,
) -> Result<String, crate::Error> {
    use crate::search::{embedding::Embedder, index};
    let embedder = match Embedder::load(model_dir) {
        Ok(embedder) => Arc::new(embedder),
        Err(e) => {
            tracing::warn!(error = %e, "search vectors not computed; search ranks lexically");
            return Ok(format!("skipped, search ranks lexically: {e}"));
        }
    };
    let report = index::reindex(mongo, embedder, false, progress).await?;
    if report.embedded == 0 {
        return Ok(format!(
            "the {} items' search vectors are current",
            report.items
        ));
    }
    Ok(format!(
        "{} search vectors ({:.0} texts/s)",
        report.embedded,
        report.texts_per_second()
    ))
}

/// Without the `embeddings` feature there is no model to compute the vectors with.
#[cfg(not(feature = "embeddings"))]
async fn search_vectors(
    _mongo: &mongodb::Database,
    _model_dir: &std::path::Path,
    _progress: Arc<dyn Progress>,
) -> Result<String, crate::Error> {
    Ok("skipped: built without the `embeddings` feature, search ranks lexically".into())
}
