//! Packet-path programs: `napi:napi_poll`, `net:netif_receive_skb`, `net:netif_rx`,
//! `net:napi_gro_receive_entry`, `skb:kfree_skb`, `skb:consume_skb` and
//! `skb:skb_copy_datagram_iovec`. All keep events from every context in journey mode.

use tracer_common::Slot;

use crate::{
    fields::{data_loc_str, field},
    filter::packet_passes,
    headers::read_headers,
};

// napi:napi_poll
context_program!(napi_poll, NapiPoll, packet_passes, |ctx, ev| {
    ev.addr = field(&ctx, Slot::NapiPollNapi);
    ev.arg0 = field(&ctx, Slot::NapiPollWork);
    ev.arg1 = field(&ctx, Slot::NapiPollBudget);
    data_loc_str(&ctx, Slot::NapiPollDev, &mut ev.name);
});

// net:netif_receive_skb
context_program!(
    netif_receive_skb,
    NetifReceiveSkb,
    packet_passes,
    |ctx, ev| {
        ev.addr = field(&ctx, Slot::RecvSkbAddr);
        ev.arg0 = field(&ctx, Slot::RecvSkbLen);
        data_loc_str(&ctx, Slot::RecvSkbDev, &mut ev.name);
        read_headers(ev);
    }
);

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
