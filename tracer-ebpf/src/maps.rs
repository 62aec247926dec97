//! The maps shared with user space (`tracer_common::abi` names them) and the accessors of
//! the two task maps.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use tracer_common::{LostCounter, abi::recv_tasks::OUTSIDE};

use crate::{batch::CpuBatches, flow::HeldContext};

/// Every event, in one ring buffer (size set by user space).
#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);

/// Per-CPU count of events lost to a full ring buffer, and how many were flagged.
#[map]
pub(crate) static LOST: PerCpuArray<LostCounter> = PerCpuArray::with_max_entries(1, 0);

/// Per thread id (an array sized to kernel.pid_max by user space): `INSIDE` while the thread
/// is inside a recv-family syscall, `WAITING` in a wait syscall, `OUTSIDE` outside
/// (`READ_SOCKET` once the call read a socket): the tasks a packet can wake. With
/// `SYSCALL_FROM_REGS` no entry is marked, only `READ_SOCKET` (`stands`). Journey mode keeps sched events only for
/// those inside. An array, not a hash: its lookup is inlined by the verifier, and several
/// run per packet.
#[map]
pub(crate) static RECV_TASKS: Array<u8> = Array::with_max_entries(1 << 22, 0);

/// Threads of the `--pid` process: a sched event whose subject (the woken task, the task
/// switched in) is one of them is kept even when another task is current.
#[map]
pub(crate) static FILTER_TIDS: HashMap<u32, u8> = HashMap::with_max_entries(4096, 0);

/// With a flow filter: the skbs it selected (until they are freed), so that their later
/// events (tcp_probe, the copy to the reader, the free) are kept.
#[map]
pub(crate) static FLOW_SKBS: LruHashMap<u64, u8> = LruHashMap::with_max_entries(16384, 0);

/// With a flow filter: the sockets a selected packet was queued on; their reads are kept.
#[map]
pub(crate) static FLOW_SOCKS: LruHashMap<u64, u8> = LruHashMap::with_max_entries(8192, 0);

/// With a flow filter: threads woken by a selected packet or reading a selected socket;
/// their switches onto a CPU are kept.
#[map]
pub(crate) static FLOW_TASKS: LruHashMap<u32, u8> = LruHashMap::with_max_entries(8192, 0);

/// With a flow filter: per CPU, the interrupt context held back until a selected packet
/// needs it (`flow::HeldContext`).
#[map]
pub(crate) static FLOW_CONTEXT: PerCpuArray<HeldContext> = PerCpuArray::with_max_entries(1, 0);

/// Journey mode without `BATCHING` or a flow filter: per CPU, the stamp of the first NET_RX
/// raise since the CPU's last NET_RX softirq_entry (0: none), which that entry carries
/// (`FLAG_RAISE`) instead of a raise event of its own.
#[map]
pub(crate) static NET_RX_RAISE: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// With `BATCHING`: per CPU, the events waiting for the end of a NET_RX run or of a
/// reader's syscall (`batch`).
#[map]
pub(crate) static BATCHES: PerCpuArray<CpuBatches> = PerCpuArray::with_max_entries(1, 0);

/// Whether a thread is in `FILTER_TIDS`.
#[inline(always)]
pub(crate) fn filtered_tid(tid: u32) -> bool {
    // SAFETY: a read-only lookup of a plain u8 value.
    unsafe { FILTER_TIDS.get(&tid).is_some() }
}

/// Sets a thread's `RECV_TASKS` value; returns the value it had.
#[inline(always)]
pub(crate) fn set_reading(tid: u32, value: u8) -> u8 {
    match RECV_TASKS.get_ptr_mut(tid) {
        // SAFETY: a u8 in a map value, written only by its own thread's programs.
        Some(slot) => unsafe {
            let was = *slot;
            *slot = value;
            was
        },
        None => OUTSIDE,
    }
}

/// Sets the current thread's `RECV_TASKS` value to `OUTSIDE`; returns the value it had.
#[inline(always)]
pub(crate) fn take_reading(tid: u32) -> u8 {
    set_reading(tid, OUTSIDE)
}
