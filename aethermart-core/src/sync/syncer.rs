//! [`Syncer`]: the loops that move changes from a [`Source`] to a [`Sink`], a few per queue.

use super::{Sink, Source, SyncError, SyncMetrics, SyncOptions, Write};
use crate::projection::{Entity, Refused};
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What a sync run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Batches acknowledged.
    pub batches: u64,
    /// Queue entries applied (removed after their document was written).
    pub changes: u64,
    /// Documents written (upserts and deletes).
    pub documents: u64,
    /// Entries kept for a later retry because their document failed.
    pub retried: u64,
    /// Entries moved to `sync_dead_letters`.
    pub dead_lettered: u64,
    /// Transient errors met (and retried after a backoff).
    pub transient_errors: u64,
    /// After a drain: changes left queued because they are parked until a retry later than
    /// [`SyncOptions::drain_wait`].
    pub parked: u64,
    /// After a drain: milliseconds until the first parked change may be retried.
    pub next_retry_in_ms: Option<u64>,
}

impl SyncReport {
    /// Adds the counts of `other` (e.g. of a later run of the same worker).
    pub fn add(&mut self, other: &Self) {
        self.batches += other.batches;
        self.changes += other.changes;
        self.documents += other.documents;
        self.retried += other.retried;
        self.dead_lettered += other.dead_lettered;
        self.transient_errors += other.transient_errors;
        self.parked += other.parked;
        self.next_retry_in_ms = match (self.next_retry_in_ms, other.next_retry_in_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Runs the sync: [`SyncOptions::lanes`] loops per queue, each claiming a batch, applying it to the sink and
/// acknowledging it, re-polling at once after a full batch and waiting (growing up to
/// [`SyncOptions::max_idle_wait`]) while idle; transient errors back off and retry.
#[derive(Clone)]
pub struct Syncer {
    source: Arc<dyn Source>,
    sink: Arc<dyn Sink>,
    options: SyncOptions,
    metrics: Arc<SyncMetrics>,
    entities: Vec<Entity>,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer")
            .field("options", &self.options)
            .field("entities", &self.entities)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Until stopped.
    Follow,
    /// Until the queue is empty.
    Drain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// A full batch: poll again at once.
    Full,
    /// A partial batch.
    Partial,
    /// Nothing claimable.
    Empty,
}

impl Syncer {
    /// A syncer over every queue.
    pub fn new(source: Arc<dyn Source>, sink: Arc<dyn Sink>, options: SyncOptions) -> Self {
        Self {
            source,
            sink,
            options,
            metrics: Arc::new(SyncMetrics::default()),
            entities: Entity::ALL.to_vec(),
        }
    }

    /// Only these queues.
    pub fn with_entities(mut self, entities: &[Entity]) -> Self {
        self.entities = entities.to_vec();
        self
    }

    /// Updates `metrics` instead of its own (one set for a worker whose syncer is replaced,
    /// e.g. at every binlog leadership term).
    pub fn with_metrics(mut self, metrics: Arc<SyncMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The metrics it updates (serve them with [`super::serve_http`]).
    pub fn metrics(&self) -> Arc<SyncMetrics> {
        self.metrics.clone()
    }

    /// Follows the queues until `shutdown` resolves (e.g. on a signal). A batch being applied
    /// when it does is finished first (or, if it fails, given back): a stop never leaves a
    /// write in flight whose key another worker could then write from a newer state.
    pub async fn run(
        &self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<SyncReport, SyncError> {
        let (stop_tx, stop) = watch::channel(false);
        let relay = tokio::spawn(async move {
            shutdown.await;
            stop_tx.send_replace(true);
        });
        let depth = {
            let (me, mut stop) = (self.clone(), stop.clone());
            tokio::spawn(async move {
                loop {
                    for &e in &me.entities {
                        match me.source.backlog(e).await {
                            Ok(b) => me.metrics.backlog(e, &b),
                            Err(err) => {
                                tracing::debug!(queue = %e, error = %err, "reading the queue depth failed")
                            }
                        }
                    }
                    me.metrics.sample(&me.entities);
                    if wait(&mut stop, Duration::from_secs(5)).await {
                        break;
                    }
                }
            })
        };
        let result = self.all(Mode::Follow, stop).await;
        depth.abort();
        relay.abort();
        result
    }

    /// Applies every queued change that is due and returns once none is left but those parked
    /// until a retry later than [`SyncOptions::drain_wait`] (changes that become due sooner are
    /// waited for, until applied or dead-lettered); the report counts the parked ones.
    pub async fn drain(&self) -> Result<SyncReport, SyncError> {
        let (_keep, stop) = watch::channel(false);
        let mut report = self.all(Mode::Drain, stop).await?;
        for &entity in &self.entities {
            let backlog = self.source.backlog(entity).await?;
            report.add(&SyncReport {
                parked: backlog.parked,
                next_retry_in_ms: backlog.next_retry_in.map(|d| d.as_millis() as u64),
                ..SyncReport::default()
            });
        }
        Ok(report)
    }

    /// Drain mode: nothing left for `entity` but changes parked beyond the drain wait.
    async fn drained(&self, entity: Entity) -> Result<bool, SyncError> {
        let b = self.source.backlog(entity).await?;
        Ok(b.pending == 0
            || (b.pending == b.parked
                && b.next_retry_in.is_none_or(|d| d > self.options.drain_wait)))
    }

    async fn all(&self, mode: Mode, stop: watch::Receiver<bool>) -> Result<SyncReport, SyncError> {
        // The loops stop together: on the caller's stop, or when one of them fails.
        let stop_all = Arc::new(watch::Sender::new(false));
        let relay = {
            let (mut outer, stop_all) = (stop, stop_all.clone());
            tokio::spawn(async move {
                let _ = outer.wait_for(|s| *s).await;
                stop_all.send_replace(true);
            })
        };
        let mut tasks = tokio::task::JoinSet::new();
        for &entity in &self.entities {
            for _ in 0..self.options.lanes.max(1) {
                let (me, stop) = (self.clone(), stop_all.subscribe());
                tasks.spawn(async move { me.entity_loop(entity, mode, stop).await });
            }
        }
        let mut report = SyncReport::default();
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            match joined.map_err(SyncError::Task).and_then(|r| r) {
                Ok(r) => report.add(&r),
                Err(e) => {
                    stop_all.send_replace(true);
                    first_error.get_or_insert(e);
                }
            }
        }
        relay.abort();
        first_error.map_or(Ok(report), Err)
    }

    async fn entity_loop(
        &self,
        entity: Entity,
        mode: Mode,
        mut stop: watch::Receiver<bool>,
    ) -> Result<SyncReport, SyncError> {
        let o = self.options;
        let mut report = SyncReport::default();
        let mut idle = o.poll_interval;
        let mut backoff = o.backoff;
        while !*stop.borrow() {
            let pause = match self.step(entity, &mut report).await {
                Ok(Step::Full) => Duration::ZERO,
                Ok(Step::Partial) => o.poll_interval,
                Ok(Step::Empty) => {
                    if mode == Mode::Drain && self.drained(entity).await? {
                        break;
                    }
                    let pause = idle;
                    idle = (idle * 2).min(o.max_idle_wait);
                    backoff = o.backoff;
                    if wait(&mut stop, pause).await {
                        break;
                    }
                    continue;
                }
                Err(e) if e.is_transient() => {
                    self.metrics.error(entity, true, e.to_string());
                    self.metrics.retry(entity);
                    report.transient_errors += 1;
                    tracing::warn!(queue = %entity, error = %e, retry_in_ms = backoff.as_millis() as u64, "transient sync error; retrying");
                    let pause = backoff;
                    backoff = (backoff * 2).min(o.max_backoff);
                    if wait(&mut stop, pause).await {
                        break;
                    }
                    continue;
                }
                Err(e @ SyncError::Binlog(super::BinlogError::NotLeader { .. })) => {
                    // Not a failure: another worker leads now (the caller stands by).
                    tracing::info!(queue = %entity, error = %e, "sync stopped");
                    return Err(e);
                }
                Err(e) => {
                    self.metrics.error(entity, false, e.to_string());
                    tracing::error!(queue = %entity, error = %e, "sync stopped");
                    return Err(e);
                }
            };
            // Work was found: back to the shortest waits.
            idle = o.poll_interval;
            backoff = o.backoff;
            if !pause.is_zero() && wait(&mut stop, pause).await {
                break;
            }
        }
        Ok(report)
    }

    /// Claims, applies and acknowledges one batch.
    async fn step(&self, entity: Entity, report: &mut SyncReport) -> Result<Step, SyncError> {
        let claim_started = Instant::now();
        let claimed = self.source.claim(entity, self.options.batch_size).await?;
        self.metrics.polled();
        let Some(batch) = claimed else {
            return Ok(Step::Empty);
        };
        let started = Instant::now();
        let claim_ms = (started - claim_started).as_secs_f64() * 1e3;
        let changes = batch.changes();
        // A stop request does not interrupt the write in flight: giving the batch back (and its
        // key locks) while a command may still land would let another worker's newer write be
        // overwritten. The drivers' timeouts bound the wait.
        let applied = self.apply(batch.collection(), batch.writes()).await;
        self.metrics.mongodb_write(applied.is_ok());
        let refused = match applied {
            Ok(refused) => refused,
            Err(e) => {
                // Keep the key locks a moment longer: a command the driver gave up on may still
                // be applied by the server, and must not land after another worker's write.
                tokio::time::sleep(self.options.backoff).await;
                batch.abandon().await;
                return Err(e);
            }
        };
        let documents = (batch.writes().len() - refused.len()) as u64;
        let lag = batch.lag_seconds();
        let applied_at = Instant::now();
        let ack = batch
            .acknowledge(refused, self.options.retry_policy())
            .await?;
        self.metrics.batch(
            entity,
            &ack,
            documents,
            lag,
            started.elapsed().as_secs_f64(),
        );
        report.batches += 1;
        report.changes += ack.applied;
        report.documents += documents;
        report.retried += ack.retried;
        report.dead_lettered += ack.dead_lettered;
        tracing::debug!(
            queue = %entity,
            changes,
            documents,
            lag_ms = lag * 1e3,
            claim_ms,
            apply_ms = (applied_at - started).as_secs_f64() * 1e3,
            ack_ms = applied_at.elapsed().as_secs_f64() * 1e3,
            "batch applied"
        );
        Ok(if changes >= u64::from(self.options.batch_size) {
            Step::Full
        } else {
            Step::Partial
        })
    }

    /// Applies the writes; when the sink refuses the batch because of its documents, applies
    /// them one by one so that only the writes that fail count as refused.
    async fn apply(&self, collection: &str, writes: &[Write]) -> Result<Vec<Refused>, SyncError> {
        match self.sink.apply(collection, writes).await {
            Err(e) if e.is_document_error() && writes.len() > 1 => {
                tracing::warn!(collection, error = %e, "batch refused as a whole; isolating the failing documents");
                let mut refused = Vec::new();
                for w in writes {
                    match self.sink.apply(collection, std::slice::from_ref(w)).await {
                        Ok(r) => refused.extend(r),
                        Err(e) if e.is_document_error() => refused.push(Refused {
                            key: w.key,
                            reason: e.to_string(),
                        }),
                        Err(e) => return Err(e),
                    }
                }
                Ok(refused)
            }
            Err(e) if e.is_document_error() => Ok(writes
                .iter()
                .map(|w| Refused {
                    key: w.key,
                    reason: e.to_string(),
                })
                .collect()),
            other => other,
        }
    }
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await.map(drop);
}

/// Sleeps `d`, or less if `stop` turns true; returns whether to stop.
async fn wait(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stopped(stop) => true,
    }
}
