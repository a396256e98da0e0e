//! Opening connections to both stores, with errors that name the server. A leaf: it connects
//! to the node it is given; [`crate::cluster`] decides which node of a cluster that is.

use crate::config::{CONNECT_TIMEOUT, ConfigError, MariaDbConfig, MongoConfig};
use mongodb::bson::doc;
use sqlx::Connection;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlPoolOptions};

/// A store could not be reached or refused the login.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// MariaDB at `endpoint` failed (refused, timed out, access denied, unknown database).
    #[error("cannot connect to MariaDB at {endpoint}: {source}")]
    MariaDb {
        /// `host:port`.
        endpoint: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// MariaDB at `endpoint` did not answer within the connect timeout.
    #[error("cannot connect to MariaDB at {endpoint}: no answer within {seconds} s")]
    MariaDbTimeout {
        /// `host:port`.
        endpoint: String,
        /// The timeout.
        seconds: u64,
    },
    /// MongoDB at `endpoint` failed (no server selected, auth failed).
    #[error("cannot connect to MongoDB at {endpoint}: {source}")]
    MongoDb {
        /// The host list.
        endpoint: String,
        /// The driver's error.
        #[source]
        source: mongodb::error::Error,
    },
    /// Several nodes of a primary–replica configuration take writes (e.g. a promoted replica
    /// and the old primary back): writing to either could lose the other's transactions.
    #[error(
        "several MariaDB nodes take writes and none is a Galera node: {nodes}; make all but one \
         read_only (fence the old primary)"
    )]
    SeveralPrimaries {
        /// Their `host:port`s.
        nodes: String,
    },
    /// Two listed nodes report the same `@@hostname:@@port` (cloned hosts): the platform tells
    /// servers apart by it (the sync home), so it must be unique.
    #[error(
        "two MariaDB nodes report the same server identity {server} (@@hostname:@@port); give each node its own hostname"
    )]
    SameServerTwice {
        /// The identity.
        server: String,
    },
    /// No node of the configured cluster takes writes.
    #[error("no MariaDB node takes writes: {reasons}")]
    NoWritableNode {
        /// Per node: `host:port` and why not.
        reasons: String,
    },
    /// No replica is fresh enough for reporting reads.
    #[error("no MariaDB replica within {max_lag_seconds} s of its primary: {reasons}")]
    NoFreshReplica {
        /// The bound.
        max_lag_seconds: u64,
        /// Per node: `host:port` and why not.
        reasons: String,
    },
    /// The MongoDB connection string was rejected by the driver.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Pool sizing for [`node_pool`] and [`crate::cluster::writable_pool`].
#[derive(Debug, Clone, Copy)]
pub struct PoolSize {
    /// Connections kept at most.
    pub max: u32,
}

impl Default for PoolSize {
    fn default() -> Self {
        Self { max: 8 }
    }
}

/// Opens one MariaDB connection to the first node of `cfg` (or to no database when
/// `with_database` is false), failing fast with the server's `host:port` in the error. To reach
/// the node of a cluster that takes writes, use [`crate::cluster::writable_connection`].
pub async fn node_connection(
    cfg: &MariaDbConfig,
    with_database: bool,
) -> Result<MySqlConnection, ConnectError> {
    let options = if with_database {
        cfg.connect_options()
    } else {
        cfg.server_options()
    };
    connect_with(cfg, &options).await
}

/// Connects with `options` (built from `cfg`) within [`CONNECT_TIMEOUT`], naming `cfg`'s
/// `host:port` in the error.
pub(crate) async fn connect_with(
    cfg: &MariaDbConfig,
    options: &MySqlConnectOptions,
) -> Result<MySqlConnection, ConnectError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, MySqlConnection::connect_with(options)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(source)) => Err(ConnectError::MariaDb {
            endpoint: cfg.endpoint(),
            source,
        }),
        Err(_) => Err(ConnectError::MariaDbTimeout {
            endpoint: cfg.endpoint(),
            seconds: CONNECT_TIMEOUT.as_secs(),
        }),
    }
}

/// How recently a pooled connection must have been used to be handed out without a ping.
const RECENTLY_USED: std::time::Duration = std::time::Duration::from_secs(1);

/// Opens a pool on the first node of `cfg` after proving that one connection works, so that an
/// unreachable server is reported at once with its address instead of as a pool timeout. For
/// the node of a cluster that takes writes, use [`crate::cluster::writable_pool`].
pub async fn node_pool(cfg: &MariaDbConfig, size: PoolSize) -> Result<MySqlPool, ConnectError> {
    let probe = node_connection(cfg, true).await?;
    drop(probe.close().await);
    Ok(MySqlPoolOptions::new()
        .max_connections(size.max)
        .acquire_timeout(CONNECT_TIMEOUT * 3)
        // A connection used a moment ago is handed out as it is (a statement failing on it is
        // an error like any other, retried by its caller); an older one is pinged first. A
        // ping per acquire was a round trip per statement for the sync's short batches.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move { Ok(meta.idle_for < RECENTLY_USED || conn.ping().await.is_ok()) })
        })
        .connect_lazy_with(cfg.connect_options()))
}

/// Connects to MongoDB and proves the server answers (`ping`), returning the configured database.
pub async fn mongodb_database(cfg: &MongoConfig) -> Result<mongodb::Database, ConnectError> {
    let options = cfg.client_options().await?;
    let fail = |source| ConnectError::MongoDb {
        endpoint: cfg.endpoint().to_owned(),
        source,
    };
    let client = mongodb::Client::with_options(options).map_err(fail)?;
    let db = client.database(cfg.database());
    db.run_command(doc! { "ping": 1 }).await.map_err(fail)?;
    Ok(db)
}

/// Runs a multi-statement SQL text (procedures and triggers included) on one connection.
///
/// A query without arguments goes over the text protocol, which accepts several statements
/// at once (what `sqlx::raw_sql` does; `raw_sql(..).execute(conn)` itself fails the `Send`
/// check inside `async_trait` methods: "Executor is not general enough").
pub(crate) async fn execute_script(
    conn: &mut MySqlConnection,
    sql: &str,
) -> Result<(), sqlx::Error> {
    sqlx::Executor::execute(conn, sql).await.map(drop)
}

/// A SQL string literal for statements that cannot take parameters (the one-round-trip
/// scripts): the UTF-8 bytes as a hex literal, so no quote, backslash or `sql_mode`
/// (`NO_BACKSLASH_ESCAPES`) can change what it means.
pub(crate) fn sql_literal(value: &str) -> String {
    let hex: String = value.bytes().map(|b| format!("{b:02x}")).collect();
    format!("CONVERT(X'{hex}' USING utf8mb4)")
}
