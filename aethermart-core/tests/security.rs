//! Roles against the real server: the analyst reads masked data only, the data engineer runs
//! the migration and the sync worker with nothing more than the engineer role.

use crate::support::{errno_of, passwords, seeded};
use aethermart_core::cluster;
use aethermart_core::config::Config;
use aethermart_core::connect::PoolSize;
use aethermart_core::migrate::{BulkMigrator, MigrateOptions, Migrator};
use aethermart_core::progress::NoProgress;
use aethermart_core::security::{self, ANALYST_VIEWS};
use aethermart_core::sync::{MongoSink, QueueSource, SyncOptions, Syncer};
use sqlx::{MySqlPool, Row};
use std::sync::Arc;

/// Every value of every row of `view`, as text (read as the analyst).
async fn view_text(pool: &MySqlPool, view: &str) -> Vec<String> {
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
    )
    .bind(view)
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(
        !columns.is_empty(),
        "the analyst sees the columns of {view}"
    );
    let list: Vec<String> = columns.iter().map(|c| format!("`{c}`")).collect();
    sqlx::query(&format!(
        "SELECT CONCAT_WS('|', {}) FROM `{view}`",
        list.join(", ")
    ))
    .fetch_all(pool)
    .await
    .unwrap_or_else(|e| panic!("the analyst reads {view}: {e}"))
    .iter()
    .map(|r| {
        r.try_get::<Option<String>, _>(0)
            .unwrap()
            .unwrap_or_default()
    })
    .collect()
}

#[tokio::test]
async fn the_analyst_reads_masked_views_only_and_the_engineer_runs_migration_and_sync() {
    let (env, admin) = seeded("security_roles").await;
    sqlx::raw_sql(
        "INSERT INTO Customer_Addresses (customer_id, kind, line1, city, postal_code, country, is_default)
           VALUES (1, 'shipping', '12 Calle Mayor', 'Madrid', '28001', 'ES', TRUE);
         CALL sp_PlaceOrder(1, '[{\"product_id\": 1, \"quantity\": 1}]');",
    )
    .execute(&admin)
    .await
    .unwrap();
    let passwords = passwords();
    security::apply(&env.config.mariadb, &passwords)
        .await
        .unwrap();
    security::apply(&env.config.mariadb, &passwords)
        .await
        .expect("applying twice changes nothing and succeeds");

    // sarah: the masked view works.
    let sarah_config = env
        .config
        .mariadb
        .with_login("sarah", passwords.sarah().clone());
    let sarah = cluster::writable_pool(&sarah_config, PoolSize { max: 2 })
        .await
        .expect("sarah logs in");
    let (initials, email, phone, city, country): (String, String, Option<String>, Option<String>, Option<String>) =
        sqlx::query_as(
            "SELECT initials, email_masked, phone_last4, city, country FROM v_customers_masked WHERE customer_id = 1",
        )
        .fetch_one(&sarah)
        .await
        .unwrap();
    assert_eq!(
        (
            initials.as_str(),
            email.as_str(),
            phone.as_deref(),
            city.as_deref(),
            country.as_deref()
        ),
        (
            "A.L.",
            "a***@example.com",
            Some("***0001"),
            Some("Madrid"),
            Some("ES")
        )
    );
    // ... and the tables holding personal data are closed to her (1142: command denied).
    for sql in [
        "SELECT email FROM Customers",
        "SELECT line1 FROM Customer_Addresses",
        "SELECT c.email FROM v_customers_masked m JOIN Customers c USING (customer_id)",
        "SELECT * FROM Orders",
    ] {
        assert_eq!(
            errno_of(sqlx::query(sql).fetch_all(&sarah).await),
            1142,
            "{sql}"
        );
    }
    // No view she can read shows a raw name, e-mail, phone or street.
    for view in ANALYST_VIEWS {
        for row in view_text(&sarah, view).await {
            for raw in [
                "ana@example.com",
                "López",
                "Okafor",
                "600 000 001",
                "Calle Mayor",
            ] {
                assert!(!row.contains(raw), "{view} reveals {raw:?}: {row}");
            }
        }
    }
    assert!(
        view_text(&sarah, "v_QuarterlySales").await.len() == 1,
        "aggregates are readable"
    );

    // The migration and the worker run with the worker role alone, on the service account.
    let worker_config = env
        .config
        .mariadb
        .with_login(security::WORKER_USER, passwords.worker().clone());
    let mongo = env.mongo().await;
    let migrator = BulkMigrator::new(worker_config.clone(), mongo.clone());
    let report = migrator
        .migrate(MigrateOptions::default(), Arc::new(NoProgress))
        .await
        .expect("the worker account migrates");
    assert!(report.clean());
    sqlx::query("UPDATE Customers SET phone = '+34 600 000 009' WHERE customer_id = 1")
        .execute(&admin)
        .await
        .unwrap();
    let options = SyncOptions::default();
    let as_worker = Config {
        mariadb: worker_config.clone(),
        mongodb: env.config.mongodb.clone(),
    };
    let (source, _) = QueueSource::connect(&as_worker, &options, 4)
        .await
        .expect("the worker logs in");
    let worker = cluster::writable_pool(&worker_config, PoolSize { max: 2 })
        .await
        .expect("the worker logs in");
    let report = Syncer::new(Arc::new(source), Arc::new(MongoSink::new(mongo)), options)
        .drain()
        .await
        .expect("the worker drains the queues");
    assert!(report.changes >= 1, "{report:?}");
    let verified = migrator.verify().await.unwrap();
    assert!(verified.equal(), "{verified:?}");
    // Least privilege: it cannot change the business data or the schema.
    for sql in [
        "DELETE FROM Customers WHERE customer_id = 2",
        "UPDATE Products SET price = 0",
        "DROP TABLE Orders",
    ] {
        assert_eq!(
            errno_of(sqlx::query(sql).execute(&worker).await),
            1142,
            "{sql}"
        );
    }
}
