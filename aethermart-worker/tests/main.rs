//! The `aethermart-worker` binary end to end: its help, its status page in a real browser, and
//! the deploy kit (systemd unit, Prometheus alerts, Grafana dashboard) checked against what the
//! worker really exports. Needs the local servers (`scripts/test.sh`), `promtool`,
//! `systemd-analyze` and `chromium` (`scripts/test.sh` installs them); fails without them.

use aethermart_core::config::{MariaDbConfig, MongoConfig};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_aethermart-worker");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn env_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run scripts/test.sh or eval \"$(scripts/services.sh env)\"")
    })
}

/// Runs a tool the suite needs; a missing tool fails the test with the package to install.
fn tool(program: &str, package: &str, args: &[&str], dir: &Path) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} must be installed (Debian package {package}; scripts/test.sh installs it): {e}")
        })
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn help() -> String {
    let out = Command::new(BIN)
        .arg("--help")
        .output()
        .expect("run the worker");
    assert!(out.status.success(), "{}", text(&out));
    text(&out)
}

#[test]
fn the_help_names_every_variable_the_worker_reads() {
    let help = help();
    for var in [
        "AETHERMART_MARIADB_URL",
        "AETHERMART_MONGODB_URI",
        "MARIA_DB_PASS",
        "MONGO_ADMIN_PASS",
        "_FILE",
        "AETHERMART_LOG",
        "AETHERMART_LOG_FORMAT",
        "AETHERMART_METRICS_ADDR",
        "AETHERMART_SYNC_BATCH_SIZE",
        "AETHERMART_SYNC_LANES",
        "AETHERMART_SYNC_POLL_MS",
        "AETHERMART_SYNC_MAX_IDLE_MS",
        "AETHERMART_SYNC_MAX_ATTEMPTS",
        "AETHERMART_BINLOG_LEASE_TTL_MS",
    ] {
        assert!(help.contains(var), "--help does not name {var}:\n{help}");
    }
}

/// A worker process on fresh databases of its own, stopped (SIGTERM) when dropped.
struct Worker {
    child: Child,
    /// Drops the databases when dropped (the first worker of a test does).
    owner: bool,
    addr: String,
    db: String,
    mariadb: MariaDbConfig,
    mongodb: MongoConfig,
}

impl Worker {
    /// A worker on fresh databases `amt_worker_<pid>_<test>`, the schema applied.
    fn start(test: &str) -> Self {
        let worker = Self::spawn(&Self::prepare(test));
        worker.until_healthy();
        worker
    }

    /// The fresh databases of a worker of `test`, the schema applied; their name.
    fn prepare(test: &str) -> String {
        let db = format!("amt_worker_{}_{test}", std::process::id());
        let (mariadb, _) = configs(&db);
        block_on(async {
            use aethermart_core::schema::{MariaDbSchema, SchemaApplier};
            MariaDbSchema::new(mariadb)
                .apply()
                .await
                .expect("the schema applies");
        });
        db
    }

    /// Another worker process on the same databases as `self`.
    fn another(&self) -> Self {
        let mut worker = Self::spawn(&self.db);
        worker.owner = false;
        worker.until_healthy();
        worker
    }

    /// Kills the process with SIGKILL (no batch finished, nothing flushed).
    fn kill_9(&mut self) {
        self.child.kill().expect("SIGKILL the worker");
        let _ = self.child.wait();
    }

    fn until_healthy(&self) {
        let started = Instant::now();
        while get(&self.addr, "/healthz").map(|r| r.0) != Some(200) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the worker did not serve /healthz within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts a worker process on databases `db` (created by MariaDB's schema apply).
    fn spawn(db: &str) -> Self {
        let db = db.to_owned();
        let (mariadb, mongodb) = configs(&db);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(BIN)
            .env(
                "AETHERMART_MARIADB_URL",
                with_db(&env_var("AETHERMART_MARIADB_URL"), &db),
            )
            .env(
                "AETHERMART_MONGODB_URI",
                with_db(&env_var("AETHERMART_MONGODB_URI"), &db),
            )
            .env("AETHERMART_METRICS_ADDR", &addr)
            .env("AETHERMART_BINLOG_LEASE_TTL_MS", lease_ttl_ms().to_string())
            .env("AETHERMART_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the worker");
        Self {
            child,
            addr,
            db,
            mariadb,
            mongodb,
            owner: true,
        }
    }

    fn metrics(&self) -> String {
        get(&self.addr, "/metrics").expect("/metrics answers").1
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the process.
    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIG{signal} to the worker");
    }

    /// Changes applied by this process, all queues.
    fn applied(&self) -> f64 {
        sum_of(&self.metrics(), "aethermart_sync_changes_applied_total{")
    }

    /// True while this worker holds the binlog lease (per its /metrics).
    fn leads(&self) -> bool {
        self.sample("aethermart_sync_binlog_leader") == 1.0
    }

    /// The value of one sample line of /metrics (`name{labels}`), 0 when absent.
    fn sample(&self, series: &str) -> f64 {
        self.metrics()
            .lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
        if !self.owner {
            return;
        }
        let (mariadb, mongodb, db) = (self.mariadb.clone(), self.mongodb.clone(), self.db.clone());
        block_on(async move {
            if let Ok(pool) = aethermart_core::connect::node_pool(
                &mariadb,
                aethermart_core::connect::PoolSize { max: 1 },
            )
            .await
            {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{db}`"))
                    .execute(&pool)
                    .await;
            }
            if let Ok(mongo) = aethermart_core::connect::mongodb_database(&mongodb).await {
                let _ = mongo.drop().await;
            }
        });
    }
}

/// The sum of the samples whose line starts with `prefix`.
fn sum_of(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The binlog workers' lease TTL in these tests: 3 s, or `AETHERMART_TEST_LEASE_TTL_MS` (e.g.
/// 10000, the worker's default, to measure the failover as deployed). A standby takes over
/// this long after the leader's last renewal.
fn lease_ttl_ms() -> u64 {
    std::env::var("AETHERMART_TEST_LEASE_TTL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000)
}

/// Both stores' configuration (from the environment) with database `db`.
fn configs(db: &str) -> (MariaDbConfig, MongoConfig) {
    let mariadb = MariaDbConfig::from_env()
        .expect("AETHERMART_MARIADB_URL (scripts/services.sh env)")
        .with_database(db)
        .expect("a valid database name");
    let mongodb = MongoConfig::from_lookup(aethermart_core::config::env_lookup)
        .expect("AETHERMART_MONGODB_URI (scripts/services.sh env)")
        .with_database(db)
        .expect("a valid database name");
    (mariadb, mongodb)
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// The URL with its database (path) replaced, query kept.
fn with_db(url: &str, db: &str) -> String {
    let (address, query) = url.split_once('?').unwrap_or((url, ""));
    let (scheme, rest) = address.split_once("://").expect("a URL");
    let hosts = rest.split_once('/').map_or(rest, |(hosts, _)| hosts);
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{scheme}://{hosts}/{db}{query}")
}

/// `GET path`: status and body, or `None` when nothing answers.
fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// Metric names a scrape shows (`# TYPE` lines), with the sample suffixes of their types.
fn exported_names(metrics: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in metrics.lines() {
        let mut parts = line.split_whitespace();
        if (parts.next(), parts.next()) != (Some("#"), Some("TYPE")) {
            continue;
        }
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_sum", "_count", "_created"],
            _ => &[""],
        };
        for suffix in suffixes {
            names.insert(format!("{name}{suffix}"));
        }
    }
    names
}

/// The platform's metric names a PromQL text uses (`aethermart_*`, `process_*`).
fn metric_names_in(promql: &str) -> BTreeSet<String> {
    promql
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with("aethermart_") || w.starts_with("process_"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_deploy_kit_checks_out_against_what_the_worker_exports() {
    let deploy = repo().join("deploy");
    let prometheus = deploy.join("prometheus");

    // Alert rules: valid, and their unit tests pass (each alert fires and stays quiet).
    for args in [
        &["check", "rules", "aethermart-alerts.yml"][..],
        &["test", "rules", "aethermart-alerts.test.yml"],
        &["check", "config", "scrape.yml"],
    ] {
        let out = tool("promtool", "prometheus", args, &prometheus);
        assert!(out.status.success(), "promtool {args:?}:\n{}", text(&out));
    }

    // The systemd unit: valid (with a stand-in executable), and hardened.
    let unit = std::fs::read_to_string(deploy.join("systemd/aethermart-worker.service")).unwrap();
    let scratch = std::env::temp_dir().join(format!("amt_unit_{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let copy = scratch.join("aethermart-worker.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/aethermart-worker", "/bin/true"),
    )
    .unwrap();
    let copy_name = copy.to_str().unwrap();
    let out = tool(
        "systemd-analyze",
        "systemd",
        &["verify", copy_name],
        &scratch,
    );
    assert!(
        out.status.success(),
        "systemd-analyze verify:\n{}",
        text(&out)
    );
    let out = tool(
        "systemd-analyze",
        "systemd",
        &["security", "--offline=true", "--no-pager", copy_name],
        &scratch,
    );
    let report = text(&out);
    let exposure: f64 = report
        .lines()
        .find_map(|l| l.split("Overall exposure level for").nth(1))
        .and_then(|rest| {
            rest.split(':')
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    assert!(exposure <= 2.0, "exposure {exposure} above 2.0:\n{report}");
    std::fs::remove_dir_all(&scratch).ok();

    // The environment template sets only variables the worker reads.
    let help = help();
    let template = std::fs::read_to_string(deploy.join("systemd/worker.env.example")).unwrap();
    for line in template
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
    {
        let var = line.split('=').next().unwrap().trim();
        assert!(
            help.contains(var),
            "worker.env.example sets {var}, which the worker does not read"
        );
    }
    for var in unit
        .lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .filter_map(|l| l.split('=').next())
    {
        assert!(
            help.contains(var) || help.contains(var.trim_end_matches("_FILE")),
            "the unit sets {var}"
        );
    }

    // Every metric the dashboard and the alerts query is one the worker exports.
    let worker = Worker::start("deploy");
    let exported = exported_names(&worker.metrics());
    assert!(
        exported.contains("aethermart_sync_oldest_pending_seconds"),
        "{exported:?}"
    );
    let alerts = std::fs::read_to_string(prometheus.join("aethermart-alerts.yml")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy.join("grafana/aethermart-sync.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let mut queries: Vec<String> = alerts
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .map(str::to_owned)
        .collect();
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8, "a dashboard with its panels");
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(target["expr"].as_str().expect("a PromQL expr").to_owned());
        }
    }
    let used: BTreeSet<String> = queries.iter().flat_map(|q| metric_names_in(q)).collect();
    assert!(used.len() >= 10, "{used:?}");
    let unknown: Vec<&String> = used.difference(&exported).collect();
    assert!(unknown.is_empty(), "queried but not exported: {unknown:?}");
}

#[test]
fn the_status_page_renders_in_chromium_with_the_numbers_of_the_metrics() {
    let worker = Worker::start("page");
    let changes = 40;
    block_on(async {
        let pool = aethermart_core::connect::node_pool(
            &worker.mariadb,
            aethermart_core::connect::PoolSize { max: 2 },
        )
        .await
        .unwrap();
        sqlx::raw_sql(
            "INSERT INTO Categories (category_id, parent_id, name, slug) VALUES (1, NULL, 'Things', 'things');
             INSERT INTO Customers (customer_id, first_name, last_name, email) VALUES
               (1, 'Ana', 'López', 'ana@example.com'), (2, 'Ben', 'Okafor', 'ben@example.com');",
        )
        .execute(&pool)
        .await
        .unwrap();
        for i in 0..changes {
            sqlx::query("UPDATE Customers SET phone = ? WHERE customer_id = ?")
                .bind(format!("+1 555 {i:04}"))
                .bind(1 + i % 2)
                .execute(&pool)
                .await
                .unwrap();
        }
    });
    // Idle: every queue read empty (the page's numbers come from the same reads).
    let started = Instant::now();
    let applied = "aethermart_sync_changes_applied_total{queue=\"customer_sync_queue\"}";
    loop {
        let metrics = worker.metrics();
        let depth_zero = [
            "customer_sync_queue",
            "product_sync_queue",
            "service_sync_queue",
            "order_sync_queue",
        ]
        .iter()
        .all(|q| metrics.contains(&format!("aethermart_sync_queue_depth{{queue=\"{q}\"}} 0")));
        if depth_zero && worker.sample(applied) >= f64::from(changes) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the queues did not drain within 60 s:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let applied_total = worker.sample(applied);

    let shot = repo().join("target/status-page.png");
    let url = format!("http://{}/", worker.addr);
    let profile = std::env::temp_dir().join(format!("amt_chromium_{}", std::process::id()));
    let profile_arg = format!("--user-data-dir={}", profile.display());
    let shot_arg = format!("--screenshot={}", shot.display());
    let chromium = |extra: &[&str]| {
        let mut args = vec![
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1280,1000",
            profile_arg.as_str(),
        ];
        args.extend_from_slice(extra);
        args.push(url.as_str());
        tool("chromium", "chromium", &args, &repo())
    };
    let out = chromium(&["--dump-dom"]);
    assert!(out.status.success(), "chromium --dump-dom:\n{}", text(&out));
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    let cell = |class: &str, queue: &str| -> String {
        let marker = format!("class=\"{class}\" data-queue=\"{queue}\"");
        let at = dom
            .find(&marker)
            .unwrap_or_else(|| panic!("no {class} cell for {queue} in the page:\n{dom}"));
        let rest = &dom[at..];
        let open = rest.find('>').unwrap() + 1;
        let close = rest.find("</td>").unwrap();
        rest[open..close].to_owned()
    };
    assert_eq!(
        cell("applied", "customer_sync_queue")
            .parse::<f64>()
            .unwrap(),
        applied_total,
        "the page shows the applied count /metrics shows"
    );
    for queue in ["customer_sync_queue", "order_sync_queue"] {
        assert_eq!(cell("depth", queue), "0", "{queue} is idle on the page");
        assert_eq!(cell("dead", queue), "0");
    }
    assert!(
        dom.contains(&format!(
            "<span id=\"version\">{}</span>",
            env!("CARGO_PKG_VERSION")
        )),
        "the version is shown"
    );
    let node = with_db(&env_var("AETHERMART_MARIADB_URL"), "x");
    let endpoint = node
        .split('@')
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap();
    assert!(
        dom.contains(&format!("<span id=\"node\">{endpoint}</span>")),
        "the node in use:\n{dom}"
    );
    assert!(
        dom.contains("<svg id=\"throughput\""),
        "the throughput chart is drawn"
    );
    assert!(!dom.contains("<script"), "no script on the page");

    let out = chromium(&[shot_arg.as_str()]);
    assert!(
        out.status.success(),
        "chromium --screenshot:\n{}",
        text(&out)
    );
    let png = std::fs::read(&shot).expect("a screenshot was written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real picture"
    );
    std::fs::remove_dir_all(&profile).ok();
}

#[test]
fn a_worker_killed_9_after_a_review_catches_up_when_started_again() {
    let mut first = Worker::start("review_kill");
    let mongo = first.mongodb.clone();
    let rating = |expected: (i64, f64)| {
        let mongo = mongo.clone();
        block_on(async move {
            let db = aethermart_core::connect::mongodb_database(&mongo)
                .await
                .unwrap();
            let products = db.collection::<mongodb::bson::Document>("products");
            let started = Instant::now();
            loop {
                let doc = products
                    .find_one(mongodb::bson::doc! { "_id": 1_i64 })
                    .await
                    .unwrap();
                let got = doc.and_then(|d| {
                    let r = d.get_document("rating").ok()?.clone();
                    Some((r.get_i64("count").ok()?, r.get_f64("average").ok()?))
                });
                if got == Some(expected) {
                    return started.elapsed();
                }
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "product 1's rating {got:?}, expected {expected:?}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    block_on(async {
        // The collections first: the running worker writes the product as soon as it exists
        // (a collection it created would lack the validator and clash with the set-up).
        let db = aethermart_core::connect::mongodb_database(&first.mongodb)
            .await
            .unwrap();
        aethermart_core::migrate::setup_collections(&db)
            .await
            .unwrap();
        let pool = aethermart_core::connect::node_pool(
            &first.mariadb,
            aethermart_core::connect::PoolSize { max: 1 },
        )
        .await
        .unwrap();
        sqlx::raw_sql(
            "INSERT INTO Categories (category_id, parent_id, name, slug) VALUES (1, NULL, 'Things', 'things');
             INSERT INTO Products (product_id, sku, name, description, category_id, price, stock) VALUES
               (1, 'T-1', 'Thing', '', 1, 9.99, 5);",
        )
        .execute(&pool)
        .await
        .unwrap();
    });
    rating((0, 0.0));
    let insert = |id: i64, stars: i32| {
        let mongo = mongo.clone();
        block_on(async move {
            let db = aethermart_core::connect::mongodb_database(&mongo)
                .await
                .unwrap();
            db.collection::<mongodb::bson::Document>("reviews")
                .insert_one(mongodb::bson::doc! {
                    "_id": id, "product_id": 1_i64, "customer_id": 1_i64, "rating": stars,
                    "title": "t", "text": "", "media": [], "created_at": mongodb::bson::DateTime::now()
                })
                .await
                .unwrap();
        });
    };
    insert(1, 4);
    rating((1, 4.0));
    // A review, and the worker killed at once: whether or not it queued the product, the next
    // worker ends with the right rating.
    insert(2, 2);
    first.kill_9();
    let second = first.another();
    let took = rating((2, 3.0));
    println!(
        "after kill -9: rating right {:.0} ms after the restart",
        took.as_secs_f64() * 1e3
    );
    drop(second);
}

/// Binlog capture's crash target: the worker killed with SIGKILL at random points (mid-batch,
/// between a batch's writes and its stored position, while reading) while an application
/// writes, and started again each time. Every start resumes from the stored position (a
/// replay is harmless), so the stores end equal and nothing is dead-lettered.
#[test]
fn a_binlog_worker_killed_9_at_random_points_under_writes_leaves_the_stores_equal() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let (db, config) = binlog_database("binlog_kill9");
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let writer = write_until(&config, &stop, &committed);
    // Kill points from a fixed seed (xorshift), so a failure can be replayed.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next_delay = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        Duration::from_millis(50 + state % 1200)
    };
    let mut first = Worker::spawn(&db);
    first.until_healthy();
    std::thread::sleep(next_delay());
    first.kill_9();
    let mut delays = Vec::new();
    for _ in 0..8 {
        let mut worker = first.another();
        let delay = next_delay();
        delays.push(delay.as_millis());
        std::thread::sleep(delay);
        worker.kill_9();
    }
    let last = first.another();
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("the writer ran without an error");
    let writes = committed.load(Ordering::SeqCst);
    assert!(writes > 50, "{writes} writes while the workers were killed");
    let started = Instant::now();
    until_equal_and_nothing_dead(&config, "after the last restart");
    println!(
        "9 kills -9 (after {delays:?} ms of running) under {writes} writes: equal {:.1} s after the last start",
        started.elapsed().as_secs_f64()
    );
    drop(last);
}

/// Waits up to `within` for `condition`, polling every 20 ms; the time it took.
fn until(within: Duration, what: &str, mut condition: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

/// The binlog status as `aethermart sync status` reads it.
fn binlog_status(config: &aethermart_core::config::Config) -> aethermart_core::sync::BinlogStatus {
    block_on(async {
        let pool = aethermart_core::connect::node_pool(
            &config.mariadb,
            aethermart_core::connect::PoolSize { max: 1 },
        )
        .await
        .unwrap();
        let mongo = aethermart_core::connect::mongodb_database(&config.mongodb)
            .await
            .unwrap();
        aethermart_core::sync::binlog_status(&pool, &mongo, config.mariadb.database())
            .await
            .unwrap()
    })
}

/// High availability of binlog capture: three workers, one leads; the standbys are ready and
/// say so; the leader is killed with SIGKILL under writes, one standby takes over within the
/// lease TTL and applies what the dead one left; the stores end equal, nothing dead-lettered.
/// Prints the failover time (kill → first change applied by the new leader).
#[test]
fn a_binlog_standby_takes_over_when_the_leader_is_killed_9_under_writes() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let (db, config) = binlog_database("binlog_failover");
    let mut first = Worker::spawn(&db);
    first.until_healthy();
    until(Duration::from_secs(20), "the first worker leads", || {
        first.leads()
    });
    let standbys = [first.another(), first.another()];
    for standby in &standbys {
        assert!(!standby.leads(), "one leader only");
        let ready = until(Duration::from_secs(10), "a standby is ready", || {
            get(&standby.addr, "/readyz").map(|r| r.0) == Some(200)
        });
        let page = get(&standby.addr, "/").expect("the status page").1;
        assert!(
            page.contains("<span id=\"role\">standby</span>"),
            "the page says standby: {page}"
        );
        println!("standby ready in {ready:?}");
    }
    let pids: Vec<u32> = standbys.iter().map(|w| w.child.id()).collect();
    until(
        Duration::from_secs(10),
        "sync status shows both standbys",
        || {
            let status = binlog_status(&config);
            let shown: Vec<u32> = status.standbys.iter().map(|w| w.pid).collect();
            status.leader.as_ref().map(|l| l.pid) == Some(first.child.id())
                && pids.iter().all(|p| shown.contains(p))
        },
    );

    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let writer = write_until(&config, &stop, &committed);
    until(
        Duration::from_secs(20),
        "the leader applies changes",
        || first.applied() > 0.0,
    );
    first.kill_9();
    let killed = Instant::now();
    let took = until(
        Duration::from_secs(30),
        "a standby applies changes as the new leader",
        || standbys.iter().any(|w| w.leads() && w.applied() > 0.0),
    );
    let leaders = standbys.iter().filter(|w| w.leads()).count();
    assert_eq!(leaders, 1, "exactly one standby took over");
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("the writer ran without an error");
    until_equal_and_nothing_dead(&config, "after the failover");
    let new_leader = standbys.iter().find(|w| w.leads()).expect("a leader");
    let other = standbys.iter().find(|w| !w.leads()).expect("a standby");
    let status = binlog_status(&config);
    let leader = status.leader.expect("a leader in sync status");
    assert_eq!(
        (leader.pid, leader.term),
        (new_leader.child.id(), 2),
        "sync status names the new leader in the next term"
    );
    assert!(
        status.standbys.iter().any(|w| w.pid == other.child.id()),
        "the other standby is listed: {:?}",
        status.standbys
    );
    assert_eq!(
        new_leader.sample("aethermart_sync_binlog_leadership_changes_total{change=\"acquired\"}"),
        1.0
    );
    println!(
        "leader killed -9 under {} writes: a standby applied changes as the new leader {:.2} s later \
         (lease TTL {:.1} s; killed {:.1} s ago)",
        committed.load(Ordering::SeqCst),
        took.as_secs_f64(),
        lease_ttl_ms() as f64 / 1e3,
        killed.elapsed().as_secs_f64()
    );
}

/// Fencing: the leader frozen (SIGSTOP, as a long pause or a partition would) past its lease;
/// a standby takes over; the old leader, thawed, finds its lease gone and stands by without
/// storing a position: the stored position only ever moves forwards, and the stores end
/// equal.
#[test]
fn a_frozen_leader_that_lost_its_lease_stands_by_and_never_moves_the_position_back() {
    use aethermart_core::binlog_position::GtidPosition;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let (db, config) = binlog_database("binlog_fenced");
    let first = Worker::spawn(&db);
    first.until_healthy();
    until(Duration::from_secs(20), "the first worker leads", || {
        first.leads()
    });
    let second = first.another();
    // Every stored position, read every 20 ms until the end.
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (config, watching) = (config.clone(), watching.clone());
        std::thread::spawn(move || {
            block_on(async move {
                let mongo = aethermart_core::connect::mongodb_database(&config.mongodb)
                    .await
                    .unwrap();
                let mut seen: Vec<GtidPosition> = Vec::new();
                while watching.load(Ordering::SeqCst) {
                    let stored = aethermart_core::binlog_position::store::load(
                        &mongo,
                        config.mariadb.database(),
                    )
                    .await
                    .unwrap()
                    .expect("a position");
                    if seen.last() != Some(&stored.position) {
                        seen.push(stored.position);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                seen
            })
        })
    };
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let writer = write_until(&config, &stop, &committed);
    until(
        Duration::from_secs(20),
        "the leader applies changes",
        || first.applied() > 0.0,
    );
    first.signal("STOP");
    let took = until(Duration::from_secs(30), "the standby takes over", || {
        second.leads() && second.applied() > 0.0
    });
    std::thread::sleep(Duration::from_secs(1));
    first.signal("CONT");
    let stepped_down = until(Duration::from_secs(15), "the old leader stands by", || {
        !first.leads()
    });
    assert_eq!(
        first.sample("aethermart_sync_binlog_leadership_changes_total{change=\"lost\"}"),
        1.0,
        "the old leader counts one lost lease"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(second.leads(), "the new leader keeps its lease");
    assert!(!first.leads(), "the old leader does not take it back");
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("the writer ran without an error");
    until_equal_and_nothing_dead(&config, "after the old leader thawed");
    watching.store(false, Ordering::SeqCst);
    let seen = watcher.join().expect("the watcher ran");
    assert!(seen.len() > 2, "the position moved: {seen:?}");
    for pair in seen.windows(2) {
        assert!(
            pair[1].covers(&pair[0]),
            "the stored position moved backwards: {} then {}",
            pair[0],
            pair[1]
        );
    }
    let status = binlog_status(&config);
    assert_eq!(
        status.leader.map(|l| (l.pid, l.term)),
        Some((second.child.id(), 2))
    );
    println!(
        "leader frozen: the standby applied as leader {:.2} s later; thawed, the old leader stood by \
         {:.2} s later; {} stored positions, each covering the one before",
        took.as_secs_f64(),
        stepped_down.as_secs_f64(),
        seen.len()
    );
}

/// Fresh databases for a binlog test: generated (5 days of a small shop), capture switched to
/// binlog, migrated (the position recorded). Their name and configuration.
fn binlog_database(test: &str) -> (String, aethermart_core::config::Config) {
    use aethermart_core::sync::{Capture, capture};
    let db = Worker::prepare(test);
    let (mariadb, mongodb) = configs(&db);
    let config = aethermart_core::config::Config { mariadb, mongodb };
    block_on(async {
        let settings =
            aethermart_core::generate::GenerateConfig::new(5, 0.02, chrono_day()).unwrap();
        aethermart_core::generate::generate_into(
            &config,
            settings,
            Default::default(),
            std::sync::Arc::new(aethermart_core::progress::NoProgress),
        )
        .await
        .unwrap();
        capture::switch(&config, Capture::Binlog, "test")
            .await
            .unwrap();
        migrate(&config).await;
    });
    (db, config)
}

/// An application's writes on a thread of its own until `stop`: customers' phones, product
/// prices, addresses deleted; `committed` counts the transactions.
fn write_until(
    config: &aethermart_core::config::Config,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    committed: &std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> std::thread::JoinHandle<()> {
    use std::sync::atomic::Ordering;
    let (config, stop, committed) = (config.clone(), stop.clone(), committed.clone());
    std::thread::spawn(move || {
        block_on(async move {
            let pool = aethermart_core::connect::node_pool(
                &config.mariadb,
                aethermart_core::connect::PoolSize { max: 2 },
            )
            .await
            .unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                sqlx::raw_sql(&format!(
                    "UPDATE Customers SET phone = '+1 555 {n:05}' WHERE customer_id = {c}; \
                     UPDATE Products SET price = price + 1 WHERE product_id = {p}; \
                     DELETE FROM Customer_Addresses WHERE customer_id = {c} LIMIT 1",
                    c = n % 150 + 1,
                    p = n % 40 + 1
                ))
                .execute(&pool)
                .await
                .unwrap();
                committed.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    })
}

/// Waits (60 s at most) until MongoDB holds what MariaDB does, then asserts that nothing was
/// dead-lettered.
fn until_equal_and_nothing_dead(config: &aethermart_core::config::Config, when: &str) {
    let started = Instant::now();
    block_on(async {
        loop {
            let mongo = aethermart_core::connect::mongodb_database(&config.mongodb)
                .await
                .unwrap();
            use aethermart_core::migrate::Migrator;
            let report = aethermart_core::migrate::BulkMigrator::new(config.mariadb.clone(), mongo)
                .verify()
                .await
                .unwrap();
            if report.equal() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "stores differ 60 s {when}: {report:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let pool = aethermart_core::connect::node_pool(
            &config.mariadb,
            aethermart_core::connect::PoolSize { max: 1 },
        )
        .await
        .unwrap();
        let dead: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sync_dead_letters")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(dead, 0, "nothing is dead-lettered");
    });
}

async fn migrate(config: &aethermart_core::config::Config) {
    use aethermart_core::migrate::Migrator;
    let mongo = aethermart_core::connect::mongodb_database(&config.mongodb)
        .await
        .unwrap();
    aethermart_core::migrate::BulkMigrator::new(config.mariadb.clone(), mongo)
        .migrate(
            Default::default(),
            std::sync::Arc::new(aethermart_core::progress::NoProgress),
        )
        .await
        .unwrap();
}

/// The generator's "today" in the tests.
fn chrono_day() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2026, 11, 25).expect("a date")
}
