//! Attacks on the sync's integrity, tried as the accounts `security apply` creates: an account
//! without the worker's privileges can neither pause the sync nor freeze a key (finding 1), the
//! engineer cannot rewrite the pipeline's state and operates it only through procedures that
//! record her (finding 2), and `--once` does not wait for a change parked far ahead (finding 3).

use crate::support::{errno_of, passwords, seeded};
use aethermart_core::config::{Config, MariaDbConfig};
use aethermart_core::connect::{self, PoolSize};
use aethermart_core::migrate::{BulkMigrator, MigrateOptions, Migrator};
use aethermart_core::progress::NoProgress;
use aethermart_core::security::{self, WORKER_USER};
use aethermart_core::sync::{MongoSink, QueueSource, SyncOptions, SyncReport, Syncer};
use mongodb::bson::{Document, doc};
use sqlx::{MySqlConnection, MySqlPool};
use std::sync::Arc;
use std::time::Duration;

/// The platform with roles applied, migrated by the worker account; returns the environment,
/// the admin pool and the worker's configuration.
async fn secured(test: &str) -> (crate::support::TestEnv, MySqlPool, Config) {
    let (env, admin) = seeded(test).await;
    security::apply(&env.config.mariadb, &passwords())
        .await
        .expect("security applies");
    let worker = Config {
        mariadb: login(&env.config.mariadb, WORKER_USER),
        mongodb: env.config.mongodb.clone(),
    };
    BulkMigrator::new(worker.mariadb.clone(), env.mongo().await)
        .migrate(MigrateOptions::default(), Arc::new(NoProgress))
        .await
        .expect("the worker account migrates");
    (env, admin, worker)
}

fn login(mariadb: &MariaDbConfig, user: &str) -> MariaDbConfig {
    let p = passwords();
    let password = match user {
        "sarah" => p.sarah(),
        "maria" => p.maria(),
        "alex" => p.alex(),
        _ => p.worker(),
    };
    mariadb.with_login(user, password.clone())
}

async fn connection(mariadb: &MariaDbConfig, user: &str) -> MySqlConnection {
    connect::node_connection(&login(mariadb, user), true)
        .await
        .unwrap_or_else(|e| panic!("{user} logs in: {e}"))
}

/// Drains the queues as the worker account, failing the test after `limit`.
async fn drain_as_worker(worker: &Config, options: SyncOptions, limit: Duration) -> SyncReport {
    let (source, mongo) = QueueSource::connect(worker, &options, 4)
        .await
        .expect("the worker connects");
    let syncer = Syncer::new(Arc::new(source), Arc::new(MongoSink::new(mongo)), options);
    tokio::time::timeout(limit, syncer.drain())
        .await
        .unwrap_or_else(|_| panic!("the worker did not finish within {limit:?}"))
        .expect("the worker drains")
}

fn fast() -> SyncOptions {
    SyncOptions {
        lanes: 1,
        poll_interval: Duration::from_millis(2),
        max_idle_wait: Duration::from_millis(20),
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        ..SyncOptions::default()
    }
}

/// The user-lock names the sync used before schema version 9 (derivable by anyone from the
/// database name): `amt:<first 6 bytes of SHA-256(database) in hex>:<what>`.
fn former_lock(database: &str, what: &str) -> String {
    use sha2::{Digest, Sha256};
    let hex: String = Sha256::digest(database.as_bytes())[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("amt:{hex}:{what}")
}

/// What the former user locks guarded: the migration handoff and a few keys.
const FORMER_LOCKS: [&str; 4] = ["migration", "customers:1", "customers:2", "orders:1"];

/// Every table and view `conn`'s account can see in its database.
async fn visible_objects(conn: &mut MySqlConnection) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap()
}

/// Holds everything `user` can take: the former user locks, and in an open REPEATABLE READ
/// transaction a `FOR UPDATE` read of every table and view it can see (next-key locks
/// included). Returns the connection (dropping it ends the attack) and what it read.
async fn hold_everything(mariadb: &MariaDbConfig, user: &str) -> (MySqlConnection, Vec<String>) {
    let mut conn = connection(mariadb, user).await;
    let database = mariadb.database();
    for what in FORMER_LOCKS {
        // Whoever comes first holds it (user locks are exclusive).
        sqlx::query("DO GET_LOCK(?, 0)")
            .bind(former_lock(database, what))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    sqlx::raw_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; START TRANSACTION")
        .execute(&mut conn)
        .await
        .unwrap();
    let mut locked = Vec::new();
    for object in visible_objects(&mut conn).await {
        let read = sqlx::query(&format!("SELECT * FROM `{object}` FOR UPDATE"))
            .fetch_all(&mut conn)
            .await;
        if read.is_ok() {
            locked.push(object);
        }
    }
    for table in [
        "sync_key_slots",
        "sync_handoff",
        "customer_sync_queue",
        "data_lineage_tracker",
        "sync_dead_letters",
    ] {
        assert_eq!(
            errno_of(
                sqlx::query(&format!("SELECT * FROM {table} LIMIT 1 FOR UPDATE"))
                    .fetch_all(&mut conn)
                    .await
            ),
            1142,
            "{user} reads {table}"
        );
    }
    // Table locks and a global read lock need privileges neither account has.
    let mut other = connection(mariadb, user).await;
    for object in &locked {
        let denied = errno_of(
            sqlx::raw_sql(&format!("LOCK TABLES `{object}` READ"))
                .execute(&mut other)
                .await,
        );
        assert!(
            [1044, 1142].contains(&denied),
            "{user} locks {object}: {denied}"
        );
    }
    assert_eq!(
        errno_of(
            sqlx::raw_sql("FLUSH TABLES WITH READ LOCK")
                .execute(&mut other)
                .await
        ),
        1227,
        "{user} takes the global read lock"
    );
    (conn, locked)
}

#[tokio::test]
async fn no_account_without_the_workers_privileges_can_pause_the_sync_or_freeze_a_key() {
    let (env, admin, worker) = secured("integrity_stall").await;
    // The application changes customers 1 and 2 and places an order.
    sqlx::raw_sql(
        "UPDATE Customers SET phone = '+34 600 111 111' WHERE customer_id = 1;
         UPDATE Customers SET phone = '+44 7700 900222' WHERE customer_id = 2;
         CALL sp_PlaceOrder(1, '[{\"product_id\": 1, \"quantity\": 1}]');",
    )
    .execute(&admin)
    .await
    .unwrap();
    // The analyst and the engineer hold every lock they can take, in open transactions.
    let (sarah, sarah_locked) = hold_everything(&env.config.mariadb, "sarah").await;
    let (maria, maria_locked) = hold_everything(&env.config.mariadb, "maria").await;
    assert!(
        sarah_locked.iter().any(|v| v == "v_customers_masked"),
        "the attack really read through the views: {sarah_locked:?}"
    );
    assert!(
        maria_locked.iter().any(|v| v == "v_sync_queue_status"),
        "{maria_locked:?}"
    );
    for what in FORMER_LOCKS {
        let held: Option<i64> = sqlx::query_scalar("SELECT IS_USED_LOCK(?) IS NOT NULL")
            .bind(former_lock(env.config.mariadb.database(), what))
            .fetch_one(&admin)
            .await
            .unwrap();
        assert_eq!(
            held,
            Some(1),
            "the former lock {what} is held by an attacker"
        );
    }
    // The worker applies every change regardless.
    let report = drain_as_worker(&worker, fast(), Duration::from_secs(30)).await;
    assert!(report.changes >= 3, "{report:?}");
    let profiles = env
        .mongo()
        .await
        .collection::<Document>("customer_profiles");
    for (id, phone) in [(1_i64, "+34 600 111 111"), (2, "+44 7700 900222")] {
        let doc = profiles
            .find_one(doc! { "_id": id })
            .await
            .unwrap()
            .expect("profile");
        assert_eq!(doc.get_str("phone").unwrap(), phone, "customer {id}");
    }
    // A migration is not held up by them either (the handoff row is the worker's).
    let migrated = tokio::time::timeout(
        Duration::from_secs(30),
        BulkMigrator::new(worker.mariadb.clone(), env.mongo().await)
            .migrate(MigrateOptions::default(), Arc::new(NoProgress)),
    )
    .await
    .expect("the migration is not stalled")
    .expect("the migration runs");
    assert!(migrated.clean());
    // Their locking reads (through materialised views only) block no application writer
    // either: updates, an order, a new customer, all within 5 s of lock wait.
    let mut writer = connection(&env.config.mariadb, "alex").await;
    sqlx::raw_sql(
        "SET SESSION innodb_lock_wait_timeout = 5;
         UPDATE Customers SET phone = '+34 600 222 222' WHERE customer_id = 1;
         UPDATE Products SET stock = stock + 1 WHERE product_id = 1;
         CALL sp_PlaceOrder(2, '[{\"product_id\": 1, \"quantity\": 1}]');
         INSERT INTO Customers (first_name, last_name, email) VALUES ('Cy', 'New', 'cy@example.com');",
    )
    .execute(&mut writer)
    .await
    .expect("writers are not blocked by the analyst's or the engineer's reads");
    drop((sarah, maria));
    // The slots spread consecutive keys: 65,536 consecutive keys take every slot once, and a
    // key beyond any id still has a slot (no overflow can fail a claim).
    let distinct: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(DISTINCT {}) FROM seq_0_to_65535",
        aethermart_core::handoff::key_slot_sql(3, "seq")
    ))
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(distinct, 65_536);
    let huge: u64 = sqlx::query_scalar(&format!(
        "SELECT {} FROM (SELECT 18446744073709551615 AS k) t",
        aethermart_core::handoff::key_slot_sql(0, "k")
    ))
    .fetch_one(&admin)
    .await
    .unwrap();
    assert!((0..65_536).contains(&huge));
}

#[tokio::test]
async fn the_engineer_cannot_rewrite_pipeline_state_and_operates_through_recorded_procedures() {
    let (env, admin, worker) = secured("integrity_engineer").await;
    // A poison change (an order without lines: MongoDB's validator refuses it) and a good one.
    sqlx::raw_sql(
        "INSERT INTO Orders (order_id, customer_id, status, total) VALUES (900001, 2, 'pending', 0);
         UPDATE Customers SET phone = '+34 600 333 333' WHERE customer_id = 1;",
    )
    .execute(&admin)
    .await
    .unwrap();
    let state = |pool: MySqlPool| async move {
        sqlx::query_scalar::<_, String>(
            "SELECT CONCAT_WS('|',
               (SELECT GROUP_CONCAT(queue_id, ':', entity_key, ':', attempts ORDER BY queue_id) FROM customer_sync_queue),
               (SELECT GROUP_CONCAT(queue_id, ':', entity_key ORDER BY queue_id) FROM order_sync_queue),
               (SELECT GROUP_CONCAT(entity, ':', high_water, ':', finished ORDER BY entity) FROM migration_checkpoints),
               (SELECT GROUP_CONCAT(lineage_id, ':', status, ':', rows_written ORDER BY lineage_id) FROM data_lineage_tracker),
               (SELECT COUNT(*) FROM sync_dead_letters), (SELECT COUNT(*) FROM sync_home))",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let before = state(admin.clone()).await;
    let mut maria = connection(&env.config.mariadb, "maria").await;
    for sql in [
        "UPDATE customer_sync_queue SET entity_key = 2",
        "DELETE FROM order_sync_queue",
        "INSERT INTO customer_sync_queue (entity_key, operation, source_table) VALUES (2, 'delete', 'x')",
        "UPDATE migration_checkpoints SET high_water = 18446744073709551615",
        "UPDATE data_lineage_tracker SET status = 'failed'",
        "DELETE FROM data_lineage_tracker",
        "INSERT INTO sync_dead_letters (queue, entity_key, operation, source_table, changed_at, attempts, error) VALUES ('customer_sync_queue', 1, 'update', 'x', NOW(), 1, 'x')",
        "INSERT INTO sync_home (id, server) VALUES (1, 'elsewhere:3306')",
        "DELETE FROM sync_handoff",
        "UPDATE sync_key_slots SET slot = slot",
        "INSERT INTO sync_operator_log (operator, action, queue, entity_keys, detail) VALUES ('x', 'x', 'x', 0, 'x')",
    ] {
        assert_eq!(
            errno_of(sqlx::query(sql).execute(&mut maria).await),
            1142,
            "{sql}"
        );
    }
    assert_eq!(state(admin.clone()).await, before, "nothing changed");

    // She inspects through her views and the lineage procedure.
    let maria_pool = connect::node_pool(&login(&env.config.mariadb, "maria"), PoolSize { max: 2 })
        .await
        .unwrap();
    let queues = aethermart_core::sync::queue_status(&maria_pool)
        .await
        .unwrap();
    let queued: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM customer_sync_queue) + (SELECT COUNT(*) FROM order_sync_queue)",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert!(queued >= 2);
    assert_eq!(
        queues.iter().map(|q| q.pending).sum::<u64>(),
        queued as u64,
        "{queues:?}"
    );
    let lineage = aethermart_core::lineage::read(&maria_pool, None, 5)
        .await
        .expect("she reads the lineage through sp_ReadLineage");
    assert!(lineage.iter().any(|r| r.job == "migrate"), "{lineage:?}");

    // The worker dead-letters the poison change; she re-queues it through the procedure.
    let options = SyncOptions {
        max_attempts: 1,
        ..fast()
    };
    let report = drain_as_worker(&worker, options, Duration::from_secs(30)).await;
    assert_eq!(report.dead_lettered, 1, "{report:?}");
    let (dead_id, key): (u64, u64) =
        sqlx::query_as("SELECT dead_letter_id, entity_key FROM v_sync_dead_letters")
            .fetch_one(&mut maria)
            .await
            .unwrap();
    assert_eq!(key, 900001);
    for (sql, errno) in [
        ("CALL sp_ResolveDeadLetter(?, 'drop table')", 30043),
        ("CALL sp_ResolveDeadLetter(? + 1000, 'requeue')", 30044),
    ] {
        assert_eq!(
            errno_of(sqlx::query(sql).bind(dead_id).execute(&mut maria).await),
            errno,
            "{sql}"
        );
    }
    sqlx::query("CALL sp_ResolveDeadLetter(?, 'requeue')")
        .bind(dead_id)
        .execute(&mut maria)
        .await
        .expect("she re-queues the dead letter");
    let requeued: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM order_sync_queue WHERE entity_key = 900001 AND source_table = 'requeue'),
                (SELECT COUNT(*) FROM sync_dead_letters)",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(requeued, (1, 0));

    // Resync requests: validated, then queued and recorded with her account.
    for (entity, keys, errno) in [
        ("users", "[1]", 30041),
        ("customers", "[]", 30042),
        ("customers", "[\"1; DROP TABLE Orders\"]", 30042),
        ("customers", "[1.5]", 30042),
        ("customers", "[0]", 30042),
        ("customers", "{\"a\": 1}", 30042),
    ] {
        assert_eq!(
            errno_of(
                sqlx::query("CALL sp_RequestResync(?, ?)")
                    .bind(entity)
                    .bind(keys)
                    .execute(&mut maria)
                    .await
            ),
            errno,
            "{entity} {keys}"
        );
    }
    let queued_before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM customer_sync_queue")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(queued_before, 0, "refused requests queued nothing");
    sqlx::query("CALL sp_RequestResync('customers', '[1, 2, 2]')")
        .execute(&mut maria)
        .await
        .expect("a resync request");
    let (resync, operator): (i64, String) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM customer_sync_queue WHERE source_table = 'resync'),
                (SELECT GROUP_CONCAT(CONCAT(operator, ' ', action) ORDER BY operation_id) FROM sync_operator_log)",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(resync, 2, "distinct keys");
    assert!(
        operator.starts_with("maria@")
            && operator.contains("requeue")
            && operator.contains("resync"),
        "{operator}"
    );

    // History stays history: not even the worker, which closes its own lineage rows, can
    // change a finished one.
    let mut as_worker = connection(&env.config.mariadb, WORKER_USER).await;
    assert_eq!(
        errno_of(
            sqlx::query(
                "UPDATE data_lineage_tracker SET status = 'failed' WHERE finished_at IS NOT NULL"
            )
            .execute(&mut as_worker)
            .await
        ),
        30040
    );
    // Connection caps per account (MariaDB enforces them server-wide, for every database).
    let caps: Vec<(String, i64)> = sqlx::query_as(
        "SELECT CAST(User AS CHAR), max_user_connections FROM mysql.user \
         WHERE Host = '%' AND User IN ('sarah', 'maria', 'aethermart_worker') ORDER BY User",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    let (person, service) = (
        i64::from(security::PERSON_MAX_CONNECTIONS),
        i64::from(security::WORKER_MAX_CONNECTIONS),
    );
    assert_eq!(
        caps,
        [
            (WORKER_USER.to_owned(), service),
            ("maria".to_owned(), person),
            ("sarah".to_owned(), person)
        ]
    );
}

#[tokio::test]
async fn once_applies_what_is_due_and_reports_a_change_parked_far_ahead() {
    let (_env, admin, worker) = secured("integrity_once").await;
    sqlx::raw_sql(
        "UPDATE Customers SET phone = '+34 600 444 444' WHERE customer_id = 1;
         UPDATE Customers SET phone = '+44 7700 900555' WHERE customer_id = 2;
         UPDATE customer_sync_queue SET attempts = 1, retry_at = NOW(6) + INTERVAL 1 HOUR
          WHERE entity_key = 2;",
    )
    .execute(&admin)
    .await
    .unwrap();
    let report = drain_as_worker(&worker, fast(), Duration::from_secs(30)).await;
    assert_eq!((report.changes, report.parked), (1, 1), "{report:?}");
    let next = report
        .next_retry_in_ms
        .expect("when the parked change is due");
    assert!((3_500_000..=3_600_000).contains(&next), "{next} ms");
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM customer_sync_queue")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(left, 1, "the parked change stays queued");
}
