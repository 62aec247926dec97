//! The packet's own headers at `net:netif_receive_skb`: `skb->data` points at the network
//! header there. Read only when user space found `sk_buff.data` in kernel BTF
//! (`SKB_DATA_OFF`); the result goes into the event as `tracer_common::HDR_VALID` describes.

use aya_ebpf::helpers::bpf_probe_read_kernel;
use tracer_common::{Event, HDR_VALID, abi::NO_OFFSET};

use crate::globals::{SKB_DATA_OFF, global_u32};

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// Fills `arg1` (protocol, TCP flags, IP version, `HDR_VALID`), `arg2` (transport payload)
/// and `addr2` (TCP sequence number, source and destination ports) of a netif_receive_skb event whose `addr` is the skb
/// and `arg0` its length. Leaves them zero when the headers cannot be read.
#[inline(always)]
pub(crate) fn read_headers(ev: &mut Event) {
    let off = global_u32(&SKB_DATA_OFF);
    if off == NO_OFFSET || ev.addr == 0 {
        return;
    }
    // SAFETY: checked kernel reads (bpf_probe_read_kernel) of the skb and its buffer.
    let Ok(data) = (unsafe { bpf_probe_read_kernel((ev.addr + u64::from(off)) as *const u64) })
    else {
        return;
    };
    // struct iphdr / struct ipv6hdr
    let Ok(ip) = (unsafe { bpf_probe_read_kernel(data as *const [u8; 40]) }) else {
        return;
    };
    let version = ip[0] >> 4;
    let (proto, header_len, l3_payload) = match version {
        4 => {
            let ihl = u32::from(ip[0] & 0x0f) * 4;
            let total = u32::from(u16::from_be_bytes([ip[2], ip[3]]));
            // A GSO packet beyond 64 KiB (BIG TCP) carries tot_len 0: the skb length counts.
            let total = if total == 0 { ev.arg0 } else { total };
            (ip[9], ihl, total.saturating_sub(ihl))
        }
        6 => (ip[6], 40, u32::from(u16::from_be_bytes([ip[4], ip[5]]))),
        _ => return,
    };
    if header_len < 20 {
        return;
    }
    // struct tcphdr / struct udphdr
    let Ok(l4) =
        (unsafe { bpf_probe_read_kernel((data + u64::from(header_len)) as *const [u8; 16]) })
    else {
        return;
    };
    let ports = u64::from(u16::from_be_bytes([l4[0], l4[1]])) << 32
        | u64::from(u16::from_be_bytes([l4[2], l4[3]])) << 48;
    match proto {
        IPPROTO_TCP => {
            let doff = u32::from(l4[12] >> 4) * 4;
            ev.arg2 = l3_payload.saturating_sub(doff);
            ev.addr2 = ports | u64::from(u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]));
            ev.arg1 = HDR_VALID | u32::from(version) << 16 | u32::from(l4[13]) << 8 | 6;
        }
        IPPROTO_UDP => {
            let length = u32::from(u16::from_be_bytes([l4[4], l4[5]]));
            ev.arg2 = length.saturating_sub(8);
            ev.addr2 = ports;
            ev.arg1 = HDR_VALID | u32::from(version) << 16 | u32::from(IPPROTO_UDP);
        }
        other => {
            ev.arg2 = l3_payload;
            ev.arg1 = HDR_VALID | u32::from(version) << 16 | u32::from(other);
        }
    }
}
