//! Packet-path programs: `napi:napi_poll`, `net:netif_receive_skb`, `net:netif_rx`,
//! `net:napi_gro_receive_entry`, `skb:kfree_skb`, `skb:consume_skb` and
//! `skb:skb_copy_datagram_iovec`. All keep events from every context in journey mode; with
//! a flow filter, only those of selected packets (`flow`).

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use tracer_common::{EventKind, FLAG_ADDRS, Slot};

use crate::{
    emit::emit,
    fields::{data_loc_str, field},
    filter::{here, packet_passes},
    flow,
    headers::read_headers,
};

/// `napi:napi_poll`: with a flow filter, only after a selected packet.
#[tracepoint]
pub fn napi_poll(ctx: TracePointContext) -> u32 {
    let here = here();
    if packet_passes(&here) && (!flow::active() || flow::take_poll()) {
        emit(&here, EventKind::NapiPoll, |ev| {
            ev.addr = field(&ctx, Slot::NapiPollNapi);
            ev.arg0 = field(&ctx, Slot::NapiPollWork);
            ev.arg1 = field(&ctx, Slot::NapiPollBudget);
            data_loc_str(&ctx, Slot::NapiPollDev, &mut ev.name);
        });
    }
    0
}

/// `net:netif_receive_skb`: the packet's record. With the headers readable (kernel BTF), a
/// record of its addresses (`FLAG_ADDRS`) goes just before it. The flow filter judges the
/// packet here.
#[tracepoint]
pub fn netif_receive_skb(ctx: TracePointContext) -> u32 {
    let here = here();
    if !packet_passes(&here) {
        return 0;
    }
    let skb: u64 = field(&ctx, Slot::RecvSkbAddr);
    let len: u32 = field(&ctx, Slot::RecvSkbLen);
    let headers = read_headers(skb, len);
    if flow::active() && !flow::judge_received(skb, &headers) {
        return 0;
    }
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

/// Whether a packet seen before `netif_receive_skb` (skb at `skb`, `len` bytes) is kept:
/// with a flow filter, when its own headers are selected.
#[inline(always)]
fn early_packet_passes(skb: u64, len: u32) -> bool {
    !flow::active() || flow::selects(&read_headers(skb, len))
}

/// `net:netif_rx`: `addr` = skb, `arg0` = len, `name` = device.
#[tracepoint]
pub fn netif_rx(ctx: TracePointContext) -> u32 {
    let here = here();
    if !packet_passes(&here) {
        return 0;
    }
    let skb: u64 = field(&ctx, Slot::NetifRxAddr);
    let len: u32 = field(&ctx, Slot::NetifRxLen);
    if early_packet_passes(skb, len) {
        emit(&here, EventKind::NetifRx, |ev| {
            ev.addr = skb;
            ev.arg0 = len;
            data_loc_str(&ctx, Slot::NetifRxDev, &mut ev.name);
        });
    }
    0
}

/// `net:napi_gro_receive_entry`: `addr` = skb, `arg0` = len, `arg1` = napi_id,
/// `arg2` = queue_mapping, `name` = device.
#[tracepoint]
pub fn napi_gro_receive_entry(ctx: TracePointContext) -> u32 {
    let here = here();
    if !packet_passes(&here) {
        return 0;
    }
    let skb: u64 = field(&ctx, Slot::GroSkbAddr);
    let len: u32 = field(&ctx, Slot::GroLen);
    if early_packet_passes(skb, len) {
        if flow::active() {
            // Inside the NAPI poll: the run's context goes out before this packet, whose
            // later events (a free once merged by GRO) are kept.
            flow::release_context();
            flow::select_skb(skb);
        }
        emit(&here, EventKind::NapiGroReceiveEntry, |ev| {
            ev.addr = skb;
            ev.arg0 = len;
            ev.arg1 = field(&ctx, Slot::GroNapiId);
            ev.arg2 = field::<u16>(&ctx, Slot::GroQueue) as u32;
            data_loc_str(&ctx, Slot::GroDev, &mut ev.name);
        });
    }
    0
}

/// Whether an event about the skb at `skb` is kept: with a flow filter, when the skb was
/// selected. `freed`: the skb ends here (forgotten).
#[inline(always)]
fn skb_passes(skb: u64, freed: bool) -> bool {
    if !flow::active() {
        return true;
    }
    if freed {
        flow::forget_skb(skb)
    } else {
        flow::skb_selected(skb)
    }
}

/// `skb:skb_copy_datagram_iovec`: `addr` = skb, `arg0` = len.
#[tracepoint]
pub fn skb_copy_datagram_iovec(ctx: TracePointContext) -> u32 {
    let here = here();
    let skb: u64 = field(&ctx, Slot::CopySkbAddr);
    if packet_passes(&here) && skb_passes(skb, false) {
        emit(&here, EventKind::SkbCopyDatagramIovec, |ev| {
            ev.addr = skb;
            ev.arg0 = field(&ctx, Slot::CopyLen);
        });
    }
    0
}

/// `skb:kfree_skb`: `addr` = skb, `addr2` = location, `arg0` = reason, `arg1` = protocol.
#[tracepoint]
pub fn kfree_skb(ctx: TracePointContext) -> u32 {
    let here = here();
    let skb: u64 = field(&ctx, Slot::KfreeSkbAddr);
    if packet_passes(&here) && skb_passes(skb, true) {
        emit(&here, EventKind::KfreeSkb, |ev| {
            ev.addr = skb;
            ev.addr2 = field(&ctx, Slot::KfreeLocation);
            ev.arg0 = field(&ctx, Slot::KfreeReason);
            ev.arg1 = field::<u16>(&ctx, Slot::KfreeProtocol) as u32;
        });
    }
    0
}

/// `skb:consume_skb`: `addr` = skb, `addr2` = location.
#[tracepoint]
pub fn consume_skb(ctx: TracePointContext) -> u32 {
    let here = here();
    let skb: u64 = field(&ctx, Slot::ConsumeSkbAddr);
    if packet_passes(&here) && skb_passes(skb, true) {
        emit(&here, EventKind::ConsumeSkb, |ev| {
            ev.addr = skb;
            ev.addr2 = field(&ctx, Slot::ConsumeLocation);
        });
    }
    0
}
