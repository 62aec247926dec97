//! Socket programs: `sock:sk_data_ready` (a packet queued on a socket) and
//! `sock:sock_recv_length` (a reader took data from one).

use aya_ebpf::{
    helpers::bpf_probe_read_kernel,
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use tracer_common::{
    COPIED_SEQ_VALID, Event, EventKind, FLAG_OUTSIDE_SYSCALL, Member, Slot,
    abi::{
        NO_OFFSET,
        recv_tasks::{OUTSIDE, WAITING},
    },
};

use crate::{
    batch,
    emit::emit,
    fields::field,
    filter::{context_passes, here, ignored, packet_passes},
    flow::{self, Verdict},
    globals::{TCP_COPIED_SEQ_OFF, global_u32, journey_mode, syscall_from_regs},
    members::read,
    reader::current_comm,
    stands::mark_socket_read,
};

const IPPROTO_TCP: u32 = 6;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// `sock:sk_data_ready`: a packet queued on a socket. With a flow filter, kept when this
/// CPU's packet in progress was selected; the socket is then remembered (its reads kept).
#[tracepoint]
pub fn sk_data_ready(ctx: TracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    on_data_ready(field(&ctx, Slot::DataReadySk), |ev| {
        ev.arg0 = field::<u16>(&ctx, Slot::DataReadyFamily) as u32;
        ev.arg1 = field::<u16>(&ctx, Slot::DataReadyProtocol) as u32;
    });
    0
}

/// `sk_data_ready(const struct sock *sk)` as tp_btf.
#[btf_tracepoint(function = "sk_data_ready")]
pub fn sk_data_ready_btf(ctx: BtfTracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    let sk: u64 = ctx.arg(0);
    on_data_ready(sk, |ev| {
        ev.arg0 = read::<u16>(sk, Member::SockFamily) as u32;
        ev.arg1 = read::<u16>(sk, Member::SockProtocol) as u32;
    });
    0
}

#[inline(always)]
fn on_data_ready(sk: u64, fill: impl FnOnce(&mut Event)) {
    let here = here();
    if !packet_passes(&here) {
        return;
    }
    if flow::active() {
        if flow::verdict() != Verdict::Pass {
            return;
        }
        flow::select_sock(sk);
    }
    emit(&here, EventKind::SkDataReady, |ev| {
        ev.addr = sk;
        fill(ev);
    });
}

/// `sock:sock_recv_length`: marks the current syscall as a socket read (its exit is a
/// packet's `recv_return`), then emits like a context program. With a flow filter, only
/// reads of sockets a selected packet was queued on count.
#[tracepoint]
pub fn sock_recv_length(ctx: TracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    on_recv_length(field(&ctx, Slot::RecvLenSk), false, || RecvLength {
        ret: field(&ctx, Slot::RecvLenRet),
        flags: field(&ctx, Slot::RecvLenFlags),
        family: field(&ctx, Slot::RecvLenFamily),
        protocol: field(&ctx, Slot::RecvLenProtocol),
    });
    0
}

/// `sock_recv_length(struct sock *sk, int ret, int flags)` as tp_btf.
#[btf_tracepoint(function = "sock_recv_length")]
pub fn sock_recv_length_btf(ctx: BtfTracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    let sk: u64 = ctx.arg(0);
    on_recv_length(sk, syscall_from_regs(), || RecvLength {
        ret: ctx.arg::<u64>(1) as u32,
        flags: ctx.arg::<u64>(2) as u32,
        family: read(sk, Member::SockFamily),
        protocol: read(sk, Member::SockProtocol),
    });
    0
}

/// What `sock_recv_length` says besides the socket.
struct RecvLength {
    ret: u32,
    flags: u32,
    family: u16,
    protocol: u16,
}

/// A read of the socket at `sk`; `frame`: where the reader stands comes from its entry
/// frame (`stands`; BTF programs only).
#[inline(always)]
fn on_recv_length(sk: u64, frame: bool, fields: impl FnOnce() -> RecvLength) {
    let here = here();
    let rec = fields();
    // Journeys are of IP packets: a read of a unix, netlink or packet socket is no
    // packet's (and its syscall exit is then not wanted either).
    if journey_mode() && rec.family != AF_INET && rec.family != AF_INET6 {
        return;
    }
    if flow::active() {
        if !flow::sock_selected(sk) {
            return;
        }
        flow::select_task(here.tid);
    }
    let was = mark_socket_read(here.tid, frame);
    // In journey mode every process's reads go out: they drain the socket queues of packets
    // that a `--pid` process did not read (user space keeps only that process's journeys).
    let passes = if journey_mode() {
        packet_passes(&here) && !ignored(here.tgid)
    } else {
        context_passes(&here)
    };
    if passes {
        let fill = |ev: &mut Event| {
            // The reader's name travels with its read: a reader that never sleeps has no
            // sched event.
            ev.name = current_comm();
            ev.addr = sk;
            ev.arg0 = rec.ret;
            ev.arg1 = rec.flags;
            ev.arg2 = u32::from(rec.family) << 16 | u32::from(rec.protocol);
            if u32::from(rec.protocol) == IPPROTO_TCP && (rec.ret as i32) > 0 {
                ev.addr2 = copied_seq(sk);
            }
            // No recv-family exit will return these bytes: the read does.
            if was == OUTSIDE || was == WAITING {
                ev.flags |= FLAG_OUTSIDE_SYSCALL;
            }
        };
        // Inside a traced syscall, the read waits for its exit (`batch`).
        match batch::task_batch().filter(|_| was != OUTSIDE) {
            Some(task) => task.add(&here, EventKind::SockRecvLength, fill),
            None => emit(&here, EventKind::SockRecvLength, fill),
        }
    }
}

/// `COPIED_SEQ_VALID | tcp_sock.copied_seq` of the socket at `sk`, or 0 without BTF.
#[inline(always)]
pub(crate) fn copied_seq(sk: u64) -> u64 {
    let off = global_u32(&TCP_COPIED_SEQ_OFF);
    if off == NO_OFFSET || sk == 0 {
        return 0;
    }
    // SAFETY: a checked kernel read of a u32 inside the socket the tracepoint names.
    match unsafe { bpf_probe_read_kernel((sk + u64::from(off)) as *const u32) } {
        Ok(seq) => COPIED_SEQ_VALID | u64::from(seq),
        Err(_) => 0,
    }
}
