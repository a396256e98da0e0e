//! High availability against real local topologies (`scripts/cluster.sh`): a primary with a
//! replica, and a 3-node Galera cluster. Nodes are killed and started again here, so the tests
//! of one topology run one at a time (a lock each).

use crate::support::{
    TestEnv, Topology, cluster_config, cluster_script, errno_of, generated_in, passwords,
    until_drained, until_equal,
};
use aethermart_core::cluster::{self, ClusterPool, NodeState, Role};
use aethermart_core::config::{Config, MariaDbConfig};
use aethermart_core::connect::{self, ConnectError, PoolSize};
use aethermart_core::migrate::{BulkMigrator, MigrateOptions, Migrator};
use aethermart_core::progress::NoProgress;
use aethermart_core::projection::{Entity, Refused};
use aethermart_core::schema::{MariaDbSchema, SchemaApplier};
use aethermart_core::security;
use aethermart_core::sync::{
    Acknowledged, Backlog, BinlogSource, Capture, ClaimedBatch, MongoSink, QueueSource,
    RetryPolicy, Sink, Source, SyncError, SyncOptions, Syncer, Write, capture,
};
use async_trait::async_trait;
use sqlx::MySqlPool;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Mutex as AsyncMutex;

/// Held by every test that uses (and may kill nodes of) a topology.
static REPLICA: AsyncMutex<()> = AsyncMutex::const_new(());
static GALERA: AsyncMutex<()> = AsyncMutex::const_new(());

/// Starts a killed node again when dropped (also when the test fails), so later tests and
/// runs find the topology whole.
struct Revive(&'static str, bool);

impl Revive {
    fn kill(node: &'static str) -> Self {
        cluster_script(&["kill", node]);
        Self(node, false)
    }

    fn now(mut self) {
        cluster_script(&["start", self.0]);
        self.1 = true;
    }
}

impl Drop for Revive {
    fn drop(&mut self) {
        if !self.1 {
            cluster_script(&["start", self.0]);
        }
    }
}

async fn node_pool(node: &MariaDbConfig) -> MySqlPool {
    connect::node_pool(node, PoolSize { max: 2 })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Waits until the replica applied everything the primary has logged (panics after 30 s).
async fn caught_up(primary: &MySqlPool, replica: &MySqlPool) {
    let position: String = sqlx::query_scalar("SELECT CAST(@@gtid_binlog_pos AS CHAR)")
        .fetch_one(primary)
        .await
        .unwrap();
    let waited: Option<i64> = sqlx::query_scalar("SELECT MASTER_GTID_WAIT(?, 30)")
        .bind(&position)
        .fetch_one(replica)
        .await
        .unwrap();
    assert_eq!(
        waited,
        Some(0),
        "the replica did not reach {position} within 30 s"
    );
}

async fn schema_on(env: &TestEnv) {
    MariaDbSchema::new(env.config.mariadb.clone())
        .apply()
        .await
        .expect("schema applies through the cluster's writable node");
}

#[tokio::test]
async fn the_replica_follows_the_primary_refuses_application_writes_and_lagging_reads() {
    let _topology = REPLICA.lock().await;
    let env = TestEnv::on(cluster_config(Topology::Replica), "replica").await;
    let [primary, replica]: [MariaDbConfig; 2] = env.config.mariadb.nodes().try_into().unwrap();

    // Roles as the nodes report them; writes go to the primary even though both are listed.
    let nodes = cluster::probe_nodes(&env.config.mariadb).await;
    let roles: Vec<Role> = nodes.iter().map(|n| n.info().expect("up").role).collect();
    assert_eq!(roles, [Role::Primary, Role::Replica]);
    let writer = cluster::writable_node(&env.config.mariadb).await.unwrap();
    assert_eq!(writer.endpoint(), primary.endpoint());

    schema_on(&env).await;
    security::apply(&env.config.mariadb, &passwords())
        .await
        .unwrap();
    let pool = cluster::writable_pool(&env.config.mariadb, PoolSize { max: 2 })
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO Customers (customer_id, first_name, last_name, email) \
         VALUES (7, 'Rui', 'Costa', 'rui@example.com')",
    )
    .execute(&pool)
    .await
    .unwrap();

    // The replica has it once it reached the primary's GTID position.
    let on_replica = node_pool(&replica).await;
    caught_up(&pool, &on_replica).await;
    let email: String = sqlx::query_scalar("SELECT email FROM Customers WHERE customer_id = 7")
        .fetch_one(&on_replica)
        .await
        .unwrap();
    assert_eq!(email, "rui@example.com");

    // Application users (admin role included) cannot write on the replica: 1290 read-only.
    let passwords = passwords();
    for (user, password) in [
        ("alex", passwords.alex()),
        (security::WORKER_USER, passwords.worker()),
    ] {
        let login = node_pool(&replica.with_login(user, password.clone())).await;
        let write = sqlx::query("UPDATE customer_sync_queue SET attempts = attempts + 1")
            .execute(&login)
            .await;
        assert_eq!(errno_of(write), 1290, "{user} wrote on the replica");
    }

    // Reporting reads: the replica serves them while fresh, and is refused once it lags.
    let (reader, _) = cluster::replica_node(&env.config.mariadb, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(reader.endpoint(), replica.endpoint());
    sqlx::raw_sql("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 30; START SLAVE")
        .execute(&on_replica)
        .await
        .unwrap();
    let restore = || async {
        sqlx::raw_sql("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 0; START SLAVE")
            .execute(&on_replica)
            .await
            .unwrap();
    };
    let started = Instant::now();
    let refused = loop {
        sqlx::query("UPDATE Customers SET last_name = ? WHERE customer_id = 7")
            .bind(format!("Costa {}", started.elapsed().as_millis()))
            .execute(&pool)
            .await
            .unwrap();
        // Right after START SLAVE the I/O thread may still be connecting ("replication
        // stopped", for a moment): wait for the refusal this test is about, the lag.
        match cluster::replica_node(&env.config.mariadb, Duration::from_secs(1)).await {
            Err(e) if e.to_string().contains("behind its primary") => break e,
            _ if started.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Ok(_) => {
                restore().await;
                panic!("a replica 30 s behind was still served for reads");
            }
            Err(e) => {
                restore().await;
                panic!("the lagging replica was refused for another reason: {e}");
            }
        }
    };
    restore().await;
    assert!(
        matches!(&refused, ConnectError::NoFreshReplica { reasons, .. }
            if reasons.contains(&replica.endpoint()) && reasons.contains("behind its primary")),
        "{refused}"
    );

    // The primary dies: shown as down next to the replica; no node takes writes, and the
    // error says why for each. Started again, replication resumes by itself.
    let dead = Revive::kill("primary");
    let nodes = cluster::probe_nodes(&env.config.mariadb).await;
    assert!(
        matches!(nodes[0].state, NodeState::Down { .. }),
        "{nodes:?}"
    );
    assert_eq!(nodes[1].info().expect("replica up").role, Role::Replica);
    let err = cluster::writable_node(&env.config.mariadb)
        .await
        .unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains(&format!("{} down", primary.endpoint()))
            && shown.contains(&format!("{} replica of another server", replica.endpoint())),
        "{shown}"
    );
    dead.now();
    let pool = cluster::writable_pool(&env.config.mariadb, PoolSize { max: 2 })
        .await
        .unwrap();
    sqlx::query("UPDATE Customers SET last_name = 'Costa' WHERE customer_id = 7")
        .execute(&pool)
        .await
        .unwrap();
    caught_up(&pool, &on_replica).await;
}

#[tokio::test]
async fn a_write_on_any_galera_node_appears_on_every_node() {
    let _topology = GALERA.lock().await;
    let env = TestEnv::on(cluster_config(Topology::Galera), "galera_writes").await;
    schema_on(&env).await;
    let nodes = env.config.mariadb.nodes();
    let mut pools = Vec::new();
    for node in &nodes {
        pools.push(node_pool(node).await);
    }
    for (i, pool) in pools.iter().enumerate() {
        // A causal read first (wsrep_sync_wait): the node has applied the schema written on
        // the first one before this node writes.
        sqlx::query("SELECT COUNT(*) FROM sync_settings")
            .execute(pool)
            .await
            .unwrap();
        // A local transaction that meets a write set being applied from another node is
        // aborted with 1213 (Galera's certification, seen once in CI right after the previous
        // node's write) or times out waiting for it (1205, seen once under load): applications
        // retry both, so does the test.
        let mut attempt = 0;
        loop {
            let written = sqlx::query(
                "INSERT INTO Customers (first_name, last_name, email) VALUES (?, 'Node', ?)",
            )
            .bind(format!("Written on {i}"))
            .bind(format!("node{i}@example.com"))
            .execute(pool)
            .await;
            match written {
                Ok(_) => break,
                Err(e)
                    if attempt < 5
                        && aethermart_core::orders::server_error(&e)
                            .is_some_and(|(n, _)| n == 1213 || n == 1205) =>
                {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => panic!("write on {}: {e}", nodes[i].endpoint()),
            }
        }
    }
    // wsrep_sync_wait (deploy/mariadb/galera-node.cnf) makes each read wait for the writes
    // committed anywhere before it.
    for (i, pool) in pools.iter().enumerate() {
        let seen: Vec<(u64, String)> =
            sqlx::query_as("SELECT customer_id, first_name FROM Customers ORDER BY email")
                .fetch_all(pool)
                .await
                .unwrap();
        let names: Vec<&str> = seen.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(
            names,
            ["Written on 0", "Written on 1", "Written on 2"],
            "on {}",
            nodes[i].endpoint()
        );
    }
    let status = cluster::probe_nodes(&env.config.mariadb).await;
    for node in &status {
        let galera = node
            .info()
            .and_then(|i| i.galera.clone())
            .expect("Galera node up");
        assert_eq!((galera.state.as_str(), galera.cluster_size), ("Synced", 3));
    }
}

/// `cfg` with its nodes listed in another order (indexes into [`MariaDbConfig::nodes`]).
fn with_hosts(cfg: &MariaDbConfig, order: &[usize]) -> MariaDbConfig {
    use aethermart_core::config::{MARIADB_PASSWORD, MARIADB_URL};
    let nodes = cfg.nodes();
    let hosts: Vec<String> = order.iter().map(|&i| nodes[i].endpoint()).collect();
    let url = format!(
        "mysql://{}@{}/{}",
        cfg.user(),
        hosts.join(","),
        cfg.database()
    );
    let password = std::env::var("AETHERMART_TEST_CLUSTER_PASSWORD").expect("cluster password");
    MariaDbConfig::from_lookup(|var| match var {
        MARIADB_URL => Some(url.clone()),
        MARIADB_PASSWORD => Some(password.clone()),
        _ => None,
    })
    .unwrap()
}

/// Each node's server identity (`@@hostname:@@port`), in order.
async fn servers_of(nodes: &[MariaDbConfig]) -> Vec<String> {
    let mut servers = Vec::new();
    for node in nodes {
        let status = cluster::probe_node(node).await;
        servers.push(status.info().expect("node up").server.clone());
    }
    servers
}

/// Waits until both workers' pools are on the node `sync_home` names, and returns it.
async fn until_home_shared(a: &ClusterPool, b: &ClusterPool, any: &ClusterPool) -> String {
    let started = Instant::now();
    loop {
        let home: Option<String> = sqlx::query_scalar("SELECT server FROM sync_home WHERE id = 1")
            .fetch_optional(any.pool())
            .await
            .unwrap();
        if let Some(home) = home
            && a.server().as_ref() == Some(&home)
            && b.server().as_ref() == Some(&home)
        {
            return home;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "workers not together on the sync home: {:?} / {:?}",
            a.server(),
            b.server()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_batch_acknowledged_after_the_sync_home_moved_queues_its_keys_again() {
    let _topology = GALERA.lock().await;
    let env = TestEnv::on(cluster_config(Topology::Galera), "galera_home").await;
    schema_on(&env).await;
    let (source, _) = QueueSource::connect(&env.config, &SyncOptions::default(), 4)
        .await
        .unwrap();
    let pool = source.pool().pool().clone();
    sqlx::raw_sql(crate::support::SEED)
        .execute(&pool)
        .await
        .unwrap();
    // The first claim finds no home and makes this node the home; claims start once the home
    // has settled.
    let started = Instant::now();
    let batch = loop {
        if let Some(batch) = source.claim(Entity::Customers, 50).await.unwrap() {
            break batch;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no claim on the new home"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let home: String = sqlx::query_scalar("SELECT server FROM sync_home")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(Some(home), source.pool().server());
    let mut keys: Vec<i64> = batch.writes().iter().map(|w| w.key).collect();
    keys.sort();
    assert_eq!(keys, [1, 2]);

    // Another worker moves the home while this batch is in flight: acknowledging it must
    // queue its keys again, so the new home writes their latest state after this batch did.
    sqlx::query("UPDATE sync_home SET server = 'elsewhere:3306' WHERE id = 1")
        .execute(&pool)
        .await
        .unwrap();
    batch
        .acknowledge(Vec::new(), SyncOptions::default().retry_policy())
        .await
        .unwrap();
    let queued: Vec<(u64, String)> = sqlx::query_as(
        "SELECT entity_key, source_table FROM customer_sync_queue ORDER BY entity_key",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        queued,
        [(1, "sync_home".to_owned()), (2, "sync_home".to_owned())]
    );
}

/// One batch's critical section: from the moment its claim returned (key locks held) to the
/// moment its acknowledgement started (locks still held), and the keys it wrote.
#[derive(Debug, Clone)]
struct Held {
    worker: usize,
    collection: String,
    keys: Vec<i64>,
    from: Instant,
    to: Instant,
}

/// A [`QueueSource`] that records every batch's [`Held`] interval.
struct Recorded {
    inner: QueueSource,
    worker: usize,
    log: Arc<Mutex<Vec<Held>>>,
}

struct RecordedBatch {
    inner: Box<dyn ClaimedBatch>,
    worker: usize,
    from: Instant,
    log: Arc<Mutex<Vec<Held>>>,
}

impl RecordedBatch {
    fn record(&self) {
        self.log.lock().unwrap().push(Held {
            worker: self.worker,
            collection: self.inner.collection().to_owned(),
            keys: self.inner.writes().iter().map(|w| w.key).collect(),
            from: self.from,
            to: Instant::now(),
        });
    }
}

#[async_trait]
impl Source for Recorded {
    async fn claim(
        &self,
        entity: Entity,
        limit: u32,
    ) -> Result<Option<Box<dyn ClaimedBatch>>, SyncError> {
        let batch = self.inner.claim(entity, limit).await?;
        Ok(batch.map(|inner| {
            Box::new(RecordedBatch {
                inner,
                worker: self.worker,
                from: Instant::now(),
                log: self.log.clone(),
            }) as Box<dyn ClaimedBatch>
        }))
    }

    async fn backlog(&self, entity: Entity) -> Result<Backlog, SyncError> {
        self.inner.backlog(entity).await
    }
}

#[async_trait]
impl ClaimedBatch for RecordedBatch {
    fn collection(&self) -> &str {
        self.inner.collection()
    }
    fn writes(&self) -> &[Write] {
        self.inner.writes()
    }
    fn changes(&self) -> u64 {
        self.inner.changes()
    }
    fn lag_seconds(&self) -> f64 {
        self.inner.lag_seconds()
    }
    async fn acknowledge(
        self: Box<Self>,
        failed: Vec<Refused>,
        policy: RetryPolicy,
    ) -> Result<Acknowledged, SyncError> {
        self.record();
        self.inner.acknowledge(failed, policy).await
    }
    async fn abandon(self: Box<Self>) {
        self.record();
        self.inner.abandon().await
    }
}

/// Panics when two batches (of any workers or lanes) held one key at the same time.
fn assert_no_key_held_twice(held: &[Held]) {
    let mut by_key: BTreeMap<(&str, i64), Vec<&Held>> = BTreeMap::new();
    for h in held {
        for key in &h.keys {
            by_key
                .entry((h.collection.as_str(), *key))
                .or_default()
                .push(h);
        }
    }
    for ((collection, key), mut holders) in by_key {
        holders.sort_by_key(|h| h.from);
        for pair in holders.windows(2) {
            assert!(
                pair[0].to <= pair[1].from,
                "{collection} key {key} held twice at once (workers {} and {})",
                pair[0].worker,
                pair[1].worker
            );
        }
    }
}

/// Records when each batch reached MongoDB (the worker's progress).
struct Timed {
    inner: MongoSink,
    applied: Mutex<Vec<Instant>>,
}

#[async_trait]
impl Sink for Timed {
    async fn apply(&self, collection: &str, writes: &[Write]) -> Result<Vec<Refused>, SyncError> {
        let refused = self.inner.apply(collection, writes).await?;
        self.applied.lock().unwrap().push(Instant::now());
        Ok(refused)
    }
}

/// What one application writer did: the last value it wrote to each customer, and when each
/// write succeeded.
#[derive(Default)]
struct Written {
    names: BTreeMap<u64, String>,
    succeeded: Vec<Instant>,
    failures: u64,
}

/// Writes until `stop`: renames its customers in turn and adds a customer every tenth write,
/// each write retried until it succeeds (both are idempotent, so a write whose commit was lost
/// with its connection is simply written again).
async fn write_continuously(
    pool: ClusterPool,
    writer: u64,
    customers: Vec<u64>,
    stop: Arc<AtomicBool>,
) -> Written {
    let mut done = Written::default();
    let mut seq = 0u64;
    while !stop.load(Ordering::SeqCst) {
        seq += 1;
        let (id, name, insert) = if seq % 10 == 0 {
            (
                1_000_000 + writer * 100_000 + seq,
                format!("New {writer}-{seq}"),
                true,
            )
        } else {
            let id = customers[(seq as usize) % customers.len()];
            (id, format!("W{writer} #{seq}"), false)
        };
        loop {
            let result = if insert {
                sqlx::query(
                    "INSERT INTO Customers (customer_id, first_name, last_name, email) \
                     VALUES (?, ?, 'Writer', ?) \
                     ON DUPLICATE KEY UPDATE first_name = VALUES(first_name)",
                )
                .bind(id)
                .bind(&name)
                .bind(format!("new{id}@example.com"))
                .execute(pool.pool())
                .await
            } else {
                sqlx::query("UPDATE Customers SET first_name = ? WHERE customer_id = ?")
                    .bind(&name)
                    .bind(id)
                    .execute(pool.pool())
                    .await
            };
            match result {
                Ok(_) => break,
                Err(_) => {
                    done.failures += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        done.names.insert(id, name);
        done.succeeded.push(Instant::now());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_galera_node_killed_under_writes_loses_nothing_and_rejoins() {
    let _topology = GALERA.lock().await;
    let env = TestEnv::on(cluster_config(Topology::Galera), "galera_failover").await;
    let (env, _) = generated_in(env, 5, 0.003).await;
    let mongo = env.mongo().await;
    let migrator = BulkMigrator::new(env.config.mariadb.clone(), mongo.clone());
    assert!(
        migrator
            .migrate(MigrateOptions::default(), Arc::new(NoProgress))
            .await
            .unwrap()
            .clean()
    );
    let nodes = env.config.mariadb.nodes();
    let writers_pool = ClusterPool::connect(&env.config.mariadb, PoolSize { max: 4 })
        .await
        .unwrap();
    assert_eq!(writers_pool.node(), Some(nodes[0].endpoint()));

    // Two sync workers, each on its own cluster pool: A lists the nodes g1, g2, g3, B lists
    // them g3, g2, g1. They must still claim on one node, the sync home.
    let options = SyncOptions {
        backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        ..SyncOptions::default()
    };
    let sink = Arc::new(Timed {
        inner: MongoSink::new(mongo.clone()),
        applied: Mutex::new(Vec::new()),
    });
    let (stop_workers, stopped) = tokio::sync::watch::channel(false);
    let held = Arc::new(Mutex::new(Vec::new()));
    let start_worker = |config: Config, worker: usize| {
        let (sink, stopped, log) = (sink.clone(), stopped.clone(), held.clone());
        async move {
            let (source, _) = QueueSource::connect(&config, &options, 4).await.unwrap();
            let pool = source.pool().clone();
            let source = Recorded {
                inner: source,
                worker,
                log,
            };
            let worker = Syncer::new(Arc::new(source), sink, options);
            (
                pool,
                tokio::spawn(
                    async move { worker.run(crate::support::until_stopped(stopped)).await },
                ),
            )
        }
    };
    let reversed = Config {
        mariadb: with_hosts(&env.config.mariadb, &[2, 1, 0]),
        mongodb: env.config.mongodb.clone(),
    };
    let (pool_a, worker_a) = start_worker(env.config.clone(), 0).await;

    // Two writers on their shared cluster pool, each on its own customers.
    let ids: Vec<u64> =
        sqlx::query_scalar("SELECT customer_id FROM Customers ORDER BY customer_id LIMIT 40")
            .fetch_all(writers_pool.pool())
            .await
            .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2u64)
        .map(|w| {
            let mine = ids.iter().copied().skip(w as usize).step_by(2).collect();
            tokio::spawn(write_continuously(
                writers_pool.clone(),
                w,
                mine,
                stop.clone(),
            ))
        })
        .collect();

    // A claims first and makes its node (g1) the home; B, started on g3, follows it there.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (pool_b, worker_b) = start_worker(reversed, 1).await;
    let servers = servers_of(&nodes).await;
    let home = until_home_shared(&pool_a, &pool_b, &writers_pool).await;
    assert_eq!(home, servers[0], "the first worker's node became the home");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let kill_sent = Instant::now();
    let dead = Revive::kill("g1");
    // The script returns once the process is gone.
    let killed_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(12)).await;
    stop.store(true, Ordering::SeqCst);
    let mut written = Vec::new();
    for writer in writers {
        written.push(writer.await.unwrap());
    }
    assert_eq!(
        writers_pool.node(),
        Some(nodes[1].endpoint()),
        "writes moved to g2"
    );
    let home = until_home_shared(&pool_a, &pool_b, &writers_pool).await;
    assert_ne!(home, servers[0], "the home moved off the dead node");
    until_drained(writers_pool.pool(), Duration::from_secs(60)).await;
    stop_workers.send_replace(true);
    let (a, b) = (worker_a.await.unwrap(), worker_b.await.unwrap());
    let (a, b) = (
        a.expect("worker A rode out the failover"),
        b.expect("worker B rode out the failover"),
    );

    // Nothing lost: MariaDB holds every writer's last value, and MongoDB equals MariaDB.
    for done in &written {
        for (id, name) in &done.names {
            let now: String =
                sqlx::query_scalar("SELECT first_name FROM Customers WHERE customer_id = ?")
                    .bind(id)
                    .fetch_one(writers_pool.pool())
                    .await
                    .unwrap();
            assert_eq!(&now, name, "customer {id}");
        }
    }
    let verified = migrator.verify().await.unwrap();
    assert!(
        verified.equal(),
        "stores differ after the failover: {verified:?}"
    );
    assert_eq!(a.dead_lettered + b.dead_lettered, 0);
    // The sync home's point: never two workers on one key at once, across the failover.
    let held = held.lock().unwrap().clone();
    assert!(held.iter().any(|h| h.worker == 0) && held.iter().any(|h| h.worker == 1));
    assert_no_key_held_twice(&held);

    // The figures: the longest gap around the kill between successful writes through the
    // cluster pool (the failover time) and between batches of the worker (its pause).
    let gap_around_kill = |mut times: Vec<Instant>| {
        times.sort();
        times
            .windows(2)
            .filter(|w| w[0] <= killed_at && w[1] >= kill_sent)
            .map(|w| w[1].duration_since(w[0]))
            .max()
            .expect("progress before and after the kill")
    };
    let failover = gap_around_kill(written.iter().flat_map(|d| d.succeeded.clone()).collect());
    let pause = gap_around_kill(sink.applied.lock().unwrap().clone());
    let writes: usize = written.iter().map(|d| d.succeeded.len()).sum();
    let failures: u64 = written.iter().map(|d| d.failures).sum();
    eprintln!(
        "galera failover: writes paused {:.2} s around the kill; worker paused {:.2} s; \
         {writes} writes ({failures} failed attempts retried), {} + {} changes synced by the \
         two workers",
        failover.as_secs_f64(),
        pause.as_secs_f64(),
        a.changes,
        b.changes
    );

    // The node rejoins (by IST), holds the same data, and the pool comes back to it.
    dead.now();
    let checksum = "SELECT COUNT(*), CAST(SUM(CRC32(CONCAT(customer_id, first_name, email))) AS SIGNED) \
                    FROM Customers";
    let mut sums = Vec::new();
    for node in &nodes {
        let sum: (i64, i64) = sqlx::query_as(checksum)
            .fetch_one(&node_pool(node).await)
            .await
            .unwrap();
        sums.push(sum);
    }
    assert!(
        sums.windows(2).all(|w| w[0] == w[1]),
        "nodes differ: {sums:?}"
    );
    for node in cluster::probe_nodes(&env.config.mariadb).await {
        let galera = node.info().and_then(|i| i.galera.clone()).expect("node up");
        assert_eq!(
            (galera.state.as_str(), galera.cluster_size),
            ("Synced", 3),
            "{}",
            node.endpoint
        );
    }
    let back = Instant::now();
    while writers_pool.node() != Some(nodes[0].endpoint()) {
        assert!(
            back.elapsed() < Duration::from_secs(20),
            "the pool did not return to g1"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        writers_pool.switches() >= 2,
        "{} switches",
        writers_pool.switches()
    );
    sqlx::query("UPDATE Customers SET first_name = 'Back' WHERE customer_id = ?")
        .bind(ids[0])
        .execute(writers_pool.pool())
        .await
        .expect("writes go to g1 again");
}

/// Binlog capture on Galera (cluster item 2): the reader follows g1's binlog; g1 is killed
/// under writes through the cluster-aware pool; the reader moves to another node and goes on
/// from the same GTID position (the cluster's GTIDs are equal on every node), without a gap
/// or a re-snapshot: the stores end equal, nothing dead-lettered. Prints the time from the
/// kill to the first transaction read from the new node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binlog_capture_on_galera_goes_on_from_another_node_when_its_node_dies() {
    let _topology = GALERA.lock().await;
    let (env, _) = binlog_database(Topology::Galera, "galera_binlog").await;
    let nodes = env.config.mariadb.nodes();
    let (source, syncer) = binlog_syncer(&env.config, quick_retries()).await;
    source
        .wait_caught_up(Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        source.reading_from(),
        nodes[0].endpoint(),
        "every node takes writes: the reader starts on the first"
    );
    source.attach_metrics(syncer.metrics());
    let metrics = syncer.metrics();
    let (stop_sync, stopped) = tokio::sync::watch::channel(false);
    let sync =
        tokio::spawn(async move { syncer.run(crate::support::until_stopped(stopped)).await });

    let writers_pool = ClusterPool::connect(&env.config.mariadb, PoolSize { max: 4 })
        .await
        .unwrap();
    let ids: Vec<u64> =
        sqlx::query_scalar("SELECT customer_id FROM Customers ORDER BY customer_id LIMIT 40")
            .fetch_all(writers_pool.pool())
            .await
            .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2u64)
        .map(|w| {
            let mine = ids.iter().copied().skip(w as usize).step_by(2).collect();
            tokio::spawn(write_continuously(
                writers_pool.clone(),
                w,
                mine,
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let dead = Revive::kill("g1");
    let killed_at = Instant::now();
    let at_kill = source.read_position();
    // Moved: reading another node, and past where it was when g1 died.
    let mut connected = None;
    let moved = loop {
        if source.reading_from() != nodes[0].endpoint() {
            connected.get_or_insert_with(|| killed_at.elapsed());
            if !at_kill.covers(&source.read_position()) {
                break killed_at.elapsed();
            }
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(30),
            "the reader did not move on from g1 within 30 s (reading {}, at {})",
            source.reading_from(),
            source.read_position()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    let mut written = Vec::new();
    for writer in writers {
        written.push(writer.await.unwrap());
    }
    until_equal(
        &env.config,
        Duration::from_secs(60),
        "after the writes ended",
    )
    .await;
    for done in &written {
        for (id, name) in &done.names {
            let now: String =
                sqlx::query_scalar("SELECT first_name FROM Customers WHERE customer_id = ?")
                    .bind(id)
                    .fetch_one(writers_pool.pool())
                    .await
                    .unwrap();
            assert_eq!(&now, name, "customer {id}");
        }
    }
    stop_sync.send_replace(true);
    let report = sync
        .await
        .unwrap()
        .expect("the sync rode out the node's death");
    assert_eq!(report.dead_lettered, 0, "{report:?}");
    // One move off the dead node at least; more when the next node had not yet written the
    // last transaction read (it refuses the position, the reader tries again).
    let moves: f64 = metrics
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix("aethermart_sync_binlog_source_moves_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(moves >= 1.0, "the move is counted ({moves})");
    let writes: usize = written.iter().map(|d| d.succeeded.len()).sum();
    eprintln!(
        "galera binlog: g1 killed under {writes} writes; the reader followed {} {:.2} s later \
         and read its first new transaction {:.2} s after the kill (the cluster's writes stall \
         until it evicts the dead node), from GTID {at_kill} on; {} changes synced, {moves} \
         moves",
        source.reading_from(),
        connected.unwrap_or(moved).as_secs_f64(),
        moved.as_secs_f64(),
        report.changes
    );
    dead.now();
}

/// Binlog capture from a replica (cluster item 3): with the primary and the replica in the
/// URL the reader follows the replica (offloading the primary) with the primary's GTIDs while
/// writes go to the primary. Then the primary dies and the replica is promoted by hand (as
/// deploy/README.md says): a new worker resumes from the stored position on the promoted
/// node, without a re-snapshot, and the writes made there reach MongoDB too. The pair is
/// rebuilt afterwards (also when the test fails).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binlog_capture_follows_the_replica_and_keeps_its_position_when_it_is_promoted() {
    /// Rebuilds the primary-replica pair when dropped.
    struct Rebuild;
    impl Drop for Rebuild {
        fn drop(&mut self) {
            cluster_script(&["up", "replica"]);
        }
    }
    let _topology = REPLICA.lock().await;
    let (env, mongo) = binlog_database(Topology::Replica, "replica_binlog").await;
    let nodes = env.config.mariadb.nodes();
    let until_equal = |when: &'static str| until_equal(&env.config, Duration::from_secs(60), when);
    let writes = |pool: ClusterPool, tag: &'static str| async move {
        for i in 0..50u64 {
            sqlx::query("UPDATE Customers SET first_name = ? WHERE customer_id = ?")
                .bind(format!("{tag} {i}"))
                .bind(i % 20 + 1)
                .execute(pool.pool())
                .await
                .unwrap();
        }
    };

    let (source, syncer) = binlog_syncer(&env.config, quick_retries()).await;
    assert_eq!(
        source.reading_from(),
        nodes[1].endpoint(),
        "the reader follows the replica"
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let sync =
        tokio::spawn(async move { syncer.run(crate::support::until_stopped(stopped)).await });
    let pool = ClusterPool::connect(&env.config.mariadb, PoolSize { max: 2 })
        .await
        .unwrap();
    assert_eq!(
        pool.node(),
        Some(nodes[0].endpoint()),
        "writes go to the primary"
    );
    writes(pool.clone(), "Primary").await;
    until_equal("reading the replica").await;

    // The replica stops applying (its SQL thread stopped): it answers, sends heartbeats and
    // nothing else. The reader leaves it for the primary once it trailed for 10 s.
    let replica = node_pool(&nodes[1]).await;
    sqlx::query("STOP SLAVE SQL_THREAD")
        .execute(&replica)
        .await
        .unwrap();
    let stopped_at = Instant::now();
    writes(pool.clone(), "Stalled").await;
    while source.reading_from() != nodes[0].endpoint() {
        assert!(
            stopped_at.elapsed() < Duration::from_secs(40),
            "the reader stayed on the stalled replica"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left_after = stopped_at.elapsed();
    until_equal("after leaving the stalled replica").await;
    sqlx::query("START SLAVE SQL_THREAD")
        .execute(&replica)
        .await
        .unwrap();
    caught_up(pool.pool(), &replica).await;
    let primary_gtids: String = sqlx::query_scalar("SELECT @@gtid_binlog_pos")
        .fetch_one(pool.pool())
        .await
        .unwrap();
    stop.send_replace(true);
    assert_eq!(sync.await.unwrap().unwrap().dead_lettered, 0);
    source.flush().await.unwrap();
    let stored =
        aethermart_core::binlog_position::store::load(&mongo, env.config.mariadb.database())
            .await
            .unwrap()
            .unwrap();
    assert!(
        stored.position.covers(&primary_gtids.parse().unwrap()),
        "the stored position is the primary's GTIDs: {} / {primary_gtids}",
        stored.position
    );
    drop((source, pool));

    // The primary is lost; the replica is promoted by hand.
    let _rebuild = Rebuild;
    cluster_script(&["kill", "primary"]);
    cluster_script(&["promote"]);
    let (source, syncer) = binlog_syncer(&env.config, quick_retries()).await;
    assert_eq!(source.reading_from(), nodes[1].endpoint());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let sync =
        tokio::spawn(async move { syncer.run(crate::support::until_stopped(stopped)).await });
    let pool = ClusterPool::connect(&env.config.mariadb, PoolSize { max: 2 })
        .await
        .unwrap();
    assert_eq!(
        pool.node(),
        Some(nodes[1].endpoint()),
        "writes go to the promoted replica"
    );
    writes(pool.clone(), "Promoted").await;
    until_equal("after the promotion").await;
    stop.send_replace(true);
    let report = sync.await.unwrap().unwrap();
    assert_eq!(report.dead_lettered, 0, "{report:?}");
    assert!(
        report.changes >= 20,
        "the promoted node's writes were read: {report:?}"
    );
    eprintln!(
        "replica source: read the replica with the primary's GTIDs up to {primary_gtids}; left the \
         stalled replica for the primary {:.1} s after its replication stopped; after the \
         promotion the next worker resumed on it and applied {} changes",
        left_after.as_secs_f64(),
        report.changes
    );
}

/// A Galera node rebuilt by a full state transfer has only the donor's newest binlog (cluster
/// item 2): with that node alone, a reader whose position is older stops, naming the position,
/// the node and `aethermart migrate`; with the whole cluster it skips the node and reads
/// another one at the same GTID position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_galera_node_rebuilt_by_sst_is_skipped_and_alone_stops_capture_naming_the_fix() {
    use aethermart_core::sync::BinlogError;
    let _topology = GALERA.lock().await;
    let (env, mongo) = binlog_database(Topology::Galera, "galera_sst").await;
    let nodes = env.config.mariadb.nodes();
    let pool = ClusterPool::connect(&env.config.mariadb, PoolSize { max: 2 })
        .await
        .unwrap();
    for id in 1..=5u64 {
        sqlx::query("UPDATE Customers SET first_name = 'Before SST' WHERE customer_id = ?")
            .bind(id)
            .execute(pool.pool())
            .await
            .unwrap();
    }
    drop(pool);
    cluster_script(&["sst", "g1"]);

    // g1 alone cannot serve the position.
    let g1_only = Config {
        mariadb: nodes[0].clone(),
        mongodb: env.config.mongodb.clone(),
    };
    let (source, syncer) = binlog_syncer(&g1_only, SyncOptions::default()).await;
    let stopped = tokio::time::timeout(Duration::from_secs(30), syncer.drain())
        .await
        .expect("the capture stops")
        .unwrap_err();
    assert!(
        matches!(stopped, SyncError::Binlog(BinlogError::Purged { .. })),
        "{stopped}"
    );
    let message = stopped.to_string();
    assert!(
        message.contains(&nodes[0].endpoint()) && message.contains("aethermart migrate"),
        "names the node and the fix: {message}"
    );
    drop((syncer, source));

    // The cluster: g1 is skipped, g2 serves the position.
    let (source, syncer) = binlog_syncer(&env.config, SyncOptions::default()).await;
    source.attach_metrics(syncer.metrics());
    let report = tokio::time::timeout(Duration::from_secs(60), syncer.drain())
        .await
        .expect("the capture drains")
        .unwrap();
    assert_eq!(report.dead_lettered, 0, "{report:?}");
    assert_eq!(source.reading_from(), nodes[1].endpoint(), "g1 was skipped");
    let verified = BulkMigrator::new(env.config.mariadb.clone(), mongo)
        .verify()
        .await
        .unwrap();
    assert!(verified.equal(), "{verified:?}");
    eprintln!(
        "galera SST: g1 alone stopped capture ({message}); the cluster read g2 from the same position"
    );
}

/// A database of the test on `topology`: generated (5 days of a small shop), capture switched
/// to binlog, migrated (its position recorded); with its MongoDB database.
async fn binlog_database(topology: Topology, test: &str) -> (TestEnv, mongodb::Database) {
    let env = TestEnv::on(cluster_config(topology), test).await;
    let (env, _) = generated_in(env, 5, 0.003).await;
    capture::switch(&env.config, Capture::Binlog, "test")
        .await
        .unwrap();
    let mongo = env.mongo().await;
    let migrated = BulkMigrator::new(env.config.mariadb.clone(), mongo.clone())
        .migrate(MigrateOptions::default(), Arc::new(NoProgress))
        .await
        .unwrap();
    assert!(migrated.clean(), "{migrated:?}");
    (env, mongo)
}

/// The binlog lease of `config`'s database, a source reading its binlog and a syncer over it.
async fn binlog_syncer(config: &Config, options: SyncOptions) -> (BinlogSource, Syncer) {
    let lease = crate::support::lead(config).await;
    let (source, mongo) = BinlogSource::connect(config, &options, 4, &lease)
        .await
        .unwrap();
    let syncer = Syncer::new(
        Arc::new(source.clone()),
        Arc::new(MongoSink::new(mongo)),
        options,
    );
    (source, syncer)
}

/// Sync options that retry within half a second (a node's death is ridden out quickly).
fn quick_retries() -> SyncOptions {
    SyncOptions {
        backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        ..SyncOptions::default()
    }
}
