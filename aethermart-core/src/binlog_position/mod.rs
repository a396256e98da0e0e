//! Where binlog capture stands: MariaDB GTID positions ([`GtidPosition`]) and their store in
//! MongoDB ([`store`]), shared by the migration (which records the position of its snapshot)
//! and [`crate::sync::BinlogSource`] (which resumes there and moves it). A leaf: it uses no
//! other module of the crate.

pub mod gtid;
pub mod lease;
pub mod store;

pub use gtid::{BadPosition, Gtid, GtidPosition};
pub use store::{CheckpointError, POSITIONS, Stored};

/// What binlog capture needs the server to write, against what it writes: `(variable, wanted,
/// is)` for each setting that differs (none: the server is ready). Row events with whole
/// images and column names.
pub fn missing_settings(
    log_bin: bool,
    binlog_format: &str,
    binlog_row_image: &str,
    binlog_row_metadata: &str,
) -> Vec<(&'static str, &'static str, String)> {
    let mut missing = Vec::new();
    if !log_bin {
        missing.push(("log_bin", "ON", "OFF".to_owned()));
    }
    for (variable, wanted, is) in [
        ("binlog_format", "ROW", binlog_format),
        ("binlog_row_image", "FULL", binlog_row_image),
        ("binlog_row_metadata", "FULL", binlog_row_metadata),
    ] {
        if !is.eq_ignore_ascii_case(wanted) {
            missing.push((variable, wanted, is.to_owned()));
        }
    }
    missing
}
