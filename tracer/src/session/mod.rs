//! A tracing run: the attached programs, their event stream and the stop signals, and the
//! loops that drive them (live journeys, the top view, raw events, recording, replay of a
//! recording).

pub mod events;
pub mod live;
pub mod record;
pub mod replay;
pub mod rotate;
pub mod top;

use anyhow::Context as _;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::{
    probe::{ProbeOptions, Probes},
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
            .then_some(crate::source::POLL_INTERVAL);
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
        "{attached} of {} tracepoints ({} as BTF tracepoints{})",
        attached + probes.skipped.len(),
        probes.btf_attached.len(),
        if probes.batching {
            "; events batched per NET_RX run and per read"
        } else {
            ""
        }
    )
}
