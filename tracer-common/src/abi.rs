//! The kernel/user contract in one place: the names user space looks up in the eBPF object
//! (maps, globals, programs), the values the two sides exchange through them, and the
//! syscalls traced.
//!
//! The eBPF side cannot name a static or a program after a `const` (the symbol is the Rust
//! identifier), so `tracer-ebpf` spells these names once more as identifiers; the test
//! `tracer/tests/abi.rs` checks every name here against the built object. A record of the
//! `EVENTS` ring buffer is one or more [`crate::Event`]s (`event.rs`) back to back: a whole
//! number of `EVENT_SIZE` bytes.

// Maps (tracer-ebpf/src/maps.rs).

/// Ring buffer of [`crate::Event`]s; user space sets its size.
pub const EVENTS: &str = "EVENTS";
/// Per-CPU array of one [`LostCounter`]: events lost to a full ring buffer.
pub const LOST: &str = "LOST";
/// Array indexed by tid, of `u8`: where each thread stands in a recv-family or wait syscall
/// ([`recv_tasks`] values). User space sizes it to kernel.pid_max at load (at most
/// [`RECV_TASKS_MAX`]): an array lookup is a few inlined instructions where a hash lookup
/// cost 150-200 ns on a cold cache, and every packet made about eight. A thread created
/// after pid_max was raised above the array is not tracked (its reads have no wakeup stage).
pub const RECV_TASKS: &str = "RECV_TASKS";

/// The largest `RECV_TASKS` (PID_MAX_LIMIT on 64-bit: 4 M threads, 32 MiB of map).
pub const RECV_TASKS_MAX: u32 = 1 << 22;
/// Hash tid -> `1`: the threads of the `--pid` process.
pub const FILTER_TIDS: &str = "FILTER_TIDS";

/// Every map user space looks up.
pub const MAP_NAMES: [&str; 4] = [EVENTS, LOST, RECV_TASKS, FILTER_TIDS];

// Globals, set by user space before load (tracer-ebpf/src/globals.rs).

/// `[u16; SLOT_COUNT]`: tracepoint field offsets, indexed by [`crate::Slot`].
pub const OFFSETS: &str = "OFFSETS";
/// `u32`: keep only this tgid's events (0: every process).
pub const FILTER_TGID: &str = "FILTER_TGID";
/// `[u32; IGNORE_SLOTS]`: processes never traced (0: unused slot).
pub const IGNORE_TGIDS: &str = "IGNORE_TGIDS";
/// `u32`: 1 in journey mode (`tracer live`), 0 in event mode.
pub const JOURNEY_MODE: &str = "JOURNEY_MODE";
/// `u32`: keep only this CPU's events ([`ANY_CPU`]: every CPU).
pub const FILTER_CPU: &str = "FILTER_CPU";
/// `u32`: 1 when `sock:sock_recv_length` is attached (emit only socket-reading exits).
pub const SOCKET_READS_ONLY: &str = "SOCKET_READS_ONLY";
/// `u32`: 1 when `NET_IRQS` is filled.
pub const NET_IRQ_FILTER: &str = "NET_IRQ_FILTER";
/// `[u64; NET_IRQ_WORDS]`: bitmap of the network devices' IRQ numbers.
pub const NET_IRQS: &str = "NET_IRQS";
/// `u32`: each CPU wakes the ring buffer's reader once per this many bytes it writes (0:
/// every event).
pub const WAKEUP_BYTES: &str = "WAKEUP_BYTES";

/// `u32`: 1 when a NET_RX softirq run's events, and a reader's from its switch onto a CPU
/// to its syscall's exit, go out as one record each (`--batched`, in journey mode without a
/// flow filter; softirq_entry and exit attached before the raise, every traced syscall's
/// exit attached).
pub const BATCHING: &str = "BATCHING";

/// `u32`: 1 in journey mode on the raw syscall programs when the entry frame's members are
/// known ([`crate::members::ENTRY_FRAME_MEMBERS`]): whether a task is inside a traced
/// syscall is read from its saved registers at its wakeup (kept in `RECV_TASKS` until the
/// syscall's exit) or at a socket read that did not sleep, and `raw_syscalls:sys_enter` is
/// not attached. 0: the entry programs mark each entry in `RECV_TASKS`.
pub const SYSCALL_FROM_REGS: &str = "SYSCALL_FROM_REGS";

/// `u32`: what every program does before anything else, for the bench's
/// measure of the least a program costs on this host (`tracer live --bench-floor`):
/// [`bench_floor::OFF`] normally (then the test is one load from `.rodata` and a branch).
pub const BENCH_FLOOR: &str = "BENCH_FLOOR";

/// Values of `BENCH_FLOOR`.
pub mod bench_floor {
    /// The programs run as they are.
    pub const OFF: u32 = 0;
    /// Every program returns at once: the cost of being attached.
    pub const EMPTY: u32 = 1;
    /// Every program reads the clock (as each event's stamp does) and returns.
    pub const CLOCK: u32 = 2;
}

/// `u32`: offset of `struct sk_buff.data` from kernel BTF ([`NO_OFFSET`]: unknown); the
/// netif_receive_skb program then reads the packet's IP and transport headers.
pub const SKB_DATA_OFF: &str = "SKB_DATA_OFF";
/// `u32`: offset of `struct tcp_sock.copied_seq` from kernel BTF ([`NO_OFFSET`]: unknown);
/// the sock_recv_length program then reports the socket's read point.
pub const TCP_COPIED_SEQ_OFF: &str = "TCP_COPIED_SEQ_OFF";

/// `[FlowOp; MAX_FLOW_OPS]`: the compiled flow filter ([`crate::flow`]).
pub const FLOW_OPS: &str = "FLOW_OPS";
/// `u32`: operations in `FLOW_OPS`; 0 = no flow filter (every packet is selected).
pub const FLOW_LEN: &str = "FLOW_LEN";
/// `u32`: offset of `struct task_struct.nsproxy` from kernel BTF ([`NO_OFFSET`]: unknown);
/// with the next two, the recv-family exits report the reader's network namespace.
pub const TASK_NSPROXY_OFF: &str = "TASK_NSPROXY_OFF";
/// `u32`: offset of `struct nsproxy.net_ns` from kernel BTF ([`NO_OFFSET`]: unknown).
pub const NSPROXY_NET_NS_OFF: &str = "NSPROXY_NET_NS_OFF";
/// `u32`: offset of the namespace inode in `struct net` (`net.ns` + `ns_common.inum`) from
/// kernel BTF ([`NO_OFFSET`]: unknown).
pub const NET_NS_INUM_OFF: &str = "NET_NS_INUM_OFF";

/// `[u8; SYSCALL_SLOTS]`, indexed by syscall number: what the raw syscall programs
/// (`sys_enter_btf`, `sys_exit_btf` on `raw_syscalls:sys_enter`/`sys_exit`) do for it
/// ([`syscall_slot`] values). All zero when the classic `syscalls:*` programs are attached.
pub const SYSCALL_KINDS: &str = "SYSCALL_KINDS";

/// The raw syscall entry program, `(program, raw tracepoint)`: it marks a task's entry
/// into a traced syscall in `RECV_TASKS`. Left out where a task's entry frame is read
/// instead (`SYSCALL_FROM_REGS`).
pub const RAW_SYS_ENTER: (&str, &str) = ("sys_enter_btf", "sys_enter");

/// The raw syscall exit program, `(program, raw tracepoint)`.
pub const RAW_SYS_EXIT: (&str, &str) = ("sys_exit_btf", "sys_exit");

/// The raw syscall programs, `(program, raw tracepoint)`: they take the traced syscalls
/// over from the classic `syscalls:*` programs where they can (`SYSCALL_KINDS`).
pub const RAW_SYSCALL_PROGRAMS: [(&str, &str); 2] = [RAW_SYS_ENTER, RAW_SYS_EXIT];

/// Entries of `SYSCALL_KINDS`: every traced syscall's number is below it (441 is the
/// largest, epoll_pwait2).
pub const SYSCALL_SLOTS: usize = 512;

/// Values of `SYSCALL_KINDS`.
pub mod syscall_slot {
    /// Not traced (the kernel's other syscalls).
    pub const UNTRACED: u8 = 0;
    /// A wait syscall (poll, select, epoll): tracked only, as its classic programs do.
    pub const WAIT: u8 = u8::MAX;
    // Any other value: a recv-family syscall, its `sys_enter_*` [`crate::EventKind`]; the
    // exit's kind is the next value.
}

/// `[u32; MEMBER_COUNT]`: kernel struct member offsets from BTF, indexed by
/// [`crate::Member`] ([`NO_OFFSET`]: unknown), for the BTF tracepoint programs.
pub const MEMBERS: &str = "MEMBERS";

/// A struct offset global's value when BTF did not give the field.
pub const NO_OFFSET: u32 = u32::MAX;

/// Every global user space sets.
pub const GLOBAL_NAMES: [&str; 21] = [
    OFFSETS,
    BENCH_FLOOR,
    SYSCALL_FROM_REGS,
    FILTER_TGID,
    IGNORE_TGIDS,
    JOURNEY_MODE,
    FILTER_CPU,
    SOCKET_READS_ONLY,
    NET_IRQ_FILTER,
    NET_IRQS,
    WAKEUP_BYTES,
    BATCHING,
    SKB_DATA_OFF,
    TCP_COPIED_SEQ_OFF,
    FLOW_OPS,
    FLOW_LEN,
    TASK_NSPROXY_OFF,
    NSPROXY_NET_NS_OFF,
    NET_NS_INUM_OFF,
    MEMBERS,
    SYSCALL_KINDS,
];

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
/// `addr2` bits 0-31 the TCP sequence number of the first payload byte, bits 32-47 the
/// source port, bits 48-63 the destination port (TCP and UDP).
pub const HDR_VALID: u32 = 1 << 24;

/// `NetifReceiveSkb.arg1` bit, with [`HDR_VALID`]: the packet is an IP fragment (IPv4 more
/// fragments or a fragment offset; an IPv6 fragment header right after the fixed header,
/// whose next header is then the protocol). Its transport header is not (all) there: no
/// ports, no sequence number, and `arg2` is the fragment's own IP payload, not the
/// datagram's. The kernel reassembles the datagram into the skb of the fragment that
/// completed it.
pub const HDR_FRAGMENT: u32 = 1 << 25;

/// `SockRecvLength.addr2` bit 32: bits 0-31 hold the TCP socket's `copied_seq` after the
/// read (kernel BTF gave `tcp_sock.copied_seq`): every byte before it has been read.
pub const COPIED_SEQ_VALID: u64 = 1 << 32;

/// NET_RX_SOFTIRQ, the softirq vector of packet reception (include/linux/interrupt.h).
pub const NET_RX_SOFTIRQ: u32 = 3;

/// `RECV_TASKS` values: where a thread stands in a recv-family or wait syscall.
pub mod recv_tasks {
    /// Outside any tracked syscall.
    pub const OUTSIDE: u8 = 0;
    /// Inside a recv-family one (with entry marks, user space also marks threads already
    /// blocked in one at start-up).
    pub const INSIDE: u8 = 1;
    /// Inside a recv-family one that has read a socket (`sock:sock_recv_length` fired).
    pub const READ_SOCKET: u8 = 2;
    /// Inside a wait syscall (poll, select, epoll, io_uring_enter): a packet can wake the
    /// thread, but no exit of it returns one. A socket read inside one (io_uring's recv, run
    /// in io_uring_enter) returns its bytes itself (`FLAG_OUTSIDE_SYSCALL`).
    pub const WAITING: u8 = 3;
}

/// Per-CPU value of the `LOST` map: events lost to a full ring buffer, how many of those
/// have been flagged on a later event (`FLAG_LOST_BEFORE`), and the bytes this CPU wrote
/// into the ring (what its forced wakeups are paced by, `WAKEUP_BYTES`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LostCounter {
    /// Reserve failures on this CPU.
    pub lost: u64,
    /// `lost` as of the last event that carried `FLAG_LOST_BEFORE`.
    pub reported: u64,
    /// Bytes of records this CPU submitted, ring headers included.
    pub written: u64,
}

#[cfg(feature = "user")]
// SAFETY: three u64s, no padding, every bit pattern valid.
unsafe impl aya::Pod for LostCounter {}

/// What the programs of a traced syscall do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallRole {
    /// recv family: emit events (these [`crate::EventKind`]s) and track `RECV_TASKS`.
    Recv {
        /// Kind of the `sys_enter_*` program.
        enter: crate::EventKind,
        /// Kind of the `sys_exit_*` program.
        exit: crate::EventKind,
    },
    /// Wait syscalls (poll, select, epoll): only track `RECV_TASKS`, attached in journey
    /// mode. A reader blocked in them is woken by a packet just like one blocked in recv().
    Wait,
}

/// One syscall the programs trace at `syscalls:sys_enter_<name>` and `sys_exit_<name>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TracedSyscall {
    /// Syscall name, e.g. `recvfrom`.
    pub name: &'static str,
    /// Program (and tracepoint) at entry: `sys_enter_<name>`.
    pub enter: &'static str,
    /// Program (and tracepoint) at exit: `sys_exit_<name>`.
    pub exit: &'static str,
    /// Recv family or wait.
    pub role: SyscallRole,
    /// Syscall number on x86_64 (asm/unistd_64.h).
    pub nr_x86_64: Option<u64>,
    /// Syscall number on aarch64 (asm-generic/unistd.h); `None`: no such syscall there.
    pub nr_aarch64: Option<u64>,
}

impl TracedSyscall {
    /// Syscall number on the architecture this is compiled for (`None` on others).
    pub const fn number(&self) -> Option<u64> {
        if cfg!(target_arch = "x86_64") {
            self.nr_x86_64
        } else if cfg!(target_arch = "aarch64") {
            self.nr_aarch64
        } else {
            None
        }
    }
}

macro_rules! traced_syscalls {
    ($( $name:ident: $role:expr, x86_64 $x86:expr, aarch64 $arm:expr; )*) => {
        /// Every traced syscall: the recv family first, then the wait syscalls.
        pub const TRACED_SYSCALLS: [TracedSyscall; [$(stringify!($name)),*].len()] = [$(
            TracedSyscall {
                name: stringify!($name),
                enter: concat!("sys_enter_", stringify!($name)),
                exit: concat!("sys_exit_", stringify!($name)),
                role: $role,
                nr_x86_64: $x86,
                nr_aarch64: $arm,
            },
        )*];
    };
}

use crate::EventKind as K;
use SyscallRole::Wait;

const fn recv(enter: K, exit: K) -> SyscallRole {
    SyscallRole::Recv { enter, exit }
}

traced_syscalls! {
    recvfrom: recv(K::SysEnterRecvfrom, K::SysExitRecvfrom), x86_64 Some(45), aarch64 Some(207);
    recvmsg: recv(K::SysEnterRecvmsg, K::SysExitRecvmsg), x86_64 Some(47), aarch64 Some(212);
    recvmmsg: recv(K::SysEnterRecvmmsg, K::SysExitRecvmmsg), x86_64 Some(299), aarch64 Some(243);
    read: recv(K::SysEnterRead, K::SysExitRead), x86_64 Some(0), aarch64 Some(63);
    readv: recv(K::SysEnterReadv, K::SysExitReadv), x86_64 Some(19), aarch64 Some(65);
    poll: Wait, x86_64 Some(7), aarch64 None;
    ppoll: Wait, x86_64 Some(271), aarch64 Some(73);
    select: Wait, x86_64 Some(23), aarch64 None;
    pselect6: Wait, x86_64 Some(270), aarch64 Some(72);
    epoll_wait: Wait, x86_64 Some(232), aarch64 None;
    epoll_pwait: Wait, x86_64 Some(281), aarch64 Some(22);
    epoll_pwait2: Wait, x86_64 Some(441), aarch64 Some(441);
    io_uring_enter: Wait, x86_64 Some(426), aarch64 Some(426);
}

/// The programs of the wait syscalls, each `sys_enter_*` before its `sys_exit_*`.
pub fn wait_programs() -> impl Iterator<Item = &'static str> {
    TRACED_SYSCALLS
        .iter()
        .filter(|syscall| syscall.role == Wait)
        .flat_map(|syscall| [syscall.enter, syscall.exit])
}

/// The traced syscall numbered `nr` on this architecture, if any (a thread blocked in it
/// now may be a packet's reader).
pub fn traced_syscall(nr: u64) -> Option<&'static TracedSyscall> {
    TRACED_SYSCALLS
        .iter()
        .find(|syscall| syscall.number() == Some(nr))
}

/// The `RECV_TASKS` value of a thread blocked in traced syscall `syscall` now.
pub fn recv_tasks_value(syscall: &TracedSyscall) -> u8 {
    match syscall.role {
        SyscallRole::Recv { .. } => recv_tasks::INSIDE,
        Wait => recv_tasks::WAITING,
    }
}

/// Every program user space attaches by name: one per [`crate::EventKind`], then the wait
/// syscalls' programs.
pub fn program_names() -> impl Iterator<Item = &'static str> {
    crate::EventKind::ALL
        .iter()
        .map(|kind| kind.name())
        .chain(wait_programs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recv_syscalls_are_their_event_kinds() {
        for syscall in TRACED_SYSCALLS {
            if let SyscallRole::Recv { enter, exit } = syscall.role {
                assert_eq!(enter.tracepoint(), ("syscalls", syscall.enter));
                assert_eq!(exit.tracepoint(), ("syscalls", syscall.exit));
            }
        }
    }

    #[test]
    fn a_recv_syscall_exit_kind_follows_its_enter_kind() {
        // SYSCALL_KINDS holds the enter kind only; the raw exit program adds one.
        for syscall in TRACED_SYSCALLS {
            if let SyscallRole::Recv { enter, exit } = syscall.role {
                assert_eq!(exit as u8, enter as u8 + 1, "{}", syscall.name);
                assert!(enter as u8 != syscall_slot::UNTRACED && exit as u8 != syscall_slot::WAIT);
            }
            if let Some(nr) = syscall
                .nr_x86_64
                .into_iter()
                .chain(syscall.nr_aarch64)
                .max()
            {
                assert!(nr < SYSCALL_SLOTS as u64, "{}", syscall.name);
            }
        }
    }

    #[test]
    fn every_syscall_kind_is_a_traced_syscall() {
        for kind in crate::EventKind::ALL {
            if kind.tracepoint().0 == "syscalls" {
                assert!(
                    TRACED_SYSCALLS.iter().any(
                        |s| s.role != Wait && (s.enter == kind.name() || s.exit == kind.name())
                    ),
                    "{kind:?}"
                );
            }
        }
    }

    #[test]
    fn wait_programs_in_attach_order() {
        let mut programs = wait_programs();
        assert_eq!(programs.next(), Some("sys_enter_poll"));
        assert_eq!(programs.next(), Some("sys_exit_poll"));
        assert_eq!(programs.last(), Some("sys_exit_io_uring_enter"));
        assert_eq!(wait_programs().count(), 16);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x86_64_numbers() {
        // recvfrom recvmsg recvmmsg read readv, then poll select epoll_wait ppoll pselect6
        // epoll_pwait epoll_pwait2 io_uring_enter
        let value = |nr| traced_syscall(nr).map(recv_tasks_value);
        for nr in [45, 47, 299, 0, 19] {
            assert_eq!(value(nr), Some(recv_tasks::INSIDE), "{nr}");
        }
        for nr in [7, 23, 232, 271, 270, 281, 441, 426] {
            assert_eq!(value(nr), Some(recv_tasks::WAITING), "{nr}");
        }
        assert!(traced_syscall(1).is_none(), "write");
    }
}
