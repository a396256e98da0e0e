//! Integration tests against the real MariaDB and MongoDB-protocol servers.
//!
//! Start them with `scripts/services.sh up` and export what `scripts/services.sh env` prints
//! (`scripts/test.sh` does both). Without the servers these tests fail; they never skip.

mod support;

mod binlog;
mod cluster;
mod connectivity;
mod constraints;
mod generate;
mod integrity;
mod lifecycle;
mod migrate;
mod orders;
mod quality;
mod reports;
mod schema;
mod search;
mod security;
mod sync;
