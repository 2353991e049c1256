//! Flat tables written as CSV or Parquet: one column list, two writers.
//!
//! CSV cells pass through [`neutralise`]. Parquet columns are typed: text as
//! `BYTE_ARRAY (UTF8)`, times as `INT64 (TIMESTAMP(MILLIS,true))`, whole numbers as
//! `INT64`, flags as `BOOLEAN`, zstd-compressed, in row groups of [`ROW_GROUP_ROWS`].

use std::borrow::Cow;
use std::io::Write;
use std::sync::Arc;

use lodestar_core::Timestamp;
use parquet::basic::{Compression, ZstdLevel};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use crate::error::IoError;

/// Rows per Parquet row group: what the writer holds in memory at once.
pub(crate) const ROW_GROUP_ROWS: usize = 65_536;

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Text, always present.
    Text,
    /// Text, maybe absent (an empty CSV cell, a Parquet null).
    OptText,
    /// A whole number.
    Int,
    /// A point in time, in milliseconds.
    Time,
    /// A flag.
    Bool,
}

/// One column of a table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    pub name: &'static str,
    pub kind: Kind,
}

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Datum {
    Null,
    Text(String),
    Int(i64),
    Time(Timestamp),
    Bool(bool),
}

/// Where the rows of a table go.
pub(crate) enum TableWriter<'w> {
    Csv(csv::Writer<&'w mut (dyn Write + Send)>),
    Parquet(ParquetTable<'w>),
}

impl<'w> TableWriter<'w> {
    /// A CSV writer; writes the header now.
    pub(crate) fn csv(
        columns: &[Column],
        out: &'w mut (dyn Write + Send),
    ) -> Result<Self, IoError> {
        let mut writer = csv::WriterBuilder::new().from_writer(out);
        writer
            .write_record(columns.iter().map(|c| c.name))
            .map_err(csv_write_error)?;
        Ok(TableWriter::Csv(writer))
    }

    /// A Parquet writer with the schema `message <name> { … }` of `columns`.
    pub(crate) fn parquet(
        name: &str,
        columns: &[Column],
        out: &'w mut (dyn Write + Send),
    ) -> Result<Self, IoError> {
        Ok(TableWriter::Parquet(ParquetTable::new(name, columns, out)?))
    }

    /// Writes one row; `row` has one datum per column.
    pub(crate) fn write(&mut self, row: Vec<Datum>) -> Result<(), IoError> {
        match self {
            TableWriter::Csv(writer) => {
                let cells = row.iter().map(csv_text);
                writer
                    .write_record(cells.map(|c| neutralise_owned(c).into_owned()))
                    .map_err(csv_write_error)
            }
            TableWriter::Parquet(table) => table.write(row),
        }
    }

    /// Finishes the file (the Parquet footer) and flushes.
    pub(crate) fn finish(self) -> Result<(), IoError> {
        match self {
            TableWriter::Csv(mut writer) => writer.flush().map_err(IoError::Write),
            TableWriter::Parquet(table) => table.finish(),
        }
    }
}

fn csv_write_error(err: csv::Error) -> IoError {
    match err.into_kind() {
        csv::ErrorKind::Io(e) => IoError::Write(e),
        other => IoError::Write(std::io::Error::other(format!("{other:?}"))),
    }
}

fn csv_text(datum: &Datum) -> Cow<'_, str> {
    match datum {
        Datum::Null => Cow::Borrowed(""),
        Datum::Text(text) => Cow::Borrowed(text),
        Datum::Int(n) => Cow::Owned(n.to_string()),
        Datum::Time(at) => Cow::Owned(at.to_rfc3339()),
        Datum::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
    }
}

fn neutralise_owned(cell: Cow<'_, str>) -> Cow<'_, str> {
    match neutralise(&cell) {
        Cow::Borrowed(_) => cell,
        Cow::Owned(text) => Cow::Owned(text),
    }
}

/// A CSV cell made safe to open in a spreadsheet.
///
/// Excel, LibreOffice and Google Sheets run a cell that starts with `=`, `+`, `-` or `@`
/// as a formula, and some also after a leading tab or carriage return; exported data is
/// user-controlled (event properties, traits, ids), so such a cell could run a formula on
/// the analyst's machine. Such cells get a single quote `'` in front, which spreadsheets
/// show as text.
///
/// The exception is a cell that is plainly a number (`-12.5`, `+3`, `-1e5`): a
/// spreadsheet reads it as that number, it runs nothing, and quoting it would turn every
/// negative amount into text. The JSON lines and Parquet exports are never changed.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') if !is_plain_number(cell) => {
            Cow::Owned(format!("'{cell}"))
        }
        _ => Cow::Borrowed(cell),
    }
}

/// `[+-]?` digits with at most one `.` (at least one digit), then an optional exponent.
fn is_plain_number(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let mut digits = 0;
    let mut dot = false;
    while let Some(&c) = b.get(i) {
        match c {
            b'0'..=b'9' => digits += 1,
            b'.' if !dot => dot = true,
            _ => break,
        }
        i += 1;
    }
    if digits == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    i == b.len()
}

/// The buffered values of one Parquet column.
enum Buffer {
    Text {
        values: Vec<ByteArray>,
        defs: Vec<i16>,
    },
    Int {
        values: Vec<i64>,
        defs: Vec<i16>,
    },
    Bool {
        values: Vec<bool>,
        defs: Vec<i16>,
    },
}

/// A Parquet file being written, one row group in memory.
pub(crate) struct ParquetTable<'w> {
    writer: SerializedFileWriter<&'w mut (dyn Write + Send)>,
    columns: Vec<Column>,
    buffers: Vec<Buffer>,
    rows: usize,
}

impl<'w> ParquetTable<'w> {
    fn new(
        name: &str,
        columns: &[Column],
        out: &'w mut (dyn Write + Send),
    ) -> Result<Self, IoError> {
        let schema = parse_message_type(&schema_text(name, columns))?;
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_created_by(format!("lodestar {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = SerializedFileWriter::new(out, Arc::new(schema), Arc::new(properties))?;
        let buffers = columns
            .iter()
            .map(|c| match c.kind {
                Kind::Text | Kind::OptText => Buffer::Text {
                    values: Vec::new(),
                    defs: Vec::new(),
                },
                Kind::Int | Kind::Time => Buffer::Int {
                    values: Vec::new(),
                    defs: Vec::new(),
                },
                Kind::Bool => Buffer::Bool {
                    values: Vec::new(),
                    defs: Vec::new(),
                },
            })
            .collect();
        Ok(ParquetTable {
            writer,
            columns: columns.to_vec(),
            buffers,
            rows: 0,
        })
    }

    fn write(&mut self, row: Vec<Datum>) -> Result<(), IoError> {
        debug_assert_eq!(row.len(), self.columns.len());
        for (buffer, datum) in self.buffers.iter_mut().zip(row) {
            match (buffer, datum) {
                (Buffer::Text { values, defs }, Datum::Text(text)) => {
                    values.push(ByteArray::from(text.into_bytes()));
                    defs.push(1);
                }
                (Buffer::Int { values, defs }, Datum::Int(n)) => {
                    values.push(n);
                    defs.push(1);
                }
                (Buffer::Int { values, defs }, Datum::Time(at)) => {
                    values.push(at.millis());
                    defs.push(1);
                }
                (Buffer::Bool { values, defs }, Datum::Bool(b)) => {
                    values.push(b);
                    defs.push(1);
                }
                (
                    Buffer::Text { defs, .. }
                    | Buffer::Int { defs, .. }
                    | Buffer::Bool { defs, .. },
                    _,
                ) => {
                    defs.push(0);
                }
            }
        }
        self.rows += 1;
        if self.rows >= ROW_GROUP_ROWS {
            self.flush_group()?;
        }
        Ok(())
    }

    fn flush_group(&mut self) -> Result<(), IoError> {
        if self.rows == 0 {
            return Ok(());
        }
        let mut group = self.writer.next_row_group()?;
        for (buffer, column) in self.buffers.iter_mut().zip(&self.columns) {
            let optional = column.kind == Kind::OptText;
            let mut writer = group.next_column()?.ok_or_else(|| {
                parquet::errors::ParquetError::General(
                    "schema has fewer columns than the table".into(),
                )
            })?;
            match buffer {
                Buffer::Text { values, defs } => {
                    let defs = optional.then_some(defs.as_slice());
                    writer
                        .typed::<ByteArrayType>()
                        .write_batch(values, defs, None)?;
                }
                Buffer::Int { values, defs } => {
                    let defs = optional.then_some(defs.as_slice());
                    writer
                        .typed::<Int64Type>()
                        .write_batch(values, defs, None)?;
                }
                Buffer::Bool { values, defs } => {
                    let defs = optional.then_some(defs.as_slice());
                    writer.typed::<BoolType>().write_batch(values, defs, None)?;
                }
            }
            writer.close()?;
            match buffer {
                Buffer::Text { values, defs } => {
                    values.clear();
                    defs.clear();
                }
                Buffer::Int { values, defs } => {
                    values.clear();
                    defs.clear();
                }
                Buffer::Bool { values, defs } => {
                    values.clear();
                    defs.clear();
                }
            }
        }
        group.close()?;
        self.rows = 0;
        Ok(())
    }

    fn finish(mut self) -> Result<(), IoError> {
        self.flush_group()?;
        let out = self.writer.into_inner()?;
        out.flush().map_err(IoError::Write)
    }
}

/// The Parquet schema of a table, in the text form `parse_message_type` reads.
fn schema_text(name: &str, columns: &[Column]) -> String {
    let mut text = format!("message {name} {{\n");
    for column in columns {
        let (repetition, physical, logical) = match column.kind {
            Kind::Text => ("REQUIRED", "BYTE_ARRAY", " (UTF8)"),
            Kind::OptText => ("OPTIONAL", "BYTE_ARRAY", " (UTF8)"),
            Kind::Int => ("REQUIRED", "INT64", ""),
            Kind::Time => ("REQUIRED", "INT64", " (TIMESTAMP(MILLIS,true))"),
            Kind::Bool => ("REQUIRED", "BOOLEAN", ""),
        };
        text.push_str(&format!(
            "  {repetition} {physical} {}{logical};\n",
            column.name
        ));
    }
    text.push('}');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_numbers_kept() {
        for (cell, want) in [
            ("=1+1", "'=1+1"),
            ("+cmd", "'+cmd"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=x", "'\t=x"),
            ("\r=x", "'\r=x"),
            ("-", "'-"),
            ("-.", "'-."),
            ("-1e", "'-1e"),
            ("-12.5", "-12.5"),
            ("+3", "+3"),
            ("-1e5", "-1e5"),
            ("-.5", "-.5"),
            ("plain", "plain"),
            ("", ""),
            (" =x", " =x"),
        ] {
            assert_eq!(neutralise(cell), want, "{cell:?}");
        }
    }

    #[test]
    fn parquet_schema_text_parses() {
        let columns = [
            Column {
                name: "a",
                kind: Kind::Text,
            },
            Column {
                name: "b",
                kind: Kind::OptText,
            },
            Column {
                name: "c",
                kind: Kind::Int,
            },
            Column {
                name: "d",
                kind: Kind::Time,
            },
            Column {
                name: "e",
                kind: Kind::Bool,
            },
        ];
        let schema = parse_message_type(&schema_text("t", &columns)).unwrap();
        assert_eq!(schema.get_fields().len(), 5);
    }

    proptest::proptest! {
        /// Whatever a cell holds, the CSV a spreadsheet reads back never starts a cell
        /// with a formula character, unless the cell is plainly a number.
        #[test]
        fn csv_cells_never_lead_with_a_formula(cells in proptest::collection::vec(".*", 1..6)) {
            let columns: Vec<Column> = cells.iter().map(|_| Column { name: "c", kind: Kind::Text }).collect();
            let mut out: Vec<u8> = Vec::new();
            {
                let sink: &mut (dyn Write + Send) = &mut out;
                let mut table = TableWriter::csv(&columns, sink).unwrap();
                table.write(cells.iter().map(|c| Datum::Text(c.clone())).collect()).unwrap();
                table.finish().unwrap();
            }
            let mut reader = csv::ReaderBuilder::new().from_reader(out.as_slice());
            let record = reader.records().next().unwrap().unwrap();
            proptest::prop_assert_eq!(record.len(), cells.len());
            for (written, original) in record.iter().zip(&cells) {
                let risky = written.starts_with(['=', '+', '-', '@', '\t', '\r']);
                proptest::prop_assert!(!risky || is_plain_number(written), "{:?}", written);
                let expected = neutralise(original);
                proptest::prop_assert_eq!(written, expected.as_ref());
            }
        }
    }
}
