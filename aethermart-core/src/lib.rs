//! # aethermart-core
//!
//! The AetherMart data platform as a library: a typed domain model, configuration from the
//! environment, and connections to the two stores — MariaDB (the operational, 3NF store) and
//! MongoDB (the document store).
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
//! Passwords are held in [`config::Secret`] and never appear in `Debug`, logs or errors.

#![deny(missing_docs)]

pub mod bench;
pub mod config;
pub mod connect;
pub mod doctor;
pub mod document;
pub mod error;
pub mod generate;
pub mod migrate;
pub mod model;
mod mongo_write;
pub mod orders;
pub mod reports;
pub mod schema;
pub mod sync;

pub use error::{Error, Result};
