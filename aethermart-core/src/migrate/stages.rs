//! Where an entity's migration spends its time: [`StageTimes`], gathered by a [`StageClock`]
//! shared by the entity's reader and its writes in flight.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Seconds one entity's migration spent in each stage. Stages overlap (reading runs ahead of
/// writing, several writes are in flight), so they do not add up to the entity's wall time;
/// the two waits say which side held the other back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StageTimes {
    /// Waiting for MariaDB's answers to the page queries.
    pub query: f64,
    /// Turning rows into documents.
    pub build: f64,
    /// Encoding documents into BSON write commands.
    pub encode: f64,
    /// MongoDB write commands, from sending to acknowledgement, summed over the writes in flight.
    pub write: f64,
    /// Reading MongoDB-only fields before a merge (profiles).
    pub merge_read: f64,
    /// Moving the checkpoint in MariaDB after each acknowledged page.
    pub checkpoint: f64,
    /// The reader waiting for room in the queue of pages read ahead (writing is the bottleneck).
    pub reader_blocked: f64,
    /// The writer waiting for the next page's acknowledgement with nothing else to do.
    pub writer_waiting: f64,
}

/// One stage of [`StageTimes`].
#[derive(Debug, Clone, Copy)]
pub(super) enum Stage {
    Query,
    Build,
    Encode,
    Write,
    MergeRead,
    Checkpoint,
    ReaderBlocked,
    WriterWaiting,
}

/// Accumulates [`StageTimes`] from several tasks at once.
#[derive(Debug, Default)]
pub(super) struct StageClock {
    nanos: [AtomicU64; 8],
}

impl StageClock {
    /// Adds the time since `started` to `stage`.
    pub(super) fn since(&self, stage: Stage, started: Instant) {
        self.add(stage, started.elapsed().as_secs_f64());
    }

    /// Adds `seconds` to `stage`.
    pub(super) fn add(&self, stage: Stage, seconds: f64) {
        let nanos = (seconds.max(0.0) * 1e9) as u64;
        self.nanos[stage as usize].fetch_add(nanos, Ordering::Relaxed);
    }

    /// The times so far.
    pub(super) fn times(&self) -> StageTimes {
        let s = |stage: Stage| self.nanos[stage as usize].load(Ordering::Relaxed) as f64 / 1e9;
        StageTimes {
            query: s(Stage::Query),
            build: s(Stage::Build),
            encode: s(Stage::Encode),
            write: s(Stage::Write),
            merge_read: s(Stage::MergeRead),
            checkpoint: s(Stage::Checkpoint),
            reader_blocked: s(Stage::ReaderBlocked),
            writer_waiting: s(Stage::WriterWaiting),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_accumulate_separately() {
        let clock = StageClock::default();
        clock.add(Stage::Write, 0.25);
        clock.add(Stage::Write, 0.5);
        clock.add(Stage::Checkpoint, 0.125);
        clock.add(Stage::Query, -1.0);
        let t = clock.times();
        assert_eq!(
            (t.write, t.checkpoint, t.query, t.build),
            (0.75, 0.125, 0.0, 0.0)
        );
    }
}
