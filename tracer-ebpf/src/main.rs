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
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_ns,
        bpf_probe_read_kernel_str_bytes,
    },
    macros::{map, tracepoint},
    maps::{HashMap, PerCpuArray, RingBuf},
    programs::TracePointContext,
};
use aya_log_ebpf::debug;
use tracer_common::{
    ANY_CPU, Event, EventKind, FLAG_LOST_BEFORE, IGNORE_SLOTS, LostCounter, NAME_LEN, SLOT_COUNT, Slot,
    offsets::ABSENT,
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

/// 1: `FILTER_TGID` applies to packet-path events too (`tracer events --pid`: the current
/// task must be the process). 0: packet-path events (IRQ, softirq, NAPI, netif, socket
/// enqueue, skb frees) run in whatever context the packet finds and are kept for journeys;
/// only task-context events (syscalls, recv lengths, sched) are filtered by pid.
#[unsafe(no_mangle)]
static FILTER_PACKET_PATH: u32 = 1;

/// Keep only events on this CPU; [`ANY_CPU`] keeps every CPU.
#[unsafe(no_mangle)]
static FILTER_CPU: u32 = ANY_CPU;

/// Every event, in one ring buffer (size set by user space).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);

/// Per-CPU count of events lost to a full ring buffer, and how many were flagged.
#[map]
static LOST: PerCpuArray<LostCounter> = PerCpuArray::with_max_entries(1, 0);

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

/// For packet-path events: the pid filter applies only when `FILTER_PACKET_PATH` says so.
#[inline(always)]
fn packet_passes(here: &Here) -> bool {
    if global_u32(&FILTER_PACKET_PATH) != 0 {
        return context_passes(here);
    }
    cpu_passes(here) && !ignored(here.tgid)
}

/// For sched events: the current task or the subject task belongs to the traced process.
#[inline(always)]
fn subject_passes(here: &Here, subject_tid: u32) -> bool {
    if !cpu_passes(here) || ignored(here.tgid) || ignored(subject_tid) {
        return false;
    }
    let want = global_u32(&FILTER_TGID);
    // SAFETY: a read-only lookup of a plain u8 value.
    want == 0 || here.tgid == want || unsafe { FILTER_TIDS.get(&subject_tid).is_some() }
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
            entry.submit(0);
        }
        None => {
            if let Some(counter) = LOST.get_ptr_mut(0) {
                // SAFETY: as above.
                unsafe { (*counter).lost += 1 };
            }
        }
    }
}

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

context_program!(irq_handler_entry, IrqHandlerEntry, packet_passes, |ctx, ev| {
    ev.arg0 = field(&ctx, Slot::IrqEntryIrq);
});

context_program!(irq_handler_exit, IrqHandlerExit, packet_passes, |ctx, ev| {
    ev.arg0 = field(&ctx, Slot::IrqExitIrq);
    ev.arg1 = field(&ctx, Slot::IrqExitRet);
});

context_program!(softirq_raise, SoftirqRaise, packet_passes, |ctx, ev| {
    ev.arg0 = field(&ctx, Slot::SoftirqRaiseVec);
});

context_program!(softirq_entry, SoftirqEntry, packet_passes, |ctx, ev| {
    ev.arg0 = field(&ctx, Slot::SoftirqEntryVec);
});

context_program!(softirq_exit, SoftirqExit, packet_passes, |ctx, ev| {
    ev.arg0 = field(&ctx, Slot::SoftirqExitVec);
});

context_program!(napi_poll, NapiPoll, packet_passes, |ctx, ev| {
    ev.addr = field(&ctx, Slot::NapiPollNapi);
    ev.arg0 = field(&ctx, Slot::NapiPollWork);
    ev.arg1 = field(&ctx, Slot::NapiPollBudget);
    data_loc_str(&ctx, Slot::NapiPollDev, &mut ev.name);
});

context_program!(netif_receive_skb, NetifReceiveSkb, packet_passes, |ctx, ev| {
    ev.addr = field(&ctx, Slot::RecvSkbAddr);
    ev.arg0 = field(&ctx, Slot::RecvSkbLen);
    data_loc_str(&ctx, Slot::RecvSkbDev, &mut ev.name);
});

context_program!(netif_rx, NetifRx, packet_passes, |ctx, ev| {
    ev.addr = field(&ctx, Slot::NetifRxAddr);
    ev.arg0 = field(&ctx, Slot::NetifRxLen);
    data_loc_str(&ctx, Slot::NetifRxDev, &mut ev.name);
});

context_program!(napi_gro_receive_entry, NapiGroReceiveEntry, packet_passes, |ctx, ev| {
    ev.addr = field(&ctx, Slot::GroSkbAddr);
    ev.arg0 = field(&ctx, Slot::GroLen);
    ev.arg1 = field(&ctx, Slot::GroNapiId);
    ev.arg2 = field::<u16>(&ctx, Slot::GroQueue) as u32;
    data_loc_str(&ctx, Slot::GroDev, &mut ev.name);
});

context_program!(sk_data_ready, SkDataReady, packet_passes, |ctx, ev| {
    ev.addr = field(&ctx, Slot::DataReadySk);
    ev.arg0 = field::<u16>(&ctx, Slot::DataReadyFamily) as u32;
    ev.arg1 = field::<u16>(&ctx, Slot::DataReadyProtocol) as u32;
});

context_program!(skb_copy_datagram_iovec, SkbCopyDatagramIovec, packet_passes, |ctx, ev| {
    ev.addr = field(&ctx, Slot::CopySkbAddr);
    ev.arg0 = field(&ctx, Slot::CopyLen);
});

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

context_program!(sock_recv_length, SockRecvLength, |ctx, ev| {
    ev.addr = field(&ctx, Slot::RecvLenSk);
    ev.arg0 = field(&ctx, Slot::RecvLenRet);
    ev.arg1 = field(&ctx, Slot::RecvLenFlags);
    let family = field::<u16>(&ctx, Slot::RecvLenFamily) as u32;
    ev.arg2 = family << 16 | field::<u16>(&ctx, Slot::RecvLenProtocol) as u32;
});

context_program!(sys_enter_recvfrom, SysEnterRecvfrom, |ctx, ev| {
    ev.arg0 = field::<u64>(&ctx, Slot::EnterRecvfromFd) as u32;
    ev.addr2 = field(&ctx, Slot::EnterRecvfromSize);
});

context_program!(sys_exit_recvfrom, SysExitRecvfrom, |ctx, ev| {
    ev.addr = field(&ctx, Slot::ExitRecvfromRet);
});

context_program!(sys_enter_recvmsg, SysEnterRecvmsg, |ctx, ev| {
    ev.arg0 = field::<u64>(&ctx, Slot::EnterRecvmsgFd) as u32;
});

context_program!(sys_exit_recvmsg, SysExitRecvmsg, |ctx, ev| {
    ev.addr = field(&ctx, Slot::ExitRecvmsgRet);
});

context_program!(sys_enter_recvmmsg, SysEnterRecvmmsg, |ctx, ev| {
    ev.arg0 = field::<u64>(&ctx, Slot::EnterRecvmmsgFd) as u32;
    ev.addr2 = field(&ctx, Slot::EnterRecvmmsgVlen);
});

context_program!(sys_exit_recvmmsg, SysExitRecvmmsg, |ctx, ev| {
    ev.addr = field(&ctx, Slot::ExitRecvmmsgRet);
});

context_program!(sys_enter_read, SysEnterRead, |ctx, ev| {
    ev.arg0 = field::<u64>(&ctx, Slot::EnterReadFd) as u32;
    ev.addr2 = field(&ctx, Slot::EnterReadCount);
});

context_program!(sys_exit_read, SysExitRead, |ctx, ev| {
    ev.addr = field(&ctx, Slot::ExitReadRet);
});

context_program!(sys_enter_readv, SysEnterReadv, |ctx, ev| {
    ev.arg0 = field::<u64>(&ctx, Slot::EnterReadvFd) as u32;
    ev.addr2 = field(&ctx, Slot::EnterReadvVlen);
});

context_program!(sys_exit_readv, SysExitReadv, |ctx, ev| {
    ev.addr = field(&ctx, Slot::ExitReadvRet);
});

/// `sched_waking` / `sched_wakeup`: kept when the waker or the woken task is traced.
macro_rules! wake_program {
    ($name:ident, $kind:ident, $comm:ident, $pid:ident, $prio:ident, $cpu:ident) => {
        #[tracepoint]
        pub fn $name(ctx: TracePointContext) -> u32 {
            let here = here();
            let woken: u32 = field(&ctx, Slot::$pid);
            if subject_passes(&here, woken) {
                emit(&here, EventKind::$kind, |ev| {
                    ev.arg0 = woken;
                    ev.arg1 = field(&ctx, Slot::$cpu);
                    ev.arg2 = field(&ctx, Slot::$prio);
                    ev.name = field(&ctx, Slot::$comm);
                });
            }
            0
        }
    };
}

wake_program!(sched_waking, SchedWaking, WakingComm, WakingPid, WakingPrio, WakingCpu);
wake_program!(sched_wakeup, SchedWakeup, WakeupComm, WakeupPid, WakeupPrio, WakeupCpu);

/// `sched_switch`: kept when the task switched out (current) or in is traced.
#[tracepoint]
pub fn sched_switch(ctx: TracePointContext) -> u32 {
    let here = here();
    let next: u32 = field(&ctx, Slot::SwitchNextPid);
    if subject_passes(&here, next) {
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
