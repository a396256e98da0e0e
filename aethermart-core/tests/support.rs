//! Shared test setup: configuration from the environment, one uniquely named database per test.

use aethermart_core::config::{Config, MARIADB_URL, MONGODB_URI};
use aethermart_core::{cluster, connect};
use sqlx::MySqlPool;
use std::sync::atomic::{AtomicU32, Ordering};

/// The tests' binlog lease TTL (the worker's default: a MongoDB outage shorter than it keeps
/// the leader). A syncer started after another one's source was dropped does not wait for it:
/// the lease is given up when dropped.
pub const LEASE_TTL: std::time::Duration = aethermart_core::sync::leadership::DEFAULT_TTL;

/// The binlog lease of `config`'s database for a test (given up when dropped); panics when it
/// cannot be taken within four TTLs.
pub async fn lead(config: &Config) -> aethermart_core::sync::Lease {
    let mongo = connect::mongodb_database(&config.mongodb).await.unwrap();
    aethermart_core::sync::Candidate::new(mongo, config.mariadb.database(), LEASE_TTL)
        .acquire(Some(std::time::Instant::now() + 4 * LEASE_TTL))
        .await
        .expect("the binlog lease")
}

/// Waits until both stores of `config` are equal (a worker catching up), at most `within`;
/// panics naming `what` and the differences after that.
pub async fn until_equal(config: &Config, within: std::time::Duration, what: &str) {
    use aethermart_core::migrate::{BulkMigrator, Migrator};
    let deadline = std::time::Instant::now() + within;
    loop {
        let mongo = connect::mongodb_database(&config.mongodb).await.unwrap();
        let report = BulkMigrator::new(config.mariadb.clone(), mongo)
            .verify()
            .await
            .unwrap();
        if report.equal() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: stores differ after {within:?}: {report:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The servers' configuration. Panics with instructions when the variables are missing:
/// a test that needs a server must fail without it, never skip.
pub fn config() -> Config {
    // `AETHERMART_TEST_LOG=aethermart_core=debug` shows the library's logs of a failing test.
    if let Ok(filter) = std::env::var("AETHERMART_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
    Config::from_env().unwrap_or_else(|e| {
        panic!(
            "integration tests need real servers: {e}\n\
             run `scripts/test.sh`, or `scripts/services.sh up && eval \"$(scripts/services.sh env)\"` \
             ({MARIADB_URL}, {MONGODB_URI})"
        )
    })
}

/// A local MariaDB topology of `scripts/cluster.sh`.
#[derive(Debug, Clone, Copy)]
pub enum Topology {
    /// Primary and replica.
    Replica,
    /// Three Galera nodes.
    Galera,
    /// One server nobody else uses: tests restart it and purge its binlogs, one at a time
    /// (hold [`solo`] while using it).
    Solo,
}

/// The solo server (see [`Topology::Solo`]), held by one test at a time.
pub async fn solo() -> (Config, tokio::sync::MutexGuard<'static, ()>) {
    // Each test has its own runtime: a lock that works across runtimes. A test that failed
    // while holding it leaves the server usable (its databases are its own).
    static SOLO: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let guard = SOLO.lock().await;
    (cluster_config(Topology::Solo), guard)
}

/// The configuration of `topology` (its MariaDB nodes, the usual MongoDB). Panics with
/// instructions when the topology's variables are missing: these tests never skip.
pub fn cluster_config(topology: Topology) -> Config {
    use aethermart_core::config::{MARIADB_PASSWORD, MariaDbConfig};
    const PASSWORD: &str = "AETHERMART_TEST_CLUSTER_PASSWORD";
    let url_var = match topology {
        Topology::Replica => "AETHERMART_TEST_REPLICA_URL",
        Topology::Galera => "AETHERMART_TEST_GALERA_URL",
        Topology::Solo => "AETHERMART_TEST_SOLO_URL",
    };
    let env = |var: &str| {
        std::env::var(var).unwrap_or_else(|_| {
            panic!(
                "cluster tests need the local topologies: {var} is not set; run `scripts/test.sh`, \
                 or `scripts/cluster.sh up replica && scripts/cluster.sh up galera && scripts/cluster.sh up solo && \
                 eval \"$(scripts/cluster.sh test-env)\"`"
            )
        })
    };
    let (url, password) = (env(url_var), env(PASSWORD));
    let mariadb = MariaDbConfig::from_lookup(|var| match var {
        MARIADB_URL => Some(url.clone()),
        MARIADB_PASSWORD => Some(password.clone()),
        _ => None,
    })
    .unwrap_or_else(|e| panic!("{url_var}: {e}"));
    Config {
        mariadb,
        mongodb: config().mongodb,
    }
}

/// Runs `scripts/cluster.sh ARGS` (kill or start a node); panics when it fails.
pub fn cluster_script(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/cluster.sh");
    let out = std::process::Command::new(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    assert!(
        out.status.success(),
        "scripts/cluster.sh {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Prefix of every test database (distinctive, so cleaning up never touches other databases).
pub const PREFIX: &str = "amt_test_";

/// A database name unique to this test run and test: `amt_test_<pid>_<n>_<name>`.
pub fn unique_name(test: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut name = format!("{PREFIX}{}_{n}_{test}", std::process::id());
    name.truncate(64);
    name
}

/// True for a test database (`amt_test_<pid>_…`) of a test process that is no longer alive.
fn stale(name: &str) -> bool {
    let pid = name
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split('_').next())
        .and_then(|p| p.parse::<u32>().ok());
    pid.is_some_and(|p| {
        p != std::process::id() && !std::path::Path::new(&format!("/proc/{p}")).exists()
    })
}

/// Drops test databases left on both servers by earlier test processes.
async fn drop_stale_databases(
    conn: &mut sqlx::MySqlConnection,
    mongo: &aethermart_core::config::MongoConfig,
) {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'amt\\_test\\_%'",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("list test databases");
    for name in names.into_iter().filter(|n| stale(n)) {
        // Another process may drop it at the same moment: IF EXISTS, and ignore the outcome.
        let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS `{name}`"))
            .execute(&mut *conn)
            .await;
    }
    let db = connect::mongodb_database(mongo)
        .await
        .expect("MongoDB must be running for integration tests");
    let client = db.client();
    for name in client
        .list_database_names()
        .await
        .expect("list MongoDB databases")
        .into_iter()
        .filter(|n| stale(n))
    {
        let _ = client.database(&name).drop().await;
    }
}

/// A fresh, empty MariaDB database and MongoDB database for one test.
pub struct TestEnv {
    /// Configuration pointing at this test's databases.
    pub config: Config,
}

impl TestEnv {
    /// Creates both databases (MongoDB creates its own on first write).
    pub async fn new(test: &str) -> Self {
        Self::on(config(), test).await
    }

    /// Creates both databases on the servers of `base`.
    pub async fn on(base: Config, test: &str) -> Self {
        let name = unique_name(test);
        let config = Config {
            mariadb: base
                .mariadb
                .with_database(&name)
                .expect("test database name"),
            mongodb: base
                .mongodb
                .with_database(&name)
                .expect("test database name"),
        };
        let mut conn = cluster::writable_connection(&config.mariadb, false)
            .await
            .expect("MariaDB must be running for integration tests");
        drop_stale_databases(&mut conn, &config.mongodb).await;
        sqlx::raw_sql(&format!(
            "DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}`"
        ))
        .execute(&mut conn)
        .await
        .expect("create test database");
        Self { config }
    }

    /// A pool on this test's MariaDB database.
    pub async fn pool(&self) -> MySqlPool {
        cluster::writable_pool(&self.config.mariadb, Default::default())
            .await
            .expect("MariaDB pool")
    }

    /// This test's MongoDB database.
    pub async fn mongo(&self) -> mongodb::Database {
        connect::mongodb_database(&self.config.mongodb)
            .await
            .expect("MongoDB must be running for integration tests")
    }
}

/// Applies `update` to document `id` of `collection` past its validator, as an application
/// could have stored it before the validator existed.
pub async fn store_past_validator(
    mongo: &mongodb::Database,
    collection: &str,
    id: i64,
    update: mongodb::bson::Document,
) {
    mongo
        .run_command(mongodb::bson::doc! {
            "update": collection,
            "updates": [{ "q": { "_id": id }, "u": update }],
            "bypassDocumentValidation": true,
        })
        .await
        .expect("an update past the validator");
}

/// A test database with the platform schema applied and a small catalogue:
/// category 1 "Computers" > 2 "Components"; products 1..=3 (see [`seed`]); customers 1 and 2;
/// service 1 (60 minutes with consultant "Dana Reyes").
pub async fn seeded(test: &str) -> (TestEnv, MySqlPool) {
    seeded_in(TestEnv::new(test).await).await
}

/// [`seeded`] into the databases of `env`.
pub async fn seeded_in(env: TestEnv) -> (TestEnv, MySqlPool) {
    use aethermart_core::schema::{MariaDbSchema, SchemaApplier};
    MariaDbSchema::new(env.config.mariadb.clone())
        .apply()
        .await
        .expect("schema applies to an empty database");
    let pool = cluster::writable_pool(&env.config.mariadb, connect::PoolSize { max: 24 })
        .await
        .expect("pool");
    sqlx::raw_sql(SEED).execute(&pool).await.expect("seed data");
    (env, pool)
}

/// The fixture rows of [`seeded`].
pub const SEED: &str = "
INSERT INTO Categories (category_id, parent_id, name, slug) VALUES
  (1, NULL, 'Computers', 'computers'), (2, 1, 'Components', 'components'), (3, NULL, 'Consulting', 'consulting');
INSERT INTO Products (product_id, sku, name, description, category_id, price, stock, is_active) VALUES
  (1, 'GPU-4090', 'RTX 4090', 'Flagship graphics card', 2, 1599.99, 10, TRUE),
  (2, 'CPU-7800', 'Ryzen 7 7800X3D', 'Gaming processor', 2, 449.00, 5, TRUE),
  (3, 'OLD-0001', 'Discontinued fan', 'No longer sold', 2, 9.99, 100, FALSE);
INSERT INTO Services (service_id, code, name, description, category_id, duration_minutes, price, consultant) VALUES
  (1, 'SRV-BUILD-60', 'PC build consultation', 'One hour with a build expert', 3, 60, 89.00, 'Dana Reyes');
INSERT INTO Customers (customer_id, first_name, last_name, email, phone) VALUES
  (1, 'Ana', 'López', 'ana@example.com', '+34 600 000 001'),
  (2, 'Ben', 'Okafor', 'ben@example.com', NULL);
";

/// `SELECT COUNT(*)` of a table.
pub async fn count(pool: &MySqlPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(pool)
        .await
        .expect("count rows")
}

/// Current stock of a product.
pub async fn stock(pool: &MySqlPool, product_id: u64) -> i32 {
    sqlx::query_scalar("SELECT stock FROM Products WHERE product_id = ?")
        .bind(product_id)
        .fetch_one(pool)
        .await
        .expect("product exists")
}

/// The `MYSQL_ERRNO` of a failed statement; panics if it succeeded or failed otherwise.
pub fn errno_of<T: std::fmt::Debug>(result: Result<T, sqlx::Error>) -> u16 {
    let err = result.expect_err("statement must fail");
    aethermart_core::orders::server_error(&err)
        .unwrap_or_else(|| panic!("not a server error: {err}"))
        .0
}

/// A test database with the schema applied and generated data at `scale` (seed `seed`, as of
/// 2026-11-25) in both stores, and a pool on it.
pub async fn generated(test: &str, seed: u64, scale: f64) -> (TestEnv, MySqlPool) {
    generated_in(TestEnv::new(test).await, seed, scale).await
}

/// [`generated`] into the databases of `env`.
pub async fn generated_in(env: TestEnv, seed: u64, scale: f64) -> (TestEnv, MySqlPool) {
    use aethermart_core::generate::{self, GenerateConfig, LoadOptions};
    use aethermart_core::progress::NoProgress;
    use aethermart_core::schema::{MariaDbSchema, SchemaApplier};
    MariaDbSchema::new(env.config.mariadb.clone())
        .apply()
        .await
        .expect("schema applies to an empty database");
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 25).expect("a date");
    let settings = GenerateConfig::new(seed, scale, day).expect("generator settings");
    generate::generate_into(
        &env.config,
        settings,
        LoadOptions::default(),
        std::sync::Arc::new(NoProgress),
    )
    .await
    .expect("generated data loads");
    let pool = env.pool().await;
    (env, pool)
}

/// The platform users' passwords in the tests (the users are server-wide: every test uses the
/// same ones). Quotes and backslashes on purpose: they must never break a statement.
pub fn passwords() -> aethermart_core::security::Passwords {
    aethermart_core::security::Passwords::from_lookup(|var| Some(format!("pw'{var}\\x-1")))
        .expect("all three passwords are set")
}

/// Entries waiting in all sync queues (`sync::queue_status`).
pub async fn queued(pool: &MySqlPool) -> i64 {
    aethermart_core::sync::queue_status(pool)
        .await
        .expect("read the sync queues")
        .iter()
        .map(|q| q.pending as i64)
        .sum()
}

/// Waits until every sync queue is empty (panics after `limit`).
pub async fn until_drained(pool: &MySqlPool, limit: std::time::Duration) {
    let started = std::time::Instant::now();
    loop {
        let left = queued(pool).await;
        if left == 0 {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "queues not drained within {limit:?}: {left} entries left"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// A shutdown future for `Syncer::run`: resolves once `stop` says true (or its sender is gone).
pub async fn until_stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// A TCP forwarder to a server that a test can cut off and reconnect: an outage of that server
/// as its clients see it (open connections reset, new ones closed at once), without stopping
/// the server other tests share.
pub struct Outage {
    port: u16,
    cut: tokio::sync::watch::Sender<bool>,
    _accepting: tokio::task::JoinHandle<()>,
}

impl Outage {
    /// Forwards a new local port to `target` (`host:port`).
    pub async fn forward_to(target: &str) -> Self {
        use tokio::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a local port");
        let port = listener.local_addr().expect("bound").port();
        let (cut, _) = tokio::sync::watch::channel(false);
        let target = target.to_owned();
        let watcher = cut.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if *watcher.borrow() {
                    continue; // dropped: the client sees the connection closed
                }
                let mut down = watcher.subscribe();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = down.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Self {
            port,
            cut,
            _accepting: accepting,
        }
    }

    /// The local port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server becomes unreachable: open connections close, new ones are closed at once.
    pub fn begin(&self) {
        self.cut.send_replace(true);
    }

    /// The server is reachable again.
    pub fn end(&self) {
        self.cut.send_replace(false);
    }
}

/// `config` with its MongoDB reached through `outage` (the usual local server behind it).
pub fn mongodb_through(config: &Config, outage: &Outage) -> Config {
    let uri = std::env::var(MONGODB_URI).expect("the MongoDB URI is set");
    let host = config.mongodb.endpoint();
    assert!(
        !host.contains(','),
        "one MongoDB host to forward to, not {host}"
    );
    let forwarded = uri.replacen(host, &format!("127.0.0.1:{}", outage.port()), 1);
    let mongodb = aethermart_core::config::MongoConfig::from_lookup(|var| {
        if var == MONGODB_URI {
            Some(forwarded.clone())
        } else {
            aethermart_core::config::env_lookup(var)
        }
    })
    .expect("the forwarded MongoDB URI");
    let mongodb = mongodb
        .with_database(config.mongodb.database())
        .expect("database name");
    Config {
        mariadb: config.mariadb.clone(),
        mongodb,
    }
}

/// The search's embedding model from AETHERMART_EMBEDDING_MODEL_DIR (`scripts/services.sh env`
/// sets it; `scripts/model.sh fetch` puts the files there), loaded once per test binary.
#[cfg(feature = "embeddings")]
pub fn embedder() -> std::sync::Arc<aethermart_core::search::embedding::Embedder> {
    static MODEL: std::sync::OnceLock<
        std::sync::Arc<aethermart_core::search::embedding::Embedder>,
    > = std::sync::OnceLock::new();
    MODEL
        .get_or_init(|| {
            let dir = model_dir();
            let model = aethermart_core::search::embedding::Embedder::load(&dir)
                .unwrap_or_else(|e| panic!("the embedding model must load: {e}"));
            std::sync::Arc::new(model)
        })
        .clone()
}

/// AETHERMART_EMBEDDING_MODEL_DIR; a test that needs the model fails without it.
pub fn model_dir() -> std::path::PathBuf {
    std::env::var_os(aethermart_core::config::EMBEDDING_MODEL_DIR)
        .map(std::path::PathBuf::from)
        .expect(
            "AETHERMART_EMBEDDING_MODEL_DIR must name the embedding model: \
             eval \"$(scripts/services.sh env)\" after scripts/services.sh up",
        )
}

/// Computes every search vector of `mongo`'s catalogue (what `aethermart up` does), so the
/// quality checks find them fresh. Fails loudly in a build without the `embeddings` feature
/// (`cargo test --workspace` has it).
pub async fn index_search(mongo: &mongodb::Database) {
    #[cfg(feature = "embeddings")]
    aethermart_core::search::index::reindex(
        mongo,
        embedder(),
        true,
        std::sync::Arc::new(aethermart_core::progress::NoProgress),
    )
    .await
    .expect("search vectors computed and stored");
    #[cfg(not(feature = "embeddings"))]
    panic!(
        "{} needs the `embeddings` feature: run cargo test --workspace",
        mongo.name()
    );
}
