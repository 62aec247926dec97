//! The programs, one file per domain. Every program is a `#[tracepoint]` function named
//! like its tracepoint: user space attaches by that name.

mod irq;
mod net;
mod sched;
mod sock;
mod syscalls;
mod tcp;
