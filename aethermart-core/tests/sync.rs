//! Real-time sync against real servers: capture by triggers, the worker loop, concurrency,
//! crashes, a MongoDB outage, poison changes, and the handoff with the initial migration.

use crate::support::{self, TestEnv, queued, seeded, until_drained};
use aethermart_core::migrate::{BulkMigrator, MigrateOptions, Migrator};
use aethermart_core::model::{NewOrderLine, ProductId};
use aethermart_core::orders;
use aethermart_core::progress::NoProgress;
use aethermart_core::projection::Refused;
use aethermart_core::sync::{
    MongoSink, QueueSource, Sink, SyncError, SyncOptions, SyncReport, Syncer, Write,
};
use async_trait::async_trait;
use mongodb::bson::{Document, doc};
use sqlx::MySqlPool;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

fn line(product: u64, quantity: u32) -> NewOrderLine {
    NewOrderLine::Product {
        product_id: ProductId(product),
        quantity,
    }
}

/// Quick retries, so failure paths finish in test time.
fn fast() -> SyncOptions {
    SyncOptions {
        batch_size: 50,
        lanes: 2,
        poll_interval: Duration::from_millis(2),
        max_idle_wait: Duration::from_millis(20),
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        max_attempts: 3,
        drain_wait: Duration::from_secs(10),
    }
}

/// `GET path` from the worker's HTTP endpoint: status code and body.
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

async fn source(env: &TestEnv, options: SyncOptions) -> QueueSource {
    QueueSource::connect(&env.config, &options, 4)
        .await
        .expect("both stores reachable")
        .0
}

async fn syncer(env: &TestEnv, options: SyncOptions) -> Syncer {
    let sink = MongoSink::new(env.mongo().await);
    Syncer::new(
        Arc::new(source(env, options).await),
        Arc::new(sink),
        options,
    )
}

async fn drain(env: &TestEnv) -> SyncReport {
    syncer(env, fast()).await.drain().await.unwrap()
}

async fn migrator(env: &TestEnv) -> BulkMigrator {
    BulkMigrator::new(env.config.mariadb.clone(), env.mongo().await)
}

async fn migrate(env: &TestEnv) -> aethermart_core::migrate::MigrationReport {
    migrator(env)
        .await
        .migrate(MigrateOptions::default(), Arc::new(NoProgress))
        .await
        .unwrap()
}

async fn assert_equal_stores(env: &TestEnv) {
    let report = migrator(env).await.verify().await.unwrap();
    assert!(report.equal(), "stores differ: {report:?}");
}

async fn document(env: &TestEnv, collection: &str, id: i64) -> Option<Document> {
    env.mongo()
        .await
        .collection::<Document>(collection)
        .find_one(doc! { "_id": id })
        .await
        .unwrap()
}

async fn generated(test: &str, scale: f64) -> (TestEnv, MySqlPool) {
    support::generated(test, 11, scale).await
}

/// Runs `syncer` in the background until the returned sender says stop.
fn follow(syncer: Syncer) -> (watch::Sender<bool>, tokio::task::JoinHandle<SyncReport>) {
    let (tx, rx) = watch::channel(false);
    let task =
        tokio::spawn(async move { syncer.run(crate::support::until_stopped(rx)).await.unwrap() });
    (tx, task)
}

#[tokio::test]
async fn inserts_updates_and_deletes_of_every_synced_table_reach_mongodb() {
    let (env, pool) = seeded("sync_every_table").await;
    let dropped = migrate(&env).await.dropped_queue_entries;
    assert_eq!(
        dropped, 6,
        "the seed's 6 queued changes (3 products, 1 service, 2 customers) are covered"
    );
    assert_eq!(queued(&pool).await, 0);

    // A rolled-back change leaves nothing queued.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO Customers (first_name, last_name, email) VALUES ('Roll', 'Back', 'rb@example.com')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(queued(&pool).await, 0, "rolled back: nothing queued");

    sqlx::raw_sql(
        "INSERT INTO Customers (customer_id, first_name, last_name, email) VALUES (3, 'Cleo', 'Ng', 'cleo@example.com');
         INSERT INTO Customer_Addresses (customer_id, kind, line1, city, postal_code, country, is_default)
           VALUES (3, 'shipping', '1 Main St', 'Lyon', '69001', 'FR', TRUE);
         UPDATE Customers SET phone = '+33 600 000 003' WHERE customer_id = 3;
         INSERT INTO Customers (customer_id, first_name, last_name, email) VALUES (4, 'Gone', 'Soon', 'gone@example.com');
         INSERT INTO Products (product_id, sku, name, category_id, price, stock) VALUES (4, 'NEW-0004', 'New SSD', 2, 99.00, 7);
         INSERT INTO Products (product_id, sku, name, category_id, price, stock) VALUES (5, 'TMP-0005', 'Temporary', 2, 1.00, 1);
         INSERT INTO Services (service_id, code, name, category_id, duration_minutes, price, consultant)
           VALUES (2, 'SRV-TUNE-30', 'Tuning session', 3, 30, 45.00, 'Sam Ito');",
    )
    .execute(&pool)
    .await
    .unwrap();
    let placed = orders::place_order(&pool, aethermart_core::model::CustomerId(3), &[line(4, 2)])
        .await
        .unwrap();
    let cancelled =
        orders::place_order(&pool, aethermart_core::model::CustomerId(1), &[line(1, 1)])
            .await
            .unwrap();
    drain(&env).await;
    assert_equal_stores(&env).await;
    let profile = document(&env, "customer_profiles", 3)
        .await
        .expect("profile 3");
    assert_eq!(profile.get_str("phone").unwrap(), "+33 600 000 003");
    assert_eq!(profile.get_array("addresses").unwrap().len(), 1);
    assert!(document(&env, "customer_profiles", 4).await.is_some());
    assert!(document(&env, "services", 2).await.is_some());

    // Updates and deletes, including the ones that reach other documents (names embedded in
    // orders, category paths in products, order summaries in profiles).
    orders::cancel_order(&pool, cancelled.order_id)
        .await
        .unwrap();
    sqlx::raw_sql(&format!(
        "UPDATE Products SET name = 'New NVMe SSD' WHERE product_id = 4;
         UPDATE Categories SET name = 'Parts' WHERE category_id = 2;
         UPDATE Services SET price = 49.00 WHERE service_id = 2;
         DELETE FROM Orders WHERE order_id = {};
         DELETE FROM Customers WHERE customer_id = 4;
         DELETE FROM Products WHERE product_id = 5;
         DELETE FROM Services WHERE service_id = 2;
         DELETE FROM Customer_Addresses WHERE customer_id = 3;",
        cancelled.order_id.get()
    ))
    .execute(&pool)
    .await
    .unwrap();
    assert!(queued(&pool).await > 0);
    let report = drain(&env).await;
    assert!(
        report.documents > 0 && report.dead_lettered == 0,
        "{report:?}"
    );
    assert_eq!(queued(&pool).await, 0);
    assert_equal_stores(&env).await;

    let order = document(&env, "orders", placed.order_id.get() as i64)
        .await
        .expect("order document");
    let line = order.get_array("lines").unwrap()[0].as_document().unwrap();
    assert_eq!(line.get_str("name").unwrap(), "New NVMe SSD");
    let product = document(&env, "products", 1).await.unwrap();
    let path = product
        .get_document("category")
        .unwrap()
        .get_array("path")
        .unwrap();
    assert_eq!(path.last().and_then(|p| p.as_str()), Some("Parts"));
    for (collection, id) in [
        ("orders", cancelled.order_id.get() as i64),
        ("customer_profiles", 4),
        ("products", 5),
        ("services", 2),
    ] {
        assert!(
            document(&env, collection, id).await.is_none(),
            "{collection} {id} deleted"
        );
    }
    let profile = document(&env, "customer_profiles", 3).await.unwrap();
    assert!(profile.get_array("addresses").unwrap().is_empty());
}

#[tokio::test]
async fn a_thousand_rapid_updates_to_one_key_end_with_the_document_equal_to_the_row() {
    let (env, pool) = seeded("sync_rapid_updates").await;
    migrate(&env).await;
    let (stop, task) = follow(syncer(&env, fast()).await);
    for i in 0..1_000 {
        sqlx::query("UPDATE Customers SET phone = ? WHERE customer_id = 1")
            .bind(format!("+1 555 {i:04}"))
            .execute(&pool)
            .await
            .unwrap();
    }
    until_drained(&pool, Duration::from_secs(60)).await;
    stop.send_replace(true);
    let report = task.await.unwrap();
    assert!(report.changes >= 1_000, "{report:?}");
    assert!(
        report.documents < report.changes,
        "changes to one key are coalesced: {report:?}"
    );
    let profile = document(&env, "customer_profiles", 1).await.unwrap();
    assert_eq!(profile.get_str("phone").unwrap(), "+1 555 0999");
    assert_equal_stores(&env).await;
}

#[tokio::test]
async fn two_workers_share_the_queues_and_lose_nothing() {
    let (env, pool) = generated("sync_two_workers", 0.02).await;
    migrate(&env).await;
    let options = SyncOptions {
        batch_size: 20,
        ..fast()
    };
    let (stop_a, a) = follow(syncer(&env, options).await);
    let (stop_b, b) = follow(syncer(&env, options).await);
    // Writers on overlapping keys while both workers run.
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..4u64 {
        let pool = pool.clone();
        writers.spawn(async move {
            for i in 0..150u64 {
                let key = 1 + (i * 7 + w) % 30;
                sqlx::query("UPDATE Customers SET phone = ? WHERE customer_id = ?")
                    .bind(format!("+1 {w} {i:05}"))
                    .bind(key)
                    .execute(&pool)
                    .await
                    .unwrap();
                sqlx::query("UPDATE Products SET price = price + 0.01 WHERE product_id = ?")
                    .bind(key)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(r) = writers.join_next().await {
        r.unwrap();
    }
    until_drained(&pool, Duration::from_secs(60)).await;
    stop_a.send_replace(true);
    stop_b.send_replace(true);
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert!(
        a.changes > 0 && b.changes > 0,
        "both workers took work: {a:?} {b:?}"
    );
    assert_eq!(
        a.changes + b.changes,
        1_200,
        "every change applied exactly once: {a:?} {b:?}"
    );
    assert_equal_stores(&env).await;
}

/// Applies the first half of the first batch, then hangs (until the task is aborted).
struct HangsMidBatch {
    inner: MongoSink,
    hanging: Arc<Notify>,
}

#[async_trait]
impl Sink for HangsMidBatch {
    async fn apply(&self, collection: &str, writes: &[Write]) -> Result<Vec<Refused>, SyncError> {
        if writes.len() >= 4 {
            self.inner
                .apply(collection, &writes[..writes.len() / 2])
                .await?;
            self.hanging.notify_one();
            std::future::pending::<()>().await;
        }
        self.inner.apply(collection, writes).await
    }
}

#[tokio::test]
async fn a_worker_killed_mid_batch_and_restarted_leaves_equal_stores() {
    let (env, pool) = generated("sync_killed", 0.02).await;
    migrate(&env).await;
    // Plenty of queued changes across the queues.
    sqlx::raw_sql(
        "UPDATE Customers SET phone = CONCAT('+1 555 ', customer_id);
         UPDATE Products SET price = price + 1;
         UPDATE Orders SET status = 'paid' WHERE status = 'pending';",
    )
    .execute(&pool)
    .await
    .unwrap();
    let before = queued(&pool).await;
    let hanging = Arc::new(Notify::new());
    let sink = HangsMidBatch {
        inner: MongoSink::new(env.mongo().await),
        hanging: hanging.clone(),
    };
    let crashing = Syncer::new(Arc::new(source(&env, fast()).await), Arc::new(sink), fast());
    let (_stop, task) = follow(crashing);
    tokio::time::timeout(Duration::from_secs(30), hanging.notified())
        .await
        .expect("a batch reached the sink");
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert!(
        queued(&pool).await > 0,
        "claimed entries are back in the queue"
    );
    assert!(queued(&pool).await <= before);

    let report = drain(&env).await;
    assert!(report.documents > 0, "{report:?}");
    assert_eq!(queued(&pool).await, 0);
    assert_equal_stores(&env).await;
}

/// A TCP proxy to MongoDB that can be cut (every connection dropped, new ones refused).
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    cut: Arc<Notify>,
}

impl Proxy {
    async fn start(target: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (up, cut) = (Arc::new(AtomicBool::new(true)), Arc::new(Notify::new()));
        let (up2, cut2) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let (target, cut) = (target.clone(), cut2.clone());
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.notified() => {}
                    }
                });
            }
        });
        Self { port, up, cut }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.notify_waiters();
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_mongodb_outage_is_retried_and_the_worker_catches_up() {
    let (env, pool) = seeded("sync_outage").await;
    migrate(&env).await;
    let proxy = Proxy::start(env.config.mongodb.endpoint().to_owned()).await;
    let mut options = env.config.mongodb.client_options().await.unwrap();
    options.hosts = vec![mongodb::options::ServerAddress::Tcp {
        host: "127.0.0.1".into(),
        port: Some(proxy.port),
    }];
    options.direct_connection = Some(true);
    options.server_selection_timeout = Some(Duration::from_millis(500));
    options.connect_timeout = Some(Duration::from_millis(500));
    let through_proxy = mongodb::Client::with_options(options)
        .unwrap()
        .database(env.config.mongodb.database());
    let source = source(&env, fast()).await;
    let probes = aethermart_core::sync::Probes::new(
        source.pool().clone(),
        env.config.mariadb.endpoint(),
        through_proxy.clone(),
        format!("127.0.0.1:{}", proxy.port),
    );
    let worker = Syncer::new(
        Arc::new(source),
        Arc::new(MongoSink::new(through_proxy)),
        fast(),
    );
    let metrics = worker.metrics();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = listener.local_addr().unwrap();
    let server = tokio::spawn(aethermart_core::sync::serve_http(
        listener,
        worker.metrics(),
        probes,
    ));
    let (stop, task) = follow(worker);

    sqlx::query("UPDATE Customers SET phone = '+1 000 0001' WHERE customer_id = 1")
        .execute(&pool)
        .await
        .unwrap();
    until_drained(&pool, Duration::from_secs(30)).await;
    assert_eq!(get(http, "/readyz").await, (200, "ready\n".to_owned()));
    assert_eq!(get(http, "/healthz").await.0, 200);

    proxy.down();
    for i in 0..20 {
        sqlx::query("UPDATE Products SET price = ? WHERE product_id = 1")
            .bind(1000 + i)
            .execute(&pool)
            .await
            .unwrap();
    }
    sqlx::query("UPDATE Customers SET phone = '+1 000 0002' WHERE customer_id = 2")
        .execute(&pool)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        queued(&pool).await > 0,
        "nothing can be applied while MongoDB is away"
    );
    let text = metrics.encode();
    assert!(
        text.lines()
            .any(|l| l.starts_with("aethermart_sync_retries_total") && !l.ends_with(" 0")),
        "retries are counted: {text}"
    );
    // Issue 18: while MongoDB is away the worker is alive but not ready, and the age of the
    // oldest pending change grows although nothing is applied.
    let (status, reasons) = get(http, "/readyz").await;
    assert_eq!(status, 503, "{reasons}");
    assert!(
        reasons.contains(&format!("MongoDB at 127.0.0.1:{}", proxy.port))
            && reasons.contains("the last write to MongoDB (within 60 s) failed"),
        "{reasons}"
    );
    assert_eq!(get(http, "/healthz").await.0, 200, "the loop still turns");
    let oldest = || async {
        let (_, text) = get(http, "/metrics").await;
        text.lines()
            .find(|l| {
                l.starts_with(
                    "aethermart_sync_oldest_pending_seconds{queue=\"product_sync_queue\"}",
                )
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let mut first = oldest().await;
    let waited = Instant::now();
    while first == 0.0 && waited.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        first = oldest().await;
    }
    assert!(first > 0.0, "the stalled queue's oldest change has an age");
    let mut later = first;
    while later <= first && waited.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        later = oldest().await;
    }
    assert!(
        later > first,
        "it grows while nothing is applied: {first} then {later}"
    );

    proxy.restore();
    until_drained(&pool, Duration::from_secs(60)).await;
    assert_eq!(get(http, "/readyz").await.0, 200, "ready again");
    server.abort();
    stop.send_replace(true);
    let report = task.await.unwrap();
    assert!(report.transient_errors > 0, "{report:?}");
    assert_equal_stores(&env).await;
    let profile = document(&env, "customer_profiles", 2).await.unwrap();
    assert_eq!(profile.get_str("phone").unwrap(), "+1 000 0002");
}

#[tokio::test]
async fn a_poison_change_lands_in_the_dead_letters_and_the_rest_flow_on() {
    let (env, pool) = seeded("sync_poison").await;
    migrate(&env).await;
    // An order without lines: MongoDB's validator refuses its document (lines: minItems 1).
    sqlx::query("INSERT INTO Orders (order_id, customer_id, status, total) VALUES (900001, 2, 'pending', 0)")
        .execute(&pool)
        .await
        .unwrap();
    let good = orders::place_order(&pool, aethermart_core::model::CustomerId(1), &[line(2, 1)])
        .await
        .unwrap();
    let report = drain(&env).await;
    assert_eq!(report.dead_lettered, 1, "{report:?}");
    assert_eq!(
        report.retried, 2,
        "two failed attempts before the third: {report:?}"
    );
    assert_eq!(
        queued(&pool).await,
        0,
        "the poison change no longer blocks the queue"
    );
    let (queue, key, attempts, error): (String, u64, u32, String) =
        sqlx::query_as("SELECT queue, entity_key, attempts, error FROM sync_dead_letters")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (queue.as_str(), key, attempts),
        ("order_sync_queue", 900001, 3)
    );
    assert!(
        error.contains("121"),
        "the validator's refusal is kept: {error}"
    );
    assert!(document(&env, "orders", 900001).await.is_none());
    assert!(
        document(&env, "orders", good.order_id.get() as i64)
            .await
            .is_some(),
        "the other changes flowed on"
    );
    // The customer of the poison order still gets an up-to-date summary.
    let profile = document(&env, "customer_profiles", 2).await.unwrap();
    assert_eq!(
        profile
            .get_document("orders")
            .unwrap()
            .get_i64("count")
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn changes_during_the_migration_are_replayed_after_it_and_the_stores_converge() {
    let (env, pool) = generated("sync_handoff", 0.02).await;
    assert_eq!(queued(&pool).await, 0, "a history load is not captured");
    // Application changes before the migration: it covers them, so it drops their entries.
    sqlx::query("UPDATE Customers SET phone = CONCAT('+1 ', customer_id) WHERE customer_id <= 150")
        .execute(&pool)
        .await
        .unwrap();
    let history = queued(&pool).await;
    assert_eq!(history, 150);
    let writing = Arc::new(AtomicBool::new(true));
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (pool, writing, written) = (pool.clone(), writing.clone(), written.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while writing.load(Ordering::SeqCst) || i < 50 {
                sqlx::query("UPDATE Customers SET phone = ? WHERE customer_id = ?")
                    .bind(format!("+1 9 {i:06}"))
                    .bind(1 + (i * 13) % 200)
                    .execute(&pool)
                    .await
                    .unwrap();
                sqlx::query("UPDATE Products SET stock = stock + 1 WHERE product_id = ?")
                    .bind(1 + i % 40)
                    .execute(&pool)
                    .await
                    .unwrap();
                i += 1;
                written.fetch_add(2, Ordering::SeqCst);
            }
        })
    };
    let migration = {
        let migrator = migrator(&env).await;
        tokio::spawn(async move {
            let options = MigrateOptions {
                batch_size: 100,
                ..MigrateOptions::default()
            };
            migrator
                .migrate(options, Arc::new(NoProgress))
                .await
                .unwrap()
        })
    };
    // A worker starts once the migration has dropped the covered history (its checkpoints
    // appear after that): it pauses while the migration holds its lock, then replays.
    let started = Instant::now();
    while support::count(&pool, "migration_checkpoints").await == 0 && !migration.is_finished() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the migration never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (stop, task) = follow(syncer(&env, fast()).await);
    let report = migration.await.unwrap();
    writing.store(false, Ordering::SeqCst);
    writer.await.unwrap();
    assert!(
        report.dropped_queue_entries as i64 >= history,
        "the changes covered by the migration are not replayed: {} < {history}",
        report.dropped_queue_entries
    );
    until_drained(&pool, Duration::from_secs(60)).await;
    stop.send_replace(true);
    let synced = task.await.unwrap();
    assert!(
        synced.changes as usize <= written.load(Ordering::SeqCst) + 10,
        "only changes made during or after the migration went through the worker: {synced:?}"
    );
    assert!(synced.changes > 0, "{synced:?}");
    assert_equal_stores(&env).await;
}

#[tokio::test]
async fn a_row_the_model_refuses_is_dead_lettered_without_stopping_the_worker() {
    let (env, pool) = seeded("sync_bad_row").await;
    migrate(&env).await;
    // MariaDB's CHECK accepts this address; the model refuses its empty domain label, so no
    // document can be built. Alone in its batch, it must still only count as failed attempts.
    sqlx::query("UPDATE Customers SET email = 'ana@.example.com' WHERE customer_id = 1")
        .execute(&pool)
        .await
        .unwrap();
    let report = drain(&env).await;
    assert_eq!(report.dead_lettered, 1, "{report:?}");
    sqlx::query("UPDATE Customers SET phone = '+1 555 0101' WHERE customer_id = 2")
        .execute(&pool)
        .await
        .unwrap();
    let report = drain(&env).await;
    assert_eq!((report.changes, report.dead_lettered), (1, 0), "{report:?}");
    let (key, error): (u64, String) =
        sqlx::query_as("SELECT entity_key, error FROM sync_dead_letters")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(key, 1);
    // The field, the key and the rule, never the value (finding 3 of issue 16): not in the
    // dead letter, not in the lineage rows (nor their OpenLineage events).
    assert!(
        error.contains("customer.email") && error.contains("customers 1"),
        "{error}"
    );
    let lineage: Vec<Option<String>> =
        sqlx::query_scalar("SELECT error FROM data_lineage_tracker WHERE error IS NOT NULL")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(
        !lineage.is_empty(),
        "the failed attempts are in the lineage"
    );
    for text in std::iter::once(Some(error)).chain(lineage) {
        let text = text.unwrap_or_default();
        assert!(!text.contains("ana@"), "the value leaked: {text}");
    }
    let profile = document(&env, "customer_profiles", 2).await.unwrap();
    assert_eq!(profile.get_str("phone").unwrap(), "+1 555 0101");
}

#[tokio::test]
async fn a_migration_run_again_keeps_queued_deletes_for_the_workers() {
    let (env, pool) = seeded("sync_rerun_deletes").await;
    migrate(&env).await;
    let placed = orders::place_order(&pool, aethermart_core::model::CustomerId(2), &[line(2, 1)])
        .await
        .unwrap();
    drain(&env).await;
    let id = placed.order_id.get() as i64;
    assert!(document(&env, "orders", id).await.is_some());
    // No worker runs: the order is cancelled and deleted, then the migration runs again.
    orders::cancel_order(&pool, placed.order_id).await.unwrap();
    sqlx::query("DELETE FROM Orders WHERE order_id = ?")
        .bind(placed.order_id.get())
        .execute(&pool)
        .await
        .unwrap();
    migrate(&env).await;
    assert!(
        document(&env, "orders", id).await.is_some(),
        "the migration writes rows, it does not remove documents"
    );
    drain(&env).await;
    assert!(
        document(&env, "orders", id).await.is_none(),
        "the kept delete removed it"
    );
    assert_equal_stores(&env).await;
}

/// Issue 18: the engineer lists, requeues and discards dead letters through the procedures,
/// each request in one transaction; an unknown id changes nothing.
#[tokio::test]
async fn an_engineer_lists_requeues_and_discards_dead_letters() {
    use aethermart_core::projection::Entity;
    use aethermart_core::sync::{self, DeadLetters, OperatorError, Resolution};
    let (env, admin) = seeded("sync_dead_letter_ops").await;
    aethermart_core::security::apply(&env.config.mariadb, &support::passwords())
        .await
        .unwrap();
    sqlx::raw_sql(
        "DELETE FROM customer_sync_queue; DELETE FROM order_sync_queue;
         INSERT INTO sync_dead_letters (queue, entity_key, operation, source_table, changed_at, attempts, error) VALUES
           ('customer_sync_queue', 1, 'update', 'Customers', NOW(6), 5, 'customers 1: customer.email is not a valid e-mail address'),
           ('order_sync_queue', 9, 'insert', 'Orders', NOW(6), 5, 'orders 9: document validation failed (code 121)'),
           ('customer_sync_queue', 2, 'update', 'Customers', NOW(6), 5, 'customers 2: customer.email is not a valid e-mail address');",
    )
    .execute(&admin)
    .await
    .unwrap();
    let maria = env
        .config
        .mariadb
        .with_login("maria", support::passwords().maria().clone());
    let pool =
        aethermart_core::connect::node_pool(&maria, aethermart_core::connect::PoolSize { max: 2 })
            .await
            .unwrap();

    let all = sync::dead_letters(&pool, None).await.unwrap();
    assert_eq!(all.len(), 3);
    let customers = sync::dead_letters(&pool, Some(Entity::Customers))
        .await
        .unwrap();
    assert_eq!(
        customers.iter().map(|d| d.entity_key).collect::<Vec<_>>(),
        vec![1, 2]
    );

    let unknown =
        sync::resolve_dead_letters(&pool, DeadLetters::Id(999_999), Resolution::Requeue).await;
    assert!(
        matches!(unknown, Err(OperatorError::UnknownDeadLetter(999_999))),
        "{unknown:?}"
    );
    assert_eq!(
        support::count(&admin, "sync_dead_letters").await,
        3,
        "nothing changed"
    );

    let requeued = sync::resolve_dead_letters(
        &pool,
        DeadLetters::Queue(Entity::Customers),
        Resolution::Requeue,
    )
    .await
    .unwrap();
    assert_eq!(requeued, 2);
    let back: Vec<(u64, String)> = sqlx::query_as(
        "SELECT entity_key, source_table FROM customer_sync_queue ORDER BY entity_key",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(back, vec![(1, "requeue".into()), (2, "requeue".into())]);
    let discarded = sync::resolve_dead_letters(&pool, DeadLetters::All, Resolution::Discard)
        .await
        .unwrap();
    assert_eq!(discarded, 1);
    assert_eq!(support::count(&admin, "sync_dead_letters").await, 0);
    assert_eq!(
        support::count(&admin, "order_sync_queue").await,
        0,
        "discarded, not requeued"
    );
    let log: Vec<(String, String)> =
        sqlx::query_as("SELECT operator, action FROM sync_operator_log ORDER BY operation_id")
            .fetch_all(&admin)
            .await
            .unwrap();
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(
        log.iter().all(|(who, _)| who.starts_with("maria@")),
        "{log:?}"
    );
    // Each is lineage too: a finished row per dead letter, naming the queue it went to.
    let lineage: Vec<(String, String, String, u64, String)> = sqlx::query_as(
        "SELECT job, source_tables, target, rows_written, status FROM data_lineage_tracker \
         WHERE job IN ('requeue', 'discard', 'resync') ORDER BY lineage_id",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    let db = env.config.mariadb.database();
    let row = |job: &str, queue: &str, written: u64| {
        (
            job.to_owned(),
            "sync_dead_letters".to_owned(),
            format!("mariadb:{db}.{queue}"),
            written,
            "complete".to_owned(),
        )
    };
    assert_eq!(
        lineage,
        vec![
            row("requeue", "customer_sync_queue", 1),
            row("requeue", "customer_sync_queue", 1),
            row("discard", "order_sync_queue", 0),
        ]
    );
}

/// Issue 18: a resync request queues exactly the chosen documents — by keys, by a `--where`
/// predicate over the entity's table (literals bound, hostile input refused before anything is
/// queued) or all — and a worker then rewrites a document lost in MongoDB.
#[tokio::test]
async fn resync_queues_exactly_the_chosen_documents_and_the_worker_rewrites_them() {
    use aethermart_core::projection::Entity;
    use aethermart_core::sync::{self, OperatorError, ResyncKeys};
    let (env, admin) = seeded("sync_resync").await;
    drain(&env).await;
    let queued_keys = |queue: &'static str| {
        let admin = admin.clone();
        async move {
            let keys: Vec<u64> = sqlx::query_scalar(&format!(
                "SELECT DISTINCT entity_key FROM {queue} ORDER BY entity_key"
            ))
            .fetch_all(&admin)
            .await
            .unwrap();
            sqlx::raw_sql(&format!("DELETE FROM {queue}"))
                .execute(&admin)
                .await
                .unwrap();
            keys
        }
    };
    let resync = |entity, keys| {
        let admin = admin.clone();
        async move { sync::request_resync(&admin, entity, keys, &NoProgress).await }
    };

    let n = resync(
        Entity::Customers,
        ResyncKeys::Where("customer_id = 2 OR email = 'ana@example.com'".into()),
    )
    .await
    .unwrap();
    assert_eq!(
        (n, queued_keys("customer_sync_queue").await),
        (2, vec![1, 2])
    );
    let n = resync(Entity::Products, ResyncKeys::Where("NOT is_active".into())).await;
    assert!(matches!(n, Err(OperatorError::Predicate(_))), "{n:?}");
    let n = resync(
        Entity::Products,
        ResyncKeys::Where("is_active = FALSE".into()),
    )
    .await
    .unwrap();
    assert_eq!((n, queued_keys("product_sync_queue").await), (1, vec![3]));
    let n = resync(Entity::Products, ResyncKeys::All).await.unwrap();
    assert_eq!(
        (n, queued_keys("product_sync_queue").await),
        (3, vec![1, 2, 3])
    );
    let n = resync(Entity::Orders, ResyncKeys::Keys(vec![5, 6, 5]))
        .await
        .unwrap();
    assert_eq!((n, queued_keys("order_sync_queue").await), (2, vec![5, 6]));

    // Hostile input: refused or matching nothing, and nothing queued or changed.
    for hostile in [
        "customer_id = 1; DROP TABLE Customers",
        "customer_id = 1 OR SLEEP(3)",
        "customer_id IN (SELECT customer_id FROM Customers)",
    ] {
        let r = resync(Entity::Customers, ResyncKeys::Where(hostile.into())).await;
        assert!(
            matches!(r, Err(OperatorError::Predicate(_))),
            "{hostile}: {r:?}"
        );
    }
    let r = resync(
        Entity::Customers,
        ResyncKeys::Where("email = 'x'' OR ''1''=''1'".into()),
    )
    .await;
    assert_eq!(r.unwrap(), 0, "a quote inside a literal is data");
    assert!(queued_keys("customer_sync_queue").await.is_empty());
    assert_eq!(support::count(&admin, "Customers").await, 2);

    // A document lost in MongoDB comes back from the current row.
    let profiles = env
        .mongo()
        .await
        .collection::<Document>("customer_profiles");
    profiles.delete_one(doc! { "_id": 2_i64 }).await.unwrap();
    resync(Entity::Customers, ResyncKeys::Keys(vec![2]))
        .await
        .unwrap();
    drain(&env).await;
    let back = profiles.find_one(doc! { "_id": 2_i64 }).await.unwrap();
    assert!(back.is_some_and(|d| d.get_str("email") == Ok("ben@example.com")));
}

/// A review follower on the test's stores, counting in `metrics`, until the sender says stop.
async fn follow_reviews(
    env: &TestEnv,
    metrics: Arc<aethermart_core::sync::SyncMetrics>,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let pool = source(env, fast()).await.pool().clone();
    let follower = aethermart_core::sync::ReviewFollower::new(pool, env.mongo().await, metrics);
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(async move { follower.run(crate::support::until_stopped(rx)).await });
    (tx, task)
}

/// `(count, average)` of a product document's rating.
async fn rating(env: &TestEnv, product: i64) -> (i64, Option<f64>) {
    let d = document(env, "products", product)
        .await
        .expect("the product's document");
    let r = d.get_document("rating").expect("a rating").clone();
    (r.get_i64("count").unwrap_or(-1), r.get_f64("average").ok())
}

/// Waits until product `product`'s rating is `expected` (panics after 20 s); returns how long.
async fn until_rating(env: &TestEnv, product: i64, expected: (i64, Option<f64>)) -> Duration {
    let started = Instant::now();
    loop {
        if rating(env, product).await == expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "product {product}: rating {:?}, expected {expected:?}",
            rating(env, product).await
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn review(id: i64, product: i64, stars: i32) -> Document {
    doc! { "_id": id, "product_id": product, "customer_id": 1_i64, "rating": stars, "title": "t",
    "text": "", "media": [], "created_at": mongodb::bson::DateTime::now() }
}

/// Issue 22: a review inserted, edited, moved and deleted refreshes its products' ratings
/// (printed: how long each took with a worker running); a product renamed in MariaDB while
/// reviews arrive ends with both; quality passes right after new reviews.
#[tokio::test]
async fn reviews_keep_product_ratings_fresh() {
    let (env, pool) = seeded("sync_reviews").await;
    migrate(&env).await;
    let worker = syncer(&env, fast()).await;
    let metrics = worker.metrics();
    let (stop, task) = follow(worker);
    let (stop_reviews, reviews_task) = follow_reviews(&env, metrics.clone()).await;
    let reviews = env.mongo().await.collection::<Document>("reviews");
    // The first start stores a position (after queuing every product once).
    let started = Instant::now();
    while sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM sync_stream_positions")
        .fetch_one(&pool)
        .await
        .unwrap()
        == 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no stream position stored"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    until_drained(&pool, Duration::from_secs(20)).await;

    reviews.insert_one(review(1, 1, 5)).await.unwrap();
    let inserted = until_rating(&env, 1, (1, Some(5.0))).await;
    reviews
        .update_one(doc! { "_id": 1_i64 }, doc! { "$set": { "rating": 3 } })
        .await
        .unwrap();
    let edited = until_rating(&env, 1, (1, Some(3.0))).await;
    reviews
        .update_one(
            doc! { "_id": 1_i64 },
            doc! { "$set": { "product_id": 2_i64 } },
        )
        .await
        .unwrap();
    let moved = until_rating(&env, 2, (1, Some(3.0))).await;
    until_rating(&env, 1, (0, Some(0.0))).await;
    reviews.delete_one(doc! { "_id": 1_i64 }).await.unwrap();
    let deleted = until_rating(&env, 2, (0, Some(0.0))).await;
    println!(
        "review to rating: insert {:.0} ms, edit {:.0} ms, move {:.0} ms, delete {:.0} ms",
        inserted.as_secs_f64() * 1e3,
        edited.as_secs_f64() * 1e3,
        moved.as_secs_f64() * 1e3,
        deleted.as_secs_f64() * 1e3
    );

    // A review naming no product MariaDB could hold (the validator allows it) refreshes nothing
    // and does not stop the stream: the reviews below still arrive.
    reviews.insert_one(review(99, -1, 5)).await.unwrap();

    // Renames in MariaDB and reviews in MongoDB at once: both end in the document.
    let (mariadb, mongo_reviews) = (pool.clone(), reviews.clone());
    let renames = tokio::spawn(async move {
        for i in 0..20 {
            sqlx::query("UPDATE Products SET name = ? WHERE product_id = 1")
                .bind(format!("RTX 4090 rev {i}"))
                .execute(&mariadb)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    });
    for i in 0..20 {
        mongo_reviews
            .insert_one(review(100 + i, 1, 1 + (i % 5) as i32))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    renames.await.unwrap();
    until_rating(&env, 1, (20, Some(3.0))).await;
    until_drained(&pool, Duration::from_secs(20)).await;
    let product = document(&env, "products", 1).await.unwrap();
    assert_eq!(product.get_str("name").unwrap(), "RTX 4090 rev 19");
    assert_equal_stores(&env).await;
    // The quality check would rightly call the product-less review an orphan.
    reviews.delete_one(doc! { "_id": 99_i64 }).await.unwrap();
    let report = aethermart_core::quality::run_checks(
        &pool,
        &env.mongo().await,
        &migrator(&env).await,
        aethermart_core::quality::QualityOptions {
            stale_after: Duration::from_secs(60),
        },
    )
    .await
    .unwrap();
    assert!(report.ok(), "quality right after new reviews: {report:?}");
    let counted = Instant::now();
    while !metrics
        .encode()
        .contains("aethermart_sync_review_events_total 26")
    {
        assert!(
            counted.elapsed() < Duration::from_secs(10),
            "26 review events counted: {}",
            metrics.encode()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    stop_reviews.send_replace(true);
    reviews_task.await.unwrap();
    stop.send_replace(true);
    task.await.unwrap();
}

/// Issue 22: a follower stopped between a review and its refresh resumes from its stored
/// position (only that product is queued); a position the server no longer knows makes the
/// next follower queue every product, and the ratings end right.
#[tokio::test]
async fn the_review_stream_resumes_and_a_lost_position_recomputes_every_rating() {
    let (env, pool) = seeded("sync_reviews_resume").await;
    migrate(&env).await;
    let metrics = Arc::new(aethermart_core::sync::SyncMetrics::default());
    let reviews = env.mongo().await.collection::<Document>("reviews");
    let queued_products = || async {
        sqlx::query_scalar::<_, u64>(
            "SELECT DISTINCT entity_key FROM product_sync_queue WHERE source_table LIKE 'reviews%' \
             ORDER BY entity_key",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    let position = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT CAST(events AS SIGNED) FROM sync_stream_positions WHERE stream = 'reviews'",
        )
        .fetch_optional(&pool)
        .await
        .unwrap()
    };
    let until_position = |events: i64| async move {
        let started = Instant::now();
        while position().await < Some(events) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "position not stored"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };

    // First start: every product queued once, position stored.
    let (stop, task) = follow_reviews(&env, metrics.clone()).await;
    until_position(0).await;
    assert_eq!(queued_products().await, vec![1, 2, 3]);
    sqlx::raw_sql("DELETE FROM product_sync_queue")
        .execute(&pool)
        .await
        .unwrap();
    stop.send_replace(true);
    task.await.unwrap();

    // A review while no follower runs: the next one resumes and queues that product only.
    reviews.insert_one(review(7, 2, 4)).await.unwrap();
    let (stop, task) = follow_reviews(&env, metrics.clone()).await;
    until_position(1).await;
    assert_eq!(queued_products().await, vec![2], "resumed, not recomputed");
    stop.send_replace(true);
    task.await.unwrap();
    sqlx::raw_sql("DELETE FROM product_sync_queue")
        .execute(&pool)
        .await
        .unwrap();

    // A position the server does not know (an oplog that moved on): every product again.
    let foreign =
        mongodb::bson::to_vec(&doc! { "_data": "8263F0A1B2000000012B0229296E04" }).unwrap();
    sqlx::query("UPDATE sync_stream_positions SET resume_token = ? WHERE stream = 'reviews'")
        .bind(foreign)
        .execute(&pool)
        .await
        .unwrap();
    reviews.insert_one(review(8, 3, 2)).await.unwrap();
    let (stop, task) = follow_reviews(&env, metrics.clone()).await;
    let started = Instant::now();
    while queued_products().await != vec![1, 2, 3] {
        if task.is_finished() {
            panic!("the follower stopped: {:?}", task.await);
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            queued_products().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send_replace(true);
    task.await.unwrap();
    drain(&env).await;
    assert_eq!(rating(&env, 2).await, (1, Some(4.0)));
    assert_eq!(rating(&env, 3).await, (1, Some(2.0)));
    assert_equal_stores(&env).await;
}
