//! The initial migration against real servers: equal stores after it, idempotent, resumable
//! after a crash, refused documents reported with their ids, lineage recorded.

use crate::support::TestEnv;
use aethermart_core::migrate::{
    BulkMigrator, EntityReport, MigrateOptions, MigrationReport, Migrator,
};
use aethermart_core::model::CustomerProfile;
use aethermart_core::progress::{NoProgress, Progress};
use aethermart_core::projection::Entity;
use futures_util::TryStreamExt;
use mongodb::bson::{Document, doc};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

async fn generated(test: &str, scale: f64) -> (TestEnv, BulkMigrator, sqlx::MySqlPool) {
    let (env, pool) = crate::support::generated(test, 7, scale).await;
    let migrator = BulkMigrator::new(env.config.mariadb.clone(), env.mongo().await);
    (env, migrator, pool)
}

fn options() -> MigrateOptions {
    MigrateOptions {
        batch_size: 200,
        ..MigrateOptions::default()
    }
}

#[tokio::test]
async fn a_migration_leaves_equal_stores_and_running_it_again_changes_nothing() {
    let (env, migrator, pool) = generated("migrate_005", 0.05).await;
    let before = migrator.verify().await.unwrap();
    assert!(
        !before.equal(),
        "nothing migrated yet, verification must see the difference"
    );

    let report = migrator
        .migrate(options(), Arc::new(NoProgress))
        .await
        .unwrap();
    assert!(report.clean(), "{report:?}");
    let verified = migrator.verify().await.unwrap();
    assert!(verified.equal(), "{verified:?}");
    let orders = verified
        .entities
        .iter()
        .find(|e| e.entity == Entity::Orders)
        .unwrap();
    assert_eq!(orders.rows, 5_000);

    // Preferences written by the generator survive the merge into profiles.
    let mongo = env.mongo().await;
    let with_prefs = mongo
        .collection::<Document>("customer_profiles")
        .count_documents(doc! { "preferences": { "$exists": true }, "email": { "$exists": true } })
        .await
        .unwrap();
    assert_eq!(with_prefs, 500);
    // Every migrated profile is exactly what the model describes (embedders read them typed).
    let profiles: Vec<CustomerProfile> = mongo
        .collection::<CustomerProfile>("customer_profiles")
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .expect("every stored profile decodes as a CustomerProfile");
    assert_eq!(profiles.len(), 500);
    let order = mongo
        .collection::<Document>("orders")
        .find_one(doc! {})
        .await
        .unwrap()
        .expect("an order");
    assert!(
        !order.get_array("lines").unwrap().is_empty(),
        "lines embedded"
    );

    // Again: idempotent.
    let again = migrator
        .migrate(options(), Arc::new(NoProgress))
        .await
        .unwrap();
    assert!(again.clean());
    assert!(migrator.verify().await.unwrap().equal());

    // A change in MariaDB after the migration is a difference verification names by id.
    sqlx::query("UPDATE Products SET name = 'Renamed' WHERE product_id = 3")
        .execute(&pool)
        .await
        .unwrap();
    let changed = migrator.verify().await.unwrap();
    let products = changed
        .entities
        .iter()
        .find(|e| e.entity == Entity::Products)
        .unwrap();
    assert_eq!(products.different, vec![3]);
    // Migrating again picks the change up (the replace path for existing documents).
    migrator
        .migrate(options(), Arc::new(NoProgress))
        .await
        .unwrap();
    let product = mongo
        .collection::<Document>("products")
        .find_one(doc! { "_id": 3_i64 })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(product.get_str("name").unwrap(), "Renamed");
    assert!(migrator.verify().await.unwrap().equal());

    let lineage: Vec<(String, String, u64, String)> = sqlx::query_as(
        "SELECT job, target, rows_written, status FROM data_lineage_tracker WHERE run_id = ? ORDER BY lineage_id",
    )
    .bind(&report.run_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(lineage.len(), 4, "one lineage row per entity: {lineage:?}");
    assert!(
        lineage
            .iter()
            .all(|(job, _, _, status)| job == "migrate" && status == "complete")
    );
    assert!(
        lineage
            .iter()
            .any(|(_, target, rows, _)| target.ends_with(".orders") && *rows == 5_000)
    );
}

/// The report of `entity`, after checking that it refused exactly document `key`, for failing
/// the validator.
fn refused_one(report: &MigrationReport, entity: Entity, key: i64) -> &EntityReport {
    let e = report.entities.iter().find(|e| e.entity == entity).unwrap();
    assert_eq!(e.refused.len(), 1, "{:?}", e.refused);
    assert_eq!(e.refused[0].key, key);
    assert!(
        e.refused[0].reason.contains("validation"),
        "{}",
        e.refused[0].reason
    );
    e
}

/// Counts rows written; lets the test interrupt a migration once enough has happened.
struct Counter(AtomicU64);

impl Progress for Counter {
    fn advance(&self, _table: &'static str, rows: u64) {
        self.0.fetch_add(rows, Ordering::Relaxed);
    }
}

#[tokio::test]
async fn a_migration_killed_half_way_resumes_to_equal_stores_without_duplicates() {
    let (env, migrator, pool) = generated("migrate_resume", 0.05).await;
    let counter = Arc::new(Counter(AtomicU64::new(0)));
    let task = {
        let (migrator, counter) = (migrator.clone(), counter.clone());
        tokio::spawn(async move {
            migrator
                .migrate(
                    MigrateOptions {
                        batch_size: 100,
                        ..MigrateOptions::default()
                    },
                    counter,
                )
                .await
        })
    };
    while counter.0.load(Ordering::Relaxed) < 1_500 && !task.is_finished() {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    task.abort();
    let _ = task.await;
    let high_water: Vec<(String, u64, bool)> = sqlx::query_as(
        "SELECT entity, high_water, finished FROM migration_checkpoints ORDER BY entity",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        high_water
            .iter()
            .any(|(_, h, finished)| *h > 0 && !finished),
        "interrupted with progress recorded: {high_water:?}"
    );
    assert!(
        !migrator.verify().await.unwrap().equal(),
        "the crash left the stores different"
    );

    let checkpoints: std::collections::HashMap<String, u64> =
        high_water.iter().map(|(e, h, _)| (e.clone(), *h)).collect();
    let resumed = migrator
        .migrate(
            MigrateOptions {
                resume: true,
                ..options()
            },
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    for e in &resumed.entities {
        let after = checkpoints.get(e.entity.name()).copied().unwrap_or(0);
        assert_eq!(
            e.resumed_after, after,
            "{} resumed after its checkpoint",
            e.entity
        );
        let (table, key) = match e.entity {
            Entity::Customers => ("Customers", "customer_id"),
            Entity::Products => ("Products", "product_id"),
            Entity::Services => ("Services", "service_id"),
            Entity::Orders => ("Orders", "order_id"),
        };
        let left: i64 =
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table} WHERE {key} > ?"))
                .bind(after)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(
            e.read, left as u64,
            "{} read exactly the rows after its checkpoint",
            e.entity
        );
    }
    assert!(
        resumed.entities.iter().any(|e| e.resumed_after > 0),
        "{resumed:?}"
    );
    let verified = migrator.verify().await.unwrap();
    assert!(verified.equal(), "{verified:?}");
    let documents = env
        .mongo()
        .await
        .collection::<Document>("orders")
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!(documents, 5_000, "no duplicates");
}

#[tokio::test]
async fn a_document_that_breaks_a_validator_is_reported_with_its_id() {
    let (_env, migrator, pool) = generated("migrate_refused", 0.01).await;
    // An order without lines is valid in MariaDB but breaks the orders validator (minItems 1).
    sqlx::query("INSERT INTO Orders (order_id, customer_id, status, total) VALUES (900001, 1, 'pending', 0)")
        .execute(&pool)
        .await
        .unwrap();
    let report = migrator
        .migrate(options(), Arc::new(NoProgress))
        .await
        .unwrap();
    assert!(!report.clean());
    let orders = refused_one(&report, Entity::Orders, 900001);
    assert_eq!(orders.written, 1_000, "the other orders flowed on");
    let (rejected, status, error): (u64, String, Option<String>) = sqlx::query_as(
        "SELECT rows_rejected, status, error FROM data_lineage_tracker WHERE run_id = ? AND target LIKE '%.orders'",
    )
    .bind(&report.run_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((rejected, status.as_str()), (1, "complete"));
    assert!(error.unwrap_or_default().contains("900001"));
    let verified = migrator.verify().await.unwrap();
    let v = verified
        .entities
        .iter()
        .find(|e| e.entity == Entity::Orders)
        .unwrap();
    assert_eq!(
        v.missing,
        vec![900001],
        "verification names the missing document"
    );
}

/// Preferences an application writes while the migration merges the profiles are never lost:
/// a write after a page's transaction read the document makes the transaction conflict and
/// start again; one while it is open waits and lands on the merged document.
#[tokio::test]
async fn preferences_written_during_the_migration_are_all_kept() {
    let (env, migrator, _pool) = generated("migrate_prefs", 0.05).await;
    let profiles = env
        .mongo()
        .await
        .collection::<Document>("customer_profiles");
    let customers = profiles.count_documents(doc! {}).await.unwrap() as i64;
    assert_eq!(customers, 500, "the generator wrote the preferences");
    let migrating = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let merging = Arc::new(MergeWindow::default());
    // Four writers, each appending its own tags to the customers' favourite categories: every
    // acknowledged tag must be there at the end. (Appending, not overwriting: a later write
    // cannot hide a lost one.)
    let writers: Vec<_> = ["a", "b", "c", "d"]
        .into_iter()
        .enumerate()
        .map(|(w, name)| {
            let (profiles, migrating, merging) =
                (profiles.clone(), migrating.clone(), merging.clone());
            tokio::spawn(async move {
                let mut written: Vec<(i64, String)> = Vec::new();
                let mut n = 0_i64;
                while migrating.load(Ordering::Relaxed) {
                    n += 1;
                    let id = 1 + (n * 7 + w as i64 * 125) % customers;
                    let tag = format!("{name}{n}");
                    profiles
                        .update_one(
                            doc! { "_id": id },
                            doc! { "$push": { "preferences.favourite_categories": &tag } },
                        )
                        .await
                        .expect("a preference write");
                    written.push((id, tag));
                    if merging.open.load(Ordering::Relaxed) {
                        merging.writes.fetch_add(1, Ordering::Relaxed);
                    }
                }
                written
            })
        })
        .collect();
    let report = migrator
        .migrate(
            MigrateOptions {
                batch_size: 20,
                ..MigrateOptions::default()
            },
            merging.clone(),
        )
        .await
        .unwrap();
    migrating.store(false, Ordering::Relaxed);
    let mut written: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
    for writer in writers {
        for (id, tag) in writer.await.unwrap() {
            written.entry(id).or_default().push(tag);
        }
    }
    assert!(report.clean(), "{report:?}");
    let customers = report
        .entities
        .iter()
        .find(|e| e.entity == Entity::Customers)
        .unwrap();
    assert!(
        customers.stages.merge_read > 0.0,
        "the profiles were merged in transactions: {:?}",
        customers.stages
    );
    let while_merging = merging.writes.load(Ordering::Relaxed);
    assert!(
        while_merging >= 100,
        "only {while_merging} preference writes while the profiles were merged"
    );
    let writes: usize = written.values().map(Vec::len).sum();
    assert!(
        written.len() >= 200 && writes >= 400,
        "the writers made {writes} writes to {} customers during the migration: too few to test anything",
        written.len()
    );
    let mut lost = Vec::new();
    for (id, tags) in &written {
        let stored = profiles
            .find_one(doc! { "_id": id })
            .await
            .unwrap()
            .expect("the profile");
        let prefs = stored.get_document("preferences").unwrap();
        let kept: std::collections::HashSet<&str> = prefs
            .get_array("favourite_categories")
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        lost.extend(
            tags.iter()
                .filter(|t| !kept.contains(t.as_str()))
                .map(|t| (*id, t.clone())),
        );
        assert!(
            prefs.contains_key("contact"),
            "customer {id}: the other preferences are kept"
        );
        assert!(stored.contains_key("email"), "customer {id}: merged");
    }
    assert!(
        lost.is_empty(),
        "{} of {writes} preference writes lost by the migration (customer, tag): {:?}",
        lost.len(),
        &lost[..lost.len().min(20)]
    );
    let verified = migrator.verify().await.unwrap();
    assert!(verified.equal(), "{verified:?}");
}

/// Tells the preference writers when the migration merges the profiles.
#[derive(Default)]
struct MergeWindow {
    open: std::sync::atomic::AtomicBool,
    writes: AtomicU64,
}

impl Progress for MergeWindow {
    fn begin(&self, table: &'static str, _total: Option<u64>) {
        if table == "customers" {
            self.open.store(true, Ordering::Relaxed);
        }
    }

    fn finish(&self, table: &'static str) {
        if table == "customers" {
            self.open.store(false, Ordering::Relaxed);
        }
    }
}

/// A stored profile that makes its merged document break the validator is reported with its
/// id (the page's transaction declines, the `$set` merge names it); the others are merged.
#[tokio::test]
async fn a_profile_the_validator_refuses_is_reported_with_its_id() {
    let (env, migrator, _pool) = generated("migrate_refused_profile", 0.01).await;
    let mongo = env.mongo().await;
    // As an application could have stored it before the validator existed.
    crate::support::store_past_validator(
        &mongo,
        "customer_profiles",
        3,
        doc! { "$set": { "preferences": "none" } },
    )
    .await;
    let report = migrator
        .migrate(options(), Arc::new(NoProgress))
        .await
        .unwrap();
    let customers = refused_one(&report, Entity::Customers, 3);
    assert_eq!(customers.written, 99, "the other profiles flowed on");
    let merged = mongo
        .collection::<Document>("customer_profiles")
        .count_documents(doc! { "email": { "$exists": true } })
        .await
        .unwrap();
    assert_eq!(merged, 99);
}
