//! sp_PlaceOrder / sp_CancelOrder through the typed API, against a real MariaDB.

use crate::support::{count, errno_of, seeded, stock};
use aethermart_core::model::{CustomerId, NewOrderLine, OrderId, ProductId, ServiceId};
use aethermart_core::orders::{self, CancelOrderError, PlaceOrderError, errno};
use aethermart_core::reports;
use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;
use sqlx::MySqlPool;

fn product(id: u64, quantity: u32) -> NewOrderLine {
    NewOrderLine::Product {
        product_id: ProductId(id),
        quantity,
    }
}

fn consultation(hour: u32) -> NewOrderLine {
    NewOrderLine::Service {
        service_id: ServiceId(1),
        starts_at: Utc.with_ymd_and_hms(2030, 3, 4, hour, 0, 0).unwrap(),
    }
}

/// Row counts of every table an order touches, plus all stock levels.
async fn footprint(pool: &MySqlPool) -> (i64, i64, i64, Vec<i32>) {
    (
        count(pool, "Orders").await,
        count(pool, "Order_Items").await,
        count(pool, "Service_Bookings").await,
        vec![
            stock(pool, 1).await,
            stock(pool, 2).await,
            stock(pool, 3).await,
        ],
    )
}

#[tokio::test]
async fn an_order_with_products_and_a_consultation_is_placed_atomically() {
    let (_env, pool) = seeded("place_ok").await;
    let placed = orders::place_order(
        &pool,
        CustomerId(1),
        &[
            product(1, 2),
            product(2, 1),
            product(1, 1),
            consultation(10),
        ],
    )
    .await
    .unwrap();
    // 3 × 1599.99 + 449.00 + 89.00
    assert_eq!(placed.total, Decimal::new(533_797, 2));
    assert_eq!(
        stock(&pool, 1).await,
        7,
        "three units of product 1 taken once"
    );
    assert_eq!(stock(&pool, 2).await, 4);
    let (items, lines_sum, booking_end): (i64, Decimal, chrono::NaiveDateTime) = sqlx::query_as(
        "SELECT COUNT(*), SUM(i.line_total), MAX(b.ends_at) FROM Order_Items i \
         LEFT JOIN Service_Bookings b ON b.order_item_id = i.order_item_id WHERE i.order_id = ?",
    )
    .bind(placed.order_id.get())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(items, 4);
    assert_eq!(lines_sum, placed.total, "order total = sum of lines");
    assert_eq!(
        booking_end,
        Utc.with_ymd_and_hms(2030, 3, 4, 11, 0, 0)
            .unwrap()
            .naive_utc(),
        "60-minute slot"
    );

    // Prices are captured at order time.
    sqlx::query("UPDATE Products SET price = 1.00 WHERE product_id = 1")
        .execute(&pool)
        .await
        .unwrap();
    let captured: Decimal = sqlx::query_scalar("SELECT total FROM Orders WHERE order_id = ?")
        .bind(placed.order_id.get())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(captured, placed.total);

    let history = reports::customer_orders(&pool, CustomerId(1), 10)
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].id, placed.order_id);
    assert_eq!(history[0].total, placed.total);
}

/// (what, lines, customer, expected variant, text the message must contain)
type RefusalCase = (
    &'static str,
    Vec<NewOrderLine>,
    u64,
    fn(&PlaceOrderError) -> bool,
    &'static str,
);

#[tokio::test]
async fn every_refusal_has_its_own_typed_error_and_leaves_no_trace() {
    let (_env, pool) = seeded("place_errors").await;
    // An existing booking 10:00–11:00 for the double-booking case.
    orders::place_order(&pool, CustomerId(2), &[consultation(10)])
        .await
        .unwrap();
    let before = footprint(&pool).await;

    let cases: Vec<RefusalCase> = vec![
        (
            "unknown customer",
            vec![product(1, 1)],
            99,
            |e| matches!(e, PlaceOrderError::UnknownCustomer(_)),
            "unknown customer 99",
        ),
        (
            "unknown product",
            vec![product(1, 1), product(42, 1)],
            1,
            |e| matches!(e, PlaceOrderError::UnknownProduct(_)),
            "product 42",
        ),
        (
            "inactive product",
            vec![product(3, 1)],
            1,
            |e| matches!(e, PlaceOrderError::UnknownProduct(_)),
            "product 3",
        ),
        (
            "insufficient stock",
            vec![product(1, 1), product(2, 4), product(2, 2)],
            1,
            |e| matches!(e, PlaceOrderError::InsufficientStock(_)),
            "insufficient stock for product \"Ryzen 7 7800X3D\" (id 2): requested 6, available 5",
        ),
        (
            "empty order",
            vec![],
            1,
            |e| matches!(e, PlaceOrderError::EmptyOrder(_)),
            "at least one line",
        ),
        (
            "zero quantity",
            vec![product(1, 1), product(2, 0)],
            1,
            |e| matches!(e, PlaceOrderError::BadQuantity(_)),
            "line 2: quantity",
        ),
        (
            "unknown service",
            vec![
                product(1, 1),
                NewOrderLine::Service {
                    service_id: ServiceId(9),
                    starts_at: Utc::now() + chrono::Duration::days(30),
                },
            ],
            1,
            |e| matches!(e, PlaceOrderError::UnknownService(_)),
            "service 9",
        ),
        (
            "double booking",
            vec![product(1, 1), consultation(10)],
            1,
            |e| matches!(e, PlaceOrderError::ConsultantBooked(_)),
            "consultant Dana Reyes is already booked",
        ),
    ];
    for (what, lines, customer, is_expected, message) in cases {
        let err = orders::place_order(&pool, CustomerId(customer), &lines)
            .await
            .expect_err(what);
        assert!(is_expected(&err), "{what}: wrong variant {err:?}");
        assert!(
            err.to_string().contains(message),
            "{what}: message {err} lacks {message:?}"
        );
        assert!(!err.is_retryable(), "{what}");
        assert_eq!(footprint(&pool).await, before, "{what} left a trace");
    }

    // Malformed requests only reachable through raw SQL.
    for (lines, expected) in [
        ("{\"product_id\": 1}", errno::MALFORMED_LINES),
        ("not json", errno::MALFORMED_LINES),
        (
            "[{\"product_id\": 1, \"service_id\": 1, \"quantity\": 1}]",
            errno::MALFORMED_LINES,
        ),
        ("[{\"service_id\": 1}]", errno::MALFORMED_LINES),
        (
            "[{\"service_id\": 1, \"starts_at\": \"someday\"}]",
            errno::MALFORMED_LINES,
        ),
        (
            "[{\"product_id\": 1, \"quantity\": -2}]",
            errno::BAD_QUANTITY,
        ),
        (
            "[{\"service_id\": 1, \"quantity\": 2, \"starts_at\": \"2031-01-01 09:00:00\"}]",
            errno::BAD_QUANTITY,
        ),
        ("[]", errno::EMPTY_ORDER),
        // JSON_TABLE would quietly turn these into 1 and 2: the procedure insists on integers.
        (
            "[{\"product_id\": \"1abc\", \"quantity\": 1}]",
            errno::MALFORMED_LINES,
        ),
        (
            "[{\"product_id\": 1, \"quantity\": 1.6}]",
            errno::BAD_QUANTITY,
        ),
    ] {
        let got = errno_of(
            sqlx::query("CALL sp_PlaceOrder(1, ?)")
                .bind(lines)
                .execute(&pool)
                .await,
        );
        assert_eq!(got, expected, "{lines}");
        assert_eq!(footprint(&pool).await, before, "{lines} left a trace");
    }
}

#[tokio::test]
async fn cancelling_restocks_frees_the_slot_and_happens_once() {
    let (_env, pool) = seeded("cancel").await;
    let placed = orders::place_order(&pool, CustomerId(1), &[product(2, 5), consultation(14)])
        .await
        .unwrap();
    assert_eq!(stock(&pool, 2).await, 0);
    orders::cancel_order(&pool, placed.order_id).await.unwrap();
    assert_eq!(stock(&pool, 2).await, 5, "stock back");
    assert_eq!(count(&pool, "Service_Bookings").await, 0, "slot freed");
    orders::place_order(&pool, CustomerId(2), &[consultation(14)])
        .await
        .expect("the freed slot can be booked again");

    let again = orders::cancel_order(&pool, placed.order_id)
        .await
        .expect_err("second cancel");
    assert!(
        matches!(again, CancelOrderError::NotCancellable(ref m) if m.contains("is cancelled")),
        "{again}"
    );
    assert_eq!(stock(&pool, 2).await, 5, "restocked exactly once");
    let unknown = orders::cancel_order(&pool, OrderId(9999))
        .await
        .expect_err("unknown order");
    assert!(
        matches!(unknown, CancelOrderError::UnknownOrder(_)),
        "{unknown}"
    );

    let shipped = orders::place_order(&pool, CustomerId(1), &[product(1, 1)])
        .await
        .unwrap();
    sqlx::query("UPDATE Orders SET status = 'paid' WHERE order_id = ?")
        .bind(shipped.order_id.get())
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE Orders SET status = 'shipped' WHERE order_id = ?")
        .bind(shipped.order_id.get())
        .execute(&pool)
        .await
        .unwrap();
    let late = orders::cancel_order(&pool, shipped.order_id)
        .await
        .expect_err("shipped orders stay");
    assert!(
        matches!(late, CancelOrderError::NotCancellable(_)),
        "{late}"
    );
    assert_eq!(stock(&pool, 1).await, 9);
}

#[tokio::test]
async fn twenty_concurrent_orders_for_five_units_sell_exactly_five() {
    let (_env, pool) = seeded("concurrency").await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let pool = pool.clone();
            // Half of them also take product 1, to cross lock orders between products.
            let lines = if i % 2 == 0 {
                vec![product(2, 1), product(1, 1)]
            } else {
                vec![product(1, 1), product(2, 1)]
            };
            tokio::spawn(
                async move { orders::place_order(&pool, CustomerId(1 + i % 2), &lines).await },
            )
        })
        .collect();
    let mut ok = 0;
    let mut sold_out = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(PlaceOrderError::InsufficientStock(_)) => sold_out += 1,
            Err(other) => panic!("unexpected error (a deadlock would show here): {other}"),
        }
    }
    assert_eq!((ok, sold_out), (5, 15));
    assert_eq!(stock(&pool, 2).await, 0);
    assert_eq!(stock(&pool, 1).await, 5);
    assert_eq!(count(&pool, "Orders").await, 5);
}

/// What the procedures must answer, predicted from a model of the seeded catalogue: products 1
/// and 2 active, product 3 inactive; checks in the procedure's order (empty, quantities line by
/// line, then products by ascending id: unknown/inactive, then stock over all lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Placed,
    Empty,
    BadQuantity,
    Unknown,
    NoStock,
}

fn predict(lines: &[(u64, u32)], stock: &[i64; 2]) -> Outcome {
    if lines.is_empty() {
        return Outcome::Empty;
    }
    if lines.iter().any(|&(_, q)| q == 0) {
        return Outcome::BadQuantity;
    }
    let mut ids: Vec<u64> = lines.iter().map(|&(p, _)| p).collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        if id == 3 {
            return Outcome::Unknown;
        }
        let wanted: i64 = lines
            .iter()
            .filter(|&&(p, _)| p == id)
            .map(|&(_, q)| i64::from(q))
            .sum();
        if stock[id as usize - 1] < wanted {
            return Outcome::NoStock;
        }
    }
    Outcome::Placed
}

/// An order the model placed: its id, its (product, quantity) lines, and whether it was cancelled.
type PlacedInModel = (OrderId, Vec<(u64, u32)>, bool);

fn outcome(result: &Result<orders::PlacedOrder, PlaceOrderError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Placed,
        Err(PlaceOrderError::EmptyOrder(_)) => Outcome::Empty,
        Err(PlaceOrderError::BadQuantity(_)) => Outcome::BadQuantity,
        Err(PlaceOrderError::UnknownProduct(_)) => Outcome::Unknown,
        Err(PlaceOrderError::InsufficientStock(_)) => Outcome::NoStock,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// Random sequences of orders and cancellations: every answer is the predicted one, stock =
/// initial − sold + restocked, and every order's total = the sum of its lines.
#[test]
fn random_order_and_cancel_sequences_keep_stock_and_totals_consistent() {
    use proptest::prelude::*;
    #[derive(Debug, Clone)]
    enum Op {
        Place(Vec<(u64, u32)>),
        Cancel(usize),
    }
    let op = prop_oneof![
        3 => proptest::collection::vec((1u64..=3, 0u32..=4), 0..4).prop_map(Op::Place),
        1 => (0usize..8).prop_map(Op::Cancel),
    ];
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_env, pool) = rt.block_on(seeded("proptest_orders"));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 12,
        ..ProptestConfig::default()
    });
    runner
        .run(&proptest::collection::vec(op, 1..12), |ops| {
            rt.block_on(async {
                sqlx::raw_sql("UPDATE Products SET stock = 6 WHERE product_id IN (1, 2)").execute(&pool).await.unwrap();
                let mut placed: Vec<PlacedInModel> = Vec::new();
                let mut expected = [6i64, 6];
                for op in ops {
                    match op {
                        Op::Place(lines) => {
                            let order: Vec<NewOrderLine> = lines.iter().map(|&(p, q)| product(p, q)).collect();
                            let predicted = predict(&lines, &expected);
                            let result = orders::place_order(&pool, CustomerId(1), &order).await;
                            assert_eq!(outcome(&result), predicted, "lines {lines:?}, stock {expected:?}");
                            if let Ok(o) = result {
                                for &(p, q) in &lines {
                                    expected[p as usize - 1] -= i64::from(q);
                                }
                                placed.push((o.order_id, lines, false));
                            }
                        }
                        Op::Cancel(i) => {
                            if let Some((id, lines, cancelled)) = placed.get_mut(i) {
                                let result = orders::cancel_order(&pool, *id).await;
                                if *cancelled {
                                    assert!(matches!(result, Err(CancelOrderError::NotCancellable(_))), "{result:?}");
                                } else {
                                    result.unwrap();
                                    *cancelled = true;
                                    for &(p, q) in lines.iter() {
                                        expected[p as usize - 1] += i64::from(q);
                                    }
                                }
                            }
                        }
                    }
                }
                assert_eq!(i64::from(stock(&pool, 1).await), expected[0]);
                assert_eq!(i64::from(stock(&pool, 2).await), expected[1]);
                assert_eq!(stock(&pool, 3).await, 100, "inactive product never sold");
                let mismatched: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM Orders o WHERE o.total <> \
                     (SELECT COALESCE(SUM(line_total), 0) FROM Order_Items i WHERE i.order_id = o.order_id)",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                assert_eq!(mismatched, 0, "order total = sum of lines");
            });
            Ok(())
        })
        .unwrap();
}

#[tokio::test]
async fn ten_concurrent_bookings_of_one_consultant_slot_give_exactly_one_booking() {
    let (_env, pool) = seeded("booking_race").await;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                orders::place_order(&pool, CustomerId(1 + i % 2), &[consultation(15)]).await
            })
        })
        .collect();
    let mut booked = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => booked += 1,
            Err(PlaceOrderError::ConsultantBooked(_)) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(booked, 1);
    assert_eq!(count(&pool, "Service_Bookings").await, 1);
    assert_eq!(
        count(&pool, "Orders").await,
        1,
        "refused orders leave nothing"
    );
}

#[tokio::test]
async fn the_procedures_refuse_to_run_inside_an_open_transaction_and_leave_it_intact() {
    let (_env, pool) = seeded("in_transaction").await;
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("UPDATE Customers SET phone = '+1 555 000 0000' WHERE customer_id = 2")
        .execute(&mut *tx)
        .await
        .unwrap();
    let got = errno_of(
        sqlx::query("CALL sp_PlaceOrder(1, '[{\"product_id\": 1, \"quantity\": 1}]')")
            .execute(&mut *tx)
            .await,
    );
    assert_eq!(got, errno::IN_TRANSACTION);
    let got = errno_of(
        sqlx::query("CALL sp_CancelOrder(1)")
            .execute(&mut *tx)
            .await,
    );
    assert_eq!(got, errno::IN_TRANSACTION);
    tx.commit().await.unwrap();
    let phone: Option<String> =
        sqlx::query_scalar("SELECT phone FROM Customers WHERE customer_id = 2")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        phone.as_deref(),
        Some("+1 555 000 0000"),
        "the caller's transaction was neither committed early nor rolled back"
    );
    assert_eq!(count(&pool, "Orders").await, 0);
}

/// Issue 16, findings 1 and 4: a caller's session switches do not reach inside the procedures,
/// and a request is bounded (lines, time, amounts) before any lock is taken.
#[tokio::test]
async fn session_switches_do_not_bypass_the_procedures_and_requests_are_bounded() {
    let (_env, pool) = seeded("orders_guards").await;
    let mut conn = pool.acquire().await.unwrap();
    // The attacker's session: no CHECKs, no foreign keys, the history loader's flag.
    sqlx::raw_sql(
        "SET SESSION check_constraint_checks = 0, foreign_key_checks = 0;
         SET @aethermart_loading_history = 1;",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    let queued_before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM order_sync_queue")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let row = sqlx::query("CALL sp_PlaceOrder(1, '[{\"product_id\": 1, \"quantity\": 3}]')")
        .fetch_one(&mut *conn)
        .await
        .expect("the order is placed");
    let order: u64 = sqlx::Row::get(&row, 0);
    assert_eq!(stock(&pool, 1).await, 7, "stock was taken all the same");
    let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM order_sync_queue")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert!(
        queued > queued_before,
        "the order was captured for the sync"
    );
    let after: (i64, i64, Option<i64>) = sqlx::query_as(
        "SELECT @@SESSION.check_constraint_checks, @@SESSION.foreign_key_checks, \
         CAST(@aethermart_loading_history AS SIGNED)",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(after, (0, 0, Some(1)), "the caller's session is restored");
    // Cancelling restocks exactly what the order took, also from such a session.
    sqlx::query("CALL sp_CancelOrder(?)")
        .bind(order)
        .execute(&mut *conn)
        .await
        .unwrap();
    assert_eq!(stock(&pool, 1).await, 10);
    // A refusal restores the session too.
    assert_eq!(
        errno_of(
            sqlx::query("CALL sp_PlaceOrder(999, '[{\"product_id\": 1, \"quantity\": 1}]')")
                .execute(&mut *conn)
                .await
        ),
        errno::UNKNOWN_CUSTOMER
    );
    let after: (i64, i64) =
        sqlx::query_as("SELECT @@SESSION.check_constraint_checks, @@SESSION.foreign_key_checks")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(after, (0, 0));
    drop(conn);

    let before = footprint(&pool).await;
    let lines = |n: usize| {
        let line = "{\"product_id\": 2, \"quantity\": 1}";
        format!("[{}]", vec![line; n].join(","))
    };
    sqlx::raw_sql("UPDATE Products SET price = 9999999999.99, stock = 100000 WHERE product_id = 2")
        .execute(&pool)
        .await
        .unwrap();
    let before_price = footprint(&pool).await;
    assert_eq!(before_price.0, before.0);
    for (lines, expected) in [
        (lines(101), errno::TOO_MANY_LINES),
        (lines(20_000), errno::TOO_MANY_LINES),
        (
            "[{\"service_id\": 1, \"starts_at\": \"1999-12-31 10:00:00\"}]".to_owned(),
            errno::SLOT_IN_THE_PAST,
        ),
        // The shape is checked before the time: a malformed line wins over a past slot.
        (
            "[{\"service_id\": 1, \"starts_at\": \"1999-12-31 10:00:00\"}, {\"product_id\": \"2x\"}]"
                .to_owned(),
            errno::MALFORMED_LINES,
        ),
        (
            "[{\"product_id\": 2, \"quantity\": 1000}]".to_owned(),
            errno::AMOUNT_TOO_LARGE,
        ),
        (
            format!("[{}]", vec!["{\"product_id\": 2, \"quantity\": 99}"; 100].join(",")),
            errno::AMOUNT_TOO_LARGE,
        ),
    ] {
        let got = errno_of(
            sqlx::query("CALL sp_PlaceOrder(1, ?)")
                .bind(&lines)
                .execute(&pool)
                .await,
        );
        assert_eq!(got, expected, "{}", &lines[..lines.len().min(120)]);
        assert_eq!(footprint(&pool).await, before_price, "nothing was written");
    }
    // A hundred lines is still an order, and a total of 999,999,999,999.00 still fits.
    let placed = sqlx::query("CALL sp_PlaceOrder(2, ?)")
        .bind(lines(100))
        .execute(&pool)
        .await;
    assert!(placed.is_ok(), "{placed:?}");
}

/// Issue 16, finding 1: loading history (no stock taken, nothing queued) is the privilege of a
/// loader account the administrator creates, not a variable a session sets; each line records
/// the stock it took, and cancelling puts back exactly that.
#[tokio::test]
async fn history_loading_is_an_accounts_privilege_and_cancelling_restocks_what_was_taken() {
    use aethermart_core::connect;
    use aethermart_core::security::{self, HistoryLoader};
    let (env, admin) = seeded("orders_history_loader").await;
    let queued_orders = || async {
        count(&admin, "order_sync_queue").await + count(&admin, "customer_sync_queue").await
    };
    let taken = |line: u64| {
        let admin = admin.clone();
        async move {
            sqlx::query_scalar::<_, Option<i32>>(
                "SELECT stock_taken FROM Order_Items WHERE order_item_id = ?",
            )
            .bind(line)
            .fetch_one(&admin)
            .await
            .unwrap()
        }
    };

    // The old switch, from an account that may write the tables directly: the line takes its
    // stock and is captured all the same, and a `stock_taken` in the INSERT is overruled.
    let mut conn = admin.acquire().await.unwrap();
    sqlx::raw_sql(
        "SET @aethermart_loading_history = 1;
         INSERT INTO Orders (order_id, customer_id, status, total) VALUES (500, 1, 'pending', 3199.98);
         INSERT INTO Order_Items (order_item_id, order_id, product_id, quantity, unit_price, stock_taken)
           VALUES (5000, 500, 1, 2, 1599.99, 0);",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    drop(conn);
    assert_eq!(
        stock(&admin, 1).await,
        8,
        "the variable no longer skips the stock"
    );
    assert_eq!(taken(5000).await, Some(2));
    let queued_live = queued_orders().await;
    assert!(queued_live > 0, "the variable no longer skips the capture");
    assert_eq!(
        errno_of(
            sqlx::query("UPDATE Order_Items SET stock_taken = 0 WHERE order_item_id = 5000")
                .execute(&admin)
                .await
        ),
        errno::LINE_IMMUTABLE,
        "what a line took cannot be rewritten"
    );

    // A loader account: its inserts are history.
    let loader = HistoryLoader::create(&env.config.mariadb, 2).await.unwrap();
    assert!(loader.user().starts_with(security::HISTORY_LOADER_PREFIX));
    let mut as_loader = connect::node_connection(loader.login(), true)
        .await
        .unwrap();
    sqlx::raw_sql(
        "INSERT INTO Orders (order_id, customer_id, status, total) VALUES (501, 2, 'paid', 4799.97);
         INSERT INTO Order_Items (order_item_id, order_id, product_id, quantity, unit_price)
           VALUES (5010, 501, 1, 3, 1599.99);",
    )
    .execute(&mut as_loader)
    .await
    .unwrap();
    assert_eq!(stock(&admin, 1).await, 8, "history takes no stock");
    assert_eq!(taken(5010).await, Some(0));
    assert_eq!(queued_orders().await, queued_live, "history is not queued");
    // ... and that is all a loader may do.
    for sql in [
        "UPDATE Products SET stock = 1000 WHERE product_id = 1",
        "DELETE FROM Customers WHERE customer_id = 2",
        "INSERT INTO order_sync_queue (entity_key, operation, source_table) VALUES (1, 'delete', 'x')",
    ] {
        assert_eq!(
            errno_of(sqlx::query(sql).execute(&mut as_loader).await),
            1142,
            "{sql}"
        );
    }
    assert_eq!(
        errno_of(
            sqlx::query("CALL sp_PlaceOrder(1, '[{\"product_id\": 1, \"quantity\": 1}]')")
                .execute(&mut as_loader)
                .await
        ),
        1370,
        "a loader cannot place live orders"
    );
    drop(as_loader);

    // Cancelling restocks exactly what each order took: nothing for history, 2 for the live one.
    for (order, expected) in [(501_u64, 8), (500, 10)] {
        orders::cancel_order(&admin, OrderId(order)).await.unwrap();
        assert_eq!(stock(&admin, 1).await, expected, "after cancelling {order}");
    }

    // The loader is gone when the load ends, and nobody else can make one.
    loader.drop_account().await.unwrap();
    assert!(
        connect::node_connection(loader.login(), true)
            .await
            .is_err(),
        "the dropped loader cannot log in"
    );
    security::apply(&env.config.mariadb, &crate::support::passwords())
        .await
        .unwrap();
    let passwords = crate::support::passwords();
    let maria = env
        .config
        .mariadb
        .with_login("maria", passwords.maria().clone());
    let mut as_maria = connect::node_connection(&maria, true).await.unwrap();
    assert_eq!(
        errno_of(
            sqlx::query("CREATE USER 'aethermart_loader_mine'@'%' IDENTIFIED BY 'x'")
                .execute(&mut as_maria)
                .await
        ),
        1227,
        "only the administrator creates loaders"
    );
}

/// Issue 16, finding 1: the application's role writes only through the procedures, so no
/// session switch takes it around a rule.
#[tokio::test]
async fn the_application_role_places_orders_through_the_procedures_only() {
    use aethermart_core::connect;
    use aethermart_core::security;
    let (env, admin) = seeded("orders_app_role").await;
    security::apply(&env.config.mariadb, &crate::support::passwords())
        .await
        .unwrap();
    // An application account, as an operator would create it: the role and nothing else.
    let user = format!(
        "app_{}",
        &env.config.mariadb.database()[..20.min(env.config.mariadb.database().len())]
    );
    sqlx::raw_sql(&format!(
        "CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY 'App-S3cret';
         GRANT {role} TO '{user}'@'%'; SET DEFAULT ROLE {role} FOR '{user}'@'%';",
        role = security::APP_ROLE
    ))
    .execute(&admin)
    .await
    .unwrap();
    let app_config = env
        .config
        .mariadb
        .with_login(&user, aethermart_core::config::Secret::new("App-S3cret"));
    let mut app = connect::node_connection(&app_config, true).await.unwrap();
    sqlx::raw_sql(
        "SET SESSION check_constraint_checks = 0, foreign_key_checks = 0;
         SET @aethermart_loading_history = 1;",
    )
    .execute(&mut app)
    .await
    .unwrap();
    let before = footprint(&admin).await;
    for sql in [
        "INSERT INTO Orders (customer_id, status) VALUES (1, 'pending')",
        "UPDATE Products SET stock = stock + 100 WHERE product_id = 1",
        "DELETE FROM Customers WHERE customer_id = 2",
        "UPDATE Order_Items SET quantity = 1",
        "INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (1, 'delete', 'x')",
    ] {
        assert_eq!(
            errno_of(sqlx::query(sql).execute(&mut app).await),
            1142,
            "{sql}"
        );
    }
    assert_eq!(footprint(&admin).await, before, "nothing changed");
    let row = sqlx::query("CALL sp_PlaceOrder(1, '[{\"product_id\": 1, \"quantity\": 2}]')")
        .fetch_one(&mut app)
        .await
        .expect("the application places orders");
    let order: u64 = sqlx::Row::get(&row, 0);
    assert_eq!(
        stock(&admin, 1).await,
        8,
        "stock taken despite the loader flag"
    );
    sqlx::query("CALL sp_CancelOrder(?)")
        .bind(order)
        .execute(&mut app)
        .await
        .expect("and cancels them");
    assert_eq!(stock(&admin, 1).await, 10);
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM Products ORDER BY product_id")
        .fetch_all(&mut app)
        .await
        .expect("it reads the catalogue");
    assert_eq!(names.len(), 3);
    sqlx::raw_sql(&format!("DROP USER '{user}'@'%'"))
        .execute(&admin)
        .await
        .unwrap();
}
