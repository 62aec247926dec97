//! Interrupt programs: `irq:irq_handler_entry/exit` (hard IRQs) and
//! `irq:softirq_raise/entry/exit` (softirqs). With a flow filter, the network IRQs and the
//! NET_RX raise and entry are held back (`flow`) until a selected packet needs them.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use tracer_common::{EventKind, NET_RX_SOFTIRQ, Slot};

use crate::{
    emit::emit,
    fields::field,
    filter::{Here, here, network_irq, packet_passes},
    flow::{self, IRQ_EXIT},
    globals::journey_mode,
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
    let here = here();
    let irq: u32 = field(&ctx, Slot::IrqEntryIrq);
    if irq_passes(&here, irq) {
        if flow::active() {
            flow::hold_irq_entry(&here, irq);
        } else {
            emit(&here, EventKind::IrqHandlerEntry, |ev| ev.arg0 = irq);
        }
    }
    0
}

/// `irq:irq_handler_exit`: `arg0` = irq, `arg1` = handler return.
#[tracepoint]
pub fn irq_handler_exit(ctx: TracePointContext) -> u32 {
    let here = here();
    let irq: u32 = field(&ctx, Slot::IrqExitIrq);
    if irq_passes(&here, irq) {
        let ret: u32 = field(&ctx, Slot::IrqExitRet);
        if flow::active() {
            flow::hold(&here, IRQ_EXIT, EventKind::IrqHandlerExit, irq, ret);
        } else {
            emit(&here, EventKind::IrqHandlerExit, |ev| {
                ev.arg0 = irq;
                ev.arg1 = ret;
            });
        }
    }
    0
}

/// Whether a softirq event is kept: every vector in event mode, only NET_RX in journey
/// mode. Returns the vector.
#[inline(always)]
fn softirq_passes(here: &Here, ctx: &TracePointContext, slot: Slot) -> Option<u32> {
    let vec: u32 = field(ctx, slot);
    (packet_passes(here) && (vec == NET_RX_SOFTIRQ || !journey_mode())).then_some(vec)
}

/// `irq:softirq_raise`: `arg0` = vector.
#[tracepoint]
pub fn softirq_raise(ctx: TracePointContext) -> u32 {
    let here = here();
    if let Some(vec) = softirq_passes(&here, &ctx, Slot::SoftirqRaiseVec) {
        if !flow::active() {
            emit(&here, EventKind::SoftirqRaise, |ev| ev.arg0 = vec);
        } else if vec == NET_RX_SOFTIRQ {
            flow::hold_raise(&here, vec);
        }
    }
    0
}

/// `irq:softirq_entry`: `arg0` = vector.
#[tracepoint]
pub fn softirq_entry(ctx: TracePointContext) -> u32 {
    let here = here();
    if let Some(vec) = softirq_passes(&here, &ctx, Slot::SoftirqEntryVec) {
        if !flow::active() {
            emit(&here, EventKind::SoftirqEntry, |ev| ev.arg0 = vec);
        } else if vec == NET_RX_SOFTIRQ {
            flow::hold_softirq_entry(&here, vec);
        }
    }
    0
}

/// `irq:softirq_exit`: `arg0` = vector.
#[tracepoint]
pub fn softirq_exit(ctx: TracePointContext) -> u32 {
    let here = here();
    if let Some(vec) = softirq_passes(&here, &ctx, Slot::SoftirqExitVec) {
        let keep = !flow::active() || (vec == NET_RX_SOFTIRQ && flow::end_softirq());
        if keep {
            emit(&here, EventKind::SoftirqExit, |ev| ev.arg0 = vec);
        }
    }
    0
}
