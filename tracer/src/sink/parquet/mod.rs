//! Journeys as a Parquet table (`export --format parquet`), for DuckDB, Spark or pandas:
//! one row per journey, the columns of the field table (`schema.rs`), typed, zstd-compressed,
//! in row groups of [`ROW_GROUP_ROWS`]. The schema is documented in docs/parquet.md.

pub mod schema;

use std::{io, sync::Arc};

use parquet::{
    basic::{Compression, Encoding, ZstdLevel},
    data_type::{BoolType, ByteArray, ByteArrayType, Int64Type},
    file::{
        metadata::KeyValue,
        properties::WriterProperties,
        writer::{SerializedColumnWriter, SerializedFileWriter},
    },
    schema::types::ColumnPath,
};

use self::schema::{Cell, Kind, SCHEMA_VERSION, columns, journey_cells};
use super::Sink;
use crate::{journey::Journey, recording::Metadata};

/// Rows per row group: large enough for scans (a column chunk of a few hundred kilobytes),
/// small enough to hold in memory while it fills (tens of megabytes).
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// The zstd level of every column.
const ZSTD_LEVEL: i32 = 3;

/// Why a Parquet export failed.
#[derive(Debug, thiserror::Error)]
pub enum ParquetExportError {
    /// The Parquet library refused the schema, a value or the output.
    #[error("writing Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// A column of a row group did not line up with the schema (a bug, reported not panicked).
    #[error("Parquet column {column}: {reason}")]
    Column {
        column: String,
        reason: &'static str,
    },
}

impl From<ParquetExportError> for io::Error {
    fn from(error: ParquetExportError) -> Self {
        io::Error::other(error)
    }
}

/// What a file says about the recording it came from: the per-file columns and the clock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capture {
    /// The recording host's name (`host` column).
    pub host: String,
    /// Its kernel release (`kernel` column).
    pub kernel: String,
    /// 16 hex digits: the FNV-1a hash of the recording's metadata, which holds its host and
    /// its start (the realtime offset), so captures of one host stay apart.
    pub capture_id: String,
    /// CLOCK_REALTIME - CLOCK_MONOTONIC at the recording's start: a stamp plus this is wall
    /// time.
    pub realtime_offset_ns: i128,
    /// The tracer that made the recording.
    pub tool_version: String,
}

impl Capture {
    /// The capture a recording's metadata describes.
    pub fn from_metadata(meta: &Metadata) -> Self {
        let json = serde_json::to_vec(meta).unwrap_or_default();
        Self {
            host: meta.hostname.clone(),
            kernel: meta.kernel.clone(),
            capture_id: format!("{:016x}", fnv1a(&json)),
            realtime_offset_ns: meta.realtime_offset_ns,
            tool_version: meta.tool_version.clone(),
        }
    }

    /// The wall time of a CLOCK_MONOTONIC stamp, in ns since the epoch; none out of range.
    fn wall(&self, monotonic_ns: u64) -> Option<i64> {
        i64::try_from(i128::from(monotonic_ns) + self.realtime_offset_ns).ok()
    }
}

/// 64-bit FNV-1a: a stable hash with no dependency (not for security).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// One column's values of the row group being filled, with their definition levels
/// (1 = a value, 0 = null).
enum Values {
    Int64(Vec<i64>),
    Bool(Vec<bool>),
    Bytes(Vec<ByteArray>),
}

struct Column {
    name: String,
    values: Values,
    defs: Vec<i16>,
}

impl Column {
    fn new(name: String, kind: Kind) -> Self {
        let values = match kind {
            Kind::UInt64 | Kind::Int64 | Kind::Timestamp => Values::Int64(Vec::new()),
            Kind::Text => Values::Bytes(Vec::new()),
            Kind::Bool => Values::Bool(Vec::new()),
        };
        Self {
            name,
            values,
            defs: Vec::new(),
        }
    }

    fn push(&mut self, cell: Cell<'_>, capture: &Capture) -> Result<(), ParquetExportError> {
        let present = match (&mut self.values, cell) {
            // The unsigned logical type keeps the bits: u64 as the i64 of the same bits.
            (Values::Int64(values), Cell::UInt64(value)) => {
                value.map(|value| values.push(value as i64))
            }
            (Values::Int64(values), Cell::Int64(value)) => value.map(|value| values.push(value)),
            (Values::Int64(values), Cell::Timestamp(value)) => value
                .and_then(|ns| capture.wall(ns))
                .map(|ns| values.push(ns)),
            (Values::Bytes(values), Cell::Text(text)) => {
                text.map(|text| values.push(ByteArray::from(text.into_owned().into_bytes())))
            }
            (Values::Bool(values), Cell::Bool(value)) => {
                values.push(value);
                Some(())
            }
            _ => {
                return Err(ParquetExportError::Column {
                    column: self.name.clone(),
                    reason: "a cell of another type than its column",
                });
            }
        };
        self.defs.push(i16::from(present.is_some()));
        Ok(())
    }

    /// Writes the values to the column chunk and empties them.
    fn write(&mut self, writer: &mut SerializedColumnWriter<'_>) -> Result<(), ParquetExportError> {
        let defs = Some(self.defs.as_slice());
        match &mut self.values {
            Values::Int64(values) => {
                writer
                    .typed::<Int64Type>()
                    .write_batch(values, defs, None)?;
                values.clear();
            }
            Values::Bool(values) => {
                writer.typed::<BoolType>().write_batch(values, defs, None)?;
                values.clear();
            }
            Values::Bytes(values) => {
                writer
                    .typed::<ByteArrayType>()
                    .write_batch(values, defs, None)?;
                values.clear();
            }
        }
        self.defs.clear();
        Ok(())
    }
}

/// Journeys as rows of a Parquet file on a writer. Rows are written a row group at a time;
/// [`ParquetJourneys::finish`] writes the last one and the footer.
pub struct ParquetJourneys<W: io::Write + Send> {
    writer: SerializedFileWriter<W>,
    capture: Capture,
    columns: Vec<Column>,
    rows: usize,
}

impl<W: io::Write + Send> ParquetJourneys<W> {
    /// Starts a file (its magic) on `out` for the journeys of `capture`.
    pub fn new(out: W, capture: Capture) -> Result<Self, ParquetExportError> {
        let buffers: Vec<Column> = columns()
            .into_iter()
            .map(|(name, kind)| Column::new(name, kind))
            .collect();
        let mut properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL)?))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_created_by(format!("tracer {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata(Some(vec![
                KeyValue::new("tracer.schema_version".into(), SCHEMA_VERSION.to_string()),
                KeyValue::new("tracer.host".into(), capture.host.clone()),
                KeyValue::new("tracer.kernel".into(), capture.kernel.clone()),
                KeyValue::new("tracer.capture_id".into(), capture.capture_id.clone()),
                KeyValue::new(
                    "tracer.realtime_offset_ns".into(),
                    capture.realtime_offset_ns.to_string(),
                ),
                KeyValue::new("tracer.recorded_by".into(), capture.tool_version.clone()),
            ]));
        // Stamps rise through a file: deltas, not a dictionary.
        for (name, kind) in columns() {
            if kind == Kind::Timestamp {
                properties = properties
                    .set_column_dictionary_enabled(ColumnPath::from(name.as_str()), false)
                    .set_column_encoding(ColumnPath::from(name), Encoding::DELTA_BINARY_PACKED);
            }
        }
        let writer = SerializedFileWriter::new(
            out,
            schema::parquet_schema()?,
            Arc::new(properties.build()),
        )?;
        Ok(Self {
            writer,
            capture,
            columns: buffers,
            rows: 0,
        })
    }

    /// Adds a journey's row (a full row group is written out).
    pub fn push(&mut self, journey: &Journey) -> Result<(), ParquetExportError> {
        let mut at = 0;
        let mut result = Ok(());
        let (columns, capture) = (&mut self.columns, &self.capture);
        journey_cells(journey, |_, cell| {
            if result.is_ok() {
                result = match columns.get_mut(at) {
                    Some(column) => column.push(cell, capture),
                    None => Err(ParquetExportError::Column {
                        column: at.to_string(),
                        reason: "more cells than columns",
                    }),
                };
            }
            at += 1;
        });
        result?;
        let file_cells = [
            Cell::Text(Some(capture.host.as_str().into())),
            Cell::Text(Some(capture.kernel.as_str().into())),
            Cell::Text(Some(capture.capture_id.as_str().into())),
            Cell::Int64(Some(SCHEMA_VERSION)),
        ];
        for cell in file_cells {
            let column = columns
                .get_mut(at)
                .ok_or_else(|| ParquetExportError::Column {
                    column: at.to_string(),
                    reason: "more cells than columns",
                })?;
            column.push(cell, capture)?;
            at += 1;
        }
        self.rows += 1;
        if self.rows >= ROW_GROUP_ROWS {
            self.write_row_group()?;
        }
        Ok(())
    }

    fn write_row_group(&mut self) -> Result<(), ParquetExportError> {
        if self.rows == 0 {
            return Ok(());
        }
        let mut group = self.writer.next_row_group()?;
        for column in &mut self.columns {
            let mut writer = group
                .next_column()?
                .ok_or_else(|| ParquetExportError::Column {
                    column: column.name.clone(),
                    reason: "not in the schema",
                })?;
            column.write(&mut writer)?;
            writer.close()?;
        }
        group.close()?;
        self.rows = 0;
        Ok(())
    }

    /// Writes the last row group and the footer; returns the writer.
    pub fn finish(mut self) -> Result<W, ParquetExportError> {
        self.write_row_group()?;
        Ok(self.writer.into_inner()?)
    }
}

impl<W: io::Write + Send> Sink for ParquetJourneys<W> {
    fn journey(&mut self, journey: &Journey) -> io::Result<()> {
        Ok(self.push(journey)?)
    }
}

/// The Parquet file of `journeys` from the recording `meta` describes, in memory.
pub fn to_bytes(meta: &Metadata, journeys: &[Journey]) -> Result<Vec<u8>, ParquetExportError> {
    let mut sink = ParquetJourneys::new(Vec::new(), Capture::from_metadata(meta))?;
    for journey in journeys {
        sink.push(journey)?;
    }
    sink.finish()
}

#[cfg(test)]
mod tests;
