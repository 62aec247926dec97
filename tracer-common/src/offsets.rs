//! Tracepoint field offsets, read at start-up from tracefs `format` files and handed to the
//! eBPF programs as the `OFFSETS` global (`[u16; SLOT_COUNT]`), so nothing kernel-specific
//! is compiled into the programs.
//!
//! Each [`Slot`] names one field of one tracepoint. The eBPF side reads
//! `OFFSETS[Slot::X as usize]`; user space fills the array from the parsed formats.

/// Offset value meaning "this optional field does not exist on this kernel": the program
/// then leaves the payload field at zero.
pub const ABSENT: u16 = u16::MAX;

/// How a field is stored in the tracepoint record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// A plain integer or pointer of this many bytes.
    Int(u8),
    /// A `__data_loc char[]` string: a u32 holding (length << 16 | offset in the record).
    DataLoc,
    /// An inline `char[16]` array (task comm).
    Comm,
}

/// One field that a program reads: which tracepoint, which field, its expected type, and
/// whether the program can live without it (older kernels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    /// Tracepoint category, e.g. `sched`.
    pub category: &'static str,
    /// Tracepoint name, e.g. `sched_switch`.
    pub tracepoint: &'static str,
    /// Field name in the format file, e.g. `prev_state`.
    pub field: &'static str,
    /// Expected storage.
    pub ty: FieldType,
    /// `true` if a missing field only zeroes the payload instead of disabling the tracepoint.
    pub optional: bool,
}

macro_rules! slots {
    ($( $variant:ident = ($cat:literal, $tp:literal, $field:literal, $ty:expr, $opt:literal) ),* $(,)?) => {
        /// Index into the `OFFSETS` global: one tracepoint field.
        #[repr(usize)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Slot { $($variant),* }

        /// Number of [`Slot`]s, the length of the `OFFSETS` global.
        pub const SLOT_COUNT: usize = [$(Slot::$variant),*].len();

        impl Slot {
            /// Every slot in index order.
            pub const ALL: [Slot; SLOT_COUNT] = [$(Slot::$variant),*];

            /// The field this slot holds the offset of.
            pub const fn spec(self) -> FieldSpec {
                match self {
                    $(Slot::$variant => FieldSpec {
                        category: $cat,
                        tracepoint: $tp,
                        field: $field,
                        ty: $ty,
                        optional: $opt,
                    }),*
                }
            }
        }
    };
}

use FieldType::{Comm, DataLoc, Int};

slots! {
    IrqEntryIrq = ("irq", "irq_handler_entry", "irq", Int(4), false),
    IrqExitIrq = ("irq", "irq_handler_exit", "irq", Int(4), false),
    IrqExitRet = ("irq", "irq_handler_exit", "ret", Int(4), true),
    SoftirqRaiseVec = ("irq", "softirq_raise", "vec", Int(4), false),
    SoftirqEntryVec = ("irq", "softirq_entry", "vec", Int(4), false),
    SoftirqExitVec = ("irq", "softirq_exit", "vec", Int(4), false),
    NapiPollNapi = ("napi", "napi_poll", "napi", Int(8), false),
    NapiPollDev = ("napi", "napi_poll", "dev_name", DataLoc, false),
    NapiPollWork = ("napi", "napi_poll", "work", Int(4), false),
    NapiPollBudget = ("napi", "napi_poll", "budget", Int(4), false),
    RecvSkbAddr = ("net", "netif_receive_skb", "skbaddr", Int(8), false),
    RecvSkbLen = ("net", "netif_receive_skb", "len", Int(4), false),
    RecvSkbDev = ("net", "netif_receive_skb", "name", DataLoc, false),
    NetifRxAddr = ("net", "netif_rx", "skbaddr", Int(8), false),
    NetifRxLen = ("net", "netif_rx", "len", Int(4), false),
    NetifRxDev = ("net", "netif_rx", "name", DataLoc, false),
    GroDev = ("net", "napi_gro_receive_entry", "name", DataLoc, false),
    GroNapiId = ("net", "napi_gro_receive_entry", "napi_id", Int(4), true),
    GroQueue = ("net", "napi_gro_receive_entry", "queue_mapping", Int(2), true),
    GroSkbAddr = ("net", "napi_gro_receive_entry", "skbaddr", Int(8), false),
    GroLen = ("net", "napi_gro_receive_entry", "len", Int(4), false),
    DataReadySk = ("sock", "sk_data_ready", "skaddr", Int(8), false),
    DataReadyFamily = ("sock", "sk_data_ready", "family", Int(2), true),
    DataReadyProtocol = ("sock", "sk_data_ready", "protocol", Int(2), true),
    WakingComm = ("sched", "sched_waking", "comm", Comm, false),
    WakingPid = ("sched", "sched_waking", "pid", Int(4), false),
    WakingPrio = ("sched", "sched_waking", "prio", Int(4), true),
    WakingCpu = ("sched", "sched_waking", "target_cpu", Int(4), true),
    WakeupComm = ("sched", "sched_wakeup", "comm", Comm, false),
    WakeupPid = ("sched", "sched_wakeup", "pid", Int(4), false),
    WakeupPrio = ("sched", "sched_wakeup", "prio", Int(4), true),
    WakeupCpu = ("sched", "sched_wakeup", "target_cpu", Int(4), true),
    SwitchPrevPid = ("sched", "sched_switch", "prev_pid", Int(4), false),
    SwitchPrevState = ("sched", "sched_switch", "prev_state", Int(8), false),
    SwitchNextComm = ("sched", "sched_switch", "next_comm", Comm, false),
    SwitchNextPid = ("sched", "sched_switch", "next_pid", Int(4), false),
    SwitchNextPrio = ("sched", "sched_switch", "next_prio", Int(4), true),
    CopySkbAddr = ("skb", "skb_copy_datagram_iovec", "skbaddr", Int(8), false),
    CopyLen = ("skb", "skb_copy_datagram_iovec", "len", Int(4), false),
    KfreeSkbAddr = ("skb", "kfree_skb", "skbaddr", Int(8), false),
    KfreeLocation = ("skb", "kfree_skb", "location", Int(8), true),
    KfreeProtocol = ("skb", "kfree_skb", "protocol", Int(2), true),
    KfreeReason = ("skb", "kfree_skb", "reason", Int(4), true),
    ConsumeSkbAddr = ("skb", "consume_skb", "skbaddr", Int(8), false),
    ConsumeLocation = ("skb", "consume_skb", "location", Int(8), true),
    RecvLenSk = ("sock", "sock_recv_length", "sk", Int(8), false),
    RecvLenFamily = ("sock", "sock_recv_length", "family", Int(2), true),
    RecvLenProtocol = ("sock", "sock_recv_length", "protocol", Int(2), true),
    RecvLenRet = ("sock", "sock_recv_length", "ret", Int(4), false),
    RecvLenFlags = ("sock", "sock_recv_length", "flags", Int(4), true),
    EnterRecvfromFd = ("syscalls", "sys_enter_recvfrom", "fd", Int(8), false),
    EnterRecvfromSize = ("syscalls", "sys_enter_recvfrom", "size", Int(8), true),
    ExitRecvfromRet = ("syscalls", "sys_exit_recvfrom", "ret", Int(8), false),
    EnterRecvmsgFd = ("syscalls", "sys_enter_recvmsg", "fd", Int(8), false),
    ExitRecvmsgRet = ("syscalls", "sys_exit_recvmsg", "ret", Int(8), false),
    EnterRecvmmsgFd = ("syscalls", "sys_enter_recvmmsg", "fd", Int(8), false),
    EnterRecvmmsgVlen = ("syscalls", "sys_enter_recvmmsg", "vlen", Int(8), true),
    ExitRecvmmsgRet = ("syscalls", "sys_exit_recvmmsg", "ret", Int(8), false),
    EnterReadFd = ("syscalls", "sys_enter_read", "fd", Int(8), false),
    EnterReadCount = ("syscalls", "sys_enter_read", "count", Int(8), true),
    ExitReadRet = ("syscalls", "sys_exit_read", "ret", Int(8), false),
    EnterReadvFd = ("syscalls", "sys_enter_readv", "fd", Int(8), false),
    EnterReadvVlen = ("syscalls", "sys_enter_readv", "vlen", Int(8), true),
    ExitReadvRet = ("syscalls", "sys_exit_readv", "ret", Int(8), false),
    TcpProbeSkb = ("tcp", "tcp_probe", "skbaddr", Int(8), false),
    TcpProbeSk = ("tcp", "tcp_probe", "skaddr", Int(8), false),
    TcpProbeDataLen = ("tcp", "tcp_probe", "data_len", Int(2), false),
    TcpProbeSport = ("tcp", "tcp_probe", "sport", Int(2), true),
    TcpProbeDport = ("tcp", "tcp_probe", "dport", Int(2), true),
    TcpProbeFamily = ("tcp", "tcp_probe", "family", Int(2), true),
    DestroySk = ("tcp", "tcp_destroy_sock", "skaddr", Int(8), false),
    RcvSpaceSk = ("tcp", "tcp_rcv_space_adjust", "skaddr", Int(8), false),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventKind;

    #[test]
    fn every_slot_is_a_field_of_a_traced_tracepoint() {
        // User space reads the formats of EventKind tracepoints only: a slot of any other
        // tracepoint would stay ABSENT.
        for slot in Slot::ALL {
            let spec = slot.spec();
            assert!(
                EventKind::ALL
                    .iter()
                    .any(|kind| kind.tracepoint() == (spec.category, spec.tracepoint)),
                "{slot:?}: {}:{} is no EventKind's tracepoint",
                spec.category,
                spec.tracepoint
            );
        }
    }
}
