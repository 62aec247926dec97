//! TCP programs: `tcp:tcp_probe` (a segment entering an established socket: the link from
//! skb to socket, in softirq or from the socket backlog) and `tcp:tcp_destroy_sock` (the
//! end of a socket's lifetime). Both keep events from every context in journey mode.

use tracer_common::Slot;

use crate::{fields::field, filter::packet_passes};

// tcp:tcp_probe
context_program!(tcp_probe, TcpProbe, packet_passes, |ctx, ev| {
    ev.addr = field(&ctx, Slot::TcpProbeSkb);
    ev.addr2 = field(&ctx, Slot::TcpProbeSk);
    ev.arg0 = field::<u16>(&ctx, Slot::TcpProbeDataLen) as u32;
    let sport = field::<u16>(&ctx, Slot::TcpProbeSport) as u32;
    ev.arg1 = sport << 16 | field::<u16>(&ctx, Slot::TcpProbeDport) as u32;
    ev.arg2 = field::<u16>(&ctx, Slot::TcpProbeFamily) as u32;
});

// tcp:tcp_destroy_sock
context_program!(
    tcp_destroy_sock,
    TcpDestroySock,
    packet_passes,
    |ctx, ev| {
        ev.addr = field(&ctx, Slot::DestroySk);
    }
);
