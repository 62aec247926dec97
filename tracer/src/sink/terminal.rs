//! Journeys and summaries on stdout (text lines or JSON objects), as `live`, `demo` and
//! `report` print them.

use std::{
    io::{self, BufWriter},
    time::Duration,
};

use super::{
    jsonl,
    summary::{StageSummary, run_summary},
    text,
};
use crate::journey::{Journey, JourneyFilter, Tracker};

/// How many bytes of JSON lines are gathered before they are written: a few dozen journeys
/// per write, copied once (into this buffer) instead of twice.
const JSON_BATCH: usize = 1 << 16;

/// What the terminal shows.
#[derive(Clone, Debug, Default)]
pub struct Shown {
    /// JSON objects instead of text lines.
    pub json: bool,
    /// Count journeys but print none.
    pub quiet: bool,
    /// Stop showing after this many.
    pub count: Option<u64>,
    /// Which journeys.
    pub filter: JourneyFilter,
    /// Members appended to every JSON object (`sink::jsonl::extra_members`): the host and
    /// file of each journey when `report` reads several recordings; empty otherwise.
    pub json_extra: Vec<u8>,
}

/// Prints journeys (text lines or JSON objects) and summaries.
pub struct JourneySink<W: io::Write> {
    out: W,
    output: Shown,
    summary: StageSummary,
    shown: u64,
    closed: bool,
    /// JSON lines gathered for one write (reused): written whole at [`JSON_BATCH`] bytes and
    /// at the end of each `show`.
    json_lines: Vec<u8>,
}

impl JourneySink<BufWriter<io::StdoutLock<'static>>> {
    /// A sink on stdout; text output starts with the column header.
    pub fn stdout(output: Shown) -> Self {
        let mut sink = Self {
            out: BufWriter::new(io::stdout().lock()),
            output,
            summary: StageSummary::default(),
            shown: 0,
            closed: false,
            json_lines: Vec::new(),
        };
        if !sink.output.json && !sink.output.quiet {
            sink.write_line(&text::header());
        }
        sink
    }
}

impl<W: io::Write> JourneySink<W> {
    /// Journeys shown so far.
    pub fn shown(&self) -> u64 {
        self.shown
    }

    /// Whether stdout was closed by its reader.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// Shows these journeys (read in place: a journey is hundreds of bytes, and moving each
    /// out of its list cost a copy).
    pub fn show<'j>(&mut self, journeys: impl IntoIterator<Item = &'j Journey>) {
        for journey in journeys {
            if !self.output.filter.keeps(journey) {
                continue;
            }
            if self.output.count.is_some_and(|count| self.shown >= count) {
                break;
            }
            self.summary.add(journey);
            self.shown += 1;
            if self.output.quiet {
                continue;
            }
            if self.output.json {
                jsonl::write_with(journey, &self.output.json_extra, &mut self.json_lines);
                self.json_lines.push(b'\n');
                if self.json_lines.len() >= JSON_BATCH {
                    self.write_json_lines();
                }
            } else {
                self.write_line(&text::line(journey));
            }
        }
        self.write_json_lines();
        if self.out.flush().is_err() {
            self.closed = true;
        }
    }

    /// Writes the JSON lines gathered so far in one write.
    fn write_json_lines(&mut self) {
        if !self.closed
            && !self.json_lines.is_empty()
            && self.out.write_all(&self.json_lines).is_err()
        {
            self.closed = true; // stdout closed (`| head`): stop quietly
        }
        self.json_lines.clear();
    }

    fn write_line(&mut self, line: &str) {
        if !self.closed && writeln!(self.out, "{line}").is_err() {
            self.closed = true; // stdout closed (`| head`): stop quietly
        }
    }

    /// The summary goes to stdout with text output, to stderr with JSON. `lost`: the
    /// kernel's per-CPU loss counters, when known.
    pub fn summary(
        &mut self,
        tracker: &Tracker,
        lost: Option<&[u64]>,
        elapsed: Duration,
        last: bool,
    ) {
        let text = run_summary(&self.summary, tracker, lost, elapsed, last);
        if self.output.json {
            eprint!("{text}");
        } else {
            for line in text.lines() {
                self.write_line(line);
            }
            let _ = self.out.flush();
        }
    }
}
