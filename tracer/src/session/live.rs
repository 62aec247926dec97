//! The live loop: ring buffer -> pipeline -> sinks (terminal, metrics, recording) until a
//! stop, a signal or enough journeys. `live`, `demo` and the labs run it.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::{
    Session, coverage,
    record::ProbeCounters,
    rotate::{RecordingOutput, Rotation},
};
use crate::{
    host::{cgroup::CgroupSource, clock, irqmap::IrqMap, procfs},
    journey::{Degraded, EngineConfig, EngineStats, Journey, JourneyFilter, Tracker},
    probe::{ProbeOptions, Probes},
    sink::{
        metrics::Metrics,
        metrics_http,
        terminal::{JourneySink, Shown},
    },
};

/// How `follow` presents journeys.
#[derive(Clone, Debug)]
pub struct LiveOutput {
    pub json: bool,
    pub filter: JourneyFilter,
    pub count: Option<u64>,
    pub interval: Duration,
    pub keep_unsocketed: bool,
    /// Record the raw events too.
    pub record: Option<LiveRecording>,
    /// Serve metrics here.
    pub metrics: Option<std::net::SocketAddr>,
    /// Count journeys but print none.
    pub quiet: bool,
    /// Keep the shown journeys in the returned stats (labs).
    pub collect: bool,
}

/// Where a live trace also records its raw events (`live --record`), as `tracer record`
/// does.
#[derive(Clone, Debug)]
pub struct LiveRecording {
    /// The recording, or with a rotation the name its ring of files is numbered from.
    pub path: std::path::PathBuf,
    /// A ring of files (`--rotate`, `--keep`) instead of one.
    pub rotation: Option<Rotation>,
    /// The host name the metadata gives instead of this host's (`--host`).
    pub host: Option<String>,
}

impl LiveRecording {
    /// One file named `path`, with this host's name.
    pub fn file(path: std::path::PathBuf) -> Self {
        Self {
            path,
            rotation: None,
            host: None,
        }
    }
}

/// What one live run saw.
#[derive(Debug, Default)]
pub struct LiveStats {
    pub journeys: u64,
    pub complete: u64,
    /// The journeys themselves, with `LiveOutput::collect`.
    pub collected: Vec<Journey>,
    /// The engine's counters at the end.
    pub engine: EngineStats,
}

/// The engine's configuration for a live trace with these programs: this host's IRQ map and
/// kernel threads, what the programs could not attach, the readers `filter` selects.
pub fn engine_config(
    probes: &Probes,
    irqs: IrqMap,
    filter: &JourneyFilter,
    keep_unsocketed: bool,
) -> EngineConfig {
    EngineConfig {
        irq_devices: irqs.irqs,
        drop_reasons: probes.drop_reasons(),
        comms: procfs::kernel_thread_comms(),
        keep_unsocketed,
        degraded: Degraded::from_missing(probes.skipped.iter().map(|(kind, _)| *kind)),
        max_open: 0,
        readers: filter.readers(),
        cgroups: CgroupSource::Live,
    }
}

/// Traces until `stop`, Ctrl-C, SIGTERM or `count` journeys; prints journeys and summaries.
pub async fn follow(
    options: &ProbeOptions,
    output: &LiveOutput,
    irqs: IrqMap,
    ready: impl FnOnce(&Probes),
    stop: impl Future<Output = ()>,
) -> anyhow::Result<LiveStats> {
    let Session {
        mut probes,
        mut source,
        mut signals,
    } = Session::start(options)?;
    // The recording's counters hold the probes shared from here on.
    let mut kernel_log = probes.take_kernel_log();
    let probes = probes;
    let mut tracker = Tracker::new(engine_config(
        &probes,
        irqs,
        &output.filter,
        output.keep_unsocketed,
    ));
    let counters = output
        .record
        .as_ref()
        .map(|record| ProbeCounters::new(&probes, options, record.host.as_deref()));
    // Its errors name the file (the ring's next one, or one it removes).
    let mut recorder = match (&output.record, &counters) {
        (Some(record), Some(counters)) => Some(RecordingOutput::create(
            &record.path,
            record.rotation,
            counters,
        )?),
        _ => None,
    };
    // The first write error of the recording: it ends the trace (with its summary).
    let write_failure: std::cell::RefCell<Option<std::io::Error>> = Default::default();
    let take = |tracker: &mut Tracker, recorder: &mut Option<RecordingOutput>, bytes: &[u8]| {
        if let Some(event) = tracker.push_record(bytes)
            && let Some(writer) = recorder
            && write_failure.borrow().is_none()
            && let Err(err) = writer.push(&event)
        {
            *write_failure.borrow_mut() = Some(err);
        }
    };
    eprintln!(
        "tracer: tracing {}; following packet journeys; Ctrl-C to stop",
        coverage(&probes)
    );
    ready(&probes);

    let listener = match output.metrics {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("serving metrics on {addr}"))?,
        ),
        None => None,
    };
    let mut metrics = Metrics::new();
    let mut collected = Vec::new();
    let mut sink = JourneySink::stdout(Shown {
        json: output.json,
        quiet: output.quiet,
        count: output.count,
        filter: output.filter.clone(),
        ..Shown::default()
    });
    let started = Instant::now();
    let mut last_summary = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    // Whole chunks reach the recording every second (as `record` writes them; a rotation by
    // age is checked on this tick).
    let mut chunk_tick = tokio::time::interval(Duration::from_secs(1));
    let mut journeys = Vec::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = signals.recv() => break,
            () = &mut stop => break,
            _ = tick.tick() => {
                tracker.advance(Some(clock::monotonic_ns()), &mut journeys);
            }
            _ = chunk_tick.tick(), if recorder.is_some() => {
                if let Some(writer) = &mut recorder
                    && write_failure.borrow().is_none()
                    && let Err(err) = writer.flush_chunk()
                {
                    *write_failure.borrow_mut() = Some(err);
                }
            }
            accepted = metrics_http::accept(listener.as_ref()) => {
                if let Ok((stream, _)) = accepted {
                    metrics.update(tracker.engine().stats(), &probes.lost_per_cpu()?);
                    metrics.update_misses(&probes.recursion_misses());
                    tokio::spawn(metrics_http::serve_metrics(stream, metrics.encode()));
                }
            }
            batch = source.next_batch(|bytes| take(&mut tracker, &mut recorder, bytes)) => {
                batch.context("reading the ring buffer")?;
                tracker.advance(None, &mut journeys);
                kernel_log.flush();
            }
        }
        journeys.retain(|journey| output.filter.keeps(journey));
        if listener.is_some() {
            for journey in &journeys {
                metrics.observe(journey);
            }
        }
        if output.collect {
            collected.extend(journeys.iter().cloned());
        }
        sink.show(&*journeys);
        journeys.clear();
        if sink.closed()
            || output.count.is_some_and(|count| sink.shown() >= count)
            || write_failure.borrow().is_some()
        {
            break;
        }
        if !output.collect
            && !output.interval.is_zero()
            && last_summary.elapsed() >= output.interval
        {
            last_summary = Instant::now();
            let lost = probes.lost_per_cpu()?;
            sink.summary(&tracker, Some(&lost), started.elapsed(), false);
        }
    }
    // What is left, a batch at a time, so the held events and journeys stay one batch's.
    loop {
        source.drain_now(|bytes| take(&mut tracker, &mut recorder, bytes));
        if !source.pending() || output.count.is_some_and(|count| sink.shown() >= count) {
            break;
        }
        tracker.advance(None, &mut journeys);
        hand_over(&mut journeys, output, &mut collected, &mut sink);
    }
    // A failed recording still ends the trace with its journeys and summary.
    let write_failure = write_failure.into_inner();
    if let Some(err) = &write_failure {
        eprintln!("tracer: the recording stopped at a write error ({err}): tracing ends here");
    }
    tracker.finish(&mut journeys);
    if output.count.is_none() {
        hand_over(&mut journeys, output, &mut collected, &mut sink);
    }
    let lost = probes.lost_per_cpu()?;
    let misses = probes.recursion_misses();
    let mut finish_failure = None;
    if let Some(writer) = recorder
        && write_failure.is_none()
    {
        finish_failure = writer.finish().err();
    }
    if !output.collect {
        sink.summary(&tracker, Some(&lost), started.elapsed(), true);
        // Runs the kernel skipped are lost events too, outside the ring buffer's count.
        eprintln!("tracer: {}", crate::probe::stats::misses_line(&misses));
        if misses.values().any(|&n| n > 0) {
            eprintln!("tracer: {}", crate::probe::stats::MISSES_MEANING);
        }
    }
    if let Some(err) = write_failure.or(finish_failure) {
        return Err(err)
            .context("writing the recording (the summary above covers the whole trace)");
    }
    Ok(LiveStats {
        journeys: sink.shown(),
        complete: tracker.engine().stats().complete,
        collected,
        engine: tracker.engine().stats().clone(),
    })
}

/// Shows the journeys `output` keeps (and keeps copies with `collect`), leaving `journeys`
/// empty.
fn hand_over<W: std::io::Write>(
    journeys: &mut Vec<Journey>,
    output: &LiveOutput,
    collected: &mut Vec<Journey>,
    sink: &mut JourneySink<W>,
) {
    journeys.retain(|journey| output.filter.keeps(journey));
    if output.collect {
        collected.extend(journeys.iter().cloned());
    }
    sink.show(&*journeys);
    journeys.clear();
}
