//! Packet-path programs: `napi:napi_poll`, `net:netif_receive_skb`, `net:netif_rx`,
//! `net:napi_gro_receive_entry`, `skb:kfree_skb`, `skb:consume_skb` and
//! `skb:skb_copy_datagram_iovec`. All keep events from every context in journey mode.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use tracer_common::{EventKind, FLAG_ADDRS, Slot};

use crate::{
    emit::emit,
    fields::{data_loc_str, field},
    filter::{here, packet_passes},
    headers::read_headers,
};

// napi:napi_poll
context_program!(napi_poll, NapiPoll, packet_passes, |ctx, ev| {
    ev.addr = field(&ctx, Slot::NapiPollNapi);
    ev.arg0 = field(&ctx, Slot::NapiPollWork);
    ev.arg1 = field(&ctx, Slot::NapiPollBudget);
    data_loc_str(&ctx, Slot::NapiPollDev, &mut ev.name);
});

/// `net:netif_receive_skb`: the packet's record. With the headers readable (kernel BTF), a
/// record of its addresses (`FLAG_ADDRS`) goes just before it.
#[tracepoint]
pub fn netif_receive_skb(ctx: TracePointContext) -> u32 {
    let here = here();
    if !packet_passes(&here) {
        return 0;
    }
    let skb: u64 = field(&ctx, Slot::RecvSkbAddr);
    let len: u32 = field(&ctx, Slot::RecvSkbLen);
    let headers = read_headers(skb, len);
    if headers.version != 0 {
        emit(&here, EventKind::NetifReceiveSkb, |ev| {
            ev.flags = FLAG_ADDRS;
            ev.addr = skb;
            ev.name = headers.saddr;
            let d = &headers.daddr;
            ev.addr2 = u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
            ev.arg0 = u32::from_le_bytes([d[8], d[9], d[10], d[11]]);
            ev.arg1 = u32::from_le_bytes([d[12], d[13], d[14], d[15]]);
            ev.arg2 = u32::from(headers.version);
        });
    }
    emit(&here, EventKind::NetifReceiveSkb, |ev| {
        ev.addr = skb;
        ev.arg0 = len;
        data_loc_str(&ctx, Slot::RecvSkbDev, &mut ev.name);
        ev.arg1 = headers.arg1;
        ev.arg2 = headers.payload;
        ev.addr2 = headers.seq_ports;
    });
    0
}

// net:netif_rx
context_program!(netif_rx, NetifRx, packet_passes, |ctx, ev| {
    ev.addr = field(&ctx, Slot::NetifRxAddr);
    ev.arg0 = field(&ctx, Slot::NetifRxLen);
    data_loc_str(&ctx, Slot::NetifRxDev, &mut ev.name);
});

// net:napi_gro_receive_entry
context_program!(
    napi_gro_receive_entry,
    NapiGroReceiveEntry,
    packet_passes,
    |ctx, ev| {
        ev.addr = field(&ctx, Slot::GroSkbAddr);
        ev.arg0 = field(&ctx, Slot::GroLen);
        ev.arg1 = field(&ctx, Slot::GroNapiId);
        ev.arg2 = field::<u16>(&ctx, Slot::GroQueue) as u32;
        data_loc_str(&ctx, Slot::GroDev, &mut ev.name);
    }
);

// skb:skb_copy_datagram_iovec
context_program!(
    skb_copy_datagram_iovec,
    SkbCopyDatagramIovec,
    packet_passes,
    |ctx, ev| {
        ev.addr = field(&ctx, Slot::CopySkbAddr);
        ev.arg0 = field(&ctx, Slot::CopyLen);
    }
);

// skb:kfree_skb
context_program!(kfree_skb, KfreeSkb, packet_passes, |ctx, ev| {
    ev.addr = field(&ctx, Slot::KfreeSkbAddr);
    ev.addr2 = field(&ctx, Slot::KfreeLocation);
    ev.arg0 = field(&ctx, Slot::KfreeReason);
    ev.arg1 = field::<u16>(&ctx, Slot::KfreeProtocol) as u32;
});

// skb:consume_skb
context_program!(consume_skb, ConsumeSkb, packet_passes, |ctx, ev| {
    ev.addr = field(&ctx, Slot::ConsumeSkbAddr);
    ev.addr2 = field(&ctx, Slot::ConsumeLocation);
});
