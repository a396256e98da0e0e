//! The reporting views and the named queries: right numbers, and indexes used (no full scans).

use crate::support::seeded;
use aethermart_core::model::{CategoryId, CustomerId, NewOrderLine, ProductId};
use aethermart_core::{orders, reports};
use chrono::{Duration, Utc};
use rust_decimal::Decimal;
use sqlx::Row;

#[tokio::test]
async fn views_report_sales_summaries_and_low_stock() {
    let (_env, pool) = seeded("views").await;
    let line = |id, quantity| NewOrderLine::Product {
        product_id: ProductId(id),
        quantity,
    };
    let a = orders::place_order(&pool, CustomerId(1), &[line(1, 2), line(2, 1)])
        .await
        .unwrap();
    orders::place_order(&pool, CustomerId(1), &[line(2, 1)])
        .await
        .unwrap();
    let cancelled = orders::place_order(&pool, CustomerId(1), &[line(1, 1)])
        .await
        .unwrap();
    orders::cancel_order(&pool, cancelled.order_id)
        .await
        .unwrap();

    let sales = reports::quarterly_sales(&pool).await.unwrap();
    assert_eq!(sales.len(), 1, "one quarter, one category: {sales:?}");
    let row = &sales[0];
    assert_eq!(row.category_id, CategoryId(2));
    assert_eq!(row.category, "Components");
    assert_eq!(row.orders, 2, "the cancelled order does not count");
    assert_eq!(row.units, Decimal::from(4));
    assert_eq!(row.revenue, Decimal::new(409_798, 2)); // 2 × 1599.99 + 2 × 449.00
    assert_eq!(
        reports::sales_since(&pool, Utc::now() - Duration::days(1))
            .await
            .unwrap(),
        sales
    );
    assert!(
        reports::sales_since(&pool, Utc::now() + Duration::days(1))
            .await
            .unwrap()
            .is_empty()
    );

    let summary = reports::customer_summary(&pool, CustomerId(1))
        .await
        .unwrap()
        .expect("customer 1");
    assert_eq!(summary.order_count, 3);
    assert_eq!(summary.lifetime_value, a.total + Decimal::new(44_900, 2));
    assert!(summary.last_order_at.is_some());
    let none = reports::customer_summary(&pool, CustomerId(2))
        .await
        .unwrap()
        .expect("customer 2");
    assert_eq!(
        (none.order_count, none.lifetime_value, none.last_order_at),
        (0, Decimal::ZERO, None)
    );
    assert!(
        reports::customer_summary(&pool, CustomerId(77))
            .await
            .unwrap()
            .is_none()
    );

    let low = reports::low_stock(&pool, 10).await.unwrap();
    assert_eq!(
        low.iter()
            .map(|p| (p.product_id, p.stock))
            .collect::<Vec<_>>(),
        [(ProductId(2), 3), (ProductId(1), 8)]
    );

    let texts: Vec<(String, u64, String)> =
        sqlx::query_as("SELECT entity_type, entity_id, embedding_text FROM v_SemanticSearchText ORDER BY entity_type, entity_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        texts.len(),
        3,
        "two active products and one service: {texts:?}"
    );
    assert!(texts[2].2.contains("Consultant: Dana Reyes"), "{texts:?}");
}

#[tokio::test]
async fn named_queries_use_indexes_not_full_table_scans() {
    let (_env, pool) = seeded("explain").await;
    // Enough rows that a full scan is never the cheap choice: 2,000 customers, 4,000 products,
    // 20,000 orders with one line each (MariaDB's sequence engine generates them).
    sqlx::raw_sql(
        "INSERT INTO Customers (first_name, last_name, email) SELECT 'C', 'X', CONCAT('c', seq, '@example.com') FROM seq_1_to_2000;
         INSERT INTO Categories (parent_id, name, slug) SELECT 1, CONCAT('Cat ', seq), CONCAT('cat-', seq) FROM seq_1_to_50;
         INSERT INTO Products (sku, name, category_id, price, stock)
           SELECT CONCAT('P-', seq), CONCAT('Product ', seq), 4 + seq % 50, seq % 500, 1000 FROM seq_1_to_4000;
         INSERT INTO Orders (customer_id, status, total, placed_at)
           SELECT 3 + seq % 2000, 'delivered', 10, NOW() - INTERVAL (seq % 730) DAY FROM seq_1_to_20000;
         INSERT INTO Order_Items (order_id, product_id, quantity, unit_price)
           SELECT order_id, 4 + order_id % 3990, 1, 10 FROM Orders WHERE status = 'delivered';
         ANALYZE TABLE Customers, Categories, Products, Orders, Order_Items PERSISTENT FOR ALL;",
    )
    .execute(&pool)
    .await
    .unwrap();
    let since = (Utc::now() - Duration::days(30)).naive_utc();
    let mut scans = Vec::new();
    for q in reports::NAMED_QUERIES {
        let sql = format!("EXPLAIN {}", q.sql);
        let explain = sqlx::query(&sql);
        let explain = match q.name {
            n if n == reports::CUSTOMER_ORDERS.name => explain.bind(5_u64).bind(20_u32),
            n if n == reports::SALES_SINCE.name => explain.bind(since),
            n if n == reports::CATALOGUE_BY_PRICE.name => {
                explain.bind(10_u64).bind(Decimal::from(100)).bind(20_u32)
            }
            n if n == reports::LOW_STOCK.name => explain.bind(20_u32),
            n if n == reports::CUSTOMER_SUMMARY.name => explain.bind(5_u64),
            other => panic!("no binds for named query {other}"),
        };
        for row in explain.fetch_all(&pool).await.unwrap() {
            let table: Option<String> = row.try_get("table").unwrap();
            let access: Option<String> = row.try_get("type").unwrap();
            let table = table.unwrap_or_default();
            // A <derivedN> row is the materialised result of a grouped view, not a base table.
            // `ALL` reads the table, `index` the whole of an index: both scan everything.
            if matches!(access.as_deref(), Some("ALL" | "index")) && !table.starts_with("<derived")
            {
                scans.push(format!("{}: full scan of {table}", q.name));
            }
        }
    }
    assert!(scans.is_empty(), "{}", scans.join("\n"));
}
