//! The projection: how MariaDB rows become MongoDB documents, in one place.
//!
//! - [`Entity`]: what becomes one collection, and everything that follows from it (source
//!   tables, key column, collection, sync queue);
//! - [`read_page`] with a [`Selection`] (a page in key order, or a set of keys) and the
//!   [`Lookups`] documents need: the rows read and built into documents, with a [`ReadError`]
//!   that tells a failed query from a row that cannot become a document;
//! - [`document`]: the pure builders (no I/O) and the collection names;
//! - [`content_hash`]: the canonical hash that compares a built document with a stored one.
//!
//! The initial migration, both captures of the sync, verification and the quality checks all
//! build documents here, so every side computes them the same way. Nothing here knows about a
//! pipeline: no queues are claimed, no checkpoints kept, nothing is written.

pub mod document;
mod entity;
mod hash;
mod read;

pub use entity::Entity;
pub use hash::{content_hash, integer_id, owned_part};
pub use read::{LookupError, Lookups, Page, ReadError, RowFault, Selection, read_page};

use serde::Serialize;

/// A document a store refused to take (a validator, a unique index, a row that could not be
/// built), with the reason; it is reported or retried, never dropped silently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refused {
    /// The document's `_id` (the row's key).
    pub key: i64,
    /// Why.
    pub reason: String,
}
