//! What the binlog reader found and the sync has not yet applied, and so how far the stored
//! position may move.
//!
//! Every transaction read gets a sequence number in commit order. Each key that changed waits
//! once (changes coalesce per key) with the number of its oldest change not yet applied; a key
//! is in at most one batch at a time, and a change that arrives while its key is in a batch
//! makes the key wait again after that batch. The checkpoint is the position after the last
//! transaction older than every waiting change: restarting there replays nothing that is
//! missing and only a little that is not (the sink re-reads and writes idempotently).

use crate::binlog_position::GtidPosition;
use crate::projection::Entity;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// Keys waiting, in batches and parked, per entity, with the transaction boundaries between.
#[derive(Debug)]
pub(super) struct Tracker {
    /// The position before the first tracked transaction.
    base: GtidPosition,
    /// The position after the last transaction read.
    latest: GtidPosition,
    next_seq: u64,
    /// Transactions still needed for the checkpoint: position after each, when it was read.
    boundaries: BTreeMap<u64, (GtidPosition, Instant)>,
    /// Per sequence number, how many keys wait with it as their oldest change.
    outstanding: BTreeMap<u64, u32>,
    entities: [Keys; 4],
}

#[derive(Debug, Default)]
struct Keys {
    state: HashMap<u64, KeyState>,
    /// Claimable keys by the age of their oldest change.
    ready: BTreeSet<(u64, u64)>,
    /// Keys waiting for a retry, by when it is due.
    parked: BTreeSet<(Instant, u64)>,
}

#[derive(Debug, Clone, Copy)]
struct KeyState {
    /// The oldest change not yet applied.
    seq: u64,
    /// Failed attempts so far.
    attempts: u32,
    phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ready,
    Parked(Instant),
    /// In a batch; `newer` is the oldest change that arrived since it was claimed.
    InFlight {
        newer: Option<u64>,
    },
}

/// Keys handed to a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Claimed {
    /// `(key, failed attempts so far)`, oldest change first.
    pub keys: Vec<(u64, u32)>,
    /// When the oldest change in the batch was read from the binlog.
    pub oldest_read_at: Instant,
}

/// What is still waiting for one entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Waiting {
    /// Keys waiting, in batches or parked included.
    pub keys: u64,
    /// Keys parked until a retry.
    pub parked: u64,
    /// Until the first parked key is due.
    pub next_retry_in: Option<Duration>,
    /// Since the oldest waiting change was read.
    pub oldest_age: Option<Duration>,
}

impl Tracker {
    /// Nothing read yet; the binlog is read from `start`.
    pub fn new(start: GtidPosition) -> Self {
        Self {
            latest: start.clone(),
            base: start,
            next_seq: 0,
            boundaries: BTreeMap::new(),
            outstanding: BTreeMap::new(),
            entities: Default::default(),
        }
    }

    /// The position after the last transaction read (where a reconnecting reader resumes).
    pub fn latest(&self) -> &GtidPosition {
        &self.latest
    }

    /// The number the next transaction recorded gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Transactions numbered below this have every change applied.
    pub fn covered(&self) -> u64 {
        self.outstanding
            .keys()
            .next()
            .copied()
            .unwrap_or(self.next_seq)
    }

    /// Records a committed transaction, read at `read_at`, whose changes touch `keys`; the
    /// position after it is `position`.
    pub fn record(
        &mut self,
        position: GtidPosition,
        read_at: Instant,
        keys: impl IntoIterator<Item = (Entity, u64)>,
    ) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut any = false;
        for (entity, key) in keys {
            any = true;
            let keys = &mut self.entities[entity.index()];
            match keys.state.get_mut(&key) {
                None => {
                    keys.state.insert(
                        key,
                        KeyState {
                            seq,
                            attempts: 0,
                            phase: Phase::Ready,
                        },
                    );
                    keys.ready.insert((seq, key));
                    *self.outstanding.entry(seq).or_default() += 1;
                }
                Some(s) => match s.phase {
                    Phase::Ready => {}
                    // A new change may be what makes the row valid again: retry it now.
                    Phase::Parked(due) => {
                        keys.parked.remove(&(due, key));
                        keys.ready.insert((s.seq, key));
                        s.phase = Phase::Ready;
                    }
                    Phase::InFlight { newer: None } => {
                        s.phase = Phase::InFlight { newer: Some(seq) };
                    }
                    Phase::InFlight { newer: Some(_) } => {}
                },
            }
        }
        if any || !self.outstanding.is_empty() {
            self.boundaries.insert(seq, (position.clone(), read_at));
        }
        self.latest = position;
        self.prune();
    }

    /// Hands out up to `limit` claimable keys of `entity` (parked ones whose retry is due
    /// included), oldest change first; `None` when there are none.
    pub fn claim(&mut self, entity: Entity, limit: usize, now: Instant) -> Option<Claimed> {
        let keys = &mut self.entities[entity.index()];
        while let Some(&(due, key)) = keys.parked.first() {
            if due > now {
                break;
            }
            keys.parked.pop_first();
            if let Some(s) = keys.state.get_mut(&key) {
                s.phase = Phase::Ready;
                keys.ready.insert((s.seq, key));
            }
        }
        let mut claimed = Vec::new();
        while claimed.len() < limit.max(1) {
            let Some((_, key)) = keys.ready.pop_first() else {
                break;
            };
            let s = keys.state.get_mut(&key).expect("a ready key has a state");
            s.phase = Phase::InFlight { newer: None };
            claimed.push((key, s.attempts));
        }
        let first = *claimed.first()?;
        let seq = keys.state[&first.0].seq;
        let oldest_read_at = self
            .boundaries
            .get(&seq)
            .map_or_else(Instant::now, |(_, at)| *at);
        Some(Claimed {
            keys: claimed,
            oldest_read_at,
        })
    }

    /// A batch ended: `done` keys were written (or dead-lettered), `failed` keys failed once
    /// more and wait for a retry.
    pub fn settle(
        &mut self,
        entity: Entity,
        done: impl IntoIterator<Item = u64>,
        failed: impl IntoIterator<Item = (u64, Duration)>,
        now: Instant,
    ) {
        for key in done {
            self.finish(entity, key);
        }
        let keys = &mut self.entities[entity.index()];
        for (key, delay) in failed {
            if let Some(s) = keys.state.get_mut(&key)
                && matches!(s.phase, Phase::InFlight { .. })
            {
                s.attempts += 1;
                let due = now + delay;
                s.phase = Phase::Parked(due);
                keys.parked.insert((due, key));
            }
        }
        self.prune();
    }

    /// A batch was given back untouched: its keys are claimable again.
    pub fn release(&mut self, entity: Entity, keys: impl IntoIterator<Item = u64>) {
        let state = &mut self.entities[entity.index()];
        for key in keys {
            if let Some(s) = state.state.get_mut(&key)
                && matches!(s.phase, Phase::InFlight { .. })
            {
                s.phase = Phase::Ready;
                state.ready.insert((s.seq, key));
            }
        }
    }

    fn finish(&mut self, entity: Entity, key: u64) {
        let keys = &mut self.entities[entity.index()];
        let Some(s) = keys.state.get_mut(&key) else {
            return;
        };
        let Phase::InFlight { newer } = s.phase else {
            return;
        };
        let old = s.seq;
        match newer {
            Some(seq) => {
                *s = KeyState {
                    seq,
                    attempts: 0,
                    phase: Phase::Ready,
                };
                keys.ready.insert((seq, key));
                *self.outstanding.entry(seq).or_default() += 1;
            }
            None => {
                keys.state.remove(&key);
            }
        }
        if let Some(n) = self.outstanding.get_mut(&old) {
            *n -= 1;
            if *n == 0 {
                self.outstanding.remove(&old);
            }
        }
    }

    /// The position a restart may resume from: after the last transaction older than every
    /// change still waiting.
    pub fn checkpoint(&self) -> &GtidPosition {
        match self.outstanding.keys().next() {
            None => &self.latest,
            Some(&oldest) => self
                .boundaries
                .range(..oldest)
                .next_back()
                .map_or(&self.base, |(_, (p, _))| p),
        }
    }

    /// Forgets boundaries the checkpoint can no longer need.
    fn prune(&mut self) {
        let keep_from = match self.outstanding.keys().next() {
            None => {
                self.base = self.latest.clone();
                self.boundaries.clear();
                return;
            }
            Some(&oldest) => oldest,
        };
        // Keep the boundary just before the oldest waiting change (the checkpoint) and after.
        let Some((&before, _)) = self.boundaries.range(..keep_from).next_back() else {
            return;
        };
        let kept = self.boundaries.split_off(&before);
        if let Some((_, (p, _))) = self.boundaries.last_key_value() {
            self.base = p.clone();
        }
        self.boundaries = kept;
    }

    /// What waits for `entity`.
    pub fn waiting(&self, entity: Entity, now: Instant) -> Waiting {
        let keys = &self.entities[entity.index()];
        let oldest = keys.state.values().map(|s| s.seq).min();
        Waiting {
            keys: keys.state.len() as u64,
            parked: keys.parked.len() as u64,
            next_retry_in: keys
                .parked
                .first()
                .map(|(due, _)| due.saturating_duration_since(now)),
            oldest_age: oldest
                .and_then(|seq| self.boundaries.get(&seq))
                .map(|(_, at)| now.saturating_duration_since(*at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(seq: u64) -> GtidPosition {
        format!("0-1-{seq}").parse().unwrap()
    }

    fn keys(c: &Option<Claimed>) -> Vec<u64> {
        c.as_ref()
            .map(|c| c.keys.iter().map(|k| k.0).collect())
            .unwrap_or_default()
    }

    #[test]
    fn changes_coalesce_per_key_and_the_checkpoint_waits_for_the_oldest() {
        let now = Instant::now();
        let mut t = Tracker::new(pos(10));
        t.record(pos(11), now, [(Entity::Orders, 1), (Entity::Customers, 7)]);
        t.record(pos(12), now, [(Entity::Orders, 1), (Entity::Orders, 2)]);
        assert_eq!(t.checkpoint(), &pos(10));
        let c = t.claim(Entity::Orders, 10, now);
        assert_eq!(keys(&c), vec![1, 2], "one entry per key, oldest first");
        t.settle(Entity::Orders, [1, 2], [], now);
        assert_eq!(
            t.checkpoint(),
            &pos(10),
            "customer 7 of transaction 11 waits"
        );
        t.claim(Entity::Customers, 10, now).unwrap();
        t.settle(Entity::Customers, [7], [], now);
        assert_eq!(t.checkpoint(), &pos(12));
        t.record(pos(13), now, []);
        assert_eq!(t.checkpoint(), &pos(13), "nothing waits: the latest");
        assert!(t.claim(Entity::Orders, 10, now).is_none());
    }

    #[test]
    fn a_change_during_a_batch_makes_the_key_wait_again() {
        let now = Instant::now();
        let mut t = Tracker::new(pos(0));
        t.record(pos(1), now, [(Entity::Products, 5)]);
        let c = t.claim(Entity::Products, 10, now);
        assert_eq!(keys(&c), vec![5]);
        t.record(pos(2), now, [(Entity::Products, 5)]);
        assert!(
            t.claim(Entity::Products, 10, now).is_none(),
            "a key is in one batch at a time"
        );
        t.settle(Entity::Products, [5], [], now);
        assert_eq!(t.checkpoint(), &pos(1), "the change of transaction 2 waits");
        assert_eq!(keys(&t.claim(Entity::Products, 10, now)), vec![5]);
        t.settle(Entity::Products, [5], [], now);
        assert_eq!(t.checkpoint(), &pos(2));
    }

    #[test]
    fn failed_keys_park_until_due_and_released_ones_return() {
        let now = Instant::now();
        let mut t = Tracker::new(pos(0));
        t.record(pos(1), now, [(Entity::Services, 3), (Entity::Services, 4)]);
        t.claim(Entity::Services, 10, now).unwrap();
        t.settle(
            Entity::Services,
            [4],
            [(3, Duration::from_millis(200))],
            now,
        );
        let w = t.waiting(Entity::Services, now);
        assert_eq!((w.keys, w.parked), (1, 1));
        assert_eq!(w.next_retry_in, Some(Duration::from_millis(200)));
        assert!(t.claim(Entity::Services, 10, now).is_none(), "not due yet");
        assert_eq!(
            t.checkpoint(),
            &pos(0),
            "a parked change holds the checkpoint"
        );
        let later = now + Duration::from_millis(250);
        let c = t.claim(Entity::Services, 10, later).unwrap();
        assert_eq!(c.keys, vec![(3, 1)], "with its failed attempt");
        t.release(Entity::Services, [3]);
        assert_eq!(keys(&t.claim(Entity::Services, 10, later)), vec![3]);
        t.settle(Entity::Services, [3], [], later);
        assert_eq!(t.checkpoint(), &pos(1));
        assert_eq!(t.waiting(Entity::Services, later).keys, 0);
    }

    #[test]
    fn claims_respect_the_limit_and_boundaries_are_pruned() {
        let now = Instant::now();
        let mut t = Tracker::new(pos(0));
        for i in 1..=100 {
            t.record(pos(i), now, [(Entity::Customers, i)]);
        }
        let c = t.claim(Entity::Customers, 30, now).unwrap();
        assert_eq!(c.keys.len(), 30);
        t.settle(Entity::Customers, c.keys.iter().map(|k| k.0), [], now);
        assert_eq!(t.checkpoint(), &pos(30));
        assert!(t.boundaries.len() <= 71, "{}", t.boundaries.len());
        for _ in 0..3 {
            let c = t.claim(Entity::Customers, 30, now).unwrap();
            t.settle(Entity::Customers, c.keys.iter().map(|k| k.0), [], now);
        }
        assert_eq!(t.checkpoint(), &pos(100));
        assert!(t.boundaries.is_empty());
    }
}
