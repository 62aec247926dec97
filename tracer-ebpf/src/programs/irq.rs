//! Interrupt programs: `irq:irq_handler_entry/exit` (hard IRQs) and
//! `irq:softirq_raise/entry/exit` (softirqs). With a flow filter, the network IRQs and the
//! NET_RX raise and entry are held back (`flow`) until a selected packet needs them.

use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use tracer_common::{EventKind, FLAG_RAISE, NET_RX_SOFTIRQ, Slot};

use crate::{
    batch,
    emit::emit,
    fields::field,
    filter::{Here, here, network_irq, packet_passes},
    flow::{self, IRQ_EXIT},
    globals::{BATCHING, global_u32, journey_mode},
    maps::NET_RX_RAISE,
};

/// Whether an IRQ event is kept: in journey mode, or with a flow filter, only the
/// interrupts of network devices.
#[inline(always)]
fn irq_passes(here: &Here, irq: u32) -> bool {
    packet_passes(here) && ((!journey_mode() && !flow::active()) || network_irq(irq))
}

/// `irq:irq_handler_entry`: `arg0` = irq.
#[tracepoint]
pub fn irq_handler_entry(ctx: TracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    on_irq_entry(field(&ctx, Slot::IrqEntryIrq));
    0
}

/// `irq_handler_entry(int irq, struct irqaction *action)` as tp_btf.
#[btf_tracepoint(function = "irq_handler_entry")]
pub fn irq_handler_entry_btf(ctx: BtfTracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    on_irq_entry(ctx.arg::<u64>(0) as u32);
    0
}

#[inline(always)]
fn on_irq_entry(irq: u32) {
    let here = here();
    if irq_passes(&here, irq) {
        if flow::active() {
            flow::hold_irq_entry(&here, irq);
        } else {
            emit(&here, EventKind::IrqHandlerEntry, |ev| ev.arg0 = irq);
        }
    }
}

/// `irq:irq_handler_exit`: `arg0` = irq, `arg1` = handler return.
#[tracepoint]
pub fn irq_handler_exit(ctx: TracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    on_irq_exit(field(&ctx, Slot::IrqExitIrq), || {
        field(&ctx, Slot::IrqExitRet)
    });
    0
}

/// `irq_handler_exit(int irq, struct irqaction *action, int ret)` as tp_btf.
#[btf_tracepoint(function = "irq_handler_exit")]
pub fn irq_handler_exit_btf(ctx: BtfTracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    on_irq_exit(ctx.arg::<u64>(0) as u32, || ctx.arg::<u64>(2) as u32);
    0
}

#[inline(always)]
fn on_irq_exit(irq: u32, ret: impl FnOnce() -> u32) {
    let here = here();
    if irq_passes(&here, irq) {
        let ret = ret();
        if flow::active() {
            flow::hold(&here, IRQ_EXIT, EventKind::IrqHandlerExit, irq, ret);
        } else {
            emit(&here, EventKind::IrqHandlerExit, |ev| {
                ev.arg0 = irq;
                ev.arg1 = ret;
            });
        }
    }
}

/// Whether a softirq event is kept: every vector in event mode, only NET_RX in journey
/// mode.
#[inline(always)]
fn softirq_passes(here: &Here, vec: u32) -> bool {
    packet_passes(here) && (vec == NET_RX_SOFTIRQ || !journey_mode())
}

/// A classic softirq tracepoint and its tp_btf twin (`(unsigned int vec_nr)`): both hand
/// the vector to `$on`.
macro_rules! softirq_program {
    ($name:ident, $tp:literal, $btf:ident, $slot:ident, $on:ident) => {
        #[doc = concat!("`irq:", stringify!($name), "`: `arg0` = vector.")]
        #[tracepoint]
        pub fn $name(ctx: TracePointContext) -> u32 {
            if crate::globals::bench_floor() {
                return 0;
            }
            $on(field(&ctx, Slot::$slot));
            0
        }

        #[doc = concat!("`", stringify!($name), "(unsigned int vec_nr)` as tp_btf.")]
        #[btf_tracepoint(function = $tp)]
        pub fn $btf(ctx: BtfTracePointContext) -> u32 {
            if crate::globals::bench_floor() {
                return 0;
            }
            $on(ctx.arg::<u64>(0) as u32);
            0
        }
    };
}

softirq_program!(
    softirq_raise,
    "softirq_raise",
    softirq_raise_btf,
    SoftirqRaiseVec,
    on_raise
);
softirq_program!(
    softirq_entry,
    "softirq_entry",
    softirq_entry_btf,
    SoftirqEntryVec,
    on_softirq_entry
);
softirq_program!(
    softirq_exit,
    "softirq_exit",
    softirq_exit_btf,
    SoftirqExitVec,
    on_softirq_exit
);

#[inline(always)]
fn on_raise(vec: u32) {
    let here = here();
    if softirq_passes(&here, vec) {
        if flow::active() {
            if vec == NET_RX_SOFTIRQ {
                flow::hold_raise(&here, vec);
            }
        } else if vec == NET_RX_SOFTIRQ && folds_raise() {
            note_raise();
        } else if vec != NET_RX_SOFTIRQ || !batch::hold_raise(&here, vec) {
            emit(&here, EventKind::SoftirqRaise, |ev| ev.arg0 = vec);
        }
    }
}

#[inline(always)]
fn on_softirq_entry(vec: u32) {
    let here = here();
    if softirq_passes(&here, vec) {
        if flow::active() {
            if vec == NET_RX_SOFTIRQ {
                flow::hold_softirq_entry(&here, vec);
            }
        } else if vec != NET_RX_SOFTIRQ || !batch::start_run(&here, vec) {
            let raise = (vec == NET_RX_SOFTIRQ && folds_raise()).then(take_raise);
            emit(&here, EventKind::SoftirqEntry, |ev| {
                ev.arg0 = vec;
                if let Some(ts) = raise {
                    ev.flags = FLAG_RAISE;
                    ev.addr2 = ts;
                }
            });
        }
    }
}

#[inline(always)]
fn on_softirq_exit(vec: u32) {
    let here = here();
    if softirq_passes(&here, vec) {
        if flow::active() {
            if vec == NET_RX_SOFTIRQ && flow::end_softirq() {
                emit(&here, EventKind::SoftirqExit, |ev| ev.arg0 = vec);
            }
        } else if vec != NET_RX_SOFTIRQ || !batch::end_run(&here, vec) {
            emit(&here, EventKind::SoftirqExit, |ev| ev.arg0 = vec);
        }
    }
}

/// Whether a NET_RX raise travels on its run's entry (`FLAG_RAISE`) instead of as an event:
/// journey mode without batching (a flow filter holds the raise its own way, checked
/// before). A ring reservation saved per run; user space unfolds it (`split_record`).
#[inline(always)]
fn folds_raise() -> bool {
    journey_mode() && global_u32(&BATCHING) == 0
}

/// Notes this CPU's first NET_RX raise since its last entry (`NET_RX_RAISE`).
#[inline(always)]
fn note_raise() {
    if let Some(slot) = NET_RX_RAISE.get_ptr_mut(0) {
        // SAFETY: a per-CPU slot. A raise in a hard IRQ that interrupts `take_raise` finds
        // the slot still set (it is not the first raise) and leaves it.
        unsafe {
            if *slot == 0 {
                *slot = bpf_ktime_get_ns();
            }
        }
    }
}

/// This CPU's first NET_RX raise since its last entry, 0 for none; the slot is cleared.
#[inline(always)]
fn take_raise() -> u64 {
    match NET_RX_RAISE.get_ptr_mut(0) {
        // SAFETY: as in note_raise.
        Some(slot) => unsafe {
            let ts = *slot;
            if ts != 0 {
                *slot = 0;
            }
            ts
        },
        None => 0,
    }
}
