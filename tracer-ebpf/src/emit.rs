//! Writing one [`Event`] into the `EVENTS` ring buffer: stamp, fill, then reserve and submit
//! with batched wakeups (or, with `--batched`, add it to the CPU's NET_RX run batch,
//! `batch`), and count a failed reserve in `LOST`.
//!
//! Why the wakeups are paced by each CPU's own bytes (`LOST`'s `written`), not by the bytes
//! waiting in the ring: asking the ring (`bpf_ringbuf_query`) is one more helper call and
//! reads positions another CPU writes. An EAGAIN recvfrom, two events, measured about 37 ns
//! faster without it (medians of 8 runs here).

use aya_ebpf::{
    bindings::{BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::bpf_ktime_get_ns,
};
use tracer_common::{Event, EventKind, FLAG_LOST_BEFORE};

/// One event's size in the ring, before the record header.
const EVENT_BYTES: u64 = core::mem::size_of::<Event>() as u64;

use crate::{
    batch,
    filter::Here,
    globals::{WAKEUP_BYTES, global_u32},
    maps::{EVENTS, LOST},
};

/// Stamps one event; `fill` writes the payload. Into this CPU's NET_RX run batch when one is
/// open (`--batched`, `batch`), else reserved and submitted on its own.
#[inline(always)]
pub(crate) fn emit(here: &Here, kind: EventKind, fill: impl FnOnce(&mut Event)) {
    match batch::open_run() {
        Some(run) => run.add(here, kind, fill),
        None => emit_direct(here, kind, fill),
    }
}

/// Two events of one program that go out together (a packet's addresses and its record):
/// into the run batch, else in one reservation (a record of two events, which the ring
/// reader splits).
#[inline(always)]
pub(crate) fn emit_pair(
    here: &Here,
    kind: EventKind,
    first: impl FnOnce(&mut Event),
    second: impl FnOnce(&mut Event),
) {
    if let Some(run) = batch::open_run() {
        run.add(here, kind, first);
        run.add(here, kind, second);
        return;
    }
    match EVENTS.reserve::<[Event; 2]>(0) {
        Some(mut entry) => {
            let stamped = stamp(here, kind);
            let pair = entry.write([stamped, stamped]);
            first(&mut pair[0]);
            second(&mut pair[1]);
            let flags = account(&mut pair[0], record_bytes(2 * EVENT_BYTES));
            entry.submit(flags);
        }
        None => count_lost_n(2),
    }
}

/// Reserves, stamps and submits one event on its own.
#[inline(always)]
pub(crate) fn emit_direct(here: &Here, kind: EventKind, fill: impl FnOnce(&mut Event)) {
    match EVENTS.reserve::<Event>(0) {
        Some(mut entry) => {
            let event = entry.write(stamp(here, kind));
            fill(event);
            let flags = account(event, record_bytes(EVENT_BYTES));
            entry.submit(flags);
        }
        None => count_lost_n(1),
    }
}

/// A new event of `kind` in this context, stamped now.
#[inline(always)]
pub(crate) fn stamp(here: &Here, kind: EventKind) -> Event {
    Event {
        // SAFETY: a plain helper call.
        ts: unsafe { bpf_ktime_get_ns() },
        tgid: here.tgid,
        tid: here.tid,
        cpu: here.cpu as u16,
        kind: kind as u8,
        ..Event::ZERO
    }
}

/// Emits an event built earlier (held by `flow`), keeping its own stamp.
#[inline(always)]
pub(crate) fn emit_held(held: &Event) {
    match EVENTS.reserve::<Event>(0) {
        Some(mut entry) => {
            let event = entry.write(*held);
            let flags = account(event, record_bytes(EVENT_BYTES));
            entry.submit(flags);
        }
        None => count_lost_n(1),
    }
}

/// Accounts a record of `bytes` (`record_bytes`) about to be submitted on this CPU: flags
/// its first event if this CPU lost events since its previous record, and returns the
/// submit flags (`wakeup_flags`). One lookup of the CPU's `LOST` slot for both.
#[inline(always)]
pub(crate) fn account(first: &mut Event, bytes: u64) -> u64 {
    let Some(counter) = LOST.get_ptr_mut(0) else {
        // Never for a per-CPU array of one slot; the kernel's own wakeup policy then.
        return 0;
    };
    // SAFETY: a per-CPU slot, used only from this CPU with preemption off.
    let counter = unsafe { &mut *counter };
    if counter.lost != counter.reported {
        counter.reported = counter.lost;
        first.flags |= FLAG_LOST_BEFORE;
    }
    let before = counter.written;
    counter.written = before + bytes;
    wakeup_flags(before, before + bytes)
}

/// Counts `events` lost to a failed reserve or write.
#[inline(always)]
pub(crate) fn count_lost_n(events: u64) {
    if let Some(counter) = LOST.get_ptr_mut(0) {
        // SAFETY: as in account.
        unsafe { (*counter).lost += events };
    }
}

/// Bytes a record of `payload` bytes takes in the ring: the kernel's 8-byte header
/// (`BPF_RINGBUF_HDR_SZ`), rounded up to 8.
#[inline(always)]
pub(crate) const fn record_bytes(payload: u64) -> u64 {
    (payload + 8 + 7) & !7
}

/// Submit flags: a forced wakeup when this CPU's bytes written (`before` -> `after`) cross
/// a multiple of `WAKEUP_BYTES`, else none. User space sets it to the ring's size over
/// twice the number of CPUs (a power of two), so the bytes waiting reach half the ring at
/// most before some CPU wakes the reader, whichever CPUs write.
///
/// Why only at a crossing: forcing every submit once the threshold was passed made an
/// irq_work (a self-IPI, a VM exit here) per event until the reader caught up, which under a
/// flood was most events. The reader's poll timer and tokio's readiness ticks cover a
/// wakeup that lands while it drains.
#[inline(always)]
pub(crate) fn wakeup_flags(before: u64, after: u64) -> u64 {
    let threshold = u64::from(global_u32(&WAKEUP_BYTES));
    if threshold == 0 {
        return 0;
    }
    // A power of two (user space rounds it down): a mask, not two divisions.
    if (before ^ after) & !(threshold - 1) != 0 {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}
