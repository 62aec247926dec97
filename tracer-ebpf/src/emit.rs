//! Writing one [`Event`] into the `EVENTS` ring buffer: reserve, stamp, fill, submit with
//! batched wakeups, and count a failed reserve in `LOST`.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::bpf_ktime_get_ns,
};
use tracer_common::{Event, EventKind, FLAG_LOST_BEFORE};

use crate::{
    filter::Here,
    globals::{WAKEUP_BYTES, global_u32},
    maps::{EVENTS, LOST},
};

/// Reserves, stamps and submits one event; `fill` writes the payload.
#[inline(always)]
pub(crate) fn emit(here: &Here, kind: EventKind, fill: impl FnOnce(&mut Event)) {
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
            mark_lost(event);
            entry.submit(wakeup_flags());
        }
        None => count_lost(),
    }
}

/// Emits an event built earlier (held by `flow`), keeping its own stamp.
#[inline(always)]
pub(crate) fn emit_held(held: &Event) {
    match EVENTS.reserve::<Event>(0) {
        Some(mut entry) => {
            let event = entry.write(*held);
            mark_lost(event);
            entry.submit(wakeup_flags());
        }
        None => count_lost(),
    }
}

/// Flags the event if this CPU lost events since its previous one.
#[inline(always)]
fn mark_lost(event: &mut Event) {
    if let Some(counter) = LOST.get_ptr_mut(0) {
        // SAFETY: a per-CPU slot, used only from this CPU with preemption off.
        let counter = unsafe { &mut *counter };
        if counter.lost != counter.reported {
            counter.reported = counter.lost;
            event.flags |= FLAG_LOST_BEFORE;
        }
    }
}

/// Counts a failed reserve.
#[inline(always)]
fn count_lost() {
    if let Some(counter) = LOST.get_ptr_mut(0) {
        // SAFETY: as in mark_lost.
        unsafe { (*counter).lost += 1 };
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
