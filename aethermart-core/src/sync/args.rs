//! [`SyncArgs`]: the sync options as command-line flags, each also read from an environment
//! variable, defined once for every binary that runs the loop (`aethermart-worker`,
//! `aethermart bench sync`). Behind the `cli` feature.

use super::SyncOptions;
use crate::config;
use std::time::Duration;

/// The loop's options as flags (`#[command(flatten)]` them into a binary's arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct SyncArgs {
    /// Changes claimed per batch.
    #[arg(long, env = config::SYNC_BATCH_SIZE, default_value_t = SyncOptions::default().batch_size,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_size: u32,
    /// Batches of one queue in flight at once.
    #[arg(long, env = config::SYNC_LANES, default_value_t = SyncOptions::default().lanes as u16,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub lanes: u16,
    /// Milliseconds to wait after a batch that was not full.
    #[arg(long, env = config::SYNC_POLL_MS,
          default_value_t = SyncOptions::default().poll_interval.as_millis() as u64)]
    pub poll_ms: u64,
    /// Longest wait in milliseconds while the queues are idle (waits double up to it).
    #[arg(long, env = config::SYNC_MAX_IDLE_MS,
          default_value_t = SyncOptions::default().max_idle_wait.as_millis() as u64)]
    pub max_idle_ms: u64,
    /// Failed attempts before a change moves to sync_dead_letters.
    #[arg(long, env = config::SYNC_MAX_ATTEMPTS, default_value_t = SyncOptions::default().max_attempts,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,
}

impl SyncArgs {
    /// The loop's options (an idle wait shorter than the poll interval is raised to it).
    pub fn options(&self) -> SyncOptions {
        SyncOptions {
            batch_size: self.batch_size,
            lanes: usize::from(self.lanes),
            poll_interval: Duration::from_millis(self.poll_ms),
            max_idle_wait: Duration::from_millis(self.max_idle_ms.max(self.poll_ms)),
            max_attempts: self.max_attempts,
            ..SyncOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Binary {
        #[command(flatten)]
        sync: SyncArgs,
    }

    #[test]
    fn defaults_are_the_loops_defaults_and_flags_override_them() {
        let parsed = Binary::try_parse_from(["bin"]).unwrap().sync.options();
        let defaults = SyncOptions::default();
        assert_eq!(
            (parsed.batch_size, parsed.lanes, parsed.max_attempts),
            (defaults.batch_size, defaults.lanes, defaults.max_attempts)
        );
        let parsed = Binary::try_parse_from(["bin", "--batch-size", "7", "--max-attempts", "2"])
            .unwrap()
            .sync
            .options();
        assert_eq!((parsed.batch_size, parsed.max_attempts), (7, 2));
        let zero = Binary::try_parse_from(["bin", "--batch-size", "0"]).unwrap_err();
        assert!(zero.to_string().contains("batch-size"), "{zero}");
    }
}
