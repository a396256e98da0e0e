//! End to end: the whole lifecycle at scale 0.02, then live changes through a worker running
//! as the data engineer, and the stores reconcile.

use crate::support::{TestEnv, passwords, until_drained};
use aethermart_core::config::Config;
use aethermart_core::generate::GenerateConfig;
use aethermart_core::lifecycle::{self, UpOptions};
use aethermart_core::migrate::BulkMigrator;
use aethermart_core::model::{CustomerId, NewOrderLine, ProductId};
use aethermart_core::orders;
use aethermart_core::progress::NoProgress;
use aethermart_core::quality::{self, QualityOptions};
use aethermart_core::sync::{MongoSink, QueueSource, SyncOptions, Syncer};
use chrono::NaiveDate;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn the_whole_lifecycle_then_live_changes_through_the_worker_reconcile() {
    let env = TestEnv::new("lifecycle_e2e").await;
    let data =
        GenerateConfig::new(5, 0.02, NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()).unwrap();
    let options = || UpOptions {
        fresh: true,
        data,
        passwords: Some(passwords()),
        capture: None,
        embedding_model_dir: crate::support::model_dir(),
    };
    let report = lifecycle::up(&env.config, options(), Arc::new(NoProgress), &|_| {})
        .await
        .expect("the lifecycle runs");
    let steps: Vec<&str> = report.steps.iter().map(|s| s.step).collect();
    assert_eq!(
        steps,
        [
            "teardown", "schema", "generate", "security", "capture", "migrate", "verify", "search"
        ]
    );
    let search = &report.steps[7];
    if cfg!(feature = "embeddings") {
        assert!(search.detail.contains(" search vectors ("), "{search:?}");
    }

    // The worker runs on its service account, with the worker role only.
    let worker = env.config.mariadb.with_login(
        aethermart_core::security::WORKER_USER,
        passwords().worker().clone(),
    );
    let sync_options = SyncOptions {
        poll_interval: Duration::from_millis(2),
        max_idle_wait: Duration::from_millis(20),
        ..SyncOptions::default()
    };
    let as_worker = Config {
        mariadb: worker,
        mongodb: env.config.mongodb.clone(),
    };
    let (source, mongo) = QueueSource::connect(&as_worker, &sync_options, 4)
        .await
        .expect("the worker logs in");
    let syncer = Syncer::new(
        Arc::new(source),
        Arc::new(MongoSink::new(mongo.clone())),
        sync_options,
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker =
        tokio::spawn(async move { syncer.run(crate::support::until_stopped(stopped)).await });

    // Live changes, as the application makes them.
    let app = env.pool().await;
    sqlx::query("UPDATE Customers SET phone = '+49 30 1234567' WHERE customer_id = 3")
        .execute(&app)
        .await
        .unwrap();
    let mut placed = None;
    for product in 1..=20 {
        let lines = [NewOrderLine::Product {
            product_id: ProductId(product),
            quantity: 1,
        }];
        if let Ok(p) = orders::place_order(&app, CustomerId(3), &lines).await {
            placed = Some(p);
            break;
        }
    }
    let placed = placed.expect("one of the first 20 products sells");
    orders::cancel_order(&app, placed.order_id).await.unwrap();

    until_drained(&app, Duration::from_secs(60)).await;
    stop.send_replace(true);
    let synced = worker.await.unwrap().expect("the worker stops cleanly");
    assert!(synced.changes >= 5, "{synced:?}");

    let checks = quality::run_checks(
        &app,
        &mongo,
        &BulkMigrator::new(env.config.mariadb.clone(), mongo.clone()),
        QualityOptions::default(),
    )
    .await
    .unwrap();
    assert!(
        checks.checks.iter().all(quality::CheckResult::passed),
        "the stores reconcile and the data is clean: {checks:?}"
    );

    // Running it again is safe: the data stays, the migration and verification pass.
    let again = lifecycle::up(
        &env.config,
        UpOptions {
            fresh: false,
            ..options()
        },
        Arc::new(NoProgress),
        &|_| {},
    )
    .await
    .expect("a second run succeeds");
    let generate = again.steps.iter().find(|s| s.step == "generate").unwrap();
    assert!(
        generate.detail.starts_with("kept the 200 customers"),
        "{generate:?}"
    );
}
