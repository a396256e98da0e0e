//! The local server processes a benchmark runs against, for their CPU time.

use std::time::Duration;

/// A server process, when it runs on this machine: its CPU time is read from `/proc`, as the
/// worker's is.
pub(crate) struct ServerProcess(Option<u32>);

impl ServerProcess {
    /// The server listening on `endpoint` (`127.0.0.1:PORT` or `localhost:PORT`).
    pub(crate) fn listening_on(endpoint: &str) -> Self {
        let local_port = endpoint
            .strip_prefix("127.0.0.1:")
            .or_else(|| endpoint.strip_prefix("localhost:"))
            .and_then(|port| port.parse().ok());
        Self(local_port.and_then(crate::process::listening_pid))
    }

    /// No process: its CPU time is not measured.
    pub(crate) fn none() -> Self {
        Self(None)
    }

    /// The MariaDB server of `pool`, by its pid file.
    pub(crate) async fn find(pool: &sqlx::MySqlPool) -> Self {
        let pid_file: Option<String> = sqlx::query_scalar("SELECT CAST(@@pid_file AS CHAR)")
            .fetch_one(pool)
            .await
            .ok();
        let pid = pid_file
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|p| p.trim().parse().ok());
        Self(pid)
    }

    /// User + system CPU time of every thread of the server so far.
    pub(crate) fn cpu(&self) -> Option<Duration> {
        crate::process::cpu_time(&self.0?.to_string())
    }

    pub(crate) fn cpu_since(&self, start: Option<Duration>) -> Option<Duration> {
        Some(self.cpu()?.saturating_sub(start?))
    }
}
