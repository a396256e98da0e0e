//! What several commands print: JSON, and the tables of loads, migrations and verifications.

use aethermart_core::generate::LoadSummary;
use aethermart_core::migrate::{MigrationReport, VerifyReport};

/// Pretty JSON on stdout (`--json`); the report types serialise infallibly.
pub fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

pub fn print_load_summary(summary: &LoadSummary) {
    println!("{:<12} {:<8} {:>10}", "table", "store", "rows");
    for t in &summary.tables {
        println!("{:<12} {:<8} {:>10}", t.table, t.store, t.rows);
    }
    println!(
        "MariaDB: {} rows in {:.2} s = {:.0} rows/s",
        summary.mariadb_rows,
        summary.mariadb_seconds,
        summary.mariadb_rows_per_second()
    );
    println!(
        "MongoDB: {} documents in {:.2} s = {:.0} documents/s",
        summary.mongodb_documents,
        summary.mongodb_seconds,
        summary.mongodb_documents_per_second()
    );
}

pub fn print_migration(report: &MigrationReport) {
    println!(
        "{:<10} {:>10} {:>10} {:>9} {:>8}",
        "entity", "read", "written", "refused", "seconds"
    );
    for e in &report.entities {
        println!(
            "{:<10} {:>10} {:>10} {:>9} {:>8.2}",
            e.entity.name(),
            e.read,
            e.written,
            e.refused.len(),
            e.seconds
        );
        for r in e.refused.iter().take(10) {
            println!("  refused _id {}: {}", r.key, r.reason);
        }
    }
    println!(
        "run {}: {:.0} documents/s over {:.2} s",
        report.run_id,
        report.documents_per_second(),
        report.seconds
    );
}

pub fn print_verification(report: &VerifyReport) {
    println!(
        "{:<10} {:>10} {:>10} {:>10}  result",
        "entity", "rows", "documents", "mismatch"
    );
    for e in &report.entities {
        let result = if e.equal() {
            "equal".to_owned()
        } else {
            format!(
                "DIFFERENT missing {:?} different {:?}",
                e.missing, e.different
            )
        };
        println!(
            "{:<10} {:>10} {:>10} {:>10}  {result}",
            e.entity.name(),
            e.rows,
            e.documents,
            e.mismatches
        );
    }
}
