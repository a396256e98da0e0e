//! The generator loaded into real servers: every constraint holds, stock is consistent, the
//! load is deterministic whatever the connection count, and normal ordering still works after.

use crate::support::{TestEnv, count, stock};
use aethermart_core::generate::{
    self, FakeGenerator, GenerateConfig, Generator, LoadError, LoadOptions, Table,
};
use aethermart_core::model::{CustomerId, NewOrderLine};
use aethermart_core::orders;
use aethermart_core::progress::NoProgress;
use aethermart_core::schema::{MariaDbSchema, SchemaApplier};
use chrono::NaiveDate;
use mongodb::bson::{Document, doc};
use std::sync::Arc;

fn settings(scale: f64) -> GenerateConfig {
    GenerateConfig::new(42, scale, NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()).unwrap()
}

async fn loaded(
    test: &str,
    scale: f64,
    connections: usize,
) -> (TestEnv, sqlx::MySqlPool, generate::LoadSummary) {
    let env = TestEnv::new(test).await;
    MariaDbSchema::new(env.config.mariadb.clone())
        .apply()
        .await
        .unwrap();
    let options = LoadOptions {
        connections,
        replace_documents: false,
    };
    let summary =
        generate::generate_into(&env.config, settings(scale), options, Arc::new(NoProgress))
            .await
            .unwrap();
    let pool = env.pool().await;
    (env, pool, summary)
}

/// Orphans of every foreign key (the loader writes with foreign_key_checks = 0, so this is the proof).
const ORPHANS: &[(&str, &str)] = &[
    (
        "address without customer",
        "SELECT COUNT(*) FROM Customer_Addresses a LEFT JOIN Customers c USING (customer_id) WHERE c.customer_id IS NULL",
    ),
    (
        "category without parent",
        "SELECT COUNT(*) FROM Categories c LEFT JOIN Categories p ON p.category_id = c.parent_id WHERE c.parent_id IS NOT NULL AND p.category_id IS NULL",
    ),
    (
        "product without category",
        "SELECT COUNT(*) FROM Products p LEFT JOIN Categories c USING (category_id) WHERE c.category_id IS NULL",
    ),
    (
        "service without category",
        "SELECT COUNT(*) FROM Services s LEFT JOIN Categories c USING (category_id) WHERE c.category_id IS NULL",
    ),
    (
        "order without customer",
        "SELECT COUNT(*) FROM Orders o LEFT JOIN Customers c USING (customer_id) WHERE c.customer_id IS NULL",
    ),
    (
        "line without order",
        "SELECT COUNT(*) FROM Order_Items i LEFT JOIN Orders o USING (order_id) WHERE o.order_id IS NULL",
    ),
    (
        "line with unknown product",
        "SELECT COUNT(*) FROM Order_Items i LEFT JOIN Products p USING (product_id) WHERE i.product_id IS NOT NULL AND p.product_id IS NULL",
    ),
    (
        "line with unknown service",
        "SELECT COUNT(*) FROM Order_Items i LEFT JOIN Services s USING (service_id) WHERE i.service_id IS NOT NULL AND s.service_id IS NULL",
    ),
    (
        "booking without line",
        "SELECT COUNT(*) FROM Service_Bookings b LEFT JOIN Order_Items i USING (order_item_id) WHERE i.order_item_id IS NULL",
    ),
    (
        "booking of a product line",
        "SELECT COUNT(*) FROM Service_Bookings b JOIN Order_Items i USING (order_item_id) WHERE i.service_id IS NULL OR i.service_id <> b.service_id",
    ),
    (
        "order total differing from its lines",
        "SELECT COUNT(*) FROM Orders o WHERE o.total <> (SELECT COALESCE(SUM(line_total), -1) FROM Order_Items i WHERE i.order_id = o.order_id)",
    ),
    (
        "order before its customer signed up",
        "SELECT COUNT(*) FROM Orders o JOIN Customers c USING (customer_id) WHERE o.placed_at < c.created_at",
    ),
    (
        "negative stock",
        "SELECT COUNT(*) FROM Products WHERE stock < 0",
    ),
    (
        "cancelled order still holding a booking",
        "SELECT COUNT(*) FROM Service_Bookings b JOIN Order_Items i USING (order_item_id) JOIN Orders o USING (order_id) WHERE o.status = 'cancelled'",
    ),
];

#[tokio::test]
async fn a_generated_data_set_keeps_every_constraint_and_a_consistent_stock() {
    let (env, pool, summary) = loaded("generate_005", 0.05, 3).await;
    let g = FakeGenerator::new(settings(0.05));
    let plan = g.plan();
    assert_eq!(count(&pool, "Customers").await as u64, plan.customers);
    assert_eq!(count(&pool, "Products").await as u64, plan.products);
    assert_eq!(count(&pool, "Services").await as u64, plan.services);
    assert_eq!(count(&pool, "Orders").await as u64, plan.orders);
    let rows: u64 = summary
        .tables
        .iter()
        .filter(|t| t.store == "MariaDB")
        .map(|t| t.rows)
        .sum();
    assert_eq!(rows, summary.mariadb_rows);
    assert_eq!(
        count(&pool, "Order_Items").await as u64,
        summary
            .tables
            .iter()
            .find(|t| t.table == "order_items")
            .unwrap()
            .rows
    );

    let mut broken = Vec::new();
    for (what, sql) in ORPHANS {
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
        if n != 0 {
            broken.push(format!("{what}: {n}"));
        }
    }
    assert!(
        broken.is_empty(),
        "integrity broken:\n{}",
        broken.join("\n")
    );

    // Loading history does not take stock again: the stock on hand is the generator's.
    let products: Vec<_> = (0..plan.batches(Table::Products))
        .flat_map(|i| g.products(i))
        .collect();
    for p in products.iter().take(50) {
        assert_eq!(
            stock(&pool, p.id.get()).await,
            p.stock as i32,
            "product {}",
            p.id
        );
    }

    // The history flag stayed on the loader's connections: a new order takes stock as usual.
    let product = products
        .iter()
        .find(|p| p.is_active && p.stock >= 2)
        .expect("an orderable product");
    orders::place_order(
        &pool,
        CustomerId(1),
        &[NewOrderLine::Product {
            product_id: product.id,
            quantity: 2,
        }],
    )
    .await
    .unwrap();
    assert_eq!(
        stock(&pool, product.id.get()).await,
        product.stock as i32 - 2
    );

    let mongo = env.mongo().await;
    let reviews = mongo
        .collection::<Document>("reviews")
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!(
        reviews,
        summary
            .tables
            .iter()
            .find(|t| t.table == "reviews")
            .unwrap()
            .rows
    );
    assert!(reviews > 0);
    let profiles = mongo
        .collection::<Document>("customer_profiles")
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!(profiles, plan.customers);
    // Every review is by a customer who bought the product in a delivered or returned order.
    let sample: Vec<Document> = {
        use futures_util::TryStreamExt;
        mongo
            .collection::<Document>("reviews")
            .find(doc! {})
            .limit(200)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    };
    for r in sample {
        let bought: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM Order_Items i JOIN Orders o USING (order_id) \
             WHERE o.customer_id = ? AND i.product_id = ? AND o.status IN ('delivered', 'returned')",
        )
        .bind(r.get_i64("customer_id").unwrap())
        .bind(r.get_i64("product_id").unwrap())
        .fetch_one(&pool)
        .await
        .unwrap();
        assert!(
            bought > 0,
            "review {r} by a customer who never received the product"
        );
    }

    // A second load into the same stores is refused, naming what is in the way.
    let again = generate::generate_into(
        &env.config,
        settings(0.05),
        LoadOptions::default(),
        Arc::new(NoProgress),
    )
    .await;
    assert!(
        matches!(again, Err(LoadError::TableNotEmpty("Categories"))),
        "{again:?}"
    );
}

/// Every generated column of each table, row by row in key order (the load-time defaults of
/// `created_at`/`updated_at` on tables whose model has no timestamps are left out).
const CONTENT: &[(&str, &str)] = &[
    (
        "Categories",
        "SELECT CONCAT_WS('|', category_id, parent_id, name, slug) FROM Categories ORDER BY category_id",
    ),
    (
        "Customers",
        "SELECT CONCAT_WS('|', customer_id, first_name, last_name, email, phone, created_at, updated_at) FROM Customers ORDER BY customer_id",
    ),
    (
        "Customer_Addresses",
        "SELECT CONCAT_WS('|', address_id, customer_id, kind, line1, line2, city, region, postal_code, country, is_default) FROM Customer_Addresses ORDER BY address_id",
    ),
    (
        "Products",
        "SELECT CONCAT_WS('|', product_id, sku, name, description, category_id, price, stock, is_active) FROM Products ORDER BY product_id",
    ),
    (
        "Services",
        "SELECT CONCAT_WS('|', service_id, code, name, description, category_id, duration_minutes, price, consultant, is_active) FROM Services ORDER BY service_id",
    ),
    (
        "Orders",
        "SELECT CONCAT_WS('|', order_id, customer_id, status, total, placed_at, updated_at) FROM Orders ORDER BY order_id",
    ),
    (
        "Order_Items",
        "SELECT CONCAT_WS('|', order_item_id, order_id, product_id, service_id, quantity, unit_price, line_total) FROM Order_Items ORDER BY order_item_id",
    ),
    (
        "Service_Bookings",
        "SELECT CONCAT_WS('|', booking_id, order_item_id, service_id, consultant, starts_at, ends_at) FROM Service_Bookings ORDER BY booking_id",
    ),
];

#[tokio::test]
async fn the_loaded_data_is_identical_with_one_or_four_connections() {
    let (_a, pool_a, _) = loaded("generate_c1", 0.02, 1).await;
    let (_b, pool_b, _) = loaded("generate_c4", 0.02, 4).await;
    for (table, sql) in CONTENT {
        let a: Vec<String> = sqlx::query_scalar(sql).fetch_all(&pool_a).await.unwrap();
        let b: Vec<String> = sqlx::query_scalar(sql).fetch_all(&pool_b).await.unwrap();
        assert!(!a.is_empty(), "{table} is empty");
        assert!(a == b, "{table} differs between 1 and 4 connections");
    }
}
