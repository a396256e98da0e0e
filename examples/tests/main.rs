//! The example programs, run against the real servers (start them with `scripts/test.sh` or
//! `scripts/services.sh up`; without them this test fails, it never skips).

use aethermart_core::cluster;
use aethermart_core::config::Config;
use aethermart_core::generate::GenerateConfig;
use aethermart_core::lifecycle::{self, UpOptions};
use aethermart_core::progress::NoProgress;
use std::process::{Command, Output};
use std::sync::Arc;

fn env_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run scripts/test.sh or eval \"$(scripts/services.sh env)\"")
    })
}

/// `scheme://…/<db>[?query]` with another database.
fn with_database(url: &str, db: &str) -> String {
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

fn run(bin: &str, args: &[&str], env: &[(&str, String)]) -> (Output, String) {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run the example");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

#[tokio::test]
async fn the_examples_run_against_the_real_servers() {
    let db = format!("amt_test_{}_examples", std::process::id());
    let env = [
        (
            "AETHERMART_MARIADB_URL",
            with_database(&env_var("AETHERMART_MARIADB_URL"), &db),
        ),
        (
            "AETHERMART_MONGODB_URI",
            with_database(&env_var("AETHERMART_MONGODB_URI"), &db),
        ),
    ];
    let config = Config::from_lookup(|var| {
        env.iter()
            .find(|(k, _)| *k == var)
            .map(|(_, v)| v.clone())
            .or_else(|| aethermart_core::config::env_lookup(var))
    })
    .expect("configuration");
    let data = GenerateConfig::new(
        1,
        0.01,
        chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap(),
    )
    .unwrap();
    let options = UpOptions {
        fresh: true,
        data,
        passwords: None,
        capture: None,
        embedding_model_dir: aethermart_core::search::model::model_dir(
            aethermart_core::config::env_lookup,
        ),
    };
    lifecycle::up(&config, options, Arc::new(NoProgress), &|_| {})
        .await
        .expect("the platform is up");
    let pool = cluster::writable_pool(&config.mariadb, Default::default())
        .await
        .unwrap();
    sqlx::query(
        "UPDATE Customers SET phone = CONCAT('+1 555 ', customer_id) WHERE customer_id <= 3",
    )
    .execute(&pool)
    .await
    .unwrap();

    let (out, text) = run(env!("CARGO_BIN_EXE_embed_syncer"), &[], &env);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("invalidate customer_profiles/2 (changed)"),
        "{text}"
    );
    assert!(text.contains("3 cache entries invalidated"), "{text}");

    let (out, text) = run(env!("CARGO_BIN_EXE_quality_and_lineage"), &[], &env);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("pass  reconciliation"), "{text}");
    assert!(text.contains("\"eventType\":\"COMPLETE\""), "{text}");

    let (out, text) = run(env!("CARGO_BIN_EXE_place_and_cancel"), &["1", "2"], &env);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("cancelled order") || text.contains("sold out"),
        "{text}"
    );

    let (out, text) = run(env!("CARGO_BIN_EXE_health_check"), &[], &env);
    assert!(out.status.success(), "{text}");
}
