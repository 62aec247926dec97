//! `tracer record` (raw events to a file) and `tracer report` (journeys from a file).

use std::{
    collections::BTreeMap,
    io::IsTerminal as _,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use clap::Args;
use tracer::{
    decode,
    irqmap::IrqMap,
    journey::{
        Stage, StageSummary, Tracker,
        analysis::{self, EventCounts},
        summary::human_ns,
    },
    names,
    probes::{ProbeOptions, Probes},
    record::{Metadata, RecordedIrq, Recording, Writer},
};
use tracer_common::{Slot, offsets::ABSENT};

use super::{
    RingArgs, Session, duration_arg,
    live::{JourneyFilter, LiveOutput},
    output::JourneySink,
};

/// Options of `tracer record`.
#[derive(Clone, Debug, Args)]
pub struct RecordArgs {
    /// The recording to write.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Stop after this long (e.g. 30s); default: until Ctrl-C.
    #[arg(short, long, value_parser = duration_arg)]
    pub duration: Option<Duration>,
    /// Only the readers in this process (packet-path events are kept from every context).
    #[arg(short, long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Do not attach this tracepoint (`category:name` or `name`); repeatable.
    #[arg(long, value_name = "TRACEPOINT")]
    pub without: Vec<String>,
    #[command(flatten)]
    pub ring: RingArgs,
}

/// Options of `tracer report`.
#[derive(Clone, Debug, Args)]
pub struct ReportArgs {
    /// A recording made by `tracer record`.
    pub file: PathBuf,
    /// One journey object per line on stdout; the summary on stderr.
    #[arg(long)]
    pub json: bool,
    /// Journeys read by this process.
    #[arg(short, long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Journeys read by tasks with this name.
    #[arg(long, value_name = "COMM")]
    pub comm: Option<String>,
    /// Journeys of packets received on this device.
    #[arg(long, value_name = "DEV")]
    pub dev: Option<String>,
    /// Also show packets that never reached a socket.
    #[arg(long)]
    pub all: bool,
    /// Also list every journey, one line each.
    #[arg(long)]
    pub list: bool,
    /// Draw this many of the slowest journeys as waterfalls.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub slowest: usize,
}

pub async fn record(args: RecordArgs, verbose: bool) -> anyhow::Result<()> {
    let options = ProbeOptions {
        without_btf: false,
        pid: args.pid,
        cpu: None,
        journey_mode: true,
        without: args.without.clone(),
        ring_bytes: args.ring.ring_size,
        kernel_log: verbose,
        batch_wakeups: !args.ring.wakeup_per_event,
    };
    let Session {
        probes,
        mut source,
        mut signals,
    } = Session::start(&options)?;
    let filters = record_filters(args.pid, &args.without);
    let meta = metadata(&probes, filters);
    let mut writer = Writer::create(&args.output, &meta)
        .with_context(|| format!("creating {}", args.output.display()))?;
    eprintln!(
        "tracer: recording to {}; Ctrl-C to stop",
        args.output.display()
    );
    let progress = std::io::stderr().is_terminal();
    let started = Instant::now();
    let first_ts = tracer::clock::monotonic_ns();
    let stop = tokio::time::sleep(args.duration.unwrap_or(Duration::MAX / 4));
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut failure: Option<std::io::Error> = None;
    let mut push = |writer: &mut Writer, bytes: &[u8]| {
        if let Ok((event, _)) = decode::decode(bytes)
            && failure.is_none()
            && let Err(err) = writer.push(&event)
        {
            failure = Some(err);
        }
    };
    loop {
        tokio::select! {
            () = signals.recv() => break,
            () = &mut stop => break,
            _ = tick.tick() => {
                // Whole chunks reach the file every second: a killed recorder loses at most that.
                writer.flush_chunk().with_context(|| format!("writing {}", args.output.display()))?;
                if progress {
                    let lost: u64 = probes.lost_per_cpu()?.iter().sum();
                    eprint!(
                        "\rtracer: {} events, {} bytes, {lost} lost, {:.0}s   ",
                        writer.events(),
                        writer.bytes(),
                        started.elapsed().as_secs_f64()
                    );
                }
            }
            batch = source.next_batch(|bytes| push(&mut writer, bytes)) => {
                batch.context("reading the ring buffer")?;
            }
        }
    }
    source.drain_now(|bytes| push(&mut writer, bytes));
    if let Some(err) = failure {
        return Err(err).with_context(|| format!("writing {}", args.output.display()));
    }
    if progress {
        eprintln!();
    }
    let lost = probes.lost_per_cpu()?;
    let events = writer.events();
    let bytes = writer
        .finish(
            lost.clone(),
            tracer::clock::monotonic_ns().saturating_sub(first_ts),
        )
        .with_context(|| format!("writing {}", args.output.display()))?;
    let per_cpu: Vec<String> = lost
        .iter()
        .enumerate()
        .map(|(cpu, n)| format!("cpu{cpu}={n}"))
        .collect();
    eprintln!(
        "tracer: recorded {events} events ({bytes} bytes, {:.1} B/event) in {:.1}s to {}; lost {} ({})",
        bytes as f64 / events.max(1) as f64,
        started.elapsed().as_secs_f64(),
        args.output.display(),
        lost.iter().sum::<u64>(),
        per_cpu.join(" ")
    );
    Ok(())
}

/// The filters of a recording, as command-line words for its metadata.
pub fn record_filters(pid: Option<u32>, without: &[String]) -> Vec<String> {
    let mut filters: Vec<String> = pid.map(|pid| format!("--pid={pid}")).into_iter().collect();
    filters.extend(without.iter().map(|tp| format!("--without={tp}")));
    filters
}

/// The metadata of a recording made now on this host.
pub fn metadata(probes: &Probes, filters: Vec<String>) -> Metadata {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .map(|text| text.trim().to_owned())
            .unwrap_or_default()
    };
    let mut irqs: Vec<RecordedIrq> = IrqMap::from_system()
        .irqs
        .into_iter()
        .map(|(irq, device)| RecordedIrq {
            irq,
            dev: device.dev,
            name: device.name,
        })
        .collect();
    irqs.sort_by_key(|irq| irq.irq);
    let offsets = Slot::ALL
        .iter()
        .filter(|slot| probes.layout.offsets[**slot as usize] != ABSENT)
        .map(|slot| {
            let spec = slot.spec();
            (
                format!("{}:{}:{}", spec.category, spec.tracepoint, spec.field),
                probes.layout.offsets[*slot as usize],
            )
        })
        .collect();
    let skipped = probes
        .skipped
        .iter()
        .map(|(kind, why)| {
            let (category, name) = kind.tracepoint();
            (format!("{category}:{name}"), why.clone())
        })
        .collect();
    Metadata {
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        kernel: read("/proc/sys/kernel/osrelease"),
        hostname: read("/proc/sys/kernel/hostname"),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()) as u32,
        realtime_offset_ns: tracer::clock::realtime_offset_ns(),
        irqs,
        drop_reasons: probes.drop_reasons(),
        comms: names::kernel_thread_comms()
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
        filters,
        offsets,
        skipped,
    }
}

pub fn report(args: ReportArgs) -> anyhow::Result<()> {
    let recording = open_recording(&args.file)?;
    let meta = &recording.meta;
    let mut tracker = Tracker::new(meta.engine_config(args.all));
    let output = LiveOutput {
        json: args.json,
        filter: JourneyFilter {
            pid: args.pid,
            comm: args.comm.clone(),
            dev: args.dev.clone(),
            cpu: None,
        },
        count: None,
        interval: Duration::ZERO,
        keep_unsocketed: args.all,
        record: None,
        metrics: None,
        quiet: false,
        collect: false,
    };
    let lines = args.json || args.list;
    let mut sink = lines.then(|| JourneySink::stdout(output.clone()));
    let progress = std::io::stderr().is_terminal() && recording.events.len() > 1_000_000;
    let mut kept = Vec::new();
    let mut journeys = Vec::new();
    let total_events = recording.events.len();
    let (mut first, mut last) = (u64::MAX, 0);
    for (index, chunk) in recording.events.chunks(65536).enumerate() {
        for event in chunk {
            first = first.min(event.ts);
            last = last.max(event.ts);
            tracker.push_event(*event);
        }
        tracker.advance(None, &mut journeys);
        take(&mut journeys, &mut sink, &mut kept, &output.filter);
        if progress {
            eprint!("\rtracer: {} of {total_events} events", (index + 1) * 65536);
        }
    }
    if progress {
        eprintln!();
    }
    tracker.finish(&mut journeys);
    take(&mut journeys, &mut sink, &mut kept, &output.filter);
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
    if args.json {
        return Ok(());
    }
    let irq_devices = meta
        .irq_devices()
        .into_iter()
        .map(|(irq, device)| (irq, device.dev))
        .collect();
    let readers = kept.iter().filter_map(|journey| journey.tid).collect();
    let counts = EventCounts::count(&recording.events, &irq_devices, &readers);
    let text = analysis_text(&recording, &kept, &counts, &tracker, args.slowest, lost);
    print!("{text}");
    Ok(())
}

/// Reads a recording and warns about a cut or unfinished one.
fn open_recording(file: &std::path::Path) -> anyhow::Result<Recording> {
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

/// Output formats of `tracer export`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ExportFormat {
    /// A Perfetto trace (open it in ui.perfetto.dev).
    Perfetto,
    /// One journey JSON object per line (the DESIGN.md record).
    Jsonl,
    /// One row per journey.
    Csv,
}

/// Options of `tracer export`.
#[derive(Clone, Debug, Args)]
pub struct ExportArgs {
    /// A recording made by `tracer record` or `tracer live --record`.
    pub file: PathBuf,
    /// What to write.
    #[arg(short, long, value_enum)]
    pub format: ExportFormat,
    /// Where to write it.
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// Also packets that never reached a socket.
    #[arg(long)]
    pub all: bool,
}

pub fn export(args: ExportArgs) -> anyhow::Result<()> {
    use std::io::Write as _;
    let recording = open_recording(&args.file)?;
    let mut tracker = Tracker::new(recording.meta.engine_config(args.all));
    let mut journeys = Vec::new();
    for event in &recording.events {
        tracker.push_event(*event);
    }
    tracker.finish(&mut journeys);
    let bytes = match args.format {
        ExportFormat::Perfetto => {
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
            tracer::export::perfetto::export(&recording.events, &journeys, &irq_names, &comms)
        }
        ExportFormat::Jsonl => {
            let mut out = String::new();
            for journey in &journeys {
                tracer::journey::json::write(journey, &mut out);
                out.push('\n');
            }
            out.into_bytes()
        }
        ExportFormat::Csv => {
            let mut out = tracer::export::csv::header();
            out.push('\n');
            for journey in &journeys {
                out.push_str(&tracer::export::csv::row(journey));
                out.push('\n');
            }
            out.into_bytes()
        }
    };
    let mut file = std::fs::File::create(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    file.write_all(&bytes)
        .with_context(|| format!("writing {}", args.output.display()))?;
    eprintln!(
        "tracer: {} journeys from {} events written to {} ({} bytes)",
        journeys.len(),
        recording.events.len(),
        args.output.display(),
        bytes.len()
    );
    Ok(())
}

fn take(
    journeys: &mut Vec<tracer::journey::Journey>,
    sink: &mut Option<JourneySink<std::io::BufWriter<std::io::StdoutLock<'static>>>>,
    kept: &mut Vec<tracer::journey::Journey>,
    filter: &JourneyFilter,
) {
    if let Some(sink) = sink {
        sink.show(journeys.iter().cloned());
    }
    kept.extend(journeys.drain(..).filter(|journey| filter.keeps(journey)));
}

/// The text report: recording facts, stage table, histograms, breakdowns, waterfalls, NAPI
/// arithmetic, reader context switches, incomplete journeys.
fn analysis_text(
    recording: &Recording,
    journeys: &[tracer::journey::Journey],
    counts: &EventCounts,
    tracker: &Tracker,
    slowest: usize,
    lost: Option<&[u64]>,
) -> String {
    use std::fmt::Write as _;
    let meta = &recording.meta;
    let mut text = String::new();
    let span = {
        let first = recording
            .events
            .iter()
            .map(|event| event.ts)
            .min()
            .unwrap_or(0);
        recording
            .events
            .iter()
            .map(|event| event.ts)
            .max()
            .unwrap_or(first)
            - first
    };
    let _ = writeln!(
        text,
        "recording: format v{}, kernel {}, host {}, {} CPUs, {} events over {}, lost {}",
        recording.version,
        meta.kernel,
        meta.hostname,
        meta.cpus,
        recording.events.len(),
        human_ns(span),
        lost.map_or("unknown (no trailer)".to_owned(), |lost| lost
            .iter()
            .sum::<u64>()
            .to_string())
    );
    let mut summary = StageSummary::default();
    for journey in journeys {
        summary.add(journey);
    }
    let complete = journeys.iter().filter(|journey| journey.complete).count();
    let _ = writeln!(
        text,
        "\n== {} journeys, {complete} complete ==",
        journeys.len()
    );
    text.push_str(&summary.table());
    for (reason, count) in &tracker.engine().stats().incomplete {
        let _ = writeln!(text, "incomplete: {count} {reason}");
    }
    text.push_str("\n== stage histograms (log2) ==\n");
    for stage in Stage::ALL {
        if journeys
            .iter()
            .any(|journey| journey.stages_ns.get(stage).is_some())
        {
            text.push_str(&analysis::log2_histogram(journeys, stage));
        }
    }
    let sections: [(&str, Box<dyn Fn(&tracer::journey::Journey) -> String>); 4] = [
        ("device", Box::new(|journey| journey.dev.to_string())),
        (
            "irq",
            Box::new(|journey| journey.irq_name.as_deref().unwrap_or("(none)").to_owned()),
        ),
        (
            "softirq cpu",
            Box::new(|journey| {
                journey
                    .cpu_softirq
                    .map_or("-".to_owned(), |cpu| cpu.to_string())
            }),
        ),
        (
            "task",
            Box::new(|journey| {
                format!(
                    "{}({})",
                    journey.comm.as_deref().unwrap_or("?"),
                    journey.pid.map_or("-".to_owned(), |pid| pid.to_string())
                )
            }),
        ),
    ];
    for (name, key) in sections {
        let _ = writeln!(text, "\n== by {name}: journeys, total p50 / p99 / max ==");
        for (group, histogram) in analysis::breakdown(journeys, key) {
            if histogram.count() == 0 {
                continue;
            }
            let q = |q| histogram.quantile(q).map_or("-".to_owned(), human_ns);
            let _ = writeln!(
                text,
                "  {group:<28} {:>7} {:>10} {:>10} {:>10}",
                histogram.count(),
                q(0.5),
                q(0.99),
                human_ns(histogram.max())
            );
        }
    }
    if slowest > 0 {
        let _ = writeln!(text, "\n== the {slowest} slowest journeys, to scale ==");
        for journey in analysis::slowest(journeys, slowest) {
            text.push_str(&analysis::waterfall(journey, 60));
        }
    }
    text.push_str("\n== NAPI ==\n");
    for (dev, (polls, packets)) in &counts.polls {
        let _ = writeln!(
            text,
            "  {dev:<16} {polls} polls with work, {packets} packets: {:.2} packets per poll",
            *packets as f64 / (*polls).max(1) as f64
        );
    }
    for (dev, irqs) in &counts.nic_irqs {
        let polls = counts.polls.get(dev).map_or(0, |(polls, _)| *polls);
        let packets = counts.packets.get(dev).copied().unwrap_or(0);
        let _ = writeln!(
            text,
            "  {dev:<16} {irqs} hard IRQs (every queue, rx and tx): {:.2} polls per IRQ, {:.3} IRQs per packet ({packets} packets)",
            polls as f64 / (*irqs).max(1) as f64,
            *irqs as f64 / packets.max(1) as f64
        );
    }
    if counts.nic_irqs.is_empty() {
        text.push_str("  no NIC interrupts recorded (loopback and veth have none)\n");
    }
    text.push_str(
        "\n== context switches of the readers (seen while they waited in recv/poll) ==\n",
    );
    for (tid, (voluntary, involuntary)) in &counts.switches {
        let _ = writeln!(
            text,
            "  tid {tid:<8} voluntary {voluntary:>6}  involuntary {involuntary:>6}"
        );
    }
    text
}
