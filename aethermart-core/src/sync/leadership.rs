//! [`Candidate`] and [`Lease`]: any number of binlog workers may run for a database; exactly one
//! reads the binlog, the holder of the lease ([`crate::binlog_position::lease`]); the others
//! are hot standbys and take over when it dies.
//!
//! Timing, for a TTL `t` (default [`DEFAULT_TTL`]):
//! - the leader renews every `t / 5` and counts itself leader until `4t / 5` after the *start*
//!   of its last renewal that succeeded ([`Lease::is_held`]); past that it stops claiming,
//!   writing and storing the position, even if nobody took over;
//! - a standby polls every `t / 5` and takes over once the lease's `(term, beats)` stayed the
//!   same for `t` on its own clock (or at once when the leader released it), with a write
//!   conditional on exactly that `(term, beats)`: of several standbys one wins.
//!
//! The standby's `t` starts no earlier than the leader's last renewal was written, and the
//! leader's own deadline ends `t / 5` before that: the margin in which a write the old leader
//! sent before its deadline must land. A write still in flight after it (a process frozen
//! between the check and the send, a request stuck in the network) may land after the new
//! leader's; the new leader replays from the stored position, which the old one could not
//! move past unacknowledged writes, and the next change of that key re-reads the row, so the
//! stores converge.

use super::{BinlogError, Sink, SyncError, SyncMetrics, Write};
use crate::binlog_position::lease::{self, Holder, Seen};
use crate::projection::Refused;
use async_trait::async_trait;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The lease's default TTL: a standby takes over 10–12 s after the leader's last renewal, and a
/// leader stands down 8 s after its last one (renewals every 2 s). Short enough for a prompt
/// failover, far above a renewal's round trip, and about a MongoDB replica set's election
/// (~10–12 s after a primary's crash): such an election may make the leader stand down and a
/// worker take over once MongoDB answers again, which costs a replay from the stored position,
/// nothing else (nobody writes to MongoDB meanwhile anyway).
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);

/// The shortest TTL accepted.
pub const MIN_TTL: Duration = Duration::from_millis(500);

/// A worker that wants to read the binlog of one database.
#[derive(Debug, Clone)]
pub struct Candidate {
    mongo: mongodb::Database,
    database: String,
    me: Holder,
    ttl: Duration,
    metrics: Option<Arc<SyncMetrics>>,
}

impl Candidate {
    /// This process as a candidate for the lease of `database` (the MariaDB database), kept in
    /// `mongo`; `ttl` at least [`MIN_TTL`].
    pub fn new(mongo: mongodb::Database, database: &str, ttl: Duration) -> Self {
        Self {
            mongo,
            database: database.to_owned(),
            me: Holder::this_process(),
            ttl: ttl.max(MIN_TTL),
            metrics: None,
        }
    }

    /// Reports its role and leadership changes in `metrics`, and each standby poll as the
    /// loop's heartbeat (`/healthz`).
    pub fn with_metrics(mut self, metrics: Arc<SyncMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Who this process is in the lease and `aethermart sync status`.
    pub fn holder(&self) -> &Holder {
        &self.me
    }

    /// The lease's TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn ttl_ms(&self) -> i64 {
        self.ttl.as_millis() as i64
    }

    /// Waits as a standby (shown as such) until this worker holds the lease, or until
    /// `deadline` (then [`BinlogError::Led`] names the leader). Fails at once without a
    /// stored position ([`BinlogError::NoPosition`]).
    pub async fn acquire(&self, deadline: Option<Instant>) -> Result<Lease, BinlogError> {
        let poll = self.ttl / 5;
        // The lease as first seen unchanged, and when (this machine's monotonic clock).
        let mut unchanged: Option<((i64, i64, String), Instant)> = None;
        if let Some(m) = &self.metrics {
            m.binlog_standby(None);
        }
        if let Err(e) = lease::forget_silent(&self.mongo, &self.database).await {
            tracing::debug!(error = %e, "removing long-silent workers from the list failed");
        }
        loop {
            if let Some(m) = &self.metrics {
                m.polled();
            }
            if let Some(deadline) = deadline
                && Instant::now() >= deadline
            {
                let leader = lease::read(&self.mongo, &self.database).await;
                return Err(match leader {
                    Ok(Seen::Held(l)) => BinlogError::Led {
                        host: l.host,
                        pid: l.pid,
                    },
                    Ok(_) => BinlogError::Checkpoint(
                        "the binlog lease could not be taken before the deadline".to_owned(),
                    ),
                    Err(e) => BinlogError::Checkpoint(format!(
                        "the binlog lease could not be taken before the deadline: {e}"
                    )),
                });
            }
            if let Err(e) = lease::show_presence(
                &self.mongo,
                &self.database,
                &self.me,
                "standby",
                self.ttl_ms(),
            )
            .await
            {
                tracing::debug!(error = %e, "showing this standby in MongoDB failed");
            }
            let seen = match lease::read(&self.mongo, &self.database).await {
                Ok(seen) => seen,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the binlog lease failed; retrying");
                    tokio::time::sleep(poll).await;
                    continue;
                }
            };
            let takeable = match &seen {
                Seen::NoPosition => {
                    return Err(BinlogError::NoPosition {
                        database: self.database.clone(),
                    });
                }
                Seen::Vacant => true,
                Seen::Held(l) if l.released || l.holder == self.me.id => true,
                Seen::Held(l) => {
                    let key = (l.term, l.beats, l.holder.clone());
                    let expiry = self.ttl.max(Duration::from_millis(l.ttl_ms.max(0) as u64));
                    match &unchanged {
                        Some((k, since)) if *k == key => since.elapsed() >= expiry,
                        _ => {
                            unchanged = Some((key, Instant::now()));
                            false
                        }
                    }
                }
            };
            if takeable {
                let started = Instant::now();
                match lease::take(&self.mongo, &self.database, &seen, &self.me, self.ttl_ms()).await
                {
                    Ok(Some(term)) => {
                        if let Seen::Held(l) = &seen {
                            tracing::info!(term, previous = %l.holder, previous_host = %l.host,
                                released = l.released, "took over the binlog lease");
                        } else {
                            tracing::info!(term, "took the binlog lease");
                        }
                        if let Some(m) = &self.metrics {
                            m.binlog_leading(term);
                        }
                        return Ok(Lease::start(self, term, started));
                    }
                    Ok(None) => unchanged = None,
                    Err(e) => tracing::warn!(error = %e, "taking the binlog lease failed"),
                }
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// Removes this worker from the list of workers (a clean stop).
    pub async fn withdraw(&self) {
        if let Err(e) = lease::withdraw(&self.mongo, &self.me).await {
            tracing::debug!(error = %e, "removing this worker from the list failed");
        }
    }
}

/// This worker's lease on the binlog of one database: renewed in the background while a
/// clone lives, given up when the last one is dropped.
#[derive(Debug, Clone)]
pub struct Lease {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    term: i64,
    /// Who holds it, and where it is stored.
    candidate: Candidate,
    /// Until when this worker counts as leader, and whether it lost the lease for good.
    state: Arc<State>,
    renewing: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct State {
    valid_until: Mutex<Instant>,
    lost: watch::Sender<bool>,
    /// The MariaDB server read from, noted in the lease at the next renewal.
    reading: Mutex<Option<String>>,
    metrics: Option<Arc<SyncMetrics>>,
}

impl State {
    /// The lease is gone for good (`lost` or `released`); counted once.
    fn end(&self, change: &'static str) {
        if !self.lost.send_replace(true)
            && let Some(m) = &self.metrics
        {
            m.binlog_standby(Some(change));
        }
    }
}

impl Drop for Shared {
    /// The last clone dropped: the lease is given up (in the background, when a runtime runs),
    /// so a standby takes over without waiting for it to expire.
    fn drop(&mut self) {
        self.renewing.abort();
        if *self.state.lost.borrow() {
            return;
        }
        self.state.end("released");
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (c, term) = (self.candidate.clone(), self.term);
            runtime.spawn(async move {
                let _ = lease::release(&c.mongo, &c.database, term, &c.me).await;
            });
        }
    }
}

impl Lease {
    fn start(candidate: &Candidate, term: i64, started: Instant) -> Self {
        let valid_for = candidate.ttl * 4 / 5;
        let state = Arc::new(State {
            valid_until: Mutex::new(started + valid_for),
            lost: watch::Sender::new(false),
            reading: Mutex::new(None),
            metrics: candidate.metrics.clone(),
        });
        let renewing = tokio::spawn(renew_forever(candidate.clone(), term, state.clone()));
        Self {
            shared: Arc::new(Shared {
                term,
                candidate: candidate.clone(),
                state,
                renewing,
            }),
        }
    }

    /// The term: bumped by every takeover; every position this leader stores names it.
    pub fn term(&self) -> i64 {
        self.shared.term
    }

    /// [`Holder::id`] of this worker.
    pub fn holder(&self) -> &str {
        &self.shared.candidate.me.id
    }

    /// True while this worker may read, write and store the position: the lease was renewed
    /// recently enough and nobody took it over.
    pub fn is_held(&self) -> bool {
        let s = &self.shared.state;
        !*s.lost.borrow() && Instant::now() < *lock(&s.valid_until)
    }

    /// Resolves once the lease is no longer held (lost to another worker, or not renewed in
    /// time); never before.
    pub async fn lost(&self) {
        let s = &self.shared.state;
        let mut lost = s.lost.subscribe();
        loop {
            if !self.is_held() {
                return;
            }
            let until = *lock(&s.valid_until);
            tokio::select! {
                _ = lost.changed() => {}
                () = tokio::time::sleep_until(until.into()) => {}
            }
        }
    }

    /// Notes the MariaDB server (`host:port`) the binlog is read from.
    pub fn set_reading(&self, endpoint: &str) {
        *lock(&self.shared.state.reading) = Some(endpoint.to_owned());
    }

    /// Gives the lease up (a clean stop): a standby takes over at once.
    pub async fn release(&self) {
        self.shared.renewing.abort();
        self.shared.state.end("released");
        let c = &self.shared.candidate;
        if let Err(e) = lease::release(&c.mongo, &c.database, self.shared.term, &c.me).await {
            tracing::warn!(error = %e, "releasing the binlog lease failed; a standby takes over when it expires");
        }
    }

    /// `sink` writing only while this lease is held: a batch whose lease lapsed between its
    /// claim and its write fails with [`BinlogError::NotLeader`] instead of writing.
    pub fn fence(&self, sink: Arc<dyn Sink>) -> Arc<dyn Sink> {
        Arc::new(Fenced {
            lease: self.clone(),
            sink,
        })
    }

    /// Ends the lease here: something found it taken over (a position write refused).
    pub(crate) fn mark_lost(&self) {
        self.shared.state.end("lost");
    }

    /// The error a worker meets once its lease is gone.
    pub fn not_leader(&self) -> BinlogError {
        BinlogError::NotLeader {
            term: self.shared.term,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Renews every TTL / 5 until the lease is lost or lapses.
async fn renew_forever(candidate: Candidate, term: i64, state: Arc<State>) {
    let every = candidate.ttl / 5;
    let valid_for = candidate.ttl * 4 / 5;
    loop {
        tokio::time::sleep(every).await;
        let started = Instant::now();
        let reading = lock(&state.reading).clone();
        let renewed = tokio::time::timeout(
            every,
            lease::renew(
                &candidate.mongo,
                &candidate.database,
                term,
                &candidate.me,
                reading.as_deref(),
            ),
        )
        .await;
        match renewed {
            Ok(Ok(true)) => *lock(&state.valid_until) = started + valid_for,
            Ok(Ok(false)) => {
                tracing::warn!(
                    term,
                    "another worker took the binlog lease: this one stops reading and writing"
                );
                state.end("lost");
                return;
            }
            Ok(Err(e)) => tracing::warn!(error = %e, term, "renewing the binlog lease failed"),
            Err(_) => tracing::warn!(
                term,
                ms = every.as_millis() as u64,
                "renewing the binlog lease timed out"
            ),
        }
        if Instant::now() >= *lock(&state.valid_until) {
            tracing::warn!(
                term,
                "the binlog lease was not renewed in time: this worker stops reading and writing"
            );
            state.end("lost");
            return;
        }
        // Bounded: a slow presence write must not delay the next renewal.
        let shown = tokio::time::timeout(
            every,
            lease::show_presence(
                &candidate.mongo,
                &candidate.database,
                &candidate.me,
                "leader",
                candidate.ttl_ms(),
            ),
        )
        .await;
        if !matches!(shown, Ok(Ok(()))) {
            tracing::debug!("showing this leader in MongoDB failed or timed out");
        }
    }
}

/// A sink that writes only while the lease is held.
struct Fenced {
    lease: Lease,
    sink: Arc<dyn Sink>,
}

#[async_trait]
impl Sink for Fenced {
    async fn apply(&self, collection: &str, writes: &[Write]) -> Result<Vec<Refused>, SyncError> {
        if !self.lease.is_held() {
            return Err(self.lease.not_leader().into());
        }
        self.sink.apply(collection, writes).await
    }
}
