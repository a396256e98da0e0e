//! Search over a generated and migrated catalogue read from the real document store.

use aethermart_core::migrate::{BulkMigrator, MigrateOptions, Migrator};
use aethermart_core::progress::NoProgress;
use aethermart_core::search::quality::labelled_queries;
use aethermart_core::search::{Catalogue, Kind, Query, SearchError};
use mongodb::bson::{Document, doc};
use rust_decimal::Decimal;
use std::sync::Arc;

#[tokio::test]
async fn the_migrated_catalogue_is_searchable_in_a_shoppers_words() {
    let (env, pool) = crate::support::generated("search_catalogue", 11, 0.05).await;
    let mongo = env.mongo().await;
    BulkMigrator::new(env.config.mariadb.clone(), mongo.clone())
        .migrate(MigrateOptions::default(), Arc::new(NoProgress))
        .await
        .unwrap();
    let catalogue = Catalogue::load(&mongo).await.unwrap();
    let (products, services): (i64, i64) =
        sqlx::query_as("SELECT (SELECT COUNT(*) FROM Products), (SELECT COUNT(*) FROM Services)")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(catalogue.items().len() as i64, products + services);

    // A consultation asked for in everyday words: services only, the right kind first.
    let hits = catalogue.search(&Query {
        kind: Some(Kind::Service),
        ..Query::new("find out why the internet is so slow at home")
    });
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|h| h.kind == Kind::Service));
    assert_eq!(
        hits[0].category_path.last().map(String::as_str),
        Some("Network Audits"),
        "{hits:?}"
    );

    // Filters hold on real data.
    let cheap = catalogue.search(&Query {
        k: 50,
        max_price: Some(Decimal::from(300)),
        in_stock: true,
        ..Query::new("gaming")
    });
    assert!(!cheap.is_empty());
    assert!(cheap.iter().all(|h| h.price <= Decimal::from(300)));

    // The labelled queries rank something relevant on this small catalogue too.
    let quality = catalogue.evaluate(&labelled_queries());
    assert!(quality.ndcg_at_10 > 0.2, "{quality:?}");

    // A document search cannot read is left out, named by collection, id and field.
    // (Stored past the validator, as by an application before the validator existed.)
    crate::support::store_past_validator(&mongo, "products", 1, doc! { "$unset": { "price": "" } })
        .await;
    assert!(
        mongo
            .collection::<Document>("products")
            .find_one(doc! { "_id": 1_i64, "price": { "$exists": false } })
            .await
            .unwrap()
            .is_some()
    );
    let reloaded = Catalogue::load(&mongo).await.unwrap();
    assert_eq!(reloaded.items().len(), catalogue.items().len() - 1);
    assert!(
        !reloaded
            .items()
            .iter()
            .any(|i| i.kind == Kind::Product && i.id == 1)
    );
    let [skipped] = reloaded.skipped() else {
        panic!("one document skipped: {:?}", reloaded.skipped());
    };
    assert!(matches!(
        skipped,
        SearchError::Document { field: "price", .. }
    ));
    assert_eq!(
        skipped.to_string(),
        "products document 1: field `price` is missing or has the wrong type"
    );
}
