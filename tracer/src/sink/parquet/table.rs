//! A Parquet table written a row group at a time: typed column buffers with definition
//! levels, zstd, the capture's key-value metadata. The journey and event tables fill it.

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

use super::{
    Capture, ParquetExportError, ROW_GROUP_ROWS,
    schema::{Cell, Kind, SCHEMA_VERSION, parquet_schema},
};

/// The zstd level of every column.
const ZSTD_LEVEL: i32 = 3;

/// One column's values of the row group being filled.
enum Values {
    Int64(Vec<i64>),
    Bool(Vec<bool>),
    Bytes(Vec<ByteArray>),
}

/// A column's buffer, with its definition levels (1 = a value, 0 = null).
struct Column {
    name: String,
    values: Values,
    defs: Vec<i16>,
}

impl Column {
    fn new(name: String, kind: Kind) -> Self {
        let values = match kind {
            Kind::UInt64 | Kind::Rising | Kind::Int64 | Kind::Timestamp => {
                Values::Int64(Vec::new())
            }
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
            (Values::Int64(values), Cell::UInt64(value) | Cell::Rising(value)) => {
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

/// A Parquet file being written: rows of cells in column order, a row group every
/// [`ROW_GROUP_ROWS`] rows.
pub(super) struct Table<W: io::Write + Send> {
    writer: SerializedFileWriter<W>,
    capture: Capture,
    columns: Vec<Column>,
    /// The column the next cell goes to.
    at: usize,
    rows: usize,
}

impl<W: io::Write + Send> Table<W> {
    /// Starts a file of `columns` (message `message`) on `out`.
    pub(super) fn new(
        out: W,
        message: &str,
        columns: Vec<(String, Kind)>,
        capture: Capture,
    ) -> Result<Self, ParquetExportError> {
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
        // Stamps and ids rise through a file: deltas, not a dictionary.
        for (name, kind) in &columns {
            if matches!(kind, Kind::Timestamp | Kind::Rising) {
                properties = properties
                    .set_column_dictionary_enabled(ColumnPath::from(name.as_str()), false)
                    .set_column_encoding(
                        ColumnPath::from(name.as_str()),
                        Encoding::DELTA_BINARY_PACKED,
                    );
            }
        }
        let schema = parquet_schema(message, &columns)?;
        let writer = SerializedFileWriter::new(out, schema, Arc::new(properties.build()))?;
        Ok(Self {
            writer,
            capture,
            columns: columns
                .into_iter()
                .map(|(name, kind)| Column::new(name, kind))
                .collect(),
            at: 0,
            rows: 0,
        })
    }

    /// The capture whose columns every row ends with.
    pub(super) fn capture(&self) -> &Capture {
        &self.capture
    }

    /// The next cell of the row being filled.
    pub(super) fn cell(&mut self, cell: Cell<'_>) -> Result<(), ParquetExportError> {
        let column = self
            .columns
            .get_mut(self.at)
            .ok_or_else(|| ParquetExportError::Column {
                column: self.at.to_string(),
                reason: "more cells than columns",
            })?;
        column.push(cell, &self.capture)?;
        self.at += 1;
        Ok(())
    }

    /// Ends the row (every column must have its cell); a full row group is written out.
    pub(super) fn end_row(&mut self) -> Result<(), ParquetExportError> {
        if self.at != self.columns.len() {
            return Err(ParquetExportError::Column {
                column: self.at.to_string(),
                reason: "a row ended before its last column",
            });
        }
        self.at = 0;
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
    pub(super) fn finish(mut self) -> Result<W, ParquetExportError> {
        self.write_row_group()?;
        Ok(self.writer.into_inner()?)
    }
}
