//! Records shared by the eBPF programs (`tracer-ebpf`) and the tracer in user space.
//!
//! Everything here is `#[repr(C)]`, fixed-size and free of implicit padding, so that the
//! bytes the kernel writes into the ring buffer are exactly the bytes user space reads (and
//! the bytes a recording stores). The `user` feature adds `aya::Pod` impls for user space.
#![no_std]

pub mod offsets;

pub use offsets::{SLOT_COUNT, Slot};

/// What happened: one variant per tracepoint the programs attach to.
///
/// The numeric values are part of the recording format: append, never renumber.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// `irq:irq_handler_entry`: `arg0` = irq number.
    IrqHandlerEntry = 1,
    /// `irq:irq_handler_exit`: `arg0` = irq, `arg1` = handler return (IRQ_HANDLED = 1).
    IrqHandlerExit = 2,
    /// `irq:softirq_raise`: `arg0` = softirq vector (NET_RX = 3).
    SoftirqRaise = 3,
    /// `irq:softirq_entry`: `arg0` = softirq vector.
    SoftirqEntry = 4,
    /// `irq:softirq_exit`: `arg0` = softirq vector.
    SoftirqExit = 5,
    /// `napi:napi_poll`: `addr` = struct napi_struct *, `arg0` = work, `arg1` = budget,
    /// `name` = device.
    NapiPoll = 6,
    /// `net:netif_receive_skb`: `addr` = skb, `arg0` = len, `name` = device.
    NetifReceiveSkb = 7,
    /// `net:netif_rx`: `addr` = skb, `arg0` = len, `name` = device.
    NetifRx = 8,
    /// `net:napi_gro_receive_entry`: `addr` = skb, `arg0` = len, `arg1` = napi_id,
    /// `arg2` = queue_mapping, `name` = device.
    NapiGroReceiveEntry = 9,
    /// `sock:sk_data_ready`: `addr` = struct sock *, `arg0` = family, `arg1` = protocol.
    SkDataReady = 10,
    /// `sched:sched_waking`: `arg0` = woken tid, `arg1` = target cpu, `arg2` = prio,
    /// `name` = woken comm. Fires in the waker's context.
    SchedWaking = 11,
    /// `sched:sched_wakeup`: fields as [`EventKind::SchedWaking`].
    SchedWakeup = 12,
    /// `sched:sched_switch`: `addr` = prev_state, `arg0` = prev tid, `arg1` = next tid,
    /// `arg2` = next prio, `name` = next comm. The current task is the previous one.
    SchedSwitch = 13,
    /// `skb:skb_copy_datagram_iovec`: `addr` = skb, `arg0` = len.
    SkbCopyDatagramIovec = 14,
    /// `skb:kfree_skb`: `addr` = skb, `addr2` = location, `arg0` = drop reason,
    /// `arg1` = protocol.
    KfreeSkb = 15,
    /// `skb:consume_skb`: `addr` = skb, `addr2` = location.
    ConsumeSkb = 16,
    /// `sock:sock_recv_length`: `addr` = struct sock *, `arg0` = ret (i32), `arg1` = flags,
    /// `arg2` = family << 16 | protocol, `name` = the reader's comm.
    SockRecvLength = 17,
    /// `syscalls:sys_enter_recvfrom`: `arg0` = fd, `addr2` = buffer size.
    SysEnterRecvfrom = 18,
    /// `syscalls:sys_exit_recvfrom`: `addr` = return value (i64).
    SysExitRecvfrom = 19,
    /// `syscalls:sys_enter_recvmsg`: `arg0` = fd.
    SysEnterRecvmsg = 20,
    /// `syscalls:sys_exit_recvmsg`: `addr` = return value (i64).
    SysExitRecvmsg = 21,
    /// `syscalls:sys_enter_recvmmsg`: `arg0` = fd, `addr2` = vlen.
    SysEnterRecvmmsg = 22,
    /// `syscalls:sys_exit_recvmmsg`: `addr` = return value (messages received).
    SysExitRecvmmsg = 23,
    /// `syscalls:sys_enter_read`: `arg0` = fd, `addr2` = count.
    SysEnterRead = 24,
    /// `syscalls:sys_exit_read`: `addr` = return value (i64).
    SysExitRead = 25,
    /// `syscalls:sys_enter_readv`: `arg0` = fd, `addr2` = vlen.
    SysEnterReadv = 26,
    /// `syscalls:sys_exit_readv`: `addr` = return value (i64).
    SysExitReadv = 27,
    /// `tcp:tcp_probe` (a segment entering an established socket, in softirq or from the
    /// socket backlog in the reader's context): `addr` = skb, `addr2` = sock,
    /// `arg0` = data_len (payload, u16), `arg1` = sport << 16 | dport, `arg2` = family.
    TcpProbe = 28,
    /// `tcp:tcp_destroy_sock`: `addr` = sock. The socket's lifetime ends here.
    TcpDestroySock = 29,
}

impl EventKind {
    /// Every kind, in numeric order.
    pub const ALL: [EventKind; 29] = [
        Self::IrqHandlerEntry,
        Self::IrqHandlerExit,
        Self::SoftirqRaise,
        Self::SoftirqEntry,
        Self::SoftirqExit,
        Self::NapiPoll,
        Self::NetifReceiveSkb,
        Self::NetifRx,
        Self::NapiGroReceiveEntry,
        Self::SkDataReady,
        Self::SchedWaking,
        Self::SchedWakeup,
        Self::SchedSwitch,
        Self::SkbCopyDatagramIovec,
        Self::KfreeSkb,
        Self::ConsumeSkb,
        Self::SockRecvLength,
        Self::SysEnterRecvfrom,
        Self::SysExitRecvfrom,
        Self::SysEnterRecvmsg,
        Self::SysExitRecvmsg,
        Self::SysEnterRecvmmsg,
        Self::SysExitRecvmmsg,
        Self::SysEnterRead,
        Self::SysExitRead,
        Self::SysEnterReadv,
        Self::SysExitReadv,
        Self::TcpProbe,
        Self::TcpDestroySock,
    ];

    /// The kind with this numeric value, if any.
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            1..=29 => Some(Self::ALL[value as usize - 1]),
            _ => None,
        }
    }

    /// The tracepoint this kind comes from, as (category, name).
    pub const fn tracepoint(self) -> (&'static str, &'static str) {
        match self {
            Self::IrqHandlerEntry => ("irq", "irq_handler_entry"),
            Self::IrqHandlerExit => ("irq", "irq_handler_exit"),
            Self::SoftirqRaise => ("irq", "softirq_raise"),
            Self::SoftirqEntry => ("irq", "softirq_entry"),
            Self::SoftirqExit => ("irq", "softirq_exit"),
            Self::NapiPoll => ("napi", "napi_poll"),
            Self::NetifReceiveSkb => ("net", "netif_receive_skb"),
            Self::NetifRx => ("net", "netif_rx"),
            Self::NapiGroReceiveEntry => ("net", "napi_gro_receive_entry"),
            Self::SkDataReady => ("sock", "sk_data_ready"),
            Self::SchedWaking => ("sched", "sched_waking"),
            Self::SchedWakeup => ("sched", "sched_wakeup"),
            Self::SchedSwitch => ("sched", "sched_switch"),
            Self::SkbCopyDatagramIovec => ("skb", "skb_copy_datagram_iovec"),
            Self::KfreeSkb => ("skb", "kfree_skb"),
            Self::ConsumeSkb => ("skb", "consume_skb"),
            Self::SockRecvLength => ("sock", "sock_recv_length"),
            Self::SysEnterRecvfrom => ("syscalls", "sys_enter_recvfrom"),
            Self::SysExitRecvfrom => ("syscalls", "sys_exit_recvfrom"),
            Self::SysEnterRecvmsg => ("syscalls", "sys_enter_recvmsg"),
            Self::SysExitRecvmsg => ("syscalls", "sys_exit_recvmsg"),
            Self::SysEnterRecvmmsg => ("syscalls", "sys_enter_recvmmsg"),
            Self::SysExitRecvmmsg => ("syscalls", "sys_exit_recvmmsg"),
            Self::SysEnterRead => ("syscalls", "sys_enter_read"),
            Self::SysExitRead => ("syscalls", "sys_exit_read"),
            Self::SysEnterReadv => ("syscalls", "sys_enter_readv"),
            Self::SysExitReadv => ("syscalls", "sys_exit_readv"),
            Self::TcpProbe => ("tcp", "tcp_probe"),
            Self::TcpDestroySock => ("tcp", "tcp_destroy_sock"),
        }
    }

    /// The tracepoint's name, which is also the `kind` string of the JSON output.
    pub const fn name(self) -> &'static str {
        self.tracepoint().1
    }
}

/// Length of [`Event::name`]: IFNAMSIZ and TASK_COMM_LEN are both 16.
pub const NAME_LEN: usize = 16;

/// One event as the kernel emits it: 64 bytes, 8-aligned, no implicit padding.
///
/// The header (`ts`, `tgid`, `tid`, `cpu`, `kind`) is the same for every kind and describes
/// the context the tracepoint fired in. The payload fields (`addr`, `addr2`, `arg0..2`,
/// `name`) mean what the [`EventKind`] variant documents; unused ones are zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// CLOCK_MONOTONIC nanoseconds (`bpf_ktime_get_ns`).
    pub ts: u64,
    /// Primary 64-bit payload: an skb, sock or napi address, prev_state, or a syscall return.
    pub addr: u64,
    /// Secondary 64-bit payload: a code location or a syscall size argument.
    pub addr2: u64,
    /// Thread group id (the process id) of the current task.
    pub tgid: u32,
    /// Thread id of the current task (0 for the idle task).
    pub tid: u32,
    /// First 32-bit payload.
    pub arg0: u32,
    /// Second 32-bit payload.
    pub arg1: u32,
    /// Third 32-bit payload.
    pub arg2: u32,
    /// CPU the tracepoint fired on.
    pub cpu: u16,
    /// [`EventKind`] as its `u8` value.
    pub kind: u8,
    /// Bit set of `FLAG_*`.
    pub flags: u8,
    /// NUL-padded device name or task comm.
    pub name: [u8; NAME_LEN],
}

/// Size of one [`Event`] in bytes.
pub const EVENT_SIZE: usize = core::mem::size_of::<Event>();

const _: () = assert!(EVENT_SIZE == 64, "Event must stay 64 bytes without padding");
const _: () = assert!(core::mem::align_of::<Event>() == 8);

impl Event {
    /// An all-zero event.
    pub const ZERO: Event = Event {
        ts: 0,
        addr: 0,
        addr2: 0,
        tgid: 0,
        tid: 0,
        arg0: 0,
        arg1: 0,
        arg2: 0,
        cpu: 0,
        kind: 0,
        flags: 0,
        name: [0; NAME_LEN],
    };
}

/// [`Event::flags`]: events were lost on this CPU since its previous emitted event, so any
/// state built from this CPU's events may have a gap here.
pub const FLAG_LOST_BEFORE: u8 = 1;

/// Per-CPU value of the `LOST` map: events lost to a full ring buffer, and how many of those
/// have been flagged on a later event (`FLAG_LOST_BEFORE`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LostCounter {
    /// Reserve failures on this CPU.
    pub lost: u64,
    /// `lost` as of the last event that carried `FLAG_LOST_BEFORE`.
    pub reported: u64,
}

/// Value of the `FILTER_CPU` global that means "every CPU".
pub const ANY_CPU: u32 = u32::MAX;

/// Length of the `IGNORE_TGIDS` global: the tracer and up to three readers of its output.
pub const IGNORE_SLOTS: usize = 4;

/// IRQ numbers the `NET_IRQS` bitmap covers (0..4096); a higher IRQ is always kept.
pub const NET_IRQ_BITS: u32 = 4096;

/// Length of the `NET_IRQS` bitmap in u64 words.
pub const NET_IRQ_WORDS: usize = (NET_IRQ_BITS / 64) as usize;

/// `NetifReceiveSkb.arg1` bit: the program read the packet's IP and transport headers
/// (kernel BTF gave `sk_buff.data`). Then `arg1` bits 0-7 hold the IP protocol, bits 8-15
/// the TCP flags, bits 16-19 the IP version; `arg2` the transport payload length in bytes;
/// `addr2` the TCP sequence number of the first payload byte.
pub const HDR_VALID: u32 = 1 << 24;

/// `SockRecvLength.addr2` bit 32: bits 0-31 hold the TCP socket's `copied_seq` after the
/// read (kernel BTF gave `tcp_sock.copied_seq`): every byte before it has been read.
pub const COPIED_SEQ_VALID: u64 = 1 << 32;

/// NET_RX_SOFTIRQ, the softirq vector of packet reception.
pub const NET_RX_SOFTIRQ: u32 = 3;

#[cfg(feature = "user")]
// SAFETY: two u64s, no padding, every bit pattern valid.
unsafe impl aya::Pod for LostCounter {}

#[cfg(feature = "user")]
// SAFETY: Event is repr(C), has no padding (asserted above) and every bit pattern is valid.
unsafe impl aya::Pod for Event {}
