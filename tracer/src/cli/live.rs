//! `tracer live`: one line (or JSON object) per packet journey, and per-stage summaries.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use clap::Args;
use tracer::{
    irqmap::IrqMap,
    journey::{Degraded, EngineConfig, Journey, Tracker},
    metrics::Metrics,
    names,
    probes::{ProbeOptions, Probes},
    record::Writer,
};

use super::{RingArgs, Session, coverage, duration_arg, output::JourneySink};

/// Options of `tracer live`.
#[derive(Clone, Debug, Args)]
pub struct LiveArgs {
    /// Stop after this long (e.g. 10s, 2m); default: until Ctrl-C.
    #[arg(short, long, value_parser = duration_arg)]
    pub duration: Option<Duration>,
    /// Stop after this many journeys.
    #[arg(short = 'n', long, value_name = "N")]
    pub count: Option<u64>,
    /// One journey object per line on stdout (DESIGN.md record); everything else on stderr.
    #[arg(long)]
    pub json: bool,
    /// Journeys read by this process (pid = tgid). Task events are filtered in the kernel;
    /// packet-path events are kept from every context, since packets do not run as the reader.
    #[arg(short, long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Journeys read by tasks with this name (comm).
    #[arg(long, value_name = "COMM")]
    pub comm: Option<String>,
    /// Journeys of packets received on this network device.
    #[arg(long, value_name = "DEV")]
    pub dev: Option<String>,
    /// Journeys that touched this CPU (IRQ, softirq or reader).
    #[arg(short, long, value_name = "N")]
    pub cpu: Option<u32>,
    /// Also show packets that never reached a socket (ACKs, ARP, ...).
    #[arg(long)]
    pub all: bool,
    /// Print a summary this often (0: only at exit).
    #[arg(long, value_parser = duration_arg, default_value = "5s")]
    pub interval: Duration,
    /// Do not attach this tracepoint (`category:name` or `name`); repeatable.
    #[arg(long, value_name = "TRACEPOINT")]
    pub without: Vec<String>,
    #[command(flatten)]
    pub ring: RingArgs,
    /// Also record the raw events to FILE (as `tracer record` does).
    #[arg(long, value_name = "FILE")]
    pub record: Option<std::path::PathBuf>,
    /// Serve Prometheus/OpenMetrics metrics on ADDR (e.g. 127.0.0.1:9464), path /metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// No journey lines, only summaries (and metrics).
    #[arg(short, long)]
    pub quiet: bool,
}

/// Which journeys to show (applied to finished journeys, in user space).
#[derive(Clone, Debug, Default)]
pub struct JourneyFilter {
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub dev: Option<String>,
    pub cpu: Option<u16>,
}

impl JourneyFilter {
    /// The readers whose journeys the engine keeps (`--pid`, `--comm`).
    pub fn readers(&self) -> tracer::journey::ReaderFilter {
        tracer::journey::ReaderFilter {
            pids: self.pid.into_iter().collect(),
            comms: self.comm.iter().cloned().collect(),
        }
    }

    pub fn keeps(&self, journey: &Journey) -> bool {
        let cpu_touched = |cpu: u16| {
            [
                journey.cpu_irq,
                journey.cpu_softirq,
                journey.cpu_stack,
                journey.cpu_task,
            ]
            .contains(&Some(cpu))
        };
        self.pid.is_none_or(|pid| journey.pid == Some(pid))
            && self
                .comm
                .as_ref()
                .is_none_or(|comm| journey.comm.as_deref() == Some(comm.as_str()))
            && self.dev.as_ref().is_none_or(|dev| *journey.dev == **dev)
            && self.cpu.is_none_or(cpu_touched)
    }
}

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
    pub engine: tracer::journey::EngineStats,
}

pub async fn run(args: LiveArgs, verbose: bool) -> anyhow::Result<()> {
    let irqs = IrqMap::from_system();
    if let Some(dev) = &args.dev
        && !irqs.has_device(dev)
    {
        bail!(
            "no network device named {dev:?} (devices: {})",
            irqs.devices.join(", ")
        );
    }
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
    let output = LiveOutput {
        json: args.json,
        filter: JourneyFilter {
            pid: args.pid,
            comm: args.comm.clone(),
            dev: args.dev.clone(),
            cpu: args.cpu.map(|cpu| cpu as u16),
        },
        count: args.count,
        interval: args.interval,
        keep_unsocketed: args.all,
        record: args.record.clone(),
        metrics: args.metrics,
        quiet: args.quiet,
        collect: false,
    };
    if let Some(cpu) = args.cpu {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        if cpu >= cpus {
            bail!("no CPU {cpu}: this machine has CPUs 0-{}", cpus - 1);
        }
    }
    let stop = async move {
        match args.duration {
            Some(duration) => tokio::time::sleep(duration).await,
            None => std::future::pending().await,
        }
    };
    follow(&options, &output, irqs, |_| {}, stop)
        .await
        .map(|_| ())
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
    let config = EngineConfig {
        irq_devices: irqs.irqs,
        drop_reasons: probes.drop_reasons(),
        comms: names::kernel_thread_comms(),
        keep_unsocketed: output.keep_unsocketed,
        degraded: Degraded::from_missing(probes.skipped.iter().map(|(kind, _)| *kind)),
        max_open: 0,
        readers: output.filter.readers(),
    };
    let mut tracker = Tracker::new(config);
    let mut recorder = match &output.record {
        Some(path) => {
            let filters = super::record::record_filters(options.pid, &options.without);
            let meta = super::record::metadata(&probes, filters);
            Some(
                Writer::create(path, &meta)
                    .with_context(|| format!("creating {}", path.display()))?,
            )
        }
        None => None,
    };
    let record_start = tracer::clock::monotonic_ns();
    let mut write_failure: Option<std::io::Error> = None;
    let mut take = |tracker: &mut Tracker, recorder: &mut Option<Writer>, bytes: &[u8]| {
        if let Some(event) = tracker.push_record(bytes)
            && let Some(writer) = recorder
            && write_failure.is_none()
            && let Err(err) = writer.push(&event)
        {
            write_failure = Some(err);
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
    let mut sink = JourneySink::stdout(output.clone());
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
                tracker.advance(Some(tracer::clock::monotonic_ns()), &mut journeys);
                if let Some(writer) = &mut recorder {
                    writer.flush_chunk().context("writing the recording")?;
                }
            }
            accepted = accept(listener.as_ref()) => {
                if let Ok((stream, _)) = accepted {
                    metrics.update(tracker.engine().stats(), &probes.lost_per_cpu()?);
                    tokio::spawn(serve_metrics(stream, metrics.encode()));
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
        if sink.closed() || output.count.is_some_and(|count| sink.shown() >= count) {
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
    source.drain_now(|bytes| take(&mut tracker, &mut recorder, bytes));
    if let Some(err) = write_failure {
        return Err(err).context("writing the recording");
    }
    tracker.finish(&mut journeys);
    if output.count.is_none() {
        journeys.retain(|journey| output.filter.keeps(journey));
        if output.collect {
            collected.extend(journeys.iter().cloned());
        }
        sink.show(journeys.drain(..));
    }
    let lost = probes.lost_per_cpu()?;
    if let Some(writer) = recorder {
        let duration = tracer::clock::monotonic_ns().saturating_sub(record_start);
        writer
            .finish(lost.clone(), duration)
            .context("writing the recording")?;
    }
    if !output.collect {
        sink.summary(&tracker, Some(&lost), started.elapsed(), true);
    }
    Ok(LiveStats {
        journeys: sink.shown(),
        complete: tracker.engine().stats().complete,
        collected,
        engine: tracker.engine().stats().clone(),
    })
}

/// The next metrics connection, or never without a listener.
async fn accept(
    listener: Option<&tokio::net::TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Answers one HTTP request with the metrics text (any path; scrapers ask for /metrics).
async fn serve_metrics(mut stream: tokio::net::TcpStream, body: String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut request = [0u8; 4096];
    let mut read = 0;
    // Read the request head; a scraper sends it at once.
    while read < request.len() {
        match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut request[read..])).await
        {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
            Ok(Ok(n)) => read += n,
        }
        if request[..read]
            .windows(4)
            .any(|window| window == b"\r\n\r\n")
        {
            break;
        }
    }
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}
