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

/// Issue 16, finding 5: `ssl-mode` and `ssl-ca` in `AETHERMART_MARIADB_URL` work. The local
/// server has a certificate for 127.0.0.1 signed by its own CA (`scripts/services.sh`); an
/// account that requires TLS is refused without it and served with it.
#[tokio::test]
async fn tls_from_the_url_verifies_the_server_and_an_account_can_require_it() {
    let ca = std::env::var("AETHERMART_LOCAL_MARIADB_CA").unwrap_or_else(|_| {
        panic!("AETHERMART_LOCAL_MARIADB_CA is not set: run `eval \"$(scripts/services.sh env)\"`")
    });
    assert!(std::path::Path::new(&ca).is_file(), "no CA file at {ca}");
    let env = TestEnv::new("tls").await;
    let admin = env.pool().await;
    let user = format!("tls_{}", std::process::id());
    sqlx::raw_sql(&format!(
        "CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY 'Tls-S3cret' REQUIRE SSL;
         GRANT SELECT ON `{db}`.* TO '{user}'@'%';",
        db = env.config.mariadb.database()
    ))
    .execute(&admin)
    .await
    .unwrap();
    let base = &env.config.mariadb;
    let url = |query: &str| {
        format!(
            "mysql://{user}@{}/{}{query}",
            base.endpoint(),
            base.database()
        )
    };
    let login = |url: String| {
        MariaDbConfig::from_lookup(|var| match var {
            v if v == MARIADB_URL => Some(url.clone()),
            v if v == aethermart_core::config::MARIADB_PASSWORD => Some("Tls-S3cret".to_owned()),
            _ => None,
        })
        .expect("a valid URL")
    };
    // Without TLS: refused (1045, access denied: the account requires SSL).
    let plain =
        aethermart_core::connect::node_connection(&login(url("?ssl-mode=DISABLED")), true).await;
    let err = plain.expect_err("an account that requires TLS is refused without it");
    assert!(err.to_string().contains("Access denied"), "{err}");
    // With the CA and the host verified: served over TLS.
    let verified = login(url(&format!("?ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}")));
    let mut conn = aethermart_core::connect::node_connection(&verified, true)
        .await
        .expect("TLS with the local CA and 127.0.0.1 in the certificate");
    let (_, cipher): (String, String) = sqlx::query_as("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(!cipher.is_empty(), "the session is encrypted");
    drop(conn);
    // A CA that did not sign the server's certificate is refused.
    let wrong_ca = std::env::temp_dir().join(format!("amt_wrong_ca_{}.pem", std::process::id()));
    std::fs::write(&wrong_ca, WRONG_CA).unwrap();
    let wrong = login(url(&format!(
        "?ssl-mode=VERIFY_CA&ssl-ca={}",
        wrong_ca.display()
    )));
    let refused = aethermart_core::connect::node_connection(&wrong, true).await;
    assert!(
        refused.is_err(),
        "a server certificate from another CA is accepted"
    );
    std::fs::remove_file(&wrong_ca).ok();
    sqlx::raw_sql(&format!("DROP USER '{user}'@'%'"))
        .execute(&admin)
        .await
        .unwrap();
}

/// A CA certificate (its key was thrown away) that signed nothing the local server uses.
const WRONG_CA: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIDIzCCAgugAwIBAgIUc57fZ1ny0QvRiljv/frMe81+KykwDQYJKoZIhvcNAQEL\n\
BQAwIDEeMBwGA1UEAwwVTm90IHRoZSBBZXRoZXJNYXJ0IENBMCAXDTI2MTIwMTEz\n\
MjkyOFoYDzIxMjYxMTA3MTMyOTI4WjAgMR4wHAYDVQQDDBVOb3QgdGhlIEFldGhl\n\
ck1hcnQgQ0EwggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQC7IfLqZu6K\n\
JOAlsHX39ThUkzaNNZeFzWpHNhcr9jKM1riRqbG6A5+1eMj8dNo1+Vr3JbiDc8wQ\n\
48TQnIqLNpIKwRGbv7pVI9UXJyBtJU+1xl8Bf9L/suh6sJWtSMRgOuc53EtQuwGM\n\
hAZvPGwJvWuB8VCYBVhnFhliKF45yG43r2AnZUijPZI/DVgx2QoAGeKG56fxDYnJ\n\
FDcVP+LgiuXO+r3PlScFPQnoHheq0Jx/dERLxRXC9+hKVa7wgf9fZ7VkYoVYPAVE\n\
3QlCJy6hD9XhXsl2Hyq/0VY+HFWhNXKN1FEFlMBTTooNJP751E7M8RpX6GjeFSGw\n\
AJc4cDmpRLprAgMBAAGjUzBRMB0GA1UdDgQWBBRu2GtQX0Q/dYk/9AdOASXcYAb4\n\
cTAfBgNVHSMEGDAWgBRu2GtQX0Q/dYk/9AdOASXcYAb4cTAPBgNVHRMBAf8EBTAD\n\
AQH/MA0GCSqGSIb3DQEBCwUAA4IBAQAG4laL40ob8WcZlQzxqM8ZZNpUYTRWBaGr\n\
R8sDvV8XlTuJhPyawNF1swMidKx5+eYef4ziOl/K6etVpcmSHMjf+5lOIAYP+4Oe\n\
YrAn2xNlXAwBjSQh5Ke5LrmZq/SnRnJzMjPgqJ1r7gv9HFgFqiJlwlFuFkSvlLbH\n\
/CR/PFV3b/XYmvmioZU7+0fQ5HBVH1YXJIYZw3hee6QRbN4xIHVr5WIYxLgTnwjr\n\
eDl/6GLKKaoxCsqmb8F2QfBiTwo0ehSASMkPii5uJfbFaEHAc8yHSnxRQPdE+H0F\n\
00iBBGl5OI/cw/W9++D4OkiVIy/2H1G91l+QdBG+DqE1qszn5tvK\n\
-----END CERTIFICATE-----\n\
";

/// The configured MongoDB URI (the local server's, with its login), or a loud failure.
fn mongodb_uri(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run `eval \"$(scripts/services.sh env)\"` (the local servers)")
    })
}

/// The server's error code of a refused MongoDB command, if it was one.
fn mongodb_code(err: &mongodb::error::Error) -> Option<i32> {
    match err.kind.as_ref() {
        mongodb::error::ErrorKind::Command(c) => Some(c.code),
        mongodb::error::ErrorKind::Write(mongodb::error::WriteFailure::WriteError(w)) => {
            Some(w.code)
        }
        _ => None,
    }
}

/// Issue 16, finding 5: the local MongoDB-protocol server runs with authentication. A client
/// without the login reads nothing, writes nothing and cannot make itself a user; a wrong
/// password is refused. Nothing changes.
#[tokio::test]
async fn mongodb_refuses_clients_without_the_login() {
    let env = TestEnv::new("mongo_auth").await;
    let db = env.mongo().await;
    let profiles = db.collection::<bson::Document>("customer_profiles");
    profiles
        .insert_one(doc! { "_id": 1_i64, "email": "ana@example.com" })
        .await
        .unwrap();
    let uri = mongodb_uri(MONGODB_URI);
    let user = uri
        .strip_prefix("mongodb://")
        .and_then(|rest| rest.split_once('@'))
        .map(|(user, _)| user.to_owned())
        .expect("the configured URI names a user");
    assert!(std::env::var("MONGO_ADMIN_PASS").is_ok_and(|p| !p.is_empty()));
    let with_timeout = |uri: String| format!("{uri}&serverSelectionTimeoutMS=3000");

    let anonymous =
        mongodb::Client::with_uri_str(with_timeout(uri.replacen(&format!("{user}@"), "", 1)))
            .await
            .unwrap();
    let anon_db = anonymous.database(env.config.mongodb.database());
    let anon_profiles = anon_db.collection::<bson::Document>("customer_profiles");
    let read = anon_profiles.find_one(doc! {}).await;
    assert_eq!(
        read.as_ref().err().and_then(mongodb_code),
        Some(13),
        "an anonymous read is refused as unauthorised: {read:?}"
    );
    let write = anon_profiles.insert_one(doc! { "_id": 2_i64 }).await;
    assert_eq!(
        write.as_ref().err().and_then(mongodb_code),
        Some(13),
        "{write:?}"
    );
    let intruder = format!("intruder_{}", std::process::id());
    let made = anonymous
        .database("admin")
        .run_command(doc! { "createUser": &intruder, "pwd": "x", "roles": ["root"] })
        .await;
    assert_eq!(
        made.as_ref().err().and_then(mongodb_code),
        Some(13),
        "{made:?}"
    );

    let wrong = mongodb::Client::with_uri_str(with_timeout(uri.replacen(
        &format!("{user}@"),
        &format!("{user}:not-the-password@"),
        1,
    )))
    .await
    .unwrap();
    let refused = wrong
        .database(env.config.mongodb.database())
        .collection::<bson::Document>("customer_profiles")
        .find_one(doc! {})
        .await;
    assert!(
        matches!(
            refused.as_ref().map_err(|e| e.kind.as_ref()),
            Err(mongodb::error::ErrorKind::Authentication { .. })
        ),
        "a wrong password is refused: {refused:?}"
    );

    // Nothing changed: one profile, no new user.
    assert_eq!(profiles.count_documents(doc! {}).await.unwrap(), 1);
    let users = db
        .client()
        .database("admin")
        .run_command(doc! { "usersInfo": &intruder })
        .await
        .unwrap();
    assert!(
        users.get_array("users").unwrap().is_empty(),
        "no user was created: {users:?}"
    );
}

/// Issue 16, finding 5: TLS to MongoDB comes from the URI (`tls=true&tlsCAFile=…`). The local
/// TLS-only server (scripts/services.sh) is served with its CA, and refused without TLS or
/// with a CA that did not sign its certificate.
#[tokio::test]
async fn mongodb_tls_from_the_uri_verifies_the_server() {
    let uri = mongodb_uri("AETHERMART_LOCAL_MONGODB_TLS_URI");
    let password = std::env::var("MONGO_ADMIN_PASS").expect("MONGO_ADMIN_PASS is set");
    let login = |uri: String| {
        MongoConfig::from_lookup(|var| match var {
            v if v == MONGODB_URI => Some(uri.clone()),
            v if v == aethermart_core::config::MONGODB_PASSWORD => Some(password.clone()),
            _ => None,
        })
        .expect("a valid URI")
    };
    let db = aethermart_core::connect::mongodb_database(&login(uri.clone()))
        .await
        .expect("TLS with the local CA and 127.0.0.1 in the certificate");
    let probe = db.collection::<bson::Document>(&format!("tls_probe_{}", std::process::id()));
    probe.insert_one(doc! { "_id": 1_i64 }).await.unwrap();
    assert_eq!(probe.count_documents(doc! {}).await.unwrap(), 1);
    probe.drop().await.unwrap();

    let quick = |uri: &str| format!("{uri}&serverSelectionTimeoutMS=2000");
    let plain = uri
        .replace("&tls=true", "")
        .split("&tlsCAFile=")
        .next()
        .unwrap()
        .to_owned();
    assert!(
        aethermart_core::connect::mongodb_database(&login(quick(&plain)))
            .await
            .is_err(),
        "a client without TLS is served by the TLS-only server"
    );
    let wrong_ca =
        std::env::temp_dir().join(format!("amt_wrong_ca_mongo_{}.pem", std::process::id()));
    std::fs::write(&wrong_ca, WRONG_CA).unwrap();
    let foreign = format!("{plain}&tls=true&tlsCAFile={}", wrong_ca.display());
    let refused = aethermart_core::connect::mongodb_database(&login(quick(&foreign))).await;
    std::fs::remove_file(&wrong_ca).ok();
    assert!(
        refused.is_err(),
        "a server certificate from another CA is accepted"
    );
}
