//! Syscall programs at `syscalls:sys_enter_*` / `sys_exit_*`: the recv family (events, and
//! `RECV_TASKS` tracking) and the wait syscalls (tracking only). The list user space
//! attaches is `tracer_common::abi::TRACED_SYSCALLS`; each entry needs both programs here.
//!
//! Where kernel BTF names the x86-64 registers, user space attaches two BTF tracepoints on
//! `raw_syscalls:sys_enter`/`sys_exit` instead (`sys_enter_btf`, `sys_exit_btf`), which look
//! the syscall up in `SYSCALL_KINDS` and run the same bodies. Why: a classic syscall
//! tracepoint formats a record for each call before its program runs: an EAGAIN recvfrom
//! took about 400 ns longer with two empty classic programs on it (bpftrace, here). The
//! price: the raw programs run for every syscall. In journey mode `sys_enter_btf` is not
//! attached where a task's entry frame tells the programs that ask whether it is inside a
//! traced syscall (`stands`, `SYSCALL_FROM_REGS`): no entry is then marked, and an untraced
//! syscall costs what it does under the classic programs (`cargo xtask bench --only
//! syscalls`).

use aya_ebpf::{
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use tracer_common::{
    Event, EventKind, Member, Slot,
    abi::{
        recv_tasks::{INSIDE, READ_SOCKET, WAITING},
        syscall_slot::{UNTRACED, WAIT},
    },
};

use crate::{
    batch,
    emit::emit,
    fields::field,
    filter::{Here, context_passes, here, ignored},
    flow,
    globals::{FILTER_TGID, SOCKET_READS_ONLY, global_u32, journey_mode, syscall_kind},
    maps::{FILTER_TIDS, filtered_tid, set_reading, take_reading},
    members::read,
    reader::fill_reader,
    stands,
};

/// Marks the current thread as inside a recv-family syscall (`RECV_TASKS`). Returns
/// whether journey mode wants the entry event: it does not (the engine uses exits only).
#[inline(always)]
fn enter_recv(here: &Here) -> bool {
    enter(here, INSIDE)
}

/// Marks the current thread as inside a wait syscall (`RECV_TASKS`).
#[inline(always)]
fn enter_wait(here: &Here) -> bool {
    enter(here, WAITING)
}

/// Marks the current thread's entry into a tracked syscall with `value`.
#[inline(always)]
fn enter(here: &Here, value: u8) -> bool {
    if !ignored(here.tgid) {
        let _ = set_reading(here.tid, value);
        // A thread of the --pid process created after start joins the filter here.
        let want = global_u32(&FILTER_TGID);
        if want != 0 && here.tgid == want && !filtered_tid(here.tid) {
            let _ = FILTER_TIDS.insert(&here.tid, &1, 0);
        }
    }
    false
}

/// The current thread's recv-family or wait syscall returned. Returns whether journey mode
/// wants the exit event: only when the call read a socket (a read() of a pipe or file is
/// nobody's packet), unless user space cannot know that (no sock_recv_length).
#[inline(always)]
fn exit_recv(here: &Here) -> bool {
    take_reading(here.tid) == READ_SOCKET || global_u32(&SOCKET_READS_ONLY) == 0
}

/// A wait syscall returned: tracked as a recv-family exit, and what waited for it goes out.
#[inline(always)]
fn exit_wait(here: &Here) -> bool {
    let _ = exit_recv(here);
    batch::close();
    false
}

/// A recv-family syscall's entry or exit, once `RECV_TASKS` is up to date: emitted like a
/// context event when kept (`journey_wants`, or every call in event mode).
#[inline(always)]
fn on_recv_call(here: &Here, journey_wants: bool, kind: EventKind, fill: impl FnOnce(&mut Event)) {
    // With a flow filter, event mode too keeps only the exits of selected reads.
    let all = !journey_mode() && !flow::active();
    if context_passes(here) && (journey_wants || all) {
        // With what waited for this exit (`batch`), else on its own.
        match batch::task_batch() {
            Some(task) => task.close_with(here, kind, fill),
            None => emit(here, kind, fill),
        }
    } else {
        batch::close();
    }
}

/// The recv-family syscall programs: keep `RECV_TASKS` up to date (before any filter), then
/// emit like a context program.
macro_rules! syscall_program {
    ($name:ident, $kind:ident, $track:ident, |$ctx:ident, $ev:ident| $fill:block) => {
        #[tracepoint]
        pub fn $name($ctx: TracePointContext) -> u32 {
            if crate::globals::bench_floor() {
                return 0;
            }
            let here = here();
            let journey_wants = $track(&here);
            on_recv_call(&here, journey_wants, EventKind::$kind, |$ev: &mut Event| {
                $fill
            });
            0
        }
    };
}

/// Wait syscalls (poll, select, epoll) only keep `RECV_TASKS` up to date: a reader blocked
/// in them is woken by a packet just like one blocked in recv().
macro_rules! wait_program {
    ($name:ident, $track:ident) => {
        #[tracepoint]
        pub fn $name(_ctx: TracePointContext) -> u32 {
            if crate::globals::bench_floor() {
                return 0;
            }
            let _ = $track(&here());
            0
        }
    };
}

// syscalls:sys_enter_* / sys_exit_* of the wait syscalls in abi::TRACED_SYSCALLS.
wait_program!(sys_enter_poll, enter_wait);
wait_program!(sys_exit_poll, exit_wait);
wait_program!(sys_enter_ppoll, enter_wait);
wait_program!(sys_exit_ppoll, exit_wait);
wait_program!(sys_enter_select, enter_wait);
wait_program!(sys_exit_select, exit_wait);
wait_program!(sys_enter_pselect6, enter_wait);
wait_program!(sys_exit_pselect6, exit_wait);
wait_program!(sys_enter_epoll_wait, enter_wait);
wait_program!(sys_exit_epoll_wait, exit_wait);
wait_program!(sys_enter_epoll_pwait, enter_wait);
wait_program!(sys_exit_epoll_pwait, exit_wait);
wait_program!(sys_enter_epoll_pwait2, enter_wait);
wait_program!(sys_exit_epoll_pwait2, exit_wait);
wait_program!(sys_enter_io_uring_enter, enter_wait);
wait_program!(sys_exit_io_uring_enter, exit_wait);

// syscalls:sys_enter_recvfrom
syscall_program!(
    sys_enter_recvfrom,
    SysEnterRecvfrom,
    enter_recv,
    |ctx, ev| {
        ev.arg0 = field::<u64>(&ctx, Slot::EnterRecvfromFd) as u32;
        ev.addr2 = field(&ctx, Slot::EnterRecvfromSize);
    }
);

// syscalls:sys_exit_recvfrom
syscall_program!(sys_exit_recvfrom, SysExitRecvfrom, exit_recv, |ctx, ev| {
    ev.addr = field(&ctx, Slot::ExitRecvfromRet);
    fill_reader(ev);
});

// syscalls:sys_enter_recvmsg
syscall_program!(sys_enter_recvmsg, SysEnterRecvmsg, enter_recv, |ctx, ev| {
    ev.arg0 = field::<u64>(&ctx, Slot::EnterRecvmsgFd) as u32;
});

// syscalls:sys_exit_recvmsg
syscall_program!(sys_exit_recvmsg, SysExitRecvmsg, exit_recv, |ctx, ev| {
    ev.addr = field(&ctx, Slot::ExitRecvmsgRet);
    fill_reader(ev);
});

// syscalls:sys_enter_recvmmsg
syscall_program!(
    sys_enter_recvmmsg,
    SysEnterRecvmmsg,
    enter_recv,
    |ctx, ev| {
        ev.arg0 = field::<u64>(&ctx, Slot::EnterRecvmmsgFd) as u32;
        ev.addr2 = field(&ctx, Slot::EnterRecvmmsgVlen);
    }
);

// syscalls:sys_exit_recvmmsg
syscall_program!(sys_exit_recvmmsg, SysExitRecvmmsg, exit_recv, |ctx, ev| {
    ev.addr = field(&ctx, Slot::ExitRecvmmsgRet);
    fill_reader(ev);
});

// syscalls:sys_enter_read
syscall_program!(sys_enter_read, SysEnterRead, enter_recv, |ctx, ev| {
    ev.arg0 = field::<u64>(&ctx, Slot::EnterReadFd) as u32;
    ev.addr2 = field(&ctx, Slot::EnterReadCount);
});

// syscalls:sys_exit_read
syscall_program!(sys_exit_read, SysExitRead, exit_recv, |ctx, ev| {
    ev.addr = field(&ctx, Slot::ExitReadRet);
    fill_reader(ev);
});

// syscalls:sys_enter_readv
syscall_program!(sys_enter_readv, SysEnterReadv, enter_recv, |ctx, ev| {
    ev.arg0 = field::<u64>(&ctx, Slot::EnterReadvFd) as u32;
    ev.addr2 = field(&ctx, Slot::EnterReadvVlen);
});

// syscalls:sys_exit_readv
syscall_program!(sys_exit_readv, SysExitReadv, exit_recv, |ctx, ev| {
    ev.addr = field(&ctx, Slot::ExitReadvRet);
    fill_reader(ev);
});

/// Whether the current syscall is a 32-bit one, numbered apart from the 64-bit table
/// that `SYSCALL_KINDS` follows.
#[inline(always)]
fn compat_syscall() -> bool {
    stands::compat(stands::current_task())
}

/// `raw_syscalls:sys_enter(struct pt_regs *regs, long id)` as tp_btf (x86-64): every
/// syscall of every task. The ones `SYSCALL_KINDS` names run what their classic
/// `sys_enter_*` program runs; the rest return after one table lookup.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_btf(ctx: BtfTracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    let slot = syscall_kind(ctx.arg(1));
    if slot == UNTRACED || compat_syscall() {
        return 0;
    }
    let here = here();
    if slot == WAIT {
        let _ = enter_wait(&here);
        return 0;
    }
    let journey_wants = enter_recv(&here);
    let Some(kind) = EventKind::from_u8(slot) else {
        return 0;
    };
    let regs: u64 = ctx.arg(0);
    on_recv_call(&here, journey_wants, kind, |ev| {
        ev.arg0 = read::<u64>(regs, Member::RegsDi) as u32;
        // recvmsg's third argument is its flags: its classic event has no size.
        if kind != EventKind::SysEnterRecvmsg {
            ev.addr2 = read(regs, Member::RegsDx);
        }
    });
    0
}

/// `raw_syscalls:sys_exit(struct pt_regs *regs, long ret)` as tp_btf (x86-64): the
/// syscall's number is the registers' `orig_ax`; the ones `SYSCALL_KINDS` names run what
/// their classic `sys_exit_*` program runs.
#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_btf(ctx: BtfTracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    let regs: u64 = ctx.arg(0);
    let slot = syscall_kind(read(regs, Member::RegsOrigAx));
    if slot == UNTRACED || compat_syscall() {
        return 0;
    }
    let here = here();
    if slot == WAIT {
        let _ = exit_wait(&here);
        return 0;
    }
    let journey_wants = exit_recv(&here);
    // The exit's kind follows its enter's (a tracer-common test holds it).
    let Some(kind) = EventKind::from_u8(slot.wrapping_add(1)) else {
        return 0;
    };
    let ret: u64 = ctx.arg(1);
    on_recv_call(&here, journey_wants, kind, |ev| {
        ev.addr = ret;
        fill_reader(ev);
    });
    0
}
