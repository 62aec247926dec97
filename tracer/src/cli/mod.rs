//! Subcommands and what they share: filter options, the event loop, exit codes.

pub mod demo;
pub mod doctor;
pub mod events;
pub mod lab;
pub mod live;
pub mod output;
pub mod record;

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracer::{
    probes::{DEFAULT_RING_BYTES, ProbeError, ProbeOptions, Probes},
    source::RingSource,
};

/// SIGINT and SIGTERM, the two ways to stop a tracing command cleanly.
pub struct StopSignals {
    sigint: Signal,
    sigterm: Signal,
}

impl StopSignals {
    /// Resolves when either arrives.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.sigint.recv() => {}
            _ = self.sigterm.recv() => {}
        }
    }
}

/// What every tracing command starts with: the attached programs, their event stream and
/// the stop signals.
pub struct Session {
    pub probes: Probes,
    pub source: RingSource,
    pub signals: StopSignals,
}

impl Session {
    /// Loads and attaches the programs (warning about each tracepoint left out), opens the
    /// ring buffer, and installs the signal handlers before the caller prints its ready
    /// line, so a Ctrl-C right after that line is already ours.
    pub fn start(options: &ProbeOptions) -> anyhow::Result<Self> {
        let mut probes = Probes::load(options)?;
        for (kind, why) in &probes.skipped {
            let (category, name) = kind.tracepoint();
            log::warn!("not tracing {category}:{name}: {why}");
        }
        let poll = options
            .batch_wakeups
            .then_some(tracer::source::POLL_INTERVAL);
        let source =
            RingSource::new(probes.take_ring()?, poll).context("polling the ring buffer")?;
        let signals = StopSignals {
            sigint: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            sigterm: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        };
        Ok(Self {
            probes,
            source,
            signals,
        })
    }
}

/// `N of M tracepoints`, for the ready line.
pub fn coverage(probes: &Probes) -> String {
    let attached = probes.attached.len();
    format!(
        "{attached} of {} tracepoints",
        attached + probes.skipped.len()
    )
}

/// Filters applied in the kernel, before an event is emitted.
#[derive(Clone, Debug, Args)]
pub struct FilterArgs {
    /// Keep events whose current task belongs to process PID, or whose subject does (the
    /// task woken, or switched in).
    #[arg(short, long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Keep events that happen on this CPU.
    #[arg(short, long, value_name = "N")]
    pub cpu: Option<u32>,
    /// Do not attach this tracepoint (`category:name` or `name`); repeatable. Simulates an
    /// older kernel that lacks it.
    #[arg(long, value_name = "TRACEPOINT")]
    pub without: Vec<String>,
    #[command(flatten)]
    pub ring: RingArgs,
}

/// How events travel from the kernel to us.
#[derive(Clone, Debug, Args)]
pub struct RingArgs {
    /// Ring buffer size in bytes (power of two).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_RING_BYTES)]
    pub ring_size: u32,
    /// Have the kernel wake the tracer for every event instead of once an eighth of the ring
    /// is full or every 50 ms: lower delivery latency, much higher cost on the traced host.
    #[arg(long)]
    pub wakeup_per_event: bool,
}

impl FilterArgs {
    /// The probe options these filters ask for.
    pub fn probe_options(&self, verbose: bool) -> ProbeOptions {
        ProbeOptions {
            without_btf: false,
            pid: self.pid,
            cpu: self.cpu,
            journey_mode: false,
            without: self.without.clone(),
            ring_bytes: self.ring.ring_size,
            kernel_log: verbose,
            batch_wakeups: !self.ring.wakeup_per_event,
        }
    }
}

/// Parses `--duration` values.
pub fn duration_arg(text: &str) -> Result<Duration, String> {
    tracer::duration::parse(text)
}

/// Exit status for an error: 2 when tracing is impossible (permissions), else 1.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    match err.downcast_ref::<ProbeError>() {
        Some(ProbeError::Permission(_)) => 2,
        _ => 1,
    }
}
