//! Every constraint of the schema rejects its bad row (against a real MariaDB).

use crate::support::{count, errno_of, seeded};
use aethermart_core::orders::errno;

const CHECK: u16 = 4025;
const DUPLICATE: u16 = 1062;
const NO_PARENT: u16 = 1452;
const HAS_CHILDREN: u16 = 1451;

/// (what is wrong, statement, expected MYSQL_ERRNO)
const BAD_ROWS: &[(&str, &str, u16)] = &[
    (
        "duplicate e-mail",
        "INSERT INTO Customers (first_name, last_name, email) VALUES ('A', 'B', 'ana@example.com')",
        DUPLICATE,
    ),
    (
        "malformed e-mail",
        "INSERT INTO Customers (first_name, last_name, email) VALUES ('A', 'B', 'not-an-email')",
        CHECK,
    ),
    (
        "blank name",
        "INSERT INTO Customers (first_name, last_name, email) VALUES (' ', 'B', 'x@example.com')",
        CHECK,
    ),
    (
        "address of unknown customer",
        "INSERT INTO Customer_Addresses (customer_id, kind, line1, city, postal_code, country) VALUES (99, 'shipping', 'x', 'y', '1', 'DE')",
        NO_PARENT,
    ),
    (
        "lower-case country",
        "INSERT INTO Customer_Addresses (customer_id, kind, line1, city, postal_code, country) VALUES (1, 'shipping', 'x', 'y', '1', 'de')",
        CHECK,
    ),
    (
        "unknown address kind",
        "INSERT INTO Customer_Addresses (customer_id, kind, line1, city, postal_code, country) VALUES (1, 'holiday', 'x', 'y', '1', 'DE')",
        CHECK,
    ),
    (
        "second default address",
        "INSERT INTO Customer_Addresses (customer_id, kind, line1, city, postal_code, country, is_default) VALUES (1, 'billing', 'a', 'y', '1', 'DE', TRUE), (1, 'billing', 'b', 'y', '1', 'DE', TRUE)",
        DUPLICATE,
    ),
    (
        "duplicate slug",
        "INSERT INTO Categories (name, slug) VALUES ('Other', 'computers')",
        DUPLICATE,
    ),
    (
        "bad slug",
        "INSERT INTO Categories (name, slug) VALUES ('Other', 'Not A Slug')",
        CHECK,
    ),
    (
        "unknown parent category",
        "INSERT INTO Categories (parent_id, name, slug) VALUES (99, 'x', 'x')",
        NO_PARENT,
    ),
    (
        "negative price",
        "INSERT INTO Products (sku, name, category_id, price, stock) VALUES ('NEG-1', 'x', 2, -0.01, 1)",
        CHECK,
    ),
    (
        "negative stock",
        "INSERT INTO Products (sku, name, category_id, price, stock) VALUES ('NEG-2', 'x', 2, 1, -1)",
        CHECK,
    ),
    (
        "duplicate SKU",
        "INSERT INTO Products (sku, name, category_id, price, stock) VALUES ('GPU-4090', 'x', 2, 1, 1)",
        DUPLICATE,
    ),
    (
        "product in unknown category",
        "INSERT INTO Products (sku, name, category_id, price, stock) VALUES ('CAT-9', 'x', 99, 1, 1)",
        NO_PARENT,
    ),
    (
        "zero-minute service",
        "INSERT INTO Services (code, name, category_id, duration_minutes, price, consultant) VALUES ('S0', 'x', 3, 0, 1, 'x')",
        CHECK,
    ),
    (
        "negative service price",
        "INSERT INTO Services (code, name, category_id, duration_minutes, price, consultant) VALUES ('S1', 'x', 3, 30, -5, 'x')",
        CHECK,
    ),
    (
        "unknown order status",
        "INSERT INTO Orders (customer_id, status) VALUES (1, 'lost')",
        CHECK,
    ),
    (
        "order of unknown customer",
        "INSERT INTO Orders (customer_id) VALUES (99)",
        NO_PARENT,
    ),
    (
        "negative order total",
        "INSERT INTO Orders (customer_id, total) VALUES (1, -1)",
        CHECK,
    ),
    (
        "line with neither product nor service",
        "INSERT INTO Order_Items (order_id, quantity, unit_price) VALUES (1, 1, 1)",
        CHECK,
    ),
    (
        "line with both product and service",
        "INSERT INTO Order_Items (order_id, product_id, service_id, quantity, unit_price) VALUES (1, 1, 1, 1, 1)",
        CHECK,
    ),
    (
        "zero quantity",
        "INSERT INTO Order_Items (order_id, product_id, quantity, unit_price) VALUES (1, 1, 0, 1)",
        CHECK,
    ),
    (
        "two sessions on one service line",
        "INSERT INTO Order_Items (order_id, service_id, quantity, unit_price) VALUES (1, 1, 2, 1)",
        CHECK,
    ),
    (
        "negative unit price",
        "INSERT INTO Order_Items (order_id, product_id, quantity, unit_price) VALUES (1, 1, 1, -1)",
        CHECK,
    ),
    (
        "overselling through a raw insert",
        "INSERT INTO Order_Items (order_id, product_id, quantity, unit_price) VALUES (1, 2, 6, 1)",
        CHECK,
    ),
    (
        "deleting a category in use",
        "DELETE FROM Categories WHERE category_id = 2",
        HAS_CHILDREN,
    ),
    (
        "deleting a customer with orders",
        "DELETE FROM Customers WHERE customer_id = 1",
        HAS_CHILDREN,
    ),
    (
        "deleting a sold product",
        "DELETE FROM Products WHERE product_id = 1",
        HAS_CHILDREN,
    ),
    (
        "booking that overlaps another of the same consultant",
        "INSERT INTO Service_Bookings (order_item_id, service_id, consultant, starts_at, ends_at) VALUES (1, 1, 'Dana Reyes', '2030-01-01 10:30:00', '2030-01-01 11:30:00')",
        DUPLICATE,
    ),
    (
        "booking that ends before it starts",
        "INSERT INTO Service_Bookings (order_item_id, service_id, consultant, starts_at, ends_at) VALUES (1, 1, 'Sam', '2030-01-01 10:00:00', '2030-01-01 09:00:00')",
        CHECK,
    ),
    (
        "order status jumping from pending to delivered",
        "UPDATE Orders SET status = 'delivered' WHERE order_id = 1",
        errno::BAD_STATUS_CHANGE,
    ),
    (
        "order moved to another customer",
        "UPDATE Orders SET customer_id = 2 WHERE order_id = 1",
        errno::BAD_STATUS_CHANGE,
    ),
    (
        "rewriting a sold line",
        "UPDATE Order_Items SET quantity = 3 WHERE order_item_id = 1",
        errno::LINE_IMMUTABLE,
    ),
    (
        "category cycle",
        "UPDATE Categories SET parent_id = 2 WHERE category_id = 1",
        errno::CATEGORY_CYCLE,
    ),
    (
        "deleting an order line",
        "DELETE FROM Order_Items WHERE order_item_id = 1",
        errno::LINE_IMMUTABLE,
    ),
    (
        "deleting an order that is not cancelled",
        "DELETE FROM Orders WHERE order_id = 1",
        errno::DELETE_NOT_CANCELLED,
    ),
    (
        "category as its own parent",
        "UPDATE Categories SET parent_id = 1 WHERE category_id = 1",
        errno::CATEGORY_CYCLE,
    ),
];

#[tokio::test]
async fn every_constraint_rejects_its_bad_row() {
    let (_env, pool) = seeded("constraints").await;
    // An order with a product line (item 1) and a service line (item 2) booked 10:00-11:00.
    sqlx::raw_sql(
        "INSERT INTO Orders (order_id, customer_id) VALUES (1, 1);
         INSERT INTO Order_Items (order_item_id, order_id, product_id, quantity, unit_price) VALUES (1, 1, 1, 1, 1599.99);
         INSERT INTO Order_Items (order_item_id, order_id, service_id, quantity, unit_price) VALUES (2, 1, 1, 1, 89.00);
         INSERT INTO Service_Bookings (order_item_id, service_id, consultant, starts_at, ends_at)
           VALUES (2, 1, 'Dana Reyes', '2030-01-01 10:00:00', '2030-01-01 11:00:00');",
    )
    .execute(&pool)
    .await
    .unwrap();
    let tables = [
        "Customers",
        "Customer_Addresses",
        "Categories",
        "Products",
        "Services",
        "Orders",
        "Order_Items",
        "Service_Bookings",
    ];
    let mut before = Vec::new();
    for t in tables {
        before.push(count(&pool, t).await);
    }
    let mut failures = Vec::new();
    for (what, sql, expected) in BAD_ROWS {
        match sqlx::query(sql).execute(&pool).await {
            Ok(_) => failures.push(format!("{what}: accepted")),
            Err(e) => {
                let got = errno_of::<()>(Err(e));
                if got != *expected {
                    failures.push(format!("{what}: errno {got}, expected {expected}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "constraints that did not hold:\n{}",
        failures.join("\n")
    );
    for (t, n) in tables.iter().zip(before) {
        assert_eq!(count(&pool, t).await, n, "{t} changed");
    }
    assert_eq!(
        crate::support::stock(&pool, 1).await,
        9,
        "one unit taken by the trigger, once"
    );
}

#[tokio::test]
async fn updated_at_follows_changes() {
    let (_env, pool) = seeded("updated_at").await;
    sqlx::query("UPDATE Customers SET updated_at = '2000-01-01' WHERE customer_id = 1")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE Customers SET phone = '+34 600 999 999' WHERE customer_id = 1")
        .execute(&pool)
        .await
        .unwrap();
    let fresh: bool = sqlx::query_scalar(
        "SELECT updated_at > NOW() - INTERVAL 1 MINUTE FROM Customers WHERE customer_id = 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(fresh, "updated_at moves on every change");
}
