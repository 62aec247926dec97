//! `tracer export`: a recording's journeys as JSON lines, CSV or Parquet in one pass over
//! the file (and its raw events as Parquet, `--events`, in another), or as a Perfetto trace
//! in two: the journeys first (they name the readers), then the events again from the start
//! (they draw the CPUs' slices and the readers' running ones).

use std::{
    collections::{HashMap, HashSet},
    fs::File,
    io::{self, BufWriter, Read, Seek, Write},
    path::Path,
};

use anyhow::Context as _;

use super::{
    Interrupted, Opened, Ordered, Stop, catch_stop_signals, decode_threads, drive, warn_incomplete,
};
use crate::{
    journey::{EngineConfig, Journey, JourneyFilter, Reorder, Tracker, reorder::DEFAULT_WINDOW_NS},
    recording::{EventBatches, Outline, RecordingReader},
    sink::{
        Sink,
        csv::CsvRows,
        jsonl::JsonLines,
        parquet::{Capture, ParquetJourneys, events::ParquetEvents},
        perfetto::TraceWriter,
    },
};

/// What `export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Export {
    /// A Perfetto trace (protobuf).
    Perfetto,
    /// One journey JSON object per line.
    Jsonl,
    /// One row per journey.
    Csv,
    /// One typed row per journey (`sink::parquet`, docs/parquet.md).
    Parquet,
}

/// What an export wrote.
#[derive(Debug)]
pub(super) struct Written {
    journeys: u64,
    events: u64,
    bytes: u64,
    stop: Stop,
    /// How the recording ended, when its end was read.
    ended: Option<Outline>,
}

/// Writes a recording's journeys that `filter` keeps to `output` as `format`;
/// `keep_unsocketed`: also packets that never reached a socket.
pub fn export(
    file: &Path,
    format: Export,
    output: &Path,
    keep_unsocketed: bool,
    filter: &JourneyFilter,
) -> anyhow::Result<()> {
    catch_stop_signals();
    refuse_same_file(file, output)?;
    let opened = Opened::new(file)?;
    let total = opened.total();
    let version = opened.reader.version();
    if format == Export::Perfetto && opened.outline.is_none() {
        anyhow::bail!(
            "{}: the Perfetto export reads a recording twice (journeys, then the events again), \
             and this input cannot be read again from its start (a pipe?): save it to a file first",
            file.display()
        );
    }
    let out = File::create(output).with_context(|| format!("creating {}", output.display()))?;
    let out = Counted {
        inner: BufWriter::with_capacity(1 << 16, out),
        bytes: 0,
    };
    let threads = decode_threads();
    let opened_ended = opened.outline.clone();
    let reader = opened.reader;
    let counted = |(out, mut written): (Counted<_>, Written)| {
        written.bytes = out.bytes;
        written
    };
    let capture = Capture::from_metadata(reader.meta());
    let pass = Pass {
        threads,
        keep_unsocketed,
        filter,
    };
    let written = match format {
        Export::Jsonl => journeys_to(reader, &pass, JsonLines::new(out)).map(counted),
        Export::Csv => CsvRows::new(out)
            .map_err(anyhow::Error::from)
            .and_then(|csv| journeys_to(reader, &pass, csv))
            .map(counted),
        Export::Parquet => ParquetJourneys::new(out, capture)
            .map_err(anyhow::Error::from)
            .and_then(|parquet| journeys_to(reader, &pass, parquet))
            .map(counted),
        Export::Perfetto => perfetto(reader, &pass, out).map(|(_, w)| w),
    };
    let written = match written {
        Ok(written) => written,
        Err(err) if is_broken_pipe(&err) => return Ok(()),
        Err(err) => {
            // No half export posing as a whole one (a pipe or device is left as it is).
            if std::fs::metadata(output).is_ok_and(|meta| meta.is_file()) {
                let _ = std::fs::remove_file(output);
            }
            if err
                .downcast_ref::<crate::recording::RecordError>()
                .is_some()
            {
                return Err(err);
            }
            return Err(err.context(format!("writing {}", output.display())));
        }
    };
    if written.stop == Stop::Closed {
        return Ok(());
    }
    if let Some(ended) = written.ended.as_ref().or(opened_ended.as_ref()) {
        warn_incomplete(file, version, ended);
    }
    eprintln!(
        "tracer: {} journeys from {} events written to {} ({} bytes)",
        written.journeys,
        written.events,
        output.display(),
        written.bytes
    );
    if let Stop::Signal(read) = written.stop {
        let of_total = total.map_or(String::new(), |total| format!(" of {total}"));
        return Err(Interrupted(format!("export stopped after {read}{of_total} events")).into());
    }
    Ok(())
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.downcast_ref::<io::Error>()
        .is_some_and(|err| err.kind() == io::ErrorKind::BrokenPipe)
}

/// An export must not overwrite its own recording (`export A.trc -o A.trc`), under any
/// name (a link, `./A.trc`): the same file is the same device and inode.
fn refuse_same_file(input: &Path, output: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let (Ok(a), Ok(b)) = (std::fs::metadata(input), std::fs::metadata(output)) else {
        return Ok(()); // no output yet (or no input: reading it says why)
    };
    if (a.dev(), a.ino()) == (b.dev(), b.ino()) {
        anyhow::bail!(
            "{} is the recording being exported: choose another output file",
            output.display()
        );
    }
    Ok(())
}

/// Counts what goes through it.
struct Counted<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// How a pass over a recording makes journeys: decoding threads, whether packets that never
/// reached a socket count, which journeys are written.
pub(super) struct Pass<'a> {
    pub threads: usize,
    pub keep_unsocketed: bool,
    pub filter: &'a JourneyFilter,
}

/// A sink that hands back its output when done.
trait IntoInner: Sink {
    type Out: Write;
    fn into_out(self) -> io::Result<Self::Out>;
}

impl<W: Write> IntoInner for JsonLines<W> {
    type Out = W;
    fn into_out(self) -> io::Result<W> {
        Ok(self.into_inner())
    }
}

impl<W: Write> IntoInner for CsvRows<W> {
    type Out = W;
    fn into_out(self) -> io::Result<W> {
        Ok(self.into_inner())
    }
}

/// The last row group and the footer are written when it is done.
impl<W: Write + Send> IntoInner for ParquetJourneys<W> {
    type Out = W;
    fn into_out(self) -> io::Result<W> {
        Ok(self.finish()?)
    }
}

/// One pass: every journey to `sink` as it ends. On a stop signal the engine is finished
/// (open journeys end as incomplete), so what is written is whole.
fn journeys_to<R, S>(
    reader: RecordingReader<R>,
    pass: &Pass,
    mut sink: S,
) -> anyhow::Result<(S::Out, Written)>
where
    R: Read + Send + 'static,
    S: IntoInner,
{
    let config = EngineConfig::from_recording(reader.meta(), pass.keep_unsocketed);
    let mut tracker = Tracker::new(config);
    let mut ordered = Ordered::new(reader, pass.threads, ());
    let (mut journeys, mut events) = (0u64, 0u64);
    let mut write = |sink: &mut S, ended: &mut Vec<Journey>| -> io::Result<()> {
        for journey in ended.drain(..).filter(|journey| pass.filter.keeps(journey)) {
            journeys += 1;
            sink.journey(&journey)?;
        }
        Ok(())
    };
    let stop = drive(&mut ordered, &mut tracker, |chunk, ended| {
        events += chunk as u64;
        match write(&mut sink, ended) {
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(false),
            other => Ok(other.map(|()| true)?),
        }
    })?;
    if let Stop::Signal(_) = stop {
        let mut ended = Vec::new();
        tracker.finish(&mut ended);
        write(&mut sink, &mut ended)?;
    }
    let mut out = sink.into_out()?;
    out.flush()?;
    let written = Written {
        journeys,
        events,
        bytes: 0,
        stop,
        ended: ordered.into_parts().0.map(|reader| reader.outline()),
    };
    Ok((out, written))
}

/// The Perfetto trace of a recording, in two passes over it: the engine's journeys (flows,
/// and the readers they name), then the events from the start again through a reorder
/// window (slices). Neither pass holds more than the window and the open journeys. On a
/// stop signal the trace is closed where it is (journeys of the first pass finished).
pub(super) fn perfetto<R, W>(
    reader: RecordingReader<R>,
    pass: &Pass,
    out: W,
) -> anyhow::Result<(W, Written)>
where
    R: Read + Seek + Send + 'static,
    W: Write,
{
    let irq_names = reader
        .meta()
        .irqs
        .iter()
        .map(|irq| (irq.irq, irq.name.clone()))
        .collect();
    let mut trace = TraceWriter::new(out, irq_names);
    let config = EngineConfig::from_recording(reader.meta(), pass.keep_unsocketed);
    let mut tracker = Tracker::new(config);
    let mut readers = HashSet::new();
    let mut comms = HashMap::new();
    let (mut journeys, mut events) = (0u64, 0u64);
    let mut write = |trace: &mut TraceWriter<W>, ended: &mut Vec<Journey>| -> io::Result<()> {
        for journey in ended.drain(..).filter(|journey| pass.filter.keeps(journey)) {
            journeys += 1;
            if let Some(tid) = journey.tid {
                readers.insert(tid);
                if let Some(comm) = journey.comm.as_deref() {
                    comms.insert(tid, comm.to_owned());
                }
            }
            trace.journey(&journey)?;
        }
        Ok(())
    };
    let mut ordered = Ordered::new(reader, pass.threads, ());
    let mut stop = drive(&mut ordered, &mut tracker, |chunk, ended| {
        events += chunk as u64;
        write(&mut trace, ended)?;
        Ok(true)
    })?;
    if let Stop::Signal(_) = stop {
        let mut ended = Vec::new();
        tracker.finish(&mut ended);
        write(&mut trace, &mut ended)?;
    }
    drop(tracker);
    let mut ended = None;
    if stop == Stop::End {
        let reader = ordered
            .into_parts()
            .0
            .context("the recording's reader after the first pass")?;
        ended = Some(reader.outline());
        trace.readers(readers, comms);
        stop = draw_events(reader.rewind()?, pass.threads, &mut trace)?;
    }
    trace.close_slices()?;
    let bytes = trace.bytes();
    let out = trace.into_inner()?;
    Ok((
        out,
        Written {
            journeys,
            events,
            bytes,
            stop,
            ended,
        },
    ))
}

/// The second pass of the Perfetto export: every event, in time order through a reorder
/// window, draws the CPUs' slices.
fn draw_events<R, W>(
    reader: RecordingReader<R>,
    threads: usize,
    trace: &mut TraceWriter<W>,
) -> anyhow::Result<Stop>
where
    R: Read + Send + 'static,
    W: Write,
{
    let mut batches = EventBatches::new(reader, threads);
    let mut reorder = Reorder::new(DEFAULT_WINDOW_NS);
    let mut failed = Ok(());
    let mut each = |event: &tracer_common::Event| {
        if failed.is_ok() {
            failed = trace.event(event);
        }
    };
    let mut drawn = 0;
    let mut stop = Stop::End;
    loop {
        if super::stop_requested() {
            stop = Stop::Signal(drawn);
            break;
        }
        let Some(chunk) = batches.next_batch()? else {
            break;
        };
        drawn += chunk.len() as u64;
        for event in chunk {
            reorder.push(*event);
        }
        reorder.release(&mut each);
    }
    reorder.drain(&mut each);
    failed?;
    Ok(stop)
}

/// Writes every event of a recording to `output` as a Parquet table (`export --events`),
/// chunk by chunk; returns the rows written. On a stop signal the file is closed whole with
/// the rows so far.
pub fn export_events(file: &Path, output: &Path) -> anyhow::Result<u64> {
    catch_stop_signals();
    let opened = Opened::new(file)?;
    let total = opened.total();
    let reader = opened.reader;
    let out = File::create(output).with_context(|| format!("creating {}", output.display()))?;
    let mut table = ParquetEvents::new(
        BufWriter::with_capacity(1 << 16, out),
        Capture::from_metadata(reader.meta()),
    )?;
    let mut batches = EventBatches::new(reader, decode_threads());
    let mut rows = 0u64;
    let mut interrupted = false;
    let read = loop {
        if super::stop_requested() {
            interrupted = true;
            break Ok(());
        }
        match batches.next_batch() {
            Ok(Some(events)) => {
                for event in events {
                    table.push(event)?;
                }
                rows += events.len() as u64;
            }
            Ok(None) => break Ok(()),
            Err(err) => break Err(err),
        }
    };
    if let Err(err) = read {
        if std::fs::metadata(output).is_ok_and(|meta| meta.is_file()) {
            let _ = std::fs::remove_file(output);
        }
        return Err(err.into());
    }
    let mut out = table.finish()?;
    out.flush()
        .with_context(|| format!("writing {}", output.display()))?;
    if interrupted {
        let of_total = total.map_or(String::new(), |total| format!(" of {total}"));
        return Err(Interrupted(format!(
            "events export stopped after {rows}{of_total} events ({} written whole)",
            output.display()
        ))
        .into());
    }
    Ok(rows)
}
