//! Journey output shared by `live`, `demo` and `report`.

use std::{
    io::{self, BufWriter},
    time::Duration,
};

use tracer::journey::{Journey, StageSummary, Tracker, render};

use super::live::LiveOutput;

/// Prints journeys (text lines or JSON objects) and summaries.
pub struct JourneySink<W: io::Write> {
    out: W,
    output: LiveOutput,
    summary: StageSummary,
    shown: u64,
    closed: bool,
    /// Reused for each JSON line.
    line: String,
}

impl JourneySink<BufWriter<io::StdoutLock<'static>>> {
    /// A sink on stdout; text output starts with the column header.
    pub fn stdout(output: LiveOutput) -> Self {
        let mut sink = Self {
            out: BufWriter::new(io::stdout().lock()),
            output,
            summary: StageSummary::default(),
            shown: 0,
            closed: false,
            line: String::new(),
        };
        if !sink.output.json && !sink.output.quiet {
            sink.write_line(&render::header());
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

    pub fn show(&mut self, journeys: impl Iterator<Item = Journey>) {
        for journey in journeys {
            if !self.output.filter.keeps(&journey) {
                continue;
            }
            if self.output.count.is_some_and(|count| self.shown >= count) {
                break;
            }
            self.summary.add(&journey);
            self.shown += 1;
            if self.output.quiet {
                continue;
            }
            if self.output.json {
                let mut line = std::mem::take(&mut self.line);
                line.clear();
                tracer::journey::json::write(&journey, &mut line);
                self.write_line(&line);
                self.line = line;
            } else {
                self.write_line(&render::line(&journey));
            }
        }
        if self.out.flush().is_err() {
            self.closed = true;
        }
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
        let stats = tracker.engine().stats();
        let shown = self.summary.journeys;
        let mut text = format!(
            "--- {} after {:.1}s: {shown} journeys shown; engine: {} complete, {} incomplete ---\n",
            if last { "summary" } else { "so far" },
            elapsed.as_secs_f64(),
            stats.complete,
            stats.incomplete.values().sum::<u64>(),
        );
        text.push_str(&self.summary.table());
        for (reason, count) in &stats.incomplete {
            text.push_str(&format!("incomplete: {count} {reason}\n"));
        }
        for (reason, count) in &stats.unsocketed {
            text.push_str(&format!(
                "not shown, never reached a socket: {count} {reason}\n"
            ));
        }
        let lost = match lost {
            Some(lost) => {
                let per_cpu: Vec<String> = lost
                    .iter()
                    .enumerate()
                    .map(|(cpu, n)| format!("cpu{cpu}={n}"))
                    .collect();
                format!("{} ({})", lost.iter().sum::<u64>(), per_cpu.join(" "))
            }
            None => {
                let marks: Vec<String> = stats
                    .loss_marks
                    .iter()
                    .map(|(cpu, n)| format!("cpu{cpu}: {n} gaps"))
                    .collect();
                if marks.is_empty() {
                    "none marked".to_owned()
                } else {
                    marks.join(", ")
                }
            }
        };
        text.push_str(&format!(
            "lost events: {lost}; late events: {}; ksoftirqd wakeups: {}; reads that found no new packet: {}; \
             evicted (memory bound): {}; stale links swept: {}; events read: {}\n",
            tracker.late_events(),
            stats.ksoftirqd_wakeups,
            stats.reads_without_packet,
            stats.evicted,
            stats.swept,
            stats.events,
        ));
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
