//! Clusters of MariaDB nodes: what each node is and whether it takes writes, which node a
//! client should write to or read reports from, and nftables rules for the nodes' traffic.
//!
//! A [`MariaDbConfig`] whose URL lists several hosts names the nodes of one cluster in order of
//! preference: the nodes of a Galera cluster, or a primary and its replicas. [`probe_node`] asks one
//! node what it is; [`probe_nodes`] asks all of them at once (a dead node is reported as down, next to
//! the others). [`writable_node`] is the first node, in the configured order, that takes writes:
//! - a Galera node when `wsrep_ready=ON`, its state is `Synced` and its component is `Primary`
//!   (a node cut off from the majority, joining, or donating a state transfer does not),
//! - any other node when `read_only` is off and it does not replicate from another server.
//!
//! Every client with the same configuration picks the same node. [`ClusterPool`] follows that
//! choice over time (fails over when the node dies, and between Galera nodes comes back to a
//! preferred node once it has been healthy for a while), or a node its user prefers: the sync
//! workers prefer their *sync home* (see [`crate::sync::QueueSource`]), because their per-key
//! locks are MariaDB user locks, which Galera does not replicate. [`replica_node`] picks a
//! replica for reporting reads and refuses when every replica lags beyond a bound.

mod firewall;
mod pool;

pub use firewall::{ClusterPorts, FirewallError, render_nftables};
pub use pool::{CHECK_INTERVAL, ClusterPool, MOVE_BACK_AFTER};

use crate::config::MariaDbConfig;
use crate::connect::{self, ConnectError};
use serde::Serialize;
use sqlx::mysql::MySqlConnection;
use sqlx::{ConnectOptions, Row};
use std::fmt;
use std::time::Duration;

/// The expression that identifies the server a connection reached (see [`NodeInfo::server`]).
pub(crate) const SERVER_IDENTITY: &str = "CAST(CONCAT(@@hostname, ':', @@port) AS CHAR)";

/// How long asking one node may take before it counts as down.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One node as it answered (or did not).
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    /// `host:port`.
    pub endpoint: String,
    /// What it reported, or why it could not be asked.
    #[serde(flatten)]
    pub state: NodeState,
}

/// Up with its facts, or down with the reason.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum NodeState {
    /// The node answered.
    Up(Box<NodeInfo>),
    /// The node refused, timed out or rejected the login.
    Down {
        /// The driver's error (never a password).
        error: String,
    },
}

/// What a node is, as far as the platform cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A node of a Galera cluster (`wsrep_on`).
    Galera,
    /// Replicates from another server.
    Replica,
    /// Takes writes and replicates from nobody (a primary, or a single server).
    Primary,
    /// `read_only` without replication the login can see.
    ReadOnly,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Role::Galera => "galera",
            Role::Replica => "replica",
            Role::Primary => "primary",
            Role::ReadOnly => "read-only",
        })
    }
}

/// The facts one node reported.
#[derive(Debug, Clone, Serialize)]
pub struct NodeInfo {
    /// What it is.
    pub role: Role,
    /// `@@hostname:@@port` as the server itself sees it (identifies the server behind an
    /// address).
    pub server: String,
    /// `@@version`.
    pub version: String,
    /// `@@read_only`.
    pub read_only: bool,
    /// `@@gtid_current_pos`: the last transaction of each replication domain applied here.
    pub gtid_position: String,
    /// Galera state, for a Galera node.
    pub galera: Option<GaleraState>,
    /// Replication from a primary, when the node replicates.
    pub replication: Option<ReplicationState>,
    /// Why replication could not be read (the login lacks `SLAVE MONITOR`), if so.
    pub replication_unknown: Option<String>,
}

/// A Galera node's view of its cluster.
#[derive(Debug, Clone, Serialize)]
pub struct GaleraState {
    /// `wsrep_ready`: the node accepts queries.
    pub ready: bool,
    /// `wsrep_local_state_comment`: `Synced`, `Donor/Desynced`, `Joining`, `Joined`, …
    pub state: String,
    /// `wsrep_cluster_size`: nodes in this node's component.
    pub cluster_size: u32,
    /// `wsrep_cluster_status`: `Primary` when the component holds a majority.
    pub cluster_status: String,
    /// `wsrep_last_committed`: the cluster-wide sequence number of the last write set
    /// committed here (Galera's position, equal on nodes that are in step).
    pub last_committed: u64,
}

/// A replica's replication from its primary (`SHOW SLAVE STATUS`).
#[derive(Debug, Clone, Serialize)]
pub struct ReplicationState {
    /// The primary, `host:port`.
    pub source: String,
    /// `Slave_IO_Running` (`Yes`, `No`, `Connecting`).
    pub io_running: String,
    /// `Slave_SQL_Running`.
    pub sql_running: String,
    /// `Seconds_Behind_Master`; `None` when a thread is stopped.
    pub lag_seconds: Option<u64>,
    /// `Gtid_IO_Pos`: the last transaction received from the primary.
    pub gtid_received: String,
    /// The last I/O or SQL thread error, if any.
    pub last_error: Option<String>,
}

impl NodeInfo {
    /// `Ok` when writes may go to this node, else why not.
    pub fn takes_writes(&self) -> Result<(), String> {
        if let Some(g) = &self.galera {
            if !g.ready {
                return Err("Galera node not ready (wsrep_ready=OFF)".into());
            }
            if g.cluster_status != "Primary" {
                return Err(format!(
                    "Galera node outside the primary component ({})",
                    g.cluster_status
                ));
            }
            if g.state != "Synced" {
                return Err(format!("Galera node is {}, not Synced", g.state));
            }
        }
        if self.replication.is_some() {
            return Err("replica of another server".into());
        }
        if self.read_only {
            return Err("read_only is on".into());
        }
        Ok(())
    }

    /// `Ok(lag)` when reports may read from this replica with at most `max_lag` delay.
    pub fn serves_reads_within(&self, max_lag: Duration) -> Result<Duration, String> {
        let Some(r) = &self.replication else {
            return Err(match &self.replication_unknown {
                Some(why) => format!("replication state unknown: {why}"),
                None => format!("not a replica ({})", self.role),
            });
        };
        if r.io_running != "Yes" || r.sql_running != "Yes" {
            return Err(format!(
                "replication stopped (I/O thread {}, SQL thread {}){}",
                r.io_running,
                r.sql_running,
                r.last_error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
        }
        let lag = Duration::from_secs(r.lag_seconds.unwrap_or(u64::MAX));
        if lag > max_lag {
            return Err(format!(
                "lags {} s behind its primary (bound {} s)",
                lag.as_secs(),
                max_lag.as_secs()
            ));
        }
        Ok(lag)
    }
}

impl NodeStatus {
    /// The node's facts when it answered.
    pub fn info(&self) -> Option<&NodeInfo> {
        match &self.state {
            NodeState::Up(info) => Some(info),
            NodeState::Down { .. } => None,
        }
    }

    /// True for a Galera node that answered.
    pub fn is_galera(&self) -> bool {
        self.info().is_some_and(|i| i.galera.is_some())
    }

    /// `Ok` when writes may go to this node, else why not (down included).
    pub fn takes_writes(&self) -> Result<(), String> {
        match &self.state {
            NodeState::Up(info) => info.takes_writes(),
            NodeState::Down { error } => Err(format!("down: {error}")),
        }
    }

    /// Up and doing its job: a replica replicating without errors, any other node taking
    /// writes (a Galera node `Synced` in the primary component).
    pub fn healthy(&self) -> bool {
        match self.info() {
            None => false,
            Some(info) if info.role == Role::Replica => {
                info.replication.as_ref().is_some_and(|r| {
                    r.io_running == "Yes" && r.sql_running == "Yes" && r.last_error.is_none()
                })
            }
            Some(info) => info.takes_writes().is_ok(),
        }
    }
}

/// Asks one node (a single-node configuration, see [`MariaDbConfig::nodes`]) what it is.
/// Never fails: a node that cannot be asked is [`NodeState::Down`].
pub async fn probe_node(node: &MariaDbConfig) -> NodeStatus {
    let endpoint = node.endpoint();
    let state = match tokio::time::timeout(PROBE_TIMEOUT, ask(node)).await {
        Ok(Ok(info)) => NodeState::Up(Box::new(info)),
        Ok(Err(error)) => NodeState::Down { error },
        Err(_) => NodeState::Down {
            error: format!("no answer within {} s", PROBE_TIMEOUT.as_secs()),
        },
    };
    NodeStatus { endpoint, state }
}

/// Asks every node of `cfg` at once; in the configured order.
pub async fn probe_nodes(cfg: &MariaDbConfig) -> Vec<NodeStatus> {
    let nodes = cfg.nodes();
    futures_util::future::join_all(nodes.iter().map(probe_node)).await
}

/// The first node, in the configured order, that takes writes (see the module docs). A
/// single-node configuration is returned as it is, unprobed: its errors come from connecting.
pub async fn writable_node(cfg: &MariaDbConfig) -> Result<MariaDbConfig, ConnectError> {
    Ok(writable_nodes(cfg).await?.swap_remove(0))
}

/// Opens one connection to [`writable_node`] (with its database, or to no database when
/// `with_database` is false), failing fast with the server's `host:port` in the error.
pub async fn writable_connection(
    cfg: &MariaDbConfig,
    with_database: bool,
) -> Result<MySqlConnection, ConnectError> {
    connect::node_connection(&writable_node(cfg).await?, with_database).await
}

/// Opens a pool on [`writable_node`] (see [`connect::node_pool`]). The pool stays on that node:
/// right for a command that runs and exits. Long-running processes use [`ClusterPool`], which
/// follows the writable node.
pub async fn writable_pool(
    cfg: &MariaDbConfig,
    size: connect::PoolSize,
) -> Result<sqlx::MySqlPool, ConnectError> {
    connect::node_pool(&writable_node(cfg).await?, size).await
}

/// [`writable_node`] first, then every other node that takes writes (other Galera nodes), from
/// one round of probes.
pub(crate) async fn writable_nodes(
    cfg: &MariaDbConfig,
) -> Result<Vec<MariaDbConfig>, ConnectError> {
    if !cfg.is_cluster() {
        return Ok(vec![cfg.clone()]);
    }
    let statuses = probe_nodes(cfg).await;
    let first = choose_writer(&statuses)?;
    let others = (0..statuses.len()).filter(|&i| i != first && statuses[i].takes_writes().is_ok());
    let nodes = cfg.nodes();
    Ok(std::iter::once(first)
        .chain(others)
        .map(|i| nodes[i].clone())
        .collect())
}

/// The replica with the least lag, if at most `max_lag`, for reporting reads; refused (with
/// every node's reason) when no replica is that fresh.
pub async fn replica_node(
    cfg: &MariaDbConfig,
    max_lag: Duration,
) -> Result<(MariaDbConfig, Duration), ConnectError> {
    let statuses = probe_nodes(cfg).await;
    let within = |s: &NodeStatus| match &s.state {
        NodeState::Up(info) => info.serves_reads_within(max_lag),
        NodeState::Down { error } => Err(format!("down: {error}")),
    };
    let best = statuses
        .iter()
        .enumerate()
        .filter_map(|(i, s)| within(s).ok().map(|lag| (lag, i)))
        .min();
    match best {
        Some((lag, i)) => Ok((cfg.nodes().swap_remove(i), lag)),
        None => Err(ConnectError::NoFreshReplica {
            max_lag_seconds: max_lag.as_secs(),
            reasons: reasons(&statuses, |s| within(s).map(drop)),
        }),
    }
}

/// The first node that takes writes; refused when none does, or when several non-Galera nodes
/// do (a primary–replica pair with two primaries: which one holds the latest transactions is
/// not for a client to guess).
fn choose_writer(statuses: &[NodeStatus]) -> Result<usize, ConnectError> {
    let writable: Vec<usize> = (0..statuses.len())
        .filter(|&i| statuses[i].takes_writes().is_ok())
        .collect();
    let primaries: Vec<&str> = writable
        .iter()
        .filter(|&&i| !statuses[i].is_galera())
        .map(|&i| statuses[i].endpoint.as_str())
        .collect();
    if primaries.len() > 1 {
        return Err(ConnectError::SeveralPrimaries {
            nodes: primaries.join(", "),
        });
    }
    writable
        .first()
        .copied()
        .ok_or_else(|| ConnectError::NoWritableNode {
            reasons: reasons(statuses, NodeStatus::takes_writes),
        })
}

/// `host:port why; host:port why` for the nodes `check` refuses.
fn reasons(statuses: &[NodeStatus], check: impl Fn(&NodeStatus) -> Result<(), String>) -> String {
    let refused: Vec<String> = statuses
        .iter()
        .filter_map(|s| check(s).err().map(|why| format!("{} {why}", s.endpoint)))
        .collect();
    refused.join("; ")
}

async fn ask(node: &MariaDbConfig) -> Result<NodeInfo, String> {
    // Probes run often: no statement logs (slow ones would warn while a cluster stalls).
    let options = node.server_options().disable_statement_logging();
    let mut conn = connect::connect_with(node, &options)
        .await
        .map_err(|e| match e {
            ConnectError::MariaDb { source, .. } => source.to_string(),
            other => other.to_string(),
        })?;
    // A Galera node with wsrep_sync_wait makes every read wait until it caught up with the
    // cluster, which stalls while a dead node is evicted: the probe must answer at once. (A
    // server built without wsrep has no such variable; nothing to turn off then.)
    let _ = sqlx::Executor::execute(&mut conn, "SET SESSION wsrep_sync_wait = 0").await;
    let info = facts(&mut conn).await.map_err(|e| e.to_string());
    let _ = sqlx::Connection::close(conn).await;
    info
}

async fn facts(conn: &mut MySqlConnection) -> Result<NodeInfo, sqlx::Error> {
    let status = |name: &str| {
        format!(
            "(SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
             WHERE VARIABLE_NAME = '{name}')"
        )
    };
    let sql = format!(
        "SELECT CAST(@@version AS CHAR), CAST(@@read_only AS SIGNED), CAST(@@wsrep_on AS SIGNED), \
         CAST(@@gtid_current_pos AS CHAR), {}, {}, {}, {}, {}, {SERVER_IDENTITY}",
        status("WSREP_READY"),
        status("WSREP_LOCAL_STATE_COMMENT"),
        status("WSREP_CLUSTER_SIZE"),
        status("WSREP_CLUSTER_STATUS"),
        status("WSREP_LAST_COMMITTED"),
    );
    let row = sqlx::query(&sql).fetch_one(&mut *conn).await?;
    let text = |i: usize| -> Result<String, sqlx::Error> {
        Ok(row.try_get::<Option<String>, _>(i)?.unwrap_or_default())
    };
    let galera = (row.try_get::<i64, _>(2)? != 0).then(|| -> Result<_, sqlx::Error> {
        Ok(GaleraState {
            ready: text(4)? == "ON",
            state: text(5)?,
            cluster_size: text(6)?.parse().unwrap_or(0),
            cluster_status: text(7)?,
            last_committed: text(8)?.parse().unwrap_or(0),
        })
    });
    let galera = galera.transpose()?;
    let (replication, replication_unknown) = match replication(conn).await {
        Ok(r) => (r, None),
        Err(e) => (None, Some(e.to_string())),
    };
    let read_only = row.try_get::<i64, _>(1)? != 0;
    let role = if galera.is_some() {
        Role::Galera
    } else if replication.is_some() {
        Role::Replica
    } else if read_only {
        Role::ReadOnly
    } else {
        Role::Primary
    };
    Ok(NodeInfo {
        role,
        server: text(9)?,
        version: text(0)?,
        read_only,
        gtid_position: text(3)?,
        galera,
        replication,
        replication_unknown,
    })
}

/// `SHOW SLAVE STATUS`: `None` when the node replicates from nobody.
async fn replication(conn: &mut MySqlConnection) -> Result<Option<ReplicationState>, sqlx::Error> {
    let Some(row) = sqlx::Executor::fetch_optional(&mut *conn, "SHOW SLAVE STATUS").await? else {
        return Ok(None);
    };
    let text = |name: &str| -> Result<String, sqlx::Error> {
        Ok(row.try_get::<Option<String>, _>(name)?.unwrap_or_default())
    };
    let number = |name: &str| -> Result<Option<u64>, sqlx::Error> {
        row.try_get::<Option<String>, _>(name)
            .map(|v| v.and_then(|v| v.parse().ok()))
            .or_else(|_| row.try_get::<Option<u64>, _>(name))
    };
    let errors: Vec<String> = [text("Last_IO_Error")?, text("Last_SQL_Error")?]
        .into_iter()
        .filter(|e| !e.is_empty())
        .collect();
    Ok(Some(ReplicationState {
        source: format!(
            "{}:{}",
            text("Master_Host")?,
            number("Master_Port")?.unwrap_or_default()
        ),
        io_running: text("Slave_IO_Running")?,
        sql_running: text("Slave_SQL_Running")?,
        lag_seconds: number("Seconds_Behind_Master")?,
        gtid_received: text("Gtid_IO_Pos")?,
        last_error: (!errors.is_empty()).then(|| errors.join("; ")),
    }))
}
