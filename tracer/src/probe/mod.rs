//! The kernel side from user space: configure, load and attach the eBPF programs, read their
//! loss counters and the kernel's own per-program counters.

pub mod error;
pub mod loader;
pub mod options;
pub mod stats;
pub mod syscalls;

pub use error::ProbeError;
pub use loader::{JOURNEY_UNUSED, KernelLog, Probes};
pub use options::{DEFAULT_RING_BYTES, ProbeOptions};
pub use stats::ProgramCounters;
pub use syscalls::SyscallPlan;
