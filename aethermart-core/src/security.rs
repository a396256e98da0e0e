//! Role-based access (milestone 6): three roles and their users, applied idempotently by
//! `aethermart security apply`.
//!
//! | role | user | may |
//! |---|---|---|
//! | `aethermart_admin` | `alex` | everything on the platform's database, and grant it |
//! | `aethermart_analyst` | `sarah` | read the masked and aggregate views only ([`ANALYST_VIEWS`]), no table holding personal data |
//! | `aethermart_engineer` | `maria` | exactly what the migration and the sync worker need ([`engineer_grants`]) |
//!
//! Passwords come only from the environment ([`ALEX_PASSWORD`], [`SARAH_PASSWORD`],
//! [`MARIA_PASSWORD`]); all three are checked before anything is changed. Roles and users are
//! server-wide; their grants are per database. MariaDB applies account statements one by one
//! (they are not transactional), so `apply` only uses statements that can be repeated: a run
//! stopped halfway is completed by running it again.

use crate::config::MariaDbConfig;
use crate::config::{ConfigError, Secret};
use crate::connect::execute_script;
use crate::projection::Entity;
use sqlx::MySqlConnection;

/// The administrator's password variable.
pub const ALEX_PASSWORD: &str = "AETHERMART_ALEX_PASSWORD";
/// The analyst's password variable.
pub const SARAH_PASSWORD: &str = "AETHERMART_SARAH_PASSWORD";
/// The data engineer's password variable.
pub const MARIA_PASSWORD: &str = "AETHERMART_MARIA_PASSWORD";

/// The administration role.
pub const ADMIN_ROLE: &str = "aethermart_admin";
/// The analytics role.
pub const ANALYST_ROLE: &str = "aethermart_analyst";
/// The data engineering role.
pub const ENGINEER_ROLE: &str = "aethermart_engineer";

/// The views an analyst may read: masked or aggregate, no personal data in the clear.
pub const ANALYST_VIEWS: &[&str] = &[
    "v_customers_masked",
    "v_QuarterlySales",
    "v_SalesLines",
    "v_CustomerOrderSummary",
    "v_LowStock",
    "v_SemanticSearchText",
];

/// The three users' passwords.
#[derive(Clone)]
pub struct Passwords {
    alex: Secret,
    sarah: Secret,
    maria: Secret,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passwords { alex: ***, sarah: ***, maria: *** }")
    }
}

impl Passwords {
    /// Reads the three variables through `lookup` (see [`crate::config::env_lookup`]); a missing
    /// or empty one is named in the error.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |var: &'static str| {
            lookup(var)
                .filter(|v| !v.is_empty())
                .map(Secret::new)
                .ok_or(ConfigError::Missing {
                    var,
                    hint: "the password of that platform user (security apply sets it)",
                })
        };
        Ok(Self {
            alex: get(ALEX_PASSWORD)?,
            sarah: get(SARAH_PASSWORD)?,
            maria: get(MARIA_PASSWORD)?,
        })
    }

    /// The administrator's password (to log in as `alex`).
    pub fn alex(&self) -> &Secret {
        &self.alex
    }

    /// The engineer's password (to log in as `maria`).
    pub fn maria(&self) -> &Secret {
        &self.maria
    }

    /// The analyst's password (to log in as `sarah`).
    pub fn sarah(&self) -> &Secret {
        &self.sarah
    }
}

/// Applying the roles failed.
#[derive(Debug, thiserror::Error)]
#[error(
    "security apply failed at `{step}`: {source} (the statements before it took effect; run it again)"
)]
pub struct SecurityError {
    /// The statement's purpose (never the password).
    pub step: String,
    /// The server's error.
    #[source]
    pub source: sqlx::Error,
}

/// `(privileges, object)` pairs of the engineer role inside `database`: read every table the
/// migration and the worker read, write only their own state (queues, dead letters, the sync
/// home, checkpoints, lineage).
pub fn engineer_grants(database: &str) -> Vec<(String, String)> {
    let on = |table: &str| format!("`{database}`.`{table}`");
    let mut grants: Vec<(String, String)> = [
        "Customers",
        "Customer_Addresses",
        "Categories",
        "Products",
        "Services",
        "Orders",
        "Order_Items",
        "schema_history",
    ]
    .iter()
    .map(|t| ("SELECT".to_owned(), on(t)))
    .collect();
    for entity in Entity::ALL {
        grants.push((
            "SELECT, UPDATE, DELETE".to_owned(),
            on(entity.queue_table()),
        ));
    }
    grants.push(("SELECT, INSERT".to_owned(), on("sync_dead_letters")));
    grants.push(("SELECT, INSERT, UPDATE".to_owned(), on("sync_home")));
    grants.push((
        "SELECT, INSERT, UPDATE".to_owned(),
        on("migration_checkpoints"),
    ));
    // Lineage: new rows, and closing its own (the columns `migrate` sets when an entity ends).
    grants.push((
        "SELECT, INSERT, UPDATE (rows_read, rows_written, rows_rejected, finished_at, status, error)"
            .to_owned(),
        on("data_lineage_tracker"),
    ));
    grants
}

/// Creates (or updates) the roles, their grants on the configured database, and the users
/// `alex`, `sarah` and `maria` with their passwords and default roles (any host). Runs on a
/// connection of its own whose statements are never logged (they carry passwords).
pub async fn apply(mariadb: &MariaDbConfig, passwords: &Passwords) -> Result<(), SecurityError> {
    use sqlx::{ConnectOptions, Connection};
    let database = mariadb.database();
    let options = mariadb.connect_options().disable_statement_logging();
    let mut conn = MySqlConnection::connect_with(&options)
        .await
        .map_err(|source| SecurityError {
            step: format!("connecting to MariaDB at {}", mariadb.endpoint()),
            source,
        })?;
    let conn = &mut conn;
    let mut steps: Vec<(String, String)> = Vec::new();
    let mut step = |what: &str, sql: String| steps.push((what.to_owned(), sql));
    for role in [ADMIN_ROLE, ANALYST_ROLE, ENGINEER_ROLE] {
        step(
            &format!("create role {role}"),
            format!("CREATE ROLE IF NOT EXISTS {role}"),
        );
    }
    step(
        "grant the admin role",
        format!("GRANT ALL PRIVILEGES ON `{database}`.* TO {ADMIN_ROLE} WITH GRANT OPTION"),
    );
    for view in ANALYST_VIEWS {
        step(
            &format!("grant {view} to the analyst role"),
            format!("GRANT SELECT ON `{database}`.`{view}` TO {ANALYST_ROLE}"),
        );
    }
    for (privileges, object) in engineer_grants(database) {
        step(
            &format!("grant {privileges} on {object} to the engineer role"),
            format!("GRANT {privileges} ON {object} TO {ENGINEER_ROLE}"),
        );
    }
    for (user, role, password) in [
        ("alex", ADMIN_ROLE, &passwords.alex),
        ("sarah", ANALYST_ROLE, &passwords.sarah),
        ("maria", ENGINEER_ROLE, &passwords.maria),
    ] {
        // Only the password's hash travels (mysql_native_password): never the password in
        // statement text, process lists or server logs, and nothing to escape.
        let hash = native_password_hash(password.expose());
        step(
            &format!("create user {user}"),
            format!("CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY PASSWORD '{hash}'"),
        );
        step(
            &format!("set the password of {user}"),
            format!("ALTER USER '{user}'@'%' IDENTIFIED BY PASSWORD '{hash}'"),
        );
        step(
            &format!("grant {role} to {user}"),
            format!("GRANT {role} TO '{user}'@'%'"),
        );
        step(
            &format!("make {role} the default role of {user}"),
            format!("SET DEFAULT ROLE {role} FOR '{user}'@'%'"),
        );
    }
    for (what, sql) in steps {
        // Text protocol: account statements cannot be prepared.
        execute_script(conn, &sql)
            .await
            .map_err(|source| SecurityError { step: what, source })?;
    }
    Ok(())
}

/// The `mysql_native_password` hash: `*` and the upper-case hex of SHA1(SHA1(password)).
fn native_password_hash(password: &str) -> String {
    use sha1::{Digest, Sha1};
    let twice = Sha1::digest(Sha1::digest(password.as_bytes()));
    let hex: String = twice.iter().map(|b| format!("{b:02X}")).collect();
    format!("*{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_password_is_named_and_debug_hides_them() {
        let lookup = |v: &str| (v != SARAH_PASSWORD).then(|| "s3cret-value".to_owned());
        let err = Passwords::from_lookup(lookup).unwrap_err().to_string();
        assert!(err.contains(SARAH_PASSWORD), "{err}");
        let all = Passwords::from_lookup(|_| Some("s3cret-value".to_owned())).unwrap();
        assert!(!format!("{all:?}").contains("s3cret"));
    }

    #[test]
    fn the_native_password_hash_matches_mariadb() {
        // SELECT PASSWORD('secret') on MariaDB 10.11
        assert_eq!(
            native_password_hash("secret"),
            "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7"
        );
    }

    #[test]
    fn the_engineer_writes_only_platform_state() {
        let grants = engineer_grants("db");
        for (privileges, object) in &grants {
            let writes = privileges.contains("INSERT")
                || privileges.contains("UPDATE")
                || privileges.contains("DELETE");
            let state = object.contains("sync_queue")
                || object.contains("dead_letters")
                || object.contains("sync_home")
                || object.contains("checkpoints")
                || object.contains("lineage");
            assert!(!writes || state, "{privileges} on {object}");
        }
    }
}
