//! Where binlog capture stands: MariaDB GTID positions ([`GtidPosition`]) and their store in
//! MongoDB ([`store`]), shared by the migration (which records the position of its snapshot)
//! and [`crate::sync::BinlogSource`] (which resumes there and moves it). A leaf: it uses no
//! other module of the crate.

pub mod gtid;
pub mod store;

pub use gtid::{BadPosition, Gtid, GtidPosition};
pub use store::{CheckpointError, POSITIONS, Stored};
