//! [`SchemaApplier`] for MariaDB: `schema_history` table, `GET_LOCK`, dirty flag.

use super::{
    ApplyReport, Recorded, SchemaApplier, SchemaError, SchemaVersion, VERSIONS, VersionState,
    VersionStatus, compare,
};
use crate::cluster;
use crate::config::MariaDbConfig;
use crate::connect;
use async_trait::async_trait;
use sqlx::{Connection, MySqlConnection};
use std::time::Instant;

/// Seconds to wait for the schema lock before giving up.
const LOCK_WAIT_SECONDS: u32 = 60;

const HISTORY_DDL: &str = "CREATE TABLE IF NOT EXISTS schema_history (
    version       INT UNSIGNED NOT NULL PRIMARY KEY,
    description   VARCHAR(255) NOT NULL,
    checksum      CHAR(64) CHARACTER SET ascii NOT NULL,
    finished      BOOLEAN NOT NULL DEFAULT FALSE,
    started_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    finished_at   DATETIME(6) NULL,
    execution_ms  BIGINT UNSIGNED NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4";

/// Applies [`VERSIONS`] (or a given list) to the database named in a [`MariaDbConfig`],
/// creating the database if needed.
#[derive(Debug, Clone)]
pub struct MariaDbSchema {
    config: MariaDbConfig,
    migrations: &'static [SchemaVersion],
}

impl MariaDbSchema {
    /// The platform's embedded schema on the configured database.
    pub fn new(config: MariaDbConfig) -> Self {
        Self::with_migrations(config, VERSIONS)
    }

    /// Another list of scripts (tests, or a service that extends the schema).
    pub fn with_migrations(config: MariaDbConfig, migrations: &'static [SchemaVersion]) -> Self {
        Self { config, migrations }
    }

    fn database(&self) -> &str {
        self.config.database()
    }

    /// Connects to the server and creates the database when it does not exist yet.
    async fn connect(&self) -> Result<MySqlConnection, SchemaError> {
        let mut conn = cluster::writable_connection(&self.config, false).await?;
        let create = format!(
            "CREATE DATABASE IF NOT EXISTS `{0}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci; USE `{0}`",
            self.database()
        );
        connect::execute_script(&mut conn, &create)
            .await
            .map_err(|source| SchemaError::Database {
                step: "creating the database",
                source,
            })?;
        Ok(conn)
    }

    async fn lock(&self, conn: &mut MySqlConnection) -> Result<(), SchemaError> {
        let granted: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, ?)")
            .bind(self.lock_name())
            .bind(LOCK_WAIT_SECONDS)
            .fetch_one(&mut *conn)
            .await
            .map_err(|source| SchemaError::Database {
                step: "taking the schema lock",
                source,
            })?;
        if granted == Some(1) {
            Ok(())
        } else {
            Err(SchemaError::Locked {
                database: self.database().to_owned(),
                seconds: LOCK_WAIT_SECONDS,
            })
        }
    }

    fn lock_name(&self) -> String {
        format!("aethermart.schema.{}", self.database())
    }

    /// Creates `schema_history` when missing (applying needs it; reading the status does not,
    /// and must work for users without CREATE).
    async fn create_history(conn: &mut MySqlConnection) -> Result<(), SchemaError> {
        connect::execute_script(conn, HISTORY_DDL)
            .await
            .map_err(|source| SchemaError::Database {
                step: "creating schema_history",
                source,
            })
    }

    async fn recorded(conn: &mut MySqlConnection) -> Result<Vec<Recorded>, SchemaError> {
        let rows: Vec<(u32, String, String, bool)> = sqlx::query_as(
            "SELECT version, description, checksum, finished FROM schema_history ORDER BY version",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(|source| SchemaError::Database {
            step: "reading schema_history",
            source,
        })?;
        Ok(rows
            .into_iter()
            .map(|(version, description, checksum, finished)| Recorded {
                version,
                description,
                checksum,
                finished,
            })
            .collect())
    }

    async fn apply_locked(&self, conn: &mut MySqlConnection) -> Result<ApplyReport, SchemaError> {
        Self::create_history(conn).await?;
        let status = compare(self.migrations, &Self::recorded(conn).await?);
        // Refuse before touching anything if the recorded history is not a clean prefix.
        for s in &status {
            match &s.state {
                VersionState::Drift { .. } => {
                    return Err(SchemaError::Drift {
                        version: s.version,
                        description: s.description.clone(),
                    });
                }
                VersionState::Dirty => return Err(SchemaError::Dirty { version: s.version }),
                VersionState::Unknown { description } => {
                    return Err(SchemaError::UnknownVersion {
                        version: s.version,
                        description: description.clone(),
                    });
                }
                VersionState::Applied | VersionState::Pending => {}
            }
        }
        let last_applied = status
            .iter()
            .filter(|s| s.state == VersionState::Applied)
            .map(|s| s.version)
            .max();
        if let Some(s) = status.iter().find(|s| {
            s.state == VersionState::Pending && last_applied.is_some_and(|l| s.version < l)
        }) {
            return Err(SchemaError::OutOfOrder { version: s.version });
        }
        let mut report = ApplyReport {
            already_applied: status
                .iter()
                .filter(|s| s.state == VersionState::Applied)
                .count(),
            ..ApplyReport::default()
        };
        for m in self.migrations {
            let pending = status
                .iter()
                .any(|s| s.version == m.version && s.state == VersionState::Pending);
            if !pending {
                continue;
            }
            let started = Instant::now();
            tracing::info!(
                version = m.version,
                description = m.description,
                "applying schema version"
            );
            sqlx::query(
                "INSERT INTO schema_history (version, description, checksum) VALUES (?, ?, ?)",
            )
            .bind(m.version)
            .bind(m.description)
            .bind(m.checksum())
            .execute(&mut *conn)
            .await
            .map_err(|source| SchemaError::Database {
                step: "recording a schema version",
                source,
            })?;
            connect::execute_script(conn, m.sql)
                .await
                .map_err(|source| SchemaError::Script {
                    version: m.version,
                    description: m.description,
                    source,
                })?;
            let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            sqlx::query(
                "UPDATE schema_history SET finished = TRUE, finished_at = CURRENT_TIMESTAMP(6), \
                 execution_ms = ? WHERE version = ?",
            )
            .bind(ms)
            .bind(m.version)
            .execute(&mut *conn)
            .await
            .map_err(|source| SchemaError::Database {
                step: "recording a schema version",
                source,
            })?;
            tracing::info!(version = m.version, ms, "schema version applied");
            report.applied.push(m.version);
        }
        Ok(report)
    }
}

#[async_trait]
impl SchemaApplier for MariaDbSchema {
    async fn status(&self) -> Result<Vec<VersionStatus>, SchemaError> {
        let mut conn = cluster::writable_connection(&self.config, false).await?;
        let exists: Option<String> = sqlx::query_scalar(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'schema_history'",
        )
        .bind(self.database())
        .fetch_optional(&mut conn)
        .await
        .map_err(|source| SchemaError::Database { step: "looking for schema_history", source })?;
        let recorded = if exists.is_some() {
            connect::execute_script(&mut conn, &format!("USE `{}`", self.database()))
                .await
                .map_err(|source| SchemaError::Database {
                    step: "selecting the database",
                    source,
                })?;
            Self::recorded(&mut conn).await?
        } else {
            Vec::new()
        };
        Ok(compare(self.migrations, &recorded))
    }

    async fn apply(&self) -> Result<ApplyReport, SchemaError> {
        let mut conn = self.connect().await?;
        self.lock(&mut conn).await?;
        let result = self.apply_locked(&mut conn).await;
        // Closing the connection releases the lock as well; release explicitly to be prompt.
        let _ = sqlx::query("SELECT RELEASE_LOCK(?)")
            .bind(self.lock_name())
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
        result
    }

    async fn teardown(&self, confirmed: bool) -> Result<(), SchemaError> {
        if !confirmed {
            return Err(SchemaError::NotConfirmed {
                database: self.database().to_owned(),
            });
        }
        let mut conn = cluster::writable_connection(&self.config, false).await?;
        self.lock(&mut conn).await?;
        tracing::info!(
            database = self.database(),
            "dropping and recreating the database"
        );
        let sql = format!(
            "DROP DATABASE IF EXISTS `{0}`; CREATE DATABASE `{0}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
            self.database()
        );
        let result = connect::execute_script(&mut conn, &sql)
            .await
            .map_err(|source| SchemaError::Database {
                step: "dropping and recreating the database",
                source,
            });
        let _ = sqlx::query("SELECT RELEASE_LOCK(?)")
            .bind(self.lock_name())
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
        result
    }
}
