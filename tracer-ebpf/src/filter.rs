//! Which events to keep: the context a tracepoint fired in ([`Here`]) checked against the
//! CPU, pid, ignore and journey-mode globals and the task maps.

use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_get_smp_processor_id};
use tracer_common::{ANY_CPU, IGNORE_SLOTS, NET_IRQ_BITS};

use crate::{
    globals::{
        FILTER_CPU, FILTER_TGID, IGNORE_TGIDS, NET_IRQ_FILTER, global_u32, journey_mode,
        net_irq_word,
    },
    stands::Task,
};

/// The context a tracepoint fired in, captured once per event.
pub(crate) struct Here {
    pub(crate) tgid: u32,
    pub(crate) tid: u32,
    pub(crate) cpu: u32,
}

/// The current context.
#[inline(always)]
pub(crate) fn here() -> Here {
    let pid_tgid = bpf_get_current_pid_tgid();
    Here {
        tgid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        // SAFETY: a plain helper call.
        cpu: unsafe { bpf_get_smp_processor_id() },
    }
}

/// Whether a tgid (or a main thread's tid) is one of `IGNORE_TGIDS`.
#[inline(always)]
pub(crate) fn ignored(id: u32) -> bool {
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
pub(crate) fn context_passes(here: &Here) -> bool {
    if !cpu_passes(here) || ignored(here.tgid) {
        return false;
    }
    let want = global_u32(&FILTER_TGID);
    want == 0 || here.tgid == want
}

/// For packet-path events: in journey mode only the CPU filter applies.
#[inline(always)]
pub(crate) fn packet_passes(here: &Here) -> bool {
    if journey_mode() {
        cpu_passes(here)
    } else {
        context_passes(here)
    }
}

/// For sched events about `subject` (the woken task, the task switched in); `prev` is the
/// task switched out, if any (the current task).
#[inline(always)]
pub(crate) fn sched_passes(here: &Here, subject: Task, prev: Option<Task>) -> bool {
    sched_passes_reading(here, subject, prev, || subject.reading())
}

/// [`sched_passes`], with `subject_reading` saying whether the subject is inside a traced
/// syscall (`stands`) when a caller has looked it up already.
#[inline(always)]
pub(crate) fn sched_passes_reading(
    here: &Here,
    subject: Task,
    prev: Option<Task>,
    subject_reading: impl FnOnce() -> bool,
) -> bool {
    if !cpu_passes(here) || ignored(subject.process()) {
        return false;
    }
    let want = global_u32(&FILTER_TGID);
    if journey_mode() {
        if want != 0 {
            return subject.filtered() || prev.is_some_and(Task::filtered);
        }
        return subject_reading() || prev.is_some_and(Task::reading);
    }
    !ignored(here.tgid) && (want == 0 || here.tgid == want || subject.filtered())
}

/// Whether an IRQ belongs to a network device (`NET_IRQS`); every IRQ passes when user
/// space could not tell which do, and so does an IRQ beyond the bitmap.
#[inline(always)]
pub(crate) fn network_irq(irq: u32) -> bool {
    if global_u32(&NET_IRQ_FILTER) == 0 || irq >= NET_IRQ_BITS {
        return true;
    }
    let word = net_irq_word((irq / 64) as usize);
    (word >> (irq % 64)) & 1 != 0
}
