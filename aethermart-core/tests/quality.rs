//! Quality checks against the real servers: clean data passes; each check catches the data
//! broken on purpose for it, and every result is logged.

use crate::support::seeded;
use aethermart_core::migrate::{BulkMigrator, MigrateOptions, Migrator};
use aethermart_core::progress::NoProgress;
use aethermart_core::quality::{self, CheckResult, QualityOptions, QualityReport};
use mongodb::bson::{Document, doc};
use std::sync::Arc;
use std::time::Duration;

fn check<'a>(report: &'a QualityReport, name: &str) -> &'a CheckResult {
    report
        .checks
        .iter()
        .find(|c| c.check == name)
        .unwrap_or_else(|| panic!("check {name} ran"))
}

#[tokio::test]
async fn each_check_catches_the_data_broken_for_it() {
    let (env, pool) = seeded("quality_checks").await;
    let order: (u64,) =
        sqlx::query_as("CALL sp_PlaceOrder(1, '[{\"product_id\": 1, \"quantity\": 2}]')")
            .fetch_one(&pool)
            .await
            .unwrap();
    let mongo = env.mongo().await;
    // Reviews live in MongoDB only; products carry their rating summary, so this one goes in
    // before the migration computes it.
    let reviews = mongo.collection::<Document>("reviews");
    reviews
        .insert_one(doc! { "_id": 1_i64, "product_id": 1_i64, "customer_id": 1_i64, "rating": 5, "title": "Great", "text": "Fast", "media": [], "created_at": mongodb::bson::DateTime::now() })
        .await
        .unwrap();
    let migrator = BulkMigrator::new(env.config.mariadb.clone(), mongo.clone());
    migrator
        .migrate(MigrateOptions::default(), Arc::new(NoProgress))
        .await
        .unwrap();
    crate::support::index_search(&mongo).await;
    let options = QualityOptions {
        stale_after: Duration::from_secs(60),
    };

    let clean = quality::run_checks(&pool, &mongo, &migrator, options)
        .await
        .unwrap();
    assert!(clean.ok(), "{clean:?}");
    assert!(clean.checks.iter().all(CheckResult::passed), "{clean:?}");

    // A change the worker has not applied yet is sync lag, not a reconciliation failure.
    sqlx::query("UPDATE Customers SET phone = '+1 555 0199' WHERE customer_id = 1")
        .execute(&pool)
        .await
        .unwrap();
    let lagging = quality::run_checks(&pool, &mongo, &migrator, options)
        .await
        .unwrap();
    assert!(lagging.ok(), "{lagging:?}");

    // Break each one on purpose.
    sqlx::raw_sql(&format!(
        "SET SESSION check_constraint_checks = 0;
         UPDATE Products SET stock = -3 WHERE product_id = 2;
         SET SESSION check_constraint_checks = 1;
         UPDATE Orders SET total = total + 1 WHERE order_id = {order};
         INSERT INTO product_sync_queue (entity_key, operation, source_table, changed_at)
           VALUES (3, 'update', 'Products', NOW(6) - INTERVAL 1 HOUR);
         INSERT INTO sync_dead_letters (queue, entity_key, operation, source_table, changed_at, attempts, error)
           VALUES ('order_sync_queue', 77, 'insert', 'Orders', NOW(6), 5, 'refused');
         SET SESSION foreign_key_checks = 0;
         INSERT INTO Customer_Addresses (address_id, customer_id, kind, line1, city, postal_code, country, is_default)
           VALUES (900, 424242, 'billing', '1 Nowhere', 'Madrid', '28001', 'ES', FALSE);
         SET SESSION foreign_key_checks = 1;",
        order = order.0
    ))
    .execute(&pool)
    .await
    .unwrap();
    reviews
        .insert_one(doc! { "_id": 2_i64, "product_id": 999_i64, "customer_id": 2_i64, "rating": 1, "title": "Gone", "text": "", "media": [], "created_at": mongodb::bson::DateTime::now() })
        .await
        .unwrap();
    mongo
        .collection::<Document>("services")
        .delete_one(doc! { "_id": 1_i64 })
        .await
        .unwrap();
    // A product renamed behind the sync: its search vector no longer matches its text.
    mongo
        .collection::<Document>("products")
        .update_one(
            doc! { "_id": 1_i64 },
            doc! { "$set": { "name": "Renamed behind the sync" } },
        )
        .await
        .unwrap();

    let broken = quality::run_checks(&pool, &mongo, &migrator, options)
        .await
        .unwrap();
    assert!(!broken.ok());
    let order_key = order.0.to_string();
    for (name, key) in [
        ("negative_stock", "2"),
        ("order_total_mismatch", order_key.as_str()),
        ("orphan_reviews", "2"),
        ("stale_sync", "product_sync_queue:3"),
        ("sync_dead_letters", "order_sync_queue:77"),
        ("orphan_rows", "Customer_Addresses:900"),
        ("reconciliation", "services:1"),
        ("stale_search_vectors", "product:1"),
        ("stale_search_vectors", "service:1"),
    ] {
        let c = check(&broken, name);
        assert!(c.failing >= 1, "{name} must fail: {c:?}");
        assert!(
            c.sample_keys.iter().any(|k| k == key),
            "{name} names {key}: {c:?}"
        );
    }
    assert_eq!(check(&broken, "orphan_reviews").failing, 1);

    // An address MariaDB's CHECK accepts but the model refuses (empty domain label).
    sqlx::query("UPDATE Customers SET email = 'ben@.example.com' WHERE customer_id = 2")
        .execute(&pool)
        .await
        .unwrap();
    let emails = quality::run_checks(&pool, &mongo, &migrator, options)
        .await
        .unwrap();
    let c = check(&emails, "invalid_emails");
    assert_eq!(
        (c.failing, c.sample_keys.as_slice()),
        (1, ["2".to_owned()].as_slice())
    );
    let r = check(&emails, "reconciliation");
    assert!(
        r.failing >= 1
            && r.sample_keys[0].contains("customers 2")
            && r.sample_keys[0].contains("customer.email"),
        "the comparison names the row it could not read, and the rule: {r:?}"
    );
    assert!(
        !r.sample_keys[0].contains("ben@"),
        "but not the value (data_quality_logs keeps it): {r:?}"
    );

    // Every result of both runs is logged.
    let logged: Vec<(String, u64, bool)> = sqlx::query_as(
        "SELECT check_name, failing_count, passed FROM data_quality_logs WHERE run_id = ? ORDER BY log_id",
    )
    .bind(&broken.run_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(logged.len(), broken.checks.len());
    for (name, failing, passed) in &logged {
        let broken_on_purpose = name != "invalid_emails";
        assert_eq!(
            (*failing > 0, !passed),
            (broken_on_purpose, broken_on_purpose),
            "{logged:?}"
        );
    }
    let runs: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT run_id) FROM data_quality_logs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(runs, 4);
}
