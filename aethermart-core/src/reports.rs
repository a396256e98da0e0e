//! Readers for the reporting views and the platform's named queries.
//!
//! Each query here is one the schema's indexes are built for; the integration tests run
//! `EXPLAIN` on every entry of [`NAMED_QUERIES`] and fail on a full table scan.

use crate::model::{CategoryId, CustomerId, Order, OrderId, OrderStatus, ProductId};
use chrono::{DateTime, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::mysql::MySqlPool;
use sqlx::{FromRow, Row, mysql::MySqlRow};

/// A report query failed.
#[derive(Debug, thiserror::Error)]
#[error("report query \"{query}\" failed: {source}")]
pub struct ReportError {
    /// The query's name.
    pub query: &'static str,
    /// The server's error.
    #[source]
    pub source: sqlx::Error,
}

fn failed(query: &'static str) -> impl FnOnce(sqlx::Error) -> ReportError {
    move |source| ReportError { query, source }
}

/// A query the indexes are designed for, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamedQuery {
    /// What the query answers.
    pub name: &'static str,
    /// The SQL, with `?` placeholders.
    pub sql: &'static str,
}

/// A customer's order history, newest first: `(customer_id, limit)`.
pub const CUSTOMER_ORDERS: NamedQuery = NamedQuery {
    name: "a customer's order history",
    sql: "SELECT order_id, customer_id, status, total, placed_at, updated_at FROM Orders \
          WHERE customer_id = ? ORDER BY placed_at DESC LIMIT ?",
};

/// Revenue, orders and units per quarter and category since a time: `(since)`.
pub const SALES_SINCE: NamedQuery = NamedQuery {
    name: "sales per quarter and category",
    sql: "SELECT CONCAT(YEAR(l.placed_at), '-Q', QUARTER(l.placed_at)) AS quarter, l.category_id, \
          c.name AS category, COUNT(DISTINCT l.order_id) AS orders, SUM(l.quantity) AS units, \
          SUM(l.line_total) AS revenue \
          FROM v_SalesLines l JOIN Categories c ON c.category_id = l.category_id \
          WHERE l.placed_at >= ? \
          GROUP BY YEAR(l.placed_at), QUARTER(l.placed_at), l.category_id, c.name \
          ORDER BY quarter, category",
};

/// Active products of a category up to a price, cheapest first: `(category_id, max_price, limit)`.
pub const CATALOGUE_BY_PRICE: NamedQuery = NamedQuery {
    name: "catalogue by category and price",
    sql: "SELECT product_id, name, price, stock FROM Products \
          WHERE category_id = ? AND price <= ? AND is_active = TRUE ORDER BY price LIMIT ?",
};

/// The lowest-stock active products: `(limit)`.
pub const LOW_STOCK: NamedQuery = NamedQuery {
    name: "low stock",
    sql: "SELECT product_id, sku, name, category, stock FROM v_LowStock ORDER BY stock, product_id LIMIT ?",
};

/// One customer's order summary: `(customer_id)`.
pub const CUSTOMER_SUMMARY: NamedQuery = NamedQuery {
    name: "a customer's order summary",
    sql: "SELECT customer_id, order_count, lifetime_value, first_order_at, last_order_at \
          FROM v_CustomerOrderSummary WHERE customer_id = ?",
};

/// Every named query.
pub const NAMED_QUERIES: [NamedQuery; 5] = [
    CUSTOMER_ORDERS,
    SALES_SINCE,
    CATALOGUE_BY_PRICE,
    LOW_STOCK,
    CUSTOMER_SUMMARY,
];

/// One row of `v_QuarterlySales`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuarterlySales {
    /// `YYYY-Qn`.
    pub quarter: String,
    /// The category.
    pub category_id: CategoryId,
    /// Its name.
    pub category: String,
    /// Orders with at least one line in the category.
    pub orders: u64,
    /// Units sold.
    pub units: Decimal,
    /// Revenue at order-time prices.
    pub revenue: Decimal,
}

impl FromRow<'_, MySqlRow> for QuarterlySales {
    fn from_row(row: &MySqlRow) -> sqlx::Result<Self> {
        Ok(Self {
            quarter: row.try_get("quarter")?,
            category_id: CategoryId(row.try_get("category_id")?),
            category: row.try_get("category")?,
            orders: u64::try_from(row.try_get::<i64, _>("orders")?).unwrap_or_default(),
            units: row.try_get("units")?,
            revenue: row.try_get("revenue")?,
        })
    }
}

/// One row of `v_CustomerOrderSummary`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerOrderSummary {
    /// The customer.
    pub customer_id: CustomerId,
    /// Orders placed, cancelled ones included.
    pub order_count: u64,
    /// Total of orders that count as revenue.
    pub lifetime_value: Decimal,
    /// First order.
    pub first_order_at: Option<DateTime<Utc>>,
    /// Latest order.
    pub last_order_at: Option<DateTime<Utc>>,
}

/// One row of `v_LowStock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LowStockProduct {
    /// The product.
    pub product_id: ProductId,
    /// Its SKU.
    pub sku: String,
    /// Its name.
    pub name: String,
    /// Its category's name.
    pub category: String,
    /// Units left.
    pub stock: i32,
}

fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

/// Revenue per quarter and category for the whole history (`v_QuarterlySales`).
pub async fn quarterly_sales(pool: &MySqlPool) -> Result<Vec<QuarterlySales>, ReportError> {
    sqlx::query_as(
        "SELECT quarter, category_id, category, orders, units, revenue FROM v_QuarterlySales \
         ORDER BY quarter, category",
    )
    .fetch_all(pool)
    .await
    .map_err(failed("quarterly sales"))
}

/// Revenue per quarter and category from `since` on (indexed; see [`SALES_SINCE`]).
pub async fn sales_since(
    pool: &MySqlPool,
    since: DateTime<Utc>,
) -> Result<Vec<QuarterlySales>, ReportError> {
    sqlx::query_as(SALES_SINCE.sql)
        .bind(since.naive_utc())
        .fetch_all(pool)
        .await
        .map_err(failed(SALES_SINCE.name))
}

/// A customer's most recent orders, newest first.
pub async fn customer_orders(
    pool: &MySqlPool,
    customer: CustomerId,
    limit: u32,
) -> Result<Vec<Order>, ReportError> {
    let rows = sqlx::query(CUSTOMER_ORDERS.sql)
        .bind(customer.get())
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(failed(CUSTOMER_ORDERS.name))?;
    rows.iter()
        .map(|r| {
            let status: String = r.try_get("status")?;
            Ok(Order {
                id: OrderId(r.try_get("order_id")?),
                customer_id: CustomerId(r.try_get("customer_id")?),
                status: status
                    .parse::<OrderStatus>()
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                total: r.try_get("total")?,
                placed_at: utc(r.try_get("placed_at")?),
                updated_at: utc(r.try_get("updated_at")?),
            })
        })
        .collect::<sqlx::Result<_>>()
        .map_err(failed(CUSTOMER_ORDERS.name))
}

/// One customer's order summary; `None` for an unknown customer.
pub async fn customer_summary(
    pool: &MySqlPool,
    customer: CustomerId,
) -> Result<Option<CustomerOrderSummary>, ReportError> {
    let row = sqlx::query(CUSTOMER_SUMMARY.sql)
        .bind(customer.get())
        .fetch_optional(pool)
        .await
        .map_err(failed(CUSTOMER_SUMMARY.name))?;
    row.map(|r| {
        Ok(CustomerOrderSummary {
            customer_id: CustomerId(r.try_get("customer_id")?),
            order_count: u64::try_from(r.try_get::<i64, _>("order_count")?).unwrap_or_default(),
            lifetime_value: r.try_get("lifetime_value")?,
            first_order_at: r
                .try_get::<Option<NaiveDateTime>, _>("first_order_at")?
                .map(utc),
            last_order_at: r
                .try_get::<Option<NaiveDateTime>, _>("last_order_at")?
                .map(utc),
        })
    })
    .transpose()
    .map_err(failed(CUSTOMER_SUMMARY.name))
}

/// The active products with the least stock (10 units or fewer), lowest first.
pub async fn low_stock(pool: &MySqlPool, limit: u32) -> Result<Vec<LowStockProduct>, ReportError> {
    let rows = sqlx::query(LOW_STOCK.sql)
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(failed(LOW_STOCK.name))?;
    rows.iter()
        .map(|r| {
            Ok(LowStockProduct {
                product_id: ProductId(r.try_get("product_id")?),
                sku: r.try_get("sku")?,
                name: r.try_get("name")?,
                category: r.try_get("category")?,
                stock: r.try_get("stock")?,
            })
        })
        .collect::<sqlx::Result<_>>()
        .map_err(failed(LOW_STOCK.name))
}
