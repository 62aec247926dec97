//! The flow filter in the kernel: each packet's 5-tuple checked against the compiled
//! expression in `FLOW_OPS` (`tracer_common::flow`), and what follows from the verdict.
//!
//! With a filter, nothing about a rejected packet goes out: its own events, the socket
//! enqueue, the reader's wakeup, switch and read, and the interrupt context it ran in.
//! The context events (a network IRQ, the NET_RX raise, the softirq's entry) happen before
//! any packet is known, so they are held per CPU ([`HeldContext`]) and released, with their
//! own stamps, by the first selected packet of a softirq run; a run that selected nothing
//! ends without a trace. The ring buffer then carries work for the selected flows only.

use aya_ebpf::helpers::bpf_ktime_get_ns;
use tracer_common::{
    Event, EventKind,
    flow::{FlowTuple, eval, words},
};

use crate::{
    emit::emit_held,
    filter::Here,
    globals::{FLOW_LEN, GlobalFlowOps, global_u32},
    headers::Headers,
    maps::{FLOW_CONTEXT, FLOW_SKBS, FLOW_SOCKS, FLOW_TASKS},
};

/// [`HeldContext`] slots, in the order they are released.
pub(crate) const IRQ_ENTRY: usize = 0;
/// The network IRQ's exit.
pub(crate) const IRQ_EXIT: usize = 1;
/// The NET_RX raise the next softirq run will take.
pub(crate) const RAISE: usize = 2;
/// The NET_RX softirq run in progress.
pub(crate) const SOFTIRQ: usize = 3;
const SLOTS: usize = 4;

/// What the packet in progress on this CPU was found to be.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Verdict {
    /// No packet since the last softirq boundary or switch.
    Unknown = 0,
    /// The filter selected it.
    Pass = 1,
    /// The filter rejected it.
    Reject = 2,
}

/// Per CPU: the interrupt context held back, and the current packet's verdict.
#[repr(C)]
pub(crate) struct HeldContext {
    events: [Event; SLOTS],
    /// Bit per slot holding an event.
    valid: u32,
    /// 1 once the current softirq run's context went out.
    released: u32,
    verdict: u32,
    /// Selected packets since this CPU's last napi_poll.
    since_poll: u32,
}

/// Whether a flow filter is set.
#[inline(always)]
pub(crate) fn active() -> bool {
    global_u32(&FLOW_LEN) != 0
}

/// Whether the filter selects a packet with these headers (unreadable headers: no).
#[inline(always)]
pub(crate) fn selects(headers: &Headers) -> bool {
    if headers.version == 0 {
        return false;
    }
    let tuple = FlowTuple {
        version: headers.version,
        proto: headers.arg1 as u8,
        has_ports: headers.has_ports,
        sport: (headers.seq_ports >> 32) as u16,
        dport: (headers.seq_ports >> 48) as u16,
        saddr: words(&headers.saddr),
        daddr: words(&headers.daddr),
    };
    eval(&GlobalFlowOps, &tuple)
}

#[inline(always)]
fn held() -> Option<&'static mut HeldContext> {
    // SAFETY: a per-CPU slot, used only from this CPU by non-preemptible programs.
    FLOW_CONTEXT.get_ptr_mut(0).map(|ptr| unsafe { &mut *ptr })
}

/// Holds a context event in `slot` instead of emitting it.
#[inline(always)]
pub(crate) fn hold(here: &Here, slot: usize, kind: EventKind, arg0: u32, arg1: u32) {
    let Some(held) = held() else {
        return;
    };
    let slot = slot % SLOTS;
    held.events[slot] = Event {
        // SAFETY: a plain helper call.
        ts: unsafe { bpf_ktime_get_ns() },
        tgid: here.tgid,
        tid: here.tid,
        cpu: here.cpu as u16,
        kind: kind as u8,
        arg0,
        arg1,
        ..Event::ZERO
    };
    held.valid |= 1 << slot;
}

/// `irq_handler_entry` of a network IRQ: held; a previous IRQ's exit is stale.
#[inline(always)]
pub(crate) fn hold_irq_entry(here: &Here, irq: u32) {
    if let Some(held) = held() {
        held.valid &= !(1 << IRQ_EXIT);
    }
    hold(here, IRQ_ENTRY, EventKind::IrqHandlerEntry, irq, 0);
}

/// A NET_RX raise: held unless one is already waiting (the run takes the first).
#[inline(always)]
pub(crate) fn hold_raise(here: &Here, vec: u32) {
    if held().is_some_and(|held| held.valid & 1 << RAISE == 0) {
        hold(here, RAISE, EventKind::SoftirqRaise, vec, 0);
    }
}

/// A NET_RX softirq run starts: held until a selected packet needs it.
#[inline(always)]
pub(crate) fn hold_softirq_entry(here: &Here, vec: u32) {
    hold(here, SOFTIRQ, EventKind::SoftirqEntry, vec, 0);
    if let Some(held) = held() {
        held.released = 0;
        held.since_poll = 0;
        held.verdict = Verdict::Unknown as u32;
    }
}

/// A NET_RX softirq run ends: whether its exit goes out (its context did). The held events
/// it consumed are dropped; an IRQ or raise that came during the run stays for the next.
#[inline(always)]
pub(crate) fn end_softirq() -> bool {
    let Some(held) = held() else {
        return false;
    };
    let released = held.released != 0;
    if held.valid & 1 << SOFTIRQ != 0 {
        let entry = held.events[SOFTIRQ].ts;
        for slot in [IRQ_ENTRY, IRQ_EXIT, RAISE] {
            if held.events[slot].ts <= entry {
                held.valid &= !(1 << slot);
            }
        }
    }
    held.valid &= !(1 << SOFTIRQ);
    held.released = 0;
    held.verdict = Verdict::Unknown as u32;
    released
}

/// A selected packet: releases the held context (once per softirq run) and counts it for
/// the next napi_poll.
#[inline(always)]
pub(crate) fn release_context() {
    let Some(held) = held() else {
        return;
    };
    held.since_poll = held.since_poll.saturating_add(1);
    if held.released != 0 {
        return;
    }
    for slot in [IRQ_ENTRY, RAISE, IRQ_EXIT, SOFTIRQ] {
        if held.valid & 1 << slot != 0 {
            emit_held(&held.events[slot]);
        }
    }
    held.valid &= 1 << SOFTIRQ;
    if held.valid != 0 {
        held.released = 1;
    }
}

/// napi_poll: whether it goes out (a selected packet since the previous one on this CPU).
#[inline(always)]
pub(crate) fn take_poll() -> bool {
    match held() {
        Some(held) => {
            let selected = held.since_poll != 0;
            held.since_poll = 0;
            selected
        }
        None => false,
    }
}

/// Records the verdict on the packet in progress on this CPU.
#[inline(always)]
pub(crate) fn set_verdict(verdict: Verdict) {
    if let Some(held) = held() {
        held.verdict = verdict as u32;
    }
}

/// The verdict on the packet in progress on this CPU.
#[inline(always)]
pub(crate) fn verdict() -> Verdict {
    match held().map(|held| held.verdict) {
        Some(1) => Verdict::Pass,
        Some(2) => Verdict::Reject,
        _ => Verdict::Unknown,
    }
}

/// A packet's verdict at `netif_receive_skb`: remembered for the skb (its later events) and
/// for this CPU (the socket enqueue and wakeup that follow).
#[inline(always)]
pub(crate) fn judge_received(skb: u64, headers: &Headers) -> bool {
    let pass = selects(headers);
    if pass {
        select_skb(skb);
        release_context();
        set_verdict(Verdict::Pass);
    } else {
        // An skb freed where no tracepoint saw it may come back at the same address.
        forget_skb(skb);
        set_verdict(Verdict::Reject);
    }
    pass
}

/// Remembers a selected skb.
#[inline(always)]
pub(crate) fn select_skb(addr: u64) {
    let _ = FLOW_SKBS.insert(&addr, &1, 0);
}

/// Whether the skb at `addr` was selected (and is not yet freed).
#[inline(always)]
pub(crate) fn skb_selected(addr: u64) -> bool {
    // SAFETY: a read-only lookup of a plain u8 value.
    unsafe { FLOW_SKBS.get(&addr) }.is_some()
}

/// Forgets a freed skb; returns whether it was selected.
#[inline(always)]
pub(crate) fn forget_skb(addr: u64) -> bool {
    let selected = skb_selected(addr);
    if selected {
        let _ = FLOW_SKBS.remove(&addr);
    }
    selected
}

/// Remembers a socket a selected packet was queued on.
#[inline(always)]
pub(crate) fn select_sock(sk: u64) {
    // SAFETY: a read-only lookup of a plain u8 value.
    if unsafe { FLOW_SOCKS.get(&sk) }.is_none() {
        let _ = FLOW_SOCKS.insert(&sk, &1, 0);
    }
}

/// Whether a socket had a selected packet queued.
#[inline(always)]
pub(crate) fn sock_selected(sk: u64) -> bool {
    // SAFETY: a read-only lookup of a plain u8 value.
    unsafe { FLOW_SOCKS.get(&sk) }.is_some()
}

/// Forgets a destroyed socket; returns whether it was selected.
#[inline(always)]
pub(crate) fn forget_sock(sk: u64) -> bool {
    let selected = sock_selected(sk);
    if selected {
        let _ = FLOW_SOCKS.remove(&sk);
    }
    selected
}

/// Remembers a thread woken by, or reading, a selected packet.
#[inline(always)]
pub(crate) fn select_task(tid: u32) {
    if !task_selected(tid) {
        let _ = FLOW_TASKS.insert(&tid, &1, 0);
    }
}

/// Whether a thread was woken by, or read, a selected packet.
#[inline(always)]
pub(crate) fn task_selected(tid: u32) -> bool {
    // SAFETY: a read-only lookup of a plain u8 value.
    unsafe { FLOW_TASKS.get(&tid) }.is_some()
}
