//! How sync workers keep out of each other's way and out of a running migration's, with row
//! locks on tables only the worker role may read (`sql/0009_sync_integrity.sql`): any account
//! can take a user lock, none but the worker and the admin can lock these rows.
//!
//! - **Per-key exclusion**: a claim locks the slot of every key it claims, `FOR UPDATE SKIP
//!   LOCKED`; a key whose slot another batch holds is left for later. The locks are the claiming
//!   transaction's, released at its commit or when its connection dies.
//! - **Migration handoff**: a migration holds the `sync_handoff` row `FOR UPDATE` while it runs;
//!   a claim takes it `LOCK IN SHARE MODE SKIP LOCKED` and claims nothing when it cannot.
//!
//! [`crate::migrate`] and [`crate::sync`] both depend on this leaf.

/// The slot of a key of the entity at `entity_index` (its position in `Entity::ALL`), as SQL
/// over the key column: a multiplicative hash of the low 16 bits (a permutation: 65,536
/// consecutive keys take 65,536 different slots, a burst of new orders spreads out) mixed with
/// the high bits. No overflow whatever the key: a huge key cannot fail the claim.
pub fn key_slot_sql(entity_index: usize, key_column: &str) -> String {
    format!(
        "(((({key_column} & 65535) * 40503 + {offset}) & 65535) ^ (({key_column} >> 16) & 65535))",
        offset = entity_index * 16_411
    )
}

/// Takes the handoff row in a claim's transaction: one row when no migration runs (with the
/// database's capture, `triggers` or `binlog`, and its name, as read after the lock: a capture switch holds
/// the row while it changes it), none while one does.
pub const CLAIM_HANDOFF: &str = "SELECT id, (SELECT capture FROM sync_settings WHERE id = 1), DATABASE() \
     FROM sync_handoff WHERE id = 1 LOCK IN SHARE MODE SKIP LOCKED";

/// Takes the handoff row for a migration: waits at most this many seconds for batches in
/// flight (and fails if another migration holds it).
pub const MIGRATION_HANDOFF: &str = "SELECT id FROM sync_handoff WHERE id = 1 FOR UPDATE WAIT 10";
