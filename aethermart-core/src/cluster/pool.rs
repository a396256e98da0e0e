//! [`ClusterPool`]: a MariaDB pool that follows the cluster's writable node.

use super::{NodeStatus, PROBE_TIMEOUT, SERVER_IDENTITY, choose_writer, probe_nodes};
use crate::config::{CONNECT_TIMEOUT, MariaDbConfig};
use crate::connect::{self, ConnectError, PoolSize};
use sqlx::Connection;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

/// How often the monitor asks every node whether it still takes writes.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// How many checks in a row must find the current node unfit before the pool moves (one slow
/// answer is not a failure).
const FAILED_CHECKS: u32 = 2;
/// How long a preferred Galera node must take writes again before the pool moves back to it.
pub const MOVE_BACK_AFTER: Duration = Duration::from_secs(5);

/// A MariaDB pool on the first node (in the configured order) that takes writes, which moves
/// to another node when that one dies or stops taking writes.
///
/// For a cluster configuration a monitor task asks every node every [`CHECK_INTERVAL`]. When
/// two checks in a row find that the current node no longer takes writes, new connections go
/// to the first node that does. Connections to the old node are not handed out again: idle
/// ones opened before the switch are closed (and every idle connection is pinged, with a
/// timeout, before use), and a new connection that reached another server than the current
/// node is refused. Statements in flight on the old node fail: callers retry them, as the sync
/// worker does with every connection error. Between Galera nodes the pool moves back to a node
/// earlier in the list once it has taken writes for [`MOVE_BACK_AFTER`], so processes with the
/// same configuration end on the same node; it never moves back to a non-Galera primary (an
/// old primary that returns is not the primary any more once a replica was promoted).
///
/// A caller may name a server to [`prefer`](Self::prefer) (the sync workers' home node): the
/// pool then goes there whenever it takes writes, instead of following the configured order.
///
/// A single-node configuration gives a plain pool without a monitor. Clones share the pool;
/// the monitor stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct ClusterPool {
    pool: MySqlPool,
    cluster: Option<Arc<Cluster>>,
}

/// The monitored part: nodes, the current one, and the monitor task (aborted on drop).
#[derive(Debug)]
struct Cluster {
    nodes: Vec<MariaDbConfig>,
    current: AtomicUsize,
    switches: AtomicU64,
    target: Arc<Target>,
    /// A server to go to whenever it takes writes (see [`ClusterPool::prefer`]).
    preferred: RwLock<Option<String>>,
    /// Servers that took writes at one of the last two checks.
    recently_fit: RwLock<Vec<String>>,
    /// Per node, the server identity it last reported ("" before it ever answered).
    known: RwLock<Vec<String>>,
    monitor: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(task) = self.monitor.lock().ok().and_then(|mut m| m.take()) {
            task.abort();
        }
    }
}

/// Where new connections must lead and since when, for the pool's callbacks (kept apart from
/// [`Cluster`] so the pool does not keep the monitor alive).
#[derive(Debug)]
struct Target {
    start: Instant,
    /// Nanoseconds after `start` of the last switch; 0 = never switched.
    switched_at: AtomicU64,
    /// The current node's [`NodeStatus`] `server` identity.
    server: RwLock<String>,
}

impl Target {
    fn switch_to(&self, server: String) {
        if let Ok(mut s) = self.server.write() {
            *s = server;
        }
        let nanos = self.start.elapsed().as_nanos().max(1);
        self.switched_at
            .store(u64::try_from(nanos).unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    /// True when a connection of this age was opened after the last switch.
    fn opened_after_switch(&self, age: Duration) -> bool {
        match self.switched_at.load(Ordering::SeqCst) {
            0 => true,
            at => {
                age <= self
                    .start
                    .elapsed()
                    .saturating_sub(Duration::from_nanos(at))
            }
        }
    }

    fn server(&self) -> String {
        self.server.read().map(|s| s.clone()).unwrap_or_default()
    }
}

impl From<MySqlPool> for ClusterPool {
    /// A pool that stays where it is (no monitor).
    fn from(pool: MySqlPool) -> Self {
        Self {
            pool,
            cluster: None,
        }
    }
}

impl ClusterPool {
    /// Opens the pool on the first node that takes writes (any node answering, for a single
    /// server), after one connection to the database proved the login and the database, and
    /// for a cluster starts the monitor. Must run inside a Tokio runtime.
    pub async fn connect(cfg: &MariaDbConfig, size: PoolSize) -> Result<Self, ConnectError> {
        if !cfg.is_cluster() {
            return Ok(connect::node_pool(cfg, size).await?.into());
        }
        let nodes = cfg.nodes();
        let statuses = probe_nodes(cfg).await;
        let first = choose_writer(&statuses)?;
        let known: Vec<String> = statuses.iter().map(server_of).collect();
        if let Some(twice) = known
            .iter()
            .enumerate()
            .find(|(i, s)| !s.is_empty() && known[..*i].contains(s))
            .map(|(_, s)| s.clone())
        {
            return Err(ConnectError::SameServerTwice { server: twice });
        }
        let proof = connect::node_connection(&nodes[first], true).await?;
        drop(proof.close().await);
        let target = Arc::new(Target {
            start: Instant::now(),
            switched_at: AtomicU64::new(0),
            server: RwLock::new(server_of(&statuses[first])),
        });
        let (before, after) = (Arc::clone(&target), Arc::clone(&target));
        let pool = MySqlPoolOptions::new()
            .max_connections(size.max)
            .acquire_timeout(CONNECT_TIMEOUT * 3)
            // Replaced by the check below, which has a timeout: a node that vanished without
            // closing its connections must not hold an acquire for minutes.
            .test_before_acquire(false)
            .before_acquire(move |conn, meta| {
                let fresh = before.opened_after_switch(meta.age);
                Box::pin(async move {
                    Ok(fresh
                        && matches!(
                            tokio::time::timeout(PROBE_TIMEOUT, conn.ping()).await,
                            Ok(Ok(()))
                        ))
                })
            })
            .after_connect(move |conn, _meta| {
                let want = after.server();
                Box::pin(async move {
                    let reached: String = sqlx::query_scalar(&format!("SELECT {SERVER_IDENTITY}"))
                        .fetch_one(&mut *conn)
                        .await?;
                    if reached == want {
                        Ok(())
                    } else {
                        Err(sqlx::Error::Protocol(format!(
                            "connected to {reached}, but writes now go to {want}"
                        )))
                    }
                })
            })
            .connect_lazy_with(nodes[first].connect_options());
        tracing::info!(node = %nodes[first].endpoint(), "MariaDB writes go to this node");
        let cluster = Arc::new(Cluster {
            nodes,
            current: AtomicUsize::new(first),
            switches: AtomicU64::new(0),
            target,
            preferred: RwLock::new(None),
            recently_fit: RwLock::new(fit_servers(&statuses)),
            known: RwLock::new(known),
            monitor: std::sync::Mutex::new(None),
        });
        let fit_at_connect = fit_servers(&statuses);
        let task = tokio::spawn(monitor(
            Arc::downgrade(&cluster),
            pool.clone(),
            fit_at_connect,
        ));
        if let Ok(mut slot) = cluster.monitor.lock() {
            *slot = Some(task);
        }
        Ok(Self {
            pool,
            cluster: Some(cluster),
        })
    }

    /// The pool (clone it freely; it keeps following the writable node).
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// `host:port` of the node new connections go to; `None` for a pool made from a plain
    /// [`MySqlPool`].
    pub fn node(&self) -> Option<String> {
        self.cluster
            .as_ref()
            .map(|c| c.nodes[c.current.load(Ordering::SeqCst)].endpoint())
    }

    /// The identity (`@@hostname:@@port`) of the server new connections go to; `None` for a
    /// pool made from a plain [`MySqlPool`].
    pub fn server(&self) -> Option<String> {
        self.cluster.as_ref().map(|c| c.target.server())
    }

    /// Go to `server` (an identity as [`server`](Self::server) gives) whenever it takes writes,
    /// from the next check on. No effect on a pool made from a plain [`MySqlPool`].
    pub fn prefer(&self, server: &str) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        // Called for every claim: the write lock only when the preference changes.
        let unchanged = cluster
            .preferred
            .read()
            .is_ok_and(|p| p.as_deref() == Some(server));
        if !unchanged && let Ok(mut preferred) = cluster.preferred.write() {
            *preferred = Some(server.to_owned());
        }
    }

    /// True when `server` took writes at one of the monitor's last two checks (false for a
    /// server that is not a node of this pool, and for a plain pool).
    pub fn recently_fit(&self, server: &str) -> bool {
        self.cluster.as_ref().is_some_and(|c| {
            c.recently_fit
                .read()
                .is_ok_and(|fit| fit.iter().any(|s| s == server))
        })
    }

    /// True when `server` is the identity one of this pool's nodes reported.
    pub fn has_server(&self, server: &str) -> bool {
        self.cluster.as_ref().is_some_and(|c| {
            c.known
                .read()
                .is_ok_and(|known| known.iter().any(|s| s == server))
        })
    }

    /// How many times the pool moved to another node.
    pub fn switches(&self) -> u64 {
        self.cluster
            .as_ref()
            .map_or(0, |c| c.switches.load(Ordering::SeqCst))
    }
}

fn server_of(node: &NodeStatus) -> String {
    node.info().map(|i| i.server.clone()).unwrap_or_default()
}

/// The identities of the nodes that take writes.
fn fit_servers(statuses: &[NodeStatus]) -> Vec<String> {
    statuses
        .iter()
        .filter(|s| s.takes_writes().is_ok())
        .map(server_of)
        .collect()
}

/// Asks every node every [`CHECK_INTERVAL`] and moves the pool (see [`ClusterPool`]).
async fn monitor(cluster: Weak<Cluster>, pool: MySqlPool, fit_at_connect: Vec<String>) {
    // The first check one interval after connecting, whose probes are the starting point.
    let mut interval =
        tokio::time::interval_at(tokio::time::Instant::now() + CHECK_INTERVAL, CHECK_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A preferred Galera node seen taking writes again, since when.
    let mut returning: Option<(usize, Instant)> = None;
    let mut failed_checks = 0;
    let mut warned = false;
    let mut fit_before = fit_at_connect;
    loop {
        interval.tick().await;
        let Some(cluster) = cluster.upgrade() else {
            return;
        };
        let statuses =
            futures_util::future::join_all(cluster.nodes.iter().map(super::probe_node)).await;
        let current = cluster.current.load(Ordering::SeqCst);
        let fit_now = fit_servers(&statuses);
        if let Ok(mut recent) = cluster.recently_fit.write() {
            *recent = fit_now.iter().chain(&fit_before).cloned().collect();
        }
        fit_before = fit_now;
        if let Ok(mut known) = cluster.known.write() {
            for (slot, status) in known.iter_mut().zip(&statuses) {
                if let Some(info) = status.info() {
                    slot.clone_from(&info.server);
                }
            }
        }
        let preferred = cluster.preferred.read().ok().and_then(|p| p.clone());
        let choice = choose_writer(&statuses);
        // A preference is followed between Galera nodes only, and never past the refusal of
        // two primaries (an old primary back with read_only off is not a home any more).
        let preferred_fit = preferred.as_ref().filter(|_| choice.is_ok()).and_then(|p| {
            (0..statuses.len()).find(|&i| {
                statuses[i].is_galera()
                    && statuses[i].takes_writes().is_ok()
                    && &server_of(&statuses[i]) == p
            })
        });
        let next = if let Some(i) = preferred_fit {
            // Go where the caller wants to be, at once; no moving back by the configured order.
            failed_checks = 0;
            returning = None;
            (i != current).then_some(i)
        } else if statuses[current].takes_writes().is_ok() {
            failed_checks = 0;
            warned = false;
            match choice {
                // With a preference (gone for now), stay: the caller moves its home to us.
                _ if preferred.is_some() => None,
                Ok(i) if i < current && statuses[current].is_galera() => match returning {
                    Some((j, since)) if j == i && since.elapsed() >= MOVE_BACK_AFTER => Some(i),
                    Some((j, _)) if j == i => None,
                    _ => {
                        returning = Some((i, Instant::now()));
                        None
                    }
                },
                _ => {
                    returning = None;
                    None
                }
            }
        } else {
            failed_checks += 1;
            match choice {
                Ok(i) if failed_checks >= FAILED_CHECKS => Some(i),
                Ok(_) => None,
                Err(e) => {
                    if !warned {
                        tracing::warn!(error = %e, "no MariaDB node to move writes to; waiting");
                    }
                    warned = true;
                    None
                }
            }
        };
        let Some(next) = next else {
            continue;
        };
        let why = match statuses[current].takes_writes() {
            Err(why) => why,
            Ok(()) if Some(next) == preferred_fit => "the preferred server is there".into(),
            Ok(()) => "a node earlier in the list takes writes again".into(),
        };
        returning = None;
        failed_checks = 0;
        cluster.target.switch_to(server_of(&statuses[next]));
        pool.set_connect_options(cluster.nodes[next].connect_options());
        cluster.current.store(next, Ordering::SeqCst);
        cluster.switches.fetch_add(1, Ordering::SeqCst);
        tracing::warn!(
            from = %statuses[current].endpoint,
            to = %statuses[next].endpoint,
            reason = %why,
            "MariaDB writes move to another node"
        );
    }
}
