//! Streams a [`Generator`]'s batches into MariaDB (multi-row INSERTs, one transaction per
//! batch, several connections, foreign-key order) and MongoDB (unordered bulk inserts), while
//! the next batches are being generated. Memory holds only the batches in flight.

use super::{BookingRequest, CustomerBatch, Generator, OrderBatch, Table};
use crate::cluster;
use crate::config::MariaDbConfig;
use crate::connect::ConnectError;
use crate::model::{
    Address, Category, Customer, LineItem, Order, OrderItem, Product, Service, ServiceBooking,
};
use crate::progress::Progress;
use crate::projection::document::{self, CUSTOMER_PROFILES, REVIEWS};
use crate::schema::{MariaDbSchema, SchemaApplier, SchemaError, VersionState};
use crate::security::{HISTORY_TABLES, HistoryLoader, SecurityError};
use mongodb::bson::{Document, doc};
use sqlx::{Connection, MySql, MySqlConnection, QueryBuilder};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;

/// Rows per INSERT statement for tables without natural batches (bookings).
const ROWS_PER_STATEMENT: usize = 1_000;
/// MongoDB batches waiting to be written; bounds memory when MongoDB is slower.
const MONGO_QUEUE: usize = 8;

/// How to load.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// MariaDB connections writing in parallel.
    pub connections: usize,
    /// Drop the MongoDB collections the generator fills (`reviews`, `customer_profiles`)
    /// before loading, instead of refusing when they hold documents.
    pub replace_documents: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            connections: 3,
            replace_documents: false,
        }
    }
}

/// Why a load failed. A failed load leaves the rows written so far: start again from an empty
/// schema (`aethermart schema teardown --yes`, then `schema apply`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A store could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The schema could not be read.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// The schema is not fully applied.
    #[error("the schema of `{0}` is not fully applied: run `aethermart schema apply` first")]
    SchemaNotApplied(String),
    /// A MariaDB table already holds rows; generated keys would collide.
    #[error(
        "MariaDB table {0} already holds rows: generate loads into an empty schema (`aethermart schema teardown --yes`, then `schema apply`)"
    )]
    TableNotEmpty(&'static str),
    /// A MongoDB collection already holds documents.
    #[error(
        "MongoDB collection {0} already holds documents: pass --replace-documents to drop the generated collections first"
    )]
    CollectionNotEmpty(&'static str),
    /// Reading MariaDB before the load (emptiness check, session setup) failed.
    #[error("{step} failed: {source}")]
    Read {
        /// What was being done.
        step: &'static str,
        /// The server's error.
        #[source]
        source: sqlx::Error,
    },
    /// Writing a batch to MariaDB failed.
    #[error("writing {table} batch {batch} to MariaDB failed: {source}")]
    Insert {
        /// The table.
        table: &'static str,
        /// The batch index.
        batch: u64,
        /// The server's error.
        #[source]
        source: sqlx::Error,
    },
    /// Writing to MongoDB failed.
    #[error("writing to MongoDB collection {collection} failed: {source}")]
    Mongo {
        /// The collection.
        collection: &'static str,
        /// The driver's error.
        #[source]
        source: mongodb::error::Error,
    },
    /// The history loader account could not be created or dropped.
    #[error(transparent)]
    Loader(#[from] SecurityError),
    /// Setting up the MongoDB collections (validators, indexes) failed.
    #[error(transparent)]
    Setup(#[from] crate::migrate::CollectionSetupError),
    /// A loader task panicked.
    #[error("a loader task stopped unexpectedly: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// Rows written to one table or collection.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TableLoad {
    /// Table or collection name.
    pub table: &'static str,
    /// `MariaDB` or `MongoDB`.
    pub store: &'static str,
    /// Rows or documents written.
    pub rows: u64,
}

/// What a load wrote and how fast.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LoadSummary {
    /// Per table, in load order.
    pub tables: Vec<TableLoad>,
    /// Rows written to MariaDB.
    pub mariadb_rows: u64,
    /// Seconds from the first to the last MariaDB write (generation overlapped).
    pub mariadb_seconds: f64,
    /// Documents written to MongoDB.
    pub mongodb_documents: u64,
    /// Seconds spent in MongoDB bulk inserts (they overlap the MariaDB load).
    pub mongodb_seconds: f64,
}

impl LoadSummary {
    /// MariaDB rows per second.
    pub fn mariadb_rows_per_second(&self) -> f64 {
        self.mariadb_rows as f64 / self.mariadb_seconds.max(1e-9)
    }

    /// MongoDB documents per second.
    pub fn mongodb_documents_per_second(&self) -> f64 {
        self.mongodb_documents as f64 / self.mongodb_seconds.max(1e-9)
    }
}

/// Rows written per table, shared by the loader tasks.
#[derive(Default)]
struct Counts(Mutex<BTreeMap<&'static str, u64>>);

impl Counts {
    fn add(&self, progress: &dyn Progress, table: &'static str, rows: usize) {
        if rows == 0 {
            return;
        }
        progress.advance(table, rows as u64);
        if let Ok(mut map) = self.0.lock() {
            *map.entry(table).or_default() += rows as u64;
        }
    }

    fn get(&self, table: &'static str) -> u64 {
        self.0
            .lock()
            .map(|m| m.get(table).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

/// The MariaDB tables in load order, and the MongoDB collections.
const MONGODB_COLLECTIONS: [&str; 2] = [CUSTOMER_PROFILES, REVIEWS];

/// Loads everything `generator` produces into the (empty, schema-applied) MariaDB database and
/// the MongoDB database.
pub async fn load(
    generator: Arc<dyn Generator>,
    mariadb: &MariaDbConfig,
    mongo: &mongodb::Database,
    options: LoadOptions,
    progress: Arc<dyn Progress>,
) -> Result<LoadSummary, LoadError> {
    preflight(mariadb, mongo, options.replace_documents).await?;
    let counts = Arc::new(Counts::default());
    let (mongo_tx, mongo_rx) = mpsc::channel::<(&'static str, Vec<Document>)>(MONGO_QUEUE);
    let writer = tokio::spawn(write_documents(
        mongo.clone(),
        mongo_rx,
        counts.clone(),
        progress.clone(),
    ));

    let started = Instant::now();
    // History is written as a loader account of its own (see `security::HISTORY_LOADER_PREFIX`),
    // dropped again whatever happens to the load.
    let connections = options.connections.max(1);
    let node = crate::cluster::writable_node(mariadb).await?;
    let loader = HistoryLoader::create(&node, connections as u32).await?;
    tracing::info!(loader = loader.user(), node = %node.endpoint(), "history loader created");
    let loaded = load_mariadb(
        generator.clone(),
        loader.login(),
        connections,
        counts.clone(),
        progress.clone(),
        mongo_tx,
    )
    .await;
    let dropped = loader.drop_account().await;
    loaded?;
    dropped?;
    let mariadb_seconds = started.elapsed().as_secs_f64();

    let mongodb_seconds = writer.await.map_err(LoadError::Task)??;
    progress.finish("preferences");
    progress.finish("reviews");

    let tables: Vec<TableLoad> = [
        ("categories", "MariaDB"),
        ("customers", "MariaDB"),
        ("addresses", "MariaDB"),
        ("products", "MariaDB"),
        ("services", "MariaDB"),
        ("orders", "MariaDB"),
        ("order_items", "MariaDB"),
        ("bookings", "MariaDB"),
        ("preferences", "MongoDB"),
        ("reviews", "MongoDB"),
    ]
    .into_iter()
    .map(|(table, store)| TableLoad {
        table,
        store,
        rows: counts.get(table),
    })
    .collect();
    let sum = |store| {
        tables
            .iter()
            .filter(|t| t.store == store)
            .map(|t| t.rows)
            .sum()
    };
    Ok(LoadSummary {
        mariadb_rows: sum("MariaDB"),
        mongodb_documents: sum("MongoDB"),
        tables,
        mariadb_seconds,
        mongodb_seconds,
    })
}

/// The MariaDB part of [`load`], as the history loader `login` on `connections` connections;
/// documents go to `mongo` (the MongoDB writer) as they are generated.
async fn load_mariadb(
    generator: Arc<dyn Generator>,
    login: &MariaDbConfig,
    connections: usize,
    counts: Arc<Counts>,
    progress: Arc<dyn Progress>,
    mongo: mpsc::Sender<(&'static str, Vec<Document>)>,
) -> Result<(), LoadError> {
    let mut conns = Vec::new();
    for _ in 0..connections {
        conns.push(history_connection(login).await?);
    }
    // 1. The category tree: one small statement, parents first.
    progress.begin("categories", None);
    let categories = generator.categories();
    insert_categories(&mut conns[0], &categories)
        .await
        .map_err(|source| LoadError::Insert {
            table: "categories",
            batch: 0,
            source,
        })?;
    counts.add(progress.as_ref(), "categories", categories.len());
    progress.finish("categories");

    // 2. Catalogue and customers (independent of each other), then 3. orders.
    let plan = generator.plan();
    for table in ["customers", "addresses", "products", "services"] {
        let total = match table {
            "customers" => Some(plan.customers),
            "products" => Some(plan.products),
            "services" => Some(plan.services),
            _ => None,
        };
        progress.begin(table, total);
    }
    progress.begin("preferences", Some(plan.customers));
    let work: Vec<(Table, u64)> = [Table::Products, Table::Services, Table::Customers]
        .into_iter()
        .flat_map(|t| (0..plan.batches(t)).map(move |i| (t, i)))
        .collect();
    let ctx = Arc::new(StageContext {
        generator: generator.clone(),
        counts: counts.clone(),
        progress: progress.clone(),
        mongo,
        booking_requests: Mutex::new(Vec::new()),
    });
    let stage = Instant::now();
    conns = run_stage(conns, Arc::new(work), ctx.clone()).await?;
    tracing::info!(
        seconds = stage.elapsed().as_secs_f64(),
        "catalogue and customers loaded"
    );
    for table in ["customers", "addresses", "products", "services"] {
        progress.finish(table);
    }

    for table in ["orders", "order_items"] {
        progress.begin(table, (table == "orders").then_some(plan.orders));
    }
    progress.begin("reviews", None);
    let work: Vec<(Table, u64)> = (0..plan.batches(Table::Orders))
        .map(|i| (Table::Orders, i))
        .collect();
    let stage = Instant::now();
    conns = run_stage(conns, Arc::new(work), ctx.clone()).await?;
    tracing::info!(
        seconds = stage.elapsed().as_secs_f64(),
        "orders and their lines loaded"
    );
    for table in ["orders", "order_items"] {
        progress.finish(table);
    }

    // 4. Bookings need every service line first; the generator spaces them per consultant.
    progress.begin("bookings", None);
    let requests = ctx.take_booking_requests();
    let bookings = generator.bookings(requests);
    for (n, chunk) in bookings.chunks(ROWS_PER_STATEMENT).enumerate() {
        insert_bookings(&mut conns[0], chunk)
            .await
            .map_err(|source| LoadError::Insert {
                table: "bookings",
                batch: n as u64,
                source,
            })?;
        counts.add(progress.as_ref(), "bookings", chunk.len());
    }
    progress.finish("bookings");
    for conn in conns {
        let _ = conn.close().await;
    }
    Ok(())
}

/// The schema must be applied and every target empty (MongoDB collections are dropped first
/// when `replace_documents`); then the MongoDB collections are set up (validators and indexes,
/// [`crate::migrate::setup_collections`]) before anything is written into them: the
/// validators check the generated documents, and indexes grow with them instead of being
/// built over them later by the migration.
async fn preflight(
    mariadb: &MariaDbConfig,
    mongo: &mongodb::Database,
    replace_documents: bool,
) -> Result<(), LoadError> {
    let status = MariaDbSchema::new(mariadb.clone()).status().await?;
    if status.iter().any(|s| s.state != VersionState::Applied) {
        return Err(LoadError::SchemaNotApplied(mariadb.database().to_owned()));
    }
    let mut conn = cluster::writable_connection(mariadb, true).await?;
    for table in HISTORY_TABLES {
        let any: Option<i32> = sqlx::query_scalar(&format!("SELECT 1 FROM {table} LIMIT 1"))
            .fetch_optional(&mut conn)
            .await
            .map_err(|source| LoadError::Read {
                step: "checking that the tables are empty",
                source,
            })?;
        if any.is_some() {
            return Err(LoadError::TableNotEmpty(table));
        }
    }
    let _ = conn.close().await;
    for collection in MONGODB_COLLECTIONS {
        let coll = mongo.collection::<Document>(collection);
        if replace_documents {
            coll.drop()
                .await
                .map_err(|source| LoadError::Mongo { collection, source })?;
        }
        let any = coll
            .find_one(doc! {})
            .await
            .map_err(|source| LoadError::Mongo { collection, source })?;
        if any.is_some() {
            return Err(LoadError::CollectionNotEmpty(collection));
        }
    }
    crate::migrate::setup_collections(mongo).await?;
    Ok(())
}

/// A connection of the history loader. Foreign keys are not checked on it (rows go in
/// foreign-key order, in batches, and the load is checked afterwards by `quality`): the
/// loader's own choice for speed, which nothing else relies on.
async fn history_connection(login: &MariaDbConfig) -> Result<MySqlConnection, LoadError> {
    let mut conn = crate::connect::node_connection(login, true).await?;
    sqlx::query("SET foreign_key_checks = 0")
        .execute(&mut conn)
        .await
        .map_err(|source| LoadError::Read {
            step: "preparing a loader connection",
            source,
        })?;
    Ok(conn)
}

struct StageContext {
    generator: Arc<dyn Generator>,
    counts: Arc<Counts>,
    progress: Arc<dyn Progress>,
    mongo: mpsc::Sender<(&'static str, Vec<Document>)>,
    /// Slots wanted by service lines, booked after all lines exist (a few thousand per scale unit).
    booking_requests: Mutex<Vec<BookingRequest>>,
}

impl StageContext {
    fn push_booking_requests(&self, requests: Vec<BookingRequest>) {
        if let Ok(mut all) = self.booking_requests.lock() {
            all.extend(requests);
        }
    }

    fn take_booking_requests(&self) -> Vec<BookingRequest> {
        self.booking_requests
            .lock()
            .map(|mut all| std::mem::take(&mut *all))
            .unwrap_or_default()
    }
}

/// Runs `work` on every connection in parallel: each connection takes the next batch index,
/// generates it and writes it, until none is left. The first error stops every connection
/// (after its current batch) and is returned once all have stopped; otherwise the connections
/// come back for the next stage.
async fn run_stage(
    conns: Vec<MySqlConnection>,
    work: Arc<Vec<(Table, u64)>>,
    ctx: Arc<StageContext>,
) -> Result<Vec<MySqlConnection>, LoadError> {
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let (work, ctx, next, failed) =
                (work.clone(), ctx.clone(), next.clone(), failed.clone());
            tokio::spawn(async move {
                while !failed.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(&(table, index)) = work.get(i) else {
                        break;
                    };
                    if let Err(e) = write_batch(&mut conn, table, index, &ctx).await {
                        failed.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                }
                Ok::<_, LoadError>(conn)
            })
        })
        .collect();
    let mut conns = Vec::new();
    let mut first_error = None;
    for task in tasks {
        match task.await.map_err(LoadError::Task).and_then(|r| r) {
            Ok(conn) => conns.push(conn),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(conns),
    }
}

async fn write_batch(
    conn: &mut MySqlConnection,
    table: Table,
    index: u64,
    ctx: &StageContext,
) -> Result<(), LoadError> {
    let insert_err = |table: &'static str| {
        move |source| LoadError::Insert {
            table,
            batch: index,
            source,
        }
    };
    let progress = ctx.progress.as_ref();
    match table {
        Table::Products => {
            let rows = ctx.generator.products(index);
            insert_products(conn, &rows)
                .await
                .map_err(insert_err("products"))?;
            ctx.counts.add(progress, "products", rows.len());
        }
        Table::Services => {
            let rows = ctx.generator.services(index);
            insert_services(conn, &rows)
                .await
                .map_err(insert_err("services"))?;
            ctx.counts.add(progress, "services", rows.len());
        }
        Table::Customers => {
            let CustomerBatch {
                customers,
                addresses,
                preferences,
            } = ctx.generator.customers(index);
            let mut tx = conn.begin().await.map_err(insert_err("customers"))?;
            insert_customers(&mut tx, &customers)
                .await
                .map_err(insert_err("customers"))?;
            insert_addresses(&mut tx, &addresses)
                .await
                .map_err(insert_err("addresses"))?;
            tx.commit().await.map_err(insert_err("customers"))?;
            ctx.counts.add(progress, "customers", customers.len());
            ctx.counts.add(progress, "addresses", addresses.len());
            let docs = preferences
                .iter()
                .map(|(id, p)| document::preferences_document(*id, p))
                .collect();
            send(&ctx.mongo, CUSTOMER_PROFILES, docs).await;
        }
        Table::Orders => {
            let OrderBatch {
                orders,
                items,
                booking_requests,
                reviews,
            } = ctx.generator.orders(index);
            let mut tx = conn.begin().await.map_err(insert_err("orders"))?;
            insert_orders(&mut tx, &orders)
                .await
                .map_err(insert_err("orders"))?;
            insert_items(&mut tx, &items)
                .await
                .map_err(insert_err("order_items"))?;
            tx.commit().await.map_err(insert_err("orders"))?;
            ctx.counts.add(progress, "orders", orders.len());
            ctx.counts.add(progress, "order_items", items.len());
            ctx.push_booking_requests(booking_requests);
            let docs = reviews.iter().map(document::review_document).collect();
            send(&ctx.mongo, REVIEWS, docs).await;
        }
    }
    Ok(())
}

/// Queues documents for the MongoDB writer. If the writer stopped, its error is reported when
/// it is awaited, so a failed send needs no handling here.
async fn send(
    tx: &mpsc::Sender<(&'static str, Vec<Document>)>,
    collection: &'static str,
    docs: Vec<Document>,
) {
    if !docs.is_empty() {
        let _ = tx.send((collection, docs)).await;
    }
}

/// Writes queued documents with unordered bulk inserts; returns the seconds spent writing
/// (the writer otherwise waits for MariaDB-paced batches, which says nothing about MongoDB).
async fn write_documents(
    db: mongodb::Database,
    mut rx: mpsc::Receiver<(&'static str, Vec<Document>)>,
    counts: Arc<Counts>,
    progress: Arc<dyn Progress>,
) -> Result<f64, LoadError> {
    let mut busy = 0.0;
    while let Some((collection, docs)) = rx.recv().await {
        let n = docs.len();
        let started = Instant::now();
        db.collection::<Document>(collection)
            .insert_many(docs)
            .ordered(false)
            .await
            .map_err(|source| LoadError::Mongo { collection, source })?;
        busy += started.elapsed().as_secs_f64();
        let table = if collection == REVIEWS {
            "reviews"
        } else {
            "preferences"
        };
        counts.add(progress.as_ref(), table, n);
    }
    Ok(busy)
}

async fn insert_categories(
    conn: &mut MySqlConnection,
    rows: &[Category],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut q =
        QueryBuilder::<MySql>::new("INSERT INTO Categories (category_id, parent_id, name, slug) ");
    q.push_values(rows, |mut b, c| {
        b.push_bind(c.id.get())
            .push_bind(c.parent_id.map(|p| p.get()))
            .push_bind(&c.name)
            .push_bind(&c.slug);
    });
    q.build().execute(conn).await.map(drop)
}

async fn insert_customers(
    conn: &mut MySqlConnection,
    rows: &[Customer],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut q = QueryBuilder::<MySql>::new(
        "INSERT INTO Customers (customer_id, first_name, last_name, email, phone, created_at, updated_at) ",
    );
    q.push_values(rows, |mut b, c| {
        b.push_bind(c.id.get())
            .push_bind(&c.first_name)
            .push_bind(&c.last_name)
            .push_bind(c.email.as_str())
            .push_bind(c.phone.as_deref())
            .push_bind(c.created_at.naive_utc())
            .push_bind(c.updated_at.naive_utc());
    });
    q.build().execute(conn).await.map(drop)
}

async fn insert_addresses(conn: &mut MySqlConnection, rows: &[Address]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut q = QueryBuilder::<MySql>::new(
        "INSERT INTO Customer_Addresses (address_id, customer_id, kind, line1, line2, city, region, postal_code, country, is_default) ",
    );
    q.push_values(rows, |mut b, a| {
        b.push_bind(a.id.get())
            .push_bind(a.customer_id.get())
            .push_bind(a.kind.as_str())
            .push_bind(&a.line1)
            .push_bind(a.line2.as_deref())
            .push_bind(&a.city)
            .push_bind(a.region.as_deref())
            .push_bind(&a.postal_code)
            .push_bind(&a.country)
            .push_bind(a.is_default);
    });
    q.build().execute(conn).await.map(drop)
}

async fn insert_products(conn: &mut MySqlConnection, rows: &[Product]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut q = QueryBuilder::<MySql>::new(
        "INSERT INTO Products (product_id, sku, name, description, category_id, price, stock, is_active) ",
    );
    q.push_values(rows, |mut b, p| {
        b.push_bind(p.id.get())
            .push_bind(&p.sku)
            .push_bind(&p.name)
            .push_bind(&p.description)
            .push_bind(p.category_id.get())
            .push_bind(p.price)
            .push_bind(p.stock)
            .push_bind(p.is_active);
    });
    q.build().execute(conn).await.map(drop)
}

async fn insert_services(conn: &mut MySqlConnection, rows: &[Service]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut q = QueryBuilder::<MySql>::new(
        "INSERT INTO Services (service_id, code, name, description, category_id, duration_minutes, price, consultant, is_active) ",
    );
    q.push_values(rows, |mut b, s| {
        b.push_bind(s.id.get())
            .push_bind(&s.code)
            .push_bind(&s.name)
            .push_bind(&s.description)
            .push_bind(s.category_id.get())
            .push_bind(s.duration_minutes)
            .push_bind(s.price)
            .push_bind(&s.consultant)
            .push_bind(s.is_active);
    });
    q.build().execute(conn).await.map(drop)
}

async fn insert_orders(conn: &mut MySqlConnection, rows: &[Order]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut q = QueryBuilder::<MySql>::new(
        "INSERT INTO Orders (order_id, customer_id, status, total, placed_at, updated_at) ",
    );
    q.push_values(rows, |mut b, o| {
        b.push_bind(o.id.get())
            .push_bind(o.customer_id.get())
            .push_bind(o.status.as_str())
            .push_bind(o.total)
            .push_bind(o.placed_at.naive_utc())
            .push_bind(o.updated_at.naive_utc());
    });
    q.build().execute(conn).await.map(drop)
}

async fn insert_items(conn: &mut MySqlConnection, rows: &[OrderItem]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut q = QueryBuilder::<MySql>::new(
        "INSERT INTO Order_Items (order_item_id, order_id, product_id, service_id, quantity, unit_price) ",
    );
    q.push_values(rows, |mut b, i| {
        let (product, service) = match i.item {
            LineItem::Product(p) => (Some(p.get()), None),
            LineItem::Service(s) => (None, Some(s.get())),
        };
        b.push_bind(i.id.get())
            .push_bind(i.order_id.get())
            .push_bind(product)
            .push_bind(service)
            .push_bind(i.quantity)
            .push_bind(i.unit_price);
    });
    q.build().execute(conn).await.map(drop)
}

async fn insert_bookings(
    conn: &mut MySqlConnection,
    rows: &[ServiceBooking],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut q = QueryBuilder::<MySql>::new(
        "INSERT INTO Service_Bookings (booking_id, order_item_id, service_id, consultant, starts_at, ends_at) ",
    );
    q.push_values(rows, |mut b, k| {
        b.push_bind(k.id.get())
            .push_bind(k.order_item_id.get())
            .push_bind(k.service_id.get())
            .push_bind(&k.consultant)
            .push_bind(k.starts_at.naive_utc())
            .push_bind(k.ends_at.naive_utc());
    });
    q.build().execute(conn).await.map(drop)
}
