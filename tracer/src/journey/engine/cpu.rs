//! Per-CPU interrupt context: the NIC IRQ in progress, the NET_RX raise waiting for its
//! softirq, the NET_RX softirq in progress, and stamping that context onto a packet.

use std::net::IpAddr;

use tracer_common::{Event, NET_RX_SOFTIRQ};

use rustc_hash::FxHashMap;

use super::{Engine, Open};
use crate::journey::model::Shared;

#[derive(Clone, Copy, Debug, Default)]
pub(super) struct IrqSpan {
    pub irq: u32,
    pub entry: u64,
    pub exit: Option<u64>,
}

#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Raise {
    pub ts: u64,
    pub irq: Option<IrqSpan>,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct SoftirqRun {
    pub entry: u64,
    pub cause: Option<Raise>,
    pub in_ksoftirqd: bool,
}

#[derive(Clone, Debug, Default)]
pub(super) struct CpuState {
    pub in_irq: Option<IrqSpan>,
    pub raise: Option<Raise>,
    pub softirq: Option<SoftirqRun>,
    /// A NET_RX entry or exit has been seen: the softirq context is known.
    pub softirq_known: bool,
    /// Packets since the last napi_poll on this CPU, in order.
    pub batch: Vec<u64>,
    /// GRO entries not yet received, in order (journey ids).
    pub gro_pending: Vec<u64>,
    /// The packet received last, until its sk_data_ready.
    pub last_received: Option<u64>,
    /// The packet received last was a control segment (its sk_data_ready, if any, wakes
    /// nobody for data: a FIN, the handshake's last ACK waking accept()).
    pub last_was_control: bool,
    /// The packet enqueued last, until the first sched_waking after it.
    pub last_ready: Option<u64>,
    /// The addresses record (`FLAG_ADDRS`) that precedes its packet's record: (skb,
    /// family, source, destination).
    pub addrs: Option<(u64, &'static str, IpAddr, IpAddr)>,
}

impl Engine {
    pub(super) fn on_irq_entry(&mut self, event: &Event) {
        self.cpu(event.cpu).in_irq = Some(IrqSpan {
            irq: event.arg0,
            entry: event.ts,
            exit: None,
        });
    }

    pub(super) fn on_irq_exit(&mut self, event: &Event) {
        let state = self.cpu(event.cpu);
        state.in_irq = None;
        if let Some(Raise {
            irq: Some(span), ..
        }) = &mut state.raise
            && span.irq == event.arg0
            && span.exit.is_none()
        {
            span.exit = Some(event.ts);
        }
    }

    pub(super) fn on_softirq_raise(&mut self, event: &Event) {
        if event.arg0 != NET_RX_SOFTIRQ {
            return;
        }
        let nic_irq = self
            .cpu(event.cpu)
            .in_irq
            .filter(|span| self.config.irq_devices.contains_key(&span.irq));
        let state = self.cpu(event.cpu);
        if state.raise.is_none() {
            state.raise = Some(Raise {
                ts: event.ts,
                irq: nic_irq,
            });
        } else if let Some(raise) = &mut state.raise
            && raise.irq.is_none()
            && nic_irq.is_some()
        {
            raise.irq = nic_irq;
        }
    }

    pub(super) fn on_softirq_entry(&mut self, event: &Event) {
        if event.arg0 != NET_RX_SOFTIRQ {
            return;
        }
        let in_ksoftirqd = self.comm(event.tid).starts_with("ksoftirqd/");
        let state = self.cpu(event.cpu);
        state.softirq = Some(SoftirqRun {
            entry: event.ts,
            cause: state.raise.take(),
            in_ksoftirqd,
        });
        state.softirq_known = true;
        state.batch.clear();
    }

    pub(super) fn on_softirq_exit(&mut self, event: &Event) {
        if event.arg0 != NET_RX_SOFTIRQ {
            return;
        }
        let state = self.cpu(event.cpu);
        state.softirq = None;
        state.softirq_known = true;
        state.batch.clear();
        state.last_received = None;
        state.last_was_control = false;
        state.last_ready = None;
    }
}

/// Stamps the NET_RX context of `cpu` (its state `state`) onto a journey not yet in the
/// open table: stamped before it is inserted, it is not looked up again.
pub(super) fn stamp_softirq(
    open: &mut Open,
    state: &CpuState,
    irq_names: &FxHashMap<u32, Shared>,
    cpu: u16,
) {
    let (run, known) = (state.softirq, state.softirq_known);
    let journey = &mut open.journey;
    journey.cpu_softirq = Some(cpu);
    match run {
        Some(run) => {
            journey.ts.softirq_entry = Some(run.entry);
            journey.softirq_in_ksoftirqd = run.in_ksoftirqd;
            if let Some(cause) = run.cause {
                journey.ts.softirq_raise = Some(cause.ts);
                match cause.irq {
                    Some(span) => {
                        journey.irq = Some(span.irq);
                        journey.ts.irq_entry = Some(span.entry);
                        journey.ts.irq_exit = span.exit;
                        journey.cpu_irq = Some(cpu);
                        journey.irq_name = irq_names.get(&span.irq).cloned();
                    }
                    None => open.raised_without_irq = true,
                }
            } else {
                open.softirq_unknown = true;
            }
        }
        None => open.softirq_unknown = !known,
    }
}
