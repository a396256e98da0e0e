//! [`SyncMetrics`] (Prometheus) and a minimal HTTP endpoint serving `/metrics` and `/healthz`.

use crate::projection::Entity;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabel {
    queue: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabel {
    queue: String,
    kind: String,
}

type HistogramFamily = Family<QueueLabel, Histogram, fn() -> Histogram>;

fn label(entity: Entity) -> QueueLabel {
    QueueLabel {
        queue: entity.queue_table().to_owned(),
    }
}

/// The sync loop's metrics, in a Prometheus registry.
#[derive(Debug)]
pub struct SyncMetrics {
    registry: Registry,
    depth: Family<QueueLabel, Gauge>,
    applied: Family<QueueLabel, Counter>,
    documents: Family<QueueLabel, Counter>,
    errors: Family<ErrorLabel, Counter>,
    retries: Family<QueueLabel, Counter>,
    dead_letters: Family<QueueLabel, Counter>,
    lag: Family<QueueLabel, Gauge<f64, AtomicU64>>,
    lag_seconds: HistogramFamily,
    batch_size: HistogramFamily,
    batch_seconds: HistogramFamily,
    mariadb_switches: Counter,
    /// The pool's switch total last recorded (the counter grows by the difference).
    switches_seen: AtomicU64,
    /// Unix milliseconds of the last completed poll (healthy while recent).
    last_poll_ms: AtomicU64,
}

impl Default for SyncMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("aethermart_sync");
        let depth = Family::default();
        let applied = Family::default();
        let documents = Family::default();
        let errors = Family::default();
        let retries = Family::default();
        let dead_letters = Family::default();
        let lag = Family::default();
        let lag_seconds: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 16)));
        let batch_size: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(1.0, 2.0, 14)));
        let batch_seconds: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 16)));
        registry.register("queue_depth", "Entries waiting in the queue", depth.clone());
        registry.register(
            "changes_applied",
            "Queue entries whose document was written",
            applied.clone(),
        );
        registry.register(
            "documents_written",
            "Documents upserted or deleted in MongoDB",
            documents.clone(),
        );
        registry.register("errors", "Failed polls or batches by kind", errors.clone());
        registry.register(
            "retries",
            "Batches retried after a transient error",
            retries.clone(),
        );
        registry.register(
            "dead_letters",
            "Changes moved to sync_dead_letters",
            dead_letters.clone(),
        );
        registry.register(
            "lag_seconds_last",
            "Seconds from the oldest change of the last batch to its acknowledgement",
            lag.clone(),
        );
        registry.register(
            "lag_seconds",
            "Seconds from a batch's oldest change to its acknowledgement",
            lag_seconds.clone(),
        );
        registry.register("batch_size", "Changes per batch", batch_size.clone());
        registry.register(
            "batch_seconds",
            "Seconds from claiming a batch to acknowledging it",
            batch_seconds.clone(),
        );
        let mariadb_switches = Counter::default();
        registry.register(
            "mariadb_switches",
            "Times the MariaDB pool moved to another node of the cluster",
            mariadb_switches.clone(),
        );
        Self {
            registry,
            mariadb_switches,
            switches_seen: AtomicU64::new(0),
            depth,
            applied,
            documents,
            errors,
            retries,
            dead_letters,
            lag,
            lag_seconds,
            batch_size,
            batch_seconds,
            last_poll_ms: AtomicU64::new(now_ms()),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl SyncMetrics {
    /// Records the cluster pool's total of node switches ([`crate::cluster::ClusterPool::switches`]).
    pub fn record_mariadb_switches(&self, total: u64) {
        let seen = self.switches_seen.swap(total, Ordering::Relaxed);
        if total > seen {
            self.mariadb_switches.inc_by(total - seen);
        }
    }

    /// Records an acknowledged batch.
    pub(crate) fn batch(
        &self,
        entity: Entity,
        ack: &super::Acknowledged,
        documents: u64,
        lag: f64,
        seconds: f64,
    ) {
        let l = label(entity);
        self.applied.get_or_create(&l).inc_by(ack.applied);
        self.documents.get_or_create(&l).inc_by(documents);
        self.dead_letters
            .get_or_create(&l)
            .inc_by(ack.dead_lettered);
        self.lag.get_or_create(&l).set(lag);
        self.lag_seconds.get_or_create(&l).observe(lag);
        self.batch_size
            .get_or_create(&l)
            .observe((ack.applied + ack.retried + ack.dead_lettered) as f64);
        self.batch_seconds.get_or_create(&l).observe(seconds);
    }

    /// Records a failed poll or batch.
    pub(crate) fn error(&self, entity: Entity, transient: bool) {
        let kind = if transient { "transient" } else { "permanent" };
        self.errors
            .get_or_create(&ErrorLabel {
                queue: entity.queue_table().to_owned(),
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Records a retry after a transient error.
    pub(crate) fn retry(&self, entity: Entity) {
        self.retries.get_or_create(&label(entity)).inc();
    }

    /// Sets a queue's depth.
    pub(crate) fn depth(&self, entity: Entity, depth: u64) {
        self.depth
            .get_or_create(&label(entity))
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// Notes that a poll completed (the loop is alive).
    pub(crate) fn polled(&self) {
        self.last_poll_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// True when the loop completed a poll within `max_age`.
    pub fn healthy(&self, max_age: Duration) -> bool {
        now_ms().saturating_sub(self.last_poll_ms.load(Ordering::Relaxed))
            <= max_age.as_millis() as u64
    }

    /// The metrics in the Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Serves `GET /metrics` (Prometheus text) and `GET /healthz` (200 while the loop polled
/// within the last 30 s, else 503) on `listener` until the task is dropped.
pub async fn serve_metrics(listener: TcpListener, metrics: Arc<SyncMetrics>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    if let Err(e) = respond(stream, &metrics).await {
                        tracing::debug!(error = %e, "metrics request failed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting a metrics connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn respond(mut stream: TcpStream, metrics: &SyncMetrics) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request head"))??;
    let line = String::from_utf8_lossy(&head);
    let path = line.split_whitespace().nth(1).unwrap_or("");
    let (status, content_type, body) = match path {
        "/metrics" => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        "/healthz" if metrics.healthy(Duration::from_secs(30)) => {
            ("200 OK", "text/plain", "ok\n".to_owned())
        }
        "/healthz" => (
            "503 Service Unavailable",
            "text/plain",
            "the sync loop has not polled for 30 s\n".to_owned(),
        ),
        _ => (
            "404 Not Found",
            "text/plain",
            "try /metrics or /healthz\n".to_owned(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pools_switch_total_becomes_a_counter() {
        let metrics = SyncMetrics::default();
        metrics.record_mariadb_switches(0);
        metrics.record_mariadb_switches(2);
        metrics.record_mariadb_switches(2);
        metrics.record_mariadb_switches(3);
        assert!(
            metrics
                .encode()
                .contains("aethermart_sync_mariadb_switches_total 3"),
            "{}",
            metrics.encode()
        );
    }
}
