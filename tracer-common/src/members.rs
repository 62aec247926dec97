//! Kernel struct members the BTF tracepoint programs (tp_btf) read, located at start-up in
//! the running kernel's BTF and handed to the programs as the `MEMBERS` global
//! (`[u32; MEMBER_COUNT]`, [`crate::abi::NO_OFFSET`] where BTF lacks one).
//!
//! A tp_btf program receives the tracepoint's own arguments (`struct sk_buff *`,
//! `struct task_struct *`, ...) instead of the formatted record a classic tracepoint gets,
//! so what the record would have held is read from the structs. Each [`Member`] names one
//! field by its path through the kernel's structs; the offsets along the path are summed.
//! A program whose members are not all known is not loaded in its BTF form: its classic
//! tracepoint is attached instead.

use crate::EventKind;

/// One step of a member's path: a field of a struct, `(struct, field)`.
pub type Step = (&'static str, &'static str);

/// Where a member lies and what it must look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberSpec {
    /// Paths to try in order (a field that moved between kernel versions has two); the
    /// offsets of one path's steps add up to the member's offset in the first struct.
    pub paths: &'static [&'static [Step]],
    /// The size in bytes the program reads; BTF must agree.
    pub size: u32,
}

macro_rules! members {
    ($( $(#[$doc:meta])* $variant:ident = ($size:literal, [$($path:expr),+ $(,)?]) ),* $(,)?) => {
        /// Index into the `MEMBERS` global: one kernel struct field.
        #[repr(usize)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Member { $($(#[$doc])* $variant),* }

        /// Number of [`Member`]s, the length of the `MEMBERS` global.
        pub const MEMBER_COUNT: usize = [$(Member::$variant),*].len();

        impl Member {
            /// Every member in index order.
            pub const ALL: [Member; MEMBER_COUNT] = [$(Member::$variant),*];

            /// Where the member lies and its size.
            pub const fn spec(self) -> MemberSpec {
                match self {
                    $(Member::$variant => MemberSpec { paths: &[$($path),+], size: $size }),*
                }
            }
        }
    };
}

members! {
    /// `sk_buff.len`: bytes in the packet (netif_receive_skb's `len`).
    SkbLen = (4, [&[("sk_buff", "len")]]),
    /// `sk_buff.dev`: the device the packet arrived on.
    SkbDev = (8, [&[("sk_buff", "dev")]]),
    /// `sk_buff.data`: the current header (network header at netif_receive_skb, TCP header
    /// at tcp_probe).
    SkbData = (8, [&[("sk_buff", "data")]]),
    /// `sk_buff.napi_id` (in a union with `sender_cpu`).
    SkbNapiId = (4, [&[("sk_buff", "napi_id")]]),
    /// `sk_buff.queue_mapping`: the receive queue.
    SkbQueueMapping = (2, [&[("sk_buff", "queue_mapping")]]),
    /// `sk_buff.protocol`: the ethertype, big-endian.
    SkbProtocol = (2, [&[("sk_buff", "protocol")]]),
    /// `net_device.name`: IFNAMSIZ bytes.
    NetDevName = (16, [&[("net_device", "name")]]),
    /// `napi_struct.dev`: the NAPI instance's device (NULL for the per-CPU backlog).
    NapiDev = (8, [&[("napi_struct", "dev")]]),
    /// `task_struct.pid`: the thread id.
    TaskPid = (4, [&[("task_struct", "pid")]]),
    /// `task_struct.tgid`: the thread's process, for the `--pid` filter on a sched event's
    /// subject and prev.
    TaskTgid = (4, [&[("task_struct", "tgid")]]),
    /// `task_struct.prio`: the priority sched tracepoints report.
    TaskPrio = (4, [&[("task_struct", "prio")]]),
    /// `task_struct.comm`: TASK_COMM_LEN bytes.
    TaskComm = (16, [&[("task_struct", "comm")]]),
    /// `task_cpu(p)`: `thread_info.cpu` inside the task (THREAD_INFO_IN_TASK), else
    /// `task_struct.cpu`.
    TaskCpu = (4, [
        &[("task_struct", "thread_info"), ("thread_info", "cpu")],
        &[("task_struct", "cpu")],
    ]),
    /// `sock.sk_family` (`__sk_common.skc_family`).
    SockFamily = (2, [&[("sock", "__sk_common"), ("sock_common", "skc_family")]]),
    /// `sock.sk_protocol` (a plain u16 since Linux 5.6).
    SockProtocol = (2, [&[("sock", "sk_protocol")]]),
    /// `inet_sock.inet_sport`: the local port, big-endian.
    InetSport = (2, [&[("inet_sock", "inet_sport")]]),
    /// `sock.sk_dport` (`__sk_common.skc_dport`): the remote port, big-endian.
    SockDport = (2, [&[("sock", "__sk_common"), ("sock_common", "skc_dport")]]),
    /// `pt_regs.di` (x86-64): a syscall's first argument (the fd of the recv family).
    RegsDi = (8, [&[("pt_regs", "di")]]),
    /// `pt_regs.dx` (x86-64): a syscall's third argument (a size or a vector length).
    RegsDx = (8, [&[("pt_regs", "dx")]]),
    /// `pt_regs.orig_ax` (x86-64): the syscall's number, read at its exit.
    RegsOrigAx = (8, [&[("pt_regs", "orig_ax")]]),
    /// `pt_regs.ax` (x86-64): -ENOSYS in a syscall's entry frame until the call returns.
    RegsAx = (8, [&[("pt_regs", "ax")]]),
    /// `thread_info.status` inside the task (x86-64): `TS_COMPAT` marks a 32-bit syscall,
    /// whose numbers are not the 64-bit ones (classic syscall tracepoints skip those).
    TaskStatus = (4, [&[("task_struct", "thread_info"), ("thread_info", "status")]]),
}

/// The members the raw syscall programs read; all must be known (x86-64 kernel BTF) for
/// them to attach instead of the classic `syscalls:*` programs.
pub const RAW_SYSCALL_MEMBERS: [Member; 4] = [
    Member::RegsDi,
    Member::RegsDx,
    Member::RegsOrigAx,
    Member::TaskStatus,
];

/// What reading a task's standing in the traced syscalls from its entry frame needs
/// (`tracer_common::abi::SYSCALL_FROM_REGS`): the frame's syscall number and `ax`, the
/// task's compat status; all must be known, else the entry program marks each entry.
pub const ENTRY_FRAME_MEMBERS: [Member; 3] =
    [Member::RegsOrigAx, Member::RegsAx, Member::TaskStatus];

/// The BTF tracepoint (tp_btf) form of a kind's program: its name in the object and the
/// members it reads. Classic-only kinds (the syscall tracepoints) have none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BtfForm {
    /// The program's name in the eBPF object.
    pub program: &'static str,
    /// The members it reads: all must be known for it to load.
    pub members: &'static [Member],
}

impl EventKind {
    /// The BTF tracepoint form of this kind's program, if it has one.
    pub const fn btf_form(self) -> Option<BtfForm> {
        use Member::*;
        const WAKE: &[Member] = &[TaskPid, TaskTgid, TaskPrio, TaskComm, TaskCpu];
        const SKB_DEV: &[Member] = &[SkbLen, SkbDev, NetDevName];
        const SOCK: &[Member] = &[SockFamily, SockProtocol];
        let (program, members): (&str, &[Member]) = match self {
            EventKind::IrqHandlerEntry => ("irq_handler_entry_btf", &[]),
            EventKind::IrqHandlerExit => ("irq_handler_exit_btf", &[]),
            EventKind::SoftirqRaise => ("softirq_raise_btf", &[]),
            EventKind::SoftirqEntry => ("softirq_entry_btf", &[]),
            EventKind::SoftirqExit => ("softirq_exit_btf", &[]),
            EventKind::NapiPoll => ("napi_poll_btf", &[NapiDev, NetDevName]),
            EventKind::NetifReceiveSkb => (
                "netif_receive_skb_btf",
                &[SkbLen, SkbDev, NetDevName, SkbData],
            ),
            EventKind::NetifRx => ("netif_rx_btf", SKB_DEV),
            EventKind::NapiGroReceiveEntry => (
                "napi_gro_receive_entry_btf",
                &[SkbLen, SkbDev, NetDevName, SkbNapiId, SkbQueueMapping],
            ),
            EventKind::SkDataReady => ("sk_data_ready_btf", SOCK),
            EventKind::SchedWaking => ("sched_waking_btf", WAKE),
            EventKind::SchedWakeup => ("sched_wakeup_btf", WAKE),
            EventKind::SchedSwitch => {
                ("sched_switch_btf", &[TaskPid, TaskTgid, TaskPrio, TaskComm])
            }
            EventKind::SkbCopyDatagramIovec => ("skb_copy_datagram_iovec_btf", &[]),
            EventKind::KfreeSkb => ("kfree_skb_btf", &[SkbProtocol]),
            EventKind::ConsumeSkb => ("consume_skb_btf", &[]),
            EventKind::SockRecvLength => ("sock_recv_length_btf", SOCK),
            EventKind::TcpProbe => (
                "tcp_probe_btf",
                &[SkbLen, SkbData, SockFamily, InetSport, SockDport],
            ),
            EventKind::TcpDestroySock => ("tcp_destroy_sock_btf", &[]),
            EventKind::TcpRcvSpaceAdjust => ("tcp_rcv_space_adjust_btf", &[]),
            _ => return None,
        };
        Some(BtfForm { program, members })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_member_has_a_path_and_a_readable_size() {
        for member in Member::ALL {
            let spec = member.spec();
            assert!(!spec.paths.is_empty() && spec.paths.iter().all(|p| !p.is_empty()));
            assert!(matches!(spec.size, 2 | 4 | 8 | 16), "{member:?}");
        }
    }
}
