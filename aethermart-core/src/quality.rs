//! Data quality checks (`aethermart quality check`): each check counts the failing rows or
//! documents, keeps up to ten sample keys, and is logged to `data_quality_logs` with its
//! severity. A failed `error` check makes the run fail.

use crate::migrate::{BulkMigrator, MigrateError, Migrator};
use crate::projection::document::REVIEWS;
use crate::projection::{Entity, ReadError};
use futures_util::TryStreamExt;
use mongodb::bson::{Document, doc};
use serde::Serialize;
use sqlx::MySqlPool;
use std::time::Duration;

/// How bad a failed check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Wrong data: the run fails.
    Error,
    /// Worth a look.
    Warning,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
        }
    }
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    /// The check's name.
    pub check: &'static str,
    /// What it looked at.
    pub target: String,
    /// Its severity when it fails.
    pub severity: Severity,
    /// Rows or documents that fail it.
    pub failing: u64,
    /// Up to ten of their keys.
    pub sample_keys: Vec<String>,
}

impl CheckResult {
    /// Nothing failed.
    pub fn passed(&self) -> bool {
        self.failing == 0
    }
}

/// A whole run of the checks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualityReport {
    /// Its id in `data_quality_logs`.
    pub run_id: String,
    /// Every check, in order.
    pub checks: Vec<CheckResult>,
}

impl QualityReport {
    /// True when no `error` check failed.
    pub fn ok(&self) -> bool {
        self.checks
            .iter()
            .all(|c| c.passed() || c.severity != Severity::Error)
    }
}

/// Settings of a run.
#[derive(Debug, Clone, Copy)]
pub struct QualityOptions {
    /// A queued change older than this makes `stale_sync` fail.
    pub stale_after: Duration,
}

impl Default for QualityOptions {
    fn default() -> Self {
        Self {
            stale_after: Duration::from_secs(300),
        }
    }
}

/// A check could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QualityError {
    /// A MariaDB query failed.
    #[error("quality check {check} failed to run: {source}")]
    MariaDb {
        /// The check.
        check: &'static str,
        /// The server's error.
        #[source]
        source: sqlx::Error,
    },
    /// A MongoDB query failed.
    #[error("quality check {check} failed to run: {source}")]
    MongoDb {
        /// The check.
        check: &'static str,
        /// The driver's error.
        #[source]
        source: mongodb::error::Error,
    },
    /// Reading the catalogue or its search vectors failed.
    #[error("quality check {check} failed to run: {source}")]
    Search {
        /// The check.
        check: &'static str,
        /// Why.
        #[source]
        source: Box<crate::search::SearchError>,
    },
    /// The reconciliation (the migration's verification) failed to run.
    #[error(transparent)]
    Reconcile(#[from] MigrateError),
}

const SAMPLE: usize = 10;

/// Runs every check and logs each result to `data_quality_logs`.
pub async fn run_checks(
    pool: &MySqlPool,
    mongo: &mongodb::Database,
    reconciler: &BulkMigrator,
    options: QualityOptions,
) -> Result<QualityReport, QualityError> {
    let mut checks = vec![
        sql_check(
            pool,
            "invalid_emails",
            "Customers.email",
            Severity::Error,
            // One '@', no spaces, a domain of non-empty dot-separated labels.
            "SELECT customer_id AS k FROM Customers WHERE email NOT REGEXP \
             '^[^@[:space:]]+@([^@.[:space:]]+[.])+[^@.[:space:]]+$' ORDER BY customer_id",
        )
        .await?,
        sql_check(
            pool,
            "negative_stock",
            "Products.stock",
            Severity::Error,
            "SELECT product_id AS k FROM Products WHERE stock < 0 ORDER BY product_id",
        )
        .await?,
        sql_check(
            pool,
            "order_total_mismatch",
            "Orders.total = SUM(Order_Items.line_total)",
            Severity::Error,
            "SELECT o.order_id AS k FROM Orders o LEFT JOIN \
             (SELECT order_id, SUM(line_total) AS lines_total FROM Order_Items GROUP BY order_id) l \
             ON l.order_id = o.order_id WHERE o.total <> COALESCE(l.lines_total, 0) ORDER BY o.order_id",
        )
        .await?,
        sql_check(
            pool,
            "orphan_rows",
            "rows whose parent is gone (foreign keys switched off by a session)",
            Severity::Error,
            ORPHAN_ROWS,
        )
        .await?,
        orphan_reviews(pool, mongo).await?,
        stale_search_vectors(mongo).await?,
        stale_sync(pool, options.stale_after).await?,
        sql_check(
            pool,
            "sync_dead_letters",
            "sync_dead_letters",
            Severity::Error,
            "SELECT CONCAT(queue, ':', entity_key) AS k FROM sync_dead_letters ORDER BY dead_letter_id",
        )
        .await?,
    ];
    checks.push(reconciliation(pool, reconciler).await?);
    let run_id = crate::lineage::new_run_id();
    for c in &checks {
        let sample = serde_json::to_string(&c.sample_keys).unwrap_or_default();
        sqlx::query(
            "INSERT INTO data_quality_logs (run_id, check_name, target, failing_count, sample_keys, severity, passed) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&run_id)
        .bind(c.check)
        .bind(&c.target)
        .bind(c.failing)
        .bind(sample)
        .bind(c.severity.as_str())
        .bind(c.passed())
        .execute(pool)
        .await
        .map_err(|source| QualityError::MariaDb {
            check: c.check,
            source,
        })?;
        if !c.passed() {
            tracing::warn!(
                check = c.check,
                failing = c.failing,
                severity = c.severity.as_str(),
                "quality check failed"
            );
        }
    }
    Ok(QualityReport { run_id, checks })
}

/// Rows whose parent row is missing. The foreign keys forbid them, but any session may switch
/// `foreign_key_checks` off for itself, so the data is checked, not the constraints trusted.
const ORPHAN_ROWS: &str = "\
    SELECT CONCAT('Orders:', o.order_id) AS k FROM Orders o \
      LEFT JOIN Customers c ON c.customer_id = o.customer_id WHERE c.customer_id IS NULL \
    UNION ALL SELECT CONCAT('Order_Items:', i.order_item_id) FROM Order_Items i \
      LEFT JOIN Orders o ON o.order_id = i.order_id WHERE o.order_id IS NULL \
    UNION ALL SELECT CONCAT('Order_Items:', i.order_item_id) FROM Order_Items i \
      LEFT JOIN Products p ON p.product_id = i.product_id \
      WHERE i.product_id IS NOT NULL AND p.product_id IS NULL \
    UNION ALL SELECT CONCAT('Order_Items:', i.order_item_id) FROM Order_Items i \
      LEFT JOIN Services s ON s.service_id = i.service_id \
      WHERE i.service_id IS NOT NULL AND s.service_id IS NULL \
    UNION ALL SELECT CONCAT('Customer_Addresses:', a.address_id) FROM Customer_Addresses a \
      LEFT JOIN Customers c ON c.customer_id = a.customer_id WHERE c.customer_id IS NULL \
    UNION ALL SELECT CONCAT('Service_Bookings:', b.booking_id) FROM Service_Bookings b \
      LEFT JOIN Order_Items i ON i.order_item_id = b.order_item_id WHERE i.order_item_id IS NULL \
    UNION ALL SELECT CONCAT('Products:', p.product_id) FROM Products p \
      LEFT JOIN Categories c ON c.category_id = p.category_id WHERE c.category_id IS NULL \
    UNION ALL SELECT CONCAT('Services:', s.service_id) FROM Services s \
      LEFT JOIN Categories c ON c.category_id = s.category_id WHERE c.category_id IS NULL";

/// A check whose query returns the failing keys in a column named `k`.
async fn sql_check(
    pool: &MySqlPool,
    check: &'static str,
    target: &str,
    severity: Severity,
    sql: &str,
) -> Result<CheckResult, QualityError> {
    let fail = |source| QualityError::MariaDb { check, source };
    let failing: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM ({sql}) failing"))
        .fetch_one(pool)
        .await
        .map_err(fail)?;
    let sample: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT CAST(k AS CHAR) FROM ({sql}) failing LIMIT {SAMPLE}"
    ))
    .fetch_all(pool)
    .await
    .map_err(fail)?;
    Ok(CheckResult {
        check,
        target: target.to_owned(),
        severity,
        failing: failing.max(0) as u64,
        sample_keys: sample,
    })
}

/// Products and services whose stored search vector is missing or was computed from another
/// text or by another model (search ranks them by their words and as average items of their
/// category until `aethermart search reindex --stale-only`), and vectors whose item is gone.
/// A warning: search still works.
async fn stale_search_vectors(mongo: &mongodb::Database) -> Result<CheckResult, QualityError> {
    use crate::search::{SearchError, vectors};
    const CHECK: &str = "stale_search_vectors";
    let fail = |source: SearchError| QualityError::Search {
        check: CHECK,
        source: Box::new(source),
    };
    let (items, freshness) = vectors::freshness(mongo).await.map_err(fail)?;
    let mut keys: Vec<String> = freshness
        .stale
        .iter()
        .map(|&i| vectors::stored_id(items[i].kind, items[i].id))
        .chain(freshness.orphans.iter().cloned())
        .collect();
    let failing = keys.len() as u64;
    keys.truncate(SAMPLE);
    Ok(CheckResult {
        check: CHECK,
        target: format!(
            "{} (model {})",
            vectors::COLLECTION,
            crate::search::model::MODEL
        ),
        severity: Severity::Warning,
        failing,
        sample_keys: keys,
    })
}

/// Reviews (MongoDB) whose product or customer does not exist in MariaDB: the distinct ids
/// the reviews name are looked up in MariaDB (by key, whatever the tables' size), then the
/// reviews naming a missing one are counted.
async fn orphan_reviews(
    pool: &MySqlPool,
    mongo: &mongodb::Database,
) -> Result<CheckResult, QualityError> {
    const CHECK: &str = "orphan_reviews";
    let mongo_fail = |source| QualityError::MongoDb {
        check: CHECK,
        source,
    };
    let reviews = mongo.collection::<Document>(REVIEWS);
    let mut missing = Document::new();
    for (field, table, key) in [
        ("product_id", "Products", "product_id"),
        ("customer_id", "Customers", "customer_id"),
    ] {
        let named: Vec<i64> = reviews
            .distinct(field, doc! {})
            .await
            .map_err(mongo_fail)?
            .iter()
            .filter_map(|v| v.as_i64().or_else(|| v.as_i32().map(i64::from)))
            .collect();
        let ids: Vec<String> = named.iter().map(i64::to_string).collect();
        let gone: Vec<i64> = sqlx::query_scalar(&format!(
            "SELECT CAST(k.id AS SIGNED) FROM JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT PATH '$')) AS k \
             LEFT JOIN {table} t ON t.{key} = k.id WHERE t.{key} IS NULL"
        ))
        .bind(format!("[{}]", ids.join(",")))
        .fetch_all(pool)
        .await
        .map_err(|source| QualityError::MariaDb { check: CHECK, source })?;
        missing.insert(field, doc! { "$in": gone });
    }
    let orphans = doc! { "$or": [
        { "product_id": missing.get("product_id").cloned().unwrap_or_default() },
        { "customer_id": missing.get("customer_id").cloned().unwrap_or_default() },
    ] };
    let failing = reviews
        .count_documents(orphans.clone())
        .await
        .map_err(mongo_fail)?;
    let sample: Vec<Document> = reviews
        .find(orphans)
        .projection(doc! { "_id": 1 })
        .limit(SAMPLE as i64)
        .await
        .map_err(mongo_fail)?
        .try_collect()
        .await
        .map_err(mongo_fail)?;
    Ok(CheckResult {
        check: CHECK,
        target: format!("mongodb:{}.{REVIEWS}", mongo.name()),
        severity: Severity::Error,
        failing,
        sample_keys: sample
            .iter()
            .filter_map(|d| d.get("_id").map(|id| id.to_string()))
            .collect(),
    })
}

/// Queued changes older than `stale_after`: the sync is behind or not running.
async fn stale_sync(pool: &MySqlPool, stale_after: Duration) -> Result<CheckResult, QualityError> {
    let union: Vec<String> = Entity::ALL
        .iter()
        .map(|&e| {
            let q = e.queue_table();
            format!(
                "SELECT CONCAT('{q}:', entity_key) AS k, queue_id FROM {q} \
                 WHERE changed_at < NOW(6) - INTERVAL {} MICROSECOND",
                stale_after.as_micros()
            )
        })
        .collect();
    let mut result = sql_check(
        pool,
        "stale_sync",
        "*_sync_queue",
        Severity::Warning,
        &format!("SELECT k FROM ({}) stale", union.join(" UNION ALL ")),
    )
    .await?;
    result.target = format!("*_sync_queue older than {} s", stale_after.as_secs());
    Ok(result)
}

/// Counts and per-document content hashes, MariaDB against MongoDB. Keys with a change still
/// queued for the sync are not counted (the worker has not applied them yet: `stale_sync`
/// reports a lagging sync); every other difference is.
///
/// A row that cannot become a document (a value the model refuses) stops the comparison of its
/// entity; that is reported as a failure naming the row's error, not as a failed run.
async fn reconciliation(
    pool: &MySqlPool,
    reconciler: &BulkMigrator,
) -> Result<CheckResult, QualityError> {
    let mut result = CheckResult {
        check: "reconciliation",
        target: "customer_profiles, products, services, orders".to_owned(),
        severity: Severity::Error,
        failing: 0,
        sample_keys: Vec::new(),
    };
    let report = match reconciler.verify().await {
        Ok(report) => report,
        Err(MigrateError::Read(fault @ ReadError::Row { .. })) => {
            result.failing = 1;
            result.sample_keys = vec![fault.to_string()];
            return Ok(result);
        }
        Err(e) => return Err(e.into()),
    };
    let mut failing = 0;
    let mut sample = Vec::new();
    for e in &report.entities {
        let queued: std::collections::HashSet<i64> = sqlx::query_scalar(&format!(
            "SELECT DISTINCT CAST(entity_key AS SIGNED) FROM {}",
            e.entity.queue_table()
        ))
        .fetch_all(pool)
        .await
        .map_err(|source| QualityError::MariaDb {
            check: "reconciliation",
            source,
        })?
        .into_iter()
        .collect();
        let pending = |id: &&i64| !queued.contains(id);
        let differing: Vec<&i64> = e
            .missing
            .iter()
            .chain(&e.different)
            .filter(pending)
            .collect();
        // Documents without a row, less those a queued delete will remove.
        let extra = e
            .documents
            .saturating_sub(e.rows.saturating_sub(e.missing.len() as u64))
            .saturating_sub(queued.len() as u64);
        failing += differing.len() as u64 + extra;
        for id in differing {
            if sample.len() < SAMPLE {
                sample.push(format!("{}:{id}", e.entity.collection()));
            }
        }
    }
    result.failing = failing;
    result.sample_keys = sample;
    Ok(result)
}
