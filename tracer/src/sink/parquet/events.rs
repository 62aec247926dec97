//! The raw events of a recording as a second Parquet table (`export --events`): one row per
//! event, its fields as the recording stores them (docs/FORMAT.md), for questions the
//! journeys do not answer (IRQ rates, softirq runs without packets, every wakeup).

use std::{borrow::Cow, io, path::Path};

use tracer_common::{Event, EventKind, FLAG_LOST_BEFORE};

use super::{
    Capture, ParquetExportError,
    schema::{Cell, FILE_COLUMNS, Kind},
    table::Table,
};
use crate::recording::Recording;

/// Calls `cell` with every event column of `event`, in column order, with its name.
fn event_cells(event: &Event, mut cell: impl FnMut(&'static str, Cell<'_>)) {
    let kind = EventKind::from_u8(event.kind).map(|kind| Cow::Borrowed(kind.name()));
    let name = crate::source::decode::name(event);
    cell("ts", Cell::Timestamp(Some(event.ts)));
    cell("mono_ns", Cell::Rising(Some(event.ts)));
    cell("kind", Cell::Text(kind));
    cell("cpu", Cell::UInt64(Some(u64::from(event.cpu))));
    cell("tgid", Cell::UInt64(Some(u64::from(event.tgid))));
    cell("tid", Cell::UInt64(Some(u64::from(event.tid))));
    cell("arg0", Cell::UInt64(Some(u64::from(event.arg0))));
    cell("arg1", Cell::UInt64(Some(u64::from(event.arg1))));
    cell("arg2", Cell::UInt64(Some(u64::from(event.arg2))));
    cell("addr", Cell::UInt64(Some(event.addr)));
    cell("addr2", Cell::UInt64(Some(event.addr2)));
    cell(
        "name",
        Cell::Text((!name.is_empty()).then_some(Cow::Owned(name))),
    );
    cell(
        "lost_before",
        Cell::Bool(event.flags & FLAG_LOST_BEFORE != 0),
    );
}

/// Every column of the event table, event columns then [`FILE_COLUMNS`]: (name, kind).
pub fn columns() -> Vec<(String, Kind)> {
    let mut columns = Vec::with_capacity(20);
    let zero = Event {
        ts: 0,
        addr: 0,
        addr2: 0,
        tgid: 0,
        tid: 0,
        arg0: 0,
        arg1: 0,
        arg2: 0,
        cpu: 0,
        kind: 0,
        flags: 0,
        name: [0; tracer_common::NAME_LEN],
    };
    event_cells(&zero, |name, cell| {
        columns.push((name.to_owned(), cell.kind()));
    });
    columns.extend(
        FILE_COLUMNS
            .iter()
            .map(|(name, kind)| ((*name).to_owned(), *kind)),
    );
    columns
}

/// Events as rows of a Parquet file on a writer.
pub struct ParquetEvents<W: io::Write + Send> {
    table: Table<W>,
}

impl<W: io::Write + Send> ParquetEvents<W> {
    /// Starts a file on `out` for the events of `capture`.
    pub fn new(out: W, capture: Capture) -> Result<Self, ParquetExportError> {
        Ok(Self {
            table: Table::new(out, "event", columns(), capture)?,
        })
    }

    /// Adds an event's row.
    pub fn push(&mut self, event: &Event) -> Result<(), ParquetExportError> {
        let mut result = Ok(());
        let table = &mut self.table;
        event_cells(event, |_, cell| {
            if result.is_ok() {
                result = table.cell(cell);
            }
        });
        result?;
        super::file_cells(table)?;
        table.end_row()
    }

    /// Writes the last row group and the footer; returns the writer.
    pub fn finish(self) -> Result<W, ParquetExportError> {
        self.table.finish()
    }
}

/// Writes every event of `recording` to `path` (the flow filter selects journeys, not
/// events); returns the rows written.
pub fn write_file(recording: &Recording, path: &Path) -> Result<usize, ParquetExportError> {
    let io_error = |source| ParquetExportError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::create(path).map_err(io_error)?;
    let mut sink = ParquetEvents::new(
        io::BufWriter::new(file),
        Capture::from_metadata(&recording.meta),
    )?;
    for event in &recording.events {
        sink.push(event)?;
    }
    let mut out = sink.finish()?;
    io::Write::flush(&mut out).map_err(io_error)?;
    Ok(recording.events.len())
}
