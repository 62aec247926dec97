//! Interrupt programs: `irq:irq_handler_entry/exit` (hard IRQs) and
//! `irq:softirq_raise/entry/exit` (softirqs).

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use tracer_common::{EventKind, NET_RX_SOFTIRQ, Slot};

use crate::{
    emit::emit,
    fields::field,
    filter::{here, network_irq, packet_passes},
    globals::journey_mode,
};

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

// irq:irq_handler_entry
irq_program!(
    irq_handler_entry,
    IrqHandlerEntry,
    IrqEntryIrq,
    |ctx, ev| {}
);

// irq:irq_handler_exit
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

// irq:softirq_raise, irq:softirq_entry, irq:softirq_exit
softirq_program!(softirq_raise, SoftirqRaise, SoftirqRaiseVec);
softirq_program!(softirq_entry, SoftirqEntry, SoftirqEntryVec);
softirq_program!(softirq_exit, SoftirqExit, SoftirqExitVec);
