//! The loop's logic without servers: an in-memory [`Source`] (a queue with attempts and retry
//! times, one batch per key at a time) and a scripted [`Sink`] (transient failures, refused
//! documents, a gate that holds a write in flight), with time driven by `tokio::time::pause`.

use super::*;
use crate::projection::{Entity, Refused};
use mongodb::bson::doc;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

/// One queued change.
#[derive(Debug, Clone)]
struct Change {
    id: u64,
    key: i64,
    attempts: u32,
    retry_at: Instant,
    queued_at: Instant,
}

#[derive(Debug, Default)]
struct Queue {
    changes: Vec<Change>,
    /// Keys in a claimed batch.
    held: HashSet<i64>,
    /// The "rows": a version per key (absent: deleted).
    rows: BTreeMap<i64, u64>,
    dead: Vec<(i64, String)>,
    next_id: u64,
    /// Claims to fail with a transient error first.
    failing_claims: u32,
    /// When each claim that found work happened, with its keys.
    claims: Vec<(Instant, Vec<i64>)>,
    abandoned: u32,
}

/// An in-memory queue: at-least-once, a key in at most one batch at a time, the state read
/// when claimed (the contract of [`Source`]).
#[derive(Debug, Clone, Default)]
struct MemorySource(Arc<Mutex<Queue>>);

impl MemorySource {
    /// Changes `key` (a new version of its row) and queues the change.
    fn change(&self, key: i64) {
        let mut q = self.0.lock().unwrap();
        q.next_id += 1;
        let id = q.next_id;
        q.rows.insert(key, id);
        q.changes.push(Change {
            id,
            key,
            attempts: 0,
            retry_at: Instant::now(),
            queued_at: Instant::now(),
        });
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.0.lock().unwrap()
    }
}

#[async_trait]
impl Source for MemorySource {
    async fn claim(
        &self,
        entity: Entity,
        limit: u32,
    ) -> Result<Option<Box<dyn ClaimedBatch>>, SyncError> {
        let mut q = self.queue();
        if q.failing_claims > 0 {
            q.failing_claims -= 1;
            return Err(SyncError::MariaDb {
                step: "claiming queue entries",
                source: sqlx::Error::PoolTimedOut,
            });
        }
        let now = Instant::now();
        let held = q.held.clone();
        let claimed: Vec<Change> = q
            .changes
            .iter()
            .filter(|c| c.retry_at <= now && !held.contains(&c.key))
            .take(limit as usize)
            .cloned()
            .collect();
        if claimed.is_empty() {
            return Ok(None);
        }
        let keys: Vec<i64> = claimed
            .iter()
            .map(|c| c.key)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let writes = keys
            .iter()
            .map(|&key| Write {
                key,
                op: match q.rows.get(&key) {
                    Some(version) => {
                        WriteOp::Replace(doc! { "_id": key, "version": *version as i64 })
                    }
                    None => WriteOp::Delete,
                },
            })
            .collect();
        q.held.extend(keys.iter().copied());
        q.claims.push((now, keys));
        Ok(Some(Box::new(MemoryBatch {
            source: self.clone(),
            entity,
            claimed,
            writes,
            done: false,
        })))
    }

    async fn backlog(&self, _entity: Entity) -> Result<Backlog, SyncError> {
        let q = self.queue();
        let now = Instant::now();
        let parked: Vec<Duration> = q
            .changes
            .iter()
            .filter(|c| c.retry_at > now)
            .map(|c| c.retry_at - now)
            .collect();
        Ok(Backlog {
            pending: q.changes.len() as u64,
            parked: parked.len() as u64,
            next_retry_in: parked.into_iter().min(),
            oldest_age: q.changes.iter().map(|c| now - c.queued_at).max(),
            dead_letters: q.dead.len() as u64,
        })
    }
}

struct MemoryBatch {
    source: MemorySource,
    entity: Entity,
    claimed: Vec<Change>,
    writes: Vec<Write>,
    done: bool,
}

impl MemoryBatch {
    fn release(&mut self, q: &mut Queue) {
        for c in &self.claimed {
            q.held.remove(&c.key);
        }
        self.done = true;
    }
}

impl Drop for MemoryBatch {
    fn drop(&mut self) {
        if !self.done {
            let source = self.source.clone();
            self.release(&mut source.queue());
        }
    }
}

#[async_trait]
impl ClaimedBatch for MemoryBatch {
    fn collection(&self) -> &str {
        self.entity.collection()
    }

    fn writes(&self) -> &[Write] {
        &self.writes
    }

    fn changes(&self) -> u64 {
        self.claimed.len() as u64
    }

    fn lag_seconds(&self) -> f64 {
        0.0
    }

    async fn acknowledge(
        mut self: Box<Self>,
        failed: Vec<Refused>,
        policy: RetryPolicy,
    ) -> Result<Acknowledged, SyncError> {
        let source = self.source.clone();
        let mut q = source.queue();
        let mut ack = Acknowledged::default();
        let now = Instant::now();
        for c in &self.claimed {
            let index = q.changes.iter().position(|x| x.id == c.id).unwrap();
            match failed.iter().find(|r| r.key == c.key) {
                None => {
                    q.changes.remove(index);
                    ack.applied += 1;
                }
                Some(r) => match policy.after_failure(c.attempts) {
                    Disposition::RetryAfter(delay) => {
                        let change = &mut q.changes[index];
                        change.attempts += 1;
                        change.retry_at = now + delay;
                        ack.retried += 1;
                    }
                    Disposition::DeadLetter => {
                        q.changes.remove(index);
                        q.dead.push((c.key, r.reason.clone()));
                        ack.dead_lettered += 1;
                    }
                },
            }
        }
        self.release(&mut q);
        Ok(ack)
    }

    async fn abandon(mut self: Box<Self>) {
        let source = self.source.clone();
        let mut q = source.queue();
        q.abandoned += 1;
        self.release(&mut q);
    }
}

/// What the scripted sink does next.
#[derive(Debug, Default)]
struct Script {
    /// Calls to fail with a transient error first.
    transient_failures: u32,
    /// Documents refused (a batch holding one is refused whole, as MongoDB does for a
    /// document too large).
    refuse: HashSet<i64>,
    /// Holds every write until notified.
    gate: Option<Arc<Notify>>,
}

#[derive(Debug, Default)]
struct Store {
    docs: BTreeMap<i64, mongodb::bson::Document>,
    /// Each call: when, and how many writes.
    calls: Vec<(Instant, usize)>,
}

/// An in-memory document store behind a scripted [`Sink`].
#[derive(Debug, Default)]
struct ScriptedSink {
    script: Mutex<Script>,
    store: Mutex<Store>,
    /// Notified when a write enters the sink.
    entered: Notify,
}

#[async_trait]
impl Sink for ScriptedSink {
    async fn apply(&self, _collection: &str, writes: &[Write]) -> Result<Vec<Refused>, SyncError> {
        self.store
            .lock()
            .unwrap()
            .calls
            .push((Instant::now(), writes.len()));
        self.entered.notify_one();
        let gate = self.script.lock().unwrap().gate.clone();
        if let Some(gate) = gate {
            gate.notified().await;
        }
        {
            let mut script = self.script.lock().unwrap();
            if script.transient_failures > 0 {
                script.transient_failures -= 1;
                return Err(SyncError::Sink {
                    transient: true,
                    source: "connection reset".into(),
                });
            }
            if writes.iter().any(|w| script.refuse.contains(&w.key)) {
                return Err(SyncError::Sink {
                    transient: false,
                    source: "document too large".into(),
                });
            }
        }
        let mut store = self.store.lock().unwrap();
        for w in writes {
            match &w.op {
                WriteOp::Replace(d) | WriteOp::Merge(d) => {
                    store.docs.insert(w.key, d.clone());
                }
                WriteOp::Delete => {
                    store.docs.remove(&w.key);
                }
            }
        }
        Ok(Vec::new())
    }
}

fn options() -> SyncOptions {
    SyncOptions {
        batch_size: 10,
        lanes: 1,
        poll_interval: Duration::from_millis(2),
        max_idle_wait: Duration::from_millis(100),
        backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(400),
        max_attempts: 3,
        drain_wait: Duration::from_secs(10),
    }
}

fn syncer(source: &MemorySource, sink: &Arc<ScriptedSink>, options: SyncOptions) -> Syncer {
    Syncer::new(Arc::new(source.clone()), sink.clone(), options).with_entities(&[Entity::Customers])
}

/// Runs `syncer` in the background until the returned sender fires.
fn follow(
    syncer: Syncer,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<SyncReport, SyncError>>,
) {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        syncer
            .run(async move {
                let _ = stopped.await;
            })
            .await
    });
    (stop, task)
}

fn versions(sink: &ScriptedSink) -> BTreeMap<i64, i64> {
    sink.store
        .lock()
        .unwrap()
        .docs
        .iter()
        .map(|(k, d)| (*k, d.get_i64("version").unwrap()))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn transient_sink_errors_back_off_doubling_up_to_the_cap() {
    let (source, sink) = (MemorySource::default(), Arc::new(ScriptedSink::default()));
    source.change(1);
    sink.script.lock().unwrap().transient_failures = 5;
    let report = syncer(&source, &sink, options()).drain().await.unwrap();
    assert_eq!((report.transient_errors, report.changes), (5, 1));
    let calls: Vec<Instant> = sink
        .store
        .lock()
        .unwrap()
        .calls
        .iter()
        .map(|c| c.0)
        .collect();
    let gaps: Vec<u128> = calls
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    // Each failed batch keeps its keys for one `backoff` (a write the driver gave up on may
    // still land), then the loop waits 100, 200, 400, 400, 400 ms (doubling, capped).
    assert_eq!(gaps, [200, 300, 500, 500, 500]);
    assert_eq!(
        source.queue().abandoned,
        5,
        "each failed batch was given back"
    );
}

#[tokio::test(start_paused = true)]
async fn a_transient_source_error_backs_off_and_a_permanent_one_stops_the_loop() {
    let (source, sink) = (MemorySource::default(), Arc::new(ScriptedSink::default()));
    source.change(1);
    source.queue().failing_claims = 2;
    let started = Instant::now();
    let report = syncer(&source, &sink, options()).drain().await.unwrap();
    assert_eq!((report.transient_errors, report.changes), (2, 1));
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "100 + 200 ms of backoff"
    );

    struct Broken;
    #[async_trait]
    impl Source for Broken {
        async fn claim(
            &self,
            _: Entity,
            _: u32,
        ) -> Result<Option<Box<dyn ClaimedBatch>>, SyncError> {
            Err(SyncError::MariaDb {
                step: "claiming queue entries",
                source: sqlx::Error::RowNotFound,
            })
        }
        async fn backlog(&self, _: Entity) -> Result<Backlog, SyncError> {
            Ok(Backlog {
                pending: 1,
                ..Backlog::default()
            })
        }
    }
    let broken = Syncer::new(Arc::new(Broken), sink.clone(), options());
    let err = broken.drain().await.unwrap_err();
    assert!(
        matches!(
            err,
            SyncError::MariaDb {
                step: "claiming queue entries",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_document_is_isolated_from_its_batch_and_the_rest_are_written() {
    let (source, sink) = (MemorySource::default(), Arc::new(ScriptedSink::default()));
    for key in 1..=5 {
        source.change(key);
    }
    sink.script.lock().unwrap().refuse.insert(3);
    let report = syncer(
        &source,
        &sink,
        SyncOptions {
            max_attempts: 1,
            ..options()
        },
    )
    .drain()
    .await
    .unwrap();
    assert_eq!(
        versions(&sink).keys().copied().collect::<Vec<_>>(),
        [1, 2, 4, 5]
    );
    assert_eq!((report.changes, report.dead_lettered), (4, 1), "{report:?}");
    let calls: Vec<usize> = sink
        .store
        .lock()
        .unwrap()
        .calls
        .iter()
        .map(|c| c.1)
        .collect();
    assert_eq!(
        calls,
        [5, 1, 1, 1, 1, 1],
        "the batch, then each document alone"
    );
    let dead = source.queue().dead.clone();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, 3);
    assert!(dead[0].1.contains("document too large"), "{dead:?}");
}

#[tokio::test(start_paused = true)]
async fn a_change_that_keeps_failing_is_retried_later_then_dead_lettered() {
    let (source, sink) = (MemorySource::default(), Arc::new(ScriptedSink::default()));
    source.change(7);
    source.change(8);
    sink.script.lock().unwrap().refuse.insert(7);
    let report = syncer(&source, &sink, options()).drain().await.unwrap();
    assert_eq!(
        (report.changes, report.retried, report.dead_lettered),
        (1, 2, 1),
        "{report:?}"
    );
    assert!(source.queue().changes.is_empty());
    assert_eq!(versions(&sink).keys().copied().collect::<Vec<_>>(), [8]);
    // Claimed at once, again after the 0.2 s delay, again after 0.4 s more (the idle waits
    // between polls add at most `max_idle_wait`).
    let claims: Vec<Instant> = source
        .queue()
        .claims
        .iter()
        .filter(|(_, keys)| keys.contains(&7))
        .map(|c| c.0)
        .collect();
    assert_eq!(claims.len(), 3, "max_attempts = 3");
    for (gap, delay) in claims.windows(2).map(|w| w[1] - w[0]).zip([200, 400]) {
        let delay = Duration::from_millis(delay);
        assert!(
            gap >= delay && gap <= delay + options().max_idle_wait,
            "{gap:?}"
        );
    }
    assert_eq!(
        options().retry_policy().after_failure(0),
        Disposition::RetryAfter(Duration::from_millis(200))
    );
    assert_eq!(
        RetryPolicy { max_attempts: 100 }.after_failure(20),
        Disposition::RetryAfter(Duration::from_millis(51_200)),
        "the delay stops doubling after nine attempts"
    );
}

#[tokio::test(start_paused = true)]
async fn drain_ends_once_the_queue_is_empty_and_a_full_batch_polls_again_at_once() {
    let (source, sink) = (MemorySource::default(), Arc::new(ScriptedSink::default()));
    let empty = syncer(&source, &sink, options()).drain().await.unwrap();
    assert_eq!(
        empty,
        SyncReport::default(),
        "nothing queued: drain returns"
    );
    for key in 1..=25 {
        source.change(key);
    }
    let started = Instant::now();
    let report = syncer(&source, &sink, options()).drain().await.unwrap();
    assert_eq!((report.batches, report.changes), (3, 25));
    assert_eq!(versions(&sink).len(), 25);
    let claims: Vec<Duration> = source
        .queue()
        .claims
        .iter()
        .map(|c| c.0 - started)
        .collect();
    assert_eq!(
        claims,
        [Duration::ZERO, Duration::ZERO, Duration::ZERO],
        "full batches of 10, 10, then 5: no wait between them"
    );
    assert!(
        started.elapsed() <= options().poll_interval * 4,
        "drain returned as soon as the queue was empty: {:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn run_follows_new_changes_until_its_shutdown_future_resolves() {
    let (source, sink) = (MemorySource::default(), Arc::new(ScriptedSink::default()));
    let (stop, task) = follow(syncer(&source, &sink, options()));
    for round in 0..3 {
        source.change(round);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            versions(&sink).len() as i64,
            round + 1,
            "followed while idle"
        );
    }
    stop.send(()).unwrap();
    let report = task.await.unwrap().unwrap();
    assert_eq!(report.changes, 3);
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_while_a_batch_is_written_lets_it_finish_and_acknowledges_it() {
    let (source, sink) = (MemorySource::default(), Arc::new(ScriptedSink::default()));
    let gate = Arc::new(Notify::new());
    sink.script.lock().unwrap().gate = Some(gate.clone());
    source.change(1);
    source.change(2);
    let (stop, task) = follow(syncer(&source, &sink, options()));
    sink.entered.notified().await;
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        !task.is_finished(),
        "the stop waits for the write in flight"
    );
    assert_eq!(source.queue().held.len(), 2, "its keys stay held meanwhile");
    gate.notify_one();
    let report = task.await.unwrap().unwrap();
    assert_eq!((report.batches, report.changes), (1, 2));
    let q = source.queue();
    assert!(q.changes.is_empty() && q.held.is_empty(), "acknowledged");
    assert_eq!(q.abandoned, 0);
}

#[tokio::test(start_paused = true)]
async fn a_batch_that_fails_while_stopping_is_given_back_untouched_and_newer_state_wins() {
    let (source, sink) = (MemorySource::default(), Arc::new(ScriptedSink::default()));
    let gate = Arc::new(Notify::new());
    {
        let mut script = sink.script.lock().unwrap();
        script.gate = Some(gate.clone());
        script.transient_failures = 1;
    }
    source.change(1);
    let (stop, task) = follow(syncer(&source, &sink, options()));
    sink.entered.notified().await;
    // The row changes again while the old state is in flight; then the worker stops and its
    // write fails.
    source.change(1);
    stop.send(()).unwrap();
    gate.notify_one();
    let report = task.await.unwrap().unwrap();
    assert_eq!((report.changes, report.transient_errors), (0, 1));
    {
        let q = source.queue();
        assert_eq!(q.abandoned, 1);
        assert!(q.held.is_empty(), "the keys were released");
        assert_eq!(q.changes.len(), 2, "nothing was lost");
        assert!(
            q.changes.iter().all(|c| c.attempts == 0),
            "no attempt was counted"
        );
    }
    // Another worker picks the key up and writes the newest state.
    sink.script.lock().unwrap().gate = None;
    let report = syncer(&source, &sink, options()).drain().await.unwrap();
    assert_eq!(report.changes, 2);
    let newest = source.queue().rows[&1] as i64;
    assert_eq!(versions(&sink)[&1], newest);
}

#[tokio::test(start_paused = true)]
async fn drain_applies_what_is_due_and_reports_what_is_parked_beyond_the_drain_wait() {
    let (source, sink) = (MemorySource::default(), Arc::new(ScriptedSink::default()));
    source.change(1);
    source.change(2);
    // Key 2 was parked for an hour (a retry far ahead): drain must not wait for it.
    source.queue().changes[1].retry_at = Instant::now() + Duration::from_secs(3600);
    let started = Instant::now();
    let report = syncer(&source, &sink, options()).drain().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((report.changes, report.parked), (1, 1), "{report:?}");
    let next = report.next_retry_in_ms.unwrap();
    assert!((3_599_000..=3_600_000).contains(&next), "{next}");
    assert_eq!(versions(&sink).keys().copied().collect::<Vec<_>>(), [1]);
    // A change due within the drain wait is waited for.
    source.queue().changes[0].retry_at = Instant::now() + Duration::from_secs(5);
    let report = syncer(&source, &sink, options()).drain().await.unwrap();
    assert_eq!((report.changes, report.parked), (1, 0), "{report:?}");
}
