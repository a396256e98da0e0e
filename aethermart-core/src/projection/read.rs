//! Reading MariaDB rows and turning them into documents: a page in key order (keyset
//! pagination, never OFFSET) for the migration and verification, or a set of keys for the sync.
//! Every reader uses the same queries and builders, so all sides compute documents the same way.

use super::Entity;
use super::document::{self, RatingSummary};
use crate::model::{
    Address, AddressId, AddressKind, CategoryId, Customer, CustomerId, Email, LineItem, Order,
    OrderId, OrderItem, OrderItemId, OrderStatus, OrderSummary, Product, ProductId, Service,
    ServiceId,
};
use chrono::NaiveDateTime;
use futures_util::TryStreamExt;
use mongodb::bson::{Document, doc};
use rust_decimal::Decimal;
use sqlx::Row;
use sqlx::mysql::{MySqlPool, MySqlRow};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// What documents need beyond their rows: category paths (MariaDB) and product rating
/// summaries (MongoDB `reviews`). Small; loaded once per migration, per batch by the sync.
#[derive(Debug, Default, Clone)]
pub struct Lookups {
    paths: HashMap<CategoryId, Vec<String>>,
    ratings: HashMap<i64, RatingSummary>,
}

impl Lookups {
    /// Reads the category tree from MariaDB and the rating summary per product from `reviews`.
    pub async fn load(pool: &MySqlPool, mongo: &mongodb::Database) -> Result<Self, LookupError> {
        Self::load_matching(pool, mongo, None).await
    }

    /// Like [`Lookups::load`], with the ratings of these products only.
    pub async fn load_for_products(
        pool: &MySqlPool,
        mongo: &mongodb::Database,
        products: &[u64],
    ) -> Result<Self, LookupError> {
        let ids: Vec<i64> = products.iter().map(|&k| document::key(k)).collect();
        let matching = doc! { "$match": { "product_id": { "$in": ids } } };
        Self::load_matching(pool, mongo, Some(matching)).await
    }

    async fn load_matching(
        pool: &MySqlPool,
        mongo: &mongodb::Database,
        matching: Option<Document>,
    ) -> Result<Self, LookupError> {
        let rows: Vec<(u64, Option<u64>, String)> =
            sqlx::query_as("SELECT category_id, parent_id, name FROM Categories")
                .fetch_all(pool)
                .await
                .map_err(LookupError::Categories)?;
        let by_id: HashMap<u64, (Option<u64>, String)> =
            rows.into_iter().map(|(id, p, n)| (id, (p, n))).collect();
        let paths = by_id
            .keys()
            .map(|&id| {
                let mut path = Vec::new();
                let mut cursor = Some(id);
                while let Some(c) = cursor.and_then(|c| by_id.get(&c)) {
                    path.push(c.1.clone());
                    cursor = c.0;
                    if path.len() > by_id.len() {
                        break; // a cycle; the schema's triggers prevent it
                    }
                }
                path.reverse();
                (CategoryId(id), path)
            })
            .collect();
        let group = doc! { "$group": { "_id": "$product_id", "count": { "$sum": 1 }, "average": { "$avg": "$rating" } } };
        let pipeline: Vec<Document> = matching.into_iter().chain([group]).collect();
        let groups: Vec<Document> = mongo
            .collection::<Document>(document::REVIEWS)
            .aggregate(pipeline)
            .await
            .map_err(LookupError::Ratings)?
            .try_collect()
            .await
            .map_err(LookupError::Ratings)?;
        let ratings = groups
            .iter()
            .filter_map(|g| {
                let id = g.get_i64("_id").ok()?;
                let count = g
                    .get_i32("count")
                    .map(i64::from)
                    .or_else(|_| g.get_i64("count"))
                    .ok()?;
                let average = g.get_f64("average").ok()?;
                Some((
                    id,
                    RatingSummary {
                        count: count as u64,
                        average: (average * 100.0).round() / 100.0,
                    },
                ))
            })
            .collect();
        Ok(Self { paths, ratings })
    }

    fn path(&self, id: CategoryId) -> Vec<&str> {
        self.paths
            .get(&id)
            .map(|p| p.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

/// Reading the lookups failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// Reading `Categories`.
    #[error("reading Categories failed: {0}")]
    Categories(#[source] sqlx::Error),
    /// Aggregating `reviews`.
    #[error("aggregating the reviews collection failed: {0}")]
    Ratings(#[source] mongodb::error::Error),
}

/// Reading rows or building their documents failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// A query failed (connection, privileges, schema), or returned a key column of an
    /// unexpected type: nothing is known about the rows.
    #[error("reading {entity} from MariaDB failed: {source}")]
    Query {
        /// The entity being read.
        entity: Entity,
        /// The server's or driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// One row (or a row belonging to it: an address, an order line) holds a value the model
    /// refuses, so its document cannot be built. Other rows are not affected.
    #[error("{entity} {key} cannot become a document: {source}")]
    Row {
        /// The entity.
        entity: Entity,
        /// The document's key.
        key: u64,
        /// What was wrong with the value.
        #[source]
        source: RowFault,
    },
}

impl ReadError {
    /// True when the error lies in one row's values, not in the servers or the setup.
    pub fn is_row_fault(&self) -> bool {
        matches!(self, Self::Row { .. })
    }
}

/// Why a row cannot become a document: a column value the Rust type cannot hold, a value the
/// model refuses (e.g. an e-mail address), or a key beyond a BSON integer.
pub type RowFault = Box<dyn std::error::Error + Send + Sync>;

/// One page: documents keyed by `_id`, and the last key read.
#[derive(Debug)]
pub struct Page {
    /// Highest key in the page: the next page starts after it.
    pub last_key: u64,
    /// `(_id, document)`. For a merged entity ([`Entity::merges`]) the document is the set of
    /// fields the rows own; for the others it is the whole document.
    pub docs: Vec<(i64, Document)>,
    /// Seconds spent waiting for MariaDB's answers to the page's queries (queries run at the
    /// same time counted once); the rest of [`read_page`]'s time went into building documents.
    pub query_seconds: f64,
}

fn utc(t: NaiveDateTime) -> chrono::DateTime<chrono::Utc> {
    t.and_utc()
}

/// Which rows of an entity to read.
#[derive(Debug, Clone, Copy)]
pub enum Selection<'a> {
    /// The next page in key order (the migration and verification).
    After {
        /// Keys above this one.
        after: u64,
        /// At most this many rows.
        limit: u32,
    },
    /// These keys, in any order (the sync re-reading what changed).
    Keys(&'a [u64]),
}

/// Values bound to a query, in order.
#[derive(Debug, Clone)]
enum Binds {
    /// Numbers (`?` each).
    Numbers(Vec<u64>),
    /// One JSON array of keys (the `JSON_TABLE` argument).
    Keys(String),
}

/// The keys as a derived table `k(id)`: joined first (STRAIGHT_JOIN), the rows are reached by
/// their index one key at a time, and the statement text does not depend on how many keys
/// there are (one prepared statement, whatever the batch).
const KEYS_TABLE: &str = "JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT UNSIGNED PATH '$')) AS k";

impl Selection<'_> {
    fn keys_json(keys: &[u64]) -> String {
        let ids: Vec<String> = keys.iter().map(u64::to_string).collect();
        format!("[{}]", ids.join(","))
    }

    /// `FROM` clause (with condition, order and limit) reading the entity's selected rows.
    fn from(&self, entity: Entity) -> (String, Binds) {
        let (table, column) = (entity.table(), entity.key_column());
        match *self {
            Self::After { after, limit } => (
                format!("{table} WHERE {column} > ? ORDER BY {column} LIMIT ?"),
                Binds::Numbers(vec![after, u64::from(limit)]),
            ),
            Self::Keys(keys) => (
                format!("{KEYS_TABLE} STRAIGHT_JOIN {table} ON {column} = k.id ORDER BY {column}"),
                Binds::Keys(Self::keys_json(keys)),
            ),
        }
    }

    /// `FROM` and `WHERE` clauses reading the child rows in `table` (which may carry an alias)
    /// of the parents read, whose keys run from `first` to `last` (`column` is the child's
    /// parent key).
    fn children(
        &self,
        table: &str,
        column: &str,
        first: u64,
        last: u64,
    ) -> (String, String, Binds) {
        match *self {
            Self::After { .. } => (
                table.to_owned(),
                format!("WHERE {column} BETWEEN ? AND ?"),
                Binds::Numbers(vec![first, last]),
            ),
            Self::Keys(keys) => (
                format!("{KEYS_TABLE} STRAIGHT_JOIN {table} ON {column} = k.id"),
                String::new(),
                Binds::Keys(Self::keys_json(keys)),
            ),
        }
    }
}

/// Reads rows of one entity, turning driver errors into [`ReadError`]s that name it.
#[derive(Clone, Copy)]
struct Reader<'a> {
    pool: &'a MySqlPool,
    entity: Entity,
    /// Nanoseconds spent waiting for MariaDB (see [`Page::query_seconds`]).
    querying: &'a AtomicU64,
}

impl Reader<'_> {
    /// Runs `sql` with `binds`, its time counted as querying.
    async fn fetch(&self, sql: &str, binds: &Binds) -> Result<Vec<MySqlRow>, ReadError> {
        self.timed(self.query(sql, binds)).await
    }

    /// Awaits `work` (MariaDB queries), its wall time counted as querying.
    async fn timed<T>(&self, work: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = work.await;
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.querying.fetch_add(nanos, Ordering::Relaxed);
        out
    }

    /// Runs `sql` with `binds`, untimed.
    async fn query(&self, sql: &str, binds: &Binds) -> Result<Vec<MySqlRow>, ReadError> {
        match binds {
            Binds::Numbers(values) => values.iter().fold(sqlx::query(sql), |q, v| q.bind(*v)),
            Binds::Keys(json) => sqlx::query(sql).bind(json.as_str()),
        }
        .fetch_all(self.pool)
        .await
        .map_err(|source| self.query_failed(source))
    }

    fn query_failed(&self, source: sqlx::Error) -> ReadError {
        ReadError::Query {
            entity: self.entity,
            source,
        }
    }

    /// The key in column `i` (the key columns are `BIGINT UNSIGNED NOT NULL`: a failure is
    /// the schema's, not a row's).
    fn key(&self, r: &MySqlRow, i: usize) -> Result<u64, ReadError> {
        r.try_get(i).map_err(|source| self.query_failed(source))
    }

    /// A fault in the row of document `key`.
    fn fault(&self, key: u64) -> impl Fn(RowFault) -> ReadError + '_ {
        move |source| ReadError::Row {
            entity: self.entity,
            key,
            source,
        }
    }
}

/// Column `i` of a row, a value the type cannot hold being the row's fault.
fn col<'r, T>(r: &'r MySqlRow, i: usize) -> Result<T, RowFault>
where
    T: sqlx::Decode<'r, sqlx::MySql> + sqlx::Type<sqlx::MySql>,
{
    r.try_get(i).map_err(RowFault::from)
}

/// The selected rows of `entity` as documents, or `None` when there are none.
pub async fn read_page(
    pool: &MySqlPool,
    entity: Entity,
    selection: Selection<'_>,
    lookups: &Lookups,
) -> Result<Option<Page>, ReadError> {
    let querying = AtomicU64::new(0);
    let reader = Reader {
        pool,
        entity,
        querying: &querying,
    };
    let page = match entity {
        Entity::Customers => customers_page(reader, selection).await,
        Entity::Products => products_page(reader, selection, lookups).await,
        Entity::Services => services_page(reader, selection, lookups).await,
        Entity::Orders => orders_page(reader, selection).await,
    }?;
    let page = page.map(|p| Page {
        query_seconds: querying.load(Ordering::Relaxed) as f64 / 1e9,
        ..p
    });
    // Keys ascend within a page, so checking the last one covers them all.
    if let Some(p) = &page
        && i64::try_from(p.last_key).is_err()
    {
        return Err(reader.fault(p.last_key)(Box::new(KeyTooLarge(p.last_key))));
    }
    Ok(page)
}

/// A key above `i64::MAX` has no faithful BSON integer `_id`.
#[derive(Debug, thiserror::Error)]
#[error("key {0} is above 9223372036854775807 and cannot be a MongoDB _id")]
struct KeyTooLarge(u64);

async fn customers_page(
    reader: Reader<'_>,
    selection: Selection<'_>,
) -> Result<Option<Page>, ReadError> {
    let (from, values) = selection.from(reader.entity);
    let rows = reader
        .fetch(
            &format!(
                "SELECT customer_id, first_name, last_name, email, phone, created_at, updated_at FROM {from}"
            ),
            &values,
        )
        .await?;
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return Ok(None);
    };
    let (first, last) = (reader.key(first, 0)?, reader.key(last, 0)?);
    let (addresses_from, addresses_where, values) =
        selection.children("Customer_Addresses", "customer_id", first, last);
    let (orders_from, orders_where, _) = selection.children("Orders", "customer_id", first, last);
    // Addresses and order summaries are independent reads: run them at the same time.
    let addresses_sql = format!(
        "SELECT address_id, customer_id, kind, line1, line2, city, region, postal_code, country, is_default \
         FROM {addresses_from} {addresses_where} ORDER BY customer_id, address_id"
    );
    let summaries_sql = format!(
        "SELECT customer_id, COUNT(*), \
         COALESCE(SUM(IF(status IN ('cancelled', 'returned'), 0, total)), 0), MAX(placed_at) \
         FROM {orders_from} {orders_where} GROUP BY customer_id"
    );
    let (address_rows, summary_rows) = reader
        .timed(async {
            tokio::try_join!(
                reader.query(&addresses_sql, &values),
                reader.query(&summaries_sql, &values)
            )
        })
        .await?;
    let mut addresses: HashMap<u64, Vec<Address>> = HashMap::new();
    for r in address_rows {
        let customer = reader.key(&r, 1)?;
        let address = (|| {
            Ok::<_, RowFault>(Address {
                id: AddressId(col(&r, 0)?),
                customer_id: CustomerId(customer),
                kind: col::<String>(&r, 2)?.parse::<AddressKind>()?,
                line1: col(&r, 3)?,
                line2: col(&r, 4)?,
                city: col(&r, 5)?,
                region: col(&r, 6)?,
                postal_code: col(&r, 7)?,
                country: col(&r, 8)?,
                is_default: col(&r, 9)?,
            })
        })()
        .map_err(reader.fault(customer))?;
        addresses.entry(customer).or_default().push(address);
    }
    let mut summaries: HashMap<u64, OrderSummary> = HashMap::new();
    for r in summary_rows {
        let customer = reader.key(&r, 0)?;
        let summary = (|| {
            Ok::<_, RowFault>(OrderSummary {
                order_count: col::<i64>(&r, 1)? as u64,
                lifetime_value: col::<Decimal>(&r, 2)?,
                last_order_at: col::<Option<NaiveDateTime>>(&r, 3)?.map(utc),
            })
        })()
        .map_err(reader.fault(customer))?;
        summaries.insert(customer, summary);
    }
    let docs = rows
        .iter()
        .map(|r| {
            let id = reader.key(r, 0)?;
            let customer = (|| {
                Ok::<_, RowFault>(Customer {
                    id: CustomerId(id),
                    first_name: col(r, 1)?,
                    last_name: col(r, 2)?,
                    email: Email::parse(&col::<String>(r, 3)?)?,
                    phone: col(r, 4)?,
                    created_at: utc(col(r, 5)?),
                    updated_at: utc(col(r, 6)?),
                })
            })()
            .map_err(reader.fault(id))?;
            let addresses = addresses.get(&id).map(Vec::as_slice).unwrap_or_default();
            let summary = summaries.remove(&id).unwrap_or_default();
            Ok((
                document::key(id),
                document::profile_fields(&customer, addresses, &summary),
            ))
        })
        .collect::<Result<_, ReadError>>()?;
    Ok(Some(Page {
        last_key: last,
        docs,
        query_seconds: 0.0,
    }))
}

async fn products_page(
    reader: Reader<'_>,
    selection: Selection<'_>,
    lookups: &Lookups,
) -> Result<Option<Page>, ReadError> {
    let (from, values) = selection.from(reader.entity);
    let rows = reader
        .fetch(
            &format!(
                "SELECT product_id, sku, name, description, category_id, price, stock, is_active FROM {from}"
            ),
            &values,
        )
        .await?;
    let Some(last) = rows.last() else {
        return Ok(None);
    };
    let last_key = reader.key(last, 0)?;
    let docs = rows
        .iter()
        .map(|r| {
            let id = reader.key(r, 0)?;
            let p = (|| {
                Ok::<_, RowFault>(Product {
                    id: ProductId(id),
                    sku: col(r, 1)?,
                    name: col(r, 2)?,
                    description: col(r, 3)?,
                    category_id: CategoryId(col(r, 4)?),
                    price: col(r, 5)?,
                    stock: u32::try_from(col::<i32>(r, 6)?).unwrap_or(0),
                    is_active: col(r, 7)?,
                })
            })()
            .map_err(reader.fault(id))?;
            let key = document::key(id);
            let rating = lookups.ratings.get(&key).copied().unwrap_or_default();
            Ok((
                key,
                document::product_document(&p, &lookups.path(p.category_id), rating),
            ))
        })
        .collect::<Result<_, ReadError>>()?;
    Ok(Some(Page {
        last_key,
        docs,
        query_seconds: 0.0,
    }))
}

async fn services_page(
    reader: Reader<'_>,
    selection: Selection<'_>,
    lookups: &Lookups,
) -> Result<Option<Page>, ReadError> {
    let (from, values) = selection.from(reader.entity);
    let rows = reader
        .fetch(
            &format!(
                "SELECT service_id, code, name, description, category_id, duration_minutes, price, consultant, is_active \
                 FROM {from}"
            ),
            &values,
        )
        .await?;
    let Some(last) = rows.last() else {
        return Ok(None);
    };
    let last_key = reader.key(last, 0)?;
    let docs = rows
        .iter()
        .map(|r| {
            let id = reader.key(r, 0)?;
            let s = (|| {
                Ok::<_, RowFault>(Service {
                    id: ServiceId(id),
                    code: col(r, 1)?,
                    name: col(r, 2)?,
                    description: col(r, 3)?,
                    category_id: CategoryId(col(r, 4)?),
                    duration_minutes: u32::try_from(col::<i32>(r, 5)?).unwrap_or(0),
                    price: col(r, 6)?,
                    consultant: col(r, 7)?,
                    is_active: col(r, 8)?,
                })
            })()
            .map_err(reader.fault(id))?;
            Ok((
                document::key(id),
                document::service_document(&s, &lookups.path(s.category_id)),
            ))
        })
        .collect::<Result<_, ReadError>>()?;
    Ok(Some(Page {
        last_key,
        docs,
        query_seconds: 0.0,
    }))
}

async fn orders_page(
    reader: Reader<'_>,
    selection: Selection<'_>,
) -> Result<Option<Page>, ReadError> {
    let (from, values) = selection.from(reader.entity);
    let rows = reader
        .fetch(
            &format!(
                "SELECT order_id, customer_id, status, total, placed_at, updated_at FROM {from}"
            ),
            &values,
        )
        .await?;
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return Ok(None);
    };
    let (first, last) = (reader.key(first, 0)?, reader.key(last, 0)?);
    let (lines_from, lines_where, values) =
        selection.children("Order_Items i", "i.order_id", first, last);
    let line_rows = reader
        .fetch(
            &format!(
                "SELECT i.order_item_id, i.order_id, i.product_id, i.service_id, i.quantity, i.unit_price, \
                 COALESCE(p.name, s.name, '') FROM {lines_from} \
                 LEFT JOIN Products p ON p.product_id = i.product_id \
                 LEFT JOIN Services s ON s.service_id = i.service_id \
                 {lines_where} ORDER BY i.order_id, i.order_item_id"
            ),
            &values,
        )
        .await?;
    let mut lines: HashMap<u64, Vec<(OrderItem, String)>> = HashMap::new();
    for r in line_rows {
        let order = reader.key(&r, 1)?;
        let line = (|| {
            let item = match (col::<Option<u64>>(&r, 2)?, col::<Option<u64>>(&r, 3)?) {
                (Some(p), _) => LineItem::Product(ProductId(p)),
                (None, Some(s)) => LineItem::Service(ServiceId(s)),
                (None, None) => return Ok(None), // impossible: a CHECK constraint forbids it
            };
            Ok::<_, RowFault>(Some((
                OrderItem {
                    id: OrderItemId(col(&r, 0)?),
                    order_id: OrderId(order),
                    item,
                    quantity: u32::try_from(col::<i32>(&r, 4)?).unwrap_or(0),
                    unit_price: col(&r, 5)?,
                },
                col(&r, 6)?,
            )))
        })()
        .map_err(reader.fault(order))?;
        if let Some(line) = line {
            lines.entry(order).or_default().push(line);
        }
    }
    let docs = rows
        .iter()
        .map(|r| {
            let id = reader.key(r, 0)?;
            let order = (|| {
                Ok::<_, RowFault>(Order {
                    id: OrderId(id),
                    customer_id: CustomerId(col(r, 1)?),
                    status: col::<String>(r, 2)?.parse::<OrderStatus>()?,
                    total: col(r, 3)?,
                    placed_at: utc(col(r, 4)?),
                    updated_at: utc(col(r, 5)?),
                })
            })()
            .map_err(reader.fault(id))?;
            let order_lines = lines.get(&id).map(Vec::as_slice).unwrap_or_default();
            Ok((
                document::key(id),
                document::order_document(&order, order_lines),
            ))
        })
        .collect::<Result<_, ReadError>>()?;
    Ok(Some(Page {
        last_key: last,
        docs,
        query_seconds: 0.0,
    }))
}
