//! Replaying a recording through the pipeline: `tracer report` (journeys, summary, the text
//! report; of one recording or several, report.rs) and `tracer export` (Perfetto, JSON
//! lines, CSV, Parquet).
//!
//! Both stream: chunks are decoded (on a second thread when there is a second CPU) and fed
//! to the engine as they are read, and what leaves the engine goes straight to its output
//! or into the report's counts, so memory is the reorder window, the open journeys and a
//! few chunks, whatever the size of the file.

mod export;
mod ordered;
mod report;

use std::{
    fs::File,
    io::{BufReader, Read},
    path::Path,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

pub use export::{Export, export, export_events};
use ordered::{Ordered, Step, Tally};
pub use report::{labels, report};

use crate::{
    journey::{EngineConfig, Journey, JourneyFilter, Tracker},
    recording::{Outline, RecordingReader},
    sink::report::{EventsSeen, ReportData},
};

/// Set by SIGINT or SIGTERM during `report` or `export`.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Makes SIGINT and SIGTERM stop a replay at the next chunk of events (well within a
/// second) instead of ending the process with its output half written.
fn catch_stop_signals() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        unsafe { libc::signal(signal, on_stop_signal as *const () as libc::sighandler_t) };
    }
}

fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// A replay stopped by SIGINT or SIGTERM: what was written is whole, the rest is missing
/// (exit status 130, as a shell reports Ctrl-C).
#[derive(Debug, thiserror::Error)]
#[error("interrupted: {0}")]
pub struct Interrupted(pub String);

/// What `report` shows.
#[derive(Clone, Debug, Default)]
pub struct ReportOptions {
    /// JSON lines on stdout, the summary on stderr, no text report.
    pub json: bool,
    /// Also list every journey, one line each.
    pub list: bool,
    /// Waterfalls of this many of the slowest journeys.
    pub slowest: usize,
    /// Also packets that never reached a socket.
    pub keep_unsocketed: bool,
    /// Which journeys are shown and counted.
    pub filter: JourneyFilter,
}

/// A recording opened for a replay: its reader and, for a regular file, its outline (the
/// event count and trailer from the chunk headers, read before the events).
struct Opened {
    reader: RecordingReader<BufReader<File>>,
    outline: Option<Outline>,
}

impl Opened {
    /// Opens `file` and, when it can seek, reads its outline: a corrupt chunk header is an
    /// error before any output.
    fn new(file: &Path) -> anyhow::Result<Self> {
        let reader = RecordingReader::open(file)?;
        let outline = Outline::read(reader.file(), reader.version(), file)?;
        Ok(Self { reader, outline })
    }

    /// Events in the file, when its outline says.
    fn total(&self) -> Option<u64> {
        self.outline.as_ref().map(|outline| outline.events)
    }
}

/// Warns about a recording cut short, or one without its trailer.
fn warn_incomplete(file: &Path, version: u8, ended: &Outline) {
    if let Some(why) = &ended.truncated {
        log::warn!(
            "{}: {why} (the recorder was stopped abruptly?); using the {} events before it",
            file.display(),
            ended.events
        );
    }
    if version >= 2 && ended.trailer.is_none() {
        log::warn!(
            "{}: no trailer: the recorder did not finish (killed?), so its lost-event counts are unknown",
            file.display()
        );
    }
}

/// Threads that decode: two when this process may run on two CPUs (decoding one chunk
/// while the engine takes the one before), else one.
fn decode_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(2))
}

/// How a pass over the events stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// Every event was read and the engine finished.
    End,
    /// SIGINT or SIGTERM after this many events; the engine was not finished.
    Signal(u64),
    /// The output's reader went away (a closed pipe): a normal end, nothing more to write.
    Closed,
}

/// Feeds every chunk of `ordered` through `tracker`; after each chunk `each` gets how many
/// events it held and the journeys that ended (to take), and says whether to go on. At the
/// end the engine is finished and `each` gets the last journeys with no events. On a stop
/// signal what was read waits in `tracker`'s own window (its `finish` runs it).
fn drive<R: Read, T: Tally>(
    ordered: &mut Ordered<R, T>,
    tracker: &mut Tracker,
    mut each: impl FnMut(usize, &mut Vec<Journey>) -> anyhow::Result<bool>,
) -> anyhow::Result<Stop> {
    let mut journeys = Vec::new();
    let mut read = 0u64;
    loop {
        if stop_requested() {
            read += ordered.halt(tracker);
            return Ok(Stop::Signal(read));
        }
        match ordered.step(tracker, &mut journeys)? {
            Step::Chunk(events) => {
                read += events as u64;
                if !each(events, &mut journeys)? {
                    return Ok(Stop::Closed);
                }
            }
            Step::End => break,
        }
    }
    tracker.finish(&mut journeys);
    Ok(if each(0, &mut journeys)? {
        Stop::End
    } else {
        Stop::Closed
    })
}

/// A recording's bytes through the reader, the engine and every sink (JSON lines, CSV,
/// Parquet, text lines, the run summary, the text report, Perfetto), all into memory: the body of the fuzz
/// target (`cargo xtask fuzz`) and of its regression tests. Returns the journeys rebuilt, or
/// nothing when the bytes are no readable recording (that is an error, never a panic).
pub fn every_sink(bytes: &[u8]) -> Option<usize> {
    use crate::sink::{
        Sink as _,
        csv::CsvRows,
        jsonl::JsonLines,
        parquet::{Capture, ParquetJourneys},
        summary::StageSummary,
    };
    let input = std::io::Cursor::new(bytes.to_vec());
    let reader = RecordingReader::new(input, Path::new("fuzz input")).ok()?;
    let (version, meta) = (reader.version(), reader.meta().clone());
    let mut tracker = Tracker::new(EngineConfig::from_recording(&meta, true));
    let mut data = ReportData::new(&meta, 3);
    let mut json = JsonLines::new(Vec::new());
    let mut csv = CsvRows::new(Vec::new()).ok()?;
    let mut parquet = ParquetJourneys::new(Vec::new(), Capture::from_metadata(&meta)).ok()?;
    let (mut text, mut summary, mut count) = (String::new(), StageSummary::default(), 0);
    let mut ordered = Ordered::here(reader, EventsSeen::new(true));
    let stop = drive(&mut ordered, &mut tracker, |_, journeys| {
        for journey in journeys.drain(..) {
            json.journey(&journey)?;
            csv.journey(&journey)?;
            parquet.push(&journey)?;
            text.push_str(&crate::sink::text::line(&journey));
            summary.add(&journey);
            data.journey(&journey);
            count += 1;
        }
        Ok(true)
    })
    .ok()?;
    let (reader, seen) = ordered.into_parts();
    data.set_events(seen?);
    let reader = reader?;
    let lost = reader.trailer().map(|t| t.lost_per_cpu.clone());
    let lost = lost.as_deref();
    text.push_str(&crate::sink::summary::run_summary(
        &summary,
        &tracker,
        lost,
        Duration::ZERO,
        true,
    ));
    text.push_str(&data.text(version, &meta, &tracker, reader.trailer()));
    let pass = export::Pass {
        threads: 1,
        keep_unsocketed: true,
        filter: &JourneyFilter::default(),
    };
    let trace = export::perfetto(reader.rewind().ok()?, &pass, Vec::new()).ok()?;
    let parquet = parquet.finish().ok()?;
    std::hint::black_box((json.into_inner(), csv.into_inner(), parquet, text, trace));
    (stop == Stop::End).then_some(count)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The fuzz target's body on the recorded fixture and on damaged copies of it.
    #[test]
    fn every_sink_takes_the_fixture_and_damaged_copies_of_it() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/nic-download/eth0-pip-download.trc");
        let bytes = std::fs::read(fixture).unwrap();
        let journeys = super::every_sink(&bytes).expect("the fixture reads");
        assert!(journeys > 20, "{journeys}");
        assert_eq!(super::every_sink(b"not a recording"), None);
        for cut in (0..bytes.len()).step_by(bytes.len() / 97) {
            let _ = super::every_sink(&bytes[..cut]);
        }
        let mut flipped = bytes.clone();
        for at in (0..flipped.len()).step_by(1009) {
            flipped[at] ^= 0x5a;
        }
        let _ = super::every_sink(&flipped);
    }
}
