//! Packet-path programs: `napi:napi_poll`, `net:netif_receive_skb`, `net:netif_rx`,
//! `net:napi_gro_receive_entry`, `skb:kfree_skb`, `skb:consume_skb` and
//! `skb:skb_copy_datagram_iovec`. All keep events from every context in journey mode; with
//! a flow filter, only those of selected packets (`flow`).

use aya_ebpf::{
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use tracer_common::{Event, EventKind, FLAG_ADDRS, Member, NAME_LEN, Slot};

use crate::{
    emit::{emit, emit_pair},
    fields::{data_loc_str, field},
    filter::{here, packet_passes},
    flow,
    headers::{read_headers, skb_data},
    members::{read, read_name},
};

/// `napi:napi_poll`: with a flow filter, only after a selected packet.
#[tracepoint]
pub fn napi_poll(ctx: TracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    on_napi_poll(|ev| {
        ev.addr = field(&ctx, Slot::NapiPollNapi);
        ev.arg0 = field(&ctx, Slot::NapiPollWork);
        ev.arg1 = field(&ctx, Slot::NapiPollBudget);
        data_loc_str(&ctx, Slot::NapiPollDev, &mut ev.name);
    });
    0
}

/// `napi_poll(struct napi_struct *napi, int work, int budget)` as tp_btf.
#[btf_tracepoint(function = "napi_poll")]
pub fn napi_poll_btf(ctx: BtfTracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    on_napi_poll(|ev| {
        let napi: u64 = ctx.arg(0);
        ev.addr = napi;
        ev.arg0 = ctx.arg::<u64>(1) as u32;
        ev.arg1 = ctx.arg::<u64>(2) as u32;
        let dev: u64 = read(napi, Member::NapiDev);
        if dev == 0 {
            // What the classic record says for the per-CPU backlog.
            ev.name[..11].copy_from_slice(b"(no_device)");
        } else {
            read_name(dev, Member::NetDevName, &mut ev.name);
        }
    });
    0
}

#[inline(always)]
fn on_napi_poll(fill: impl FnOnce(&mut Event)) {
    let here = here();
    if packet_passes(&here) && (!flow::active() || flow::take_poll()) {
        emit(&here, EventKind::NapiPoll, fill);
    }
}

/// `net:netif_receive_skb`: the packet's record. With the headers readable (kernel BTF), a
/// record of its addresses (`FLAG_ADDRS`) goes just before it. The flow filter judges the
/// packet here.
#[tracepoint]
pub fn netif_receive_skb(ctx: TracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    let skb: u64 = field(&ctx, Slot::RecvSkbAddr);
    on_receive(
        skb,
        || (field(&ctx, Slot::RecvSkbLen), skb_data(skb)),
        |name| data_loc_str(&ctx, Slot::RecvSkbDev, name),
    );
    0
}

/// `netif_receive_skb(struct sk_buff *skb)` as tp_btf.
#[btf_tracepoint(function = "netif_receive_skb")]
pub fn netif_receive_skb_btf(ctx: BtfTracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    let skb: u64 = ctx.arg(0);
    on_receive(
        skb,
        || (read(skb, Member::SkbLen), read(skb, Member::SkbData)),
        |name| skb_dev_name(skb, name),
    );
    0
}

/// The name of the device an skb arrived on (tp_btf).
#[inline(always)]
fn skb_dev_name(skb: u64, name: &mut [u8; NAME_LEN]) {
    read_name(read(skb, Member::SkbDev), Member::NetDevName, name);
}

#[inline(always)]
fn on_receive(
    skb: u64,
    len_data: impl FnOnce() -> (u32, u64),
    dev: impl FnOnce(&mut [u8; NAME_LEN]),
) {
    let here = here();
    if !packet_passes(&here) {
        return;
    }
    let (len, data) = len_data();
    let headers = read_headers(data, len);
    if flow::active() && !flow::judge_received(skb, &headers) {
        return;
    }
    let packet = |ev: &mut Event| {
        ev.addr = skb;
        ev.arg0 = len;
        dev(&mut ev.name);
        ev.arg1 = headers.arg1;
        ev.arg2 = headers.payload;
        ev.addr2 = headers.seq_ports;
    };
    if headers.version == 0 {
        emit(&here, EventKind::NetifReceiveSkb, packet);
        return;
    }
    let addresses = |ev: &mut Event| {
        ev.flags = FLAG_ADDRS;
        ev.addr = skb;
        ev.name = headers.saddr;
        let d = &headers.daddr;
        ev.addr2 = u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
        ev.arg0 = u32::from_le_bytes([d[8], d[9], d[10], d[11]]);
        ev.arg1 = u32::from_le_bytes([d[12], d[13], d[14], d[15]]);
        ev.arg2 = u32::from(headers.version);
    };
    emit_pair(&here, EventKind::NetifReceiveSkb, addresses, packet);
}

/// Whether a packet seen before `netif_receive_skb` (skb at `skb`, `len` bytes) is kept:
/// with a flow filter, when its own headers are selected.
#[inline(always)]
fn early_packet_passes(skb: u64, len: u32) -> bool {
    !flow::active() || flow::selects(&read_headers(skb_data(skb), len))
}

/// `net:netif_rx`: `addr` = skb, `arg0` = len, `name` = device.
#[tracepoint]
pub fn netif_rx(ctx: TracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    on_netif_rx(
        field(&ctx, Slot::NetifRxAddr),
        || field(&ctx, Slot::NetifRxLen),
        |name| data_loc_str(&ctx, Slot::NetifRxDev, name),
    );
    0
}

/// `netif_rx(struct sk_buff *skb)` as tp_btf.
#[btf_tracepoint(function = "netif_rx")]
pub fn netif_rx_btf(ctx: BtfTracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    let skb: u64 = ctx.arg(0);
    on_netif_rx(
        skb,
        || read(skb, Member::SkbLen),
        |name| skb_dev_name(skb, name),
    );
    0
}

#[inline(always)]
fn on_netif_rx(skb: u64, len: impl FnOnce() -> u32, dev: impl FnOnce(&mut [u8; NAME_LEN])) {
    let here = here();
    if !packet_passes(&here) {
        return;
    }
    let len = len();
    if early_packet_passes(skb, len) {
        emit(&here, EventKind::NetifRx, |ev| {
            ev.addr = skb;
            ev.arg0 = len;
            dev(&mut ev.name);
        });
    }
}

/// `net:napi_gro_receive_entry`: `addr` = skb, `arg0` = len, `arg1` = napi_id,
/// `arg2` = queue_mapping, `name` = device.
#[tracepoint]
pub fn napi_gro_receive_entry(ctx: TracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    on_gro_receive(
        field(&ctx, Slot::GroSkbAddr),
        || field(&ctx, Slot::GroLen),
        |ev| {
            ev.arg1 = field(&ctx, Slot::GroNapiId);
            ev.arg2 = field::<u16>(&ctx, Slot::GroQueue) as u32;
            data_loc_str(&ctx, Slot::GroDev, &mut ev.name);
        },
    );
    0
}

/// `napi_gro_receive_entry(const struct sk_buff *skb)` as tp_btf.
#[btf_tracepoint(function = "napi_gro_receive_entry")]
pub fn napi_gro_receive_entry_btf(ctx: BtfTracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    let skb: u64 = ctx.arg(0);
    on_gro_receive(
        skb,
        || read(skb, Member::SkbLen),
        |ev| {
            ev.arg1 = read(skb, Member::SkbNapiId);
            ev.arg2 = read::<u16>(skb, Member::SkbQueueMapping) as u32;
            skb_dev_name(skb, &mut ev.name);
        },
    );
    0
}

#[inline(always)]
fn on_gro_receive(skb: u64, len: impl FnOnce() -> u32, fill: impl FnOnce(&mut Event)) {
    let here = here();
    if !packet_passes(&here) {
        return;
    }
    let len = len();
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
            fill(ev);
        });
    }
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
    if crate::globals::bench_floor() {
        return 0;
    }
    on_copy(field(&ctx, Slot::CopySkbAddr), || {
        field(&ctx, Slot::CopyLen)
    });
    0
}

/// `skb_copy_datagram_iovec(const struct sk_buff *skb, int len)` as tp_btf.
#[btf_tracepoint(function = "skb_copy_datagram_iovec")]
pub fn skb_copy_datagram_iovec_btf(ctx: BtfTracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    on_copy(ctx.arg(0), || ctx.arg::<u64>(1) as u32);
    0
}

#[inline(always)]
fn on_copy(skb: u64, len: impl FnOnce() -> u32) {
    let here = here();
    if packet_passes(&here) && skb_passes(skb, false) {
        emit(&here, EventKind::SkbCopyDatagramIovec, |ev| {
            ev.addr = skb;
            ev.arg0 = len();
        });
    }
}

/// `skb:kfree_skb`: `addr` = skb, `addr2` = location, `arg0` = reason, `arg1` = protocol.
#[tracepoint]
pub fn kfree_skb(ctx: TracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    on_free(EventKind::KfreeSkb, field(&ctx, Slot::KfreeSkbAddr), |ev| {
        ev.addr2 = field(&ctx, Slot::KfreeLocation);
        ev.arg0 = field(&ctx, Slot::KfreeReason);
        ev.arg1 = field::<u16>(&ctx, Slot::KfreeProtocol) as u32;
    });
    0
}

/// `kfree_skb(struct sk_buff *skb, void *location, enum skb_drop_reason reason,
/// struct sock *rx_sk)` as tp_btf.
#[btf_tracepoint(function = "kfree_skb")]
pub fn kfree_skb_btf(ctx: BtfTracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    let skb: u64 = ctx.arg(0);
    on_free(EventKind::KfreeSkb, skb, |ev| {
        ev.addr2 = ctx.arg(1);
        ev.arg0 = ctx.arg::<u64>(2) as u32;
        ev.arg1 = u16::from_be(read(skb, Member::SkbProtocol)) as u32;
    });
    0
}

/// The end of the skb at `skb`: emitted when kept, `fill` writing the rest.
#[inline(always)]
fn on_free(kind: EventKind, skb: u64, fill: impl FnOnce(&mut Event)) {
    let here = here();
    if packet_passes(&here) && skb_passes(skb, true) {
        emit(&here, kind, |ev| {
            ev.addr = skb;
            fill(ev);
        });
    }
}

/// `skb:consume_skb`: `addr` = skb, `addr2` = location.
#[tracepoint]
pub fn consume_skb(ctx: TracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    on_free(
        EventKind::ConsumeSkb,
        field(&ctx, Slot::ConsumeSkbAddr),
        |ev| {
            ev.addr2 = field(&ctx, Slot::ConsumeLocation);
        },
    );
    0
}

/// `consume_skb(struct sk_buff *skb, void *location)` as tp_btf.
#[btf_tracepoint(function = "consume_skb")]
pub fn consume_skb_btf(ctx: BtfTracePointContext) -> u32 {
    if crate::globals::bench_floor() {
        return 0;
    }
    on_free(EventKind::ConsumeSkb, ctx.arg(0), |ev| {
        ev.addr2 = ctx.arg(1)
    });
    0
}
