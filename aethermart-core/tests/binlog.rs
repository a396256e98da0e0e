//! Binlog capture against the real server (binlog on, row images and column names, GTIDs):
//! the same documents as the trigger capture, the stored position, the start refusal, and
//! writes during a migration.

use crate::support::{self, TestEnv};
use aethermart_core::binlog_position::GtidPosition;
use aethermart_core::config::Config;
use aethermart_core::migrate::{BulkMigrator, MigrateOptions, Migrator};
use aethermart_core::model::{CustomerId, NewOrderLine, OrderId, ProductId};
use aethermart_core::orders;
use aethermart_core::progress::NoProgress;
use aethermart_core::projection::{Entity, content_hash, document, owned_part};
use aethermart_core::sync::{
    BinlogError, BinlogSource, Candidate, Capture, MongoSink, QueueSource, SyncError, SyncOptions,
    SyncReport, Syncer, capture,
};
use futures_util::TryStreamExt;
use mongodb::bson::{Document, doc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::MySqlPool;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

fn options() -> SyncOptions {
    SyncOptions {
        batch_size: 100,
        max_idle_wait: Duration::from_millis(20),
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        ..SyncOptions::default()
    }
}

/// The same servers and MariaDB database, another MongoDB database.
fn other_mongodb(config: &Config, suffix: &str) -> Config {
    Config {
        mariadb: config.mariadb.clone(),
        mongodb: config
            .mongodb
            .with_database(&format!("{}{suffix}", config.mongodb.database()))
            .expect("database name"),
    }
}

async fn migrate(config: &Config) {
    let mongo = aethermart_core::connect::mongodb_database(&config.mongodb)
        .await
        .unwrap();
    BulkMigrator::new(config.mariadb.clone(), mongo)
        .migrate(MigrateOptions::default(), Arc::new(NoProgress))
        .await
        .unwrap();
}

async fn verify_equal(config: &Config) {
    let mongo = aethermart_core::connect::mongodb_database(&config.mongodb)
        .await
        .unwrap();
    let report = BulkMigrator::new(config.mariadb.clone(), mongo)
        .verify()
        .await
        .unwrap();
    assert!(report.equal(), "stores differ: {report:?}");
}

/// An application writing until told to stop: an order placed, a profile and a price changed,
/// over and over, on the first 150 customers and 40 products. Failed writes (a server down)
/// are counted and the next one is tried. Gives (committed, failed).
fn write_until(
    pool: MySqlPool,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<(u64, u64)> {
    tokio::spawn(async move {
        let (mut committed, mut failed) = (0u64, 0u64);
        let mut n = 0u64;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            n += 1;
            let line = NewOrderLine::Product {
                product_id: ProductId(n % 40 + 1),
                quantity: 1,
            };
            let _ = orders::place_order(&pool, CustomerId(n % 150 + 1), &[line]).await;
            let update = sqlx::raw_sql(&format!(
                "UPDATE Customers SET phone = '+1 555 {n:05}' WHERE customer_id = {c}; \
                 UPDATE Products SET price = price + 1 WHERE product_id = {p}",
                c = n % 150 + 1,
                p = n % 40 + 1
            ))
            .execute(&pool)
            .await;
            match update {
                Ok(_) => committed += 1,
                Err(_) => {
                    failed += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        (committed, failed)
    })
}

/// A syncer on the queues the capture triggers fill.
async fn queue_syncer(config: &Config) -> Syncer {
    let (source, mongo) = QueueSource::connect(config, &options(), 4).await.unwrap();
    Syncer::new(Arc::new(source), Arc::new(MongoSink::new(mongo)), options())
}

/// A syncer for `capture`.
async fn syncer_for(config: &Config, capture: Capture) -> Syncer {
    match capture {
        Capture::Binlog => binlog_syncer(config).await.0,
        Capture::Triggers => queue_syncer(config).await,
    }
}

async fn binlog_syncer(config: &Config) -> (Syncer, BinlogSource) {
    let lease = support::lead(config).await;
    let (source, mongo) = BinlogSource::connect(config, &options(), 4, &lease)
        .await
        .expect("binlog capture starts");
    let syncer = Syncer::new(
        Arc::new(source.clone()),
        Arc::new(MongoSink::new(mongo)),
        options(),
    );
    (syncer, source)
}

fn follow(syncer: Syncer) -> (watch::Sender<bool>, tokio::task::JoinHandle<SyncReport>) {
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(async move { syncer.run(support::until_stopped(rx)).await.unwrap() });
    (tx, task)
}

/// Every document of every synced collection, by `_id`, as the hash of the part the sync owns.
async fn documents(config: &Config) -> BTreeMap<(Entity, i64), [u8; 32]> {
    let mongo = aethermart_core::connect::mongodb_database(&config.mongodb)
        .await
        .unwrap();
    let mut all = BTreeMap::new();
    for entity in Entity::ALL {
        let mut cursor = mongo
            .collection::<Document>(entity.collection())
            .find(doc! {})
            .await
            .unwrap();
        while let Some(d) = cursor.try_next().await.unwrap() {
            let id = d.get_i64("_id").expect("integer _id");
            all.insert((entity, id), content_hash(&owned_part(entity, d)));
        }
    }
    all
}

/// The capture triggers in the pool's database.
async fn capture_triggers(pool: &MySqlPool) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.TRIGGERS \
         WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME LIKE '%\\_sync\\_%'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn ids(pool: &MySqlPool, sql: &str) -> Vec<u64> {
    sqlx::query_scalar(sql).fetch_all(pool).await.unwrap()
}

/// A random mix of what applications and operators do, from one seed: orders placed and
/// cancelled, profiles and addresses edited, customers added and removed (addresses go by
/// cascade), renames of products, services and categories, a category moved, prices and
/// statuses changed, multi-row transactions, a resync request, a rolled-back transaction.
async fn random_workload(pool: &MySqlPool, seed: u64, steps: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let customers = ids(
        pool,
        "SELECT customer_id FROM Customers ORDER BY 1 LIMIT 200",
    )
    .await;
    let products = ids(pool, "SELECT product_id FROM Products ORDER BY 1").await;
    let services = ids(pool, "SELECT service_id FROM Services ORDER BY 1").await;
    let categories = ids(
        pool,
        "SELECT category_id FROM Categories WHERE parent_id IS NOT NULL ORDER BY 1",
    )
    .await;
    let addresses = ids(
        pool,
        "SELECT address_id FROM Customer_Addresses ORDER BY 1 LIMIT 200",
    )
    .await;
    let mut orders_placed: Vec<u64> = ids(
        pool,
        "SELECT order_id FROM Orders ORDER BY 1 DESC LIMIT 100",
    )
    .await;
    let pick = |rng: &mut StdRng, v: &[u64]| v[rng.random_range(0..v.len())];
    for step in 0..steps {
        let run = |sql: String| async move {
            // Business rules may refuse a random step (stock, a status): that is fine.
            let _ = sqlx::raw_sql(&sql).execute(pool).await;
        };
        match rng.random_range(0..12) {
            0 | 1 => {
                let line = NewOrderLine::Product {
                    product_id: ProductId(pick(&mut rng, &products)),
                    quantity: rng.random_range(1..3),
                };
                if let Ok(placed) =
                    orders::place_order(pool, CustomerId(pick(&mut rng, &customers)), &[line]).await
                {
                    orders_placed.push(placed.order_id.get());
                }
            }
            2 => {
                let _ = orders::cancel_order(pool, OrderId(pick(&mut rng, &orders_placed))).await;
            }
            3 => run(format!(
                "UPDATE Customers SET phone = '+1 555 {step:04}' WHERE customer_id = {}",
                pick(&mut rng, &customers)
            )).await,
            4 => run(format!(
                "UPDATE Customer_Addresses SET city = 'Town {step}' WHERE address_id = {}",
                pick(&mut rng, &addresses)
            )).await,
            5 => run(format!(
                "UPDATE Products SET name = CONCAT(LEFT(name, 80), ' {step}') WHERE product_id = {}",
                pick(&mut rng, &products)
            )).await,
            6 => run(format!(
                "UPDATE Products SET price = price + 1 WHERE product_id = {}",
                pick(&mut rng, &products)
            )).await,
            7 => run(format!(
                "UPDATE Services SET name = CONCAT(LEFT(name, 80), ' {step}') WHERE service_id = {}",
                pick(&mut rng, &services)
            )).await,
            8 => {
                let category = pick(&mut rng, &categories);
                if rng.random_bool(0.5) {
                    run(format!("UPDATE Categories SET name = CONCAT(LEFT(name, 60), ' {step}') WHERE category_id = {category}")).await
                } else {
                    // A move under a sibling's parent (never under itself).
                    run(format!(
                        "UPDATE Categories c JOIN (SELECT parent_id FROM Categories WHERE category_id = {other}) p \
                         SET c.parent_id = p.parent_id WHERE c.category_id = {category} AND p.parent_id <> {category}",
                        other = pick(&mut rng, &categories)
                    )).await
                }
            }
            9 => run(format!(
                "UPDATE Orders SET status = 'paid' WHERE order_id = {} AND status = 'pending'",
                pick(&mut rng, &orders_placed)
            )).await,
            10 => {
                // A new customer with an address, then (sometimes) removed again.
                run(format!(
                    "START TRANSACTION; \
                     INSERT INTO Customers (first_name, last_name, email) VALUES ('Ada', 'Step{step}', 'ada{step}.{seed}@example.com'); \
                     INSERT INTO Customer_Addresses (customer_id, kind, line1, city, postal_code, country) \
                     VALUES (LAST_INSERT_ID(), 'shipping', '1 Main St', 'Springfield', '12345', 'US'); \
                     UPDATE Customers SET phone = '+1 555 0000' WHERE customer_id = {}; COMMIT",
                    pick(&mut rng, &customers)
                )).await;
                if rng.random_bool(0.5) {
                    run(format!("DELETE FROM Customers WHERE email = 'ada{step}.{seed}@example.com'")).await;
                }
            }
            _ => {
                if rng.random_bool(0.5) {
                    // An operator's resync request, as `sp_RequestResync` queues it.
                    run(format!(
                        "INSERT INTO product_sync_queue (entity_key, operation, source_table) VALUES ({}, 'update', 'resync')",
                        pick(&mut rng, &products)
                    )).await
                } else {
                    run(format!(
                        "START TRANSACTION; UPDATE Products SET price = price + 100 WHERE product_id = {}; ROLLBACK",
                        pick(&mut rng, &products)
                    )).await
                }
            }
        }
    }
}

/// Item 2 of the binlog issue: one random mixed workload on one database, captured by the
/// triggers into one MongoDB database and from the binlog into another, both workers
/// following while it runs; the end states are identical, document by document, and equal
/// to MariaDB.
#[tokio::test]
async fn binlog_capture_writes_the_same_documents_as_the_triggers() {
    let (env, pool) = support::generated("binlog_same_docs", 5, 0.02).await;
    let triggers = env.config.clone();
    let from_binlog = other_mongodb(&triggers, "_b");
    // The ratings of products come from the reviews in MongoDB: the same in both.
    let reviews: Vec<Document> = env
        .mongo()
        .await
        .collection::<Document>(document::REVIEWS)
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let b = aethermart_core::connect::mongodb_database(&from_binlog.mongodb)
        .await
        .unwrap();
    if !reviews.is_empty() {
        b.collection::<Document>(document::REVIEWS)
            .insert_many(reviews)
            .await
            .unwrap();
    }
    migrate(&triggers).await;
    migrate(&from_binlog).await;

    let queue_syncer = queue_syncer(&triggers).await;
    let (binlog_syncer, source) = binlog_syncer(&from_binlog).await;
    source.shadow();
    let (stop_q, q) = follow(queue_syncer.clone());
    let (stop_b, b_task) = follow(binlog_syncer.clone());
    random_workload(&pool, 17, 400).await;
    stop_q.send_replace(true);
    stop_b.send_replace(true);
    q.await.unwrap();
    let followed = b_task.await.unwrap();
    assert!(
        followed.documents > 0,
        "the binlog worker wrote while following: {followed:?}"
    );
    queue_syncer.drain().await.unwrap();
    binlog_syncer.drain().await.unwrap();

    verify_equal(&triggers).await;
    verify_equal(&from_binlog).await;
    let (a, b) = (documents(&triggers).await, documents(&from_binlog).await);
    assert!(a.len() > 100, "{} documents", a.len());
    let differing: Vec<_> = a
        .iter()
        .filter(|(k, h)| b.get(k) != Some(h))
        .map(|(k, _)| *k)
        .chain(b.keys().filter(|k| !a.contains_key(k)).copied())
        .take(10)
        .collect();
    assert!(differing.is_empty(), "documents differ: {differing:?}");
    assert_eq!(a.len(), b.len());
}

/// Item 3: no position → a refusal naming the command; after a migration the worker starts
/// from the position it recorded, stores its own after applying, and a new worker resumes
/// there and applies what changed meanwhile.
#[tokio::test]
async fn binlog_capture_refuses_to_start_without_a_position_and_resumes_from_its_own() {
    let (env, pool) = support::seeded("binlog_resume").await;
    let refused = Candidate::new(
        env.mongo().await,
        env.config.mariadb.database(),
        support::LEASE_TTL,
    )
    .acquire(None)
    .await
    .unwrap_err();
    assert!(
        matches!(refused, BinlogError::NoPosition { .. }),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("aethermart migrate"),
        "{refused}"
    );

    capture::switch(&env.config, Capture::Binlog, "test")
        .await
        .unwrap();
    migrate(&env.config).await;
    let mongo = env.mongo().await;
    let database = env.config.mariadb.database();
    let recorded = aethermart_core::binlog_position::store::load(&mongo, database)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(recorded.by, "migration");

    sqlx::raw_sql("UPDATE Customers SET phone = '+1 555 0101' WHERE customer_id = 1")
        .execute(&pool)
        .await
        .unwrap();
    let after_update: String = sqlx::query_scalar("SELECT @@gtid_binlog_pos")
        .fetch_one(&pool)
        .await
        .unwrap();
    let after_update: GtidPosition = after_update.parse().unwrap();
    let (syncer, source) = binlog_syncer(&env.config).await;
    let report = syncer.drain().await.unwrap();
    assert!(report.documents >= 1, "{report:?}");
    source.flush().await.unwrap();
    let stored = aethermart_core::binlog_position::store::load(&mongo, database)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.by, "worker");
    assert_eq!(
        stored.epoch, recorded.epoch,
        "the worker keeps the migration's epoch"
    );
    // Other tests write to the same server meanwhile: the reader may have moved on since.
    assert!(source.checkpoint().covers(&stored.position));
    assert!(
        stored.position.covers(&after_update),
        "the position moved past the update: {} / {after_update}",
        stored.position
    );
    drop((syncer, source));

    // Changes while no worker runs, then a new worker.
    sqlx::raw_sql(
        "UPDATE Products SET price = 77.70 WHERE product_id = 2; \
         UPDATE Categories SET name = 'Parts' WHERE category_id = 2; \
         DELETE FROM Customer_Addresses WHERE customer_id = 2",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (syncer, _source) = binlog_syncer(&env.config).await;
    syncer.drain().await.unwrap();
    verify_equal(&env.config).await;
    let product = mongo
        .collection::<Document>("products")
        .find_one(doc! { "_id": 1_i64 })
        .await
        .unwrap()
        .unwrap();
    assert!(
        format!("{product}").contains("Parts"),
        "a renamed category reaches the products below it: {product}"
    );
}

/// Fencing (cluster item 1): once another worker took the lease over, the old leader stores no
/// position, neither the one it reached nor an older one, and claims nothing; the new leader's
/// position stands and the old leader's last change stays unwritten.
#[tokio::test]
async fn a_leader_whose_lease_was_taken_over_stores_no_position_and_claims_nothing() {
    use aethermart_core::binlog_position::lease::{self, Holder, Seen};
    use aethermart_core::binlog_position::store::{self, Advanced};
    let (env, pool) = support::seeded("binlog_fencing").await;
    capture::switch(&env.config, Capture::Binlog, "test")
        .await
        .unwrap();
    migrate(&env.config).await;
    let (mongo, database) = (env.mongo().await, env.config.mariadb.database());
    let (syncer, source) = binlog_syncer(&env.config).await;
    sqlx::raw_sql("UPDATE Customers SET phone = '+1 555 0401' WHERE customer_id = 1")
        .execute(&pool)
        .await
        .unwrap();
    syncer.drain().await.unwrap();
    source.flush().await.unwrap();
    let before = store::load(&mongo, database).await.unwrap().unwrap();

    // Another worker takes the lease over (as a standby does once it lapsed) and moves on.
    let seen = lease::read(&mongo, database).await.unwrap();
    let Seen::Held(old) = seen.clone() else {
        panic!("the syncer holds the lease: {seen:?}")
    };
    let usurper = Holder::this_process();
    let term = lease::take(&mongo, database, &seen, &usurper, 10_000)
        .await
        .unwrap()
        .expect("the lease is taken over");
    assert_eq!(term, old.term + 1);
    sqlx::raw_sql("UPDATE Customers SET phone = '+1 555 0402' WHERE customer_id = 1")
        .execute(&pool)
        .await
        .unwrap();
    let newer: GtidPosition = sqlx::query_scalar::<_, String>("SELECT @@gtid_binlog_pos")
        .fetch_one(&pool)
        .await
        .unwrap()
        .parse()
        .unwrap();
    let moved = store::advance(&mongo, database, before.epoch, (term, &usurper.id), &newer)
        .await
        .unwrap();
    assert_eq!(moved, Advanced::Moved);

    // The old leader, still running, reads a change but can neither store a position...
    sqlx::raw_sql("UPDATE Customers SET phone = '+1 555 0403' WHERE customer_id = 2")
        .execute(&pool)
        .await
        .unwrap();
    source
        .wait_caught_up(Duration::from_secs(10))
        .await
        .unwrap();
    let refused = source.flush().await.unwrap_err();
    assert!(
        matches!(refused, SyncError::Binlog(BinlogError::NotLeader { term: t }) if t == old.term),
        "{refused}"
    );
    let stale = store::advance(
        &mongo,
        database,
        before.epoch,
        (old.term, &old.holder),
        &before.position,
    )
    .await
    .unwrap();
    assert_eq!(
        stale,
        Advanced::LeaseLost,
        "an older position under the old term"
    );
    let stored = store::load(&mongo, database).await.unwrap().unwrap();
    assert_eq!(stored.position, newer, "the new leader's position stands");
    // ...nor claim and write.
    let stopped = syncer.drain().await.unwrap_err();
    assert!(
        matches!(stopped, SyncError::Binlog(BinlogError::NotLeader { .. })),
        "{stopped}"
    );
    let customer = env
        .mongo()
        .await
        .collection::<Document>(Entity::Customers.collection())
        .find_one(doc! { "_id": 2_i64 })
        .await
        .unwrap()
        .unwrap();
    assert!(
        !customer.to_string().contains("0403"),
        "the old leader wrote nothing: {customer}"
    );
}

/// Item 4: writes during the migration are never lost: the capture starts from the position
/// of the migration's snapshot.
#[tokio::test]
async fn writes_during_a_migration_reach_mongodb_under_binlog_capture() {
    let (env, pool) = support::generated("binlog_during_migration", 9, 0.02).await;
    capture::switch(&env.config, Capture::Binlog, "test")
        .await
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = write_until(pool.clone(), stop.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    migrate(&env.config).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (writes, failed) = writer.await.unwrap();
    assert!(
        writes > 10 && failed == 0,
        "{writes} writes, {failed} failed"
    );
    let (syncer, _source) = binlog_syncer(&env.config).await;
    syncer.drain().await.unwrap();
    verify_equal(&env.config).await;
}

/// A position is a GTID list; the migration's snapshot position is a real one.
#[tokio::test]
async fn the_snapshot_position_is_where_the_server_is() {
    let env = TestEnv::new("binlog_snapshot_position").await;
    let pool = env.pool().await;
    let mut conn = pool.acquire().await.unwrap();
    let position = aethermart_core::binlog_position::store::snapshot_position(&mut conn)
        .await
        .unwrap()
        .expect("the local server writes a binlog");
    let now: String = sqlx::query_scalar("SELECT @@gtid_binlog_pos")
        .fetch_one(&pool)
        .await
        .unwrap();
    let now: GtidPosition = now.parse().unwrap();
    assert!(now.covers(&position), "{now} covers {position}");
}

/// Item 6: under binlog capture the triggers queue nothing (the stock part stays), the
/// setting is the administrator's alone (the worker and application accounts are refused and
/// nothing changes), and a worker of the other capture is refused at start.
#[tokio::test]
async fn under_binlog_capture_the_triggers_queue_nothing_and_only_the_admin_switches() {
    use aethermart_core::security;
    let (env, pool) = support::seeded("binlog_setting").await;
    migrate(&env.config).await;
    let switched = capture::switch(&env.config, Capture::Binlog, "test")
        .await
        .unwrap();
    assert_eq!(
        (switched.from, switched.to),
        (Capture::Triggers, Capture::Binlog)
    );
    assert_eq!(capture::current(&pool).await.unwrap(), Capture::Binlog);
    let placed = orders::place_order(
        &pool,
        CustomerId(1),
        &[NewOrderLine::Product {
            product_id: ProductId(1),
            quantity: 2,
        }],
    )
    .await
    .unwrap();
    sqlx::raw_sql(
        "UPDATE Customers SET phone = '+1 555 0199' WHERE customer_id = 2; \
         UPDATE Categories SET name = 'Kit' WHERE category_id = 2",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(
        support::queued(&pool).await,
        0,
        "no queue row on the write path"
    );
    assert_eq!(
        capture_triggers(&pool).await,
        0,
        "no capture trigger on the write path"
    );
    assert_eq!(
        support::stock(&pool, 1).await,
        8,
        "the order took its stock"
    );
    let refused = queue_syncer(&env.config).await.drain().await.unwrap_err();
    assert!(
        matches!(
            refused,
            SyncError::CaptureMismatch {
                mine: "triggers",
                ..
            }
        ),
        "{refused}"
    );
    let wrong = capture::resolve(&env.config, Some(Capture::Triggers))
        .await
        .unwrap_err();
    assert!(wrong.to_string().contains("--capture"), "{wrong}");
    // A resync request under binlog capture: applied through the binlog, then its queue
    // entry (exactly it) deleted by the worker.
    sqlx::query(
        "INSERT INTO product_sync_queue (entity_key, operation, source_table) VALUES (2, 'update', 'resync')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (syncer, source) = binlog_syncer(&env.config).await;
    syncer.drain().await.unwrap();
    source.flush().await.unwrap();
    assert_eq!(
        support::queued(&pool).await,
        0,
        "the applied request was deleted"
    );
    verify_equal(&env.config).await;
    let order = env
        .mongo()
        .await
        .collection::<Document>("orders")
        .find_one(doc! { "_id": placed.order_id.get() as i64 })
        .await
        .unwrap();
    assert!(
        order.is_some(),
        "the order placed under binlog capture reached MongoDB"
    );

    // The attack: the worker and the application accounts try to switch it back.
    let passwords = support::passwords();
    security::apply(&env.config.mariadb, &passwords)
        .await
        .unwrap();
    for (user, password) in [
        (security::WORKER_USER, passwords.worker().clone()),
        ("maria", passwords.maria().clone()),
    ] {
        let login = env.config.mariadb.with_login(user, password);
        let mut conn = aethermart_core::connect::node_connection(&login, true)
            .await
            .unwrap();
        let tried = sqlx::query("UPDATE sync_settings SET capture = 'triggers' WHERE id = 1")
            .execute(&mut conn)
            .await;
        assert!(
            matches!(support::errno_of(tried), 1142),
            "{user} must not write the setting"
        );
    }
    assert_eq!(capture::current(&pool).await.unwrap(), Capture::Binlog);

    // The worker account has what binlog capture needs, and nothing it does needs more.
    sqlx::raw_sql("UPDATE Customers SET phone = '+1 555 0198' WHERE customer_id = 1")
        .execute(&pool)
        .await
        .unwrap();
    let as_worker = Config {
        mariadb: env
            .config
            .mariadb
            .with_login(security::WORKER_USER, passwords.worker().clone()),
        mongodb: env.config.mongodb.clone(),
    };
    drop((syncer, source));
    let (syncer, source) = binlog_syncer(&as_worker).await;
    let report = syncer.drain().await.unwrap();
    assert!(report.documents >= 1, "{report:?}");
    source.flush().await.unwrap();
    verify_equal(&env.config).await;
}

/// Item 6: switching to binlog and back while writes go on loses no change; the worker of
/// the old capture stops at its next batch.
#[tokio::test]
async fn switching_the_capture_both_ways_under_writes_loses_no_change() {
    let (env, pool) = support::generated("binlog_switch", 13, 0.02).await;
    migrate(&env.config).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = write_until(pool.clone(), stop.clone());
    let (_keep, rx) = watch::channel(false);
    let run = |syncer: Syncer| {
        let rx = rx.clone();
        tokio::spawn(async move { syncer.run(support::until_stopped(rx)).await })
    };
    let triggers = run(queue_syncer(&env.config).await);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let to_binlog = capture::switch(&env.config, Capture::Binlog, "test")
        .await
        .unwrap();
    let stopped = triggers.await.unwrap().unwrap_err();
    assert!(
        matches!(stopped, SyncError::CaptureMismatch { .. }),
        "{stopped}"
    );
    let (binlog_syncer, _source) = binlog_syncer(&env.config).await;
    let binlog = run(binlog_syncer);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let to_triggers = capture::switch(&env.config, Capture::Triggers, "test")
        .await
        .unwrap();
    assert!(
        to_triggers.requeued > 0 || to_binlog.requeued > 0,
        "{to_binlog:?} {to_triggers:?}"
    );
    assert_eq!(
        capture_triggers(&pool).await,
        16,
        "the capture triggers are back"
    );
    let stopped = binlog.await.unwrap().unwrap_err();
    assert!(
        matches!(stopped, SyncError::CaptureMismatch { mine: "binlog", .. }),
        "{stopped}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (writes, failed) = writer.await.unwrap();
    assert!(
        writes > 20 && failed == 0,
        "{writes} writes, {failed} failed"
    );
    queue_syncer(&env.config).await.drain().await.unwrap();
    verify_equal(&env.config).await;
}

/// An application's transaction held open on the row the reader read last cannot stall
/// binlog capture: the wait for that transaction's visibility is bounded (without the bound
/// the claim would wait for the lock, 50 s, and again after every retry).
#[tokio::test]
async fn a_transaction_held_open_on_the_last_row_read_does_not_stall_binlog_capture() {
    let (env, pool) = support::seeded("binlog_held_lock").await;
    capture::switch(&env.config, Capture::Binlog, "test")
        .await
        .unwrap();
    migrate(&env.config).await;
    sqlx::query("UPDATE Customers SET phone = '+1 555 0111' WHERE customer_id = 1")
        .execute(&pool)
        .await
        .unwrap();
    // The attacker: a transaction holding the row of the last transaction read, not ending.
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("UPDATE Customers SET last_name = 'Held' WHERE customer_id = 1")
        .execute(&mut *holder)
        .await
        .unwrap();
    let (syncer, _source) = binlog_syncer(&env.config).await;
    let (stop, task) = follow(syncer);
    let profiles = env
        .mongo()
        .await
        .collection::<Document>("customer_profiles");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let profile = profiles
            .find_one(doc! { "_id": 1_i64 })
            .await
            .unwrap()
            .unwrap();
        if format!("{profile}").contains("+1 555 0111") {
            assert!(
                !format!("{profile}").contains("Held"),
                "an uncommitted change never reaches MongoDB"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the change did not arrive while the transaction held the row: {profile}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    holder.rollback().await.unwrap();
    stop.send_replace(true);
    task.await.unwrap();
}

/// Item 5: schema changes while the worker follows under writes. A new column, a widened
/// column and a new unrelated table change nothing for the documents, under either capture;
/// a column the documents need that disappears stops the worker with an error naming it,
/// rather than writing wrong documents.
#[tokio::test]
async fn ddl_while_streaming_keeps_the_documents_right_and_a_lost_column_stops_the_worker() {
    for capture in [Capture::Binlog, Capture::Triggers] {
        let (env, pool) = support::seeded(&format!("binlog_ddl_{capture}")).await;
        capture::switch(&env.config, capture, "test").await.unwrap();
        migrate(&env.config).await;
        let syncer = syncer_for(&env.config, capture).await;
        let (_keep, rx) = watch::channel(false);
        let worker = {
            let syncer = syncer.clone();
            tokio::spawn(async move { syncer.run(support::until_stopped(rx)).await })
        };
        let write = |n: u32| {
            let pool = pool.clone();
            async move {
                sqlx::raw_sql(&format!(
                    "UPDATE Customers SET phone = '+1 555 {n:04}' WHERE customer_id = {c}; \
                     UPDATE Products SET price = price + 1 WHERE product_id = {p}",
                    c = n % 2 + 1,
                    p = n % 3 + 1
                ))
                .execute(&pool)
                .await
                .unwrap();
            }
        };
        for (n, ddl) in [
            "ALTER TABLE Customers ADD COLUMN loyalty_note VARCHAR(40) NULL",
            "ALTER TABLE Products MODIFY COLUMN name VARCHAR(250) NOT NULL",
            "CREATE TABLE unrelated_notes (id INT PRIMARY KEY, note TEXT)",
            "INSERT INTO unrelated_notes VALUES (1, 'not synced')",
            "UPDATE Customers SET loyalty_note = 'gold' WHERE customer_id = 1",
        ]
        .iter()
        .enumerate()
        {
            write(n as u32).await;
            sqlx::raw_sql(ddl).execute(&pool).await.unwrap();
            write(n as u32 + 10).await;
        }
        support::until_equal(
            &env.config,
            Duration::from_secs(20),
            &format!("{capture} after the DDL"),
        )
        .await;
        assert!(!worker.is_finished(), "{capture}: the worker goes on");

        // A column the profile needs disappears: the worker stops and names it.
        sqlx::raw_sql(
            "ALTER TABLE Customers DROP COLUMN phone; \
             UPDATE Customers SET last_name = 'Dropped' WHERE customer_id = 2",
        )
        .execute(&pool)
        .await
        .unwrap();
        let stopped = tokio::time::timeout(Duration::from_secs(30), worker)
            .await
            .expect("the worker stops")
            .unwrap()
            .unwrap_err();
        assert!(!stopped.is_transient(), "{capture}: {stopped}");
        assert!(
            stopped.to_string().contains("phone"),
            "{capture}: {stopped}"
        );
        let profile = env
            .mongo()
            .await
            .collection::<Document>("customer_profiles")
            .find_one(doc! { "_id": 2_i64 })
            .await
            .unwrap()
            .unwrap();
        assert!(
            !format!("{profile}").contains("Dropped"),
            "{capture}: no document was written from the changed table"
        );
    }
}

/// Runs `scripts/cluster.sh ARGS` off the runtime's thread, so the worker and the writers go
/// on meanwhile.
async fn cluster_script(args: &'static [&'static str]) {
    tokio::task::spawn_blocking(move || support::cluster_script(args))
        .await
        .unwrap();
}

/// Target: a MariaDB crash and restart under writes. The reader reconnects and resumes from
/// its position in the new binlog file, the claims retry; the stores end equal, nothing is
/// dead-lettered. On the solo server (the test kills it).
#[tokio::test]
async fn a_mariadb_crash_under_writes_loses_no_change_under_binlog_capture() {
    let (solo, _held) = support::solo().await;
    let env = TestEnv::on(solo, "binlog_mariadb_crash").await;
    let (env, pool) = support::generated_in(env, 17, 0.02).await;
    capture::switch(&env.config, Capture::Binlog, "test")
        .await
        .unwrap();
    migrate(&env.config).await;
    let (syncer, source) = binlog_syncer(&env.config).await;
    let (stop_sync, sync) = follow(syncer);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = write_until(pool.clone(), stop.clone());
    tokio::time::sleep(Duration::from_millis(800)).await;
    cluster_script(&["kill", "solo"]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster_script(&["start", "solo"]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (committed, failed) = writer.await.unwrap();
    // Writes waiting for a connection while the server is down wait, or fail and go on.
    assert!(committed > 20, "{committed} committed, {failed} failed");
    source
        .wait_caught_up(Duration::from_secs(60))
        .await
        .unwrap();
    support::until_equal(&env.config, Duration::from_secs(60), "after the crash").await;
    stop_sync.send_replace(true);
    let report = sync.await.unwrap();
    assert_eq!(report.dead_lettered, 0, "{report:?}");
}

/// Item 3: a stored position whose binlogs the server purged stops the capture with an error
/// naming the position asked for, the oldest the server has, and the command that copies the
/// state again; after that migration the capture runs again. On the solo server (the test
/// purges its binlogs).
#[tokio::test]
async fn a_purged_position_stops_binlog_capture_naming_it_and_a_migration_starts_it_again() {
    let (solo, _held) = support::solo().await;
    let (env, pool) = support::seeded_in(TestEnv::on(solo, "binlog_purged").await).await;
    capture::switch(&env.config, Capture::Binlog, "test")
        .await
        .unwrap();
    migrate(&env.config).await;
    let mongo = env.mongo().await;
    let database = env.config.mariadb.database();
    let asked = aethermart_core::binlog_position::store::load(&mongo, database)
        .await
        .unwrap()
        .unwrap()
        .position;
    // A change after the position, in a file the server then purges.
    sqlx::raw_sql(
        "UPDATE Customers SET phone = '+1 555 0301' WHERE customer_id = 1; FLUSH BINARY LOGS",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (newest, _, _, _): (String, u64, String, String) = sqlx::query_as("SHOW MASTER STATUS")
        .fetch_one(&pool)
        .await
        .unwrap();
    // The server keeps a file until its commits are durable in InnoDB (its binlog checkpoint):
    // purging may take a few tries.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        sqlx::raw_sql(&format!("PURGE BINARY LOGS TO '{newest}'"))
            .execute(&pool)
            .await
            .unwrap();
        let (oldest, _): (String, u64) = sqlx::query_as("SHOW BINARY LOGS")
            .fetch_one(&pool)
            .await
            .unwrap();
        if oldest == newest {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{oldest} is still there 20 s after FLUSH BINARY LOGS"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (syncer, _source) = binlog_syncer(&env.config).await;
    let stopped = tokio::time::timeout(Duration::from_secs(30), syncer.drain())
        .await
        .expect("the capture stops")
        .unwrap_err();
    let SyncError::Binlog(BinlogError::Purged {
        asked: named,
        oldest,
        ..
    }) = &stopped
    else {
        panic!("not the purged-position error: {stopped}");
    };
    assert_eq!(named, &asked.to_string(), "{stopped}");
    let oldest: GtidPosition = oldest
        .parse()
        .unwrap_or_else(|_| panic!("the oldest position is named: {stopped}"));
    assert!(
        !asked.covers(&oldest),
        "the oldest position is past the one asked for: {stopped}"
    );
    assert!(!stopped.is_transient(), "{stopped}");
    assert!(
        stopped.to_string().contains("aethermart migrate"),
        "{stopped}"
    );
    assert!(
        stopped.to_string().contains(&env.config.mariadb.endpoint()),
        "{stopped}"
    );

    // The fix the error names.
    drop((syncer, _source));
    migrate(&env.config).await;
    sqlx::raw_sql("UPDATE Customers SET phone = '+1 555 0302' WHERE customer_id = 2")
        .execute(&pool)
        .await
        .unwrap();
    let (syncer, _source) = binlog_syncer(&env.config).await;
    syncer.drain().await.unwrap();
    verify_equal(&env.config).await;
}

/// Target: MongoDB unreachable for a while under writes (every connection of the worker cut,
/// new ones refused): the batches wait and retry, the position is stored only after their
/// writes; the stores end equal, nothing is dead-lettered.
#[tokio::test]
async fn a_mongodb_outage_under_writes_loses_no_change_under_binlog_capture() {
    let (env, pool) = support::generated("binlog_mongo_outage", 19, 0.02).await;
    capture::switch(&env.config, Capture::Binlog, "test")
        .await
        .unwrap();
    migrate(&env.config).await;
    let outage = support::Outage::forward_to(env.config.mongodb.endpoint()).await;
    let through = support::mongodb_through(&env.config, &outage);
    let (syncer, source) = binlog_syncer(&through).await;
    let (stop_sync, sync) = follow(syncer);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = write_until(pool.clone(), stop.clone());
    tokio::time::sleep(Duration::from_millis(800)).await;
    outage.begin();
    let before = source.checkpoint();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stored = aethermart_core::binlog_position::store::load(
        &env.mongo().await,
        env.config.mariadb.database(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        before.covers(&stored.position),
        "no position is stored while MongoDB is unreachable: {} then {}",
        before,
        stored.position
    );
    outage.end();
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (committed, failed) = writer.await.unwrap();
    assert!(
        committed > 20 && failed == 0,
        "{committed} committed, {failed} failed"
    );
    support::until_equal(&env.config, Duration::from_secs(60), "after the outage").await;
    stop_sync.send_replace(true);
    let report = sync.await.unwrap();
    assert_eq!(report.dead_lettered, 0, "{report:?}");
}

/// Item 5: `schema apply` of a new version (a column, an index, a new table, a backfill of
/// the new column) while a worker follows under writes, under each capture: the documents
/// stay right and the worker goes on.
#[tokio::test]
async fn a_schema_version_applied_while_streaming_under_writes_keeps_the_documents_right() {
    use aethermart_core::schema::{MariaDbSchema, SchemaApplier, SchemaVersion, VERSIONS};
    let next = SchemaVersion {
        version: VERSIONS.len() as u32 + 1,
        description: "test: warranty months on products, an index, a notes table",
        sql: "ALTER TABLE Products ADD COLUMN warranty_months SMALLINT NULL;
              CREATE INDEX idx_products_warranty ON Products (warranty_months);
              CREATE TABLE product_notes (product_id BIGINT UNSIGNED PRIMARY KEY, note TEXT NOT NULL);
              UPDATE Products SET warranty_months = 24 WHERE product_id <= 40;
              INSERT INTO product_notes SELECT product_id, 'noted' FROM Products WHERE product_id <= 10;",
    };
    let with_next: &'static [SchemaVersion] =
        Box::leak([VERSIONS, &[next]].concat().into_boxed_slice());
    for capture in [Capture::Binlog, Capture::Triggers] {
        let (env, pool) = support::generated(&format!("binlog_schema_{capture}"), 23, 0.02).await;
        capture::switch(&env.config, capture, "test").await.unwrap();
        migrate(&env.config).await;
        let syncer = syncer_for(&env.config, capture).await;
        let (stop_sync, sync) = follow(syncer);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = write_until(pool.clone(), stop.clone());
        tokio::time::sleep(Duration::from_millis(500)).await;
        let applied = MariaDbSchema::with_migrations(env.config.mariadb.clone(), with_next)
            .apply()
            .await
            .unwrap();
        assert_eq!(applied.applied.len(), 1, "{capture}: {applied:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let (committed, failed) = writer.await.unwrap();
        assert!(
            committed > 10 && failed == 0,
            "{capture}: {committed} committed, {failed} failed"
        );
        support::until_equal(
            &env.config,
            Duration::from_secs(30),
            &format!("{capture} after the new version"),
        )
        .await;
        assert!(!sync.is_finished(), "{capture}: the worker goes on");
        stop_sync.send_replace(true);
        let report = sync.await.unwrap();
        assert_eq!(report.dead_lettered, 0, "{capture}: {report:?}");
    }
}
