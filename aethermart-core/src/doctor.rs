//! `aethermart doctor`: can both stores be reached, and are they set up the way the platform needs?

use crate::cluster;
use crate::config::Config;
use crate::connect::{self, ConnectError};
use mongodb::bson::{Document, doc};
use serde::Serialize;
use sqlx::Row;
use std::fmt;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// As the platform needs it.
    Pass,
    /// Works, but a feature (replication, full Unicode, …) will not.
    Warn,
    /// The platform cannot work like this.
    Fail,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pass => "ok",
            Self::Warn => "warn",
            Self::Fail => "FAIL",
        })
    }
}

/// One named setting, its value, and what the platform expects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Setting name, e.g. `binlog_format`.
    pub name: &'static str,
    /// The value the server reported.
    pub value: String,
    /// What the platform expects, in words.
    pub expected: &'static str,
    /// Pass, warn or fail.
    pub verdict: Verdict,
}

impl Check {
    fn new(
        name: &'static str,
        value: impl Into<String>,
        expected: &'static str,
        verdict: Verdict,
    ) -> Self {
        Self {
            name,
            value: value.into(),
            expected,
            verdict,
        }
    }
}

/// What doctor found on one store.
#[derive(Debug, Clone, Serialize)]
pub struct StoreReport {
    /// `MariaDB` or `MongoDB`.
    pub store: &'static str,
    /// Where it was looked for (no password).
    pub endpoint: String,
    /// The server's version, when reachable.
    pub version: Option<String>,
    /// The reason it could not be reached, if it could not.
    pub unreachable: Option<String>,
    /// Individual checks.
    pub checks: Vec<Check>,
}

impl StoreReport {
    /// Reachable and no check failed.
    pub fn healthy(&self) -> bool {
        self.unreachable.is_none() && self.checks.iter().all(|c| c.verdict != Verdict::Fail)
    }

    fn down(store: &'static str, endpoint: String, err: &ConnectError) -> Self {
        Self {
            store,
            endpoint,
            version: None,
            unreachable: Some(err.to_string()),
            checks: Vec::new(),
        }
    }
}

/// Both stores' reports.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    /// The relational store.
    pub mariadb: StoreReport,
    /// The document store.
    pub mongodb: StoreReport,
}

impl DoctorReport {
    /// True when both stores are reachable and nothing failed.
    pub fn healthy(&self) -> bool {
        self.mariadb.healthy() && self.mongodb.healthy()
    }
}

/// Checks both stores concurrently. Never fails: an unreachable store is part of the report.
pub async fn diagnose(cfg: &Config) -> DoctorReport {
    let (mariadb, mongodb) = tokio::join!(diagnose_mariadb(cfg), diagnose_mongodb(cfg));
    DoctorReport { mariadb, mongodb }
}

/// MariaDB server variables the platform depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MariaDbSettings {
    /// `SELECT VERSION()`, e.g. `10.11.19-MariaDB-0+deb12u1`.
    pub version: String,
    /// `@@character_set_server`.
    pub character_set_server: String,
    /// `@@binlog_format`.
    pub binlog_format: String,
    /// `@@log_bin` (1 or 0).
    pub log_bin: bool,
    /// `@@read_only` (1 or 0).
    pub read_only: bool,
    /// `@@wsrep_on`, absent without the Galera provider.
    pub wsrep_on: bool,
    /// Status `wsrep_ready`.
    pub wsrep_ready: Option<String>,
    /// Status `wsrep_local_state_comment`, e.g. `Synced`.
    pub wsrep_state: Option<String>,
    /// Status `wsrep_cluster_size`.
    pub wsrep_cluster_size: Option<String>,
    /// `@@binlog_row_image`.
    pub binlog_row_image: String,
    /// `@@binlog_row_metadata`.
    pub binlog_row_metadata: String,
    /// `@@binlog_expire_logs_seconds` (0: binlogs are never purged by age).
    pub binlog_expire_logs_seconds: u64,
    /// The database's capture (`sync_settings`), `None` before schema version 15.
    pub capture: Option<String>,
    /// Age of the stored binlog position (MongoDB), when there is one.
    pub binlog_position_age: Option<std::time::Duration>,
}

/// What binlog capture needs of the server, and whether the stored position is older than the
/// binlogs the server keeps (pure, unit-tested).
pub fn binlog_capture_check(s: &MariaDbSettings) -> Check {
    let missing: Vec<String> = crate::binlog_position::missing_settings(
        s.log_bin,
        &s.binlog_format,
        &s.binlog_row_image,
        &s.binlog_row_metadata,
    )
    .into_iter()
    .map(|(variable, wanted, is)| format!("{variable}={wanted} (is {is})"))
    .collect();
    let binlog = s.capture.as_deref() == Some("binlog");
    let capture = s
        .capture
        .as_deref()
        .unwrap_or("triggers (schema before version 15)");
    if !missing.is_empty() {
        return Check::new(
            "binlog_capture",
            format!(
                "capture {capture}; binlog capture needs {}",
                missing.join(", ")
            ),
            "the server settings of deploy/mariadb/primary.cnf",
            if binlog { Verdict::Fail } else { Verdict::Pass },
        );
    }
    let expire = s.binlog_expire_logs_seconds;
    let stale = binlog
        && expire > 0
        && s.binlog_position_age
            .is_some_and(|age| age.as_secs() * 2 > expire);
    let age = s.binlog_position_age.map_or("none stored".to_owned(), |a| {
        format!("{} s old", a.as_secs())
    });
    Check::new(
        "binlog_capture",
        format!("capture {capture}; server ready; position {age}; binlogs kept {expire} s"),
        "a stored position well inside binlog_expire_logs_seconds (a purged position needs a new migration)",
        if stale { Verdict::Warn } else { Verdict::Pass },
    )
}

/// Lowest MariaDB release with everything the schema uses (JSON_TABLE, `WITHOUT OVERLAPS`).
const MIN_MARIADB: (u32, u32) = (10, 6);
/// Lowest MongoDB release the document layer is written for.
const MIN_MONGODB: (u32, u32) = (6, 0);

fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Turns MariaDB settings into checks (pure, unit-tested).
pub fn mariadb_checks(s: &MariaDbSettings) -> Vec<Check> {
    let version_ok =
        s.version.contains("MariaDB") && major_minor(&s.version).is_some_and(|v| v >= MIN_MARIADB);
    let mut checks = vec![
        Check::new(
            "version",
            &s.version,
            "MariaDB 10.6 or newer",
            if version_ok {
                Verdict::Pass
            } else {
                Verdict::Fail
            },
        ),
        Check::new(
            "character_set_server",
            &s.character_set_server,
            "utf8mb4 (the schema sets it per table anyway)",
            if s.character_set_server == "utf8mb4" {
                Verdict::Pass
            } else {
                Verdict::Warn
            },
        ),
        Check::new(
            "binlog_format",
            &s.binlog_format,
            "ROW (replication and Galera need it)",
            if s.binlog_format.eq_ignore_ascii_case("ROW") {
                Verdict::Pass
            } else {
                Verdict::Warn
            },
        ),
        Check::new(
            "log_bin",
            if s.log_bin { "ON" } else { "OFF" },
            "ON for a replication primary, either for a standalone server",
            Verdict::Pass,
        ),
        Check::new(
            "read_only",
            if s.read_only { "ON" } else { "OFF" },
            "OFF on the node the platform writes to",
            if s.read_only {
                Verdict::Fail
            } else {
                Verdict::Pass
            },
        ),
    ];
    if s.wsrep_on {
        let ready = s.wsrep_ready.as_deref() == Some("ON");
        let synced = s.wsrep_state.as_deref() == Some("Synced");
        checks.push(Check::new(
            "wsrep",
            format!(
                "ON, ready={}, state={}, cluster_size={}",
                s.wsrep_ready.as_deref().unwrap_or("?"),
                s.wsrep_state.as_deref().unwrap_or("?"),
                s.wsrep_cluster_size.as_deref().unwrap_or("?")
            ),
            "ready=ON and state Synced on a Galera node",
            if ready && synced {
                Verdict::Pass
            } else {
                Verdict::Fail
            },
        ));
    } else {
        checks.push(Check::new(
            "wsrep",
            "OFF (not a Galera node)",
            "either",
            Verdict::Pass,
        ));
    }
    checks.push(binlog_capture_check(s));
    checks
}

async fn diagnose_mariadb(cfg: &Config) -> StoreReport {
    let endpoint = cfg.mariadb.endpoint();
    let mut conn = match cluster::writable_connection(&cfg.mariadb, false).await {
        Ok(c) => c,
        Err(e) => return StoreReport::down("MariaDB", endpoint, &e),
    };
    match read_mariadb_settings(&mut conn, cfg.mariadb.database()).await {
        Ok(mut settings) => {
            settings.binlog_position_age = binlog_position_age(cfg).await;
            let mut checks = mariadb_checks(&settings);
            if cfg.mariadb.is_cluster() {
                checks.push(cluster_check(
                    &crate::cluster::probe_nodes(&cfg.mariadb).await,
                ));
            }
            StoreReport {
                store: "MariaDB",
                endpoint,
                version: Some(settings.version.clone()),
                unreachable: None,
                checks,
            }
        }
        Err(source) => {
            let err = ConnectError::MariaDb {
                endpoint: endpoint.clone(),
                source,
            };
            StoreReport::down("MariaDB", endpoint, &err)
        }
    }
}

/// For a cluster URL: the settings above are the writable node's; this is every node (a node
/// that is not [healthy](crate::cluster::NodeStatus::healthy) is a warning: writes go on
/// elsewhere; `aethermart cluster status` has the details).
fn cluster_check(nodes: &[crate::cluster::NodeStatus]) -> Check {
    let unfit: Vec<String> = nodes
        .iter()
        .filter(|n| !n.healthy())
        .map(|n| n.endpoint.clone())
        .collect();
    let value = if unfit.is_empty() {
        format!("{} nodes up", nodes.len())
    } else {
        format!(
            "{} of {} nodes up and fit; not: {}",
            nodes.len() - unfit.len(),
            nodes.len(),
            unfit.join(", ")
        )
    };
    Check::new(
        "cluster",
        value,
        "every node up: taking writes (Galera: Synced), or replicating",
        if unfit.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Warn
        },
    )
}

/// How long ago the binlog position of the database was stored (none when MongoDB cannot be
/// read or holds none).
async fn binlog_position_age(cfg: &Config) -> Option<std::time::Duration> {
    let mongo = crate::connect::mongodb_database(&cfg.mongodb).await.ok()?;
    crate::binlog_position::store::load(&mongo, cfg.mariadb.database())
        .await
        .ok()??
        .age
}

async fn read_mariadb_settings(
    conn: &mut sqlx::MySqlConnection,
    database: &str,
) -> Result<MariaDbSettings, sqlx::Error> {
    let row = sqlx::query(
        "SELECT VERSION(), @@character_set_server, @@binlog_format, @@log_bin, @@read_only, \
         @@binlog_row_image, @@binlog_row_metadata, CAST(@@binlog_expire_logs_seconds AS UNSIGNED)",
    )
    .fetch_one(&mut *conn)
    .await?;
    let mut s = MariaDbSettings {
        version: row.try_get(0)?,
        character_set_server: row.try_get(1)?,
        binlog_format: row.try_get(2)?,
        log_bin: row.try_get::<i64, _>(3)? != 0,
        read_only: row.try_get::<i64, _>(4)? != 0,
        binlog_row_image: row.try_get(5)?,
        binlog_row_metadata: row.try_get(6)?,
        binlog_expire_logs_seconds: row.try_get(7)?,
        ..MariaDbSettings::default()
    };
    // The platform's database (the connection has none selected): its capture, if the
    // schema has the setting.
    s.capture = sqlx::query_scalar::<_, String>(&format!(
        "SELECT capture FROM `{}`.sync_settings WHERE id = 1",
        database.replace('`', "")
    ))
    .fetch_optional(&mut *conn)
    .await
    .ok()
    .flatten();
    let status: Vec<(String, String)> = sqlx::query_as(
        "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES \
         WHERE VARIABLE_NAME = 'WSREP_ON' \
         UNION ALL SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
         WHERE VARIABLE_NAME IN ('WSREP_READY', 'WSREP_LOCAL_STATE_COMMENT', 'WSREP_CLUSTER_SIZE')",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (name, value) in status {
        match name.as_str() {
            "WSREP_ON" => s.wsrep_on = value == "ON",
            "WSREP_READY" => s.wsrep_ready = Some(value),
            "WSREP_LOCAL_STATE_COMMENT" => s.wsrep_state = Some(value),
            "WSREP_CLUSTER_SIZE" => s.wsrep_cluster_size = Some(value),
            _ => {}
        }
    }
    Ok(s)
}

/// Turns MongoDB `buildInfo` and `hello` answers into checks (pure, unit-tested).
pub fn mongodb_checks(build_info: &Document, hello: &Document) -> Vec<Check> {
    let version = build_info
        .get_str("version")
        .unwrap_or("unknown")
        .to_owned();
    let version_ok = major_minor(&version).is_some_and(|v| v >= MIN_MONGODB);
    let writable = hello
        .get_bool("isWritablePrimary")
        .or_else(|_| hello.get_bool("ismaster"))
        .unwrap_or(false);
    let set_name = hello.get_str("setName").unwrap_or("none (standalone)");
    vec![
        Check::new(
            "version",
            version,
            "MongoDB 6.0 or newer",
            if version_ok {
                Verdict::Pass
            } else {
                Verdict::Fail
            },
        ),
        Check::new(
            "writable primary",
            if writable { "yes" } else { "no" },
            "yes: the platform writes here",
            if writable {
                Verdict::Pass
            } else {
                Verdict::Fail
            },
        ),
        Check::new(
            "replica set",
            set_name,
            "a replica set allows transactions and change streams; standalone works",
            Verdict::Pass,
        ),
    ]
}

async fn diagnose_mongodb(cfg: &Config) -> StoreReport {
    let endpoint = cfg.mongodb.endpoint().to_owned();
    let db = match connect::mongodb_database(&cfg.mongodb).await {
        Ok(db) => db,
        Err(e) => return StoreReport::down("MongoDB", endpoint, &e),
    };
    let answers = async {
        let build_info = db.run_command(doc! { "buildInfo": 1 }).await?;
        let hello = db.run_command(doc! { "hello": 1 }).await?;
        Ok::<_, mongodb::error::Error>((build_info, hello))
    };
    match answers.await {
        Ok((build_info, hello)) => StoreReport {
            store: "MongoDB",
            version: build_info.get_str("version").ok().map(str::to_owned),
            endpoint,
            unreachable: None,
            checks: mongodb_checks(&build_info, &hello),
        },
        Err(source) => {
            let err = ConnectError::MongoDb {
                endpoint: endpoint.clone(),
                source,
            };
            StoreReport::down("MongoDB", endpoint, &err)
        }
    }
}

impl fmt::Display for StoreReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.unreachable, &self.version) {
            (Some(reason), _) => writeln!(f, "{:<8} {}  DOWN: {reason}", self.store, self.endpoint),
            (None, version) => {
                writeln!(
                    f,
                    "{:<8} {}  {}",
                    self.store,
                    self.endpoint,
                    version.as_deref().unwrap_or("")
                )?;
                for c in &self.checks {
                    writeln!(
                        f,
                        "  [{:>4}] {:<22} {:<40} expected: {}",
                        c.verdict, c.name, c.value, c.expected
                    )?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for DoctorReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.mariadb, self.mongodb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standalone() -> MariaDbSettings {
        MariaDbSettings {
            version: "10.11.19-MariaDB-0+deb12u1".into(),
            character_set_server: "utf8mb4".into(),
            binlog_format: "ROW".into(),
            binlog_row_image: "FULL".into(),
            binlog_row_metadata: "FULL".into(),
            ..MariaDbSettings::default()
        }
    }

    #[test]
    fn binlog_capture_needs_full_row_events_and_a_position_inside_the_kept_binlogs() {
        let mut s = standalone();
        s.log_bin = true;
        s.capture = Some("binlog".into());
        s.binlog_expire_logs_seconds = 86_400;
        s.binlog_position_age = Some(std::time::Duration::from_secs(60));
        assert_eq!(binlog_capture_check(&s).verdict, Verdict::Pass);
        s.binlog_position_age = Some(std::time::Duration::from_secs(50_000));
        assert_eq!(
            binlog_capture_check(&s).verdict,
            Verdict::Warn,
            "older than half the retention"
        );
        s.binlog_row_metadata = "MINIMAL".into();
        let check = binlog_capture_check(&s);
        assert_eq!(check.verdict, Verdict::Fail);
        assert!(
            check.value.contains("binlog_row_metadata=FULL"),
            "{check:?}"
        );
        s.capture = Some("triggers".into());
        assert_eq!(
            binlog_capture_check(&s).verdict,
            Verdict::Pass,
            "under trigger capture it only says what binlog capture would need"
        );
    }

    fn verdict(checks: &[Check], name: &str) -> Verdict {
        checks.iter().find(|c| c.name == name).expect(name).verdict
    }

    #[test]
    fn a_standalone_mariadb_with_row_binlog_passes() {
        let checks = mariadb_checks(&standalone());
        assert!(
            checks.iter().all(|c| c.verdict == Verdict::Pass),
            "{checks:?}"
        );
    }

    #[test]
    fn old_versions_read_only_and_unsynced_galera_fail() {
        let mut s = standalone();
        s.version = "10.5.2-MariaDB".into();
        assert_eq!(verdict(&mariadb_checks(&s), "version"), Verdict::Fail);
        s.version = "8.0.36".into();
        assert_eq!(
            verdict(&mariadb_checks(&s), "version"),
            Verdict::Fail,
            "MySQL is not MariaDB"
        );

        let mut s = standalone();
        s.read_only = true;
        s.binlog_format = "MIXED".into();
        s.character_set_server = "latin1".into();
        let checks = mariadb_checks(&s);
        assert_eq!(verdict(&checks, "read_only"), Verdict::Fail);
        assert_eq!(verdict(&checks, "binlog_format"), Verdict::Warn);
        assert_eq!(verdict(&checks, "character_set_server"), Verdict::Warn);

        let mut s = standalone();
        s.wsrep_on = true;
        s.wsrep_ready = Some("ON".into());
        s.wsrep_state = Some("Donor/Desynced".into());
        assert_eq!(verdict(&mariadb_checks(&s), "wsrep"), Verdict::Fail);
        s.wsrep_state = Some("Synced".into());
        assert_eq!(verdict(&mariadb_checks(&s), "wsrep"), Verdict::Pass);
    }

    #[test]
    fn mongodb_needs_version_six_and_a_writable_primary() {
        let hello = doc! { "isWritablePrimary": true, "setName": "rs0" };
        let checks = mongodb_checks(&doc! { "version": "7.0.2" }, &hello);
        assert!(checks.iter().all(|c| c.verdict == Verdict::Pass));
        let checks = mongodb_checks(&doc! { "version": "5.0.9" }, &hello);
        assert_eq!(verdict(&checks, "version"), Verdict::Fail);
        let checks = mongodb_checks(
            &doc! { "version": "8.2.0" },
            &doc! { "isWritablePrimary": false },
        );
        assert_eq!(verdict(&checks, "writable primary"), Verdict::Fail);
    }

    #[test]
    fn an_unreachable_store_is_unhealthy_and_says_where() {
        let report = StoreReport {
            store: "MariaDB",
            endpoint: "127.0.0.1:1".into(),
            version: None,
            unreachable: Some("cannot connect to MariaDB at 127.0.0.1:1: refused".into()),
            checks: vec![],
        };
        assert!(!report.healthy());
        assert!(report.to_string().contains("127.0.0.1:1"));
    }
}
