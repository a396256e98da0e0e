//! Versioned schema apply against a real MariaDB: idempotent, locked, drift and dirty detected.

use crate::support::TestEnv;
use aethermart_core::schema::{
    MariaDbSchema, SchemaApplier, SchemaError, SchemaVersion, VERSIONS, VersionState,
};

#[tokio::test]
async fn applying_twice_is_a_no_op_and_status_shows_all_applied() {
    let env = TestEnv::new("schema_twice").await;
    let schema = MariaDbSchema::new(env.config.mariadb.clone());
    let before = schema.status().await.unwrap();
    assert!(
        before.iter().all(|s| s.state == VersionState::Pending),
        "{before:?}"
    );

    let first = schema.apply().await.unwrap();
    assert_eq!(
        first.applied,
        (1..=VERSIONS.len() as u32).collect::<Vec<_>>()
    );
    let second = schema.apply().await.unwrap();
    assert!(
        second.applied.is_empty(),
        "second apply changed something: {second:?}"
    );
    assert_eq!(second.already_applied, VERSIONS.len());

    let status = schema.status().await.unwrap();
    assert!(
        status.iter().all(|s| s.state == VersionState::Applied),
        "{status:?}"
    );
    let pool = env.pool().await;
    for object in [
        "Customers",
        "Customer_Addresses",
        "Categories",
        "Products",
        "Services",
        "Orders",
        "Order_Items",
        "Service_Bookings",
        "v_QuarterlySales",
        "v_CustomerOrderSummary",
        "v_LowStock",
        "v_SemanticSearchText",
    ] {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
        )
        .bind(object)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(n, 1, "{object} missing");
    }
    let procs: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE() \
         AND ROUTINE_NAME IN ('sp_PlaceOrder', 'sp_CancelOrder')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(procs, 2);
}

#[tokio::test]
async fn concurrent_appliers_apply_each_version_once() {
    let env = TestEnv::new("schema_race").await;
    let a = MariaDbSchema::new(env.config.mariadb.clone());
    let b = a.clone();
    let (ra, rb) = tokio::join!(a.apply(), b.apply());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let mut all: Vec<u32> = ra.applied.iter().chain(&rb.applied).copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (1..=VERSIONS.len() as u32).collect::<Vec<_>>(),
        "each version exactly once"
    );
}

static ORIGINAL: &[SchemaVersion] = &[SchemaVersion {
    version: 1,
    description: "t",
    sql: "CREATE TABLE t (x INT)",
}];
static EDITED: &[SchemaVersion] = &[SchemaVersion {
    version: 1,
    description: "t",
    sql: "CREATE TABLE t (x BIGINT)",
}];
static FAILING: &[SchemaVersion] = &[
    SchemaVersion {
        version: 1,
        description: "t",
        sql: "CREATE TABLE t (x INT)",
    },
    SchemaVersion {
        version: 2,
        description: "half",
        sql: "CREATE TABLE u (x INT); SELECT * FROM missing_table",
    },
];

#[tokio::test]
async fn an_edited_applied_script_is_refused() {
    let env = TestEnv::new("schema_drift").await;
    MariaDbSchema::with_migrations(env.config.mariadb.clone(), ORIGINAL)
        .apply()
        .await
        .unwrap();
    let edited = MariaDbSchema::with_migrations(env.config.mariadb.clone(), EDITED);
    let err = edited.apply().await.expect_err("drift must be refused");
    assert!(
        matches!(err, SchemaError::Drift { version: 1, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("edited after it was applied"),
        "{err}"
    );
    let status = edited.status().await.unwrap();
    assert!(matches!(status[0].state, VersionState::Drift { .. }));
}

#[tokio::test]
async fn a_script_failing_half_way_leaves_the_database_marked_dirty() {
    let env = TestEnv::new("schema_dirty").await;
    let schema = MariaDbSchema::with_migrations(env.config.mariadb.clone(), FAILING);
    let err = schema.apply().await.expect_err("version 2 fails");
    assert!(
        matches!(err, SchemaError::Script { version: 2, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("missing_table"),
        "names the cause: {err}"
    );
    let again = schema.apply().await.expect_err("dirty must be refused");
    assert!(
        matches!(again, SchemaError::Dirty { version: 2 }),
        "{again}"
    );
    let status = schema.status().await.unwrap();
    assert_eq!(status[0].state, VersionState::Applied);
    assert_eq!(status[1].state, VersionState::Dirty);

    // The guarded teardown is the way out on a throwaway database.
    let refused = schema
        .teardown(false)
        .await
        .expect_err("unconfirmed teardown");
    assert!(matches!(refused, SchemaError::NotConfirmed { .. }));
    assert_eq!(
        schema.status().await.unwrap()[1].state,
        VersionState::Dirty,
        "nothing dropped"
    );
    schema.teardown(true).await.unwrap();
    assert!(
        schema
            .status()
            .await
            .unwrap()
            .iter()
            .all(|s| s.state == VersionState::Pending)
    );
}
