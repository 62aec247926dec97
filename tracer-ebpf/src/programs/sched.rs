//! Scheduler programs: `sched:sched_waking`, `sched:sched_wakeup` and `sched:sched_switch`,
//! kept for the task they are about (the woken task, the tasks switched in and out).

use aya_ebpf::{
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use tracer_common::{Event, EventKind, Member, NAME_LEN, Slot};

use crate::{
    batch,
    emit::emit,
    fields::field,
    filter::{Here, here, sched_passes, sched_passes_reading},
    flow::{self, Verdict},
    globals::journey_mode,
    members::{read, read_name, task_comm},
    stands::Task,
};

/// `sched_waking` / `sched_wakeup` and their tp_btf twins (`(struct task_struct *p)`): kept
/// as `sched_passes` says for the woken task.
macro_rules! wake_program {
    ($name:ident, $tp:literal, $btf:ident, $kind:ident, $comm:ident, $pid:ident, $prio:ident, $cpu:ident) => {
        #[tracepoint]
        pub fn $name(ctx: TracePointContext) -> u32 {
            if crate::globals::bench_floor() {
                return 0;
            }
            let comm = || field::<[u8; NAME_LEN]>(&ctx, Slot::$comm);
            let woken = Task {
                tid: field(&ctx, Slot::$pid),
                ptr: 0,
            };
            on_wake(EventKind::$kind, woken, comm, |ev| {
                ev.arg1 = field(&ctx, Slot::$cpu);
                ev.arg2 = field(&ctx, Slot::$prio);
            });
            0
        }

        #[btf_tracepoint(function = $tp)]
        pub fn $btf(ctx: BtfTracePointContext) -> u32 {
            if crate::globals::bench_floor() {
                return 0;
            }
            let task: u64 = ctx.arg(0);
            let comm = || task_comm(task);
            let woken = Task {
                tid: read(task, Member::TaskPid),
                ptr: task,
            };
            on_wake(EventKind::$kind, woken, comm, |ev| {
                ev.arg1 = read(task, Member::TaskCpu);
                ev.arg2 = read(task, Member::TaskPrio);
            });
            0
        }
    };
}

/// A wakeup of `woken` (whose name `comm` reads): emitted when kept, `fill` writing the
/// target CPU and priority.
#[inline(always)]
fn on_wake(
    kind: EventKind,
    woken: Task,
    comm: impl Fn() -> [u8; NAME_LEN],
    fill: impl FnOnce(&mut Event),
) {
    let here = here();
    // Looked up (with the entry frame: read and marked) before any filter, so that the
    // task's switch and reads find the mark whatever this wakeup's fate.
    let reading = journey_mode() && woken.woken_reading();
    // ksoftirqd wakeups are kept too: NET_RX work moving to a thread.
    let keep = if flow::active() {
        flow_wake_passes(&here, woken, reading)
    } else {
        sched_passes_reading(&here, woken, None, || reading)
            || (journey_mode() && is_ksoftirqd(&comm()))
    };
    if keep {
        emit(&here, kind, |ev| {
            ev.arg0 = woken.tid;
            ev.name = comm();
            fill(ev);
        });
    }
}

/// With a flow filter, a wakeup is kept when a selected packet on this CPU caused it (its
/// task is then remembered), never when a rejected one did, and otherwise when its task was
/// woken by, or read, a selected packet before.
#[inline(always)]
fn flow_wake_passes(here: &Here, woken: Task, reading: bool) -> bool {
    match flow::verdict() {
        Verdict::Reject => false,
        Verdict::Pass => {
            let keep = sched_passes_reading(here, woken, None, || reading);
            if keep {
                flow::select_task(woken.tid);
            }
            keep
        }
        Verdict::Unknown => {
            flow::task_selected(woken.tid) && sched_passes_reading(here, woken, None, || reading)
        }
    }
}

#[inline(always)]
fn is_ksoftirqd(comm: &[u8; NAME_LEN]) -> bool {
    comm[..9] == *b"ksoftirqd"
}

// sched:sched_waking
wake_program!(
    sched_waking,
    "sched_waking",
    sched_waking_btf,
    SchedWaking,
    WakingComm,
    WakingPid,
    WakingPrio,
    WakingCpu
);

// sched:sched_wakeup
wake_program!(
    sched_wakeup,
    "sched_wakeup",
    sched_wakeup_btf,
    SchedWakeup,
    WakeupComm,
    WakeupPid,
    WakeupPrio,
    WakeupCpu
);

/// `sched:sched_switch`: kept as `sched_passes` says for the tasks switched in and out.
#[tracepoint]
pub fn sched_switch(ctx: TracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    let next = Task {
        tid: field(&ctx, Slot::SwitchNextPid),
        ptr: 0,
    };
    on_switch(next, 0, |ev| {
        ev.addr = field(&ctx, Slot::SwitchPrevState);
        ev.arg0 = field(&ctx, Slot::SwitchPrevPid);
        ev.arg2 = field(&ctx, Slot::SwitchNextPrio);
        ev.name = field(&ctx, Slot::SwitchNextComm);
    });
    0
}

/// `sched_switch(bool preempt, struct task_struct *prev, struct task_struct *next,
/// unsigned int prev_state)` as tp_btf: the same event as the classic tracepoint.
#[btf_tracepoint(function = "sched_switch")]
pub fn sched_switch_btf(ctx: BtfTracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    let prev: u64 = ctx.arg(1);
    let next: u64 = ctx.arg(2);
    let next_task = Task {
        tid: read(next, Member::TaskPid),
        ptr: next,
    };
    on_switch(next_task, prev, |ev| {
        let preempt: u64 = ctx.arg(0);
        let state: u64 = ctx.arg(3);
        ev.addr = report_state(preempt & 0xff != 0, state as u32);
        ev.arg0 = read(prev, Member::TaskPid);
        ev.arg2 = read(next, Member::TaskPrio);
        read_name(next, Member::TaskComm, &mut ev.name);
    });
    0
}

/// The `prev_state` the classic tracepoint reports (`__trace_sched_switch_state`): one bit
/// of TASK_REPORT for a task that blocked, 0 for a runnable one, TASK_REPORT_MAX when
/// preempted, TASK_REPORT_IDLE for an idle kernel thread.
#[inline(always)]
fn report_state(preempt: bool, state: u32) -> u64 {
    const TASK_REPORT: u32 = 0x7f;
    const TASK_IDLE: u32 = 0x402;
    const TASK_REPORT_IDLE: u64 = 0x80;
    const TASK_REPORT_MAX: u64 = 0x100;
    if preempt {
        return TASK_REPORT_MAX;
    }
    if state == TASK_IDLE {
        return TASK_REPORT_IDLE;
    }
    let state = state & TASK_REPORT;
    if state == 0 {
        0
    } else {
        1 << (31 - state.leading_zeros())
    }
}

/// A switch from the current task (`prev_ptr` its `task_struct` in a BTF program, else 0)
/// to `next`: emitted when kept, `fill` writing what the tracepoint says.
#[inline(always)]
fn on_switch(next: Task, prev_ptr: u64, fill: impl FnOnce(&mut Event)) {
    let here = here();
    let prev = Task {
        tid: here.tid,
        ptr: prev_ptr,
    };
    // The previous task's stint ends: what waited for it goes out.
    batch::close();
    // Looked up once: for the filter, and whether the switch can wait for next's exit.
    let next_reading = journey_mode() && next.reading();
    let keep = if flow::active() {
        // A switch ends the packet context on this CPU.
        flow::set_verdict(Verdict::Unknown);
        flow::task_selected(next.tid) && sched_passes(&here, next, Some(prev))
    } else {
        sched_passes_reading(&here, next, Some(prev), || next_reading)
    };
    if keep {
        let fill = |ev: &mut Event| {
            ev.arg1 = next.tid;
            fill(ev);
        };
        // A task inside a traced syscall switched in: the switch waits for its exit.
        match batch::task_batch().filter(|_| next_reading) {
            Some(task) => task.add(&here, EventKind::SchedSwitch, fill),
            None => emit(&here, EventKind::SchedSwitch, fill),
        }
    }
}
