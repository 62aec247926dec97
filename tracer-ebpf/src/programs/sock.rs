//! Socket programs: `sock:sk_data_ready` (a packet queued on a socket) and
//! `sock:sock_recv_length` (a reader took data from one).

use aya_ebpf::{helpers::bpf_get_current_comm, macros::tracepoint, programs::TracePointContext};
use tracer_common::{Event, EventKind, Slot, abi::recv_tasks::READ_SOCKET};

use crate::{
    emit::emit,
    fields::field,
    filter::{context_passes, here, packet_passes},
    maps::set_reading,
};

// sock:sk_data_ready
context_program!(sk_data_ready, SkDataReady, packet_passes, |ctx, ev| {
    ev.addr = field(&ctx, Slot::DataReadySk);
    ev.arg0 = field::<u16>(&ctx, Slot::DataReadyFamily) as u32;
    ev.arg1 = field::<u16>(&ctx, Slot::DataReadyProtocol) as u32;
});

/// `sock:sock_recv_length`: marks the current syscall as a socket read (its exit is a
/// packet's `recv_return`), then emits like a context program.
#[tracepoint]
pub fn sock_recv_length(ctx: TracePointContext) -> u32 {
    let here = here();
    set_reading(here.tid, READ_SOCKET);
    if context_passes(&here) {
        emit(&here, EventKind::SockRecvLength, |ev| {
            fill_recv_length(&ctx, ev)
        });
    }
    0
}

#[inline(always)]
fn fill_recv_length(ctx: &TracePointContext, ev: &mut Event) {
    // The reader's name travels with its read: a reader that never sleeps has no sched event.
    ev.name = bpf_get_current_comm().unwrap_or_default();
    ev.addr = field(ctx, Slot::RecvLenSk);
    ev.arg0 = field(ctx, Slot::RecvLenRet);
    ev.arg1 = field(ctx, Slot::RecvLenFlags);
    let family = field::<u16>(ctx, Slot::RecvLenFamily) as u32;
    ev.arg2 = family << 16 | field::<u16>(ctx, Slot::RecvLenProtocol) as u32;
}
