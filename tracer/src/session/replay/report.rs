//! `tracer report` of one recording or of several (hosts, or the files of a ring): each is
//! replayed by its own engine, as `report` of that file alone would, its journeys shown as
//! they come; the text report (or, with `--json`, the summary on stderr) merges them all.

use std::{
    io::{IsTerminal as _, Write as _},
    path::{Path, PathBuf},
    time::Duration,
};

use super::{
    Interrupted, Opened, Ordered, ReportOptions, Stop, catch_stop_signals, decode_threads, drive,
    warn_incomplete,
};
use crate::{
    journey::{EndingCounts, EngineConfig, Tracker},
    recording::{Metadata, Trailer},
    sink::{
        escape, jsonl,
        report::{EventsSeen, ReportData, ReportPart, report_text, totals_text},
        terminal::{JourneySink, Shown},
    },
};

/// What one recording gave: enough for its share of the report, its engine gone.
struct Replayed {
    version: u8,
    meta: Metadata,
    data: Option<ReportData>,
    incomplete: EndingCounts,
    trailer: Option<Trailer>,
}

/// A recording's name in a report of several: its host, or `host (file)` when another
/// recording of the set has the same host name.
pub fn labels(hosts: &[(String, &Path)]) -> Vec<String> {
    hosts
        .iter()
        .map(|(host, file)| {
            let shared = hosts.iter().filter(|(other, _)| other == host).count() > 1;
            if shared {
                format!("{host} ({})", file.display())
            } else {
                host.clone()
            }
        })
        .collect()
}

/// Journeys and the report of recordings: JSON lines or a list on stdout (with each
/// file's summary), then, without `json`, the text report of them all. Every file is
/// opened and its chunk headers checked before any output, so a corrupt or missing one is
/// an error naming it before the report starts.
pub fn report(files: &[PathBuf], options: &ReportOptions) -> anyhow::Result<()> {
    catch_stop_signals();
    let many = files.len() > 1;
    // A regular file is opened again when its turn comes (many open files cost memory); a
    // pipe cannot be, so it stays open.
    let mut opened = Vec::with_capacity(files.len());
    let mut hosts = Vec::with_capacity(files.len());
    for file in files {
        let first = Opened::new(file)?;
        hosts.push((first.reader.meta().hostname.clone(), file.as_path()));
        opened.push((first.outline.is_none() || !many).then_some(first));
    }
    let labels = labels(&hosts);
    let mut done = Vec::with_capacity(files.len());
    for (at, (file, first)) in files.iter().zip(opened).enumerate() {
        let first = match first {
            Some(first) => first,
            None => Opened::new(file)?,
        };
        match replay(file, first, options, many.then_some((at + 1, files.len())))? {
            Some(replayed) => done.push(replayed),
            None => return Ok(()), // stdout closed
        }
    }
    let parts: Vec<ReportPart> = done
        .iter()
        .zip(&labels)
        .filter_map(|(replayed, label)| {
            Some(ReportPart {
                label: many.then_some(label.as_str()),
                version: replayed.version,
                meta: &replayed.meta,
                data: replayed.data.as_ref()?,
                incomplete: &replayed.incomplete,
                trailer: replayed.trailer.as_ref(),
            })
        })
        .collect();
    if options.json {
        if many {
            eprint!(
                "{}",
                escape::lines(&format!(
                    "=== {} recordings together ==={}",
                    parts.len(),
                    totals_text(&parts)
                ))
            );
        }
        return Ok(());
    }
    // A closed stdout (`| head`) ends the report quietly.
    let _ = std::io::stdout()
        .lock()
        .write_all(escape::lines(&report_text(&parts)).as_bytes());
    Ok(())
}

/// Replays one recording: its journeys to stdout (`--json`, `--list`) and its run summary,
/// and what the report needs of it; `None` when stdout was closed. `place`: its place and
/// the number of recordings, in a report of several.
fn replay(
    file: &Path,
    opened: Opened,
    options: &ReportOptions,
    place: Option<(usize, usize)>,
) -> anyhow::Result<Option<Replayed>> {
    let total = opened.total();
    let Opened { reader, outline } = opened;
    let (version, meta) = (reader.version(), reader.meta().clone());
    let mut config = EngineConfig::from_recording(&meta, options.keep_unsocketed);
    config.readers = options.filter.readers();
    let mut tracker = Tracker::new(config);
    let json_extra = place.map_or(Vec::new(), |_| {
        let file = file.to_string_lossy();
        jsonl::extra_members(&[("host", &meta.hostname), ("recording", &file)])
    });
    let shown = Shown {
        json: options.json,
        filter: options.filter.clone(),
        json_extra,
        ..Shown::default()
    };
    let filter = &options.filter;
    let heading = place.map(|(at, of)| {
        escape::text(&format!(
            "=== recording {at} of {of}: {} (host {}) ===",
            file.display(),
            meta.hostname
        ))
        .into_owned()
    });
    if let Some(heading) = &heading
        && options.list
        && !options.json
    {
        let _ = writeln!(std::io::stdout(), "{heading}");
    }
    let mut sink = (options.json || options.list).then(|| JourneySink::stdout(shown));
    // Several recordings: each one's figures for the section per host, JSON or not.
    let mut data =
        (!options.json || place.is_some()).then(|| ReportData::new(&meta, options.slowest));
    let progress = std::io::stderr().is_terminal() && total.is_some_and(|n| n > 1_000_000);
    let of_total = total.map_or(String::new(), |total| format!(" of {total}"));
    let mut read = 0u64;
    // Counted where the events are decoded; tallied only for a report's text.
    let mut ordered = Ordered::new(reader, decode_threads(), EventsSeen::new(data.is_some()));
    let stop = drive(&mut ordered, &mut tracker, |events, journeys| {
        read += events as u64;
        if let Some(data) = &mut data {
            for journey in journeys.iter().filter(|journey| filter.keeps(journey)) {
                data.journey(journey);
            }
        }
        if let Some(sink) = &mut sink {
            sink.show(&*journeys);
        }
        journeys.clear();
        if progress && events > 0 {
            eprint!("\rtracer: {read}{of_total} events");
        }
        // With text output, the report itself goes to the closed stdout too: stop.
        Ok(!sink
            .as_ref()
            .is_some_and(|sink| sink.closed() && !options.json))
    })?;
    if progress {
        eprintln!();
    }
    match stop {
        Stop::Signal(read) => {
            let of = place.map_or(String::new(), |_| format!(" of {}", file.display()));
            return Err(
                Interrupted(format!("report{of} stopped after {read}{of_total} events")).into(),
            );
        }
        Stop::Closed => return Ok(None),
        Stop::End => {}
    }
    // Warned once the whole file was read: a corrupt chunk further on is one error line.
    let (reader, seen) = ordered.into_parts();
    let ended = match reader {
        Some(reader) => reader.outline(),
        None => outline.unwrap_or_default(),
    };
    let seen = seen.unwrap_or_else(|| EventsSeen::new(false));
    let (first, last) = seen.span();
    if let Some(data) = &mut data {
        data.set_events(seen);
    }
    warn_incomplete(file, version, &ended);
    let lost = ended
        .trailer
        .as_ref()
        .map(|trailer| trailer.lost_per_cpu.as_slice());
    if let Some(sink) = &mut sink {
        if let Some(heading) = &heading
            && options.json
        {
            eprintln!("{heading}");
        }
        sink.summary(&tracker, lost, Duration::from_nanos(last - first), true);
    }
    Ok(Some(Replayed {
        version,
        incomplete: tracker.engine().stats().incomplete.clone(),
        trailer: ended.trailer,
        meta,
        data,
    }))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn recordings_of_one_host_are_told_apart_by_file() {
        let hosts = [
            ("web-1".to_owned(), Path::new("a/web-1.0001.trc")),
            ("db-1".to_owned(), Path::new("b/db.trc")),
            ("web-1".to_owned(), Path::new("a/web-1.0002.trc")),
        ];
        assert_eq!(
            super::labels(&hosts),
            [
                "web-1 (a/web-1.0001.trc)",
                "db-1",
                "web-1 (a/web-1.0002.trc)"
            ]
        );
    }
}
