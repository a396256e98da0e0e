//! The `aethermart` binary end to end: exit codes, messages, no secrets in output.
//! Needs the local servers (`scripts/test.sh`); fails without them.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_aethermart");

fn env_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run scripts/test.sh or eval \"$(scripts/services.sh env)\"")
    })
}

/// The configured MariaDB URL with another database name.
fn url_with_database(db: &str) -> String {
    let url = env_var("AETHERMART_MARIADB_URL");
    let (base, _) = url.rsplit_once('/').expect("URL has a path");
    format!("{base}/{db}")
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env("AETHERMART_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run aethermart")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn doctor_passes_against_the_local_servers() {
    let out = run(&["doctor"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains("binlog_format") && shown.contains("MongoDB"),
        "{shown}"
    );
    if let Ok(password) = std::env::var("MARIA_DB_PASS") {
        assert!(!shown.contains(&password), "password printed: {shown}");
    }
}

#[test]
fn unreachable_servers_exit_1_with_one_line_each_naming_host_and_port() {
    let out = run(
        &["doctor"],
        &[
            ("AETHERMART_MARIADB_URL", "mysql://u@127.0.0.1:1/x"),
            (
                "AETHERMART_MONGODB_URI",
                "mongodb://127.0.0.1:1/x?directConnection=true&serverSelectionTimeoutMS=300",
            ),
            // The local server's password would not fit a URI without a user.
            ("MONGO_ADMIN_PASS", ""),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = text(&out);
    assert!(shown.contains("MariaDB at 127.0.0.1:1"), "{shown}");
    assert!(shown.contains("MongoDB at 127.0.0.1:1"), "{shown}");
    assert!(
        !shown.contains("panicked") && !shown.contains("stack backtrace"),
        "{shown}"
    );
}

#[test]
fn bad_configuration_exits_2_naming_the_variable() {
    let out = run(
        &["schema", "status"],
        &[("AETHERMART_MARIADB_URL", "postgres://x@y/z")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.starts_with("error: AETHERMART_MARIADB_URL is malformed"),
        "{shown}"
    );

    let out = run(&["doctor"], &[("AETHERMART_MONGODB_URI", "")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("AETHERMART_MONGODB_URI is not set"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_wrong_password_is_reported_without_printing_it() {
    let secret = "Wr0ng-But-Secret-Pa55";
    let out = run(&["schema", "status"], &[("MARIA_DB_PASS", secret)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let shown = text(&out);
    assert!(shown.contains("Access denied"), "{shown}");
    assert!(!shown.contains(secret), "password printed: {shown}");
}

#[test]
fn schema_apply_status_and_guarded_teardown() {
    let db = format!("amt_test_{}_cli", std::process::id());
    let url = url_with_database(&db);
    let env = [("AETHERMART_MARIADB_URL", url.as_str())];

    let out = run(&["schema", "status"], &env);
    assert_eq!(
        out.status.code(),
        Some(1),
        "pending versions are a finding: {}",
        text(&out)
    );
    assert!(text(&out).contains("pending"));

    let out = run(&["schema", "apply"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(
            "applied schema versions [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]"
        ),
        "{}",
        text(&out)
    );
    let out = run(&["schema", "apply"], &env);
    assert!(text(&out).contains("schema up to date"), "{}", text(&out));
    let out = run(&["schema", "status"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let out = run(&["schema", "teardown"], &env);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--yes"), "{}", text(&out));
    let out = run(&["order", "cancel", "1"], &env);
    assert_eq!(
        out.status.code(),
        Some(1),
        "refused by the database: {}",
        text(&out)
    );
    assert!(text(&out).contains("unknown order 1"), "{}", text(&out));

    let out = run(&["schema", "teardown", "--yes"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(&["schema", "status"], &env);
    assert!(text(&out).contains("pending"), "{}", text(&out));
}

/// The configured MongoDB URI with another database name.
fn mongo_uri_with_database(db: &str) -> String {
    let uri = env_var("AETHERMART_MONGODB_URI");
    let (address, query) = uri.split_once('?').unwrap_or((uri.as_str(), ""));
    let base = address
        .strip_prefix("mongodb://")
        .and_then(|rest| rest.split_once('/').map(|(hosts, _)| hosts))
        .unwrap_or_else(|| address.trim_start_matches("mongodb://"));
    format!("mongodb://{base}/{db}?{query}")
}

#[test]
fn a_whole_pipeline_with_debug_logs_never_prints_a_password() {
    let db = format!("amt_test_{}_pipeline", std::process::id());
    let (url, uri) = (url_with_database(&db), mongo_uri_with_database(&db));
    let maria_db_pass = env_var("MARIA_DB_PASS");
    let mongo_admin_pass = env_var("MONGO_ADMIN_PASS");
    let secrets = [
        ("AETHERMART_ALEX_PASSWORD", "Alex-S3cret-Adm1n"),
        ("AETHERMART_SARAH_PASSWORD", "Sarah-S3cret-An4lyst"),
        ("AETHERMART_MARIA_PASSWORD", "Maria-S3cret-Eng1neer"),
        ("AETHERMART_WORKER_PASSWORD", "Worker-S3cret-Serv1ce"),
    ];
    let mut env: Vec<(&str, &str)> = vec![
        ("AETHERMART_MARIADB_URL", url.as_str()),
        ("AETHERMART_MONGODB_URI", uri.as_str()),
    ];
    env.extend(secrets);
    let mut all_output = String::new();
    let mut step = |args: &[&str], expected: i32| {
        let mut cmd = Command::new(BIN);
        // Debug logs everywhere, the drivers' statement logs included.
        cmd.args(args).env("AETHERMART_LOG", "debug");
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run aethermart");
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(expected), "{args:?}: {shown}");
        all_output.push_str(&shown);
    };
    step(&["schema", "teardown", "--yes"], 0);
    step(&["schema", "apply"], 0);
    step(&["security", "apply"], 0);
    step(&["security", "apply"], 0);
    step(
        &[
            "generate",
            "--scale",
            "0.01",
            "--seed",
            "3",
            "--replace-documents",
        ],
        0,
    );
    step(
        &["order", "place", "--customer", "1", "--product", "1:1"],
        0,
    );
    step(&["migrate", "--verify"], 0);
    step(
        &[
            "search",
            "reindex",
            "--embedding-model-dir",
            "/nonexistent/aethermart-model",
        ],
        2,
    );
    step(&["search", "reindex", "--json"], 0);
    step(
        &[
            "search",
            "my heating bill is far too high",
            "--ranking",
            "vector",
            "--k",
            "3",
        ],
        0,
    );
    step(
        &[
            "search",
            "someone to help me plan my first custom pc build",
            "--kind",
            "service",
            "--k",
            "3",
            "--json",
        ],
        0,
    );
    step(&["search", "quiet pc", "--max-price", "not-a-price"], 2);
    step(&["sync", "status"], 0);
    step(
        &["sync", "resync", "--entity", "customers", "--keys", "1,2"],
        0,
    );
    step(
        &[
            "sync",
            "resync",
            "--entity",
            "orders",
            "--where",
            "status IN ('paid', 'shipped', 'delivered') AND order_id <= 20",
        ],
        0,
    );
    step(
        &[
            "sync",
            "resync",
            "--entity",
            "customers",
            "--where",
            "customer_id = 1; DROP TABLE Customers",
        ],
        2,
    );
    step(&["sync", "dead-letters", "list", "--json"], 0);
    // `sync status --watch` redraws until Ctrl-C, then exits 0.
    let mut watch = Command::new(BIN);
    watch.args(["sync", "status", "--watch", "--interval", "1"]);
    for (k, v) in &env {
        watch.env(k, v);
    }
    let child = watch
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run aethermart");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let watched = child.wait_with_output().expect("the watch ends");
    let shown = text(&watched);
    assert_eq!(watched.status.code(), Some(0), "{shown}");
    assert!(
        shown.matches("customer_sync_queue").count() >= 2 && shown.contains("waiting: "),
        "redrawn at least twice: {shown}"
    );
    assert!(!shown.contains('\u{1b}'), "no screen codes off a terminal");
    step(&["sync", "dead-letters", "requeue", "--all"], 0);
    step(&["quality", "check"], 0);
    step(&["lineage", "--openlineage"], 0);
    step(&["doctor"], 0);
    step(&["schema", "teardown", "--yes"], 0);
    assert!(all_output.contains("DEBUG"), "debug logs were on");
    assert!(
        !all_output.contains('\u{1b}'),
        "no colour codes when stderr is not a terminal"
    );
    assert!(
        all_output.contains("--where refused at character 16: unexpected character ';'"),
        "the refusal names the position"
    );
    assert!(all_output.contains("migrate.orders"), "lineage was printed");
    assert!(
        all_output.contains("\"category_path\"") && all_output.contains("PC Build Consultations"),
        "search printed consultations as JSON"
    );
    assert!(
        all_output.contains("/nonexistent/aethermart-model/config.json is missing")
            && all_output.contains("scripts/model.sh fetch"),
        "a missing model is named with the command that fetches it"
    );
    assert!(
        all_output.contains("\"embedded\"") && !all_output.contains("no search vectors"),
        "reindex reported, and the searches after it had vectors"
    );
    assert!(
        all_output.contains("invalid value 'not-a-price' for '--max-price"),
        "a bad price is named"
    );
    for secret in [maria_db_pass.as_str(), mongo_admin_pass.as_str()]
        .into_iter()
        .chain(secrets.iter().map(|(_, s)| *s))
    {
        assert!(
            !all_output.contains(secret),
            "a password was printed in the pipeline's output"
        );
    }
    // Nor a password hash: account statements (the four accounts, the generator's history
    // loader) run on connections whose statements are never logged.
    assert!(
        !all_output.contains("IDENTIFIED BY"),
        "an account statement was logged"
    );
    // A missing password is named, and nothing is applied.
    let out = run(
        &["security", "apply"],
        &[
            ("AETHERMART_MARIADB_URL", url.as_str()),
            ("AETHERMART_ALEX_PASSWORD", "x"),
            ("AETHERMART_SARAH_PASSWORD", ""),
            ("AETHERMART_MARIA_PASSWORD", "y"),
            ("AETHERMART_WORKER_PASSWORD", "z"),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("AETHERMART_SARAH_PASSWORD is not set"),
        "{}",
        text(&out)
    );
}

#[test]
fn cluster_firewall_rules_pass_the_nft_checker_and_bad_nodes_exit_2() {
    let out = run(
        &[
            "cluster",
            "firewall",
            "--node",
            "10.0.0.1",
            "--node",
            "10.0.0.2",
            "--node",
            "10.0.0.3",
            "--client",
            "10.0.1.0/24",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rules = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        rules.contains("elements = { 10.0.0.1, 10.0.0.2, 10.0.0.3 }"),
        "{rules}"
    );
    assert!(
        rules.contains("ip saddr @mariadb_clients_v4 tcp dport 3306 accept"),
        "{rules}"
    );
    assert!(
        rules.contains("tcp dport { 3306, 4444, 4567, 4568 } counter drop"),
        "{rules}"
    );
    let file = std::env::temp_dir().join(format!("aethermart-fw-{}.nft", std::process::id()));
    std::fs::write(&file, &rules).expect("write the rules");
    // `nft -c` parses and checks the whole ruleset against the kernel without loading it.
    let checked = Command::new("nft")
        .arg("-c")
        .arg("-f")
        .arg(&file)
        .output()
        .expect("nft must be installed (scripts/services.sh installs nftables)");
    let _ = std::fs::remove_file(&file);
    assert!(
        checked.status.success(),
        "nft -c refused the rules: {}\n{rules}",
        String::from_utf8_lossy(&checked.stderr)
    );

    let out = run(
        &[
            "cluster",
            "firewall",
            "--node",
            "10.0.0.1",
            "--node",
            "10.0.0.2",
            "--mariadb-port",
            "13306",
            "--replication-port",
            "14567",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let custom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        custom.contains("tcp dport { 4444, 4568, 13306, 14567 } accept")
            && custom.contains("udp dport 14567 accept"),
        "{custom}"
    );
    for (args, named) in [
        (vec!["--node", "10.0.0.1"], "at least two --node"),
        (
            vec!["--node", "10.0.0.1", "--node", "db-2"],
            "--node \"db-2\"",
        ),
        (
            vec![
                "--node",
                "10.0.0.1",
                "--node",
                "10.0.0.2",
                "--client",
                "10.0.0.0/40",
            ],
            "--client",
        ),
    ] {
        let out = run(&[&["cluster", "firewall"], args.as_slice()].concat(), &[]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains(named), "{}", text(&out));
    }
}

#[test]
fn cluster_status_shows_every_galera_node_and_an_unreachable_one_as_down() {
    let url = env_var("AETHERMART_TEST_GALERA_URL");
    let password = env_var("AETHERMART_TEST_CLUSTER_PASSWORD");
    let (head, db) = url.rsplit_once('/').expect("URL has a path");
    let with_dead = format!("{head},127.0.0.1:1/{db}");
    let env = [
        ("AETHERMART_MARIADB_URL", with_dead.as_str()),
        ("MARIA_DB_PASS", password.as_str()),
    ];
    let out = run(&["cluster", "status"], &env);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a dead node is a problem: {}",
        text(&out)
    );
    let shown = text(&out);
    assert_eq!(shown.matches("Synced/Primary").count(), 3, "{shown}");
    assert!(
        shown.contains("127.0.0.1:1") && shown.contains("down"),
        "{shown}"
    );
    assert!(!shown.contains(&password));

    let out = run(&["cluster", "status", "--json"], &env);
    let nodes: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let states: Vec<&str> = nodes
        .as_array()
        .expect("a list of nodes")
        .iter()
        .map(|n| n["status"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(states, ["up", "up", "up", "down"]);
    assert_eq!(nodes[0]["galera"]["cluster_size"], 3);

    let out = run(
        &["cluster", "status"],
        &[
            ("AETHERMART_MARIADB_URL", &url),
            ("MARIA_DB_PASS", &password),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // doctor checks the writable node and warns about the unreachable one.
    let out = run(&["doctor"], &env);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains("3 of 4 nodes up and fit; not: 127.0.0.1:1"),
        "{shown}"
    );
}

#[test]
fn reports_read_from_the_replica_when_asked() {
    let url = env_var("AETHERMART_TEST_REPLICA_URL");
    let password = env_var("AETHERMART_TEST_CLUSTER_PASSWORD");
    let (head, _) = url.rsplit_once('/').expect("URL has a path");
    let url = format!("{head}/amt_cli_replica_{}", std::process::id());
    let env = [
        ("AETHERMART_MARIADB_URL", url.as_str()),
        ("MARIA_DB_PASS", password.as_str()),
    ];
    let out = run(&["schema", "teardown", "--yes"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(&["schema", "apply"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The schema reaches the replica within moments; retry until it did.
    let mut tries = 0;
    let out = loop {
        let out = run(&["report", "low-stock", "--from-replica"], &env);
        tries += 1;
        if out.status.code() == Some(0) || tries == 50 {
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("reading from replica 127.0.0.1:"),
        "{}",
        text(&out)
    );
    let out = run(&["schema", "teardown", "--yes"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn json_logs_are_one_object_per_line_and_an_unknown_format_is_named() {
    let out = run(
        &["schema", "status", "--json"],
        &[
            ("AETHERMART_LOG", "debug"),
            ("AETHERMART_LOG_FORMAT", "json"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "debug logs were written");
    for line in &lines {
        let event: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}"));
        assert!(
            event.get("level").is_some() && event.get("timestamp").is_some(),
            "{line}"
        );
    }
    let out = run(&["doctor"], &[("AETHERMART_LOG_FORMAT", "yaml")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("AETHERMART_LOG_FORMAT is malformed"),
        "{}",
        text(&out)
    );
}

#[test]
fn shell_completions_are_valid_scripts() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell], &[]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("dead-letters") && script.contains("resync"),
            "{shell}: the subcommands are completed"
        );
    }
    let out = run(&["completions", "bash"], &[]);
    let file =
        std::env::temp_dir().join(format!("aethermart-completion-{}.bash", std::process::id()));
    std::fs::write(&file, &out.stdout).unwrap();
    let checked = Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .expect("bash");
    std::fs::remove_file(&file).ok();
    assert!(checked.status.success(), "bash -n: {}", text(&checked));
}

#[test]
fn reports_print_json_and_csv() {
    let db = format!("amt_test_{}_formats", std::process::id());
    let url = url_with_database(&db);
    let env = [("AETHERMART_MARIADB_URL", url.as_str())];
    let out = run(&["schema", "apply"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(&["report", "low-stock", "--csv"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().next(),
        Some("id,sku,name,category,stock"),
        "a CSV header"
    );
    let out = run(&["report", "sales", "--json"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rows: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("report sales --json is JSON");
    assert!(rows.is_array());
    let out = run(&["report", "sales", "--json", "--csv"], &env);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--json and --csv exclude each other"
    );
    let out = run(&["schema", "teardown", "--yes"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
