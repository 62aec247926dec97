//! Subcommands and what they share: filter options, the event loop, exit codes.

pub mod demo;
pub mod doctor;
pub mod events;
pub mod lab;
pub mod live;
pub mod output;
pub mod record;

use std::time::Duration;

use clap::Args;
use tracer::probes::{DEFAULT_RING_BYTES, ProbeError, ProbeOptions};

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
    /// Ring buffer size in bytes (power of two).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_RING_BYTES)]
    pub ring_size: u32,
}

impl FilterArgs {
    /// The probe options these filters ask for.
    pub fn probe_options(&self, verbose: bool) -> ProbeOptions {
        ProbeOptions {
            pid: self.pid,
            cpu: self.cpu,
            journey_mode: false,
            without: self.without.clone(),
            ring_bytes: self.ring_size,
            kernel_log: verbose,
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
