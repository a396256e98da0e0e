//! Reading MariaDB page by page (keyset pagination, never OFFSET) and turning each page into
//! documents. Migration and verification both use it, so both sides are computed the same way.

use super::Entity;
use crate::document::{self, RatingSummary};
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

/// What every page needs: category paths and product ratings (small, loaded once).
#[derive(Debug, Default, Clone)]
pub(crate) struct Lookups {
    paths: HashMap<CategoryId, Vec<String>>,
    ratings: HashMap<i64, RatingSummary>,
}

impl Lookups {
    /// Reads the category tree from MariaDB and the rating summary per product from `reviews`.
    pub(crate) async fn load(
        pool: &MySqlPool,
        mongo: &mongodb::Database,
    ) -> Result<Self, LookupError> {
        Self::load_matching(pool, mongo, None).await
    }

    /// Like [`Lookups::load`], with the ratings of these products only.
    pub(crate) async fn load_for_products(
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
pub enum LookupError {
    /// Reading `Categories`.
    #[error("reading Categories failed: {0}")]
    Categories(#[source] sqlx::Error),
    /// Aggregating `reviews`.
    #[error("aggregating the reviews collection failed: {0}")]
    Ratings(#[source] mongodb::error::Error),
}

/// One page: documents keyed by `_id`, and the last key read.
#[derive(Debug)]
pub(crate) struct Page {
    /// Highest key in the page: the next page starts after it.
    pub(crate) last_key: u64,
    /// `(_id, document)`. For customers the document is the set of relational fields (merged
    /// into the profile with `$set`); for the others it is the whole document.
    pub(crate) docs: Vec<(i64, Document)>,
}

fn utc(t: NaiveDateTime) -> chrono::DateTime<chrono::Utc> {
    t.and_utc()
}

fn decode_err(e: impl std::error::Error + Send + Sync + 'static) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(e))
}

/// Which rows of an entity to read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Selection<'a> {
    /// The next page in key order (the migration and verification).
    After {
        /// Keys above this one.
        after: u64,
        /// At most this many rows.
        limit: u32,
    },
    /// These keys, in any order (the sync worker re-reading what changed).
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

    /// `FROM` clause (with condition, order and limit) reading `table`'s selected rows by its
    /// key `column`.
    fn from(&self, table: &str, column: &str) -> (String, Binds) {
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

/// Runs `sql` with `binds`.
async fn fetch(pool: &MySqlPool, sql: &str, binds: &Binds) -> Result<Vec<MySqlRow>, sqlx::Error> {
    match binds {
        Binds::Numbers(values) => values.iter().fold(sqlx::query(sql), |q, v| q.bind(*v)),
        Binds::Keys(json) => sqlx::query(sql).bind(json.as_str()),
    }
    .fetch_all(pool)
    .await
}

/// The selected rows of `entity` as documents, or `None` when there are none.
pub(crate) async fn read_page(
    pool: &MySqlPool,
    entity: Entity,
    selection: Selection<'_>,
    lookups: &Lookups,
) -> Result<Option<Page>, sqlx::Error> {
    let page = match entity {
        Entity::Customers => customers_page(pool, selection).await,
        Entity::Products => products_page(pool, selection, lookups).await,
        Entity::Services => services_page(pool, selection, lookups).await,
        Entity::Orders => orders_page(pool, selection).await,
    }?;
    // Keys ascend within a page, so checking the last one covers them all.
    if let Some(p) = &page
        && i64::try_from(p.last_key).is_err()
    {
        return Err(decode_err(KeyTooLarge(p.last_key)));
    }
    Ok(page)
}

/// A key above `i64::MAX` has no faithful BSON integer `_id`.
#[derive(Debug, thiserror::Error)]
#[error("key {0} is above 9223372036854775807 and cannot be a MongoDB _id")]
struct KeyTooLarge(u64);

async fn customers_page(
    pool: &MySqlPool,
    selection: Selection<'_>,
) -> Result<Option<Page>, sqlx::Error> {
    let (from, values) = selection.from("Customers", "customer_id");
    let rows = fetch(
        pool,
        &format!(
            "SELECT customer_id, first_name, last_name, email, phone, created_at, updated_at FROM {from}"
        ),
        &values,
    )
    .await?;
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return Ok(None);
    };
    let (first, last): (u64, u64) = (first.try_get(0)?, last.try_get(0)?);
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
    let (address_rows, summary_rows) = tokio::try_join!(
        fetch(pool, &addresses_sql, &values),
        fetch(pool, &summaries_sql, &values)
    )?;
    let mut addresses: HashMap<u64, Vec<Address>> = HashMap::new();
    for r in address_rows {
        let customer: u64 = r.try_get(1)?;
        let kind: String = r.try_get(2)?;
        addresses.entry(customer).or_default().push(Address {
            id: AddressId(r.try_get(0)?),
            customer_id: CustomerId(customer),
            kind: kind.parse::<AddressKind>().map_err(decode_err)?,
            line1: r.try_get(3)?,
            line2: r.try_get(4)?,
            city: r.try_get(5)?,
            region: r.try_get(6)?,
            postal_code: r.try_get(7)?,
            country: r.try_get(8)?,
            is_default: r.try_get(9)?,
        });
    }
    let mut summaries: HashMap<u64, OrderSummary> = HashMap::new();
    for r in summary_rows {
        let count: i64 = r.try_get(1)?;
        summaries.insert(
            r.try_get(0)?,
            OrderSummary {
                order_count: count as u64,
                lifetime_value: r.try_get::<Decimal, _>(2)?,
                last_order_at: r.try_get::<Option<NaiveDateTime>, _>(3)?.map(utc),
            },
        );
    }
    let docs = rows
        .iter()
        .map(|r| {
            let id: u64 = r.try_get(0)?;
            let email: String = r.try_get(3)?;
            let customer = Customer {
                id: CustomerId(id),
                first_name: r.try_get(1)?,
                last_name: r.try_get(2)?,
                email: Email::parse(&email).map_err(decode_err)?,
                phone: r.try_get(4)?,
                created_at: utc(r.try_get(5)?),
                updated_at: utc(r.try_get(6)?),
            };
            let addresses = addresses.get(&id).map(Vec::as_slice).unwrap_or_default();
            let summary = summaries.remove(&id).unwrap_or_default();
            Ok((
                document::key(id),
                document::profile_fields(&customer, addresses, &summary),
            ))
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(Some(Page {
        last_key: last,
        docs,
    }))
}

fn product(r: &MySqlRow) -> Result<Product, sqlx::Error> {
    Ok(Product {
        id: ProductId(r.try_get(0)?),
        sku: r.try_get(1)?,
        name: r.try_get(2)?,
        description: r.try_get(3)?,
        category_id: CategoryId(r.try_get(4)?),
        price: r.try_get(5)?,
        stock: u32::try_from(r.try_get::<i32, _>(6)?).unwrap_or(0),
        is_active: r.try_get(7)?,
    })
}

async fn products_page(
    pool: &MySqlPool,
    selection: Selection<'_>,
    lookups: &Lookups,
) -> Result<Option<Page>, sqlx::Error> {
    let (from, values) = selection.from("Products", "product_id");
    let rows = fetch(
        pool,
        &format!(
            "SELECT product_id, sku, name, description, category_id, price, stock, is_active FROM {from}"
        ),
        &values,
    )
    .await?;
    let Some(last) = rows.last() else {
        return Ok(None);
    };
    let last_key = last.try_get(0)?;
    let docs = rows
        .iter()
        .map(|r| {
            let p = product(r)?;
            let id = document::key(p.id.get());
            let rating = lookups.ratings.get(&id).copied().unwrap_or_default();
            Ok((
                id,
                document::product_document(&p, &lookups.path(p.category_id), rating),
            ))
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(Some(Page { last_key, docs }))
}

async fn services_page(
    pool: &MySqlPool,
    selection: Selection<'_>,
    lookups: &Lookups,
) -> Result<Option<Page>, sqlx::Error> {
    let (from, values) = selection.from("Services", "service_id");
    let rows = fetch(
        pool,
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
    let last_key = last.try_get(0)?;
    let docs = rows
        .iter()
        .map(|r| {
            let s = Service {
                id: ServiceId(r.try_get(0)?),
                code: r.try_get(1)?,
                name: r.try_get(2)?,
                description: r.try_get(3)?,
                category_id: CategoryId(r.try_get(4)?),
                duration_minutes: u32::try_from(r.try_get::<i32, _>(5)?).unwrap_or(0),
                price: r.try_get(6)?,
                consultant: r.try_get(7)?,
                is_active: r.try_get(8)?,
            };
            Ok((
                document::key(s.id.get()),
                document::service_document(&s, &lookups.path(s.category_id)),
            ))
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(Some(Page { last_key, docs }))
}

async fn orders_page(
    pool: &MySqlPool,
    selection: Selection<'_>,
) -> Result<Option<Page>, sqlx::Error> {
    let (from, values) = selection.from("Orders", "order_id");
    let rows = fetch(
        pool,
        &format!("SELECT order_id, customer_id, status, total, placed_at, updated_at FROM {from}"),
        &values,
    )
    .await?;
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return Ok(None);
    };
    let (first, last): (u64, u64) = (first.try_get(0)?, last.try_get(0)?);
    let (lines_from, lines_where, values) =
        selection.children("Order_Items i", "i.order_id", first, last);
    let mut lines: HashMap<u64, Vec<(OrderItem, String)>> = HashMap::new();
    for r in fetch(
        pool,
        &format!(
            "SELECT i.order_item_id, i.order_id, i.product_id, i.service_id, i.quantity, i.unit_price, \
             COALESCE(p.name, s.name, '') FROM {lines_from} \
             LEFT JOIN Products p ON p.product_id = i.product_id \
             LEFT JOIN Services s ON s.service_id = i.service_id \
             {lines_where} ORDER BY i.order_id, i.order_item_id"
        ),
        &values,
    )
    .await?
    {
        let order: u64 = r.try_get(1)?;
        let item = match (
            r.try_get::<Option<u64>, _>(2)?,
            r.try_get::<Option<u64>, _>(3)?,
        ) {
            (Some(p), _) => LineItem::Product(ProductId(p)),
            (None, Some(s)) => LineItem::Service(ServiceId(s)),
            (None, None) => continue, // impossible: a CHECK constraint forbids it
        };
        lines.entry(order).or_default().push((
            OrderItem {
                id: OrderItemId(r.try_get(0)?),
                order_id: OrderId(order),
                item,
                quantity: u32::try_from(r.try_get::<i32, _>(4)?).unwrap_or(0),
                unit_price: r.try_get(5)?,
            },
            r.try_get(6)?,
        ));
    }
    let docs = rows
        .iter()
        .map(|r| {
            let id: u64 = r.try_get(0)?;
            let status: String = r.try_get(2)?;
            let order = Order {
                id: OrderId(id),
                customer_id: CustomerId(r.try_get(1)?),
                status: status.parse::<OrderStatus>().map_err(decode_err)?,
                total: r.try_get(3)?,
                placed_at: utc(r.try_get(4)?),
                updated_at: utc(r.try_get(5)?),
            };
            let order_lines = lines.get(&id).map(Vec::as_slice).unwrap_or_default();
            Ok((
                document::key(id),
                document::order_document(&order, order_lines),
            ))
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(Some(Page {
        last_key: last,
        docs,
    }))
}
