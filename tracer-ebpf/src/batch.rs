//! Batching events per CPU (journey mode with `--batched`, `BATCHING`): several events in
//! one ring record.
//!
//! Every event reserves space in the one ring buffer all CPUs share, under its lock; a
//! loopback ping-pong packet made twelve reservations. (On 2 CPUs batching measured no
//! cheaper, docs/DESIGN.md "Batches"; it is for hosts where that lock contends.) Two kinds of stretch
//! on a CPU have an end that is sure to come soon, and their events wait in this CPU's
//! [`CpuBatches`] until it does, then go out with one `bpf_ringbuf_output`:
//! - a NET_RX softirq run (`run`): from its softirq_entry to its exit the CPU runs nothing
//!   but that softirq and interrupts nested in it. The NET_RX raise before the run is held
//!   and put first.
//! - a reader's stint in a recv-family or wait syscall (`task`): the switch onto the CPU of
//!   a task inside one, and its socket reads, wait for the syscall's exit. Every context
//!   switch writes out what is waiting, so nothing outlives its task's time on the CPU.
//!
//! A full batch goes out early. Events keep their own stamps and contents: user space splits
//! each record into 64-byte events, so the stream and the recordings are what direct
//! emission would have made, with some events delivered a little later (the reorder window
//! puts them back in time order).
//!
//! Nesting: an interrupt can stop a program while it changes a batch, and the nested
//! program would then write the same slot. Every change happens with the batch's `busy`
//! set; a program that finds it set emits directly instead. Programs on one CPU nest
//! strictly, so an interrupted change resumes after the nested one finished.

use tracer_common::{EVENT_SIZE, Event, EventKind};

use crate::{
    emit::{account, count_lost_n, record_bytes, stamp},
    filter::Here,
    globals::{BATCHING, global_u32},
    maps::{BATCHES, EVENTS},
};

/// Events a NET_RX run's batch holds; a fuller run is written in several records.
const RUN_LEN: usize = 16;
/// Events a reader's batch holds (a switch, its reads, its exit).
const TASK_LEN: usize = 8;

/// Events waiting for the end of their stretch.
#[repr(C)]
pub(crate) struct Batch<const N: usize> {
    events: [Event; N],
    len: u32,
    /// 1 while a program changes this batch.
    busy: u32,
}

/// Per CPU: the batch of the NET_RX run in progress, a raise waiting for its run, and the
/// batch of the task on the CPU.
#[repr(C)]
pub(crate) struct CpuBatches {
    run: Batch<RUN_LEN>,
    task: Batch<TASK_LEN>,
    /// The first NET_RX raise since this CPU's last run (valid when `has_raise`).
    raise: Event,
    /// 1 between a NET_RX softirq_entry and its exit.
    in_run: u32,
    has_raise: u32,
}

/// This CPU's batches, when batching is on.
#[inline(always)]
fn batches() -> Option<&'static mut CpuBatches> {
    if global_u32(&BATCHING) == 0 {
        return None;
    }
    // SAFETY: a per-CPU slot, used only from this CPU; concurrent use by nested programs is
    // excluded by `busy` (module docs).
    BATCHES.get_ptr_mut(0).map(|ptr| unsafe { &mut *ptr })
}

/// The batch of this CPU's NET_RX run, when one is in progress and no program is changing
/// it: every event emitted goes there.
#[inline(always)]
pub(crate) fn open_run() -> Option<&'static mut Batch<RUN_LEN>> {
    batches()
        .filter(|cpu| cpu.in_run != 0)
        .map(|cpu| &mut cpu.run)
        .filter(|run| run.busy == 0)
}

impl<const N: usize> Batch<N> {
    /// Adds an event; a full batch goes out.
    #[inline(always)]
    pub(crate) fn add(&mut self, here: &Here, kind: EventKind, fill: impl FnOnce(&mut Event)) {
        self.busy = 1;
        self.push(here, kind, fill);
        self.busy = 0;
    }

    /// Adds the event that ends the stretch, and writes the batch out.
    #[inline(always)]
    pub(crate) fn close_with(
        &mut self,
        here: &Here,
        kind: EventKind,
        fill: impl FnOnce(&mut Event),
    ) {
        self.busy = 1;
        self.push(here, kind, fill);
        self.write_out();
        self.busy = 0;
    }

    /// Appends with `busy` set; writes the batch out once full.
    #[inline(always)]
    fn push(&mut self, here: &Here, kind: EventKind, fill: impl FnOnce(&mut Event)) {
        let len = self.len();
        if let Some(slot) = self.events.get_mut(len) {
            *slot = stamp(here, kind);
            fill(slot);
            self.len = len as u32 + 1;
        }
        if self.len() >= N {
            self.write_out();
        }
    }

    /// The events waiting. A volatile read: the compiler, knowing the last push left it
    /// below N, would drop the bounds check the verifier needs.
    #[inline(always)]
    fn len(&self) -> usize {
        // SAFETY: a plain u32 of the per-CPU value.
        unsafe { core::ptr::read_volatile(&self.len) as usize }
    }

    /// Writes the events out as one record and empties the batch; a failed write counts
    /// every event in it as lost.
    #[inline(always)]
    fn write_out(&mut self) {
        let len = self.len();
        self.len = 0;
        if len == 0 || len > N {
            return;
        }
        let flags = account(&mut self.events[0], record_bytes((len * EVENT_SIZE) as u64));
        // SAFETY: `len` events of the per-CPU value, written by `push`.
        let events = unsafe { core::slice::from_raw_parts(self.events.as_ptr(), len) };
        if EVENTS.output::<[Event]>(events, flags).is_err() {
            count_lost_n(len as u64);
        }
    }
}

/// A NET_RX raise outside a run: held for the run it starts (the first raise only: the
/// run's wait begins there). True when held; false: emit it directly.
#[inline(always)]
pub(crate) fn hold_raise(here: &Here, vec: u32) -> bool {
    let Some(cpu) = batches() else {
        return false;
    };
    if cpu.run.busy != 0 || cpu.in_run != 0 || cpu.has_raise != 0 {
        return false;
    }
    cpu.run.busy = 1;
    cpu.raise = stamp(here, EventKind::SoftirqRaise);
    cpu.raise.arg0 = vec;
    cpu.has_raise = 1;
    cpu.run.busy = 0;
    true
}

/// A NET_RX run starts: its batch opens with the held raise and the entry. False when
/// batching is off (emit the entry directly).
#[inline(always)]
pub(crate) fn start_run(here: &Here, vec: u32) -> bool {
    let Some(cpu) = batches() else {
        return false;
    };
    if cpu.run.busy != 0 {
        return false;
    }
    cpu.run.busy = 1;
    // Left over from a run whose exit was not seen (the programs were attaching).
    cpu.run.write_out();
    if cpu.has_raise != 0 {
        cpu.run.events[0] = cpu.raise;
        cpu.run.len = 1;
        cpu.has_raise = 0;
    }
    cpu.in_run = 1;
    cpu.run
        .push(here, EventKind::SoftirqEntry, |ev| ev.arg0 = vec);
    cpu.run.busy = 0;
    true
}

/// The NET_RX run ends: the exit closes its batch, which goes out. False when no batch was
/// open (emit the exit directly).
#[inline(always)]
pub(crate) fn end_run(here: &Here, vec: u32) -> bool {
    let Some(cpu) = batches() else {
        return false;
    };
    if cpu.in_run == 0 || cpu.run.busy != 0 {
        return false;
    }
    cpu.run.busy = 1;
    cpu.run
        .push(here, EventKind::SoftirqExit, |ev| ev.arg0 = vec);
    cpu.run.write_out();
    cpu.in_run = 0;
    cpu.run.busy = 0;
    true
}

/// This CPU's task batch, when batching is on, no NET_RX run is in progress (an interrupt
/// in a run emits into the run's batch) and no program is changing it. Only events sure
/// to be followed by a syscall exit on this CPU or a context switch go there: a switch onto
/// the CPU of a task inside a recv-family or wait syscall, a socket read inside one, and
/// that syscall's exit (`Batch::close_with`).
#[inline(always)]
pub(crate) fn task_batch() -> Option<&'static mut Batch<TASK_LEN>> {
    batches()
        .filter(|cpu| cpu.in_run == 0)
        .map(|cpu| &mut cpu.task)
        .filter(|task| task.busy == 0)
}

/// The end of a stint (a context switch, a syscall exit that emits nothing): what waited
/// goes out.
#[inline(always)]
pub(crate) fn close() {
    if let Some(task) = task_batch()
        && task.len != 0
    {
        task.busy = 1;
        task.write_out();
        task.busy = 0;
    }
}
