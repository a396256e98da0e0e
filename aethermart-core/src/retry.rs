//! Which failures are worth retrying, decided in one place for every caller.
//!
//! Two different questions get two different answers:
//! - **Retry, the work is idempotent** ([`mariadb_idempotent`], [`mongodb_idempotent`],
//!   [`mongodb_code_passing`]): the sync and the migration redo whole units of idempotent work
//!   (claim, upsert by key, checkpoint), so anything passing — a deadlock, a lost connection,
//!   an election — is retried, even when the failed statement may have been applied.
//! - **Not committed, safe to resend** ([`mariadb_not_committed`]): placing an order is not
//!   idempotent, so only failures after which the statement certainly did not commit count
//!   (deadlock, lock wait timeout, no connection obtained). A connection lost mid-statement
//!   does not: the order may exist.
//!
//! MongoDB failures that lie in the documents themselves (a validator, a duplicate key, a
//! document too large) are told apart by [`mongodb_code_in_documents`]: retrying cannot help,
//! but the other documents of the batch can still be written. [`crate::mongo_write`] applies
//! these answers to its write commands' failures.

use mongodb::error::ErrorKind;
use sqlx::mysql::MySqlDatabaseError;

/// MariaDB error numbers after which the same work may succeed: 1213 deadlock (also a Galera
/// certification conflict), 1205 lock wait timeout, 1053/1077/1927 shutdown or killed,
/// 2006/2013 server gone, 1040/1203 too many connections, 1047 Galera node not prepared.
const MARIADB_PASSING: [u16; 10] = [1213, 1205, 1053, 1077, 1927, 2006, 2013, 1040, 1203, 1047];

/// MariaDB error numbers after which the statement was certainly rolled back: deadlock (1213)
/// and lock wait timeout (1205).
const MARIADB_ROLLED_BACK: [u16; 2] = [1213, 1205];

/// The server's error number, when `e` is a MariaDB server error.
fn mariadb_number(e: &sqlx::Error) -> Option<u16> {
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(MySqlDatabaseError::number),
        _ => None,
    }
}

/// Retry, the work is idempotent: deadlocks, lock waits, a Galera node not ready, lost or
/// refused connections, pool timeouts — after which the same work may succeed (on the same
/// node, or on another one a cluster pool moved to).
pub fn mariadb_idempotent(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(_) => mariadb_number(e).is_some_and(|n| MARIADB_PASSING.contains(&n)),
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => true,
        _ => false,
    }
}

/// Not committed, safe to resend: deadlock, lock wait timeout, or no connection obtained — the
/// statement was rolled back or never sent. A connection lost mid-statement is *not* among
/// them: the statement may have committed.
pub fn mariadb_not_committed(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(_) => {
            mariadb_number(e).is_some_and(|n| MARIADB_ROLLED_BACK.contains(&n))
        }
        _ => false,
    }
}

/// MongoDB codes after which the same write may succeed: NotWritablePrimary,
/// InterruptedAtShutdown, InterruptedDueToReplStateChange, PrimarySteppedDown,
/// ShutdownInProgress, HostUnreachable, HostNotFound, NetworkTimeout, SocketException,
/// NotPrimaryNoSecondaryOk, NotPrimaryOrSecondary, ExceededTimeLimit, MaxTimeMSExpired,
/// WriteConcernFailed.
const MONGODB_PASSING: [i32; 14] = [
    10107, 11600, 11602, 189, 91, 6, 7, 89, 9001, 13435, 13436, 262, 50, 64,
];

/// MongoDB codes that lie in the documents of a write: BadValue, FailedToParse, TypeMismatch,
/// DollarPrefixedFieldName, DocumentValidationFailure, BSONObjectTooLarge, DuplicateKey, …
const MONGODB_IN_DOCUMENTS: [i32; 12] = [2, 9, 14, 17, 52, 55, 56, 57, 121, 10334, 11000, 17419];

/// True for a MongoDB error code after which the same write may succeed.
pub fn mongodb_code_passing(code: i32) -> bool {
    MONGODB_PASSING.contains(&code)
}

/// Retry, the work is idempotent: network trouble, no server to select, elections,
/// shutdowns, write concern not met. Anything else (a malformed command, an authorization
/// failure) is not.
pub fn mongodb_idempotent(e: &mongodb::error::Error) -> bool {
    if e.contains_label("RetryableWriteError") {
        return true;
    }
    match &*e.kind {
        ErrorKind::Io(_)
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. } => true,
        ErrorKind::Command(c) => mongodb_code_passing(c.code),
        ErrorKind::Write(mongodb::error::WriteFailure::WriteConcernError(_)) => true,
        _ => false,
    }
}

/// True for a MongoDB error code that lies in the documents of a write (too large, invalid
/// field names, a validator, a duplicate key): written one by one, only the faulty ones fail.
pub fn mongodb_code_in_documents(code: i32) -> bool {
    MONGODB_IN_DOCUMENTS.contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_timeouts_are_resent_but_a_lost_connection_is_only_retried_when_idempotent() {
        assert!(mariadb_not_committed(&sqlx::Error::PoolTimedOut));
        assert!(mariadb_idempotent(&sqlx::Error::PoolTimedOut));
        let lost = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(mariadb_idempotent(&lost));
        assert!(
            !mariadb_not_committed(&lost),
            "the statement may have committed"
        );
        assert!(!mariadb_idempotent(&sqlx::Error::RowNotFound));
    }

    #[test]
    fn passing_mongodb_codes_are_not_document_faults() {
        for code in MONGODB_PASSING {
            assert!(!MONGODB_IN_DOCUMENTS.contains(&code), "{code}");
        }
        assert!(mongodb_code_passing(10107));
        assert!(!mongodb_code_passing(121));
    }
}
