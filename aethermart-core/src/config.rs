//! Configuration from the environment, in one place.
//!
//! Every variable the platform reads is named by a `const` here. [`Config::from_env`] reads the
//! process environment; tests call [`Config::from_lookup`] with a map instead of mutating it.
//! Passwords live in [`Secret`], whose `Debug` and `Display` print `***`, and every URL this module
//! shows is redacted the same way.

use mongodb::options::ClientOptions;
use percent_encoding::percent_decode_str;
use sqlx::ConnectOptions;
use sqlx::mysql::MySqlConnectOptions;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// MariaDB connection URL: `mysql://user[:password]@host[:port][,host[:port]…][/database][?options]`.
///
/// Several hosts name the nodes of a cluster (Galera nodes, or a primary and its replicas), in
/// order of preference: writes go to the first healthy node that takes writes (see
/// [`crate::cluster`]).
pub const MARIADB_URL: &str = "AETHERMART_MARIADB_URL";
/// MongoDB connection string: `mongodb[+srv]://[user[:password]@]hosts[/database][?options]`.
pub const MONGODB_URI: &str = "AETHERMART_MONGODB_URI";
/// The original system's MariaDB password variable; the password part of [`MARIADB_URL`].
pub const MARIADB_PASSWORD: &str = "MARIA_DB_PASS";
/// The original system's MongoDB password variable; the password part of [`MONGODB_URI`].
pub const MONGODB_PASSWORD: &str = "MONGO_ADMIN_PASS";
/// Sync worker: changes claimed per batch (`--batch-size`).
pub const SYNC_BATCH_SIZE: &str = "AETHERMART_SYNC_BATCH_SIZE";
/// Sync worker: batches of one queue in flight at once (`--lanes`).
pub const SYNC_LANES: &str = "AETHERMART_SYNC_LANES";
/// Sync worker: milliseconds to wait after a batch that was not full (`--poll-ms`).
pub const SYNC_POLL_MS: &str = "AETHERMART_SYNC_POLL_MS";
/// Sync worker: longest wait in milliseconds while the queues are idle (`--max-idle-ms`).
pub const SYNC_MAX_IDLE_MS: &str = "AETHERMART_SYNC_MAX_IDLE_MS";
/// Sync worker: failed attempts before a change is dead-lettered (`--max-attempts`).
pub const SYNC_MAX_ATTEMPTS: &str = "AETHERMART_SYNC_MAX_ATTEMPTS";
/// Binlog capture: the leader's lease TTL in milliseconds (`--lease-ttl-ms`): a standby takes
/// over this long after the leader stopped renewing.
pub const BINLOG_LEASE_TTL_MS: &str = "AETHERMART_BINLOG_LEASE_TTL_MS";
/// The directory holding the search's embedding model (`scripts/model.sh fetch` puts it in
/// `~/.local/share/aethermart/models/all-MiniLM-L6-v2`, the default).
pub const EMBEDDING_MODEL_DIR: &str = "AETHERMART_EMBEDDING_MODEL_DIR";
/// Database name used when a URL has no path.
pub const DEFAULT_DATABASE: &str = "aethermart";
/// Default MariaDB port.
pub const DEFAULT_MARIADB_PORT: u16 = 3306;
/// How long a connection attempt may take before the server counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the configuration could not be read. Every variant names the variable at fault and never
/// contains a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required variable is not set (or empty).
    #[error("{var} is not set; {hint}")]
    Missing {
        /// The variable.
        var: &'static str,
        /// What it should contain.
        hint: &'static str,
    },
    /// A variable is set but cannot be used.
    #[error("{var} is malformed: {reason}")]
    Malformed {
        /// The variable.
        var: &'static str,
        /// What is wrong (without the password).
        reason: String,
    },
    /// A variable was given both directly and as a file (`<VAR>_FILE`).
    #[error("{var} and {var}_FILE are both set; keep only one")]
    GivenTwice {
        /// The variable.
        var: String,
    },
    /// `<VAR>_FILE` names a file that cannot be read.
    #[error("{var}_FILE names {path}, which cannot be read: {reason}")]
    UnreadableFile {
        /// The variable (the file variable is this plus `_FILE`).
        var: String,
        /// The file.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
    /// The password was given both inside the URL and in its own variable.
    #[error("the password is given twice, in {url_var} and in {password_var}; keep only one")]
    PasswordTwice {
        /// The URL variable.
        url_var: &'static str,
        /// The password variable.
        password_var: &'static str,
    },
}

/// A password or other secret. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself: pass it to a driver, never to a log or an error.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Everything the platform needs to reach both stores.
#[derive(Debug, Clone)]
pub struct Config {
    /// The relational store.
    pub mariadb: MariaDbConfig,
    /// The document store.
    pub mongodb: MongoConfig,
}

impl Config {
    /// The variables [`Config::from_env`] reads; each may also come from a file
    /// (`<VAR>_FILE`, see [`env_or_file`]).
    pub const VARIABLES: [&'static str; 4] =
        [MARIADB_URL, MONGODB_URI, MARIADB_PASSWORD, MONGODB_PASSWORD];

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(env_snapshot(&Self::VARIABLES)?)
    }

    /// Reads variables through `lookup` (a map in tests, the environment in production).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            mariadb: MariaDbConfig::from_lookup(&lookup)?,
            mongodb: MongoConfig::from_lookup(&lookup)?,
        })
    }
}

/// Reads one variable from the process environment, or from the file its `<VAR>_FILE` names;
/// unset, empty and non-UTF-8 count as missing, and so do a conflict or an unreadable file (use
/// [`env_snapshot`] to have those named as errors).
pub fn env_lookup(var: &str) -> Option<String> {
    let raw = |v: &str| std::env::var(v).ok();
    env_or_file(&raw, var).ok().flatten()
}

/// `var` through `lookup`, or else the contents of the file named by `<var>_FILE` (one trailing
/// line break removed; for secrets kept in files, such as systemd credentials or mounted
/// secrets). Both set is an error naming both, an unreadable file one naming the file (never
/// its contents). Empty counts as unset.
pub fn env_or_file(
    lookup: &impl Fn(&str) -> Option<String>,
    var: &str,
) -> Result<Option<String>, ConfigError> {
    let value = lookup(var).filter(|v| !v.is_empty());
    let Some(path) = lookup(&format!("{var}_FILE")).filter(|v| !v.is_empty()) else {
        return Ok(value);
    };
    if value.is_some() {
        return Err(ConfigError::GivenTwice {
            var: var.to_owned(),
        });
    }
    let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::UnreadableFile {
        var: var.to_owned(),
        path: path.clone(),
        reason: e.kind().to_string(),
    })?;
    let text = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    Ok(Some(text.to_owned()).filter(|t| !t.is_empty()))
}

/// `vars` read once from the process environment (each from its variable or its file, see
/// [`env_or_file`]), as a lookup for `from_lookup`. Fails on the first given both ways or whose
/// file cannot be read.
pub fn env_snapshot(
    vars: &[&'static str],
) -> Result<impl Fn(&str) -> Option<String> + use<>, ConfigError> {
    let raw = |v: &str| std::env::var(v).ok();
    let mut values = std::collections::HashMap::new();
    for var in vars {
        if let Some(value) = env_or_file(&raw, var)? {
            values.insert(*var, value);
        }
    }
    Ok(move |var: &str| values.get(var).cloned())
}

fn required(
    lookup: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    hint: &'static str,
) -> Result<String, ConfigError> {
    match lookup(var) {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
        _ => Err(ConfigError::Missing { var, hint }),
    }
}

fn optional(lookup: &impl Fn(&str) -> Option<String>, var: &str) -> Option<String> {
    lookup(var).filter(|v| !v.is_empty())
}

/// Checks a database name so it can be quoted into DDL safely.
fn database_name(var: &'static str, name: &str) -> Result<String, ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(name.to_owned())
    } else {
        Err(ConfigError::Malformed {
            var,
            reason: format!(
                "database name {name:?} must be 1-64 characters of letters, digits and '_'"
            ),
        })
    }
}

/// Where and how to reach MariaDB: one server, or the nodes of a cluster in order of preference.
#[derive(Debug, Clone)]
pub struct MariaDbConfig {
    /// At least one; `url_without_password` names the first.
    nodes: Vec<Node>,
    user: String,
    password: Option<Secret>,
    database: String,
    /// The URL without its password, used to build driver options (keeps query options).
    url_without_password: url::Url,
}

impl MariaDbConfig {
    /// Reads [`MARIADB_URL`] and [`MARIADB_PASSWORD`] from the process environment, each also
    /// from a file (`<VAR>_FILE`, see [`env_or_file`]).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(env_snapshot(&[MARIADB_URL, MARIADB_PASSWORD])?)
    }

    /// Reads [`MARIADB_URL`] and, for the password, [`MARIADB_PASSWORD`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let raw = required(
            &lookup,
            MARIADB_URL,
            "set it to mysql://USER@HOST:PORT/DATABASE (see README, Configuration)",
        )?;
        let malformed = |reason: String| ConfigError::Malformed {
            var: MARIADB_URL,
            reason,
        };
        let (raw, more_hosts) = split_host_list(&raw);
        let mut url = url::Url::parse(&raw).map_err(|e| {
            malformed(format!(
                "not a URL ({e}); expected mysql://USER@HOST:PORT/DATABASE"
            ))
        })?;
        if !matches!(url.scheme(), "mysql" | "mariadb") {
            return Err(malformed(format!(
                "scheme {:?} is not mysql:// or mariadb://",
                url.scheme()
            )));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| malformed("no host".into()))?
            .to_owned();
        let port = url.port().unwrap_or(DEFAULT_MARIADB_PORT);
        let mut nodes = vec![Node { host, port }];
        for entry in more_hosts {
            let node = Node::parse(&entry).ok_or_else(|| {
                malformed(format!(
                    "host {entry:?} in the host list is not HOST or HOST:PORT"
                ))
            })?;
            if nodes.contains(&node) {
                return Err(malformed(format!("host {entry:?} is listed twice")));
            }
            nodes.push(node);
        }
        let user = percent_decode_str(url.username())
            .decode_utf8()
            .map_err(|_| malformed("user name is not valid UTF-8".into()))?
            .into_owned();
        if user.is_empty() {
            return Err(malformed("no user name (mysql://USER@HOST/...)".into()));
        }
        let in_url = url
            .password()
            .map(|p| {
                percent_decode_str(p)
                    .decode_utf8()
                    .map(|p| Secret::new(p.into_owned()))
                    .map_err(|_| malformed("password is not valid UTF-8".into()))
            })
            .transpose()?;
        let password = merge_password(
            in_url,
            optional(&lookup, MARIADB_PASSWORD),
            MARIADB_URL,
            MARIADB_PASSWORD,
        )?;
        let path = url.path().trim_start_matches('/');
        let database = if path.is_empty() {
            DEFAULT_DATABASE.to_owned()
        } else {
            database_name(MARIADB_URL, path)?
        };
        // Cannot fail: the URL has a host, so it can carry a password.
        let _ = url.set_password(None);
        url.set_scheme("mysql")
            .map_err(|()| malformed("cannot use scheme".into()))?;
        MySqlConnectOptions::from_str(url.as_str())
            .map_err(|e| malformed(format!("rejected by the driver: {e}")))?;
        Ok(Self {
            nodes,
            user,
            password,
            database,
            url_without_password: url,
        })
    }

    /// `host:port` (`host:port,host:port…` for a cluster), for messages.
    pub fn endpoint(&self) -> String {
        let endpoints: Vec<String> = self.nodes.iter().map(Node::endpoint).collect();
        endpoints.join(",")
    }

    /// True when the URL names several nodes.
    pub fn is_cluster(&self) -> bool {
        self.nodes.len() > 1
    }

    /// One configuration per node, in the configured order, each with this login and database.
    pub fn nodes(&self) -> Vec<MariaDbConfig> {
        self.nodes
            .iter()
            .map(|node| {
                let mut url = self.url_without_password.clone();
                // Cannot fail: the URL has a host, and the node was parsed as one.
                let _ = url.set_host(Some(&node.host));
                let _ = url.set_port(Some(node.port));
                Self {
                    nodes: vec![node.clone()],
                    url_without_password: url,
                    ..self.clone()
                }
            })
            .collect()
    }

    /// The database (schema) the platform works in.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The login user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The same server and user, another database (tests use one database each).
    pub fn with_database(&self, database: &str) -> Result<Self, ConfigError> {
        let database = database_name(MARIADB_URL, database)?;
        let mut url = self.url_without_password.clone();
        url.set_path(&database);
        Ok(Self {
            database,
            url_without_password: url,
            ..self.clone()
        })
    }

    /// The same server, another login (e.g. `maria` for least-privilege jobs).
    pub fn with_login(&self, user: &str, password: Secret) -> Self {
        let mut url = self.url_without_password.clone();
        // Cannot fail: the URL has a host.
        let _ = url.set_username(user);
        Self {
            user: user.to_owned(),
            password: Some(password),
            url_without_password: url,
            ..self.clone()
        }
    }

    /// Driver options with the password set, connected to [`Self::database`].
    ///
    /// The driver's `Debug` of these options shows the password: never log them.
    pub(crate) fn connect_options(&self) -> MySqlConnectOptions {
        self.server_options().database(&self.database)
    }

    /// Driver options with the password set and no default database (to create or drop it).
    pub(crate) fn server_options(&self) -> MySqlConnectOptions {
        let mut url = self.url_without_password.clone();
        url.set_path("");
        // Validated in `from_lookup`; the path change cannot make it invalid.
        let options = MySqlConnectOptions::from_str(url.as_str())
            .unwrap_or_else(|_| {
                MySqlConnectOptions::new()
                    .host(&self.nodes[0].host)
                    .port(self.nodes[0].port)
            })
            .username(&self.user)
            .charset("utf8mb4")
            // A statement over a second is worth knowing about, not a warning on every command's
            // terminal (the worker logs `info`, the CLI `warn`).
            .log_slow_statements(log::LevelFilter::Info, Duration::from_secs(1));
        match &self.password {
            Some(p) => options.password(p.expose()),
            None => options,
        }
    }
}

impl MariaDbConfig {
    /// Options for a replication connection (binlog capture) to the first node, with the
    /// password and the URL's `ssl-mode`/`ssl-ca` (`REQUIRED`: encrypted; `VERIFY_CA`: and the
    /// certificate checked against `ssl-ca`; `VERIFY_IDENTITY`: and the host name too;
    /// `DISABLED`, `PREFERRED` or none: plain, as on a local socket-like link).
    ///
    /// The driver's `Debug` of these options shows the password: never log them.
    pub(crate) fn replication_options(&self) -> mysql_async::Opts {
        let query = |name: &str| {
            self.url_without_password
                .query_pairs()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.into_owned())
        };
        let mode = query("ssl-mode")
            .or_else(|| query("sslmode"))
            .unwrap_or_default()
            .to_ascii_uppercase();
        let tls = match mode.as_str() {
            "REQUIRED" | "VERIFY_CA" | "VERIFY_IDENTITY" => {
                let mut tls = mysql_async::SslOpts::default()
                    .with_danger_accept_invalid_certs(mode == "REQUIRED")
                    .with_danger_skip_domain_validation(mode != "VERIFY_IDENTITY");
                if let Some(ca) = query("ssl-ca") {
                    tls = tls.with_root_certs(vec![std::path::PathBuf::from(ca).into()]);
                }
                Some(tls)
            }
            _ => None,
        };
        mysql_async::OptsBuilder::default()
            .ip_or_hostname(self.nodes[0].host.clone())
            .tcp_port(self.nodes[0].port)
            .user(Some(self.user.clone()))
            .pass(self.password.as_ref().map(|p| p.expose().to_owned()))
            .prefer_socket(false)
            .ssl_opts(tls)
            .into()
    }
}

impl fmt::Display for MariaDbConfig {
    /// `mysql://user:***@host:port/database`: safe to log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pw = if self.password.is_some() { ":***" } else { "" };
        write!(
            f,
            "mysql://{}{}@{}/{}",
            self.user,
            pw,
            self.endpoint(),
            self.database
        )
    }
}

/// One MariaDB server: host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    host: String,
    port: u16,
}

impl Node {
    /// `HOST`, `HOST:PORT` or `[IPv6]:PORT`.
    fn parse(entry: &str) -> Option<Self> {
        let url = url::Url::parse(&format!("mysql://{entry}")).ok()?;
        let host = url.host_str().filter(|h| !h.is_empty())?.to_owned();
        let only_host = url.path().is_empty() && url.username().is_empty() && url.query().is_none();
        only_host.then(|| Self {
            host,
            port: url.port().unwrap_or(DEFAULT_MARIADB_PORT),
        })
    }

    fn endpoint(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Splits `scheme://[userinfo@]h1[:p1],h2[:p2]…/rest` into the URL with the first host only
/// (which the `url` crate parses) and the further hosts.
fn split_host_list(raw: &str) -> (String, Vec<String>) {
    let Some((scheme, rest)) = raw.split_once("://") else {
        return (raw.to_owned(), Vec::new());
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let hosts_start = authority.rfind('@').map_or(0, |at| at + 1);
    let (userinfo, hosts) = authority.split_at(hosts_start);
    let mut hosts = hosts.split(',');
    let first = hosts.next().unwrap_or_default();
    let more = hosts.map(|h| h.trim().to_owned()).collect();
    (format!("{scheme}://{userinfo}{first}{tail}"), more)
}

fn merge_password(
    in_url: Option<Secret>,
    in_var: Option<String>,
    url_var: &'static str,
    password_var: &'static str,
) -> Result<Option<Secret>, ConfigError> {
    match (in_url, in_var) {
        (Some(_), Some(_)) => Err(ConfigError::PasswordTwice {
            url_var,
            password_var,
        }),
        (Some(p), None) => Ok(Some(p)),
        (None, Some(p)) => Ok(Some(Secret::new(p))),
        (None, None) => Ok(None),
    }
}

/// Where and how to reach MongoDB.
#[derive(Debug, Clone)]
pub struct MongoConfig {
    /// The connection string with the password cut out.
    uri_without_password: String,
    /// The host list as written (`h1:p1,h2:p2`), for messages.
    hosts: String,
    user: Option<String>,
    password: Option<Secret>,
    database: String,
}

impl MongoConfig {
    /// Reads [`MONGODB_URI`] and, for the password, [`MONGODB_PASSWORD`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let raw = required(
            &lookup,
            MONGODB_URI,
            "set it to mongodb://HOST:PORT/DATABASE (see README, Configuration)",
        )?;
        let malformed = |reason: String| ConfigError::Malformed {
            var: MONGODB_URI,
            reason,
        };
        let (scheme, rest) = raw
            .split_once("://")
            .filter(|(s, _)| matches!(*s, "mongodb" | "mongodb+srv"))
            .ok_or_else(|| malformed("must start with mongodb:// or mongodb+srv://".into()))?;
        // The userinfo ends at the last '@' (a password may hold '/', '?' or '@' unescaped);
        // the host list ends at the first '/' or '?' after it.
        let (userinfo, after) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let hosts_end = after.find(['/', '?']).unwrap_or(after.len());
        let (hosts, tail) = after.split_at(hosts_end);
        if hosts.is_empty() {
            return Err(malformed("no host".into()));
        }
        let decode = |s: &str, what: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| malformed(format!("{what} is not valid UTF-8")))
        };
        let (user, in_uri) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((name, pw)) => (Some(name), Some(Secret::new(decode(pw, "password")?))),
                None => (Some(u), None),
            },
        };
        let password = merge_password(
            in_uri,
            optional(&lookup, MONGODB_PASSWORD),
            MONGODB_URI,
            MONGODB_PASSWORD,
        )?;
        if password.is_some() && user.is_none() {
            return Err(malformed(format!(
                "a password is given ({MONGODB_PASSWORD}) but the URI names no user (mongodb://USER@HOST/...)"
            )));
        }
        let (path, _query) = tail.split_once('?').unwrap_or((tail, ""));
        let path = path.trim_start_matches('/');
        let database = if path.is_empty() {
            DEFAULT_DATABASE.to_owned()
        } else {
            database_name(MONGODB_URI, &decode(path, "database name")?)?
        };
        let uri_without_password = match user {
            Some(u) => format!("{scheme}://{u}@{hosts}{tail}"),
            None => format!("{scheme}://{hosts}{tail}"),
        };
        Ok(Self {
            uri_without_password,
            hosts: hosts.to_owned(),
            user: user.map(|u| decode(u, "user name")).transpose()?,
            password,
            database,
        })
    }

    /// The host list (`host:port[,host:port…]`), for messages.
    pub fn endpoint(&self) -> &str {
        &self.hosts
    }

    /// The database the collections live in.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The same server, another database (tests use one database each).
    pub fn with_database(&self, database: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            database: database_name(MONGODB_URI, database)?,
            ..self.clone()
        })
    }

    /// Driver options with the password set and short, explicit timeouts.
    pub async fn client_options(&self) -> Result<ClientOptions, ConfigError> {
        let mut options = ClientOptions::parse(&self.uri_without_password)
            .await
            .map_err(|e| ConfigError::Malformed {
                var: MONGODB_URI,
                reason: format!("rejected by the driver: {}", e.kind),
            })?;
        if let (Some(credential), Some(password)) = (options.credential.as_mut(), &self.password) {
            credential.password = Some(password.expose().to_owned());
        }
        options
            .app_name
            .get_or_insert_with(|| "aethermart".to_owned());
        options
            .server_selection_timeout
            .get_or_insert(CONNECT_TIMEOUT);
        options.connect_timeout.get_or_insert(CONNECT_TIMEOUT);
        Ok(options)
    }
}

impl fmt::Display for MongoConfig {
    /// `mongodb://user:***@hosts/database`: safe to log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let login = match (&self.user, &self.password) {
            (Some(u), Some(_)) => format!("{u}:***@"),
            (Some(u), None) => format!("{u}@"),
            _ => String::new(),
        };
        write!(f, "mongodb://{login}{}/{}", self.hosts, self.database)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const PASSWORD: &str = "s3cr3t-Pa55";

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn reads_both_urls_with_passwords_in_separate_variables() {
        let cfg = Config::from_lookup(lookup(&[
            (MARIADB_URL, "mysql://maria@db.internal:3307/shop"),
            (MARIADB_PASSWORD, PASSWORD),
            (
                MONGODB_URI,
                "mongodb://admin@m1:27017,m2:27017/docs?replicaSet=rs0",
            ),
            (MONGODB_PASSWORD, PASSWORD),
        ]))
        .unwrap();
        assert_eq!(cfg.mariadb.endpoint(), "db.internal:3307");
        assert_eq!(cfg.mariadb.database(), "shop");
        assert_eq!(cfg.mariadb.user(), "maria");
        assert_eq!(cfg.mongodb.endpoint(), "m1:27017,m2:27017");
        assert_eq!(cfg.mongodb.database(), "docs");
        assert_eq!(
            cfg.mariadb.to_string(),
            "mysql://maria:***@db.internal:3307/shop"
        );
        assert_eq!(
            cfg.mongodb.to_string(),
            "mongodb://admin:***@m1:27017,m2:27017/docs"
        );
    }

    #[test]
    fn a_secret_may_come_from_a_file_but_not_both_ways() {
        let dir = std::env::temp_dir().join(format!("amt_secret_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("maria_db_pass");
        std::fs::write(&file, "From-F1le\n").unwrap();
        let path = file.to_str().unwrap();
        let file_var = format!("{MARIADB_PASSWORD}_FILE");
        let from_file = lookup(&[(file_var.as_str(), path)]);
        assert_eq!(
            env_or_file(&from_file, MARIADB_PASSWORD)
                .unwrap()
                .as_deref(),
            Some("From-F1le"),
            "one trailing line break dropped"
        );
        let both = lookup(&[(MARIADB_PASSWORD, "direct"), (file_var.as_str(), path)]);
        let err = env_or_file(&both, MARIADB_PASSWORD)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("MARIA_DB_PASS and MARIA_DB_PASS_FILE are both set"),
            "{err}"
        );
        let missing = dir.join("nope");
        let gone = lookup(&[(file_var.as_str(), missing.to_str().unwrap())]);
        let err = env_or_file(&gone, MARIADB_PASSWORD)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("MARIA_DB_PASS_FILE names") && err.contains("nope"),
            "{err}"
        );
        assert!(!err.contains("From-F1le"));
        let plain = lookup(&[(MARIADB_PASSWORD, "direct")]);
        assert_eq!(
            env_or_file(&plain, MARIADB_PASSWORD).unwrap().as_deref(),
            Some("direct")
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn database_defaults_to_aethermart() {
        let cfg = Config::from_lookup(lookup(&[
            (MARIADB_URL, "mysql://root@127.0.0.1"),
            (
                MONGODB_URI,
                "mongodb://127.0.0.1:27017/?directConnection=true",
            ),
        ]))
        .unwrap();
        assert_eq!(cfg.mariadb.database(), DEFAULT_DATABASE);
        assert_eq!(cfg.mariadb.endpoint(), "127.0.0.1:3306");
        assert_eq!(cfg.mongodb.database(), DEFAULT_DATABASE);
    }

    #[test]
    fn missing_and_malformed_values_name_the_variable() {
        let err = Config::from_lookup(lookup(&[])).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Missing {
                    var: MARIADB_URL,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains(MARIADB_URL));

        let err = Config::from_lookup(lookup(&[(MARIADB_URL, "mysql://u@h/db")])).unwrap_err();
        assert!(err.to_string().starts_with(MONGODB_URI), "{err}");

        for (bad, why) in [
            ("postgres://u@h/db", "scheme"),
            ("mysql://h/db", "user"),
            ("mysql://u@h/bad-name", "database name"),
            ("not a url", "not a URL"),
        ] {
            let err = MariaDbConfig::from_lookup(lookup(&[(MARIADB_URL, bad)])).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains(MARIADB_URL) && msg.contains(why),
                "{bad}: {msg}"
            );
        }
        for (bad, why) in [
            ("http://h", "mongodb://"),
            ("mongodb:///db", "no host"),
            ("mongodb://h/a.b", "database name"),
        ] {
            let err = MongoConfig::from_lookup(lookup(&[(MONGODB_URI, bad)])).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains(MONGODB_URI) && msg.contains(why),
                "{bad}: {msg}"
            );
        }
    }

    #[test]
    fn password_given_twice_or_without_user_is_refused() {
        let err = MariaDbConfig::from_lookup(lookup(&[
            (MARIADB_URL, &format!("mysql://u:{PASSWORD}@h/db")),
            (MARIADB_PASSWORD, PASSWORD),
        ]))
        .unwrap_err();
        assert_eq!(
            err,
            ConfigError::PasswordTwice {
                url_var: MARIADB_URL,
                password_var: MARIADB_PASSWORD
            }
        );
        let err = MongoConfig::from_lookup(lookup(&[
            (MONGODB_URI, "mongodb://h:1/db"),
            (MONGODB_PASSWORD, PASSWORD),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("names no user"), "{err}");
        assert!(!err.to_string().contains(PASSWORD));
    }

    /// Pins the rule that no password reaches `Debug`, `Display` or an error message.
    #[test]
    fn passwords_never_appear_in_debug_display_or_errors() {
        let encoded = "p%40ss%3Aw0rd"; // p@ss:w0rd
        let cfg = Config::from_lookup(lookup(&[
            (
                MARIADB_URL,
                &format!("mysql://alex:{encoded}@127.0.0.1:3306/shop"),
            ),
            (
                MONGODB_URI,
                &format!("mongodb://admin:{encoded}@127.0.0.1:27017/shop"),
            ),
        ]))
        .unwrap();
        let shown = format!("{cfg:?} {} {}", cfg.mariadb, cfg.mongodb);
        for secret in ["p@ss:w0rd", encoded, "w0rd"] {
            assert!(!shown.contains(secret), "{secret} leaked in: {shown}");
        }
        assert_eq!(format!("{:?}", Secret::new(PASSWORD)), "Secret(***)");

        let cfg = MariaDbConfig::from_lookup(lookup(&[
            (MARIADB_URL, "mysql://alex@127.0.0.1/bad-db"),
            (MARIADB_PASSWORD, PASSWORD),
        ]));
        let shown = format!("{cfg:?}");
        assert!(!shown.contains(PASSWORD), "{shown}");
    }

    /// Pins a review finding: an unescaped '/' or '?' in a MongoDB password once split the URI
    /// inside the password and echoed a piece of it as the "database name".
    #[test]
    fn a_mongodb_password_with_slash_or_question_mark_stays_whole_and_hidden() {
        let cfg = MongoConfig::from_lookup(lookup(&[(
            MONGODB_URI,
            "mongodb://admin:pa/ss?w@h1:27017/docs?tls=true",
        )]))
        .unwrap();
        assert_eq!(cfg.endpoint(), "h1:27017");
        assert_eq!(cfg.database(), "docs");
        assert_eq!(cfg.password.as_ref().map(Secret::expose), Some("pa/ss?w"));
        assert!(!format!("{cfg:?} {cfg}").contains("pa/ss"));
    }

    #[tokio::test]
    async fn driver_options_carry_the_password_from_the_variable() {
        let cfg = MongoConfig::from_lookup(lookup(&[
            (
                MONGODB_URI,
                "mongodb://admin@127.0.0.1:27017/docs?authSource=admin",
            ),
            (MONGODB_PASSWORD, PASSWORD),
        ]))
        .unwrap();
        let options = cfg.client_options().await.unwrap();
        let credential = options.credential.expect("credential from the URI");
        assert_eq!(credential.username.as_deref(), Some("admin"));
        assert_eq!(credential.password.as_deref(), Some(PASSWORD));
        assert_eq!(options.server_selection_timeout, Some(CONNECT_TIMEOUT));
    }

    #[test]
    fn a_host_list_names_the_nodes_of_a_cluster_in_order() {
        let cfg = MariaDbConfig::from_lookup(lookup(&[
            (
                MARIADB_URL,
                "mysql://app@10.0.0.1:3307,10.0.0.2,[fd00::3]:3309/shop?ssl-mode=disabled",
            ),
            (MARIADB_PASSWORD, PASSWORD),
        ]))
        .unwrap();
        assert!(cfg.is_cluster());
        assert_eq!(cfg.endpoint(), "10.0.0.1:3307,10.0.0.2:3306,[fd00::3]:3309");
        let nodes = cfg.nodes();
        let endpoints: Vec<String> = nodes.iter().map(MariaDbConfig::endpoint).collect();
        assert_eq!(
            endpoints,
            ["10.0.0.1:3307", "10.0.0.2:3306", "[fd00::3]:3309"]
        );
        for node in &nodes {
            assert!(!node.is_cluster());
            assert_eq!((node.user(), node.database()), ("app", "shop"));
            assert_eq!(node.password.as_ref().map(Secret::expose), Some(PASSWORD));
        }
        assert_eq!(nodes[1].url_without_password.host_str(), Some("10.0.0.2"));
        assert_eq!(
            nodes[1].url_without_password.query(),
            Some("ssl-mode=disabled")
        );
        let single = MariaDbConfig::from_lookup(lookup(&[(MARIADB_URL, "mysql://app@db1/shop")]));
        assert!(!single.unwrap().is_cluster());
    }

    #[test]
    fn a_bad_or_repeated_host_in_the_list_is_named() {
        for (url, expected) in [
            ("mysql://app@h1:3306,h2:notaport/shop", "\"h2:notaport\""),
            ("mysql://app@h1:3306,,h3/shop", "\"\""),
            ("mysql://app@h1:3306,h1/shop", "\"h1\" is listed twice"),
        ] {
            let err = MariaDbConfig::from_lookup(lookup(&[(MARIADB_URL, url)])).unwrap_err();
            let shown = err.to_string();
            assert!(
                shown.contains(MARIADB_URL) && shown.contains(expected),
                "{url}: {shown}"
            );
        }
    }
}
