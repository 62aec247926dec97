//! The tracer's kernel side: one tiny program per tracepoint. Each one filters first through
//! read-only globals, then stamps and emits one fixed-size [`Event`] into the `EVENTS` ring
//! buffer. A failed reserve is counted per CPU in `LOST`; nothing is dropped silently.
//!
//! Field offsets come from the `OFFSETS` global, filled by user space from the tracefs
//! format files of the running kernel (see `tracer_common::offsets`).
#![no_std]
#![no_main]

use aya_ebpf::{
    EbpfContext as _,
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_ns,
        bpf_probe_read_kernel_str_bytes,
    },
    macros::{map, tracepoint},
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
    programs::TracePointContext,
};
use aya_log_ebpf::debug;
use tracer_common::{
    ANY_CPU, Event, EventKind, FLAG_LOST_BEFORE, IGNORE_SLOTS, LostCounter, NAME_LEN, NET_IRQ_BITS,
    NET_IRQ_WORDS, NET_RX_SOFTIRQ, SLOT_COUNT, Slot, offsets::ABSENT,
};

/// Field offsets of this kernel's tracepoints, indexed by [`Slot`].
#[unsafe(no_mangle)]
static OFFSETS: [u16; SLOT_COUNT] = [ABSENT; SLOT_COUNT];

/// Keep only events whose current task belongs to this tgid (or whose subject is in
/// `FILTER_TIDS`); 0 keeps everything.
#[unsafe(no_mangle)]
static FILTER_TGID: u32 = 0;

/// Processes never traced: the tracer itself and the readers of its output pipe. Tracing
/// them would feed output back into input (each line written wakes a reader: an event).
/// Zero entries are unused.
#[unsafe(no_mangle)]
static IGNORE_TGIDS: [u32; IGNORE_SLOTS] = [0; IGNORE_SLOTS];

/// 0: event mode (`tracer events`): an event is kept when its current task (or, for sched
/// events, its subject) passes the pid filter. 1: journey mode (`tracer live`): packet-path
/// events are kept from every context (packets do not run as their reader), sched events only
/// for tasks that can be a packet's reader (`FILTER_TIDS` with a pid filter, else
/// `RECV_TASKS`), and the tracer is ignored only as a subject, never as the interrupted task.
#[unsafe(no_mangle)]
static JOURNEY_MODE: u32 = 0;

/// Keep only events on this CPU; [`ANY_CPU`] keeps every CPU.
#[unsafe(no_mangle)]
static FILTER_CPU: u32 = ANY_CPU;

/// 1 when `sock:sock_recv_length` is attached: in journey mode a recv-family syscall exit is
/// then emitted only if the call read a socket.
#[unsafe(no_mangle)]
static SOCKET_READS_ONLY: u32 = 0;

/// 1 when `NET_IRQS` is filled: journey mode then keeps only those interrupts.
#[unsafe(no_mangle)]
static NET_IRQ_FILTER: u32 = 0;

/// Bitmap of the IRQ numbers (below [`NET_IRQ_BITS`]) that belong to network devices.
#[unsafe(no_mangle)]
static NET_IRQS: [u64; NET_IRQ_WORDS] = [0; NET_IRQ_WORDS];

/// Wake the reader only once this many bytes wait in `EVENTS`; 0 wakes it for every event
/// (the kernel's default). User space, which polls on a short timer as well, sets it: a
/// wakeup per packet costs more than tracing the packet (an irq_work, on a VM an exit).
#[unsafe(no_mangle)]
static WAKEUP_BYTES: u32 = 0;

/// Every event, in one ring buffer (size set by user space).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);

/// Per-CPU count of events lost to a full ring buffer, and how many were flagged.
#[map]
static LOST: PerCpuArray<LostCounter> = PerCpuArray::with_max_entries(1, 0);

/// Threads that use recv-family or wait syscalls, valued 1 while inside one and 0 outside:
/// the tasks a packet can wake. Journey mode keeps sched events only for those at 1. Entries
/// stay between calls (flipped in place, cheaper than an insert and a delete per call); LRU
/// forgets threads that stopped reading.
#[map]
static RECV_TASKS: LruHashMap<u32, u8> = LruHashMap::with_max_entries(16384, 0);

/// Threads of the `--pid` process: a sched event whose subject (the woken task, the task
/// switched in) is one of them is kept even when another task is current.
#[map]
static FILTER_TIDS: HashMap<u32, u8> = HashMap::with_max_entries(4096, 0);

/// The context a tracepoint fired in, captured once per event.
struct Here {
    tgid: u32,
    tid: u32,
    cpu: u32,
}

#[inline(always)]
fn here() -> Here {
    let pid_tgid = bpf_get_current_pid_tgid();
    Here {
        tgid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        // SAFETY: a plain helper call.
        cpu: unsafe { bpf_get_smp_processor_id() },
    }
}

#[inline(always)]
fn global_u32(value: &u32) -> u32 {
    // SAFETY: read_volatile keeps the compiler from folding the default value; user space
    // rewrites it before load.
    unsafe { core::ptr::read_volatile(value) }
}

#[inline(always)]
fn offset(slot: Slot) -> u16 {
    // SAFETY: as in global_u32; the index is a constant below SLOT_COUNT.
    unsafe { core::ptr::read_volatile(&OFFSETS[slot as usize]) }
}

/// Whether a tgid (or a main thread's tid) is one of `IGNORE_TGIDS`.
#[inline(always)]
fn ignored(id: u32) -> bool {
    let mut hit = false;
    for slot in 0..IGNORE_SLOTS {
        let ignored = global_u32(&IGNORE_TGIDS[slot]);
        hit |= ignored != 0 && ignored == id;
    }
    hit
}

#[inline(always)]
fn cpu_passes(here: &Here) -> bool {
    let want = global_u32(&FILTER_CPU);
    want == ANY_CPU || here.cpu == want
}

/// The CPU and pid filters that depend only on the current context.
#[inline(always)]
fn context_passes(here: &Here) -> bool {
    if !cpu_passes(here) || ignored(here.tgid) {
        return false;
    }
    let want = global_u32(&FILTER_TGID);
    want == 0 || here.tgid == want
}

#[inline(always)]
fn journey_mode() -> bool {
    global_u32(&JOURNEY_MODE) != 0
}

/// For packet-path events: in journey mode only the CPU filter applies.
#[inline(always)]
fn packet_passes(here: &Here) -> bool {
    if journey_mode() {
        cpu_passes(here)
    } else {
        context_passes(here)
    }
}

#[inline(always)]
fn in_map(map: &HashMap<u32, u8>, tid: u32) -> bool {
    // SAFETY: a read-only lookup of a plain u8 value.
    unsafe { map.get(&tid).is_some() }
}

/// For sched events about `subject` (the woken task, the task switched in); `prev` is the
/// task switched out, if any (the current task).
#[inline(always)]
fn sched_passes(here: &Here, subject: u32, prev: Option<u32>) -> bool {
    if !cpu_passes(here) || ignored(subject) {
        return false;
    }
    let want = global_u32(&FILTER_TGID);
    if journey_mode() {
        if want != 0 {
            return in_map(&FILTER_TIDS, subject)
                || prev.is_some_and(|prev| in_map(&FILTER_TIDS, prev));
        }
        return reading(subject) || prev.is_some_and(reading);
    }
    !ignored(here.tgid) && (want == 0 || here.tgid == want || in_map(&FILTER_TIDS, subject))
}

/// Reads an integer field, or zero if the field is absent on this kernel or unreadable.
#[inline(always)]
fn field<T: Copy + Default>(ctx: &TracePointContext, slot: Slot) -> T {
    let off = offset(slot);
    if off == ABSENT {
        return T::default();
    }
    // SAFETY: the offset comes from this kernel's format file for this tracepoint.
    unsafe { ctx.read_at::<T>(off as usize) }.unwrap_or_default()
}

/// Copies a `__data_loc char[]` field (device name) into `dst`.
#[inline(always)]
fn data_loc_str(ctx: &TracePointContext, slot: Slot, dst: &mut [u8; NAME_LEN]) {
    let loc: u32 = field(ctx, slot);
    let src = ctx.as_ptr() as usize + (loc & 0xffff) as usize;
    // SAFETY: the helper bounds the copy by dst's length and checks the source.
    if let Err(err) = unsafe { bpf_probe_read_kernel_str_bytes(src as *const u8, dst) } {
        debug!(ctx, "reading a __data_loc string failed: {}", err);
    }
}

/// Reserves, stamps and submits one event; `fill` writes the payload.
#[inline(always)]
fn emit(here: &Here, kind: EventKind, fill: impl FnOnce(&mut Event)) {
    match EVENTS.reserve::<Event>(0) {
        Some(mut entry) => {
            let event = entry.write(Event {
                // SAFETY: a plain helper call.
                ts: unsafe { bpf_ktime_get_ns() },
                tgid: here.tgid,
                tid: here.tid,
                cpu: here.cpu as u16,
                kind: kind as u8,
                ..Event::ZERO
            });
            fill(event);
            if let Some(counter) = LOST.get_ptr_mut(0) {
                // SAFETY: a per-CPU slot, used only from this CPU with preemption off.
                let counter = unsafe { &mut *counter };
                if counter.lost != counter.reported {
                    counter.reported = counter.lost;
                    event.flags |= FLAG_LOST_BEFORE;
                }
            }
            entry.submit(wakeup_flags());
        }
        None => {
            if let Some(counter) = LOST.get_ptr_mut(0) {
                // SAFETY: as above.
                unsafe { (*counter).lost += 1 };
            }
        }
    }
}

/// Submit flags: no wakeup until `WAKEUP_BYTES` are waiting, then a forced one.
#[inline(always)]
fn wakeup_flags() -> u64 {
    let threshold = global_u32(&WAKEUP_BYTES);
    if threshold == 0 {
        0
    } else if EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= threshold as u64 {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

/// `RECV_TASKS` values: outside any tracked syscall, inside one, inside one that read a socket.
const OUTSIDE: u8 = 0;
const INSIDE: u8 = 1;
const READ_SOCKET: u8 = 2;

/// Marks the current thread as inside a recv-family or wait syscall (`RECV_TASKS`). Returns
/// whether journey mode wants the entry event: it does not (the engine uses exits only).
#[inline(always)]
fn enter_recv(here: &Here) -> bool {
    if !ignored(here.tgid) {
        set_reading(here.tid, INSIDE);
        // A thread of the --pid process created after start joins the filter here.
        let want = global_u32(&FILTER_TGID);
        if want != 0 && here.tgid == want && !in_map(&FILTER_TIDS, here.tid) {
            let _ = FILTER_TIDS.insert(&here.tid, &1, 0);
        }
    }
    false
}

/// The current thread's recv-family or wait syscall returned. Returns whether journey mode
/// wants the exit event: only when the call read a socket (a read() of a pipe or file is
/// nobody's packet), unless user space cannot know that (no sock_recv_length).
#[inline(always)]
fn exit_recv(here: &Here) -> bool {
    let was = match RECV_TASKS.get_ptr_mut(&here.tid) {
        Some(slot) => {
            // SAFETY: a u8 in a map value, written only by its own thread's programs.
            unsafe {
                let was = *slot;
                *slot = OUTSIDE;
                was
            }
        }
        None => OUTSIDE,
    };
    was == READ_SOCKET || global_u32(&SOCKET_READS_ONLY) == 0
}

/// Sets a thread's `RECV_TASKS` value in place; inserts only a thread new to the map.
#[inline(always)]
fn set_reading(tid: u32, value: u8) {
    match RECV_TASKS.get_ptr_mut(&tid) {
        // SAFETY: a u8 in a map value, written only by its own thread's programs.
        Some(slot) => unsafe { *slot = value },
        None => {
            let _ = RECV_TASKS.insert(&tid, &value, 0);
        }
    }
}

/// Whether a thread is inside a recv-family or wait syscall now.
#[inline(always)]
fn reading(tid: u32) -> bool {
    // SAFETY: a read-only lookup of a plain u8 value.
    unsafe { RECV_TASKS.get(&tid) }.is_some_and(|value| *value != OUTSIDE)
}

/// The recv-family syscall programs: keep `RECV_TASKS` up to date (before any filter), then
/// emit like a context program.
macro_rules! syscall_program {
    ($name:ident, $kind:ident, $track:ident, |$ctx:ident, $ev:ident| $fill:block) => {
        #[tracepoint]
        pub fn $name($ctx: TracePointContext) -> u32 {
            let here = here();
            let journey_wants = $track(&here);
            if context_passes(&here) && (journey_wants || !journey_mode()) {
                emit(&here, EventKind::$kind, |$ev| $fill);
            }
            0
        }
    };
}

/// Wait syscalls (poll, select, epoll) only keep `RECV_TASKS` up to date: a reader blocked
/// in them is woken by a packet just like one blocked in recv().
macro_rules! wait_program {
    ($name:ident, $track:ident) => {
        #[tracepoint]
        pub fn $name(_ctx: TracePointContext) -> u32 {
            let _ = $track(&here());
            0
        }
    };
}

wait_program!(sys_enter_poll, enter_recv);
wait_program!(sys_exit_poll, exit_recv);
wait_program!(sys_enter_ppoll, enter_recv);
wait_program!(sys_exit_ppoll, exit_recv);
wait_program!(sys_enter_select, enter_recv);
wait_program!(sys_exit_select, exit_recv);
wait_program!(sys_enter_pselect6, enter_recv);
wait_program!(sys_exit_pselect6, exit_recv);
wait_program!(sys_enter_epoll_wait, enter_recv);
wait_program!(sys_exit_epoll_wait, exit_recv);
wait_program!(sys_enter_epoll_pwait, enter_recv);
wait_program!(sys_exit_epoll_pwait, exit_recv);
wait_program!(sys_enter_epoll_pwait2, enter_recv);
wait_program!(sys_exit_epoll_pwait2, exit_recv);

/// The programs filtered by their context alone (`context_passes` or `packet_passes`).
macro_rules! context_program {
    ($name:ident, $kind:ident, |$ctx:ident, $ev:ident| $fill:block) => {
        context_program!($name, $kind, context_passes, |$ctx, $ev| $fill);
    };
    ($name:ident, $kind:ident, $passes:ident, |$ctx:ident, $ev:ident| $fill:block) => {
        #[tracepoint]
        pub fn $name($ctx: TracePointContext) -> u32 {
            let here = here();
            if $passes(&here) {
                emit(&here, EventKind::$kind, |$ev| $fill);
            }
            0
        }
    };
}

/// `irq_handler_entry/exit`: in journey mode only the interrupts of network devices.
macro_rules! irq_program {
    ($name:ident, $kind:ident, $irq:ident, |$ctx:ident, $ev:ident| $fill:block) => {
        #[tracepoint]
        pub fn $name($ctx: TracePointContext) -> u32 {
            let here = here();
            let irq: u32 = field(&$ctx, Slot::$irq);
            if packet_passes(&here) && (!journey_mode() || network_irq(irq)) {
                emit(&here, EventKind::$kind, |$ev| {
                    $ev.arg0 = irq;
                    $fill
                });
            }
            0
        }
    };
}

/// Whether an IRQ belongs to a network device (`NET_IRQS`); every IRQ passes when user
/// space could not tell which do, and so does an IRQ beyond the bitmap.
#[inline(always)]
fn network_irq(irq: u32) -> bool {
    if global_u32(&NET_IRQ_FILTER) == 0 || irq >= NET_IRQ_BITS {
        return true;
    }
    // SAFETY: as in global_u32; the index is below NET_IRQ_BITS / 64.
    let word = unsafe { core::ptr::read_volatile(&NET_IRQS[(irq / 64) as usize % NET_IRQ_WORDS]) };
    (word >> (irq % 64)) & 1 != 0
}

irq_program!(
    irq_handler_entry,
    IrqHandlerEntry,
    IrqEntryIrq,
    |ctx, ev| {}
);

irq_program!(irq_handler_exit, IrqHandlerExit, IrqExitIrq, |ctx, ev| {
    ev.arg1 = field(&ctx, Slot::IrqExitRet);
});

/// `softirq_raise/entry/exit`: every vector in event mode, only NET_RX in journey mode.
macro_rules! softirq_program {
    ($name:ident, $kind:ident, $vec:ident) => {
        #[tracepoint]
        pub fn $name(ctx: TracePointContext) -> u32 {
            let here = here();
            let vec: u32 = field(&ctx, Slot::$vec);
            if packet_passes(&here) && (vec == NET_RX_SOFTIRQ || !journey_mode()) {
                emit(&here, EventKind::$kind, |ev| ev.arg0 = vec);
            }
            0
        }
    };
}

softirq_program!(softirq_raise, SoftirqRaise, SoftirqRaiseVec);
softirq_program!(softirq_entry, SoftirqEntry, SoftirqEntryVec);
softirq_program!(softirq_exit, SoftirqExit, SoftirqExitVec);

context_program!(napi_poll, NapiPoll, packet_passes, |ctx, ev| {
    ev.addr = field(&ctx, Slot::NapiPollNapi);
    ev.arg0 = field(&ctx, Slot::NapiPollWork);
    ev.arg1 = field(&ctx, Slot::NapiPollBudget);
    data_loc_str(&ctx, Slot::NapiPollDev, &mut ev.name);
});

context_program!(
    netif_receive_skb,
    NetifReceiveSkb,
    packet_passes,
    |ctx, ev| {
        ev.addr = field(&ctx, Slot::RecvSkbAddr);
        ev.arg0 = field(&ctx, Slot::RecvSkbLen);
        data_loc_str(&ctx, Slot::RecvSkbDev, &mut ev.name);
    }
);

context_program!(netif_rx, NetifRx, packet_passes, |ctx, ev| {
    ev.addr = field(&ctx, Slot::NetifRxAddr);
    ev.arg0 = field(&ctx, Slot::NetifRxLen);
    data_loc_str(&ctx, Slot::NetifRxDev, &mut ev.name);
});

context_program!(
    napi_gro_receive_entry,
    NapiGroReceiveEntry,
    packet_passes,
    |ctx, ev| {
        ev.addr = field(&ctx, Slot::GroSkbAddr);
        ev.arg0 = field(&ctx, Slot::GroLen);
        ev.arg1 = field(&ctx, Slot::GroNapiId);
        ev.arg2 = field::<u16>(&ctx, Slot::GroQueue) as u32;
        data_loc_str(&ctx, Slot::GroDev, &mut ev.name);
    }
);

context_program!(sk_data_ready, SkDataReady, packet_passes, |ctx, ev| {
    ev.addr = field(&ctx, Slot::DataReadySk);
    ev.arg0 = field::<u16>(&ctx, Slot::DataReadyFamily) as u32;
    ev.arg1 = field::<u16>(&ctx, Slot::DataReadyProtocol) as u32;
});

context_program!(
    skb_copy_datagram_iovec,
    SkbCopyDatagramIovec,
    packet_passes,
    |ctx, ev| {
        ev.addr = field(&ctx, Slot::CopySkbAddr);
        ev.arg0 = field(&ctx, Slot::CopyLen);
    }
);

context_program!(kfree_skb, KfreeSkb, packet_passes, |ctx, ev| {
    ev.addr = field(&ctx, Slot::KfreeSkbAddr);
    ev.addr2 = field(&ctx, Slot::KfreeLocation);
    ev.arg0 = field(&ctx, Slot::KfreeReason);
    ev.arg1 = field::<u16>(&ctx, Slot::KfreeProtocol) as u32;
});

context_program!(consume_skb, ConsumeSkb, packet_passes, |ctx, ev| {
    ev.addr = field(&ctx, Slot::ConsumeSkbAddr);
    ev.addr2 = field(&ctx, Slot::ConsumeLocation);
});

/// `sock_recv_length`: marks the current syscall as a socket read (its exit is a packet's
/// `recv_return`), then emits like a context program.
#[tracepoint]
pub fn sock_recv_length(ctx: TracePointContext) -> u32 {
    let here = here();
    set_reading(here.tid, READ_SOCKET);
    if context_passes(&here) {
        emit(&here, EventKind::SockRecvLength, |ev| {
            fill_recv_length(&ctx, ev)
        });
    }
    0
}

#[inline(always)]
fn fill_recv_length(ctx: &TracePointContext, ev: &mut Event) {
    // The reader's name travels with its read: a reader that never sleeps has no sched event.
    ev.name = bpf_get_current_comm().unwrap_or_default();
    ev.addr = field(ctx, Slot::RecvLenSk);
    ev.arg0 = field(ctx, Slot::RecvLenRet);
    ev.arg1 = field(ctx, Slot::RecvLenFlags);
    let family = field::<u16>(ctx, Slot::RecvLenFamily) as u32;
    ev.arg2 = family << 16 | field::<u16>(ctx, Slot::RecvLenProtocol) as u32;
}

syscall_program!(
    sys_enter_recvfrom,
    SysEnterRecvfrom,
    enter_recv,
    |ctx, ev| {
        ev.arg0 = field::<u64>(&ctx, Slot::EnterRecvfromFd) as u32;
        ev.addr2 = field(&ctx, Slot::EnterRecvfromSize);
    }
);

syscall_program!(sys_exit_recvfrom, SysExitRecvfrom, exit_recv, |ctx, ev| {
    ev.addr = field(&ctx, Slot::ExitRecvfromRet);
});

syscall_program!(sys_enter_recvmsg, SysEnterRecvmsg, enter_recv, |ctx, ev| {
    ev.arg0 = field::<u64>(&ctx, Slot::EnterRecvmsgFd) as u32;
});

syscall_program!(sys_exit_recvmsg, SysExitRecvmsg, exit_recv, |ctx, ev| {
    ev.addr = field(&ctx, Slot::ExitRecvmsgRet);
});

syscall_program!(
    sys_enter_recvmmsg,
    SysEnterRecvmmsg,
    enter_recv,
    |ctx, ev| {
        ev.arg0 = field::<u64>(&ctx, Slot::EnterRecvmmsgFd) as u32;
        ev.addr2 = field(&ctx, Slot::EnterRecvmmsgVlen);
    }
);

syscall_program!(sys_exit_recvmmsg, SysExitRecvmmsg, exit_recv, |ctx, ev| {
    ev.addr = field(&ctx, Slot::ExitRecvmmsgRet);
});

syscall_program!(sys_enter_read, SysEnterRead, enter_recv, |ctx, ev| {
    ev.arg0 = field::<u64>(&ctx, Slot::EnterReadFd) as u32;
    ev.addr2 = field(&ctx, Slot::EnterReadCount);
});

syscall_program!(sys_exit_read, SysExitRead, exit_recv, |ctx, ev| {
    ev.addr = field(&ctx, Slot::ExitReadRet);
});

syscall_program!(sys_enter_readv, SysEnterReadv, enter_recv, |ctx, ev| {
    ev.arg0 = field::<u64>(&ctx, Slot::EnterReadvFd) as u32;
    ev.addr2 = field(&ctx, Slot::EnterReadvVlen);
});

syscall_program!(sys_exit_readv, SysExitReadv, exit_recv, |ctx, ev| {
    ev.addr = field(&ctx, Slot::ExitReadvRet);
});

/// `sched_waking` / `sched_wakeup`: kept as `sched_passes` says for the woken task.
macro_rules! wake_program {
    ($name:ident, $kind:ident, $comm:ident, $pid:ident, $prio:ident, $cpu:ident) => {
        #[tracepoint]
        pub fn $name(ctx: TracePointContext) -> u32 {
            let here = here();
            let woken: u32 = field(&ctx, Slot::$pid);
            let comm: [u8; NAME_LEN] = field(&ctx, Slot::$comm);
            // ksoftirqd wakeups are kept too: NET_RX work moving to a thread.
            if sched_passes(&here, woken, None) || (journey_mode() && is_ksoftirqd(&comm)) {
                emit(&here, EventKind::$kind, |ev| {
                    ev.arg0 = woken;
                    ev.arg1 = field(&ctx, Slot::$cpu);
                    ev.arg2 = field(&ctx, Slot::$prio);
                    ev.name = comm;
                });
            }
            0
        }
    };
}

#[inline(always)]
fn is_ksoftirqd(comm: &[u8; NAME_LEN]) -> bool {
    comm[..9] == *b"ksoftirqd"
}

wake_program!(
    sched_waking,
    SchedWaking,
    WakingComm,
    WakingPid,
    WakingPrio,
    WakingCpu
);
wake_program!(
    sched_wakeup,
    SchedWakeup,
    WakeupComm,
    WakeupPid,
    WakeupPrio,
    WakeupCpu
);

/// `sched_switch`: kept as `sched_passes` says for the tasks switched in and out.
#[tracepoint]
pub fn sched_switch(ctx: TracePointContext) -> u32 {
    let here = here();
    let next: u32 = field(&ctx, Slot::SwitchNextPid);
    if sched_passes(&here, next, Some(here.tid)) {
        emit(&here, EventKind::SchedSwitch, |ev| {
            ev.addr = field(&ctx, Slot::SwitchPrevState);
            ev.arg0 = field(&ctx, Slot::SwitchPrevPid);
            ev.arg1 = next;
            ev.arg2 = field(&ctx, Slot::SwitchNextPrio);
            ev.name = field(&ctx, Slot::SwitchNextComm);
        });
    }
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
