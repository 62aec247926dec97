//! Where a task stands in the traced syscalls (`tracer_common::abi::recv_tasks`): outside
//! them, inside a recv-family one, or inside a wait one (a packet can wake it then). Two
//! sources: the `RECV_TASKS` marks the entry programs make, or, with `SYSCALL_FROM_REGS`,
//! the task's own entry frame, so that no program runs at every syscall's entry: read at
//! the task's wakeup and kept as its mark until the syscall's exit, or by a read that
//! found its data without sleeping.
//!
//! The entry frame (x86-64, arch/x86/entry/entry_64.S): a task that entered the kernel by a
//! syscall keeps its user registers at the top of its kernel stack (`task_pt_regs`) until it
//! returns; `orig_ax` holds the syscall's number, and `ax` holds -ENOSYS until the call's
//! result replaces it. A frame of an interrupt or exception taken from user mode holds the
//! user's own `ax` (-ENOSYS only by coincidence, and its `orig_ax`, an error code or a
//! vector, must then also be a traced number); a kernel thread's frame is zeros.

use aya_ebpf::helpers::generated::{bpf_get_current_task_btf, bpf_task_pt_regs};
use tracer_common::{
    Member,
    abi::{
        recv_tasks::{INSIDE, OUTSIDE, READ_SOCKET, WAITING},
        syscall_slot::{UNTRACED, WAIT},
    },
};

use crate::{
    globals::{FILTER_TGID, global_u32, syscall_from_regs, syscall_kind},
    maps::{RECV_TASKS, filtered_tid, set_reading},
    members::read,
};

/// `TS_COMPAT` in `thread_info.status` (x86-64): the task's syscall is a 32-bit one,
/// numbered apart from the 64-bit table `SYSCALL_KINDS` follows (classic syscall
/// tracepoints skip those too).
const TS_COMPAT: u32 = 0x0002;

/// The entry frame's `ax` while its syscall runs: -ENOSYS.
const ENOSYS_AX: u64 = -38i64 as u64;

/// The current task, BTF-typed.
#[inline(always)]
pub(crate) fn current_task() -> u64 {
    // SAFETY: a plain helper call; it returns the current task, never NULL.
    unsafe { bpf_get_current_task_btf() as u64 }
}

/// Whether `task`'s (BTF-typed) syscall is a 32-bit one.
#[inline(always)]
pub(crate) fn compat(task: u64) -> bool {
    read::<u32>(task, Member::TaskStatus) & TS_COMPAT != 0
}

/// Where `task` (BTF-typed) stands, from its entry frame. The number first: `ax` sits 40
/// bytes before it, often on another cache line, which a task outside every traced syscall
/// then never loads.
#[inline(always)]
fn from_frame(task: u64) -> u8 {
    // SAFETY: a helper call on a BTF-typed task; it returns that task's frame.
    let regs = unsafe { bpf_task_pt_regs(task as *mut _) } as u64;
    let kind = syscall_kind(read(regs, Member::RegsOrigAx));
    if kind == UNTRACED || read::<u64>(regs, Member::RegsAx) != ENOSYS_AX || compat(task) {
        return OUTSIDE;
    }
    if kind == WAIT { WAITING } else { INSIDE }
}

/// A task a sched program asks about: its thread id and, in a BTF program, its
/// `task_struct` (0 in a classic one, which has the id alone).
#[derive(Clone, Copy)]
pub(crate) struct Task {
    pub(crate) tid: u32,
    pub(crate) ptr: u64,
}

impl Task {
    /// Whether it is inside a recv-family or wait syscall now, as `RECV_TASKS` says. With
    /// the entry frame that is so from its wakeup in the call ([`Self::woken_reading`]) to
    /// the call's exit: a task switched in without one (preempted) reads as outside, which
    /// no journey needs (the engine keeps a switch only for a task a packet woke).
    #[inline(always)]
    pub(crate) fn reading(self) -> bool {
        RECV_TASKS
            .get(self.tid)
            .is_some_and(|value| *value != OUTSIDE)
    }

    /// [`Self::reading`] for a task being woken. With the entry frame (a BTF program with
    /// `SYSCALL_FROM_REGS`) and no mark yet, the frame is read once here and kept as the
    /// task's mark until its syscall's exit takes it: its switch onto a CPU and its socket
    /// reads then look the mark up instead of a cold line of its kernel stack.
    #[inline(always)]
    pub(crate) fn woken_reading(self) -> bool {
        if self.ptr == 0 || !syscall_from_regs() {
            return self.reading();
        }
        match RECV_TASKS.get_ptr_mut(self.tid) {
            // SAFETY: a u8 in a map value; the task sleeps, so its own programs are not
            // running, and the exit that clears it comes after this wakeup.
            Some(slot) => unsafe {
                if *slot == OUTSIDE {
                    *slot = from_frame(self.ptr);
                }
                *slot != OUTSIDE
            },
            None => false,
        }
    }

    /// Its process (tgid) when the task is known, else its thread id (a main thread's is
    /// its process's).
    #[inline(always)]
    pub(crate) fn process(self) -> u32 {
        if self.ptr != 0 {
            read(self.ptr, Member::TaskTgid)
        } else {
            self.tid
        }
    }

    /// Whether it belongs to the `--pid` process: by its tgid when the task is known, else
    /// by `FILTER_TIDS` (threads joined at their syscalls' entry).
    #[inline(always)]
    pub(crate) fn filtered(self) -> bool {
        if self.ptr != 0 {
            self.process() == global_u32(&FILTER_TGID)
        } else {
            filtered_tid(self.tid)
        }
    }
}

/// Where the current thread (`tid`) stands: its `RECV_TASKS` mark, and with `frame` (a
/// BTF program with `SYSCALL_FROM_REGS`) its entry frame when it has none (a read that
/// found its data without sleeping).
#[inline(always)]
fn current(tid: u32, frame: bool) -> u8 {
    let marked = RECV_TASKS.get(tid).copied().unwrap_or(OUTSIDE);
    if frame && marked == OUTSIDE {
        from_frame(current_task())
    } else {
        marked
    }
}

/// Whether the current thread is inside a recv-family syscall now (not a wait syscall).
#[inline(always)]
pub(crate) fn in_recv_call(tid: u32, frame: bool) -> bool {
    let stands = current(tid, frame);
    stands == INSIDE || stands == READ_SOCKET
}

/// Marks the current thread's recv-family syscall as one that read a socket
/// (`READ_SOCKET`, which its exit takes); returns where the thread stood. Outside one
/// (outside every traced syscall, or in a wait syscall such as io_uring_enter) nothing is
/// marked: no recv-family exit would take the mark.
#[inline(always)]
pub(crate) fn mark_socket_read(tid: u32, frame: bool) -> u8 {
    let stands = current(tid, frame);
    if stands == INSIDE {
        let _ = set_reading(tid, READ_SOCKET);
    }
    stands
}
