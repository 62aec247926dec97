//! Replaying a recording through the pipeline: `tracer report` (journeys, summary, the text
//! report) and `tracer export` (Perfetto, JSON lines, CSV).

use std::{
    io::IsTerminal as _,
    path::Path,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use anyhow::Context as _;

use crate::{
    journey::{EngineConfig, Journey, JourneyFilter, Tracker, pipeline},
    recording::Recording,
    sink::{
        Sink as _,
        analysis::EventCounts,
        csv::CsvRows,
        jsonl::JsonLines,
        perfetto,
        report::analysis_text,
        terminal::{JourneySink, Shown},
    },
};

/// Set by SIGINT or SIGTERM during `report` or `export`.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Makes SIGINT and SIGTERM stop a replay at the next batch of events (well within a
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

/// Events replayed between checks for a stop signal.
const BATCH: usize = 65536;

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
    pub filter: JourneyFilter,
}

/// What `export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Export {
    Perfetto,
    Jsonl,
    Csv,
    /// One typed row per journey (`sink::parquet`, docs/parquet.md).
    Parquet,
}

/// Journeys and the report of a recording: JSON lines or a list on stdout (with the summary),
/// then, without `json`, the text report.
pub fn report(file: &Path, options: &ReportOptions) -> anyhow::Result<()> {
    catch_stop_signals();
    let recording = open_recording(file)?;
    let meta = &recording.meta;
    let mut config = EngineConfig::from_recording(meta, options.keep_unsocketed);
    config.readers = options.filter.readers();
    let mut tracker = Tracker::new(config);
    let shown = Shown {
        json: options.json,
        filter: options.filter.clone(),
        ..Shown::default()
    };
    let filter = &options.filter;
    let lines = options.json || options.list;
    let mut sink = lines.then(|| JourneySink::stdout(shown));
    let progress = std::io::stderr().is_terminal() && recording.events.len() > 1_000_000;
    let mut kept = Vec::new();
    let mut journeys = Vec::new();
    let total_events = recording.events.len();
    let (mut first, mut last) = (u64::MAX, 0);
    for (index, chunk) in recording.events.chunks(BATCH).enumerate() {
        if stop_requested() {
            if progress {
                eprintln!();
            }
            return Err(Interrupted(format!(
                "report stopped after {} of {total_events} events",
                index * BATCH
            ))
            .into());
        }
        for event in chunk {
            first = first.min(event.ts);
            last = last.max(event.ts);
            tracker.push_event(*event);
        }
        tracker.advance(None, &mut journeys);
        take(&mut journeys, &mut sink, &mut kept, filter);
        if progress {
            eprint!("\rtracer: {} of {total_events} events", (index + 1) * BATCH);
        }
    }
    if progress {
        eprintln!();
    }
    tracker.finish(&mut journeys);
    take(&mut journeys, &mut sink, &mut kept, filter);
    if first > last {
        (first, last) = (0, 0); // no events
    }
    let lost = recording
        .trailer
        .as_ref()
        .map(|trailer| trailer.lost_per_cpu.as_slice());
    if let Some(sink) = &mut sink {
        sink.summary(&tracker, lost, Duration::from_nanos(last - first), true);
    }
    if options.json {
        return Ok(());
    }
    let text = report_text(&recording, &kept, &tracker, options.slowest, lost);
    // A closed stdout (`| head`) ends the report quietly.
    let _ = std::io::Write::write_all(
        &mut std::io::stdout().lock(),
        crate::sink::escape::lines(&text).as_bytes(),
    );
    Ok(())
}

/// Reads a recording and warns about a cut or unfinished one.
pub fn open_recording(file: &Path) -> anyhow::Result<Recording> {
    let recording = Recording::read(file)?;
    if let Some(why) = &recording.truncated {
        log::warn!(
            "{}: {why} (the recorder was stopped abruptly?); using the {} events before it",
            file.display(),
            recording.events.len()
        );
    }
    if recording.version >= 2 && recording.trailer.is_none() {
        log::warn!(
            "{}: no trailer: the recorder did not finish (killed?), so its lost-event counts are unknown",
            file.display()
        );
    }
    Ok(recording)
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
    use std::io::Write as _;
    catch_stop_signals();
    refuse_same_file(file, output)?;
    let recording = open_recording(file)?;
    let mut tracker = Tracker::new(EngineConfig::from_recording(
        &recording.meta,
        keep_unsocketed,
    ));
    let mut journeys = Vec::new();
    let mut interrupted = None;
    for (index, chunk) in recording.events.chunks(BATCH).enumerate() {
        if stop_requested() {
            interrupted = Some(index * BATCH);
            break;
        }
        for event in chunk {
            tracker.push_event(*event);
        }
        tracker.advance(None, &mut journeys);
    }
    tracker.finish(&mut journeys);
    journeys.retain(|journey| filter.keeps(journey));
    let bytes = match format {
        Export::Perfetto => perfetto_trace(&recording, &journeys),
        Export::Jsonl => {
            let mut sink = JsonLines::new(Vec::new());
            for journey in &journeys {
                sink.journey(journey)?;
            }
            sink.into_inner()
        }
        Export::Csv => {
            let mut sink = CsvRows::new(Vec::new())?;
            for journey in &journeys {
                sink.journey(journey)?;
            }
            sink.into_inner()
        }
        Export::Parquet => crate::sink::parquet::to_bytes(&recording.meta, &journeys)?,
    };
    let mut file =
        std::fs::File::create(output).with_context(|| format!("creating {}", output.display()))?;
    file.write_all(&bytes)
        .with_context(|| format!("writing {}", output.display()))?;
    let events = interrupted.unwrap_or(recording.events.len());
    eprintln!(
        "tracer: {} journeys from {events} events written to {} ({} bytes)",
        journeys.len(),
        output.display(),
        bytes.len()
    );
    if interrupted.is_some() {
        return Err(Interrupted(format!(
            "export stopped after {events} of {} events",
            recording.events.len()
        ))
        .into());
    }
    Ok(())
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

fn take(
    journeys: &mut Vec<Journey>,
    sink: &mut Option<JourneySink<std::io::BufWriter<std::io::StdoutLock<'static>>>>,
    kept: &mut Vec<Journey>,
    filter: &JourneyFilter,
) {
    if let Some(sink) = sink {
        sink.show(journeys.iter().cloned());
    }
    kept.extend(journeys.drain(..).filter(|journey| filter.keeps(journey)));
}

/// The text report of a recording's journeys (event counts taken from the recording).
fn report_text(
    recording: &Recording,
    journeys: &[Journey],
    tracker: &Tracker,
    slowest: usize,
    lost: Option<&[u64]>,
) -> String {
    let irq_devices = pipeline::irq_devices(&recording.meta)
        .into_iter()
        .map(|(irq, device)| (irq, device.dev))
        .collect();
    let readers = journeys.iter().filter_map(|journey| journey.tid).collect();
    let counts = EventCounts::count(&recording.events, &irq_devices, &readers);
    analysis_text(recording, journeys, &counts, tracker, slowest, lost)
}

/// The Perfetto trace of a recording and its journeys.
fn perfetto_trace(recording: &Recording, journeys: &[Journey]) -> Vec<u8> {
    let irq_names = recording
        .meta
        .irqs
        .iter()
        .map(|irq| (irq.irq, irq.name.clone()))
        .collect();
    let comms = journeys
        .iter()
        .filter_map(|journey| Some((journey.tid?, journey.comm.as_deref()?.to_owned())))
        .collect();
    perfetto::export(&recording.events, journeys, &irq_names, &comms)
}

/// A recording's bytes through the reader, the engine and every sink (JSON lines, CSV, text
/// lines, the run summary, the text report, Perfetto), all into memory: the body of the fuzz
/// target (`cargo xtask fuzz`) and of its regression tests. Returns the journeys rebuilt, or
/// nothing when the bytes are no readable recording (that is an error, never a panic).
pub fn every_sink(bytes: &[u8]) -> Option<usize> {
    let recording = Recording::parse(bytes, Path::new("fuzz input")).ok()?;
    let meta = &recording.meta;
    let mut tracker = Tracker::new(EngineConfig::from_recording(meta, true));
    let mut journeys = Vec::new();
    for event in &recording.events {
        tracker.push_event(*event);
    }
    tracker.finish(&mut journeys);
    let mut json = JsonLines::new(Vec::new());
    let mut csv = CsvRows::new(Vec::new()).ok()?;
    let mut text = String::new();
    for journey in &journeys {
        json.journey(journey).ok()?;
        csv.journey(journey).ok()?;
        text.push_str(&crate::sink::text::line(journey));
    }
    let mut summary = crate::sink::summary::StageSummary::default();
    for journey in &journeys {
        summary.add(journey);
    }
    let lost = recording
        .trailer
        .as_ref()
        .map(|t| t.lost_per_cpu.as_slice());
    text.push_str(&crate::sink::summary::run_summary(
        &summary,
        &tracker,
        lost,
        Duration::ZERO,
        true,
    ));
    text.push_str(&report_text(&recording, &journeys, &tracker, 3, lost));
    let trace = perfetto_trace(&recording, &journeys);
    std::hint::black_box((json.into_inner(), csv.into_inner(), text, trace));
    Some(journeys.len())
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
