//! The programs, one file per domain, and the macro most of them share. Every program is a
//! `#[tracepoint]` function named like its tracepoint: user space attaches by that name.

/// A program filtered by its context alone: `$passes` (`context_passes` by default, or
/// `packet_passes`) on the current context, then `emit` with `$fill` writing the payload.
macro_rules! context_program {
    ($name:ident, $kind:ident, |$ctx:ident, $ev:ident| $fill:block) => {
        context_program!($name, $kind, context_passes, |$ctx, $ev| $fill);
    };
    ($name:ident, $kind:ident, $passes:ident, |$ctx:ident, $ev:ident| $fill:block) => {
        #[aya_ebpf::macros::tracepoint]
        pub fn $name($ctx: aya_ebpf::programs::TracePointContext) -> u32 {
            let here = $crate::filter::here();
            if $passes(&here) {
                $crate::emit::emit(&here, tracer_common::EventKind::$kind, |$ev| $fill);
            }
            0
        }
    };
}

mod irq;
mod net;
mod sched;
mod sock;
mod syscalls;
mod tcp;
