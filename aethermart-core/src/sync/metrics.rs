//! [`SyncMetrics`]: the worker's Prometheus metrics (served by [`super::http`]).
//!
//! Names follow Prometheus' conventions (base unit last, `_total` on counters):
//! `aethermart_sync_*` for the loop, `aethermart_build_info`, and the usual `process_*` of the
//! worker process (read from `/proc` at each scrape).

use crate::projection::Entity;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabel {
    queue: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabel {
    change: &'static str,
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
    oldest_pending: Family<QueueLabel, Gauge<f64, AtomicU64>>,
    last_apply: Gauge<f64, AtomicU64>,
    last_poll: Gauge<f64, AtomicU64>,
    process_cpu: Counter<f64, AtomicU64>,
    process_resident: Gauge,
    review_events: Counter,
    review_lag: Gauge<f64, AtomicU64>,
    review_errors: Counter,
    review_stored: Gauge<f64, AtomicU64>,
    /// The review stream: failures, and positions stored.
    review_stream: Outcomes,
    lag_seconds: HistogramFamily,
    batch_size: HistogramFamily,
    batch_seconds: HistogramFamily,
    mariadb_switches: Counter,
    binlog_events: Counter,
    binlog_bytes: Counter,
    binlog_transactions: Counter,
    binlog_lag: Gauge<f64, AtomicU64>,
    binlog_sequence: Gauge,
    binlog_stored: Gauge<f64, AtomicU64>,
    binlog_leader: Gauge,
    binlog_standby: Gauge,
    binlog_lease_term: Gauge,
    binlog_source_moves: Counter,
    binlog_leadership_changes: Family<ChangeLabel, Counter>,
    /// The pool's switch total last recorded (the counter grows by the difference).
    switches_seen: AtomicU64,
    /// Writes to MongoDB.
    mongodb_writes: Outcomes,
    /// When the metrics (the process) started, in Unix seconds.
    started: f64,
    /// CPU seconds of this process already added to `process_cpu`.
    cpu_seen: std::sync::Mutex<f64>,
    /// What the status page shows beyond the counters.
    page: std::sync::Mutex<PageState>,
}

/// Samples kept for the status page's charts: one per [`SyncMetrics::sample`] call (every 5 s),
/// ten minutes' worth.
pub const HISTORY_SAMPLES: usize = 120;
/// Errors kept for the status page.
pub const RECENT_ERRORS: usize = 10;

/// One point of the status page's charts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// When, in Unix seconds.
    pub at: f64,
    /// Changes applied so far, all queues.
    pub applied_total: u64,
    /// The largest `last_batch_lag_seconds` of the queues then.
    pub lag_seconds: f64,
}

/// An error the loop met, as the status page lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentError {
    /// When, in Unix seconds.
    pub at: f64,
    /// The queue.
    pub queue: &'static str,
    /// `transient` (retried) or `permanent` (the loop stopped).
    pub kind: &'static str,
    /// The message, as logged.
    pub message: String,
}

/// One queue on the status page.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueLine {
    /// The queue table.
    pub queue: &'static str,
    /// Entries waiting.
    pub depth: u64,
    /// Age of the oldest, in seconds (0 when empty).
    pub oldest_seconds: f64,
    /// Dead letters of this queue.
    pub dead_letters: u64,
    /// Changes applied by this worker so far (read when the snapshot is taken).
    pub applied_total: u64,
}

#[derive(Debug, Default)]
struct PageState {
    /// By queue: the entity and its line as last read (its applied count is read live).
    queues: std::collections::BTreeMap<&'static str, (Entity, QueueLine)>,
    history: std::collections::VecDeque<Sample>,
    errors: std::collections::VecDeque<RecentError>,
    leadership: Option<Leadership>,
}

/// What the status page shows, read at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The queues, in name order.
    pub queues: Vec<QueueLine>,
    /// Oldest first.
    pub history: Vec<Sample>,
    /// Newest first.
    pub errors: Vec<RecentError>,
    /// When a batch was last acknowledged, in Unix seconds (0: never).
    pub last_apply: f64,
    /// When the process started, in Unix seconds.
    pub started: f64,
    /// Under binlog capture (once the reader read anything): its state.
    pub binlog: Option<BinlogLine>,
    /// Under binlog capture: whether this worker leads or stands by.
    pub leadership: Option<Leadership>,
}

/// This worker's part in binlog capture, on the status page.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Leadership {
    /// True while it holds the lease (reads the binlog); false as a standby.
    pub leader: bool,
    /// The lease's term it holds, or the last it held (0: never).
    pub term: i64,
    /// Since when it is in this role, Unix seconds.
    pub since: f64,
}

/// The binlog reader on the status page.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BinlogLine {
    /// How late the last transaction was read, seconds (0 at a heartbeat).
    pub read_lag_seconds: f64,
    /// The GTID sequence number of the last transaction read.
    pub sequence: i64,
    /// When the position was last stored in MongoDB, Unix seconds (0: not yet).
    pub stored_at: f64,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabel {
    version: String,
}

impl Default for SyncMetrics {
    fn default() -> Self {
        let mut root = Registry::default();
        let build_info = Family::<BuildLabel, Gauge>::default();
        build_info
            .get_or_create(&BuildLabel {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        root.register(
            "aethermart_build_info",
            "The worker's version (always 1)",
            build_info,
        );
        let process_cpu = Counter::<f64, AtomicU64>::default();
        root.register(
            "process_cpu_seconds",
            "User and system CPU time of the worker process",
            process_cpu.clone(),
        );
        let process_resident = Gauge::default();
        root.register(
            "process_resident_memory_bytes",
            "Resident memory of the worker process",
            process_resident.clone(),
        );
        let start_time = Gauge::<f64, AtomicU64>::default();
        start_time.set(now_ms() as f64 / 1e3);
        root.register(
            "process_start_time_seconds",
            "When the worker process started, in Unix seconds",
            start_time,
        );
        let registry = root.sub_registry_with_prefix("aethermart_sync");
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
            "last_batch_lag_seconds",
            "Seconds from the oldest change of the last batch to its acknowledgement",
            lag.clone(),
        );
        let oldest_pending = Family::default();
        registry.register(
            "oldest_pending_seconds",
            "Age of the oldest change still queued (parked ones included), read every 5 s whether or not anything is applied; 0 when the queue is empty",
            oldest_pending.clone(),
        );
        let last_apply = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "last_apply_timestamp_seconds",
            "When a batch was last acknowledged (any queue), in Unix seconds; 0 before the first",
            last_apply.clone(),
        );
        let review_events = Counter::default();
        registry.register(
            "review_events",
            "Change events of the reviews collection whose products were queued",
            review_events.clone(),
        );
        let review_lag = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "review_stream_lag_seconds",
            "Seconds from the newest review event of the last batch to its products being queued",
            review_lag.clone(),
        );
        let review_errors = Counter::default();
        registry.register(
            "review_stream_errors",
            "Failures of the reviews change stream (each retried after a backoff)",
            review_errors.clone(),
        );
        let review_stored = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "review_stream_stored_timestamp_seconds",
            "When the reviews stream's position was last stored (at least every 30 s while it runs), in Unix seconds; 0 before the first",
            review_stored.clone(),
        );
        let last_poll = Gauge::<f64, AtomicU64>::default();
        last_poll.set(now_ms() as f64 / 1e3);
        registry.register(
            "last_poll_timestamp_seconds",
            "When the loop last completed a poll (its heartbeat), in Unix seconds",
            last_poll.clone(),
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
        let binlog_events = Counter::default();
        registry.register(
            "binlog_events",
            "Events read from the binary log (binlog capture)",
            binlog_events.clone(),
        );
        let binlog_bytes = Counter::default();
        registry.register(
            "binlog_bytes",
            "Bytes of events read from the binary log",
            binlog_bytes.clone(),
        );
        let binlog_transactions = Counter::default();
        registry.register(
            "binlog_transactions",
            "Committed transactions read from the binary log (every database of the server)",
            binlog_transactions.clone(),
        );
        let binlog_lag = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "binlog_read_lag_seconds",
            "Seconds from the commit of the last transaction read (its event timestamp, whole seconds) to reading it; 0 once a heartbeat says the reader is at the end",
            binlog_lag.clone(),
        );
        let binlog_sequence = Gauge::default();
        registry.register(
            "binlog_gtid_sequence",
            "GTID sequence number of the last transaction read (in its domain)",
            binlog_sequence.clone(),
        );
        let binlog_stored = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "binlog_position_stored_timestamp_seconds",
            "When the binlog position stored in MongoDB was last known current (stored, or checked unchanged), in Unix seconds; 0 before the first",
            binlog_stored.clone(),
        );
        let binlog_leader = Gauge::default();
        registry.register(
            "binlog_leader",
            "1 while this worker holds the binlog lease (reads the binlog), 0 while it is a standby",
            binlog_leader.clone(),
        );
        let binlog_standby = Gauge::default();
        registry.register(
            "binlog_standby",
            "1 while this binlog worker waits for the lease (a hot standby), else 0",
            binlog_standby.clone(),
        );
        let binlog_lease_term = Gauge::default();
        registry.register(
            "binlog_lease_term",
            "The term of the binlog lease this worker holds or last held (bumped by every takeover)",
            binlog_lease_term.clone(),
        );
        let binlog_leadership_changes = Family::<ChangeLabel, Counter>::default();
        registry.register(
            "binlog_leadership_changes",
            "Times this worker took the binlog lease (change=acquired), lost it to another worker or let it lapse (lost), or gave it up at a stop (released)",
            binlog_leadership_changes.clone(),
        );
        let binlog_source_moves = Counter::default();
        registry.register(
            "binlog_source_moves",
            "Times the binlog reader moved to another server at the same GTID position (the one it read failed or lacked the position)",
            binlog_source_moves.clone(),
        );
        Self {
            registry: root,
            binlog_source_moves,
            binlog_leader,
            binlog_standby,
            binlog_lease_term,
            binlog_leadership_changes,
            mariadb_switches,
            binlog_events,
            binlog_bytes,
            binlog_transactions,
            binlog_lag,
            binlog_sequence,
            binlog_stored,
            oldest_pending,
            last_apply,
            last_poll,
            process_cpu,
            process_resident,
            review_events,
            review_lag,
            review_errors,
            review_stored,
            review_stream: Outcomes::default(),
            mongodb_writes: Outcomes::default(),
            cpu_seen: std::sync::Mutex::new(0.0),
            page: std::sync::Mutex::new(PageState::default()),
            started: now_ms() as f64 / 1e3,
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
        }
    }
}

/// When something last succeeded and last failed (Unix ms, 0: never).
#[derive(Debug, Default)]
struct Outcomes {
    ok_ms: AtomicU64,
    failed_ms: AtomicU64,
}

impl Outcomes {
    fn record(&self, ok: bool) {
        let at = if ok { &self.ok_ms } else { &self.failed_ms };
        at.store(now_ms(), Ordering::Relaxed);
    }

    /// False while the last failure is within `window` and nothing succeeded since.
    fn ok_within(&self, window: Duration) -> bool {
        let failed = self.failed_ms.load(Ordering::Relaxed);
        failed == 0
            || failed < self.ok_ms.load(Ordering::Relaxed)
            || now_ms().saturating_sub(failed) > window.as_millis() as u64
    }
}

/// Now, in Unix seconds.
pub(crate) fn now_seconds() -> f64 {
    now_ms() as f64 / 1e3
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

    /// Records a transaction read from the binlog: the events and bytes read since the
    /// previous one, its commit time (Unix seconds) and GTID sequence number.
    pub(crate) fn binlog_read(&self, events: u64, bytes: u64, committed: u32, sequence: u64) {
        self.binlog_events.inc_by(events);
        self.binlog_bytes.inc_by(bytes);
        self.binlog_transactions.inc();
        let lag = (now_ms() as f64 / 1e3 - f64::from(committed)).max(0.0);
        self.binlog_lag.set(lag);
        self.binlog_sequence
            .set(sequence.min(i64::MAX as u64) as i64);
    }

    /// A binlog heartbeat: the reader is at the end of the log.
    pub(crate) fn binlog_caught_up(&self) {
        self.binlog_events.inc();
        self.binlog_lag.set(0.0);
    }

    /// The binlog position was stored.
    pub(crate) fn binlog_stored(&self) {
        self.binlog_stored.set(now_ms() as f64 / 1e3);
    }

    /// The binlog reader moved to another server.
    pub(crate) fn binlog_source_moved(&self) {
        self.binlog_source_moves.inc();
    }

    /// This worker is a binlog standby; `change` (`lost`, `released`) when it led until now.
    pub(crate) fn binlog_standby(&self, change: Option<&'static str>) {
        if let Some(change) = change {
            self.binlog_leadership_changes
                .get_or_create(&ChangeLabel { change })
                .inc();
        }
        self.binlog_leader.set(0);
        self.binlog_standby.set(1);
        self.set_leadership(false);
    }

    /// This worker took the binlog lease in `term`.
    pub(crate) fn binlog_leading(&self, term: i64) {
        self.binlog_leadership_changes
            .get_or_create(&ChangeLabel { change: "acquired" })
            .inc();
        self.binlog_leader.set(1);
        self.binlog_standby.set(0);
        self.binlog_lease_term.set(term);
        self.set_leadership(true);
    }

    fn set_leadership(&self, leader: bool) {
        if let Ok(mut page) = self.page.lock() {
            let term = self.binlog_lease_term.get();
            if page.leadership.map(|l| l.leader) != Some(leader) {
                page.leadership = Some(Leadership {
                    leader,
                    term,
                    since: now_seconds(),
                });
            }
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
        self.last_apply.set(now_ms() as f64 / 1e3);
        self.lag_seconds.get_or_create(&l).observe(lag);
        self.batch_size
            .get_or_create(&l)
            .observe((ack.applied + ack.retried + ack.dead_lettered) as f64);
        self.batch_seconds.get_or_create(&l).observe(seconds);
    }

    /// Records a failed poll or batch.
    pub(crate) fn error(&self, entity: Entity, transient: bool, message: String) {
        let kind = if transient { "transient" } else { "permanent" };
        if let Ok(mut page) = self.page.lock() {
            if page.errors.len() == RECENT_ERRORS {
                page.errors.pop_front();
            }
            page.errors.push_back(RecentError {
                at: now_ms() as f64 / 1e3,
                queue: entity.queue_table(),
                kind,
                message,
            });
        }
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

    /// Sets a queue's depth and the age of its oldest change.
    pub(crate) fn backlog(&self, entity: Entity, backlog: &super::Backlog) {
        let l = label(entity);
        self.depth
            .get_or_create(&l)
            .set(i64::try_from(backlog.pending).unwrap_or(i64::MAX));
        let oldest = backlog.oldest_age.map_or(0.0, |a| a.as_secs_f64());
        self.oldest_pending.get_or_create(&l).set(oldest);
        if let Ok(mut page) = self.page.lock() {
            let line = QueueLine {
                queue: entity.queue_table(),
                depth: backlog.pending,
                oldest_seconds: oldest,
                dead_letters: backlog.dead_letters,
                applied_total: 0,
            };
            page.queues.insert(entity.queue_table(), (entity, line));
        }
    }

    /// Adds a point to the status page's charts (the backlog task calls it every 5 s).
    pub(crate) fn sample(&self, entities: &[Entity]) {
        let (mut applied_total, mut lag_seconds) = (0, 0.0_f64);
        for &e in entities {
            let l = label(e);
            applied_total += self.applied.get_or_create(&l).get();
            lag_seconds = lag_seconds.max(self.lag.get_or_create(&l).get());
        }
        if let Ok(mut page) = self.page.lock() {
            if page.history.len() == HISTORY_SAMPLES {
                page.history.pop_front();
            }
            page.history.push_back(Sample {
                at: now_ms() as f64 / 1e3,
                applied_total,
                lag_seconds,
            });
        }
    }

    /// What the status page shows now.
    pub fn snapshot(&self) -> Snapshot {
        let page = self.page.lock();
        let leadership = page.as_ref().ok().and_then(|p| p.leadership);
        let (queues, history, errors) = match &page {
            Ok(p) => (
                p.queues
                    .values()
                    .map(|(entity, line)| QueueLine {
                        applied_total: self.applied.get_or_create(&label(*entity)).get(),
                        ..line.clone()
                    })
                    .collect(),
                p.history.iter().copied().collect(),
                p.errors.iter().rev().cloned().collect(),
            ),
            Err(_) => (Vec::new(), Vec::new(), Vec::new()),
        };
        Snapshot {
            queues,
            history,
            errors,
            last_apply: self.last_apply.get(),
            started: self.started,
            binlog: (self.binlog_events.get() > 0).then(|| BinlogLine {
                read_lag_seconds: self.binlog_lag.get(),
                sequence: self.binlog_sequence.get(),
                stored_at: self.binlog_stored.get(),
            }),
            leadership,
        }
    }

    /// Notes that a poll completed (the loop is alive).
    pub(crate) fn polled(&self) {
        self.last_poll.set(now_seconds());
    }

    /// Records review events applied; `newest_ms` is the newest one's time (Unix ms).
    pub(crate) fn review_events(&self, events: u64, newest_ms: Option<i64>) {
        self.review_events.inc_by(events);
        if let Some(ms) = newest_ms {
            self.review_lag
                .set((now_ms() as f64 - ms as f64).max(0.0) / 1e3);
        }
    }

    /// Records a failure of the review stream.
    pub(crate) fn review_stream_error(&self) {
        self.review_errors.inc();
        self.review_stream.record(false);
    }

    /// Records that the review stream stored its position.
    pub(crate) fn review_position_stored(&self) {
        self.review_stream.record(true);
        self.review_stored.set(now_seconds());
    }

    /// True unless the review stream failed within `window` and stored nothing since.
    pub fn review_stream_ok(&self, window: Duration) -> bool {
        self.review_stream.ok_within(window)
    }

    /// Notes how a write to MongoDB ended.
    pub(crate) fn mongodb_write(&self, ok: bool) {
        self.mongodb_writes.record(ok);
    }

    /// True unless the last MongoDB write attempted within `window` failed (an idle worker,
    /// which attempted none, is fine).
    pub fn mongodb_writes_ok(&self, window: Duration) -> bool {
        self.mongodb_writes.ok_within(window)
    }

    /// True when the loop completed a poll within `max_age`.
    pub fn healthy(&self, max_age: Duration) -> bool {
        now_seconds() - self.last_poll.get() <= max_age.as_secs_f64()
    }

    /// The metrics in the Prometheus text exposition format (the process figures read now).
    pub fn encode(&self) -> String {
        if let Some(cpu) = crate::process::cpu_time("self") {
            if let Ok(mut seen) = self.cpu_seen.lock() {
                let now = cpu.as_secs_f64();
                if now > *seen {
                    self.process_cpu.inc_by(now - *seen);
                    *seen = now;
                }
            }
        }
        if let Some(bytes) = crate::process::resident_bytes() {
            self.process_resident
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_follow_prometheus_conventions() {
        let metrics = SyncMetrics::default();
        metrics.backlog(
            Entity::Customers,
            &crate::sync::Backlog {
                pending: 3,
                oldest_age: Some(Duration::from_millis(2500)),
                ..Default::default()
            },
        );
        let text = metrics.encode();
        for line in [
            "aethermart_sync_queue_depth{queue=\"customer_sync_queue\"} 3",
            "aethermart_sync_oldest_pending_seconds{queue=\"customer_sync_queue\"} 2.5",
            "# TYPE aethermart_sync_last_apply_timestamp_seconds gauge",
            "# TYPE aethermart_sync_last_poll_timestamp_seconds gauge",
            "# TYPE process_cpu_seconds counter",
            "# TYPE process_resident_memory_bytes gauge",
            "# TYPE process_start_time_seconds gauge",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        let version = format!(
            "aethermart_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&version), "{text}");
        assert!(text.contains("process_cpu_seconds_total "), "{text}");
    }

    #[test]
    fn a_failed_write_makes_the_worker_unready_until_one_succeeds() {
        let metrics = SyncMetrics::default();
        let minute = Duration::from_secs(60);
        assert!(metrics.mongodb_writes_ok(minute), "idle is ready");
        metrics.mongodb_write(false);
        assert!(!metrics.mongodb_writes_ok(minute));
        assert!(metrics.mongodb_writes_ok(Duration::ZERO) || !metrics.mongodb_writes_ok(minute));
        std::thread::sleep(Duration::from_millis(5));
        metrics.mongodb_write(true);
        assert!(metrics.mongodb_writes_ok(minute));
    }

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
