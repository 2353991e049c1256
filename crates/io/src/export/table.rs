//! Flat tables written as CSV or Parquet: one column list, two writers.
//!
//! CSV cells pass through [`neutralise`]. Parquet columns are typed: text as
//! `BYTE_ARRAY (UTF8)`, times as `INT64 (TIMESTAMP(MILLIS,true))`, whole numbers as
//! `INT64` (unsigned ids as `INT64 (INTEGER(64,false))`), numbers as `DOUBLE`, flags as
//! `BOOLEAN`, lists of text as the standard three-level `LIST` of `UTF8`; zstd-compressed,
//! in row groups of [`ROW_GROUP_ROWS`]. The schema is built with the parquet builders, so a
//! column may have any name.

use std::borrow::Cow;
use std::io::Write;
use std::sync::Arc;

use lodestar_core::Timestamp;
use parquet::basic::{Compression, LogicalType, Repetition, TimeUnit, Type as Physical, ZstdLevel};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DataType, DoubleType, Int64Type};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::{SerializedColumnWriter, SerializedFileWriter};
use parquet::schema::types::Type;

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
    /// A whole number that is never negative (an id), written from [`Datum::Int`].
    UInt,
    /// A point in time, in milliseconds.
    Time,
    /// A flag.
    Bool,
    /// A flag, maybe absent.
    OptBool,
    /// A number, maybe absent.
    OptFloat,
    /// A list of texts, maybe empty (CSV: joined by `;`).
    TextList,
}

impl Kind {
    /// Whether a cell may be null.
    fn optional(self) -> bool {
        matches!(self, Kind::OptText | Kind::OptBool | Kind::OptFloat)
    }
}

/// One column of a table.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub name: Cow<'static, str>,
    pub kind: Kind,
}

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Datum {
    Null,
    Text(String),
    Int(i64),
    Float(f64),
    Time(Timestamp),
    Bool(bool),
    List(Vec<String>),
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
            .write_record(columns.iter().map(|c| c.name.as_ref()))
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
        Datum::Float(x) => Cow::Owned(x.to_string()),
        Datum::Time(at) => Cow::Owned(at.to_rfc3339()),
        Datum::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        Datum::List(items) => Cow::Owned(items.join(";")),
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

/// Buffered cells of one Parquet column: the values present and a definition level per
/// cell (1 present, 0 null).
struct Cells<T> {
    values: Vec<T>,
    defs: Vec<i16>,
}

impl<T> Cells<T> {
    fn new() -> Self {
        Cells {
            values: Vec::new(),
            defs: Vec::new(),
        }
    }

    fn push(&mut self, value: T) {
        self.values.push(value);
        self.defs.push(1);
    }

    /// Writes the cells as one column chunk (with definition levels when the column is
    /// `optional`) and empties the buffer.
    fn write<D: DataType<T = T>>(
        &mut self,
        writer: &mut SerializedColumnWriter<'_>,
        optional: bool,
    ) -> Result<(), ParquetError> {
        let defs = optional.then_some(self.defs.as_slice());
        writer.typed::<D>().write_batch(&self.values, defs, None)?;
        self.values.clear();
        self.defs.clear();
        Ok(())
    }
}

/// The buffered cells of one Parquet column.
enum Buffer {
    Text(Cells<ByteArray>),
    Int(Cells<i64>),
    Float(Cells<f64>),
    Bool(Cells<bool>),
    /// Items of lists: a definition level per item (0 for an empty list) and a repetition
    /// level (0 starts a row's list).
    List {
        items: Cells<ByteArray>,
        reps: Vec<i16>,
    },
}

impl Buffer {
    fn new(kind: Kind) -> Buffer {
        match kind {
            Kind::Text | Kind::OptText => Buffer::Text(Cells::new()),
            Kind::Int | Kind::UInt | Kind::Time => Buffer::Int(Cells::new()),
            Kind::OptFloat => Buffer::Float(Cells::new()),
            Kind::Bool | Kind::OptBool => Buffer::Bool(Cells::new()),
            Kind::TextList => Buffer::List {
                items: Cells::new(),
                reps: Vec::new(),
            },
        }
    }

    /// Adds one row's cell. A datum that does not fit the column is written as null (as an
    /// empty list in a list column); callers convert before.
    fn push(&mut self, datum: Datum) {
        match (self, datum) {
            (Buffer::Text(cells), Datum::Text(text)) => {
                cells.push(ByteArray::from(text.into_bytes()))
            }
            (Buffer::Int(cells), Datum::Int(n)) => cells.push(n),
            (Buffer::Int(cells), Datum::Time(at)) => cells.push(at.millis()),
            (Buffer::Float(cells), Datum::Float(x)) => cells.push(x),
            (Buffer::Bool(cells), Datum::Bool(b)) => cells.push(b),
            (Buffer::List { items, reps }, Datum::List(list)) if !list.is_empty() => {
                for (i, item) in list.into_iter().enumerate() {
                    items.push(ByteArray::from(item.into_bytes()));
                    reps.push(i16::from(i > 0));
                }
            }
            (Buffer::List { items, reps }, _) => {
                items.defs.push(0);
                reps.push(0);
            }
            (Buffer::Text(Cells { defs, .. }), _)
            | (Buffer::Int(Cells { defs, .. }), _)
            | (Buffer::Float(Cells { defs, .. }), _)
            | (Buffer::Bool(Cells { defs, .. }), _) => defs.push(0),
        }
    }

    /// Writes the buffered cells as one column chunk and empties the buffer.
    fn write_to(
        &mut self,
        writer: &mut SerializedColumnWriter<'_>,
        optional: bool,
    ) -> Result<(), ParquetError> {
        match self {
            Buffer::Text(cells) => cells.write::<ByteArrayType>(writer, optional),
            Buffer::Int(cells) => cells.write::<Int64Type>(writer, optional),
            Buffer::Float(cells) => cells.write::<DoubleType>(writer, optional),
            Buffer::Bool(cells) => cells.write::<BoolType>(writer, optional),
            Buffer::List { items, reps } => {
                writer.typed::<ByteArrayType>().write_batch(
                    &items.values,
                    Some(&items.defs),
                    Some(reps),
                )?;
                items.values.clear();
                items.defs.clear();
                reps.clear();
                Ok(())
            }
        }
    }
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
        let schema = schema(name, columns)?;
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_created_by(format!("lodestar {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = SerializedFileWriter::new(out, Arc::new(schema), Arc::new(properties))?;
        let buffers = columns.iter().map(|c| Buffer::new(c.kind)).collect();
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
            buffer.push(datum);
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
            let mut writer = group.next_column()?.ok_or_else(|| {
                ParquetError::General("schema has fewer columns than the table".into())
            })?;
            buffer.write_to(&mut writer, column.kind.optional())?;
            writer.close()?;
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

/// The Parquet schema `message <name> { … }` of a table.
fn schema(name: &str, columns: &[Column]) -> Result<Type, ParquetError> {
    let fields = columns
        .iter()
        .map(|c| field(&c.name, c.kind).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    Type::group_type_builder(name).with_fields(fields).build()
}

fn field(name: &str, kind: Kind) -> Result<Type, ParquetError> {
    let text = Some(LogicalType::String);
    let (physical, logical) = match kind {
        Kind::Text | Kind::OptText => (Physical::BYTE_ARRAY, text),
        Kind::Int => (Physical::INT64, None),
        Kind::UInt => (Physical::INT64, Some(LogicalType::integer(64, false))),
        Kind::Time => (
            Physical::INT64,
            Some(LogicalType::timestamp(true, TimeUnit::MILLIS)),
        ),
        Kind::Bool | Kind::OptBool => (Physical::BOOLEAN, None),
        Kind::OptFloat => (Physical::DOUBLE, None),
        Kind::TextList => {
            // The standard three-level list: <name> (LIST) { repeated group list { element } }.
            let element = Type::primitive_type_builder("element", Physical::BYTE_ARRAY)
                .with_repetition(Repetition::REQUIRED)
                .with_logical_type(text)
                .build()?;
            let list = Type::group_type_builder("list")
                .with_repetition(Repetition::REPEATED)
                .with_fields(vec![Arc::new(element)])
                .build()?;
            return Type::group_type_builder(name)
                .with_repetition(Repetition::REQUIRED)
                .with_logical_type(Some(LogicalType::List))
                .with_fields(vec![Arc::new(list)])
                .build();
        }
    };
    let repetition = if kind.optional() {
        Repetition::OPTIONAL
    } else {
        Repetition::REQUIRED
    };
    Type::primitive_type_builder(name, physical)
        .with_repetition(repetition)
        .with_logical_type(logical)
        .build()
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
    fn parquet_schema_has_every_kind_and_any_name() {
        let kinds = [
            Kind::Text,
            Kind::OptText,
            Kind::Int,
            Kind::UInt,
            Kind::Time,
            Kind::Bool,
            Kind::OptBool,
            Kind::OptFloat,
            Kind::TextList,
        ];
        let columns: Vec<Column> = kinds
            .iter()
            .enumerate()
            .map(|(i, &kind)| Column {
                name: Cow::Owned(format!("a.b c({i});")),
                kind,
            })
            .collect();
        let schema = schema("t", &columns).unwrap();
        assert_eq!(schema.get_fields().len(), kinds.len());
        assert_eq!(schema.get_fields()[0].name(), "a.b c(0);");
    }

    proptest::proptest! {
        /// Whatever a cell holds, the CSV a spreadsheet reads back never starts a cell
        /// with a formula character, unless the cell is plainly a number.
        #[test]
        fn csv_cells_never_lead_with_a_formula(cells in proptest::collection::vec(".*", 1..6)) {
            let columns: Vec<Column> = cells.iter().map(|_| Column { name: Cow::Borrowed("c"), kind: Kind::Text }).collect();
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
