//! What several commands print: JSON, and the tables of loads, migrations and verifications.

use aethermart_core::generate::LoadSummary;
use aethermart_core::migrate::{MigrationReport, VerifyReport};

/// How a command prints its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// The typed rows as pretty JSON (`--json`).
    Json,
    /// RFC 4180 CSV with a header line (`--csv`).
    Csv,
}

impl Format {
    pub fn from_flags(json: bool, csv: bool) -> Self {
        match (json, csv) {
            (true, _) => Self::Json,
            (_, true) => Self::Csv,
            _ => Self::Table,
        }
    }
}

/// `rows` as `format`: the typed rows for JSON, `headers` and `cells` of each row otherwise.
pub fn print_rows<T: serde::Serialize>(
    format: Format,
    rows: &[T],
    headers: &[&str],
    cells: impl Fn(&T) -> Vec<String>,
) {
    let lines: Vec<Vec<String>> = rows.iter().map(cells).collect();
    match format {
        Format::Json => print_json(&rows),
        Format::Csv => {
            println!("{}", csv_line(headers.iter().map(|h| h.to_string())));
            for line in lines {
                println!("{}", csv_line(line.into_iter()));
            }
        }
        Format::Table => {
            let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
            for line in &lines {
                for (w, cell) in widths.iter_mut().zip(line) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            // Columns of numbers only are right-aligned.
            let numeric: Vec<bool> = (0..headers.len())
                .map(|i| {
                    !lines.is_empty()
                        && lines
                            .iter()
                            .all(|l| l.get(i).is_some_and(|c| c.parse::<f64>().is_ok()))
                })
                .collect();
            let render = |cells: Vec<String>| {
                cells
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let w = widths.get(i).copied().unwrap_or(0);
                        if numeric.get(i) == Some(&true) {
                            format!("{c:>w$}")
                        } else {
                            format!("{c:<w$}")
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_owned()
            };
            println!(
                "{}",
                render(headers.iter().map(|h| h.to_string()).collect())
            );
            for line in lines {
                println!("{}", render(line));
            }
        }
    }
}

/// One CSV record: fields with a comma, quote or line break are quoted, quotes doubled.
fn csv_line(fields: impl Iterator<Item = String>) -> String {
    fields
        .map(|f| {
            if f.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

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

/// Where each entity's migration spent its time (seconds; stages overlap).
pub fn print_migration_stages(report: &MigrationReport) {
    println!(
        "{:<10} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "stages",
        "wall",
        "query",
        "build",
        "encode",
        "write",
        "merge",
        "checkpt",
        "rd-wait",
        "wr-wait"
    );
    for e in &report.entities {
        let s = &e.stages;
        println!(
            "{:<10} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2}",
            e.entity.name(),
            e.seconds,
            s.query,
            s.build,
            s.encode,
            s.write,
            s.merge_read,
            s.checkpoint,
            s.reader_blocked,
            s.writer_waiting
        );
    }
    println!(
        "  query: MariaDB answering; build: rows to documents; encode: BSON commands; write: MongoDB \
         commands summed over those in flight; merge: reading MongoDB-only fields; checkpt: moving \
         the checkpoint; rd-wait: reader waiting for the writer; wr-wait: writer waiting for an \
         acknowledgement"
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

#[cfg(test)]
mod tests {
    use super::csv_line;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let line = csv_line(
            ["plain", "a,b", "say \"hi\"", "two\nlines"]
                .iter()
                .map(|s| s.to_string()),
        );
        assert_eq!(line, "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\"");
    }
}
