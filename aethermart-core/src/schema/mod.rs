//! Versioned, checksummed schema scripts and the [`SchemaApplier`] that applies them.
//!
//! The scripts in the repository's `sql/` folder are embedded at build time ([`VERSIONS`]).
//! Applying records each version in `schema_history` with the SHA-256 of its text; an applied
//! script whose text has changed since is refused, as is a database left half-way by a failed
//! script (MariaDB commits DDL implicitly, so a failed script cannot be rolled back).

mod mariadb;

pub use mariadb::MariaDbSchema;

use crate::connect::ConnectError;
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use std::fmt;

/// One embedded schema script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaVersion {
    /// Position in the sequence, from 1, no gaps.
    pub version: u32,
    /// What the script does.
    pub description: &'static str,
    /// The SQL text (several statements; procedures and triggers without `DELIMITER`).
    pub sql: &'static str,
}

impl SchemaVersion {
    /// Hex SHA-256 of the script text, as recorded in `schema_history`.
    pub fn checksum(&self) -> String {
        Sha256::digest(self.sql.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The platform's schema, in order.
pub static VERSIONS: &[SchemaVersion] = &[
    SchemaVersion {
        version: 1,
        description: "relational core: customers, addresses, categories, products, services, orders, bookings",
        sql: include_str!("../../sql/0001_relational_core.sql"),
    },
    SchemaVersion {
        version: 2,
        description: "business logic: sp_PlaceOrder, sp_CancelOrder, stock and guard triggers, reporting views",
        sql: include_str!("../../sql/0002_business_logic.sql"),
    },
    SchemaVersion {
        version: 3,
        description: "semantic search: the descriptive text of products and services",
        sql: include_str!("../../sql/0003_semantic_search.sql"),
    },
    SchemaVersion {
        version: 4,
        description: "migration state: checkpoints and the lineage tracker",
        sql: include_str!("../../sql/0004_migration_state.sql"),
    },
    SchemaVersion {
        version: 5,
        description: "sync capture: queues filled by triggers, dead letters",
        sql: include_str!("../../sql/0005_sync_capture.sql"),
    },
    SchemaVersion {
        version: 6,
        description: "governance: the masked customer view",
        sql: include_str!("../../sql/0006_governance.sql"),
    },
    SchemaVersion {
        version: 7,
        description: "data quality: the log of every check",
        sql: include_str!("../../sql/0007_data_quality.sql"),
    },
    SchemaVersion {
        version: 8,
        description: "high availability: the node the sync workers claim on",
        sql: include_str!("../../sql/0008_sync_home.sql"),
    },
    SchemaVersion {
        version: 9,
        description: "sync integrity: key slots and the handoff row instead of user locks, the engineer's views and procedures",
        sql: include_str!("../../sql/0009_sync_integrity.sql"),
    },
    SchemaVersion {
        version: 10,
        description: "procedure guards: session switches forced and restored, at most 100 lines, no past slots, no overflowing amounts",
        sql: include_str!("../../sql/0010_procedure_guards.sql"),
    },
    SchemaVersion {
        version: 11,
        description: "k-anonymous customers for the analyst: a keyed pseudonym, generalised signup period and place",
        sql: include_str!("../../sql/0011_k_anonymous_customers.sql"),
    },
    SchemaVersion {
        version: 12,
        description: "history loading is an account's privilege, not a session variable; each order line records the stock it took",
        sql: include_str!("../../sql/0012_history_loader.sql"),
    },
    SchemaVersion {
        version: 13,
        description: "operator lineage: resync, requeue and discard each write a finished lineage row",
        sql: include_str!("../../sql/0013_operator_lineage.sql"),
    },
    SchemaVersion {
        version: 14,
        description: "review stream: where the workers' change stream on reviews stands",
        sql: include_str!("../../sql/0014_review_stream.sql"),
    },
    SchemaVersion {
        version: 15,
        description: "choosing the capture: triggers or binlog, a setting the capture triggers read",
        sql: include_str!("../../sql/0015_capture_choice.sql"),
    },
];

/// Where one script stands in a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionState {
    /// Applied with the same text as now.
    Applied,
    /// Not applied yet.
    Pending,
    /// Applied, but the script's text has changed since (checksums differ).
    Drift {
        /// Checksum recorded when it was applied.
        recorded: String,
    },
    /// Started but never finished: the database is half-way through this script.
    Dirty,
    /// Recorded in the database but unknown to this build (the database is newer).
    Unknown {
        /// The recorded description.
        description: String,
    },
}

impl fmt::Display for VersionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Applied => f.write_str("applied"),
            Self::Pending => f.write_str("pending"),
            Self::Drift { .. } => f.write_str("DRIFT (script edited after it was applied)"),
            Self::Dirty => f.write_str("DIRTY (failed half-way)"),
            Self::Unknown { .. } => f.write_str("UNKNOWN (applied by a newer build)"),
        }
    }
}

/// One line of [`SchemaApplier::status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionStatus {
    /// Script version.
    pub version: u32,
    /// Script description.
    pub description: String,
    /// Where it stands.
    pub state: VersionState,
}

/// The result of [`SchemaApplier::apply`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Versions applied by this call, in order (empty when already up to date).
    pub applied: Vec<u32>,
    /// Versions that were already applied.
    pub already_applied: usize,
}

/// Why the schema could not be read, applied or torn down.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The server could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// Another applier holds the schema lock.
    #[error(
        "another process is changing the schema of `{database}` (lock not granted within {seconds} s)"
    )]
    Locked {
        /// The database.
        database: String,
        /// How long we waited.
        seconds: u32,
    },
    /// An applied script was edited afterwards.
    #[error(
        "schema version {version} ({description}) was edited after it was applied: \
         its checksum differs from the one recorded in schema_history; \
         restore the script or add a new version instead"
    )]
    Drift {
        /// The version.
        version: u32,
        /// Its description.
        description: String,
    },
    /// A script failed half-way earlier.
    #[error(
        "schema version {version} failed half-way in an earlier run; \
         the database needs repair (`aethermart schema teardown --yes` on a throwaway database)"
    )]
    Dirty {
        /// The version.
        version: u32,
    },
    /// A pending version is older than one already applied (scripts were inserted out of order).
    #[error(
        "schema version {version} is pending but a later version is already applied; versions must be added at the end"
    )]
    OutOfOrder {
        /// The pending version.
        version: u32,
    },
    /// The database holds a version this build does not know.
    #[error(
        "the database has schema version {version} ({description}), newer than this build knows"
    )]
    UnknownVersion {
        /// The version.
        version: u32,
        /// Its recorded description.
        description: String,
    },
    /// A script failed.
    #[error("schema version {version} ({description}) failed: {source}")]
    Script {
        /// The version.
        version: u32,
        /// Its description.
        description: &'static str,
        /// The server's error.
        #[source]
        source: sqlx::Error,
    },
    /// Another statement failed.
    #[error("{step} failed: {source}")]
    Database {
        /// What was being done.
        step: &'static str,
        /// The server's error.
        #[source]
        source: sqlx::Error,
    },
    /// Teardown was called without confirmation.
    #[error("teardown drops the whole database `{database}`; confirm it explicitly (--yes)")]
    NotConfirmed {
        /// The database that would have been dropped.
        database: String,
    },
}

/// Applies the platform's schema to a database.
///
/// Contract: `apply` is idempotent (a second call changes nothing), never runs two scripts
/// concurrently on one database (implementations hold a lock), and refuses to continue past a
/// drifted or dirty version. `teardown` destroys data and must refuse unless `confirmed`.
#[async_trait]
pub trait SchemaApplier: Send + Sync {
    /// Each known and recorded version with its state.
    async fn status(&self) -> Result<Vec<VersionStatus>, SchemaError>;
    /// Applies every pending version in order.
    async fn apply(&self) -> Result<ApplyReport, SchemaError>;
    /// Drops and recreates the database, empty. Refuses unless `confirmed` is true.
    async fn teardown(&self, confirmed: bool) -> Result<(), SchemaError>;
}

/// Compares what a database recorded with the known scripts (pure; unit-tested).
pub fn compare(known: &[SchemaVersion], recorded: &[Recorded]) -> Vec<VersionStatus> {
    let mut out: Vec<VersionStatus> = known
        .iter()
        .map(|m| {
            let state = match recorded.iter().find(|r| r.version == m.version) {
                None => VersionState::Pending,
                Some(r) if !r.finished => VersionState::Dirty,
                Some(r) if r.checksum != m.checksum() => VersionState::Drift {
                    recorded: r.checksum.clone(),
                },
                Some(_) => VersionState::Applied,
            };
            VersionStatus {
                version: m.version,
                description: m.description.to_owned(),
                state,
            }
        })
        .collect();
    for r in recorded {
        if !known.iter().any(|m| m.version == r.version) {
            out.push(VersionStatus {
                version: r.version,
                description: r.description.clone(),
                state: VersionState::Unknown {
                    description: r.description.clone(),
                },
            });
        }
    }
    out.sort_by_key(|s| s.version);
    out
}

/// A row of `schema_history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Version.
    pub version: u32,
    /// Description at the time.
    pub description: String,
    /// Checksum at the time.
    pub checksum: String,
    /// False while the script runs, or forever if it failed half-way.
    pub finished: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(m: &SchemaVersion, finished: bool) -> Recorded {
        Recorded {
            version: m.version,
            description: m.description.into(),
            checksum: m.checksum(),
            finished,
        }
    }

    #[test]
    fn versions_are_sequential_from_one() {
        for (i, m) in VERSIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "{}", m.description);
            assert!(
                !m.sql.contains('\r'),
                "version {} has CRLF line endings",
                m.version
            );
        }
    }

    #[test]
    fn compare_finds_pending_applied_drift_dirty_and_unknown() {
        let all = compare(VERSIONS, &[]);
        assert!(all.iter().all(|s| s.state == VersionState::Pending));

        let mut rec = vec![recorded(&VERSIONS[0], true), recorded(&VERSIONS[1], false)];
        let status = compare(VERSIONS, &rec);
        assert_eq!(status[0].state, VersionState::Applied);
        assert_eq!(status[1].state, VersionState::Dirty);
        assert_eq!(status[2].state, VersionState::Pending);

        rec[0].checksum = "0".repeat(64);
        rec.push(Recorded {
            version: 99,
            description: "future".into(),
            checksum: String::new(),
            finished: true,
        });
        let status = compare(VERSIONS, &rec);
        assert!(matches!(status[0].state, VersionState::Drift { .. }));
        assert_eq!(status.last().map(|s| s.version), Some(99));
        assert!(matches!(
            status.last().map(|s| &s.state),
            Some(VersionState::Unknown { .. })
        ));
    }

    #[test]
    fn checksum_is_sha256_hex() {
        let m = SchemaVersion {
            version: 1,
            description: "x",
            sql: "",
        };
        assert_eq!(
            m.checksum(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
