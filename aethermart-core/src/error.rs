//! The crate-level error: one variant per module error, so the message says which step failed.

#[cfg(feature = "bench")]
use crate::bench::BenchError;
use crate::config::ConfigError;
use crate::connect::ConnectError;
#[cfg(feature = "generate")]
use crate::generate::{GenerateConfigError, LoadError};
use crate::migrate::MigrateError;
use crate::model::ValidationError;
use crate::orders::{CancelOrderError, PlaceOrderError};
use crate::reports::ReportError;
use crate::schema::SchemaError;

/// Any error of the core crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the configuration failed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A store could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A model value was invalid.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// Reading or applying the schema failed.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// `sp_PlaceOrder` refused or failed.
    #[error(transparent)]
    PlaceOrder(#[from] PlaceOrderError),
    /// `sp_CancelOrder` refused or failed.
    #[error(transparent)]
    CancelOrder(#[from] CancelOrderError),
    /// A report query failed.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// Generator settings were invalid.
    #[cfg(feature = "generate")]
    #[error(transparent)]
    GenerateConfig(#[from] GenerateConfigError),
    /// Loading generated data failed.
    #[cfg(feature = "generate")]
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The migration or its verification failed.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    /// A quality check could not run.
    #[error(transparent)]
    Quality(#[from] crate::quality::QualityError),
    /// Reading the lineage failed.
    #[error(transparent)]
    Lineage(#[from] crate::lineage::LineageError),
    /// Reading the catalogue for search failed.
    #[error(transparent)]
    Search(#[from] crate::search::SearchError),
    /// Applying roles and users failed.
    #[error(transparent)]
    Security(#[from] crate::security::SecurityError),
    /// The sync loop failed.
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
    /// An operator's dead-letter or resync request failed.
    #[error(transparent)]
    Operator(#[from] crate::sync::OperatorError),
    /// Measuring the sync latency failed.
    #[error(transparent)]
    Probe(#[from] crate::sync::ProbeError),
    /// Cluster firewall rules could not be rendered.
    #[error(transparent)]
    Firewall(#[from] crate::cluster::FirewallError),
    /// A benchmark failed.
    #[cfg(feature = "bench")]
    #[error(transparent)]
    Bench(#[from] BenchError),
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
