//! Lineage of every data movement in `data_lineage_tracker`: one row per run and table of
//! `generate`, per run and entity of `migrate`, per batch of the sync worker; read back by
//! `aethermart lineage`, also as OpenLineage `RunEvent`s.

use chrono::{DateTime, NaiveDateTime, Utc};
use rand::Rng;
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::MySqlPool;

/// A random (version 4) UUID, the identifier of a run.
pub(crate) fn new_run_id() -> String {
    uuid_text(rand::rng().random::<u128>(), 4)
}

/// `bits` as a UUID of `version` (RFC 9562 variant), in 8-4-4-4-12 hex digits.
fn uuid_text(bits: u128, version: u8) -> String {
    let bits = (bits & !(0xf << 76) & !(0x3 << 62)) | (u128::from(version) << 76) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// One row of `data_lineage_tracker`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineageRow {
    /// Row key.
    pub lineage_id: u64,
    /// The run (several rows share it: one per table, entity or batch).
    pub run_id: String,
    /// `generate`, `migrate` or `sync`.
    pub job: String,
    /// Comma-separated source tables (or the generator's settings).
    pub source_tables: String,
    /// `mariadb:<db>.<table>` or `mongodb:<db>.<collection>`.
    pub target: String,
    /// Rows read.
    pub rows_read: u64,
    /// Rows or documents written.
    pub rows_written: u64,
    /// Rows refused (validation) or dead-lettered.
    pub rows_rejected: u64,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End (`None` while running).
    pub finished_at: Option<DateTime<Utc>>,
    /// `running`, `complete` or `failed`.
    pub status: String,
    /// What went wrong, or what was refused.
    pub error: Option<String>,
}

type RawRow = (
    u64,
    String,
    String,
    String,
    String,
    u64,
    u64,
    u64,
    NaiveDateTime,
    Option<NaiveDateTime>,
    String,
    Option<String>,
);

/// Reading the lineage failed.
#[derive(Debug, thiserror::Error)]
#[error("reading data_lineage_tracker failed: {0}")]
pub struct LineageError(#[source] pub sqlx::Error);

/// The newest `limit` rows (at most 10,000), or all rows of one run, read through
/// `sp_ReadLineage` (no locks; the engineer needs only EXECUTE).
pub async fn read(
    pool: &MySqlPool,
    run: Option<&str>,
    limit: u32,
) -> Result<Vec<LineageRow>, LineageError> {
    let rows: Vec<RawRow> = sqlx::query_as("CALL sp_ReadLineage(?, ?)")
        .bind(run)
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(LineageError)?;
    Ok(rows
        .into_iter()
        .map(|r| LineageRow {
            lineage_id: r.0,
            run_id: r.1,
            job: r.2,
            source_tables: r.3,
            target: r.4,
            rows_read: r.5,
            rows_written: r.6,
            rows_rejected: r.7,
            started_at: r.8.and_utc(),
            finished_at: r.9.map(|t| t.and_utc()),
            status: r.10,
            error: r.11,
        })
        .collect())
}

/// Where the stores live, for OpenLineage dataset namespaces.
#[derive(Debug, Clone)]
pub struct Namespaces {
    /// The MariaDB database (`<db>`), for input names.
    pub mariadb_database: String,
    /// `mysql://host:port`.
    pub mariadb: String,
    /// `mongodb://host:port`.
    pub mongodb: String,
}

impl Namespaces {
    /// The namespaces of `config`'s stores. A host list is sorted first, so a dataset keeps its
    /// namespace whatever order the cluster's nodes are listed in.
    pub fn of(config: &crate::config::Config) -> Self {
        Self {
            mariadb_database: config.mariadb.database().to_owned(),
            mariadb: format!("mysql://{}", sorted_hosts(&config.mariadb.endpoint())),
            mongodb: format!("mongodb://{}", sorted_hosts(config.mongodb.endpoint())),
        }
    }
}

fn sorted_hosts(list: &str) -> String {
    let mut hosts: Vec<&str> = list.split(',').map(str::trim).collect();
    hosts.sort_unstable();
    hosts.dedup();
    hosts.join(",")
}

/// The OpenLineage run of one row: a name-based (version 8, SHA-256) UUID of the row's run id
/// and its key, so each row is a run of its own job while rows of one run share a parent.
fn row_run_id(row: &LineageRow) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{}/{}", row.run_id, row.lineage_id).as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid_text(u128::from_be_bytes(bytes), 8)
}

/// The rows as OpenLineage `RunEvent`s (spec 2-0-2): a `START` per row, then `COMPLETE` or
/// `FAIL` once it finished. Each row is a run (its id derived from the row) of the job
/// `<job>.<target table or collection>` in namespace `aethermart`, with the platform's run
/// (one `generate`/`migrate` invocation, or one worker's life) as its `parent` run facet;
/// inputs and outputs are datasets named `<db>.<table>`.
pub fn openlineage_events(rows: &[LineageRow], ns: &Namespaces) -> Vec<Value> {
    let dataset = |spec: &str| -> Value {
        let (store, name) = spec.split_once(':').unwrap_or(("mariadb", spec));
        let namespace = if store == "mongodb" {
            &ns.mongodb
        } else {
            &ns.mariadb
        };
        json!({ "namespace": namespace, "name": name })
    };
    let mut events = Vec::new();
    for row in rows {
        let inputs: Vec<Value> = if row.job == "generate" {
            Vec::new()
        } else {
            row.source_tables
                .split(',')
                .filter(|t| !t.is_empty())
                .map(|t| match t {
                    // The ratings come from MongoDB's reviews collection.
                    "reviews" => dataset(&format!("mongodb:{}", target_db(&row.target, t))),
                    _ => dataset(&format!("mariadb:{}.{t}", ns.mariadb_database)),
                })
                .collect()
        };
        let outputs = vec![dataset(&row.target)];
        let object = row.target.rsplit('.').next().unwrap_or(&row.target);
        let job = json!({ "namespace": "aethermart", "name": format!("{}.{object}", row.job) });
        let run_id = row_run_id(row);
        let parent = json!({
            "_producer": PRODUCER,
            "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/ParentRunFacet.json#/$defs/ParentRunFacet",
            "run": { "runId": row.run_id },
            "job": { "namespace": "aethermart", "name": row.job },
        });
        let event = |kind: &str, time: DateTime<Utc>, mut facets: Value| {
            facets["parent"] = parent.clone();
            json!({
                "eventType": kind,
                "eventTime": time.to_rfc3339(),
                "run": { "runId": run_id, "facets": facets },
                "job": job,
                "inputs": inputs,
                "outputs": outputs,
                "producer": PRODUCER,
                "schemaURL": SCHEMA_URL,
            })
        };
        events.push(event("START", row.started_at, json!({})));
        if let Some(finished) = row.finished_at {
            let (kind, facets) = match (row.status.as_str(), &row.error) {
                ("failed", Some(message)) => (
                    "FAIL",
                    json!({ "errorMessage": {
                        "_producer": PRODUCER,
                        "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
                        "message": message,
                        "programmingLanguage": "Rust",
                    } }),
                ),
                ("failed", None) => ("FAIL", json!({})),
                _ => ("COMPLETE", json!({})),
            };
            events.push(event(kind, finished, facets));
        }
    }
    events
}

/// `<db>.<collection>` for a MongoDB source collection, from a target `mongodb:<db>.<x>`.
fn target_db(target: &str, collection: &str) -> String {
    let db = target
        .split_once(':')
        .map(|(_, rest)| rest)
        .unwrap_or(target)
        .split('.')
        .next()
        .unwrap_or_default();
    format!("{db}.{collection}")
}

const PRODUCER: &str = concat!(
    "https://github.com/aethermart/aethermart/tree/v",
    env!("CARGO_PKG_VERSION"),
    "/aethermart-core"
);
const SCHEMA_URL: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";

#[cfg(test)]
mod tests {

    #[test]
    fn namespaces_do_not_depend_on_the_order_of_the_nodes() {
        use crate::config::{Config, MARIADB_URL, MONGODB_URI};
        let config = |mariadb: &str, mongodb: &str| {
            let (mariadb, mongodb) = (mariadb.to_owned(), mongodb.to_owned());
            Config::from_lookup(move |var| match var {
                v if v == MARIADB_URL => Some(mariadb.clone()),
                v if v == MONGODB_URI => Some(mongodb.clone()),
                _ => None,
            })
            .unwrap()
        };
        let a = Namespaces::of(&config(
            "mysql://u@db2:3306,db1:3306,db3:3306/shop",
            "mongodb://m2:27017,m1:27017/shop",
        ));
        let b = Namespaces::of(&config(
            "mysql://u@db3:3306,db2:3306,db1:3306/shop",
            "mongodb://m1:27017,m2:27017/shop",
        ));
        assert_eq!((&a.mariadb, &a.mongodb), (&b.mariadb, &b.mongodb));
        assert_eq!(a.mariadb, "mysql://db1:3306,db2:3306,db3:3306");
        assert_eq!(a.mongodb, "mongodb://m1:27017,m2:27017");
    }
    use super::*;

    #[test]
    fn run_ids_look_like_uuids() {
        let id = new_run_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_ne!(id, new_run_id());
        assert_eq!(&id[14..15], "4", "a version 4 UUID");
        assert!("89ab".contains(&id[19..20]), "the RFC 9562 variant");
    }

    #[test]
    fn a_finished_failed_row_gives_start_and_fail_with_datasets() {
        let t = DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let row_id = new_run_id();
        let row = LineageRow {
            lineage_id: 1,
            run_id: row_id.clone(),
            job: "migrate".into(),
            source_tables: "Products,Categories,reviews".into(),
            target: "mongodb:shop.products".into(),
            rows_read: 10,
            rows_written: 9,
            rows_rejected: 1,
            started_at: t,
            finished_at: Some(t),
            status: "failed".into(),
            error: Some("boom".into()),
        };
        let ns = Namespaces {
            mariadb_database: "shop".into(),
            mariadb: "mysql://h:3306".into(),
            mongodb: "mongodb://h:27017".into(),
        };
        let events = openlineage_events(&[row], &ns);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0]["eventType"], "START");
        assert_eq!(events[1]["eventType"], "FAIL");
        assert_eq!(events[1]["job"]["name"], "migrate.products");
        assert_eq!(events[1]["inputs"][0]["name"], "shop.Products");
        assert_eq!(events[1]["inputs"][2]["namespace"], "mongodb://h:27017");
        assert_eq!(events[1]["inputs"][2]["name"], "shop.reviews");
        assert_eq!(events[1]["outputs"][0]["name"], "shop.products");
        assert_eq!(
            events[1]["run"]["facets"]["errorMessage"]["message"],
            "boom"
        );
    }
}
