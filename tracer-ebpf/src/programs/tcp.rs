//! TCP programs: `tcp:tcp_probe` (a segment entering an established socket: the link from
//! skb to socket, in softirq or from the socket backlog), `tcp:tcp_destroy_sock` (the end
//! of a socket's lifetime) and `tcp:tcp_rcv_space_adjust` (bytes consumed outside the
//! recv-family syscalls: splice). They keep events from every context in journey mode;
//! with a flow filter, only those of selected skbs and sockets.

use aya_ebpf::{
    helpers::bpf_probe_read_kernel,
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use tracer_common::{Event, EventKind, Member, Slot};

use crate::{
    emit::emit,
    fields::field,
    filter::{here, ignored, packet_passes},
    flow::{self, Verdict},
    globals::syscall_from_regs,
    members::{probe, read},
    reader::current_comm,
    stands::in_recv_call,
};

use super::sock::copied_seq;

/// `tcp:tcp_probe`: with a flow filter, kept when its skb was selected; the verdict then
/// also holds for the socket enqueue that follows (from the backlog, in the reader).
#[tracepoint]
pub fn tcp_probe(ctx: TracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    on_probe(field(&ctx, Slot::TcpProbeSkb), |ev| {
        ev.addr2 = field(&ctx, Slot::TcpProbeSk);
        ev.arg0 = field::<u16>(&ctx, Slot::TcpProbeDataLen) as u32;
        let sport = field::<u16>(&ctx, Slot::TcpProbeSport) as u32;
        ev.arg1 = sport << 16 | field::<u16>(&ctx, Slot::TcpProbeDport) as u32;
        ev.arg2 = field::<u16>(&ctx, Slot::TcpProbeFamily) as u32;
    });
    0
}

/// `tcp_probe(struct sock *sk, const struct sk_buff *skb)` as tp_btf. The record's
/// `data_len` is the skb's length less the TCP header at `skb->data`.
#[btf_tracepoint(function = "tcp_probe")]
pub fn tcp_probe_btf(ctx: BtfTracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    let sk: u64 = ctx.arg(0);
    let skb: u64 = ctx.arg(1);
    on_probe(skb, |ev| {
        ev.addr2 = sk;
        let len: u32 = read(skb, Member::SkbLen);
        let data: u64 = read(skb, Member::SkbData);
        // struct tcphdr: doff is the high nibble of byte 12, in 32-bit words.
        // SAFETY: a checked kernel read of one byte of the header.
        let doff = unsafe { bpf_probe_read_kernel((data + 12) as *const u8) }.unwrap_or(0) >> 4;
        ev.arg0 = (len.wrapping_sub(u32::from(doff) * 4) & 0xffff) as u32;
        let sport = u16::from_be(probe(sk, Member::InetSport)) as u32;
        ev.arg1 = sport << 16 | u16::from_be(read(sk, Member::SockDport)) as u32;
        ev.arg2 = read::<u16>(sk, Member::SockFamily) as u32;
    });
    0
}

#[inline(always)]
fn on_probe(skb: u64, fill: impl FnOnce(&mut Event)) {
    let here = here();
    if !packet_passes(&here) {
        return;
    }
    if flow::active() {
        let selected = flow::skb_selected(skb);
        flow::set_verdict(if selected {
            Verdict::Pass
        } else {
            Verdict::Reject
        });
        if !selected {
            return;
        }
    }
    emit(&here, EventKind::TcpProbe, |ev| {
        ev.addr = skb;
        fill(ev);
    });
}

/// `tcp:tcp_destroy_sock`: with a flow filter, kept for selected sockets (then forgotten).
#[tracepoint]
pub fn tcp_destroy_sock(ctx: TracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    on_destroy(field(&ctx, Slot::DestroySk));
    0
}

/// `tcp_destroy_sock(struct sock *sk)` as tp_btf.
#[btf_tracepoint(function = "tcp_destroy_sock")]
pub fn tcp_destroy_sock_btf(ctx: BtfTracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    on_destroy(ctx.arg(0));
    0
}

#[inline(always)]
fn on_destroy(sk: u64) {
    let here = here();
    if packet_passes(&here) && (!flow::active() || flow::forget_sock(sk)) {
        emit(&here, EventKind::TcpDestroySock, |ev| ev.addr = sk);
    }
}

/// `tcp:tcp_rcv_space_adjust`: a reader consumed bytes of the socket.
#[tracepoint]
pub fn tcp_rcv_space_adjust(ctx: TracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    on_space_adjust(field(&ctx, Slot::RcvSpaceSk), false);
    0
}

/// `tcp_rcv_space_adjust(struct sock *sk)` as tp_btf.
#[btf_tracepoint(function = "tcp_rcv_space_adjust")]
pub fn tcp_rcv_space_adjust_btf(ctx: BtfTracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    on_space_adjust(ctx.arg(0), syscall_from_regs());
    0
}

/// Emitted only outside the recv-family syscalls (`stands`; `frame` as in
/// `sock_recv_length`): inside one,
/// `sock_recv_length` reports the read. What is left is TCP's receive path called without
/// one: `tcp_splice_read` (splice, sendfile from a socket), zero-copy receive, and
/// io_uring's recv (run inside io_uring_enter, a wait syscall, or by its workers).
#[inline(always)]
fn on_space_adjust(sk: u64, frame: bool) {
    let here = here();
    if in_recv_call(here.tid, frame)
        || !packet_passes(&here)
        || ignored(here.tgid)
        || (flow::active() && !flow::sock_selected(sk))
    {
        return;
    }
    emit(&here, EventKind::TcpRcvSpaceAdjust, |ev| {
        ev.addr = sk;
        ev.addr2 = copied_seq(sk);
        ev.name = current_comm();
    });
}
