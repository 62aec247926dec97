//! Journeys as a Parquet table (`export --format parquet`), for DuckDB, Spark or pandas:
//! one row per journey, the columns of the field table (`schema.rs`), typed, zstd-compressed,
//! in row groups of [`ROW_GROUP_ROWS`]. The schema is documented in docs/parquet.md.

pub mod events;
pub mod schema;
mod table;

use std::io;

use self::{
    schema::{Cell, SCHEMA_VERSION, journey_cells},
    table::Table,
};
use super::Sink;
use crate::{journey::Journey, recording::Metadata};

/// Rows per row group: large enough for scans (a column chunk of a few hundred kilobytes),
/// small enough to hold in memory while it fills (tens of megabytes).
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Why a Parquet export failed.
#[derive(Debug, thiserror::Error)]
pub enum ParquetExportError {
    /// The Parquet library refused the schema, a value or the output.
    #[error("writing Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// The output file could not be created or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A column of a row group did not line up with the schema (a bug, reported not panicked).
    #[error("Parquet column {column}: {reason}")]
    Column {
        /// The column's name (or its index).
        column: String,
        /// What did not line up.
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
    pub(super) fn wall(&self, monotonic_ns: u64) -> Option<i64> {
        i64::try_from(i128::from(monotonic_ns) + self.realtime_offset_ns).ok()
    }
}

/// 64-bit FNV-1a: a stable hash with no dependency (not for security).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Journeys as rows of a Parquet file on a writer. Rows are written a row group at a time;
/// [`ParquetJourneys::finish`] writes the last one and the footer.
pub struct ParquetJourneys<W: io::Write + Send> {
    table: Table<W>,
}

impl<W: io::Write + Send> ParquetJourneys<W> {
    /// Starts a file (its magic) on `out` for the journeys of `capture`.
    pub fn new(out: W, capture: Capture) -> Result<Self, ParquetExportError> {
        Ok(Self {
            table: Table::new(out, "journey", schema::columns(), capture)?,
        })
    }

    /// Adds a journey's row (a full row group is written out).
    pub fn push(&mut self, journey: &Journey) -> Result<(), ParquetExportError> {
        let mut result = Ok(());
        let table = &mut self.table;
        journey_cells(journey, |_, cell| {
            if result.is_ok() {
                result = table.cell(cell);
            }
        });
        result?;
        file_cells(table)?;
        table.end_row()
    }

    /// Writes the last row group and the footer; returns the writer.
    pub fn finish(self) -> Result<W, ParquetExportError> {
        self.table.finish()
    }
}

/// The per-file cells ([`schema::FILE_COLUMNS`]) that end every row.
fn file_cells<W: io::Write + Send>(table: &mut Table<W>) -> Result<(), ParquetExportError> {
    let capture = table.capture().clone();
    table.cell(Cell::Text(Some(capture.host.into())))?;
    table.cell(Cell::Text(Some(capture.kernel.into())))?;
    table.cell(Cell::Text(Some(capture.capture_id.into())))?;
    table.cell(Cell::Int64(Some(SCHEMA_VERSION)))
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
