//! # aethermart-core
//!
//! The AetherMart data platform as a library: a typed domain model, configuration from the
//! environment, connections to the two stores — MariaDB (the operational, 3NF store) and
//! MongoDB (the document store) — the versioned schema, the data generator, the initial
//! migration ([`migrate`]) and the real-time sync ([`sync`]).
//!
//! ```no_run
//! use aethermart_core::{config::Config, connect, doctor};
//!
//! # async fn demo() -> Result<(), aethermart_core::Error> {
//! // AETHERMART_MARIADB_URL / AETHERMART_MONGODB_URI (+ MARIA_DB_PASS / MONGO_ADMIN_PASS).
//! let config = Config::from_env()?;
//! let pool = connect::mariadb_pool(&config.mariadb, Default::default()).await?;
//! let mongo = connect::mongodb_database(&config.mongodb).await?;
//! let report = doctor::diagnose(&config).await;
//! println!("{report}");
//! # drop((pool, mongo)); Ok(()) }
//! ```
//!
//! Keeping MongoDB in step with MariaDB in your own service (what `aethermart-worker` does):
//!
//! ```no_run
//! use aethermart_core::{config::Config, sync};
//! use std::sync::Arc;
//!
//! # async fn demo() -> Result<(), aethermart_core::Error> {
//! let config = Config::from_env()?;
//! let options = sync::SyncOptions::default();
//! let (source, mongo) = sync::QueueSource::connect(&config, &options, 4).await?;
//! let syncer = sync::Syncer::new(Arc::new(source), Arc::new(sync::MongoSink::new(mongo)), options);
//! let (stop, stopped) = tokio::sync::watch::channel(false);
//! // ... call `stop.send_replace(true)` on shutdown; the batch in flight finishes first.
//! let report = syncer.run(stopped).await?;
//! println!("{} changes applied", report.changes);
//! # drop(stop); Ok(()) }
//! ```
//!
//! Passwords are held in [`config::Secret`] and never appear in `Debug`, logs or errors.

#![deny(missing_docs)]

pub mod bench;
pub mod cluster;
pub mod config;
pub mod connect;
pub mod doctor;
pub mod document;
pub mod error;
pub mod generate;
pub mod lifecycle;
pub mod lineage;
pub mod migrate;
pub mod model;
mod mongo_write;
pub mod orders;
pub mod quality;
pub mod reports;
pub mod schema;
pub mod security;
pub mod sync;

pub use error::{Error, Result};
