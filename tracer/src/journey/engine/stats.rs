//! What the engine is told about the host (config, fallbacks, reader filter) and the counters
//! it keeps for the summary.

use std::collections::{BTreeMap, HashMap};

use tracer_common::EventKind;

pub use crate::host::irqmap::IrqDevice;

/// Links this kernel (or the user, with `--without`) does not provide: the engine then
/// falls back to the next best evidence and marks the stages it cannot measure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Degraded {
    /// No sock:sk_data_ready: a packet links to the reader its softirq wakes.
    pub no_data_ready: bool,
    /// No sock:sock_recv_length: a read links through the socket's known reader and the
    /// syscall exit.
    pub no_recv_length: bool,
    /// No tcp:tcp_probe: a TCP segment reaches its socket through sk_data_ready on the CPU
    /// that received it (segments processed later from the socket backlog are not linked).
    pub no_tcp_probe: bool,
}

impl Degraded {
    /// The fallbacks needed when these kinds are not traced.
    pub fn from_missing(kinds: impl IntoIterator<Item = EventKind>) -> Self {
        let mut degraded = Degraded::default();
        for kind in kinds {
            match kind {
                EventKind::SkDataReady => degraded.no_data_ready = true,
                EventKind::SockRecvLength => degraded.no_recv_length = true,
                EventKind::TcpProbe => degraded.no_tcp_probe = true,
                _ => {}
            }
        }
        degraded
    }
}

/// Which readers' journeys are wanted (`--pid`, `--comm`): a journey belongs to the thread
/// whose read returned it, so the filter applies when a read takes a packet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReaderFilter {
    /// Process ids (tgid); empty: any.
    pub pids: Vec<u32>,
    /// Task names; empty: any.
    pub comms: Vec<String>,
}

impl ReaderFilter {
    /// Whether it selects anything less than everything.
    pub fn is_active(&self) -> bool {
        !self.pids.is_empty() || !self.comms.is_empty()
    }

    /// Whether a reader (process, task name) is selected.
    pub fn selects(&self, pid: u32, comm: &str) -> bool {
        (self.pids.is_empty() || self.pids.contains(&pid))
            && (self.comms.is_empty() || self.comms.iter().any(|c| c == comm))
    }
}

/// What the engine knows about the host besides the events.
#[derive(Clone, Debug, Default)]
pub struct EngineConfig {
    /// Interrupts of network devices, by IRQ number.
    pub irq_devices: HashMap<u32, IrqDevice>,
    /// skb_drop_reason names of this kernel, by value.
    pub drop_reasons: BTreeMap<u64, String>,
    /// Task names known before the trace (e.g. ksoftirqd threads), by tid.
    pub comms: HashMap<u32, String>,
    /// Also emit packets that never reached a socket (control segments, ARP, ...): off by default.
    pub keep_unsocketed: bool,
    /// Missing links and their fallbacks.
    pub degraded: Degraded,
    /// Open journeys at most (0: the default, [`DEFAULT_MAX_OPEN`]); beyond it the oldest is
    /// ended as "evicted", so memory stays bounded however the traffic behaves.
    pub max_open: usize,
    /// Only journeys read by these readers are emitted and counted (`--pid`, `--comm`).
    pub readers: ReaderFilter,
    /// Where the paths of the readers' cgroups come from: the pipeline ([`crate::journey::Tracker`])
    /// names them on the journeys it yields; the engine itself never reads a file.
    pub cgroups: crate::host::cgroup::CgroupSource,
}

/// Generates [`Ending`] and its text from one table.
macro_rules! endings {
    ($( $(#[$doc:meta])* $variant:ident => $text:literal, )*) => {
        /// Why a journey ended without a recv return, or was not shown: one value per reason,
        /// with one text (the summary's, the metrics label's, the `missing` reason's).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Ending {
            $( $(#[$doc])* $variant, )*
        }

        impl Ending {
            /// Every reason, in summary order.
            pub const ALL: [Ending; [$(Ending::$variant),*].len()] = [$(Ending::$variant),*];

            /// The reason as text.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Ending::$variant => $text,)*
                }
            }
        }
    };
}

endings! {
    /// Still queued on its socket when the trace ended.
    NeverRead => "never read before the trace ended",
    /// A TCP segment some of whose bytes had been read when the trace ended.
    PartlyRead => "partly read when the trace ended",
    /// Taken by a read whose syscall had not returned when the trace ended.
    RecvPending => "recv had not returned when the trace ended",
    /// Not yet on a socket when the trace ended.
    BeforeSocket => "had not reached a socket when the trace ended",
    /// Ended early by the open-journey bound.
    Evicted => "evicted: too many packets open at once (memory bound)",
    /// A TCP segment without payload.
    Control => "control segment: no application data for a reader",
    /// Its skb address came back before it reached a socket.
    SkbReused => "skb address reused before the packet reached a socket (its free was not traced)",
    /// kfree_skb with a drop reason.
    Dropped => "dropped",
    /// consume_skb before any socket (the stack finished with it).
    Consumed => "consumed by the stack without reaching a socket",
    /// Its socket was destroyed with some of its bytes read.
    ClosedPartlyRead => "the socket was closed with part of this data unread",
    /// Its socket was destroyed before any of its bytes were read.
    ClosedUnread => "the socket was closed before this data was read",
    /// GRO merged it into the packet before it.
    GroMerged => "merged into another packet by GRO",
    /// It ended without reaching a socket for no more specific reason.
    NoSocket => "no socket",
    /// Events were lost while it was open.
    EventsLost => "events lost",
    /// A retransmitted TCP segment whose bytes its socket already had from another one (the
    /// kernel trimmed them, or merged the copy into a segment it then trimmed): no read
    /// returned them from this copy.
    Duplicate => "a retransmitted copy of bytes the socket already had",
    /// An IP fragment the stack consumed into its datagram's reassembly: its bytes go on in
    /// the journey of the fragment that completed the datagram.
    Reassembled => "an IP fragment: its bytes went on in the datagram its last fragment completed",
}

/// A count per [`Ending`], in an array: counting is an index and an add.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndingCounts([u64; Ending::ALL.len()]);

impl EndingCounts {
    /// Counts one more.
    pub fn add(&mut self, ending: Ending) {
        self.0[ending as usize] += 1;
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &EndingCounts) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine += theirs;
        }
    }

    /// The count of a reason given as text, if non-zero (as a map of the non-zero counts).
    pub fn get(&self, reason: &str) -> Option<&u64> {
        Ending::ALL
            .iter()
            .position(|ending| ending.as_str() == reason)
            .map(|at| &self.0[at])
            .filter(|count| **count > 0)
    }

    /// The non-zero counts with their reasons, in [`Ending::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Ending::ALL
            .iter()
            .zip(self.0)
            .filter(|(_, count)| *count > 0)
            .map(|(ending, count)| (ending.as_str(), count))
    }

    /// The sum of every count.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Whether every count is zero.
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }
}

/// Default bound on open journeys.
pub const DEFAULT_MAX_OPEN: usize = 65_536;

/// Counters of what the engine saw, for the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub events: u64,
    pub journeys_emitted: u64,
    pub complete: u64,
    /// Incomplete journeys emitted, by reason.
    pub incomplete: EndingCounts,
    /// Packets that ended without reaching a socket and were not emitted, by reason.
    pub unsocketed: EndingCounts,
    /// Data packets the kernel dropped (kfree_skb with a reason).
    pub dropped: u64,
    /// Dropped packets not known to carry data (no headers read, never reached a socket).
    pub dropped_unknown: u64,
    /// Events flagged FLAG_LOST_BEFORE, per CPU.
    pub loss_marks: BTreeMap<u16, u64>,
    /// sched_waking of a ksoftirqd thread (NET_RX work deferred to a thread).
    pub ksoftirqd_wakeups: u64,
    /// Reads whose data was enqueued before the trace (or not linked to a packet).
    pub reads_without_packet: u64,
    /// Bytes returned by TCP reads that no traced segment carried (enqueued before the
    /// trace, or on a path without a segment event); counted only without sequence numbers.
    pub unmatched_read_bytes: u64,
    /// sk_data_ready with no packet received just before on that CPU.
    pub unlinked_data_ready: u64,
    /// Journeys ended early because too many were open (`EngineConfig::max_open`).
    pub evicted: u64,
    /// State table entries dropped by the periodic sweep (stale links, forgotten names).
    pub swept: u64,
    /// TCP segments without application data, by their flags (`SYN`, `ACK`, `FIN|ACK`, ...).
    pub control: BTreeMap<String, u64>,
    /// Data still queued (never read) when its socket was destroyed.
    pub closed_unread: u64,
    /// Journeys left out because another reader than the `--pid`/`--comm` filter's took
    /// them (or their socket is not the filter's).
    pub not_selected: u64,
    /// Wakeups linked to a packet that woke another thread than the one that read it.
    pub wakeups_of_other_threads: u64,
}
