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
    // Two customers are fewer than k = 5: the masked view shows neither of them, and it has no
    // customer key at all (1054: unknown column).
    let shown: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM v_customers_masked")
        .fetch_one(&sarah)
        .await
        .unwrap();
    assert_eq!(shown, 0, "no group of fewer than five customers is shown");
    assert_eq!(
        errno_of(
            sqlx::query("SELECT customer_id FROM v_customers_masked")
                .fetch_all(&sarah)
                .await
        ),
        1054
    );
    // ... and the tables holding personal data are closed to her (1142: command denied).
    for sql in [
        "SELECT email FROM Customers",
        "SELECT line1 FROM Customer_Addresses",
        "SELECT c.email FROM v_customers_masked m JOIN Customers c USING (customer_id)",
        "SELECT * FROM Orders",
        "SELECT * FROM analyst_pseudonym_key",
        "SELECT * FROM v_SalesLines",
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

/// Issue 16, finding 2: on generated data the analyst's customers are k-anonymous (k = 5) over
/// every combination of the view's columns, at least 90 % of customers stay in the view, no
/// column holds a fragment of a direct identifier, and the pseudonym cannot be recomputed
/// from an id without the key.
#[tokio::test]
async fn the_analysts_customers_are_five_anonymous_at_scale_0_05_and_1() {
    for (test, scale) in [("security_k_005", 0.05), ("security_k_1", 1.0)] {
        let (env, admin) = crate::support::generated(test, 5, scale).await;
        security::apply(&env.config.mariadb, &passwords())
            .await
            .unwrap();
        let sarah_config = env
            .config
            .mariadb
            .with_login("sarah", passwords().sarah().clone());
        let sarah = cluster::writable_pool(&sarah_config, PoolSize { max: 2 })
            .await
            .unwrap();
        let (k, groups): (i64, i64) = sqlx::query_as(
            "SELECT MIN(n), COUNT(*) FROM (SELECT COUNT(*) AS n FROM v_customers_masked \
             GROUP BY signup_period, city, country) g",
        )
        .fetch_one(&sarah)
        .await
        .unwrap();
        let shown: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM v_customers_masked")
            .fetch_one(&sarah)
            .await
            .unwrap();
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM Customers")
            .fetch_one(&admin)
            .await
            .unwrap();
        let kept = shown as f64 / total as f64;
        eprintln!(
            "scale {scale}: k = {k} over {groups} groups, {shown} of {total} customers kept ({:.1} %)",
            100.0 * kept
        );
        assert!(
            k >= 5,
            "scale {scale}: a combination covers only {k} customers"
        );
        assert!(
            kept >= 0.9,
            "scale {scale}: only {shown} of {total} customers kept"
        );
        // The pseudonyms are distinct, hex only, and none is a plain hash of an id (joined on
        // equality: a materialised set of plain hashes, not a cross product).
        let (distinct, hex, plain): (i64, i64, i64) = sqlx::query_as(
            "SELECT COUNT(DISTINCT m.pseudonym), CAST(SUM(m.pseudonym REGEXP '^[0-9a-f]{20}$') AS SIGNED), \
             (SELECT COUNT(*) FROM v_customers_masked v JOIN \
               (SELECT LEFT(SHA2(customer_id, 256), 20) AS h FROM Customers \
                UNION ALL SELECT LEFT(MD5(customer_id), 20) FROM Customers) p ON p.h = v.pseudonym) \
             FROM v_customers_masked m",
        )
        .fetch_one(&admin)
        .await
        .unwrap();
        assert_eq!((distinct, hex, plain), (shown, shown, 0));
        // No column holds a name, an e-mail or a phone fragment, nor a purchase time: the
        // columns are these, a period is a month, a quarter or a year, and a city is shown only
        // for a group of at least five (k above).
        let columns: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'v_customers_masked' ORDER BY ORDINAL_POSITION",
        )
        .fetch_all(&sarah)
        .await
        .unwrap();
        assert_eq!(columns, ["pseudonym", "signup_period", "city", "country"]);
        let odd_periods: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM v_customers_masked \
             WHERE signup_period NOT REGEXP '^[0-9]{4}(-[0-9]{2}|-Q[1-4])?$'",
        )
        .fetch_one(&sarah)
        .await
        .unwrap();
        assert_eq!(odd_periods, 0);
    }
}
