//! Both servers are reachable, healthy per `doctor`, and bad addresses give errors naming them.

use crate::support::{TestEnv, config};
use aethermart_core::cluster;
use aethermart_core::config::{Config, MARIADB_URL, MONGODB_URI, MariaDbConfig, MongoConfig};
use aethermart_core::doctor::{self, Verdict};
use aethermart_core::model::*;
use chrono::{TimeZone, Utc};
use mongodb::bson::{self, doc};
use rust_decimal::Decimal;

#[tokio::test]
async fn doctor_passes_on_the_local_servers() {
    let report = doctor::diagnose(&config()).await;
    assert!(report.healthy(), "doctor found problems:\n{report}");
    // The local MariaDB has no anonymous account (any user name would log in as it).
    let env = TestEnv::new("no_anonymous").await;
    let anonymous: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mysql.user WHERE User = ''")
        .fetch_one(&env.pool().await)
        .await
        .unwrap();
    assert_eq!(anonymous, 0, "anonymous MariaDB accounts");
    let version = report.mariadb.version.as_deref().unwrap_or_default();
    assert!(version.contains("MariaDB"), "{version}");
    for name in [
        "binlog_format",
        "character_set_server",
        "read_only",
        "wsrep",
    ] {
        let check = report
            .mariadb
            .checks
            .iter()
            .find(|c| c.name == name)
            .expect(name);
        assert_eq!(check.verdict, Verdict::Pass, "{check:?}");
    }
    assert!(report.mongodb.version.is_some());
}

#[tokio::test]
async fn unreachable_servers_are_reported_with_host_and_port() {
    // Port 1 on loopback: nothing listens there.
    let mariadb = MariaDbConfig::from_lookup(|k| {
        (k == MARIADB_URL).then(|| "mysql://u@127.0.0.1:1/x".into())
    })
    .unwrap();
    let mongodb = MongoConfig::from_lookup(|k| {
        (k == MONGODB_URI).then(|| {
            "mongodb://127.0.0.1:1/x?directConnection=true&serverSelectionTimeoutMS=300".into()
        })
    })
    .unwrap();
    let report = doctor::diagnose(&Config { mariadb, mongodb }).await;
    assert!(!report.healthy());
    let text = report.to_string();
    assert!(text.contains("MariaDB at 127.0.0.1:1"), "{text}");
    assert!(text.contains("MongoDB at 127.0.0.1:1"), "{text}");
}

#[tokio::test]
async fn wrong_password_is_an_error_that_does_not_show_it() {
    let cfg = config();
    let wrong = aethermart_core::config::Secret::new("definitely-Wrong-Pa55");
    let bad = cfg.mariadb.with_login(cfg.mariadb.user(), wrong);
    let err = cluster::writable_connection(&bad, false)
        .await
        .expect_err("login must fail");
    let msg = format!("{err} {err:?}");
    assert!(msg.contains(&cfg.mariadb.endpoint()), "{msg}");
    assert!(!msg.contains("definitely-Wrong-Pa55"), "{msg}");
}

#[tokio::test]
async fn a_customer_profile_round_trips_through_mongodb_and_decimals_through_mariadb() {
    let env = TestEnv::new("round_trip").await;
    let email = Email::parse("ana.lopez@example.com").unwrap();
    let profile = CustomerProfile {
        customer_id: CustomerId(42),
        first_name: "Ana".into(),
        last_name: "López".into(),
        email,
        phone: Some("+34 600 000 000".into()),
        addresses: vec![ProfileAddress {
            address_id: AddressId(7),
            kind: AddressKind::Shipping,
            line1: "Calle Mayor 1".into(),
            line2: None,
            city: "Madrid".into(),
            region: None,
            postal_code: "28013".into(),
            country: "ES".into(),
            is_default: true,
        }],
        orders: OrderSummary {
            order_count: 3,
            lifetime_value: Decimal::new(129_997, 2),
            last_order_at: Some(Utc.timestamp_opt(1_760_000_000, 0).unwrap()),
        },
        preferences: Preferences::default(),
        created_at: Utc.timestamp_opt(1_750_000_000, 0).unwrap(),
        updated_at: Utc.timestamp_opt(1_760_000_100, 0).unwrap(),
    };
    let coll = env
        .mongo()
        .await
        .collection::<CustomerProfile>("customer_profiles");
    coll.insert_one(&profile).await.unwrap();
    let back = coll
        .find_one(doc! { "_id": 42_i64 })
        .await
        .unwrap()
        .expect("stored profile");
    assert_eq!(back, profile);
    let raw = bson::to_document(&profile).unwrap();
    assert_eq!(
        raw.get_array("addresses").unwrap().len(),
        1,
        "addresses are nested"
    );

    let pool = env.pool().await;
    let (price,): (Decimal,) = sqlx::query_as("SELECT CAST('1299.97' AS DECIMAL(12,2)) * 3")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(price, Decimal::new(389_991, 2), "DECIMAL arrives exact");
}
