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
        text(&out).contains("applied schema versions [1, 2, 3, 4, 5, 6]"),
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
