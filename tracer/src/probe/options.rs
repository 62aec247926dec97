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

    /// The kernel wakes the reader each time the bytes waiting in the ring buffer cross a
    /// multiple of this; 0 for every event. An eighth of the ring leaves room for a poll
    /// interval of a flood.
    pub fn wakeup_bytes(&self) -> u32 {
        if self.batch_wakeups {
            self.ring_bytes / 8
        } else {
            0
        }
    }
}
