//! `tracer record` (raw events to a file) and `tracer report` (journeys from a file).

use std::{
    collections::BTreeMap,
    io::IsTerminal as _,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use clap::Args;
use tokio::signal::unix::{SignalKind, signal};
use tracer::{
    decode,
    irqmap::IrqMap,
    journey::{EngineConfig, Tracker},
    names,
    probes::{DEFAULT_RING_BYTES, ProbeOptions, Probes},
    record::{Metadata, RecordedIrq, Recording, Writer},
    source::RingSource,
};
use tracer_common::{Slot, offsets::ABSENT};

use super::{
    duration_arg,
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
    /// Ring buffer size in bytes (power of two).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_RING_BYTES)]
    pub ring_size: u32,
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
}

pub async fn record(args: RecordArgs, verbose: bool) -> anyhow::Result<()> {
    let options = ProbeOptions {
        pid: args.pid,
        cpu: None,
        journey_mode: true,
        without: args.without.clone(),
        ring_bytes: args.ring_size,
        kernel_log: verbose,
    };
    let mut probes = Probes::load(&options)?;
    for (kind, why) in &probes.skipped {
        let (category, name) = kind.tracepoint();
        log::warn!("not tracing {category}:{name}: {why}");
    }
    let filters = record_filters(args.pid, &args.without);
    let meta = metadata(&probes, filters);
    let mut writer = Writer::create(&args.output, &meta)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let mut source = RingSource::new(probes.take_ring()?).context("polling the ring buffer")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    eprintln!("tracer: recording to {}; Ctrl-C to stop", args.output.display());
    let progress = std::io::stderr().is_terminal();
    let started = Instant::now();
    let first_ts = monotonic_ns();
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
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
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
        .finish(lost.clone(), monotonic_ns().saturating_sub(first_ts))
        .with_context(|| format!("writing {}", args.output.display()))?;
    let per_cpu: Vec<String> = lost.iter().enumerate().map(|(cpu, n)| format!("cpu{cpu}={n}")).collect();
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
    let read = |path: &str| std::fs::read_to_string(path).map(|text| text.trim().to_owned()).unwrap_or_default();
    let clock = |id| {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: ts is a valid timespec to write.
        unsafe { libc::clock_gettime(id, &mut ts) };
        i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
    };
    let mut irqs: Vec<RecordedIrq> = IrqMap::from_system()
        .irqs
        .into_iter()
        .map(|(irq, device)| RecordedIrq { irq, dev: device.dev, name: device.name })
        .collect();
    irqs.sort_by_key(|irq| irq.irq);
    let offsets = Slot::ALL
        .iter()
        .filter(|slot| probes.layout.offsets[**slot as usize] != ABSENT)
        .map(|slot| {
            let spec = slot.spec();
            (format!("{}:{}:{}", spec.category, spec.tracepoint, spec.field), probes.layout.offsets[*slot as usize])
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
        realtime_offset_ns: clock(libc::CLOCK_REALTIME) - clock(libc::CLOCK_MONOTONIC),
        irqs,
        drop_reasons: probes.drop_reasons(),
        comms: names::kernel_thread_comms().into_iter().collect::<BTreeMap<_, _>>(),
        filters,
        offsets,
        skipped,
    }
}

/// CLOCK_MONOTONIC now (the clock of bpf_ktime_get_ns).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub fn report(args: ReportArgs) -> anyhow::Result<()> {
    let recording = Recording::read(&args.file)?;
    if let Some(why) = &recording.truncated {
        log::warn!(
            "{}: {why} (the recorder was stopped abruptly?); reporting the {} events before it",
            args.file.display(),
            recording.events.len()
        );
    }
    if recording.version >= 2 && recording.trailer.is_none() {
        log::warn!(
            "{}: no trailer: the recorder did not finish (killed?), so its lost-event counts are unknown",
            args.file.display()
        );
    }
    let meta = &recording.meta;
    let config = EngineConfig {
        irq_devices: meta.irq_devices(),
        drop_reasons: meta.drop_reasons.clone(),
        comms: meta.comms.iter().map(|(tid, comm)| (*tid, comm.clone())).collect(),
        keep_unsocketed: args.all,
    };
    let mut tracker = Tracker::new(config);
    let output = LiveOutput {
        json: args.json,
        filter: JourneyFilter { pid: args.pid, comm: args.comm.clone(), dev: args.dev.clone(), cpu: None },
        count: None,
        interval: Duration::ZERO,
        keep_unsocketed: args.all,
        record: None,
    };
    let mut sink = JourneySink::stdout(output);
    let mut journeys = Vec::new();
    let first = recording.events.first().map_or(0, |event| event.ts);
    let last = recording.events.iter().map(|event| event.ts).max().unwrap_or(first);
    for chunk in recording.events.chunks(4096) {
        for event in chunk {
            tracker.push_event(*event);
        }
        tracker.advance(None, &mut journeys);
        sink.show(journeys.drain(..));
    }
    tracker.finish(&mut journeys);
    sink.show(journeys.drain(..));
    let lost = recording.trailer.as_ref().map(|trailer| trailer.lost_per_cpu.as_slice());
    sink.summary(&tracker, lost, Duration::from_nanos(last - first), true);
    Ok(())
}
