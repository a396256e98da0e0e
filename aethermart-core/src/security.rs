//! Role-based access (milestone 6): four roles and their accounts, applied idempotently by
//! `aethermart security apply`.
//!
//! | role | account | may |
//! |---|---|---|
//! | `aethermart_admin` | `alex` | everything on the platform's database, and grant it |
//! | `aethermart_analyst` | `sarah` | read the masked and aggregate views only ([`ANALYST_VIEWS`]), no table holding personal data |
//! | `aethermart_engineer` | `maria` | inspect the pipeline through materialised views and operate it through procedures ([`engineer_grants`]): no table of the pipeline directly, so she can neither rewrite its state nor lock rows the workers need |
//! | `aethermart_worker` | `aethermart_worker` | exactly what the migration and the sync worker need ([`worker_grants`]); a service account, never a person's |
//! | `aethermart_app` | (the application's own account) | the order procedures and catalogue reads ([`app_grants`]), no direct write |
//!
//! Passwords come only from the environment ([`ALEX_PASSWORD`], [`SARAH_PASSWORD`],
//! [`MARIA_PASSWORD`], [`WORKER_PASSWORD`]); all four are checked before anything is changed.
//! Roles and users are server-wide; their grants are per database. Connections are capped per
//! account ([`WORKER_MAX_CONNECTIONS`], [`PERSON_MAX_CONNECTIONS`]). MariaDB applies account
//! statements one by one (they are not transactional), so `apply` only uses statements that can
//! be repeated: a run stopped halfway is completed by running it again.

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
/// The sync worker's (service account) password variable.
pub const WORKER_PASSWORD: &str = "AETHERMART_WORKER_PASSWORD";

/// The administration role.
pub const ADMIN_ROLE: &str = "aethermart_admin";
/// The analytics role.
pub const ANALYST_ROLE: &str = "aethermart_analyst";
/// The data engineering role.
pub const ENGINEER_ROLE: &str = "aethermart_engineer";
/// The sync worker's role (the migration and `aethermart-worker`).
pub const WORKER_ROLE: &str = "aethermart_worker";
/// The application's role: it places and cancels orders through the procedures and reads the
/// catalogue, nothing else (grant it to your application's account).
pub const APP_ROLE: &str = "aethermart_app";
/// The sync worker's account (a service account: no person logs in with it).
pub const WORKER_USER: &str = "aethermart_worker";

/// Connections the worker account may hold at once: four workers with the default options
/// (26 each, see [`crate::sync::SyncOptions::pool_size`]) and one migration (about 14).
pub const WORKER_MAX_CONNECTIONS: u32 = 128;
/// Connections a person's account (`sarah`, `maria`) may hold at once.
pub const PERSON_MAX_CONNECTIONS: u32 = 8;

/// What the engineer reads of the pipeline: materialised views, through which a locking read
/// locks nothing the workers use.
pub const ENGINEER_VIEWS: &[&str] = &[
    "v_sync_queue_status",
    "v_sync_dead_letters",
    "v_migration_checkpoints",
    "v_sync_streams",
];

/// The procedures through which the engineer operates the pipeline (definer's rights; each
/// validates its input and records who called it in `sync_operator_log`).
pub const ENGINEER_PROCEDURES: &[&str] =
    &["sp_RequestResync", "sp_ResolveDeadLetter", "sp_ReadLineage"];

/// The views an analyst may read: masked or aggregate, no personal data in the clear, and all
/// materialised (aggregates, unions or `ALGORITHM = TEMPTABLE`), so a locking read through
/// them locks no row an application writer needs.
pub const ANALYST_VIEWS: &[&str] = &[
    "v_customers_masked",
    "v_QuarterlySales",
    "v_LowStock",
    "v_SemanticSearchText",
];

/// Views the analyst could read before schema version 9: per-order and per-customer lines
/// (mergeable, so lockable, and keyed by the real customer id). Revoked by [`apply`].
const ANALYST_FORMER_VIEWS: &[&str] = &["v_SalesLines", "v_CustomerOrderSummary"];

/// The four accounts' passwords.
#[derive(Clone)]
pub struct Passwords {
    alex: Secret,
    sarah: Secret,
    maria: Secret,
    worker: Secret,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passwords { alex: ***, sarah: ***, maria: ***, worker: *** }")
    }
}

impl Passwords {
    /// Reads the four variables through `lookup` (see [`crate::config::env_lookup`]); a missing
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
            worker: get(WORKER_PASSWORD)?,
        })
    }

    /// Reads the four variables from the process environment, each also from a file
    /// (`<VAR>_FILE`, see [`crate::config::env_or_file`]).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(crate::config::env_snapshot(&Self::VARIABLES)?)
    }

    /// The variables [`Passwords::from_lookup`] reads.
    pub const VARIABLES: [&'static str; 4] = [
        ALEX_PASSWORD,
        SARAH_PASSWORD,
        MARIA_PASSWORD,
        WORKER_PASSWORD,
    ];

    /// The worker's password (to log in as [`WORKER_USER`]).
    pub fn worker(&self) -> &Secret {
        &self.worker
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

/// Applying the roles, or creating or dropping a history loader, failed.
#[derive(Debug, thiserror::Error)]
#[error(
    "account statement `{step}` failed: {source} (the statements before it took effect; running the command again completes them)"
)]
pub struct SecurityError {
    /// The statement's purpose (never the password).
    pub step: String,
    /// The server's error.
    #[source]
    pub source: sqlx::Error,
}

/// `(privileges, object)` pairs of the worker role inside `database`: read every table the
/// migration and the worker read, write only the pipeline's state (queues, dead letters, the
/// sync home, checkpoints, lineage), and lock the key slots and the handoff row (`SELECT` is
/// what a locking read needs).
pub fn worker_grants(database: &str) -> Vec<(String, String)> {
    let on = |table: &str| format!("`{database}`.`{table}`");
    let mut grants: Vec<(String, String)> = SOURCE_TABLES
        .iter()
        .chain(&[
            "sync_key_slots",
            "sync_handoff",
            "sync_settings",
            "v_sync_queue_status",
            "v_sync_dead_letters",
        ])
        .map(|t| ("SELECT".to_owned(), on(t)))
        .collect();
    for entity in Entity::ALL {
        // INSERT: in a cluster, an acknowledgement queues its keys again when the home moved.
        grants.push((
            "SELECT, INSERT, UPDATE, DELETE".to_owned(),
            on(entity.queue_table()),
        ));
    }
    grants.push(("SELECT, INSERT".to_owned(), on("sync_dead_letters")));
    // Binlog capture: read the binary log as a replica, and list the binlog files (the
    // oldest position, named when a position was purged). Server-wide privileges: the binlog
    // holds every database of the server.
    grants.push((
        "REPLICATION SLAVE, BINLOG MONITOR".to_owned(),
        "*.*".to_owned(),
    ));
    grants.push(("SELECT, INSERT, UPDATE".to_owned(), on("sync_home")));
    // The review stream's position (stored with the product keys it queues).
    grants.push((
        "SELECT, INSERT, UPDATE".to_owned(),
        on("sync_stream_positions"),
    ));
    grants.push((
        "SELECT, INSERT, UPDATE".to_owned(),
        on("migration_checkpoints"),
    ));
    // Lineage: new rows, and closing its own (the columns `migrate` sets when an entity ends;
    // a trigger keeps closed rows unchanged).
    grants.push((
        "SELECT, INSERT, UPDATE (rows_read, rows_written, rows_rejected, finished_at, status, error)"
            .to_owned(),
        on("data_lineage_tracker"),
    ));
    grants.push((
        "EXECUTE".to_owned(),
        format!("PROCEDURE `{database}`.`sp_ReadLineage`"),
    ));
    grants
}

/// `(privileges, object)` pairs of the application role inside `database`: EXECUTE on the
/// order procedures (which hold the business rules whatever the caller's session says) and
/// SELECT on the catalogue and the order summaries it shows; no write to any table, so no
/// session switch can let it around a rule.
pub fn app_grants(database: &str) -> Vec<(String, String)> {
    ["sp_PlaceOrder", "sp_CancelOrder"]
        .iter()
        .map(|p| {
            (
                "EXECUTE".to_owned(),
                format!("PROCEDURE `{database}`.`{p}`"),
            )
        })
        .chain(
            [
                "Categories",
                "Products",
                "Services",
                "v_LowStock",
                "v_CustomerOrderSummary",
            ]
            .iter()
            .map(|t| ("SELECT".to_owned(), format!("`{database}`.`{t}`"))),
        )
        .collect()
}

/// `(privileges, object)` pairs of the engineer role inside `database`: the pipeline's views
/// ([`ENGINEER_VIEWS`]) and procedures ([`ENGINEER_PROCEDURES`]), nothing else.
pub fn engineer_grants(database: &str) -> Vec<(String, String)> {
    ENGINEER_VIEWS
        .iter()
        .map(|v| ("SELECT".to_owned(), format!("`{database}`.`{v}`")))
        .chain(ENGINEER_PROCEDURES.iter().map(|p| {
            (
                "EXECUTE".to_owned(),
                format!("PROCEDURE `{database}`.`{p}`"),
            )
        }))
        .collect()
}

/// The tables the migration and the worker read documents (and the schema's state) from.
const SOURCE_TABLES: [&str; 8] = [
    "Customers",
    "Customer_Addresses",
    "Categories",
    "Products",
    "Services",
    "Orders",
    "Order_Items",
    "schema_history",
];

/// Tables the engineer role held privileges on before schema version 9 (it ran the worker),
/// beside [`SOURCE_TABLES`]: revoked by [`apply`], so an upgraded database keeps none of them.
const ENGINEER_FORMER_TABLES: &[&str] = &[
    "customer_sync_queue",
    "product_sync_queue",
    "service_sync_queue",
    "order_sync_queue",
    "sync_dead_letters",
    "sync_home",
    "migration_checkpoints",
    "data_lineage_tracker",
];

/// Creates (or updates) the roles, their grants on the configured database, and the users
/// `alex`, `sarah` and `maria` with their passwords and default roles (any host). Runs on a
/// connection of its own whose statements are never logged (they carry passwords).
pub async fn apply(mariadb: &MariaDbConfig, passwords: &Passwords) -> Result<(), SecurityError> {
    let database = mariadb.database();
    let mut conn = quiet_connection(mariadb).await?;
    let conn = &mut conn;
    let mut steps: Vec<(String, String)> = Vec::new();
    let mut step = |what: &str, sql: String| steps.push((what.to_owned(), sql));
    for role in [
        ADMIN_ROLE,
        ANALYST_ROLE,
        ENGINEER_ROLE,
        WORKER_ROLE,
        APP_ROLE,
    ] {
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
    for (privileges, object) in worker_grants(database) {
        step(
            &format!("grant {privileges} on {object} to the worker role"),
            format!("GRANT {privileges} ON {object} TO {WORKER_ROLE}"),
        );
    }
    for (privileges, object) in app_grants(database) {
        step(
            &format!("grant {privileges} on {object} to the application role"),
            format!("GRANT {privileges} ON {object} TO {APP_ROLE}"),
        );
    }
    for (user, role, password, max_connections) in [
        ("alex", ADMIN_ROLE, &passwords.alex, 0),
        (
            "sarah",
            ANALYST_ROLE,
            &passwords.sarah,
            PERSON_MAX_CONNECTIONS,
        ),
        (
            "maria",
            ENGINEER_ROLE,
            &passwords.maria,
            PERSON_MAX_CONNECTIONS,
        ),
        (
            WORKER_USER,
            WORKER_ROLE,
            &passwords.worker,
            WORKER_MAX_CONNECTIONS,
        ),
    ] {
        // Only the password's hash travels (mysql_native_password): never the password in
        // statement text, process lists or server logs, and nothing to escape.
        let hash = native_password_hash(password.expose());
        step(
            &format!("create user {user}"),
            format!("CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY PASSWORD '{hash}'"),
        );
        step(
            &format!("set the password and connection cap of {user}"),
            format!(
                "ALTER USER '{user}'@'%' IDENTIFIED BY PASSWORD '{hash}' \
                 WITH MAX_USER_CONNECTIONS {max_connections}"
            ),
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
    // What the engineer and the analyst held before version 9 goes, object by object; an
    // object they held nothing on answers "no such grant" (1147), which is fine.
    let former = SOURCE_TABLES
        .iter()
        .chain(ENGINEER_FORMER_TABLES)
        .map(|t| (ENGINEER_ROLE, t))
        .chain(ANALYST_FORMER_VIEWS.iter().map(|v| (ANALYST_ROLE, v)));
    for (role, object) in former {
        let sql = format!("REVOKE ALL PRIVILEGES ON `{database}`.`{object}` FROM {role}");
        match execute_script(conn, &sql).await {
            Ok(()) => {}
            Err(e) if crate::orders::server_error(&e).is_some_and(|(n, _)| n == 1147) => {}
            Err(source) => {
                return Err(SecurityError {
                    step: format!("revoke {role}'s former privileges on {object}"),
                    source,
                });
            }
        }
    }
    Ok(())
}

/// Login names of history loaders start with this. From schema version 12 the triggers take an
/// insert by such a login as history: no stock is taken and nothing is queued for the sync
/// (the rows are copied by the initial migration that follows a load). It is a privilege only
/// the administrator can hand out, since only an account with `CREATE USER` can create such a
/// login, and no session can change the login it authenticated as. Reserved: give no other
/// account a name that starts with it.
pub const HISTORY_LOADER_PREFIX: &str = "aethermart_loader_";

/// The tables a history load writes: a loader may read and insert into these and nothing else.
pub const HISTORY_TABLES: [&str; 8] = [
    "Categories",
    "Customers",
    "Customer_Addresses",
    "Products",
    "Services",
    "Orders",
    "Order_Items",
    "Service_Bookings",
];

/// A history loader account for one load ([`HISTORY_LOADER_PREFIX`] and a random suffix, a
/// random password that only this value holds), created by the administrator on one node and
/// dropped by [`HistoryLoader::drop_account`] when the load ends.
#[derive(Debug)]
pub struct HistoryLoader {
    user: String,
    host: String,
    login: MariaDbConfig,
    admin: MariaDbConfig,
}

impl HistoryLoader {
    /// Creates the account on `node` (the node the load writes to; in a Galera cluster the
    /// account replicates) with the administrator's login of `node`, from the same host that
    /// login matches, allowed `max_connections` at once, with `SELECT, INSERT` on
    /// [`HISTORY_TABLES`] of the configured database.
    pub async fn create(node: &MariaDbConfig, max_connections: u32) -> Result<Self, SecurityError> {
        use rand::Rng;
        let mut admin = quiet_connection(node).await?;
        let host: String = sqlx::query_scalar("SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', -1)")
            .fetch_one(&mut admin)
            .await
            .map_err(|source| SecurityError {
                step: "reading the administrator's host".into(),
                source,
            })?;
        let mut rng = rand::rng();
        let user = format!("{HISTORY_LOADER_PREFIX}{:016x}", rng.random::<u64>());
        let password: String = (0..32)
            .map(|_| char::from(rng.sample(rand::distr::Alphanumeric)))
            .collect();
        // Host patterns are letters, digits and `.%_:-` (an IP, a name, a wildcard); anything
        // else is not quoted into a statement.
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".%_:-".contains(&b))
        {
            return Err(SecurityError {
                step: "reading the administrator's host".into(),
                source: sqlx::Error::Protocol(format!("unexpected host pattern {host:?}")),
            });
        }
        let account = format!("'{user}'@'{host}'");
        let hash = native_password_hash(&password);
        let database = node.database();
        let mut statements = vec![(
            format!("create the history loader {user}"),
            format!(
                "CREATE USER {account} IDENTIFIED BY PASSWORD '{hash}' \
                     WITH MAX_USER_CONNECTIONS {max_connections}"
            ),
        )];
        for table in HISTORY_TABLES {
            statements.push((
                format!("grant SELECT, INSERT on {table} to {user}"),
                format!("GRANT SELECT, INSERT ON `{database}`.`{table}` TO {account}"),
            ));
        }
        let loader = Self {
            login: node.with_login(&user, Secret::new(password)),
            admin: node.clone(),
            user,
            host,
        };
        for (step, sql) in statements {
            if let Err(source) = execute_script(&mut admin, &sql).await {
                let _ = loader.drop_account().await;
                return Err(SecurityError { step, source });
            }
        }
        Ok(loader)
    }

    /// The configuration to connect as the loader (same node and database).
    pub fn login(&self) -> &MariaDbConfig {
        &self.login
    }

    /// The loader's login name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Drops the account (and with it every grant); connections still open keep running
    /// until they close, so close them first.
    pub async fn drop_account(&self) -> Result<(), SecurityError> {
        let mut admin = quiet_connection(&self.admin).await?;
        let sql = format!("DROP USER IF EXISTS '{}'@'{}'", self.user, self.host);
        execute_script(&mut admin, &sql)
            .await
            .map_err(|source| SecurityError {
                step: format!("drop the history loader {}", self.user),
                source,
            })
    }
}

/// A connection to the first node of `mariadb` whose statements are never logged (account
/// statements carry password hashes).
async fn quiet_connection(mariadb: &MariaDbConfig) -> Result<MySqlConnection, SecurityError> {
    use sqlx::{ConnectOptions, Connection};
    let options = mariadb.connect_options().disable_statement_logging();
    MySqlConnection::connect_with(&options)
        .await
        .map_err(|source| SecurityError {
            step: format!("connecting to MariaDB at {}", mariadb.endpoint()),
            source,
        })
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
    fn the_engineer_reads_views_and_calls_procedures_only_and_the_worker_writes_only_pipeline_state()
     {
        for (privileges, object) in engineer_grants("db") {
            let view = privileges == "SELECT"
                && ENGINEER_VIEWS
                    .iter()
                    .any(|v| object.ends_with(&format!("`{v}`")));
            let procedure = privileges == "EXECUTE" && object.starts_with("PROCEDURE ");
            assert!(view || procedure, "{privileges} on {object}");
        }
        for (privileges, object) in worker_grants("db") {
            let writes = privileges.contains("INSERT")
                || privileges.contains("UPDATE")
                || privileges.contains("DELETE");
            let state = object.contains("sync_queue")
                || object.contains("dead_letters")
                || object.contains("sync_home")
                || object.contains("checkpoints")
                || object.contains("stream_positions")
                || object.contains("lineage");
            assert!(!writes || state, "{privileges} on {object}");
        }
    }
}
