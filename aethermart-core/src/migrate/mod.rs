//! The initial bulk migration MariaDB → MongoDB (the original `migrate2.py`, done properly):
//! the [`Migrator`] trait, the [`BulkMigrator`] implementation, collection setup (validators
//! and indexes) and verification.

mod bulk;
mod collections;
pub(crate) mod source;
mod verify;

pub use bulk::BulkMigrator;
pub use collections::{CollectionSetupError, create_like, setup_collections};
pub use verify::{EntityVerification, VerifyReport};

use crate::connect::ConnectError;
use crate::generate::Progress;
use async_trait::async_trait;
use serde::Serialize;
use std::fmt;
use std::sync::Arc;

/// What the migration copies, one MongoDB collection each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    /// `Customers` + addresses + order summary → `customer_profiles` (preferences kept).
    Customers,
    /// `Products` (+ category path, rating summary from `reviews`) → `products`.
    Products,
    /// `Services` (+ category path) → `services`.
    Services,
    /// `Orders` + `Order_Items` → `orders` with embedded lines.
    Orders,
}

impl Entity {
    /// Every entity, in the order they are reported.
    pub const ALL: [Self; 4] = [
        Self::Customers,
        Self::Products,
        Self::Services,
        Self::Orders,
    ];

    /// The entity's name (also its checkpoint key).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Customers => "customers",
            Self::Products => "products",
            Self::Services => "services",
            Self::Orders => "orders",
        }
    }

    /// Target collection.
    pub const fn collection(self) -> &'static str {
        match self {
            Self::Customers => crate::document::CUSTOMER_PROFILES,
            Self::Products => crate::document::PRODUCTS,
            Self::Services => crate::document::SERVICES,
            Self::Orders => crate::document::ORDERS,
        }
    }

    /// Source tables, for lineage.
    pub const fn sources(self) -> &'static str {
        match self {
            Self::Customers => "Customers,Customer_Addresses,Orders",
            Self::Products => "Products,Categories,reviews",
            Self::Services => "Services,Categories",
            Self::Orders => "Orders,Order_Items,Products,Services",
        }
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How to migrate.
#[derive(Debug, Clone, Copy)]
pub struct MigrateOptions {
    /// Continue each entity after its checkpoint instead of from the start.
    pub resume: bool,
    /// Rows per page read from MariaDB and per bulk write to MongoDB (at most 5,000).
    pub batch_size: u32,
    /// Entities migrated at the same time.
    pub parallel_entities: usize,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        Self {
            resume: false,
            batch_size: 1_000,
            parallel_entities: 4,
        }
    }
}

/// A document MongoDB refused (e.g. its validator), with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// The document's `_id` (the row's key).
    pub id: i64,
    /// MongoDB's error message.
    pub reason: String,
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
    /// Documents MongoDB refused, with their ids.
    pub rejected: Vec<Rejected>,
    /// Seconds this entity took.
    pub seconds: f64,
    /// The key this run started after (0 unless resumed).
    pub resumed_after: u64,
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
        self.entities.iter().all(|e| e.rejected.is_empty())
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
    /// Another migration of the same database holds the handoff lock.
    #[error("another migration of `{0}` is running")]
    Busy(String),
    /// The connection holding the lock that pauses sync workers was lost during the run, so
    /// workers may have written documents the migration then overwrote with older pages.
    #[error("the migration lost its handoff lock while running (connection dropped): run it again")]
    HandoffLost,
    /// Reading the schema's status failed.
    #[error(transparent)]
    Schema(#[from] crate::schema::SchemaError),
    /// Setting up the collections failed.
    #[error(transparent)]
    Setup(#[from] CollectionSetupError),
    /// Reading MariaDB failed.
    #[error("reading {entity} from MariaDB failed: {source}")]
    Read {
        /// The entity.
        entity: Entity,
        /// The server's error.
        #[source]
        source: sqlx::Error,
    },
    /// Writing to MongoDB failed (not a per-document refusal: the whole batch).
    #[error("writing {entity} to MongoDB failed: {source}")]
    Write {
        /// The entity.
        entity: Entity,
        /// The driver's error.
        #[source]
        source: mongodb::error::Error,
    },
    /// MongoDB did not accept a batch for a reason that is not the documents' fault (write
    /// conflict, not primary, write concern not met, …): the checkpoint stays before it.
    #[error("writing {entity} to MongoDB failed (code {code}): {reason}")]
    WriteRejected {
        /// The entity.
        entity: Entity,
        /// MongoDB's error code.
        code: i32,
        /// MongoDB's message.
        reason: String,
    },
    /// Recording checkpoints or lineage failed.
    #[error("recording migration state failed: {0}")]
    State(#[source] sqlx::Error),
    /// A migration task stopped unexpectedly.
    #[error("a migration task stopped unexpectedly: {0}")]
    Task(String),
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
