//! Row images from a rows event, keeping only the columns the fan-out reads.
//!
//! `mysql_common` decodes each value well, but its row iterator also builds a full column
//! description (schema, table and column names, flags) for every column of every row: that
//! was half of the reader's CPU. Here the table map is read once per event (which columns
//! are kept, their types and signedness) and every value is decoded by `mysql_common`'s own
//! [`BinlogValue`]; nothing else is built per row.

use super::stream::{Image, RowChange};
use mysql_async::Value;
use mysql_async::binlog::events::{OptionalMetaExtractor, RowsEventData, TableMapEvent};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::consts::ColumnType;
use mysql_common::io::ParseBuf;
use std::io;

/// One column of the table, as the table map describes it.
struct Column<'a> {
    kind: ColumnType,
    meta: &'a [u8],
    unsigned: bool,
    /// The name it is kept under, when the fan-out reads it.
    kept: Option<&'static str>,
}

/// Appends the changes of `rows` (a rows event of `table`, described by `map`) to `out`.
pub(super) fn changes(
    rows: &RowsEventData<'_>,
    map: &TableMapEvent<'_>,
    table: &'static str,
    out: &mut Vec<RowChange>,
) -> io::Result<()> {
    if matches!(rows, RowsEventData::PartialUpdateRowsEvent(_)) {
        return Err(invalid("partial JSON updates (a MySQL format)"));
    }
    #[cfg(debug_assertions)]
    let first = out.len();
    let columns = columns(map, rows.num_columns() as usize)?;
    let (before, after) = (rows.columns_before_image(), rows.columns_after_image());
    let mut buf = ParseBuf(rows.rows_data());
    while !buf.is_empty() {
        let before = before
            .map(|present| image(&mut buf, &columns, |i| present[i], present.count_ones()))
            .transpose()?;
        let after = after
            .map(|present| image(&mut buf, &columns, |i| present[i], present.count_ones()))
            .transpose()?;
        out.push(RowChange {
            table,
            before,
            after,
        });
    }
    #[cfg(debug_assertions)]
    same_as_mysql_common(rows, map, &out[first..])?;
    Ok(())
}

/// Debug builds (every test) decode each event a second time with `mysql_common`'s own row
/// iterator and refuse it when the kept columns differ: the decoder is checked against every
/// event the real server writes in the tests.
#[cfg(debug_assertions)]
fn same_as_mysql_common(
    rows: &RowsEventData<'_>,
    map: &TableMapEvent<'_>,
    ours: &[RowChange],
) -> io::Result<()> {
    let keep = |row: mysql_async::binlog::row::BinlogRow| {
        let names: Vec<Option<&'static str>> = row
            .columns_ref()
            .iter()
            .map(|c| super::fanout::column(&c.name_str()))
            .collect();
        let values = row.unwrap().into_iter().map(|v| match v {
            BinlogValue::Value(v) => v,
            _ => Value::NULL,
        });
        Image::new(
            names
                .into_iter()
                .zip(values)
                .filter_map(|(name, value)| Some((name?, value)))
                .collect(),
        )
    };
    let mut reference = Vec::new();
    for row in rows.rows(map) {
        let (before, after) = row?;
        reference.push((before.map(keep), after.map(keep)));
    }
    let same = reference.len() == ours.len()
        && reference
            .iter()
            .zip(ours)
            .all(|((b, a), c)| *b == c.before && *a == c.after);
    if same {
        Ok(())
    } else {
        Err(invalid("the row decoder disagrees with mysql_common"))
    }
}

/// The columns of `map`: types and metadata, signedness and names from its optional
/// metadata (`binlog_row_metadata=FULL`).
fn columns<'a>(map: &'a TableMapEvent<'a>, count: usize) -> io::Result<Vec<Column<'a>>> {
    let optional = OptionalMetaExtractor::new(map.iter_optional_meta())?;
    let mut signedness = optional.iter_signedness();
    let mut names = optional.iter_column_name();
    let mut columns = Vec::with_capacity(count);
    for i in 0..count {
        let kind = map
            .get_column_type(i)
            .map_err(|e| invalid(&e.to_string()))?
            .ok_or_else(|| invalid("a column without a type"))?;
        let unsigned = kind.is_numeric_type() && signedness.next().unwrap_or(false);
        let kept = match names.next().transpose()? {
            Some(name) => super::fanout::column(&name.name()),
            None => None,
        };
        columns.push(Column {
            kind,
            meta: map.get_column_metadata(i).unwrap_or(&[]),
            unsigned,
            kept,
        });
    }
    Ok(columns)
}

/// One row image: a NULL bitmap over the present columns, then their values in order.
fn image<'a>(
    buf: &mut ParseBuf<'a>,
    columns: &[Column<'a>],
    present: impl Fn(usize) -> bool,
    count: usize,
) -> io::Result<Image> {
    let nulls: &[u8] = buf.parse(count.div_ceil(8))?;
    let mut kept = Vec::new();
    let mut position = 0;
    for (i, column) in columns.iter().enumerate() {
        if !present(i) {
            continue;
        }
        let null = nulls[position / 8] & (1 << (position % 8)) != 0;
        position += 1;
        let value = if null {
            Value::NULL
        } else {
            match buf.parse::<BinlogValue<'_>>((
                column.kind,
                column.meta,
                column.unsigned,
                false,
            ))? {
                BinlogValue::Value(v) => v,
                // JSON and JSON diffs: no fan-out reads them.
                _ => Value::NULL,
            }
        };
        if let Some(name) = column.kept {
            kept.push((name, value));
        }
    }
    Ok(Image::new(kept))
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}
