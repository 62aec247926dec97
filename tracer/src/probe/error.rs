//! Errors of loading and attaching the programs, with the context a user needs.

use crate::host::tracefs::TracefsError;

/// Errors of loading and attaching, with the context a user needs.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Not allowed to load eBPF programs.
    #[error("{0}")]
    Permission(String),
    /// tracefs trouble.
    #[error(transparent)]
    Tracefs(#[from] TracefsError),
    /// `--pid` names no running process.
    #[error("no process with pid {0}")]
    NoSuchPid(u32),
    /// `--cpu` names no online CPU.
    #[error("no CPU {cpu}: this machine has CPUs 0-{last}")]
    NoSuchCpu { cpu: u32, last: u32 },
    /// Ring buffer size the kernel would reject.
    #[error("ring buffer size {0} is not a power of two of at least 4096 bytes")]
    RingSize(u32),
    /// The object failed to load (verifier, maps).
    #[error("loading the eBPF object: {0}")]
    Load(#[from] aya::EbpfError),
    /// A map the object must contain is missing or of another type.
    #[error("eBPF map {name}: {source}")]
    Map {
        name: &'static str,
        source: aya::maps::MapError,
    },
    /// A filter expression needs the packet's headers, which need kernel BTF.
    #[error(
        "a filter expression needs the packets' own headers, read with kernel BTF ({0}); \
         run `tracer doctor`"
    )]
    FlowNeedsBtf(String),
    /// A filter expression needs a tracepoint that is left out or missing.
    #[error("a filter expression needs the tracepoint {0}, which is not available ({1})")]
    FlowNeedsTracepoint(&'static str, String),
    /// Every tracepoint failed.
    #[error("no tracepoint could be attached")]
    NothingAttached,
}
