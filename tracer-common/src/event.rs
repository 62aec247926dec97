//! The event record: [`Event`], the 64 bytes one program writes into the `EVENTS` ring
//! buffer, and [`EventKind`], which tracepoint wrote it (one table below).

/// Generates [`EventKind`] and everything derived from it from one table: each row is
/// `Variant = value => ("category", "tracepoint")` under its doc comment.
macro_rules! event_kinds {
    ($( $(#[$doc:meta])* $variant:ident = $value:literal => ($cat:literal, $tp:literal), )*) => {
        /// What happened: one variant per tracepoint the programs attach to.
        ///
        /// The numeric values are part of the recording format: append, never renumber.
        #[repr(u8)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventKind {
            $( $(#[$doc])* $variant = $value, )*
        }

        /// Number of [`EventKind`]s.
        pub const KIND_COUNT: usize = [$($value),*].len();

        impl EventKind {
            /// Every kind, in numeric order.
            pub const ALL: [EventKind; KIND_COUNT] = [$(Self::$variant),*];

            /// The kind with this numeric value, if any.
            pub const fn from_u8(value: u8) -> Option<Self> {
                match value {
                    $($value => Some(Self::$variant),)*
                    _ => None,
                }
            }

            /// The tracepoint this kind comes from, as (category, name). The program that
            /// emits it has the tracepoint's name.
            pub const fn tracepoint(self) -> (&'static str, &'static str) {
                match self {
                    $(Self::$variant => ($cat, $tp),)*
                }
            }
        }
    };
}

event_kinds! {
    /// `irq:irq_handler_entry`: `arg0` = irq number.
    IrqHandlerEntry = 1 => ("irq", "irq_handler_entry"),
    /// `irq:irq_handler_exit`: `arg0` = irq, `arg1` = handler return (IRQ_HANDLED = 1).
    IrqHandlerExit = 2 => ("irq", "irq_handler_exit"),
    /// `irq:softirq_raise`: `arg0` = softirq vector (NET_RX = 3).
    SoftirqRaise = 3 => ("irq", "softirq_raise"),
    /// `irq:softirq_entry`: `arg0` = softirq vector. With [`FLAG_RAISE`] (ring records
    /// only, never in a recording): `addr2` = the stamp of the first NET_RX raise on this
    /// CPU since its previous NET_RX entry, 0 for none.
    SoftirqEntry = 4 => ("irq", "softirq_entry"),
    /// `irq:softirq_exit`: `arg0` = softirq vector.
    SoftirqExit = 5 => ("irq", "softirq_exit"),
    /// `napi:napi_poll`: `addr` = struct napi_struct *, `arg0` = work, `arg1` = budget,
    /// `name` = device.
    NapiPoll = 6 => ("napi", "napi_poll"),
    /// `net:netif_receive_skb`: `addr` = skb, `arg0` = len, `name` = device.
    NetifReceiveSkb = 7 => ("net", "netif_receive_skb"),
    /// `net:netif_rx`: `addr` = skb, `arg0` = len, `name` = device.
    NetifRx = 8 => ("net", "netif_rx"),
    /// `net:napi_gro_receive_entry`: `addr` = skb, `arg0` = len, `arg1` = napi_id,
    /// `arg2` = queue_mapping, `name` = device.
    NapiGroReceiveEntry = 9 => ("net", "napi_gro_receive_entry"),
    /// `sock:sk_data_ready`: `addr` = struct sock *, `arg0` = family, `arg1` = protocol.
    SkDataReady = 10 => ("sock", "sk_data_ready"),
    /// `sched:sched_waking`: `arg0` = woken tid, `arg1` = target cpu, `arg2` = prio,
    /// `name` = woken comm. Fires in the waker's context.
    SchedWaking = 11 => ("sched", "sched_waking"),
    /// `sched:sched_wakeup`: fields as [`EventKind::SchedWaking`].
    SchedWakeup = 12 => ("sched", "sched_wakeup"),
    /// `sched:sched_switch`: `addr` = prev_state, `arg0` = prev tid, `arg1` = next tid,
    /// `arg2` = next prio, `name` = next comm. The current task is the previous one.
    SchedSwitch = 13 => ("sched", "sched_switch"),
    /// `skb:skb_copy_datagram_iovec`: `addr` = skb, `arg0` = len.
    SkbCopyDatagramIovec = 14 => ("skb", "skb_copy_datagram_iovec"),
    /// `skb:kfree_skb`: `addr` = skb, `addr2` = location, `arg0` = drop reason,
    /// `arg1` = protocol.
    KfreeSkb = 15 => ("skb", "kfree_skb"),
    /// `skb:consume_skb`: `addr` = skb, `addr2` = location.
    ConsumeSkb = 16 => ("skb", "consume_skb"),
    /// `sock:sock_recv_length`: `addr` = struct sock *, `arg0` = ret (i32), `arg1` = flags,
    /// `arg2` = family << 16 | protocol, `name` = the reader's comm.
    SockRecvLength = 17 => ("sock", "sock_recv_length"),
    /// `syscalls:sys_enter_recvfrom`: `arg0` = fd, `addr2` = buffer size.
    SysEnterRecvfrom = 18 => ("syscalls", "sys_enter_recvfrom"),
    /// `syscalls:sys_exit_recvfrom`: `addr` = return value (i64), and the reader:
    /// `addr2` = cgroup id, `arg0` = network namespace inode (0: unknown).
    SysExitRecvfrom = 19 => ("syscalls", "sys_exit_recvfrom"),
    /// `syscalls:sys_enter_recvmsg`: `arg0` = fd.
    SysEnterRecvmsg = 20 => ("syscalls", "sys_enter_recvmsg"),
    /// `syscalls:sys_exit_recvmsg`: `addr` = return value (i64), and the reader:
    /// `addr2` = cgroup id, `arg0` = network namespace inode (0: unknown).
    SysExitRecvmsg = 21 => ("syscalls", "sys_exit_recvmsg"),
    /// `syscalls:sys_enter_recvmmsg`: `arg0` = fd, `addr2` = vlen.
    SysEnterRecvmmsg = 22 => ("syscalls", "sys_enter_recvmmsg"),
    /// `syscalls:sys_exit_recvmmsg`: `addr` = return value (messages received), and the
    /// reader: `addr2` = cgroup id, `arg0` = network namespace inode (0: unknown).
    SysExitRecvmmsg = 23 => ("syscalls", "sys_exit_recvmmsg"),
    /// `syscalls:sys_enter_read`: `arg0` = fd, `addr2` = count.
    SysEnterRead = 24 => ("syscalls", "sys_enter_read"),
    /// `syscalls:sys_exit_read`: `addr` = return value (i64), and the reader:
    /// `addr2` = cgroup id, `arg0` = network namespace inode (0: unknown).
    SysExitRead = 25 => ("syscalls", "sys_exit_read"),
    /// `syscalls:sys_enter_readv`: `arg0` = fd, `addr2` = vlen.
    SysEnterReadv = 26 => ("syscalls", "sys_enter_readv"),
    /// `syscalls:sys_exit_readv`: `addr` = return value (i64), and the reader:
    /// `addr2` = cgroup id, `arg0` = network namespace inode (0: unknown).
    SysExitReadv = 27 => ("syscalls", "sys_exit_readv"),
    /// `tcp:tcp_probe` (a segment entering an established socket, in softirq or from the
    /// socket backlog in the reader's context): `addr` = skb, `addr2` = sock,
    /// `arg0` = data_len (payload, u16), `arg1` = sport << 16 | dport, `arg2` = family.
    TcpProbe = 28 => ("tcp", "tcp_probe"),
    /// `tcp:tcp_destroy_sock`: `addr` = sock. The socket's lifetime ends here.
    TcpDestroySock = 29 => ("tcp", "tcp_destroy_sock"),
    /// `tcp:tcp_rcv_space_adjust` (since Linux 4.17), emitted only outside the recv-family
    /// syscalls, whose reads `sock_recv_length` reports: TCP bytes consumed by `splice()`,
    /// `sendfile()` from a socket, a zero-copy receive, or io_uring's recv (which runs
    /// inside io_uring_enter, a wait syscall). `addr` =
    /// sock, `addr2` = `COPIED_SEQ_VALID | tcp_sock.copied_seq` after the consumption (0
    /// without BTF), `name` = the consuming task's comm.
    TcpRcvSpaceAdjust = 30 => ("tcp", "tcp_rcv_space_adjust"),
}

impl EventKind {
    /// The tracepoint's name, which is also the program's name and the `kind` string of the
    /// JSON output.
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
    /// Secondary 64-bit payload: a code location, a syscall size argument or a cgroup id.
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
// A ring buffer entry must not need more than 8-byte alignment.
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

/// [`Event::flags`] of a `NetifReceiveSkb` record that carries the packet's IP addresses
/// instead of its own fields, emitted just before the packet's record by the same program:
/// `addr` = skb, `name` = source address (IPv4 in the first 4 bytes), destination address
/// in `addr2` (bytes 0-7, little-endian memory order) then `arg0` and `arg1` (bytes 8-15),
/// `arg2` = IP version (4 or 6).
pub const FLAG_ADDRS: u8 = 2;

/// [`Event::flags`] of a NET_RX `SoftirqEntry` ring record that carries the run's raise
/// stamp in `addr2` instead of a `SoftirqRaise` event of its own (journey mode without
/// `--batched`: the raise program only notes the stamp, a ring reservation saved per run).
/// The ring reader unfolds it back into the raise event and the plain entry
/// (`source::ring::split_record`), so the engine, the sinks and recordings never see it.
pub const FLAG_RAISE: u8 = 4;

/// [`Event::flags`] of a `SockRecvLength` outside every recv-family syscall: in none (a
/// kernel socket user, io_uring's io-wq workers) or in a wait syscall (io_uring's recv, run
/// inside `io_uring_enter`). No recv-family exit will return these bytes: the read does.
pub const FLAG_OUTSIDE_SYSCALL: u8 = 8;

#[cfg(feature = "user")]
// SAFETY: Event is repr(C), has no padding (asserted above) and every bit pattern is valid.
unsafe impl aya::Pod for Event {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_numbered_one_to_count_in_order() {
        for (index, kind) in EventKind::ALL.iter().enumerate() {
            assert_eq!(
                *kind as usize,
                index + 1,
                "{kind:?}: values are 1..=KIND_COUNT"
            );
            assert_eq!(EventKind::from_u8(*kind as u8), Some(*kind));
        }
        assert_eq!(EventKind::from_u8(0), None);
        assert_eq!(EventKind::from_u8(KIND_COUNT as u8 + 1), None);
    }

    #[test]
    fn recording_values_never_change() {
        // The recording format stores these numbers: a renumbering breaks old recordings.
        assert_eq!(EventKind::IrqHandlerEntry as u8, 1);
        assert_eq!(EventKind::SkDataReady as u8, 10);
        assert_eq!(EventKind::SockRecvLength as u8, 17);
        assert_eq!(EventKind::SysExitReadv as u8, 27);
    }

    #[test]
    fn names_are_the_tracepoint_names() {
        assert_eq!(EventKind::NapiPoll.tracepoint(), ("napi", "napi_poll"));
        assert_eq!(EventKind::KfreeSkb.name(), "kfree_skb");
    }
}
