//! TCP programs: `tcp:tcp_probe` (a segment entering an established socket: the link from
//! skb to socket, in softirq or from the socket backlog) and `tcp:tcp_destroy_sock` (the
//! end of a socket's lifetime). Both keep events from every context in journey mode; with a
//! flow filter, only those of selected skbs and sockets.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use tracer_common::{EventKind, Slot};

use crate::{
    emit::emit,
    fields::field,
    filter::{here, packet_passes},
    flow::{self, Verdict},
};

/// `tcp:tcp_probe`: with a flow filter, kept when its skb was selected; the verdict then
/// also holds for the socket enqueue that follows (from the backlog, in the reader).
#[tracepoint]
pub fn tcp_probe(ctx: TracePointContext) -> u32 {
    let here = here();
    if !packet_passes(&here) {
        return 0;
    }
    let skb: u64 = field(&ctx, Slot::TcpProbeSkb);
    if flow::active() {
        let selected = flow::skb_selected(skb);
        flow::set_verdict(if selected {
            Verdict::Pass
        } else {
            Verdict::Reject
        });
        if !selected {
            return 0;
        }
    }
    emit(&here, EventKind::TcpProbe, |ev| {
        ev.addr = skb;
        ev.addr2 = field(&ctx, Slot::TcpProbeSk);
        ev.arg0 = field::<u16>(&ctx, Slot::TcpProbeDataLen) as u32;
        let sport = field::<u16>(&ctx, Slot::TcpProbeSport) as u32;
        ev.arg1 = sport << 16 | field::<u16>(&ctx, Slot::TcpProbeDport) as u32;
        ev.arg2 = field::<u16>(&ctx, Slot::TcpProbeFamily) as u32;
    });
    0
}

/// `tcp:tcp_destroy_sock`: with a flow filter, kept for selected sockets (then forgotten).
#[tracepoint]
pub fn tcp_destroy_sock(ctx: TracePointContext) -> u32 {
    let here = here();
    let sk: u64 = field(&ctx, Slot::DestroySk);
    if packet_passes(&here) && (!flow::active() || flow::forget_sock(sk)) {
        emit(&here, EventKind::TcpDestroySock, |ev| ev.addr = sk);
    }
    0
}
