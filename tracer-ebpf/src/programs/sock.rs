//! Socket programs: `sock:sk_data_ready` (a packet queued on a socket) and
//! `sock:sock_recv_length` (a reader took data from one).

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_probe_read_kernel},
    macros::tracepoint,
    programs::TracePointContext,
};
use tracer_common::{
    COPIED_SEQ_VALID, Event, EventKind, Slot,
    abi::{NO_OFFSET, recv_tasks::READ_SOCKET},
};

use crate::{
    emit::emit,
    fields::field,
    filter::{context_passes, here, ignored, packet_passes},
    flow::{self, Verdict},
    globals::{TCP_COPIED_SEQ_OFF, global_u32, journey_mode},
    maps::set_reading,
};

const IPPROTO_TCP: u32 = 6;

/// `sock:sk_data_ready`: a packet queued on a socket. With a flow filter, kept when this
/// CPU's packet in progress was selected; the socket is then remembered (its reads kept).
#[tracepoint]
pub fn sk_data_ready(ctx: TracePointContext) -> u32 {
    let here = here();
    let sk: u64 = field(&ctx, Slot::DataReadySk);
    if !packet_passes(&here) {
        return 0;
    }
    if flow::active() {
        if flow::verdict() != Verdict::Pass {
            return 0;
        }
        flow::select_sock(sk);
    }
    emit(&here, EventKind::SkDataReady, |ev| {
        ev.addr = sk;
        ev.arg0 = field::<u16>(&ctx, Slot::DataReadyFamily) as u32;
        ev.arg1 = field::<u16>(&ctx, Slot::DataReadyProtocol) as u32;
    });
    0
}

/// `sock:sock_recv_length`: marks the current syscall as a socket read (its exit is a
/// packet's `recv_return`), then emits like a context program. With a flow filter, only
/// reads of sockets a selected packet was queued on count.
#[tracepoint]
pub fn sock_recv_length(ctx: TracePointContext) -> u32 {
    let here = here();
    let sk: u64 = field(&ctx, Slot::RecvLenSk);
    if flow::active() {
        if !flow::sock_selected(sk) {
            return 0;
        }
        flow::select_task(here.tid);
    }
    set_reading(here.tid, READ_SOCKET);
    // In journey mode every process's reads go out: they drain the socket queues of packets
    // that a `--pid` process did not read (user space keeps only that process's journeys).
    let passes = if journey_mode() {
        packet_passes(&here) && !ignored(here.tgid)
    } else {
        context_passes(&here)
    };
    if passes {
        emit(&here, EventKind::SockRecvLength, |ev| {
            fill_recv_length(&ctx, sk, ev)
        });
    }
    0
}

#[inline(always)]
fn fill_recv_length(ctx: &TracePointContext, sk: u64, ev: &mut Event) {
    // The reader's name travels with its read: a reader that never sleeps has no sched event.
    ev.name = bpf_get_current_comm().unwrap_or_default();
    ev.addr = sk;
    ev.arg0 = field(ctx, Slot::RecvLenRet);
    ev.arg1 = field(ctx, Slot::RecvLenFlags);
    let family = field::<u16>(ctx, Slot::RecvLenFamily) as u32;
    let protocol = field::<u16>(ctx, Slot::RecvLenProtocol) as u32;
    ev.arg2 = family << 16 | protocol;
    if protocol == IPPROTO_TCP && (ev.arg0 as i32) > 0 {
        ev.addr2 = copied_seq(ev.addr);
    }
}

/// `COPIED_SEQ_VALID | tcp_sock.copied_seq` of the socket at `sk`, or 0 without BTF.
#[inline(always)]
fn copied_seq(sk: u64) -> u64 {
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
