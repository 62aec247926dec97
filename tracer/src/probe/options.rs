//! What to trace and how: the options every tracing command hands to the loader.

/// Default ring buffer size: 8 MiB holds 131072 events (64 B each).
pub const DEFAULT_RING_BYTES: u32 = 8 << 20;

/// What to trace and how.
#[derive(Clone, Debug)]
pub struct ProbeOptions {
    /// Keep events of this process (tgid) only, as current task or as subject.
    pub pid: Option<u32>,
    /// Keep events on this CPU only.
    pub cpu: Option<u32>,
    /// Journey mode (`tracer live`): packet-path events from every context, sched events
    /// only for possible readers. Off: event mode, every filter on the current task.
    pub journey_mode: bool,
    /// Tracepoints to leave out, as `category:name` or `name`.
    pub without: Vec<String>,
    /// Ring buffer size in bytes (a power of two, at least one page).
    pub ring_bytes: u32,
    /// Forward the programs' aya-log messages to the `log` crate.
    pub kernel_log: bool,
    /// Do not read kernel BTF: no packet headers, no TCP read points (the fallback a kernel
    /// without BTF gets; for tests and comparisons).
    pub without_btf: bool,
    /// Attach every program to its classic tracepoint even where the cheaper BTF tracepoint
    /// (tp_btf) form would load (for tests and comparisons; implied by `without_btf`).
    pub classic_tracepoints: bool,
    /// Journey mode: a NET_RX run's events, and a reader's up to its syscall's exit, as one
    /// ring record each (tracer-ebpf `batch`) instead of every event on its own.
    pub batched: bool,
    /// Batch the ring buffer's wakeups: the kernel wakes the reader only once
    /// [`Self::wakeup_bytes`] wait, and the reader also drains every [`crate::source::ring::POLL_INTERVAL`].
    /// Off: a wakeup per event (lowest delivery latency, highest cost on the traced host).
    pub batch_wakeups: bool,
    /// Trace only the packets this filter selects (evaluated in the kernel on each packet's
    /// 5-tuple; needs kernel BTF), and only what follows from them.
    pub flow: Option<crate::flow::FlowFilter>,
    /// Attach the classic `syscalls:*` programs, for this reason, even where the raw
    /// syscall programs would load (`SyscallPlan`): set by the loader when those failed to
    /// attach, before it starts again.
    pub classic_syscalls: Option<String>,
    /// Journey mode on the raw syscall programs: mark each traced syscall's entry at
    /// `raw_syscalls:sys_enter` (a program run at every syscall's entry) instead of reading
    /// a task's entry frame where its standing is asked (`abi::SYSCALL_FROM_REGS`); for
    /// comparisons, and set by the loader when a program that asks could not attach in its
    /// BTF form.
    pub syscall_entry_marks: bool,
    /// `tracer_common::abi::bench_floor`: every program returns at once (or
    /// after one clock read), for the bench's measure of what attaching alone costs.
    pub bench_floor: u32,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            pid: None,
            cpu: None,
            journey_mode: false,
            without: Vec::new(),
            ring_bytes: DEFAULT_RING_BYTES,
            kernel_log: false,
            without_btf: false,
            classic_tracepoints: false,
            batched: false,
            batch_wakeups: true,
            flow: None,
            classic_syscalls: None,
            syscall_entry_marks: false,
            bench_floor: tracer_common::abi::bench_floor::OFF,
        }
    }
}

impl ProbeOptions {
    /// Journey mode for the readers of one process, everything else by default (`demo`, labs).
    pub fn journeys_of(pid: u32, kernel_log: bool) -> Self {
        Self {
            pid: Some(pid),
            journey_mode: true,
            kernel_log,
            ..Self::default()
        }
    }

    /// Each of the `cpus` CPUs wakes the reader each time the bytes it wrote into the ring
    /// buffer cross a multiple of this; 0 for every event. The ring over twice the CPUs: at
    /// most half the ring waits before some CPU's wakeup, which leaves room for a poll
    /// interval of a flood (at least 128 bytes, a record or two). A power of two: the
    /// kernel side tests a crossing with a mask.
    pub fn wakeup_bytes(&self, cpus: u32) -> u32 {
        if self.batch_wakeups {
            let share = (self.ring_bytes / cpus.max(1).saturating_mul(2)).max(128);
            1 << share.ilog2()
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakeup_bytes_is_a_power_of_two_share_of_half_the_ring() {
        let options = ProbeOptions {
            ring_bytes: 8 << 20,
            ..ProbeOptions::default()
        };
        assert_eq!(options.wakeup_bytes(2), 2 << 20);
        assert_eq!(options.wakeup_bytes(1), 4 << 20);
        // 3 CPUs: 8 MiB / 6 rounds down to 1 MiB, so 3 CPUs wait for 3 MiB at most.
        assert_eq!(options.wakeup_bytes(3), 1 << 20);
        assert_eq!(options.wakeup_bytes(0), 4 << 20);
        let tiny = ProbeOptions {
            ring_bytes: 4096,
            ..ProbeOptions::default()
        };
        assert_eq!(tiny.wakeup_bytes(64), 128);
        let per_event = ProbeOptions {
            batch_wakeups: false,
            ..ProbeOptions::default()
        };
        assert_eq!(per_event.wakeup_bytes(2), 0);
    }
}
