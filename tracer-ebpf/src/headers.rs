//! The packet's own headers at `net:netif_receive_skb`: `skb->data` points at the network
//! header there. Read only when user space found `sk_buff.data` in kernel BTF
//! (`SKB_DATA_OFF`); the result goes into the event as `tracer_common::HDR_VALID` describes,
//! and the addresses into a record of their own (`tracer_common::FLAG_ADDRS`).

use aya_ebpf::helpers::bpf_probe_read_kernel;
use tracer_common::{HDR_FRAGMENT, HDR_VALID, abi::NO_OFFSET};

use crate::globals::{SKB_DATA_OFF, global_u32};

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
/// IPv6's fragment header (NEXTHDR_FRAGMENT).
const NEXTHDR_FRAGMENT: u8 = 44;

/// What the headers said: the fields of the packet's own record and its addresses.
#[derive(Default)]
pub(crate) struct Headers {
    /// `NetifReceiveSkb.arg1`: protocol, TCP flags, IP version, `HDR_VALID`.
    pub arg1: u32,
    /// `NetifReceiveSkb.arg2`: transport payload bytes.
    pub payload: u32,
    /// `NetifReceiveSkb.addr2`: TCP sequence number, source and destination ports.
    pub seq_ports: u64,
    /// TCP or UDP ports were read.
    pub has_ports: bool,
    /// 4 or 6; 0 when the headers could not be read.
    pub version: u8,
    /// Source address (IPv4 in the first 4 bytes).
    pub saddr: [u8; 16],
    /// Destination address (IPv4 in the first 4 bytes).
    pub daddr: [u8; 16],
}

/// `skb->data` of the skb at `skb` through a checked read (classic tracepoints, whose skb
/// is a plain number); 0 without the offset. BTF tracepoints load it directly instead
/// (`Member::SkbData`).
#[inline(always)]
pub(crate) fn skb_data(skb: u64) -> u64 {
    let off = global_u32(&SKB_DATA_OFF);
    if off == NO_OFFSET || skb == 0 {
        return 0;
    }
    // SAFETY: a checked kernel read (bpf_probe_read_kernel) inside the skb.
    unsafe { bpf_probe_read_kernel((skb + u64::from(off)) as *const u64) }.unwrap_or(0)
}

/// Reads the IP and TCP/UDP headers at `data` (an skb's network header) of a packet whose
/// length is `len`; nothing when `data` is 0.
#[inline(always)]
pub(crate) fn read_headers(data: u64, len: u32) -> Headers {
    let mut out = Headers::default();
    if data == 0 {
        return out;
    }
    // SAFETY: checked kernel reads (bpf_probe_read_kernel) of the packet's buffer.
    // struct iphdr / struct ipv6hdr
    let Ok(ip) = (unsafe { bpf_probe_read_kernel(data as *const [u8; 40]) }) else {
        return out;
    };
    let version = ip[0] >> 4;
    let (proto, header_len, l3_payload) = match version {
        4 => {
            let ihl = u32::from(ip[0] & 0x0f) * 4;
            let total = u32::from(u16::from_be_bytes([ip[2], ip[3]]));
            // A GSO packet beyond 64 KiB (BIG TCP) carries tot_len 0: the skb length counts.
            let total = if total == 0 { len } else { total };
            out.saddr[..4].copy_from_slice(&ip[12..16]);
            out.daddr[..4].copy_from_slice(&ip[16..20]);
            (ip[9], ihl, total.saturating_sub(ihl))
        }
        6 => {
            out.saddr.copy_from_slice(&ip[8..24]);
            out.daddr.copy_from_slice(&ip[24..40]);
            (ip[6], 40, u32::from(u16::from_be_bytes([ip[4], ip[5]])))
        }
        _ => return out,
    };
    if header_len < 20 {
        return out;
    }
    out.version = version;
    // More fragments, or a fragment offset: frag_off's low 14 bits (DF aside).
    if version == 4 && u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
        out.arg1 = HDR_VALID | HDR_FRAGMENT | u32::from(version) << 16 | u32::from(proto);
        out.payload = l3_payload;
        return out;
    }
    if version == 6 && proto == NEXTHDR_FRAGMENT {
        // struct frag_hdr: its first byte is the next header, the fragment's protocol.
        // SAFETY: a checked kernel read of one byte of the packet's buffer.
        let next = unsafe { bpf_probe_read_kernel((data + 40) as *const u8) }.unwrap_or(0);
        out.arg1 = HDR_VALID | HDR_FRAGMENT | u32::from(version) << 16 | u32::from(next);
        out.payload = l3_payload.saturating_sub(8);
        return out;
    }
    // struct tcphdr / struct udphdr
    let Ok(l4) =
        (unsafe { bpf_probe_read_kernel((data + u64::from(header_len)) as *const [u8; 16]) })
    else {
        out.arg1 = HDR_VALID | u32::from(version) << 16 | u32::from(proto);
        out.payload = l3_payload;
        return out;
    };
    let ports = u64::from(u16::from_be_bytes([l4[0], l4[1]])) << 32
        | u64::from(u16::from_be_bytes([l4[2], l4[3]])) << 48;
    let ip_bits = HDR_VALID | u32::from(version) << 16;
    match proto {
        IPPROTO_TCP => {
            let doff = u32::from(l4[12] >> 4) * 4;
            out.payload = l3_payload.saturating_sub(doff);
            out.seq_ports = ports | u64::from(u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]));
            out.arg1 = ip_bits | u32::from(l4[13]) << 8 | u32::from(IPPROTO_TCP);
            out.has_ports = true;
        }
        IPPROTO_UDP => {
            let length = u32::from(u16::from_be_bytes([l4[4], l4[5]]));
            out.payload = length.saturating_sub(8);
            out.seq_ports = ports;
            out.arg1 = ip_bits | u32::from(IPPROTO_UDP);
            out.has_ports = true;
        }
        other => {
            out.payload = l3_payload;
            out.arg1 = ip_bits | u32::from(other);
        }
    }
    out
}
