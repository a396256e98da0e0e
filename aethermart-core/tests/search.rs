//! Search over a generated and migrated catalogue read from the real document store.

use aethermart_core::migrate::{BulkMigrator, MigrateOptions, Migrator};
use aethermart_core::progress::NoProgress;
use aethermart_core::search::quality::labelled_queries;
use aethermart_core::search::{Catalogue, Kind, Query, Ranking, SearchError};
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
    let quality = catalogue.evaluate(&labelled_queries(), None, Ranking::Lexical);
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

#[cfg(feature = "embeddings")]
mod embeddings {
    use super::*;
    use crate::support;
    use aethermart_core::search::embedding::{Embedder, ModelError};
    use aethermart_core::search::{index, vectors};
    use aethermart_core::sync::{MongoSink, QueueSource, SyncOptions, Syncer};
    use std::time::{Duration, Instant};

    #[test]
    fn a_missing_or_broken_model_file_is_named() {
        let dir = std::env::temp_dir().join(format!("aethermart-model-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let source = support::model_dir();
        let missing = Embedder::load(&dir).unwrap_err();
        assert!(
            matches!(&missing, ModelError::Missing { path } if path == &dir.join("config.json")),
            "{missing:?}"
        );
        assert!(
            missing.to_string().contains("scripts/model.sh fetch"),
            "{missing}"
        );
        for file in ["config.json", "tokenizer.json"] {
            std::fs::copy(source.join(file), dir.join(file)).unwrap();
        }
        let weights = dir.join("model.safetensors");
        assert!(matches!(
            Embedder::load(&dir).unwrap_err(),
            ModelError::Missing { path } if path == weights
        ));
        // Truncated weights (an interrupted copy): named, not a panic.
        let full = std::fs::read(source.join("model.safetensors")).unwrap();
        std::fs::write(&weights, &full[..full.len() / 2]).unwrap();
        let broken = Embedder::load(&dir).unwrap_err();
        assert!(
            matches!(&broken, ModelError::Invalid { path, .. } if path == &weights),
            "{broken:?}"
        );
        assert!(broken.to_string().contains(&weights.display().to_string()));
        std::fs::write(dir.join("tokenizer.json"), b"{ not a tokenizer").unwrap();
        let broken = Embedder::load(&dir).unwrap_err();
        assert!(
            matches!(&broken, ModelError::Invalid { path, .. } if path == &dir.join("tokenizer.json")),
            "{broken:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[derive(serde::Deserialize)]
    struct Reference {
        sentences: Vec<ReferenceSentence>,
    }

    #[derive(serde::Deserialize)]
    struct ReferenceSentence {
        text: String,
        token_ids: Vec<u32>,
        embedding: Vec<f32>,
    }

    /// The reference: an independent implementation (a WordPiece tokenizer and the transformer
    /// in numpy, float64: aethermart-core/data/minilm_reference.py) run once over the same
    /// files.
    #[test]
    fn known_sentences_embed_as_the_reference_implementation_computed() {
        let reference: Reference =
            serde_json::from_str(include_str!("../data/minilm_reference.json")).unwrap();
        let embedder = support::embedder();
        let texts: Vec<&str> = reference
            .sentences
            .iter()
            .map(|s| s.text.as_str())
            .collect();
        // One batch: the shorter sentence is padded, and padding must not change its vector.
        let together = embedder.embed(&texts).unwrap();
        let tokens: usize = reference.sentences.iter().map(|s| s.token_ids.len()).sum();
        assert_eq!(together.tokens, tokens, "tokens read, padding excluded");
        for (s, vector) in reference.sentences.iter().zip(&together.vectors) {
            let alone = embedder.embed(&[s.text.as_str()]).unwrap();
            assert_eq!(alone.tokens, s.token_ids.len(), "{}", s.text);
            for v in [vector, &alone.vectors[0]] {
                assert_eq!(v.len(), 384);
                let worst = v
                    .iter()
                    .zip(&s.embedding)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0_f32, f32::max);
                assert!(worst < 1e-4, "{}: largest difference {worst}", s.text);
            }
        }
        // Different sentences, different vectors (the check above could not pass on zeros).
        let cosine: f32 = together.vectors[0]
            .iter()
            .zip(&together.vectors[1])
            .map(|(a, b)| a * b)
            .sum();
        assert!(cosine < 0.9, "{cosine}");
    }

    async fn vector_of(mongo: &mongodb::Database, id: &str) -> Option<Document> {
        mongo
            .collection::<Document>(vectors::COLLECTION)
            .find_one(doc! { "_id": id })
            .await
            .unwrap()
    }

    async fn catalogue_hit(mongo: &mongodb::Database, text: &str) -> Option<i64> {
        let catalogue = Catalogue::load(mongo).await.unwrap();
        let vector = support::embedder()
            .embed(&[text])
            .unwrap()
            .vectors
            .remove(0);
        let hits = catalogue.search(&Query {
            vector: Some(&vector),
            kind: Some(Kind::Product),
            ..Query::new(text)
        });
        hits.first().map(|h| h.id)
    }

    /// The sync keeps the vectors fresh: a rename is recomputed and findable, a stock change
    /// leaves the vector alone and does not lose it, a deleted item's vector goes; without the
    /// model the changed item's vector goes stale, search stops using it, and the quality
    /// check and `reindex --stale-only` find and repair exactly it.
    #[tokio::test]
    async fn the_sync_keeps_search_vectors_fresh() {
        let (env, pool) = support::generated("search_fresh", 11, 0.02).await;
        let mongo = env.mongo().await;
        BulkMigrator::new(env.config.mariadb.clone(), mongo.clone())
            .migrate(MigrateOptions::default(), Arc::new(NoProgress))
            .await
            .unwrap();
        let embedder = support::embedder();
        let report = index::reindex(&mongo, embedder.clone(), true, Arc::new(NoProgress))
            .await
            .unwrap();
        let catalogue = Catalogue::load(&mongo).await.unwrap();
        assert_eq!(report.embedded, catalogue.items().len());
        assert_eq!(catalogue.vectors_present(), catalogue.items().len());

        let options = SyncOptions {
            poll_interval: Duration::from_millis(5),
            max_idle_wait: Duration::from_millis(20),
            ..SyncOptions::default()
        };
        let source = QueueSource::connect(&env.config, &options, 4)
            .await
            .unwrap()
            .0;
        let sink = MongoSink::new(mongo.clone()).with_embedder(embedder.clone());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let syncer = Syncer::new(Arc::new(source), Arc::new(sink), options);
        let worker = tokio::spawn(async move { syncer.run(support::until_stopped(stopped)).await });

        let stock_before = vector_of(&mongo, "product:2").await.unwrap();
        sqlx::query("UPDATE Products SET stock = stock + 5 WHERE product_id = 2")
            .execute(&pool)
            .await
            .unwrap();
        let new_name = "Hearthglow Pellet Stove";
        sqlx::query("UPDATE Products SET name = ? WHERE product_id = 1")
            .bind(new_name)
            .execute(&pool)
            .await
            .unwrap();
        // Findable by its new name, and by meaning from its new text: the product document
        // is written first, its vector right after.
        let committed = Instant::now();
        loop {
            let catalogue = Catalogue::load(&mongo).await.unwrap();
            if catalogue.vectors_present() == catalogue.items().len()
                && catalogue_hit(&mongo, new_name).await == Some(1)
            {
                break;
            }
            assert!(
                committed.elapsed() < Duration::from_secs(30),
                "rename never findable"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        println!(
            "renamed product findable with its new vector after {:?}",
            committed.elapsed()
        );

        // The stock change was applied (the product document), its vector untouched.
        support::until_drained(&pool, Duration::from_secs(30)).await;
        assert_eq!(vector_of(&mongo, "product:2").await.unwrap(), stock_before);

        // A product added and deleted again: its vector comes and goes with it.
        sqlx::query(
            "INSERT INTO Products (product_id, sku, name, description, category_id, price, stock) \
             SELECT 900001, 'SKU-SEARCH-1', 'Lumen Desk Lamp', 'A lamp for reading late', category_id, 25, 3 \
             FROM Products WHERE product_id = 1",
        )
        .execute(&pool)
        .await
        .unwrap();
        let added = Instant::now();
        while vector_of(&mongo, "product:900001").await.is_none() {
            assert!(
                added.elapsed() < Duration::from_secs(30),
                "new product never embedded"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sqlx::query("DELETE FROM Products WHERE product_id = 900001")
            .execute(&pool)
            .await
            .unwrap();
        while vector_of(&mongo, "product:900001").await.is_some() {
            assert!(
                added.elapsed() < Duration::from_secs(30),
                "deleted product's vector stayed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.send(true).unwrap();
        worker.await.unwrap().unwrap();

        // A sync without the model: the renamed item's vector goes stale and is not used.
        let options = SyncOptions {
            poll_interval: Duration::from_millis(5),
            ..SyncOptions::default()
        };
        sqlx::query("UPDATE Products SET description = 'Warms a room without a chimney' WHERE product_id = 3")
            .execute(&pool)
            .await
            .unwrap();
        let source = QueueSource::connect(&env.config, &options, 4)
            .await
            .unwrap()
            .0;
        Syncer::new(
            Arc::new(source),
            Arc::new(MongoSink::new(mongo.clone())),
            options,
        )
        .drain()
        .await
        .unwrap();
        let catalogue = Catalogue::load(&mongo).await.unwrap();
        assert_eq!(catalogue.vectors_present(), catalogue.items().len() - 1);
        let (items, fresh) = vectors::freshness(&mongo).await.unwrap();
        let stale: Vec<i64> = fresh.stale.iter().map(|&i| items[i].id).collect();
        assert_eq!((stale, fresh.orphans.len()), (vec![3], 0));
        let repaired = index::reindex(&mongo, embedder, false, Arc::new(NoProgress))
            .await
            .unwrap();
        assert_eq!(repaired.embedded, 1);
        let catalogue = Catalogue::load(&mongo).await.unwrap();
        assert_eq!(catalogue.vectors_present(), catalogue.items().len());
    }
}
