//! Progress of long jobs (loading generated data, migrating): the CLI draws bars with it.

/// Reports progress per table or entity. All methods default to nothing.
pub trait Progress: Send + Sync {
    /// `table` starts; `total` rows when known in advance.
    fn begin(&self, _table: &'static str, _total: Option<u64>) {}
    /// `rows` more rows of `table` are done.
    fn advance(&self, _table: &'static str, _rows: u64) {}
    /// `table` is complete.
    fn finish(&self, _table: &'static str) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
