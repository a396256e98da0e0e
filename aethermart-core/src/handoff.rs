//! The handoff between the initial migration and the sync workers: while a migration of a
//! database runs it holds a MariaDB user lock, and workers claim nothing while it is taken
//! (see [`crate::migrate`] and [`crate::sync`], which both depend on this leaf).

use sha2::{Digest, Sha256};

/// The name of a MariaDB user lock private to `database` (named locks are server-wide and at
/// most 64 characters, so the database name is hashed).
pub(crate) fn lock_name(database: &str, what: &str) -> String {
    let hash = Sha256::digest(database.as_bytes());
    let hex: String = hash[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("amt:{hex}:{what}")
}

/// The lock an initial migration holds while it runs; workers pause while it is taken.
pub(crate) fn migration_lock(database: &str) -> String {
    lock_name(database, "migration")
}
