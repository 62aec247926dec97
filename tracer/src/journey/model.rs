//! The journey record: one received packet from its interrupt to recv() returning it.
//! Field names are the JSON record of DESIGN.md; other tools and tests depend on them.

use std::{borrow::Cow, fmt, net::IpAddr, sync::Arc};

use serde::{Serialize, Serializer};

/// A kernel address (`sk_buff`, `sock`), shown as `0x...` hex in JSON and text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Addr(pub u64);

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl Serialize for Addr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// TCP header flags (the byte at offset 13 of the header), shown as `SYN|ACK`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// Flag names by bit, lowest first.
    const NAMES: [&'static str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];

    /// The flags as text, e.g. `PSH|ACK` (`none` without a flag): one shared string per
    /// value, built once.
    pub fn as_str(self) -> &'static str {
        static TEXT: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
            (0..=u8::MAX)
                .map(|bits| TcpFlags(bits).to_string())
                .collect()
        });
        &TEXT[usize::from(self.0)]
    }
}

impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (bit, name) in Self::NAMES.iter().enumerate() {
            if self.0 & (1 << bit) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

impl Serialize for TcpFlags {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Text a journey shares with others (device and task names): cloning it is a count.
pub type Shared = Arc<str>;

/// The stages of a journey, in order (the vocabulary of CLI columns, JSON and metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// irq_handler_entry -> irq_handler_exit of the NIC queue interrupt.
    Irq,
    /// IRQ exit (or the NET_RX raise) -> the NET_RX softirq entry that polled the packet.
    SoftirqWait,
    /// softirq entry -> netif_receive_skb of this packet.
    Poll,
    /// netif_receive_skb -> sk_data_ready (socket enqueue).
    Stack,
    /// sk_data_ready -> sched_waking of the reader.
    Wakeup,
    /// sched_waking -> sched_switch onto a CPU.
    Runqueue,
    /// sched_switch in -> the recv-family syscall returns.
    Syscall,
    /// first stamp of the journey -> recv return.
    Total,
}

impl Stage {
    /// Every stage, in journey order.
    pub const ALL: [Stage; 8] = [
        Stage::Irq,
        Stage::SoftirqWait,
        Stage::Poll,
        Stage::Stack,
        Stage::Wakeup,
        Stage::Runqueue,
        Stage::Syscall,
        Stage::Total,
    ];

    /// The stage's name in the JSON record and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Irq => "irq",
            Stage::SoftirqWait => "softirq_wait",
            Stage::Poll => "poll",
            Stage::Stack => "stack",
            Stage::Wakeup => "wakeup",
            Stage::Runqueue => "runqueue",
            Stage::Syscall => "syscall",
            Stage::Total => "total",
        }
    }
}

/// CLOCK_MONOTONIC stamps of one journey (null where absent).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stamps {
    pub irq_entry: Option<u64>,
    pub irq_exit: Option<u64>,
    pub softirq_raise: Option<u64>,
    pub softirq_entry: Option<u64>,
    pub netif_receive: Option<u64>,
    pub sk_data_ready: Option<u64>,
    pub waking: Option<u64>,
    /// sched_wakeup: the reader enqueued on its target CPU (maybe remotely).
    pub wakeup: Option<u64>,
    pub switch_in: Option<u64>,
    pub recv_return: Option<u64>,
}

impl Stamps {
    /// The stamps in the order they happen, with their names. A NIC driver raises NET_RX
    /// inside its interrupt handler, so the raise comes before the IRQ exit.
    pub fn in_order(&self) -> [(&'static str, Option<u64>); 10] {
        [
            ("irq_entry", self.irq_entry),
            ("softirq_raise", self.softirq_raise),
            ("irq_exit", self.irq_exit),
            ("softirq_entry", self.softirq_entry),
            ("netif_receive", self.netif_receive),
            ("sk_data_ready", self.sk_data_ready),
            ("waking", self.waking),
            ("wakeup", self.wakeup),
            ("switch_in", self.switch_in),
            ("recv_return", self.recv_return),
        ]
    }

    /// The earliest stamp present.
    pub fn first(&self) -> Option<u64> {
        // The fields themselves, not `in_order`'s named array: this runs for every journey.
        // Without a branch per stamp: an absent stamp counts as u64::MAX in the minimum, and
        // whether any is present is kept apart (a stamp of u64::MAX itself stays Some).
        let stamps = [
            self.irq_entry,
            self.irq_exit,
            self.softirq_raise,
            self.softirq_entry,
            self.netif_receive,
            self.sk_data_ready,
            self.waking,
            self.wakeup,
            self.switch_in,
            self.recv_return,
        ];
        let (min, any) = stamps.iter().fold((u64::MAX, false), |(min, any), stamp| {
            (min.min(stamp.unwrap_or(u64::MAX)), any | stamp.is_some())
        });
        any.then_some(min)
    }
}

/// Stage durations in nanoseconds (null where the stage is absent).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StageDurations {
    pub irq: Option<u64>,
    pub softirq_wait: Option<u64>,
    pub poll: Option<u64>,
    pub stack: Option<u64>,
    pub wakeup: Option<u64>,
    pub runqueue: Option<u64>,
    pub syscall: Option<u64>,
    pub total: Option<u64>,
}

impl StageDurations {
    /// The duration of one stage.
    pub fn get(&self, stage: Stage) -> Option<u64> {
        match stage {
            Stage::Irq => self.irq,
            Stage::SoftirqWait => self.softirq_wait,
            Stage::Poll => self.poll,
            Stage::Stack => self.stack,
            Stage::Wakeup => self.wakeup,
            Stage::Runqueue => self.runqueue,
            Stage::Syscall => self.syscall,
            Stage::Total => self.total,
        }
    }
}

/// A stage that this journey does not have, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Missing {
    pub stage: Stage,
    pub reason: Cow<'static, str>,
}

/// The stages a journey does not have, with their reasons: four or fewer for nearly every
/// journey (a loopback datagram read by a reader already running misses three: no hard
/// IRQ, no wakeup, no run queue wait), held inline so that finishing one allocates nothing
/// for them.
pub type MissingStages = smallvec::SmallVec<[Missing; 4]>;

/// One received packet's journey (the JSON lines record).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Journey {
    /// Sequence number of the journey in this trace (order of the packet's first event).
    pub id: u64,
    /// Device that received it (netif_receive_skb), e.g. `eth0`, `lo`.
    pub dev: Shared,
    /// The NIC interrupt that raised the softirq which polled it; null without one.
    pub irq: Option<u32>,
    /// That interrupt's name, e.g. `virtio2-input.0`.
    pub irq_name: Option<Shared>,
    pub cpu_irq: Option<u16>,
    /// CPU whose NET_RX softirq polled the packet.
    pub cpu_softirq: Option<u16>,
    /// CPU the reader ran on when recv() returned.
    pub cpu_task: Option<u16>,
    /// With RPS/backlog steering: the CPU that ran the stack for it, when not cpu_softirq.
    pub cpu_stack: Option<u16>,
    /// Reader's process id (tgid).
    pub pid: Option<u32>,
    /// Reader's thread id.
    pub tid: Option<u32>,
    pub comm: Option<Shared>,
    /// Inode number of the reader's network namespace (what `/proc/<pid>/ns/net` names), at
    /// its read; null without kernel BTF or in a recording made before it was recorded.
    pub netns: Option<u64>,
    /// The reader's cgroup v2 id (the inode number of its cgroup directory), at its read;
    /// null when unknown.
    pub cgroup: Option<u64>,
    /// That cgroup's path below the cgroup2 mount (`/system.slice/docker-<id>.scope`),
    /// resolved in user space: live, or from the table a recording carries (null when the
    /// cgroup was created after the recording started or is gone).
    pub cgroup_path: Option<Shared>,
    /// `udp`, `tcp`, or the IP protocol number.
    pub proto: Cow<'static, str>,
    /// `ipv4` or `ipv6`, from the packet's own header (null without kernel BTF).
    pub family: Option<&'static str>,
    /// The packet's source address (the peer, for a packet a local reader reads).
    pub saddr: Option<IpAddr>,
    /// Its source port (TCP, UDP).
    pub sport: Option<u16>,
    /// Its destination address (the local end).
    pub daddr: Option<IpAddr>,
    /// Its destination port (TCP, UDP).
    pub dport: Option<u16>,
    /// Length seen by netif_receive_skb (the IP packet).
    pub len: u32,
    /// Bytes returned by the read that delivered this packet.
    pub bytes: Option<i64>,
    /// The recv-family syscall that returned it.
    pub syscall: Option<&'static str>,
    /// Position (1-based) of the packet in its NAPI poll.
    pub napi_batch_pos: Option<u32>,
    /// Packets that poll processed (napi_poll work).
    pub napi_work: Option<u32>,
    /// The poll's budget.
    pub napi_budget: Option<u32>,
    /// NET_RX ran in ksoftirqd instead of on IRQ exit / bottom-half enable.
    pub softirq_in_ksoftirqd: bool,
    /// Packets GRO merged into this one (0 without GRO merging).
    pub gro_merged: u32,
    /// Packets delivered by the same read (TCP reads, recvmmsg count each datagram).
    pub read_packets: u32,
    /// The read returned fewer bytes than the datagram's payload.
    pub partial_read: bool,
    pub skbaddr: Addr,
    pub skaddr: Option<Addr>,
    /// Application bytes the packet carried: a UDP datagram's data, a TCP segment's payload
    /// (null where the kernel gave no way to know it).
    pub payload: Option<u32>,
    /// TCP flags of the segment, e.g. `PSH|ACK` (null for other protocols or unknown).
    pub tcp_flags: Option<TcpFlags>,
    /// A TCP segment without application data (handshake, pure ACK, FIN, RST): it has no
    /// reader; shown only with `--all`, never counted as a drop or left open.
    pub control: bool,
    /// CLOCK_MONOTONIC return of the first read that returned any of its bytes (equal to
    /// `ts.recv_return` unless TCP spread the packet over several reads).
    pub first_read: Option<u64>,
    /// Reads that returned part of this packet (TCP; 1 for a datagram).
    pub reads: u32,
    /// The thread sched_waking woke for this packet. When it is not `tid` (another thread
    /// of a shared socket, or an epoll thread handing work over), the wakeup and runqueue
    /// stages are not this journey's and are marked missing.
    pub woken_tid: Option<u32>,
    pub ts: Stamps,
    pub stages_ns: StageDurations,
    /// It reached recv() return with no events lost on the way.
    pub complete: bool,
    pub missing: MissingStages,
    /// skb_drop_reason of the kfree_skb that ended it (interned: a flood's drops share one).
    pub drop_reason: Option<Shared>,
    /// Events were lost on a CPU while this journey was open: stages may be wrong or absent.
    pub lost_events: bool,
}
