//! Sockets: a packet reaching its socket (tcp_probe, sk_data_ready), the socket's queue as
//! a byte stream (TCP, in sequence order) or datagrams (UDP), what a TCP read takes from it,
//! and the socket's end (tcp_destroy_sock).

use std::{
    borrow::Cow,
    collections::{VecDeque, hash_map::Entry},
};

use tracer_common::Event;

use super::{
    Ending, Engine, Ids, Phase,
    packets::{IPPROTO_TCP, IPPROTO_UDP, proto_name},
};
use crate::journey::{Journey, model::Addr};

const AF_INET: u32 = 2;

/// Whose socket it is, as far as reads have shown (for `--pid`/`--comm`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Owner {
    #[default]
    Unknown,
    /// A selected reader has read from it.
    Selected,
    /// Another reader has read from it (TCP: until the socket is destroyed).
    Other,
}

/// The packets on one socket, oldest (lowest sequence) first.
#[derive(Clone, Debug, Default)]
pub(super) struct SocketQueue {
    pub ids: VecDeque<u64>,
    pub owner: Owner,
    /// A TCP socket: the queue is a byte stream.
    pub tcp: bool,
    /// TCP with sequence numbers: the sequence number after the last byte a read was
    /// credited with, and the segment's ports. A queued segment of those ports below it is a
    /// copy of bytes already returned. The ports keep a connection that missed its
    /// tcp_destroy_sock (and whose socket address came back) from judging the next one.
    pub credited: Option<(u32, (u16, u16))>,
}

/// Where the bytes `credited` (a queue's [`SocketQueue::credited`]) end, for a segment of
/// these ports.
fn credited_for(credited: Option<(u32, (u16, u16))>, ports: Option<(u16, u16)>) -> Option<u32> {
    credited
        .filter(|(_, of)| Some(*of) == ports)
        .map(|(seq, _)| seq)
}

impl SocketQueue {
    /// Nothing queued and nothing learnt worth keeping.
    pub fn is_idle(&self) -> bool {
        self.ids.is_empty() && self.owner == Owner::Unknown
    }
}

/// `a` comes after `b` in sequence space (RFC 1982 style, as the kernel's `after()`).
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// tcp_probe's `data_len` is 16 bits: a segment larger than 64 KiB (BIG TCP, loopback TSO)
/// wraps. The packet's length bounds the payload, so restore the lost multiples of 64 KiB.
fn unwrap_data_len(data_len: u32, ip_len: u32) -> u32 {
    let mut payload = data_len;
    while payload + 65_536 + 40 <= ip_len {
        payload += 65_536;
    }
    payload
}

/// What one TCP read took from its socket.
#[derive(Debug, Default)]
pub(super) struct Taken {
    /// Packets whose last byte it returned.
    pub done: Ids,
    /// Packets it returned only part of.
    pub partial: Ids,
    /// Retransmitted copies of bytes a read had already been credited with (ended by the
    /// caller as [`Ending::Duplicate`](super::Ending::Duplicate)).
    pub duplicate: Ids,
}

impl Engine {
    /// `tcp:tcp_probe`: a segment enters an established socket (in softirq, or later from
    /// the socket backlog in the reader's own context). This is its link to the socket.
    #[inline(never)]
    pub(super) fn on_tcp_probe(&mut self, event: &Event, out: &mut Vec<Journey>) {
        let (skb, sk) = (event.addr, event.addr2);
        let Some(&id) = self.skbs.get(&skb) else {
            return;
        };
        let Some(open) = self.open.get_mut(&id) else {
            return;
        };
        if open.phase != Phase::Stack {
            return;
        }
        let data_len = event.arg0 & 0xffff;
        let own = *open
            .journey
            .payload
            .get_or_insert_with(|| unwrap_data_len(data_len, open.journey.len));
        let seq = open.seq;
        let mut linked = Vec::new();
        if own > 0 {
            linked.push(id);
        } else {
            // A pure ACK (maybe one the backlog merged data into: that data has journeys
            // of its own, found below).
            self.end_control(id, out);
        }
        if own & 0xffff != data_len
            && let Some(seq) = seq
        {
            let merged = self.coalesced_into(seq, own, data_len, event.arg1);
            if !merged.is_empty() {
                self.backlog_merged
                    .insert(skb, (id, merged.iter().copied().collect()));
            }
            linked.extend(merged);
        }
        for id in linked {
            let Some(open) = self.open.get_mut(&id) else {
                continue;
            };
            open.probed = true;
            open.sk = sk;
            open.journey.skaddr = Some(Addr(sk));
            open.journey.proto = Cow::Borrowed("tcp");
            if self.enqueue(id, sk, true) {
                self.awaiting_ready.entry(sk).or_default().push(id);
                let state = self.cpu(event.cpu);
                if state.last_received == Some(id) {
                    state.last_received = None;
                }
            }
        }
    }

    /// The segments the kernel merged into the one at `seq` (carrying `own` bytes) while it
    /// waited in the socket backlog: tcp_add_backlog coalesces, and the merged skbs are freed
    /// untraced, so tcp_probe sees one skb whose `data_len` (16 bits: modulo 65536) counts
    /// them all. They are the same flow's unlinked segments that follow it without a gap,
    /// up to where the total matches `data_len`. `ports` is tcp_probe's local << 16 | remote.
    fn coalesced_into(&mut self, seq: u32, own: u32, data_len: u32, ports: u32) -> Vec<u64> {
        let (local, remote) = ((ports >> 16) as u16, ports as u16);
        let open = &self.open;
        self.unlinked_tcp
            .retain(|id| open.get(id).is_some_and(|o| o.phase == Phase::Stack));
        let mut candidates: Vec<(u32, u32, u64)> = self
            .unlinked_tcp
            .iter()
            .filter_map(|id| {
                let o = open.get(id)?;
                let offset = o.seq?.wrapping_sub(seq);
                let flow = o.ports == Some((remote, local));
                let payload = o.journey.payload?;
                (flow && !o.probed && offset >= own).then_some((offset, payload, *id))
            })
            .collect();
        candidates.sort_unstable();
        let mut total = own;
        let mut merged = Vec::new();
        for (offset, payload, id) in candidates {
            if offset != total {
                break;
            }
            total = total.wrapping_add(payload);
            merged.push(id);
            if total & 0xffff == data_len {
                return merged;
            }
        }
        Vec::new()
    }

    /// `sock:sk_data_ready`: the socket has data for its reader. Links the segments tcp_probe
    /// announced on this socket, else the packet this CPU received last.
    #[inline(never)]
    pub(super) fn on_data_ready(&mut self, event: &Event, out: &mut Vec<Journey>) {
        let sk = event.addr;
        if !self.awaiting_ready.is_empty()
            && let Some(ids) = self.awaiting_ready.remove(&sk)
        {
            for &id in &ids {
                let Some(open) = self.open.get_mut(&id) else {
                    continue;
                };
                open.journey.ts.sk_data_ready.get_or_insert(event.ts);
                // The bytes are on the socket now; the skb may be coalesced into another
                // and freed untraced, so its address no longer names this packet.
                if self.skbs.get(&open.skb) == Some(&id) {
                    self.skbs.remove(&open.skb);
                }
                // Merged segments are on the socket with it: no drop can take them now.
                if !self.backlog_merged.is_empty()
                    && let Entry::Occupied(entry) = self.backlog_merged.entry(open.skb)
                    && entry.get().0 == id
                {
                    entry.remove();
                }
            }
            // The wakeup that follows is the newest segment's.
            if let Some(&last) = ids.last() {
                self.cpu(event.cpu).last_ready = Some(last);
            }
            return;
        }
        let state = self.cpu(event.cpu);
        let Some(id) = state.last_received.take() else {
            if !std::mem::take(&mut state.last_was_control) {
                self.stats.unlinked_data_ready += 1;
            }
            return;
        };
        let Some(open) = self.open.get_mut(&id) else {
            return;
        };
        if open.phase != Phase::Stack {
            self.stats.unlinked_data_ready += 1;
            return;
        }
        let tcp = event.arg1 == IPPROTO_TCP;
        if open.journey.payload.is_none() {
            if tcp && !self.config.degraded.no_tcp_probe {
                // Every established-state segment passes tcp_probe first: one that did not
                // is the handshake's last ACK waking the listener for accept().
                self.end_control(id, out);
                return;
            }
            if event.arg1 == IPPROTO_UDP && !open.fragment {
                let headers = if event.arg0 == AF_INET { 28 } else { 48 };
                open.journey.payload = Some(open.journey.len.saturating_sub(headers));
            }
        }
        open.sk = sk;
        open.journey.ts.sk_data_ready = Some(event.ts);
        open.journey.skaddr = Some(Addr(sk));
        open.journey.proto = proto_name(event.arg1);
        if self.enqueue(id, sk, tcp) {
            self.cpu(event.cpu).last_ready = Some(id);
        }
    }

    /// Puts a packet on its socket's queue (TCP: in sequence order). Under a reader filter a
    /// TCP segment on another reader's socket is forgotten here; returns whether it is queued.
    fn enqueue(&mut self, id: u64, sk: u64, tcp: bool) -> bool {
        let filtering = self.config.readers.is_active();
        let queue = self.sockets.entry(sk).or_default();
        queue.tcp = tcp;
        if filtering && tcp && queue.owner == Owner::Other {
            self.discard(id);
            return false;
        }
        // One lookup of the packet: its sequence read and its phase set together.
        let seq = self.open.get_mut(&id).and_then(|open| {
            open.phase = Phase::Queued;
            open.seq
        });
        let mut at = queue.ids.len();
        if let Some(seq) = seq {
            while at > 0 {
                let before = self.open.get(&queue.ids[at - 1]).and_then(|open| open.seq);
                match before {
                    Some(before) if after(before, seq) => at -= 1,
                    _ => break,
                }
            }
        }
        // Nearly always the newest: pushed, not inserted (no shifting to consider).
        if at == queue.ids.len() {
            queue.ids.push_back(id);
        } else {
            queue.ids.insert(at, id);
        }
        true
    }

    /// What a TCP read of `bytes` bytes takes from socket `sk`: with `copied_seq` (the
    /// socket's read point after the read, from BTF), every byte before it; without, the
    /// oldest `bytes` queued bytes. A packet whose payload is unknown (no headers, no
    /// tcp_probe) goes whole to the first read that finds it.
    pub(super) fn take_tcp(&mut self, sk: u64, bytes: u32, copied_seq: Option<u32>) -> Taken {
        let mut taken = Taken::default();
        let Some(queue) = self.sockets.get_mut(&sk) else {
            return taken;
        };
        let mut left = bytes;
        while let Some(&id) = queue.ids.front() {
            let Some(open) = self.open.get_mut(&id) else {
                queue.ids.pop_front();
                continue;
            };
            let Some(payload) = open.journey.payload else {
                queue.ids.pop_front();
                open.journey.reads += 1;
                taken.done.push(id);
                continue;
            };
            let mut remaining = payload.saturating_sub(open.taken);
            let covered = match (copied_seq, open.seq) {
                (Some(copied), Some(seq)) => {
                    let mut next = seq.wrapping_add(open.taken);
                    let credited = credited_for(queue.credited, open.ports);
                    // Bytes another segment already brought (a retransmitted copy the
                    // kernel trimmed): skipped, never credited twice.
                    if let Some(credited) = credited
                        && after(credited, next)
                    {
                        let old = credited.wrapping_sub(next).min(remaining);
                        open.taken += old;
                        remaining -= old;
                        next = next.wrapping_add(old);
                        if remaining == 0 && payload > 0 {
                            queue.ids.pop_front();
                            taken.duplicate.push(id);
                            continue;
                        }
                    }
                    if after(copied, next) {
                        let covered = copied.wrapping_sub(next).min(remaining);
                        let end = next.wrapping_add(covered);
                        if let Some(ports) = open.ports
                            && credited.is_none_or(|credited| after(end, credited))
                        {
                            queue.credited = Some((end, ports));
                        }
                        covered
                    } else {
                        0
                    }
                }
                _ => remaining.min(left),
            };
            if covered == 0 && remaining > 0 {
                break;
            }
            open.taken += covered;
            left = left.saturating_sub(covered);
            open.journey.reads += 1;
            if open.taken >= payload {
                queue.ids.pop_front();
                taken.done.push(id);
            } else {
                taken.partial.push(id);
                break;
            }
        }
        if copied_seq.is_none() {
            self.stats.unmatched_read_bytes += u64::from(left);
        }
        taken
    }

    /// `tcp:tcp_destroy_sock`: the socket is gone. What it still held was never read.
    #[inline(never)]
    pub(super) fn on_destroy(&mut self, event: &Event, out: &mut Vec<Journey>) {
        let sk = event.addr;
        self.awaiting_ready.remove(&sk);
        let Some(queue) = self.sockets.get(&sk) else {
            return;
        };
        let ids: Vec<u64> = queue.ids.iter().copied().collect();
        let counted = !self.config.readers.is_active() || queue.owner == Owner::Selected;
        let credited = queue.credited;
        for id in ids {
            let Some(open) = self.open.get(&id) else {
                continue;
            };
            let credited = credited_for(credited, open.ports);
            // A copy of bytes a read already returned was not left unread.
            let end = open
                .seq
                .zip(open.journey.payload)
                .map(|(seq, n)| seq.wrapping_add(n));
            if let (Some(end), Some(credited)) = (end, credited)
                && !after(end, credited)
            {
                self.end(id, Some(Ending::Duplicate), out);
                continue;
            }
            let reason = if open.taken > 0 {
                Ending::ClosedPartlyRead
            } else {
                Ending::ClosedUnread
            };
            if counted {
                self.stats.closed_unread += 1;
            }
            self.end(id, Some(reason), out);
        }
        self.sockets.remove(&sk);
    }
}

#[cfg(test)]
mod tests {
    use super::{after, unwrap_data_len};

    #[test]
    fn sequence_numbers_compare_across_the_wrap() {
        assert!(after(5, 3));
        assert!(!after(3, 5));
        assert!(after(2, u32::MAX - 2));
        assert!(!after(7, 7));
    }

    #[test]
    fn data_len_beyond_16_bits_is_restored_from_the_packet_length() {
        assert_eq!(unwrap_data_len(1448, 1500), 1448);
        assert_eq!(unwrap_data_len(65431, 65483), 65431);
        assert_eq!(unwrap_data_len(100_000 - 65_536, 100_052), 100_000);
    }
}
