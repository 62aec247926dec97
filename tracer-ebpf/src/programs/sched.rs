//! Scheduler programs: `sched:sched_waking`, `sched:sched_wakeup` and `sched:sched_switch`,
//! kept for the task they are about (the woken task, the tasks switched in and out).

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use tracer_common::{EventKind, NAME_LEN, Slot};

use crate::{
    emit::emit,
    fields::field,
    filter::{Here, here, sched_passes},
    flow::{self, Verdict},
    globals::journey_mode,
};

/// `sched_waking` / `sched_wakeup`: kept as `sched_passes` says for the woken task.
macro_rules! wake_program {
    ($name:ident, $kind:ident, $comm:ident, $pid:ident, $prio:ident, $cpu:ident) => {
        #[tracepoint]
        pub fn $name(ctx: TracePointContext) -> u32 {
            let here = here();
            let woken: u32 = field(&ctx, Slot::$pid);
            let comm: [u8; NAME_LEN] = field(&ctx, Slot::$comm);
            // ksoftirqd wakeups are kept too: NET_RX work moving to a thread.
            let keep = if flow::active() {
                flow_wake_passes(&here, woken)
            } else {
                sched_passes(&here, woken, None) || (journey_mode() && is_ksoftirqd(&comm))
            };
            if keep {
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

/// With a flow filter, a wakeup is kept when a selected packet on this CPU caused it (its
/// task is then remembered), never when a rejected one did, and otherwise when its task was
/// woken by, or read, a selected packet before.
#[inline(always)]
fn flow_wake_passes(here: &Here, woken: u32) -> bool {
    match flow::verdict() {
        Verdict::Reject => false,
        Verdict::Pass => {
            let keep = sched_passes(here, woken, None);
            if keep {
                flow::select_task(woken);
            }
            keep
        }
        Verdict::Unknown => flow::task_selected(woken) && sched_passes(here, woken, None),
    }
}

#[inline(always)]
fn is_ksoftirqd(comm: &[u8; NAME_LEN]) -> bool {
    comm[..9] == *b"ksoftirqd"
}

// sched:sched_waking
wake_program!(
    sched_waking,
    SchedWaking,
    WakingComm,
    WakingPid,
    WakingPrio,
    WakingCpu
);

// sched:sched_wakeup
wake_program!(
    sched_wakeup,
    SchedWakeup,
    WakeupComm,
    WakeupPid,
    WakeupPrio,
    WakeupCpu
);

/// `sched:sched_switch`: kept as `sched_passes` says for the tasks switched in and out.
#[tracepoint]
pub fn sched_switch(ctx: TracePointContext) -> u32 {
    let here = here();
    let next: u32 = field(&ctx, Slot::SwitchNextPid);
    let keep = if flow::active() {
        // A switch ends the packet context on this CPU.
        flow::set_verdict(Verdict::Unknown);
        flow::task_selected(next) && sched_passes(&here, next, Some(here.tid))
    } else {
        sched_passes(&here, next, Some(here.tid))
    };
    if keep {
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
