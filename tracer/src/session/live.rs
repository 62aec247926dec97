//! The live loop: ring buffer -> pipeline -> sinks (terminal, metrics, recording) until a
//! stop, a signal or enough journeys. `live`, `demo` and the labs run it.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::{Session, coverage};
use crate::{
    host::{cgroup::CgroupSource, clock, irqmap::IrqMap, procfs},
    journey::{Degraded, EngineConfig, EngineStats, Journey, JourneyFilter, Tracker},
    probe::{ProbeOptions, Probes},
    recording::{Writer, capture},
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
    /// Record the raw events here too.
    pub record: Option<std::path::PathBuf>,
    /// Serve metrics here.
    pub metrics: Option<std::net::SocketAddr>,
    /// Count journeys but print none.
    pub quiet: bool,
    /// Keep the shown journeys in the returned stats (labs).
    pub collect: bool,
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
    let mut tracker = Tracker::new(engine_config(
        &probes,
        irqs,
        &output.filter,
        output.keep_unsocketed,
    ));
    let mut recorder = match &output.record {
        Some(path) => {
            let filters = capture::record_filters(options.pid, &options.without);
            let meta = capture::metadata(&probes, filters);
            Some(
                Writer::create(path, &meta)
                    .with_context(|| format!("creating {}", path.display()))?,
            )
        }
        None => None,
    };
    let record_start = clock::monotonic_ns();
    // The first write error of the recording: it ends the trace (with its summary).
    let write_failure: std::cell::RefCell<Option<std::io::Error>> = Default::default();
    let take = |tracker: &mut Tracker, recorder: &mut Option<Writer>, bytes: &[u8]| {
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
    let mut journeys = Vec::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = signals.recv() => break,
            () = &mut stop => break,
            _ = tick.tick() => {
                tracker.advance(Some(clock::monotonic_ns()), &mut journeys);
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
                probes.flush_kernel_log();
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
        sink.show(journeys.drain(..));
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
    if let Some(mut writer) = recorder
        && write_failure.is_none()
    {
        writer.set_recursion_misses(misses.clone());
        let duration = clock::monotonic_ns().saturating_sub(record_start);
        finish_failure = writer.finish(lost.clone(), duration).err();
    }
    if !output.collect {
        sink.summary(&tracker, Some(&lost), started.elapsed(), true);
        // Runs the kernel skipped are lost events too, outside the ring buffer's count.
        eprintln!("tracer: {}", crate::probe::stats::misses_line(&misses));
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
    sink.show(journeys.drain(..));
}
