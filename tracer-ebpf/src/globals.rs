//! Read-only globals that user space sets before load (`tracer_common::abi` names them),
//! and the volatile reads that keep the compiler from folding their defaults.

use tracer_common::{
    ANY_CPU, IGNORE_SLOTS, MEMBER_COUNT, Member, NET_IRQ_WORDS, SLOT_COUNT, Slot,
    abi::{NO_OFFSET, SYSCALL_SLOTS, bench_floor, syscall_slot},
    flow::{FlowOp, FlowOps, MAX_FLOW_OPS},
    offsets::ABSENT,
};

/// Field offsets of this kernel's tracepoints, indexed by [`Slot`].
#[unsafe(no_mangle)]
pub(crate) static OFFSETS: [u16; SLOT_COUNT] = [ABSENT; SLOT_COUNT];

/// Keep only events whose current task belongs to this tgid (or whose subject is in
/// `FILTER_TIDS`); 0 keeps everything.
#[unsafe(no_mangle)]
pub(crate) static FILTER_TGID: u32 = 0;

/// Processes never traced: the tracer itself and the readers of its output pipe. Tracing
/// them would feed output back into input (each line written wakes a reader: an event).
/// Zero entries are unused.
#[unsafe(no_mangle)]
pub(crate) static IGNORE_TGIDS: [u32; IGNORE_SLOTS] = [0; IGNORE_SLOTS];

/// 0: event mode (`tracer events`): an event is kept when its current task (or, for sched
/// events, its subject) passes the pid filter. 1: journey mode (`tracer live`): packet-path
/// events are kept from every context (packets do not run as their reader), sched events only
/// for tasks that can be a packet's reader (`FILTER_TIDS` with a pid filter, else
/// `RECV_TASKS`), and the tracer is ignored only as a subject, never as the interrupted task.
#[unsafe(no_mangle)]
pub(crate) static JOURNEY_MODE: u32 = 0;

/// Keep only events on this CPU; [`ANY_CPU`] keeps every CPU.
#[unsafe(no_mangle)]
pub(crate) static FILTER_CPU: u32 = ANY_CPU;

/// 1 when `sock:sock_recv_length` is attached: in journey mode a recv-family syscall exit is
/// then emitted only if the call read a socket.
#[unsafe(no_mangle)]
pub(crate) static SOCKET_READS_ONLY: u32 = 0;

/// 1 when `NET_IRQS` is filled: journey mode then keeps only those interrupts.
#[unsafe(no_mangle)]
pub(crate) static NET_IRQ_FILTER: u32 = 0;

/// Bitmap of the IRQ numbers (below `NET_IRQ_BITS`) that belong to network devices.
#[unsafe(no_mangle)]
pub(crate) static NET_IRQS: [u64; NET_IRQ_WORDS] = [0; NET_IRQ_WORDS];

/// Per syscall number, what the raw syscall programs do (`tracer_common::abi::syscall_slot`):
/// untraced, a wait syscall, or a recv-family one's enter kind.
#[unsafe(no_mangle)]
pub(crate) static SYSCALL_KINDS: [u8; SYSCALL_SLOTS] = [syscall_slot::UNTRACED; SYSCALL_SLOTS];

/// Each CPU wakes the reader each time the bytes it wrote into `EVENTS` cross a multiple of
/// this, a power of two (`emit::wakeup_flags`); 0 wakes it for every event (the kernel's
/// default). User space, which polls on a short timer as well, sets it: a wakeup per packet
/// costs more than tracing the packet (an irq_work, on a VM an exit).
#[unsafe(no_mangle)]
pub(crate) static WAKEUP_BYTES: u32 = 0;

/// 1: `--batched`, in journey mode without a flow filter, with the NET_RX softirq_entry and exit attached
/// before the raise, and every recv-family and wait syscall's exit: a NET_RX run's events,
/// and a reader's from its switch onto the CPU to its syscall's exit, go out as one record
/// each (`batch`).
#[unsafe(no_mangle)]
pub(crate) static BATCHING: u32 = 0;

/// 1: whether a task is inside a traced syscall is read from its entry frame (`stands`),
/// and `raw_syscalls:sys_enter` is not attached; 0: from the entry programs' `RECV_TASKS`
/// marks.
#[unsafe(no_mangle)]
pub(crate) static SYSCALL_FROM_REGS: u32 = 0;

/// Whether `SYSCALL_FROM_REGS` is on.
#[inline(always)]
pub(crate) fn syscall_from_regs() -> bool {
    global_u32(&SYSCALL_FROM_REGS) != 0
}

/// `tracer_common::abi::bench_floor`: what every program does first (the
/// bench's floor runs); `OFF` but there.
#[unsafe(no_mangle)]
pub(crate) static BENCH_FLOOR: u32 = bench_floor::OFF;

/// Whether this run is a bench floor run (`BENCH_FLOOR`), after reading the clock when it
/// asks for that: the program then returns at once. With `OFF` it costs one load from
/// `.rodata` (a line the other globals' reads bring in) and a branch.
#[inline(always)]
pub(crate) fn bench_floor() -> bool {
    match global_u32(&BENCH_FLOOR) {
        bench_floor::OFF => false,
        bench_floor::CLOCK => {
            // SAFETY: a plain helper call.
            let _ = unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() };
            true
        }
        _ => true,
    }
}

/// Offset of `struct sk_buff.data` (kernel BTF), or `NO_OFFSET`: netif_receive_skb then
/// reads the packet's headers.
#[unsafe(no_mangle)]
pub(crate) static SKB_DATA_OFF: u32 = NO_OFFSET;

/// Offset of `struct tcp_sock.copied_seq` (kernel BTF), or `NO_OFFSET`: sock_recv_length
/// then reports the socket's read point after a TCP read.
#[unsafe(no_mangle)]
pub(crate) static TCP_COPIED_SEQ_OFF: u32 = NO_OFFSET;

/// The compiled flow filter (`tracer_common::flow`), `FLOW_LEN` operations long.
#[unsafe(no_mangle)]
pub(crate) static FLOW_OPS: [FlowOp; MAX_FLOW_OPS] = [FlowOp::ZERO; MAX_FLOW_OPS];

/// Operations in `FLOW_OPS`; 0: no flow filter, every packet is selected.
#[unsafe(no_mangle)]
pub(crate) static FLOW_LEN: u32 = 0;

/// Offset of `struct task_struct.nsproxy` (kernel BTF), or `NO_OFFSET`: with the next two,
/// the recv-family exits report the reader's network namespace inode.
#[unsafe(no_mangle)]
pub(crate) static TASK_NSPROXY_OFF: u32 = NO_OFFSET;

/// Offset of `struct nsproxy.net_ns` (kernel BTF), or `NO_OFFSET`.
#[unsafe(no_mangle)]
pub(crate) static NSPROXY_NET_NS_OFF: u32 = NO_OFFSET;

/// Offset of `net.ns.inum` in `struct net` (kernel BTF), or `NO_OFFSET`.
#[unsafe(no_mangle)]
pub(crate) static NET_NS_INUM_OFF: u32 = NO_OFFSET;

/// Reads a `u32` global.
#[inline(always)]
pub(crate) fn global_u32(value: &u32) -> u32 {
    // SAFETY: read_volatile keeps the compiler from folding the default value; user space
    // rewrites it before load.
    unsafe { core::ptr::read_volatile(value) }
}

/// The offset of a field in its tracepoint record, or `ABSENT`.
#[inline(always)]
pub(crate) fn offset(slot: Slot) -> u16 {
    // SAFETY: as in global_u32; the index is a constant below SLOT_COUNT.
    unsafe { core::ptr::read_volatile(&OFFSETS[slot as usize]) }
}

/// Word `index` of the `NET_IRQS` bitmap (taken modulo its length).
#[inline(always)]
pub(crate) fn net_irq_word(index: usize) -> u64 {
    // SAFETY: as in global_u32; the index is below NET_IRQ_WORDS.
    unsafe { core::ptr::read_volatile(&NET_IRQS[index % NET_IRQ_WORDS]) }
}

/// `SYSCALL_KINDS` of syscall `nr`: untraced beyond the table (a negative `nr` too).
#[inline(always)]
pub(crate) fn syscall_kind(nr: u64) -> u8 {
    if nr >= SYSCALL_SLOTS as u64 {
        return syscall_slot::UNTRACED;
    }
    // SAFETY: as in global_u32; the index is below SYSCALL_SLOTS.
    unsafe { core::ptr::read_volatile(&SYSCALL_KINDS[nr as usize % SYSCALL_SLOTS]) }
}

/// Whether journey mode is on (`JOURNEY_MODE`).
#[inline(always)]
pub(crate) fn journey_mode() -> bool {
    global_u32(&JOURNEY_MODE) != 0
}

/// `FLOW_OPS`, read field by field with volatile loads (no operation copied to the stack).
pub(crate) struct GlobalFlowOps;

/// Reads a field of `FLOW_OPS[index]` (index taken modulo the length).
macro_rules! flow_field {
    ($index:expr, $($field:tt)+) => {
        // SAFETY: as in global_u32; the index is below MAX_FLOW_OPS.
        unsafe { core::ptr::read_volatile(&FLOW_OPS[$index % MAX_FLOW_OPS].$($field)+) }
    };
}

impl FlowOps for GlobalFlowOps {
    #[inline(always)]
    fn count(&self) -> usize {
        global_u32(&FLOW_LEN) as usize
    }
    #[inline(always)]
    fn code(&self, i: usize) -> u8 {
        flow_field!(i, code)
    }
    #[inline(always)]
    fn dir(&self, i: usize) -> u8 {
        flow_field!(i, dir)
    }
    #[inline(always)]
    fn lo(&self, i: usize) -> u32 {
        flow_field!(i, lo)
    }
    #[inline(always)]
    fn hi(&self, i: usize) -> u32 {
        flow_field!(i, hi)
    }
    #[inline(always)]
    fn addr(&self, i: usize, w: usize) -> u64 {
        flow_field!(i, addr[w & 1])
    }
    #[inline(always)]
    fn mask(&self, i: usize, w: usize) -> u64 {
        flow_field!(i, mask[w & 1])
    }
}

/// Kernel struct member offsets from BTF, indexed by [`Member`] (`NO_OFFSET`: unknown; the
/// BTF form of a program that needs it is then not loaded).
#[unsafe(no_mangle)]
pub(crate) static MEMBERS: [u32; MEMBER_COUNT] = [NO_OFFSET; MEMBER_COUNT];

/// The offset of a kernel struct member. The global is frozen before load, so the verifier
/// knows the value: a load at `base + member(..)` from a BTF-typed pointer is checked
/// against the kernel's struct like a compiled-in offset.
#[inline(always)]
pub(crate) fn member(member: Member) -> u32 {
    // SAFETY: as in global_u32; the index is a constant below MEMBER_COUNT.
    unsafe { core::ptr::read_volatile(&MEMBERS[member as usize]) }
}
