//! Embed the real-time sync in your own service, with a sink of your own.
//!
//! The `Sink` here wraps the MongoDB sink and, once MongoDB has acknowledged a batch, tells the
//! rest of the service which documents changed (here: prints cache invalidations). It drains
//! what is queued and exits; a service would call `Syncer::run` with its shutdown signal.
//!
//! `eval "$(scripts/services.sh env)"; cargo run -p aethermart-examples --bin embed_syncer`

use aethermart_core::config::Config;
use aethermart_core::projection::Refused;
use aethermart_core::sync::{
    MongoSink, QueueSource, Sink, SyncError, SyncOptions, Syncer, Write, WriteOp,
};
use async_trait::async_trait;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes through to MongoDB, then invalidates the service's cache entries.
struct InvalidatingSink {
    mongo: MongoSink,
    invalidated: AtomicU64,
}

#[async_trait]
impl Sink for InvalidatingSink {
    async fn apply(&self, collection: &str, writes: &[Write]) -> Result<Vec<Refused>, SyncError> {
        // The contract: apply idempotently, report refused documents, Err for the whole batch.
        let refused = self.mongo.apply(collection, writes).await?;
        for w in writes
            .iter()
            .filter(|w| !refused.iter().any(|r| r.key == w.key))
        {
            let what = match w.op {
                WriteOp::Delete => "deleted",
                WriteOp::Merge(_) | WriteOp::Replace(_) => "changed",
            };
            println!("invalidate {collection}/{} ({what})", w.key);
            self.invalidated.fetch_add(1, Ordering::Relaxed);
        }
        Ok(refused)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(n) => {
            println!("{n} cache entries invalidated");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run() -> Result<u64, aethermart_core::Error> {
    let config = Config::from_env()?;
    let options = SyncOptions::default();
    // Pool sized for the four queues; the MongoDB database for the sink.
    let (source, mongo) = QueueSource::connect(&config, &options, 4).await?;
    let sink = Arc::new(InvalidatingSink {
        mongo: MongoSink::new(mongo),
        invalidated: AtomicU64::new(0),
    });
    let report = Syncer::new(Arc::new(source), sink.clone(), options)
        .drain()
        .await?;
    println!(
        "{} queued changes applied as {} document writes",
        report.changes, report.documents
    );
    Ok(sink.invalidated.load(Ordering::Relaxed))
}
