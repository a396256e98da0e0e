//! The worker's HTTP endpoint: `/` (the live status page), `/metrics` (Prometheus), `/healthz`
//! (the loop turns) and `/readyz` (both stores answer now, and MongoDB took the last write). A
//! minimal HTTP/1.1 server: one request per connection, `GET` only, nothing but these paths.

use super::SyncMetrics;
use crate::cluster::ClusterPool;
use mongodb::bson::doc;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long the loop may go without completing a poll before `/healthz` fails.
pub const HEALTHY_POLL_AGE: Duration = Duration::from_secs(30);
/// A MongoDB write that failed this recently (with none succeeding since) makes `/readyz` fail.
pub const READY_WRITE_WINDOW: Duration = Duration::from_secs(60);
/// How long each store has to answer `/readyz`'s probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a probe's answer is reused.
const PROBE_CACHE: Duration = Duration::from_secs(1);

/// A `/readyz` answer: when it was probed, and the reasons not to be ready.
type Answer = (std::time::Instant, Vec<String>);

/// What `/readyz` asks: the worker's MariaDB pool and MongoDB database.
#[derive(Debug, Clone)]
pub struct Probes {
    /// The last answer and when it was taken: `/readyz` probes the stores at most once a
    /// second, however often it is asked (the probes use the sync's own pool).
    last: Arc<tokio::sync::Mutex<Option<Answer>>>,
    mariadb: ClusterPool,
    /// `host:port` of MariaDB when the pool does not follow a cluster.
    mariadb_endpoint: String,
    mongodb: mongodb::Database,
    /// `host:port` of MongoDB, for the reason shown when it does not answer.
    mongodb_endpoint: String,
}

impl Probes {
    /// Probes over the worker's own pool (it follows the writable node) and database, with the
    /// stores' `host:port` for the messages.
    pub fn new(
        mariadb: ClusterPool,
        mariadb_endpoint: impl Into<String>,
        mongodb: mongodb::Database,
        mongodb_endpoint: impl Into<String>,
    ) -> Self {
        Self {
            last: Arc::default(),
            mariadb,
            mariadb_endpoint: mariadb_endpoint.into(),
            mongodb,
            mongodb_endpoint: mongodb_endpoint.into(),
        }
    }

    /// Why the worker is not ready (one line per reason), or nothing. Answers from the last
    /// probe when it is under a second old; concurrent callers wait for one probe.
    pub async fn not_ready(&self, metrics: &SyncMetrics) -> Vec<String> {
        let mut last = self.last.lock().await;
        if let Some((at, reasons)) = last.as_ref() {
            if at.elapsed() < PROBE_CACHE {
                return reasons.clone();
            }
        }
        let reasons = self.probe(metrics).await;
        *last = Some((std::time::Instant::now(), reasons.clone()));
        reasons
    }

    async fn probe(&self, metrics: &SyncMetrics) -> Vec<String> {
        let mariadb = async {
            let query = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(self.mariadb.pool());
            match tokio::time::timeout(PROBE_TIMEOUT, query).await {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(format!("MariaDB at {} does not answer: {e}", self.node())),
                Err(_) => Some(format!(
                    "MariaDB at {} did not answer within {} s",
                    self.node(),
                    PROBE_TIMEOUT.as_secs()
                )),
            }
        };
        let mongodb = async {
            let ping = self.mongodb.run_command(doc! { "ping": 1 });
            let at = &self.mongodb_endpoint;
            match tokio::time::timeout(PROBE_TIMEOUT, ping).await {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(format!(
                    "MongoDB at {at} does not answer: {}",
                    crate::mongo_write::CommandError::from(e)
                )),
                Err(_) => Some(format!(
                    "MongoDB at {at} did not answer within {} s",
                    PROBE_TIMEOUT.as_secs()
                )),
            }
        };
        let (mariadb, mongodb) = tokio::join!(mariadb, mongodb);
        let mut reasons: Vec<String> = mariadb.into_iter().chain(mongodb).collect();
        if !metrics.review_stream_ok(READY_WRITE_WINDOW) {
            reasons.push(format!(
                "the reviews change stream failed within {} s and has not recovered (see the log)",
                READY_WRITE_WINDOW.as_secs()
            ));
        }
        if !metrics.mongodb_writes_ok(READY_WRITE_WINDOW) {
            reasons.push(format!(
                "the last write to MongoDB (within {} s) failed",
                READY_WRITE_WINDOW.as_secs()
            ));
        }
        reasons
    }

    /// `host:port` of the MariaDB node in use.
    fn node(&self) -> String {
        self.mariadb
            .node()
            .unwrap_or_else(|| self.mariadb_endpoint.clone())
    }
}

/// Serves `GET /` (the live status page: queues, charts, last errors), `GET /metrics` (Prometheus
/// text), `GET /healthz` (200 while the loop completed a poll
/// within [`HEALTHY_POLL_AGE`], else 503) and `GET /readyz` (200 while both stores answer a
/// probe now and the last MongoDB write attempted within [`READY_WRITE_WINDOW`], if any,
/// succeeded; else 503 with the reasons) on `listener` until the task is dropped.
pub async fn serve_http(listener: TcpListener, metrics: Arc<SyncMetrics>, probes: Probes) {
    let probes = Arc::new(probes);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let (metrics, probes) = (metrics.clone(), probes.clone());
                tokio::spawn(async move {
                    if let Err(e) = respond(stream, &metrics, &probes).await {
                        tracing::debug!(error = %e, "HTTP request failed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting an HTTP connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn respond(
    mut stream: TcpStream,
    metrics: &SyncMetrics,
    probes: &Probes,
) -> std::io::Result<()> {
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
    const TEXT: &str = "text/plain; charset=utf-8";
    let (status, content_type, body) = match path {
        "/" | "/index.html" => (
            "200 OK",
            "text/html; charset=utf-8",
            super::status_page::render(
                &metrics.snapshot(),
                super::metrics::now_seconds(),
                Some(&probes.node()),
                env!("CARGO_PKG_VERSION"),
            ),
        ),
        "/metrics" => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        "/healthz" if metrics.healthy(HEALTHY_POLL_AGE) => ("200 OK", TEXT, "ok\n".to_owned()),
        "/healthz" => (
            "503 Service Unavailable",
            TEXT,
            format!(
                "the sync loop has not polled for {} s\n",
                HEALTHY_POLL_AGE.as_secs()
            ),
        ),
        "/readyz" => {
            let reasons = probes.not_ready(metrics).await;
            if reasons.is_empty() {
                ("200 OK", TEXT, "ready\n".to_owned())
            } else {
                ("503 Service Unavailable", TEXT, reasons.join("\n") + "\n")
            }
        }
        _ => (
            "404 Not Found",
            TEXT,
            "try /, /metrics, /healthz or /readyz\n".to_owned(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
