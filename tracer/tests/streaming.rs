//! `report` and `export` stream a recording: their output equals what the whole file in
//! memory gives (every event pushed, then the engine finished), and a large recording is
//! reported and exported to every format within a memory bound that holding its events
//! would exceed.

mod common;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use tracer::{
    journey::{EngineConfig, Journey, Tracker},
    recording::{Recording, Writer},
    sink::{Sink as _, csv::CsvRows, jsonl::JsonLines, perfetto, report::ReportData},
};
use tracer_common::Event;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nic-download/eth0-pip-download.trc")
}

/// A format 2 recording as `tracer record` wrote it (loopback UDP and TCP, a trailer).
fn recorded_v2() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/loopback/udp-tcp-2s.trc")
}

/// Writes `events` as a recording in the format written (version 3), a chunk every `chunk` events (with a trailer).
fn write_v3(path: &Path, recording: &Recording, events: impl Iterator<Item = Event>, chunk: usize) {
    let mut writer = Writer::create(path, &recording.meta).unwrap();
    for (index, event) in events.enumerate() {
        writer.push(&event).unwrap();
        if index % chunk == chunk - 1 {
            writer.flush_chunk().unwrap();
        }
    }
    writer.finish(vec![0, 1], 5_000_000_000).unwrap();
}

/// The journeys of a recording held whole in memory: every event pushed, then the engine
/// finished (what report and export did before they streamed).
fn whole_file(recording: &Recording) -> (Vec<Journey>, Tracker) {
    let mut tracker = Tracker::new(EngineConfig::from_recording(&recording.meta, false));
    for event in &recording.events {
        tracker.push_event(*event);
    }
    let mut journeys = Vec::new();
    tracker.finish(&mut journeys);
    (journeys, tracker)
}

fn tracer(args: &[&std::ffi::OsStr]) -> Vec<u8> {
    let out = Command::new(common::tracer_bin())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tracer {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The packets of a Perfetto trace (field 1 of `Trace`, each length-delimited), sorted: the
/// streamed trace writes journeys before the events' slices, the whole-file one after.
fn packets(trace: &[u8]) -> Vec<&[u8]> {
    let mut packets = Vec::new();
    let mut at = 0;
    while at < trace.len() {
        assert_eq!(trace[at], 0x0a, "field 1, length-delimited, at {at}");
        at += 1;
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let byte = trace[at];
            at += 1;
            len |= usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        packets.push(&trace[at..at + len]);
        at += len;
    }
    packets.sort_unstable();
    packets
}

/// JSON lines, CSV, Parquet, `report --json`, the text report and the Perfetto trace of the
/// recorded fixtures (the NIC one in format 1, and as format 2 in chunks of 700 events; a
/// loopback one in format 2 as recorded) are those of the whole file in memory: the same
/// journeys, the same bytes.
#[test]
fn streamed_outputs_equal_the_whole_file_ones() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = fixture();
    let original = Recording::read(&v1).unwrap();
    let v3 = dir.path().join("fixture-v3.trc");
    write_v3(&v3, &original, original.events.iter().copied(), 700);
    assert_eq!(Recording::read(&v3).unwrap().events, original.events);
    for input in [v1, v3, recorded_v2()] {
        let recording = Recording::read(&input).unwrap();
        let (journeys, tracker) = whole_file(&recording);
        assert!(journeys.len() > 20, "{}", journeys.len());

        let mut json = JsonLines::new(Vec::new());
        let mut csv = CsvRows::new(Vec::new()).unwrap();
        for journey in &journeys {
            json.journey(journey).unwrap();
            csv.journey(journey).unwrap();
        }
        let (json, csv) = (json.into_inner(), csv.into_inner());
        let irq_names = recording
            .meta
            .irqs
            .iter()
            .map(|irq| (irq.irq, irq.name.clone()))
            .collect();
        let comms: HashMap<u32, String> = journeys
            .iter()
            .filter_map(|journey| Some((journey.tid?, journey.comm.as_deref()?.to_owned())))
            .collect();
        let trace = perfetto::export(&recording.events, &journeys, &irq_names, &comms);
        let parquet = tracer::sink::parquet::to_bytes(&recording.meta, &journeys).unwrap();
        let mut data = ReportData::new(&recording.meta, 3);
        data.events(&recording.events);
        for journey in &journeys {
            data.journey(journey);
        }
        let trailer = recording.trailer.as_ref();
        let text = data.text(recording.version, &recording.meta, &tracker, trailer);
        let text = tracer::sink::escape::lines(&text).into_owned();

        let formats = [
            ("jsonl", &json),
            ("csv", &csv),
            ("parquet", &parquet),
            ("perfetto", &trace),
        ];
        for (format, expected) in formats {
            let out = dir.path().join(format!("out.{format}"));
            tracer(&[
                "export".as_ref(),
                input.as_os_str(),
                "--format".as_ref(),
                format.as_ref(),
                "-o".as_ref(),
                out.as_os_str(),
            ]);
            let written = std::fs::read(&out).unwrap();
            if format == "perfetto" {
                assert_eq!(packets(&written), packets(expected), "{input:?} perfetto");
            } else {
                assert!(written == *expected, "{input:?} {format} differs");
            }
        }
        let streamed = tracer(&["report".as_ref(), input.as_os_str(), "--json".as_ref()]);
        assert!(streamed == json, "{input:?} report --json differs");
        let streamed = String::from_utf8(tracer(&["report".as_ref(), input.as_os_str()])).unwrap();
        assert_eq!(streamed, text, "{input:?} report");
    }
}

/// Peak RSS allowed to `report` and `export` of the large recording below, whose events
/// alone would take twice as much in memory.
const MEMORY_BOUND_MIB: u64 = 48;
/// The same for a recording whose clock never moves: the reorder window holds as many
/// events as it may (`journey::reorder::MAX_HELD`, 20 MiB, and the queue's spare room).
const STUCK_CLOCK_BOUND_MIB: u64 = 96;
/// The same for the Parquet exports, which fill a row group in memory before writing it
/// (`sink::parquet::ROW_GROUP_ROWS` rows, tens of MiB) whatever the file's size.
const PARQUET_BOUND_MIB: u64 = 128;

/// Runs the tracer (stdout discarded) and returns its peak RSS in MiB: VmHWM, its own
/// memory since exec, read every few milliseconds until it ends. (wait4's ru_maxrss would
/// not do: a spawned child's carries this test process's peak.)
fn peak_rss_mib(args: &[&std::ffi::OsStr]) -> u64 {
    let mut child = Command::new(common::tracer_bin())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    let status = loop {
        // Once it has exited the line is gone: the last value read stands.
        let hwm = std::fs::read_to_string(&status_path)
            .ok()
            .and_then(|status| {
                let line = status
                    .lines()
                    .find_map(|line| line.strip_prefix("VmHWM:"))?;
                line.split_whitespace().next()?.parse::<u64>().ok()
            });
        peak_kib = peak_kib.max(hwm.unwrap_or(0));
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let stderr = reader.join().unwrap();
    assert!(status.success(), "tracer {args:?}: {status}: {stderr}");
    assert!(peak_kib > 0, "tracer {args:?}: no VmHWM read");
    peak_kib / 1024
}

/// A recording of 1.6 M events (400 copies of the fixture, one after the other in time,
/// 100 MiB as events in memory): `report` (with and without `--list`) and every export (and
/// the raw events as Parquet) stay under [`MEMORY_BOUND_MIB`], and every copy's journeys are there. One of 1.2 M events
/// whose clock never moves (the reorder window would hold them all) stays under
/// [`STUCK_CLOCK_BOUND_MIB`]. Parquet stays under [`PARQUET_BOUND_MIB`].
#[test]
fn large_recordings_stream_within_a_memory_bound() {
    let dir = tempfile::tempdir().unwrap();
    let original = Recording::read(&fixture()).unwrap();
    let first = original.events.iter().map(|event| event.ts).min().unwrap();
    let last = original.events.iter().map(|event| event.ts).max().unwrap();
    let period = last - first + 1_000_000;
    const COPIES: u64 = 400;
    let long = dir.path().join("long.trc");
    write_v3(
        &long,
        &original,
        (0..COPIES).flat_map(|copy| {
            original.events.iter().map(move |event| Event {
                ts: event.ts + copy * period,
                ..*event
            })
        }),
        tracer::recording::CHUNK_EVENTS,
    );
    let stuck = dir.path().join("stuck.trc");
    write_v3(
        &stuck,
        &original,
        (0..COPIES / 2).flat_map(|_| {
            original.events.iter().map(|event| Event {
                ts: first,
                ..*event
            })
        }),
        tracer::recording::CHUNK_EVENTS,
    );
    let events = COPIES * original.events.len() as u64;
    assert!(events * 64 > (2 * MEMORY_BOUND_MIB) << 20);
    let out = dir.path().join("out");
    let events_out = dir.path().join("events.parquet");
    for (input, bound) in [(&long, MEMORY_BOUND_MIB), (&stuck, STUCK_CLOCK_BOUND_MIB)] {
        let mut commands: Vec<Vec<&std::ffi::OsStr>> = vec![
            vec!["report".as_ref(), input.as_os_str()],
            vec!["report".as_ref(), input.as_os_str(), "--list".as_ref()],
        ];
        for format in ["jsonl", "csv", "parquet", "perfetto"] {
            commands.push(vec![
                "export".as_ref(),
                input.as_os_str(),
                "--format".as_ref(),
                format.as_ref(),
                "-o".as_ref(),
                out.as_os_str(),
            ]);
        }
        // And every raw event as a second Parquet table (of the long one: it is slow).
        commands.push(vec![
            "export".as_ref(),
            input.as_os_str(),
            "--format".as_ref(),
            "parquet".as_ref(),
            "-o".as_ref(),
            out.as_os_str(),
            "--events".as_ref(),
            events_out.as_os_str(),
        ]);
        if input == &stuck {
            commands.pop();
        }
        for args in commands {
            let bound = if args.contains(&"parquet".as_ref()) {
                PARQUET_BOUND_MIB
            } else {
                bound
            };
            let rss = peak_rss_mib(&args);
            eprintln!("{args:?}: peak RSS {rss} MiB");
            assert!(
                rss <= bound,
                "{args:?}: peak RSS {rss} MiB, bound {bound} MiB"
            );
        }
    }
    // Every copy's journeys are there, once each.
    let report = String::from_utf8(tracer(&["report".as_ref(), long.as_os_str()])).unwrap();
    assert!(
        report.contains(&format!(" {events} events over ")),
        "{}",
        report.lines().next().unwrap()
    );
    let (journeys, _) = whole_file(&original);
    let lines = tracer(&["report".as_ref(), long.as_os_str(), "--json".as_ref()]);
    let streamed = lines.iter().filter(|byte| **byte == b'\n').count();
    assert_eq!(streamed, journeys.len() * COPIES as usize);
}
