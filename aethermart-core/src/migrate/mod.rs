//! The initial bulk migration MariaDB → MongoDB (the original `migrate2.py`, done properly):
//! the [`Migrator`] trait, the [`BulkMigrator`] implementation, collection setup (validators
//! and indexes) and verification. Documents come from [`crate::projection`].

mod bulk;
mod collections;
mod merge;
mod stages;
mod verify;

pub use bulk::BulkMigrator;
pub use collections::{
    CollectionSetupError, create_like, keep_review_pre_images, setup_collections,
};
pub use stages::StageTimes;
pub use verify::{EntityVerification, VerifyReport};

use crate::connect::ConnectError;
use crate::mongo_write::CommandError;
use crate::progress::Progress;
use crate::projection::{Entity, LookupError, ReadError, Refused};
use async_trait::async_trait;
use serde::Serialize;
use std::sync::Arc;

/// How to migrate.
#[derive(Debug, Clone, Copy)]
pub struct MigrateOptions {
    /// Continue each entity after its checkpoint instead of from the start.
    pub resume: bool,
    /// Rows per page read from MariaDB and per bulk write to MongoDB (at most 5,000; at most
    /// 1,000 for profiles, merged in one transaction per page).
    pub batch_size: u32,
    /// Entities migrated at the same time.
    pub parallel_entities: usize,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        Self {
            resume: false,
            batch_size: 5_000,
            parallel_entities: 4,
        }
    }
}

/// What one entity's migration did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntityReport {
    /// The entity.
    pub entity: Entity,
    /// Rows read from MariaDB in this run.
    pub read: u64,
    /// Documents written (inserted or updated) in this run.
    pub written: u64,
    /// Documents MongoDB refused, with their keys.
    pub refused: Vec<Refused>,
    /// Seconds this entity took.
    pub seconds: f64,
    /// The key this run started after (0 unless resumed).
    pub resumed_after: u64,
    /// Where the time went.
    pub stages: StageTimes,
}

/// What a migration did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrationReport {
    /// Identifies the run in `data_lineage_tracker`.
    pub run_id: String,
    /// Per entity.
    pub entities: Vec<EntityReport>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Sync queue entries dropped at the start because this migration covers them.
    pub dropped_queue_entries: u64,
}

impl MigrationReport {
    /// Documents written per second over the whole run.
    pub fn documents_per_second(&self) -> f64 {
        self.entities.iter().map(|e| e.written).sum::<u64>() as f64 / self.seconds.max(1e-9)
    }

    /// True when no document was refused.
    pub fn clean(&self) -> bool {
        self.entities.iter().all(|e| e.refused.is_empty())
    }
}

/// Why a migration or verification failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// A store could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The MariaDB schema is not fully applied (the migration's state tables come with it).
    #[error("the schema of `{0}` is not fully applied: run `aethermart schema apply` first")]
    SchemaNotApplied(String),
    /// Another migration of the same database holds the handoff row, or a sync batch did not
    /// finish within 10 s.
    #[error("another migration of `{0}` is running (or a sync batch did not end within 10 s)")]
    Busy(String),
    /// The connection holding the row that pauses sync workers was lost during the run, so
    /// workers may have written documents the migration then overwrote with older pages.
    #[error("the migration lost its handoff lock while running (connection dropped): run it again")]
    HandoffLost,
    /// The `sync_handoff` row is gone (deleted by hand): neither the migration nor the workers
    /// can run until it is back (`INSERT INTO sync_handoff (id) VALUES (1)`, as the admin).
    #[error(
        "the sync_handoff row is missing: as the admin, INSERT INTO sync_handoff (id) VALUES (1)"
    )]
    HandoffMissing,
    /// Reading the schema's status failed.
    #[error(transparent)]
    Schema(#[from] crate::schema::SchemaError),
    /// Setting up the collections failed.
    #[error(transparent)]
    Setup(#[from] CollectionSetupError),
    /// Reading the category paths or ratings failed.
    #[error(transparent)]
    Lookups(#[from] LookupError),
    /// Reading MariaDB failed, or a row cannot become a document.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Writing to MongoDB failed as a whole (not a per-document refusal): the checkpoint stays
    /// before the batch.
    #[error("writing {entity} to MongoDB failed: {source}")]
    Write {
        /// The entity.
        entity: Entity,
        /// The command's failure.
        #[source]
        source: CommandError,
    },
    /// Reading documents back from MongoDB (verification) failed.
    #[error("reading {entity} from MongoDB failed: {source}")]
    MongoRead {
        /// The entity.
        entity: Entity,
        /// The driver's error.
        #[source]
        source: mongodb::error::Error,
    },
    /// Recording checkpoints or lineage failed.
    #[error("recording migration state failed: {0}")]
    State(#[source] sqlx::Error),
    /// Recording where binlog capture resumes (MongoDB) failed.
    #[error("recording the binlog position failed: {0}")]
    BinlogPosition(#[source] crate::binlog_position::CheckpointError),
    /// A migration task stopped unexpectedly (panicked or was cancelled).
    #[error("a migration task stopped unexpectedly: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// Copies the relational data into MongoDB documents.
///
/// Contract: writes are idempotent upserts keyed by `_id` (running twice gives the same
/// collections); every entity records a checkpoint after each acknowledged batch, so `resume`
/// continues where a crash stopped; a document MongoDB refuses is reported with its id, never
/// dropped silently; `verify` compares counts and per-document content on both sides.
#[async_trait]
pub trait Migrator: Send + Sync {
    /// Migrates every entity.
    async fn migrate(
        &self,
        options: MigrateOptions,
        progress: Arc<dyn Progress>,
    ) -> Result<MigrationReport, MigrateError>;
    /// Compares MariaDB and MongoDB.
    async fn verify(&self) -> Result<VerifyReport, MigrateError>;
}
