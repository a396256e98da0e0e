//! [`ClusterPool`]: a MariaDB pool that follows the cluster's writable node.

use super::{NodeStatus, first_writable, reasons, status};
use crate::config::{CONNECT_TIMEOUT, MariaDbConfig};
use crate::connect::{self, ConnectError, PoolSize};
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How often the monitor asks every node whether it still takes writes.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// How long a preferred node must take writes again before the pool moves back to it.
pub const MOVE_BACK_AFTER: Duration = Duration::from_secs(5);

/// A MariaDB pool on the first node (in the configured order) that takes writes, which moves
/// to another node when that one dies or stops taking writes.
///
/// For a cluster configuration a monitor task asks every node every [`CHECK_INTERVAL`]. When
/// the current node no longer takes writes, the pool's new connections go to the first node
/// that does, and connections opened before the switch are closed instead of being handed out
/// again (those in use fail on their own when their node died). Statements in flight on the
/// old node fail: callers retry them, as the sync worker does with every connection error. The
/// pool moves back to a node earlier in the list once it has taken writes for
/// [`MOVE_BACK_AFTER`], so every process with the same configuration ends on the same node.
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
    clock: Arc<SwitchClock>,
    monitor: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(task) = self.monitor.lock().ok().and_then(|mut m| m.take()) {
            task.abort();
        }
    }
}

/// When the pool last moved to another node, for the pool's `before_acquire` check (kept
/// apart from [`Cluster`] so the pool does not keep the monitor alive).
#[derive(Debug)]
struct SwitchClock {
    start: Instant,
    /// Nanoseconds after `start` of the last switch; 0 = never switched.
    switched_at: AtomicU64,
}

impl SwitchClock {
    fn mark(&self) {
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
    /// server) and, for a cluster, starts the monitor. Must run inside a Tokio runtime.
    pub async fn connect(cfg: &MariaDbConfig, size: PoolSize) -> Result<Self, ConnectError> {
        if !cfg.is_cluster() {
            return Ok(connect::mariadb_pool(cfg, size).await?.into());
        }
        let nodes = cfg.nodes();
        let statuses = status(cfg).await;
        let first = first_writable(&statuses).ok_or_else(|| ConnectError::NoWritableNode {
            reasons: reasons(&statuses, NodeStatus::takes_writes),
        })?;
        let clock = Arc::new(SwitchClock {
            start: Instant::now(),
            switched_at: AtomicU64::new(0),
        });
        let fresh = Arc::clone(&clock);
        let pool = MySqlPoolOptions::new()
            .max_connections(size.max)
            .acquire_timeout(CONNECT_TIMEOUT * 3)
            .before_acquire(move |_conn, meta| {
                let keep = fresh.opened_after_switch(meta.age);
                Box::pin(async move { Ok(keep) })
            })
            .connect_lazy_with(nodes[first].connect_options());
        tracing::info!(node = %nodes[first].endpoint(), "MariaDB writes go to this node");
        let cluster = Arc::new(Cluster {
            nodes,
            current: AtomicUsize::new(first),
            switches: AtomicU64::new(0),
            clock,
            monitor: std::sync::Mutex::new(None),
        });
        let task = tokio::spawn(monitor(Arc::downgrade(&cluster), pool.clone()));
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

    /// How many times the pool moved to another node.
    pub fn switches(&self) -> u64 {
        self.cluster
            .as_ref()
            .map_or(0, |c| c.switches.load(Ordering::SeqCst))
    }
}

/// Asks every node every [`CHECK_INTERVAL`] and moves the pool (see [`ClusterPool`]).
async fn monitor(cluster: Weak<Cluster>, pool: MySqlPool) {
    let mut interval = tokio::time::interval(CHECK_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A preferred node seen taking writes again, since when.
    let mut returning: Option<(usize, Instant)> = None;
    let mut warned_none = false;
    loop {
        interval.tick().await;
        let Some(cluster) = cluster.upgrade() else {
            return;
        };
        let statuses = futures_util::future::join_all(cluster.nodes.iter().map(super::probe)).await;
        let current = cluster.current.load(Ordering::SeqCst);
        let target = if statuses[current].takes_writes().is_ok() {
            let preferred = first_writable(&statuses[..current]);
            match (preferred, returning) {
                (Some(i), Some((j, since))) if i == j && since.elapsed() >= MOVE_BACK_AFTER => {
                    Some(i)
                }
                (Some(i), Some((j, _))) if i == j => None,
                (Some(i), _) => {
                    returning = Some((i, Instant::now()));
                    None
                }
                (None, _) => {
                    returning = None;
                    None
                }
            }
        } else {
            match first_writable(&statuses) {
                Some(i) => Some(i),
                None => {
                    if !warned_none {
                        tracing::warn!(
                            nodes = %reasons(&statuses, NodeStatus::takes_writes),
                            "no MariaDB node takes writes; waiting for one"
                        );
                    }
                    warned_none = true;
                    None
                }
            }
        };
        let Some(next) = target else {
            continue;
        };
        warned_none = false;
        returning = None;
        let why = statuses[current]
            .takes_writes()
            .err()
            .unwrap_or_else(|| "a preferred node takes writes again".into());
        pool.set_connect_options(cluster.nodes[next].connect_options());
        cluster.clock.mark();
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
