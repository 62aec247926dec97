//! The raw event loop: every decoded event printed as it arrives, then the counts (lost per
//! CPU) on stderr. `tracer events` runs it.

use std::{
    future::Future,
    io::{self, BufWriter},
};

use anyhow::Context as _;

use super::{Session, coverage};
use crate::{
    host::names::Names,
    probe::{ProbeOptions, Probes},
    sink::events,
    source::decode,
};

/// Counts of one streaming run.
#[derive(Debug, Default)]
pub struct StreamStats {
    /// Events printed.
    pub events: u64,
    /// Records that did not decode.
    pub undecodable: u64,
    /// Events lost in the kernel, per CPU.
    pub lost_per_cpu: Vec<u64>,
    /// Program runs lost to the kernel's recursion protection, by tracepoint name.
    pub recursion_misses: std::collections::BTreeMap<String, u64>,
}

/// Prints decoded events until `stop` resolves, Ctrl-C or SIGTERM, or stdout closes; then
/// drains what is left and prints the counts (lost per CPU) on stderr. `ready` runs once the
/// programs are attached.
pub async fn stream(
    options: &ProbeOptions,
    json: bool,
    ready: impl FnOnce(&Probes),
    stop: impl Future<Output = ()>,
) -> anyhow::Result<StreamStats> {
    let Session {
        mut probes,
        mut source,
        mut signals,
    } = Session::start(options)?;
    let names = Names::from_system(probes.drop_reasons());
    eprintln!("tracer: tracing {}; Ctrl-C to stop", coverage(&probes));
    ready(&probes);

    let mut printer = Printer {
        out: BufWriter::new(io::stdout().lock()),
        names,
        json,
        stats: StreamStats::default(),
        closed: false,
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = signals.recv() => break,
            () = &mut stop => break,
            batch = source.next_batch(|bytes| printer.print(bytes)) => {
                batch.context("reading the ring buffer")?;
                printer.flush();
                probes.flush_kernel_log();
                if printer.closed {
                    break;
                }
            }
        }
    }
    source.drain_all(|bytes| printer.print(bytes));
    printer.flush();
    let mut stats = printer.stats;
    stats.lost_per_cpu = probes.lost_per_cpu()?;
    stats.recursion_misses = probes.recursion_misses();
    report(&stats);
    Ok(stats)
}

struct Printer<W: io::Write> {
    out: W,
    names: Names,
    json: bool,
    stats: StreamStats,
    closed: bool,
}

impl<W: io::Write> Printer<W> {
    fn print(&mut self, bytes: &[u8]) {
        let (event, kind) = match decode::decode(bytes) {
            Ok(decoded) => decoded,
            Err(err) => {
                if self.stats.undecodable == 0 {
                    log::warn!("undecodable record: {err}");
                }
                self.stats.undecodable += 1;
                return;
            }
        };
        self.names.learn(&event, kind);
        if self.closed {
            return;
        }
        let written = if self.json {
            writeln!(self.out, "{}", events::to_json(&event, kind, &self.names))
        } else {
            writeln!(self.out, "{}", events::to_text(&event, kind, &self.names))
        };
        match written {
            Ok(()) => self.stats.events += 1,
            Err(_) => self.closed = true, // stdout closed (e.g. `| head`): stop quietly
        }
    }

    fn flush(&mut self) {
        if self.out.flush().is_err() {
            self.closed = true;
        }
    }
}

fn report(stats: &StreamStats) {
    let lost: u64 = stats.lost_per_cpu.iter().sum();
    let per_cpu: Vec<String> = stats
        .lost_per_cpu
        .iter()
        .enumerate()
        .map(|(cpu, n)| format!("cpu{cpu}={n}"))
        .collect();
    eprintln!(
        "tracer: {} events; lost {lost} ({}); {}",
        stats.events,
        per_cpu.join(" "),
        crate::probe::stats::misses_line(&stats.recursion_misses),
    );
    if stats.undecodable > 0 {
        eprintln!("tracer: {} undecodable records skipped", stats.undecodable);
    }
}
