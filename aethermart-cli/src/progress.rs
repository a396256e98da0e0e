//! Progress bars (one per table) for long jobs, drawn on stderr.

use aethermart_core::progress::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::sync::Mutex;

/// One bar per table: a bar with a length when the total is known, a counter otherwise.
pub(crate) struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<&'static str, ProgressBar>>,
}

impl Bars {
    /// Bars on stderr (hidden automatically when stderr is not a terminal).
    pub(crate) fn new() -> Self {
        Self {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
        }
    }
}

impl Progress for Bars {
    fn begin(&self, table: &'static str, total: Option<u64>) {
        let bar = match total {
            Some(n) => ProgressBar::new(n).with_style(
                ProgressStyle::with_template(
                    "{prefix:>12} [{bar:30}] {pos:>9}/{len:<9} {per_sec:>12} {elapsed:>4}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            ),
            None => ProgressBar::no_length().with_style(
                ProgressStyle::with_template(
                    "{prefix:>12} {spinner} {pos:>9} rows {per_sec:>12} {elapsed:>4}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        let bar = self.multi.add(bar.with_prefix(table));
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(table, bar);
        }
    }

    fn advance(&self, table: &'static str, rows: u64) {
        if let Some(bar) = self.bars.lock().ok().and_then(|b| b.get(table).cloned()) {
            bar.inc(rows);
        }
    }

    fn finish(&self, table: &'static str) {
        if let Some(bar) = self.bars.lock().ok().and_then(|b| b.get(table).cloned()) {
            bar.finish();
        }
    }
}

/// A spinner with a message on stderr while a step without a known size runs (hidden when
/// stderr is not a terminal); cleared when dropped.
pub(crate) struct Spinner(ProgressBar);

impl Spinner {
    pub(crate) fn new(message: &'static str) -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message);
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Self(bar)
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
