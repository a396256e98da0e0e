//! # aethermart-core
//!
//! The AetherMart data platform as a library: a typed domain model, configuration from the
//! environment, connections to the two stores — MariaDB (the operational, 3NF store) and
//! MongoDB (the document store) — the versioned schema, the data generator, the initial
//! migration ([`migrate`]) and the real-time sync ([`sync`]).
//!
//! ## Where things live
//!
//! | module | owns |
//! |---|---|
//! | [`config`], [`connect`] | the environment and secrets; a connection to a given node |
//! | [`cluster`] | which node takes writes or serves reads; [`cluster::writable_pool`], [`cluster::ClusterPool`] |
//! | [`model`] | typed domain values |
//! | [`schema`] | versioned, checksummed SQL and its applier |
//! | [`projection`] | rows → documents: [`projection::Entity`], [`projection::read_page`], the builders, the canonical hash |
//! | [`migrate`] | the bulk copy MariaDB → MongoDB, collection setup, verification |
//! | [`sync`] | the [`sync::Source`] / [`sync::Sink`] traits, the [`sync::Syncer`] loop and its retry policy, the trigger-queue source |
//! | [`retry`] | which driver errors are worth retrying, for every caller |
//! | [`orders`], [`reports`] | the stored procedures and reporting views, typed |
//! | [`security`], [`lineage`], [`quality`], [`doctor`] | governance and checks |
//! | [`search`] | the catalogue ranked for a shopper's words (lexical today), and its measured quality |
//! | `generate`, `lifecycle` (feature `generate`), `bench` (feature `bench`) | the data generator, `aethermart up`, benchmarks |
//!
//! Dependencies point one way: [`migrate`], [`sync`] and [`quality`] build documents through
//! [`projection`]; [`connect`] is a leaf that [`cluster`] uses. Both default features
//! (`generate`, `bench`) can be switched off with `default-features = false`; the `cli`
//! feature adds the binaries' shared `clap` arguments ([`sync`]'s `SyncArgs`).
//!
//! ```no_run
//! use aethermart_core::{cluster, config::Config, connect, doctor};
//!
//! # async fn demo() -> Result<(), aethermart_core::Error> {
//! // AETHERMART_MARIADB_URL / AETHERMART_MONGODB_URI (+ MARIA_DB_PASS / MONGO_ADMIN_PASS).
//! let config = Config::from_env()?;
//! let pool = cluster::writable_pool(&config.mariadb, Default::default()).await?;
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
//! // Runs until the shutdown future resolves; the batch in flight finishes first.
//! let report = syncer.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! println!("{} changes applied", report.changes);
//! # Ok(()) }
//! ```
//!
//! Passwords are held in [`config::Secret`] and never appear in `Debug`, logs or errors.

#![deny(missing_docs)]

#[cfg(test)]
mod architecture;
#[cfg(feature = "bench")]
pub mod bench;
pub mod binlog_position;
pub mod cluster;
pub mod config;
pub mod connect;
pub mod doctor;
pub mod error;
#[cfg(feature = "generate")]
pub mod generate;
pub mod handoff;
#[cfg(feature = "generate")]
pub mod lifecycle;
pub mod lineage;
#[cfg(feature = "cli")]
pub mod logging;
pub mod migrate;
pub mod model;
pub mod mongo_write;
pub mod orders;
pub mod process;
pub mod progress;
pub mod projection;
pub mod quality;
pub mod reports;
pub mod retry;
pub mod schema;
pub mod search;
pub mod security;
pub mod sync;

pub use error::{Error, Result};
