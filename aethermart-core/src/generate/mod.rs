//! Realistic, deterministic data: the [`Generator`] trait, its `fake`-based implementation
//! [`FakeGenerator`], and the loaders that stream its batches into MariaDB and MongoDB.
//!
//! Determinism: every batch is a pure function of `(seed, scale, as_of, table, batch index)`,
//! so the data is byte-identical whatever the number of threads or connections that produce it.
//! Ids are assigned by the generator (explicit keys), which is what lets batches be generated
//! independently and loaded in parallel.

mod calendar;
mod catalog;
mod fake_gen;
mod load;
mod vocabulary;

pub use fake_gen::FakeGenerator;
pub use load::{LoadError, LoadOptions, LoadSummary, TableLoad, load};

use crate::cluster;
use crate::config::Config;
use crate::connect;
use crate::model::{
    Address, Category, Customer, CustomerId, OrderItemId, Preferences, Product, Review, Service,
    ServiceBooking, ServiceId,
};
use crate::model::{Order, OrderItem};
use crate::progress::Progress;
use chrono::{DateTime, NaiveDate, Utc};
use std::fmt;
use std::sync::Arc;

/// Rows per batch for customers, products and services.
pub const ROWS_PER_BATCH: u64 = 1_000;
/// Orders per batch (about three lines each).
pub const ORDERS_PER_BATCH: u64 = 500;

/// The rows of scale 1; every count scales linearly.
pub mod scale_one {
    /// Customers at scale 1.
    pub const CUSTOMERS: f64 = 10_000.0;
    /// Products at scale 1.
    pub const PRODUCTS: f64 = 2_000.0;
    /// Services at scale 1.
    pub const SERVICES: f64 = 200.0;
    /// Orders at scale 1.
    pub const ORDERS: f64 = 100_000.0;
}

/// Largest accepted scale (about 2 million customers, 20 million orders).
pub const MAX_SCALE: f64 = 200.0;

/// A bad generator setting.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateConfigError {
    /// The scale is not a finite number in (0, [`MAX_SCALE`]].
    #[error("scale must be a number greater than 0 and at most {MAX_SCALE}, got {0}")]
    Scale(f64),
    /// The scale is so small that a table would be empty.
    #[error(
        "scale {0} is too small: at least one customer, product and service is needed (minimum 0.0001)"
    )]
    ScaleTooSmall(f64),
}

/// What to generate: the same settings always give the same data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenerateConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// 1.0 ≈ 10,000 customers, 2,000 products, 200 services, 100,000 orders.
    pub scale: f64,
    /// The "today" of the data: orders span the 8 quarters up to this day.
    pub as_of: NaiveDate,
}

impl GenerateConfig {
    /// Validates the scale.
    pub fn new(seed: u64, scale: f64, as_of: NaiveDate) -> Result<Self, GenerateConfigError> {
        if !scale.is_finite() || scale <= 0.0 || scale > MAX_SCALE {
            return Err(GenerateConfigError::Scale(scale));
        }
        if (scale_one::SERVICES * scale).round() < 1.0 {
            return Err(GenerateConfigError::ScaleTooSmall(scale));
        }
        Ok(Self { seed, scale, as_of })
    }
}

/// Row counts and batch counts at a scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Customers (each with 1–3 addresses).
    pub customers: u64,
    /// Products.
    pub products: u64,
    /// Services.
    pub services: u64,
    /// Orders (about 3 lines each).
    pub orders: u64,
}

impl Plan {
    /// The counts for a scale.
    pub fn for_scale(scale: f64) -> Self {
        let n = |base: f64| ((base * scale).round() as u64).max(1);
        Self {
            customers: n(scale_one::CUSTOMERS),
            products: n(scale_one::PRODUCTS),
            services: n(scale_one::SERVICES),
            orders: n(scale_one::ORDERS),
        }
    }

    /// Number of batches of `table`.
    pub fn batches(&self, table: Table) -> u64 {
        let (rows, per) = match table {
            Table::Customers => (self.customers, ROWS_PER_BATCH),
            Table::Products => (self.products, ROWS_PER_BATCH),
            Table::Services => (self.services, ROWS_PER_BATCH),
            Table::Orders => (self.orders, ORDERS_PER_BATCH),
        };
        rows.div_ceil(per)
    }
}

/// The streamed tables (the category tree is one small fixed list, bookings one final pass).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// `Customers`, their addresses and their MongoDB preferences.
    Customers,
    /// `Products`.
    Products,
    /// `Services`.
    Services,
    /// `Orders`, their lines, and the reviews of those lines.
    Orders,
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Customers => "customers",
            Self::Products => "products",
            Self::Services => "services",
            Self::Orders => "orders",
        })
    }
}

/// One batch of customers with everything that hangs off them.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerBatch {
    /// Customers, ids ascending.
    pub customers: Vec<Customer>,
    /// Their addresses (1–3 each).
    pub addresses: Vec<Address>,
    /// Preferences that live only in MongoDB (`customer_profiles.preferences`).
    pub preferences: Vec<(CustomerId, Preferences)>,
}

/// A consultation slot wanted by a service line; [`Generator::bookings`] makes them
/// non-overlapping per consultant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingRequest {
    /// The service line.
    pub order_item_id: OrderItemId,
    /// The booked service.
    pub service_id: ServiceId,
    /// Earliest wished start.
    pub wanted: DateTime<Utc>,
}

/// One batch of orders with their lines and what follows from them.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderBatch {
    /// Orders, ids ascending.
    pub orders: Vec<Order>,
    /// Their lines.
    pub items: Vec<OrderItem>,
    /// Slots wanted by service lines of orders that were not cancelled.
    pub booking_requests: Vec<BookingRequest>,
    /// Reviews of delivered product lines, written by the buyer after delivery.
    pub reviews: Vec<Review>,
}

/// A source of consistent platform data, batch by batch.
///
/// Contract: every method is pure: the same generator returns the same value for the same
/// arguments, on any thread, in any order of calls. Keys are explicit and consistent across
/// batches (an order's `customer_id` exists in some customer batch, and so on), so batches can be
/// generated and loaded in parallel, tables in foreign-key order.
pub trait Generator: Send + Sync {
    /// How many rows and batches there are.
    fn plan(&self) -> Plan;
    /// The category tree, parents before children.
    fn categories(&self) -> Vec<Category>;
    /// Customer batch `index` (0-based, `< plan().batches(Table::Customers)`).
    fn customers(&self, index: u64) -> CustomerBatch;
    /// Product batch `index`.
    fn products(&self, index: u64) -> Vec<Product>;
    /// Service batch `index`.
    fn services(&self, index: u64) -> Vec<Service>;
    /// Order batch `index`.
    fn orders(&self, index: u64) -> OrderBatch;
    /// Turns all booking requests (in any order) into bookings that never overlap for one
    /// consultant.
    fn bookings(&self, requests: Vec<BookingRequest>) -> Vec<ServiceBooking>;
}

/// Generates data with [`FakeGenerator`] and loads it into both configured stores: the
/// library form of `aethermart generate`.
pub async fn generate_into(
    config: &Config,
    settings: GenerateConfig,
    options: LoadOptions,
    progress: Arc<dyn Progress>,
) -> Result<LoadSummary, LoadError> {
    let mongo = connect::mongodb_database(&config.mongodb).await?;
    let source = format!(
        "generator(seed={},scale={},as_of={})",
        settings.seed, settings.scale, settings.as_of
    );
    let generator: Arc<dyn Generator> = Arc::new(FakeGenerator::new(settings));
    let started = chrono::Utc::now().naive_utc();
    let result = load(generator, &config.mariadb, &mongo, options, progress).await;
    match record_lineage(config, &source, started, &result).await {
        Err(e) if result.is_ok() => Err(e),
        Err(e) => {
            // Keep the error that stopped the load; the lineage failure goes to the log.
            tracing::error!(error = %e, "recording the lineage failed");
            result
        }
        Ok(()) => result,
    }
}

/// One `data_lineage_tracker` row per table and collection the load wrote (job `generate`),
/// or one `failed` row naming the error.
async fn record_lineage(
    config: &Config,
    source: &str,
    started: chrono::NaiveDateTime,
    result: &Result<LoadSummary, LoadError>,
) -> Result<(), LoadError> {
    let (mariadb_db, mongo_db) = (config.mariadb.database(), config.mongodb.database());
    let run_id = crate::lineage::new_run_id();
    let rows: Vec<(String, u64, &str, Option<String>)> = match result {
        Ok(summary) => summary
            .tables
            .iter()
            .map(|t| {
                let target = if t.store == "MongoDB" {
                    format!("mongodb:{mongo_db}.{}", t.table)
                } else {
                    format!("mariadb:{mariadb_db}.{}", t.table)
                };
                (target, t.rows, "complete", None)
            })
            .collect(),
        Err(e) => vec![(
            format!("mariadb:{mariadb_db}"),
            0,
            "failed",
            Some(e.to_string()),
        )],
    };
    let fail = |source| LoadError::Read {
        step: "recording the lineage",
        source,
    };
    let mut conn = cluster::writable_connection(&config.mariadb, true).await?;
    for (target, written, status, error) in rows {
        sqlx::query(
            "INSERT INTO data_lineage_tracker (run_id, job, source_tables, target, rows_written, \
             started_at, finished_at, status, error) \
             VALUES (?, 'generate', ?, ?, ?, ?, CURRENT_TIMESTAMP(6), ?, ?)",
        )
        .bind(&run_id)
        .bind(source)
        .bind(target)
        .bind(written)
        .bind(started)
        .bind(status)
        .bind(error)
        .execute(&mut conn)
        .await
        .map_err(fail)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
