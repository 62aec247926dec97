//! Packets before their socket: GRO entry, netif_receive_skb (with the headers the kernel
//! side read: protocol, TCP flags, payload, sequence number), NAPI batches, frees and drops.

use std::borrow::Cow;

use tracer_common::{Event, HDR_FRAGMENT, HDR_VALID};

use super::{Ending, Engine, MAX_COMMS, Phase};
use crate::journey::{
    Journey,
    model::{Shared, TcpFlags},
};

pub(super) const IPPROTO_TCP: u32 = 6;
pub(super) const IPPROTO_UDP: u32 = 17;

/// The name of an IP protocol number in the `proto` field.
pub(super) fn proto_name(number: u32) -> Cow<'static, str> {
    match number {
        IPPROTO_UDP => Cow::Borrowed("udp"),
        IPPROTO_TCP => Cow::Borrowed("tcp"),
        other => Cow::Owned(other.to_string()),
    }
}

impl Engine {
    #[inline(never)]
    pub(super) fn on_gro_entry(&mut self, event: &Event, out: &mut Vec<Journey>) {
        self.forget_merged(event.addr);
        self.retire_skb(event.addr, out);
        let id = self.new_journey(event, Phase::Gro, out);
        self.skbs.insert(event.addr, id);
        let state = self.cpu(event.cpu);
        state.gro_pending.push(id);
        state.batch.push(id);
    }

    /// A new skb at `skb`: what the backlog merged into an earlier skb there is no longer
    /// named by it.
    fn forget_merged(&mut self, skb: u64) {
        if !self.backlog_merged.is_empty() {
            self.backlog_merged.remove(&skb);
        }
    }

    pub(super) fn on_receive(&mut self, event: &Event, out: &mut Vec<Journey>) {
        self.forget_merged(event.addr);
        let cpu = event.cpu;
        let known = self.skbs.get(&event.addr).copied();
        let continued = known.filter(|id| {
            self.open
                .get(id)
                .is_some_and(|open| open.phase == Phase::Gro)
        });
        let id = match continued {
            Some(id) => {
                self.merge_gro_followers(id, event.ts);
                let dev = self.dev(event);
                let open = self.open.get_mut(&id).expect("checked above");
                open.phase = Phase::Stack;
                let journey = &mut open.journey;
                journey.dev = dev;
                journey.len = event.arg0;
                if open.gro_cpu != Some(cpu) {
                    journey.cpu_stack = Some(cpu);
                }
                id
            }
            None => {
                // Looked up above: nothing to retire (nearly always) is not hashed again.
                if known.is_some() {
                    self.retire_skb(event.addr, out);
                }
                let id = self.new_journey(event, Phase::Stack, out);
                self.skbs.insert(event.addr, id);
                self.cpu(cpu).batch.push(id);
                id
            }
        };
        let addrs = self
            .cpu(cpu)
            .addrs
            .take()
            .filter(|(skb, ..)| *skb == event.addr);
        let mut control = false;
        // Whether it carries a TCP sequence, read while it is at hand (not looked up again).
        let mut has_seq = false;
        if let Some(open) = self.open.get_mut(&id) {
            open.journey.ts.netif_receive = Some(event.ts);
            if let Some((_, family, saddr, daddr)) = addrs {
                open.journey.family = Some(family);
                open.journey.saddr = Some(saddr);
                open.journey.daddr = Some(daddr);
            }
            if event.arg1 & HDR_FRAGMENT != 0 {
                // An IP fragment: the protocol is known; its ports and the datagram's
                // payload are not (they stay null).
                open.journey.proto = proto_name(event.arg1 & 0xff);
                open.fragment = true;
            } else if event.arg1 & HDR_VALID != 0 {
                let proto = event.arg1 & 0xff;
                open.journey.proto = proto_name(proto);
                open.journey.payload = Some(event.arg2);
                if proto == IPPROTO_TCP || proto == IPPROTO_UDP {
                    let (sport, dport) = ((event.addr2 >> 32) as u16, (event.addr2 >> 48) as u16);
                    open.ports = Some((sport, dport));
                    open.journey.sport = Some(sport);
                    open.journey.dport = Some(dport);
                }
                if proto == IPPROTO_TCP {
                    open.journey.tcp_flags = Some(TcpFlags((event.arg1 >> 8) as u8));
                    open.seq = Some(event.addr2 as u32);
                    control = event.arg2 == 0;
                }
            }
            has_seq = open.seq.is_some();
        }
        if control {
            self.end_control(id, out);
            let state = self.cpu(cpu);
            state.last_received = None;
            state.last_was_control = true;
        } else {
            if has_seq {
                if self.unlinked_tcp.len() >= 4096 {
                    let open = &self.open;
                    self.unlinked_tcp
                        .retain(|id| open.get(id).is_some_and(|o| o.phase == Phase::Stack));
                }
                self.unlinked_tcp.push(id);
            }
            let state = self.cpu(cpu);
            state.last_received = Some(id);
            state.last_was_control = false;
        }
    }

    /// The addresses of the packet whose record follows on this CPU (`FLAG_ADDRS`).
    pub(super) fn on_addrs(&mut self, event: &Event) {
        if let Some((family, saddr, daddr)) = crate::source::decode::addresses(event) {
            self.cpu(event.cpu).addrs = Some((event.addr, family, saddr, daddr));
        }
    }

    /// A TCP segment without payload: no reader will ever read it.
    pub(super) fn end_control(&mut self, id: u64, out: &mut Vec<Journey>) {
        if let Some(open) = self.open.get_mut(&id) {
            open.journey.control = true;
            open.journey.proto = Cow::Borrowed("tcp");
        }
        self.end(id, Some(Ending::Control), out);
    }

    /// GRO entries that came after `head` on the same CPU and never reached
    /// netif_receive_skb themselves were merged into it.
    fn merge_gro_followers(&mut self, head: u64, now: u64) {
        let Some(gro_cpu) = self.open.get(&head).and_then(|open| open.gro_cpu) else {
            return;
        };
        let pending = std::mem::take(&mut self.cpus[gro_cpu as usize].gro_pending);
        let mut keep = Vec::new();
        let mut merged = 0;
        let mut after_head = false;
        for id in pending {
            if id == head {
                after_head = true;
                continue;
            }
            let still_gro = self
                .open
                .get(&id)
                .is_some_and(|open| open.phase == Phase::Gro);
            if !still_gro {
                continue;
            }
            if after_head
                && self
                    .open
                    .get(&id)
                    .and_then(|open| open.gro_ts)
                    .is_some_and(|ts| ts <= now)
            {
                merged += 1;
                if let Some(open) = self.open.remove(&id) {
                    self.skbs.remove(&open.skb);
                }
                self.count_unsocketed(Ending::GroMerged);
            } else {
                keep.push(id);
            }
        }
        self.cpus[gro_cpu as usize].gro_pending = keep;
        if let Some(open) = self.open.get_mut(&head) {
            open.journey.gro_merged += merged;
        }
    }

    /// A new packet uses `skb`: the packet that had it before is over.
    fn retire_skb(&mut self, skb: u64, out: &mut Vec<Journey>) {
        let Some(old) = self.skbs.remove(&skb) else {
            return;
        };
        let Some(open) = self.open.get(&old) else {
            return;
        };
        // A TCP data segment waiting in the socket backlog may have been merged into the skb
        // before it and freed untraced: its address is free again, but its bytes will come
        // with that skb's tcp_probe (`coalesced_into`). It stays open, without its address.
        let in_backlog = open.phase == Phase::Stack
            && open.seq.is_some()
            && !open.probed
            && open.journey.payload.is_some_and(|payload| payload > 0);
        if matches!(open.phase, Phase::Gro | Phase::Stack) && !in_backlog {
            self.end(old, Some(Ending::SkbReused), out);
        }
    }

    pub(super) fn on_napi_poll(&mut self, event: &Event) {
        // Cleared, not taken: the batch keeps its capacity for the next poll (no allocation).
        let batch = &mut self.cpus[event.cpu as usize].batch;
        for (index, id) in batch.drain(..).enumerate() {
            if let Some(open) = self.open.get_mut(&id) {
                let journey = &mut open.journey;
                journey.napi_batch_pos = Some(index as u32 + 1);
                journey.napi_work = Some(event.arg0);
                journey.napi_budget = Some(event.arg1);
            }
        }
    }

    /// The name of drop reason `code`, interned: a flood's drops share one string.
    fn drop_reason(&mut self, code: u32) -> Shared {
        if let Some(reason) = self.drop_names.get(&code) {
            return reason.clone();
        }
        let reason: Shared = match self.config.drop_reasons.get(&u64::from(code)) {
            Some(name) => name.as_str().into(),
            None => code.to_string().into(),
        };
        // The kernel has a few hundred reasons; a flood of distinct codes would be corrupt input.
        if self.drop_names.len() < MAX_COMMS {
            self.drop_names.insert(code, reason.clone());
        }
        reason
    }

    #[inline(never)]
    pub(super) fn on_free(&mut self, event: &Event, dropped: bool, out: &mut Vec<Journey>) {
        let merged = if self.backlog_merged.is_empty() {
            None
        } else {
            self.backlog_merged.remove(&event.addr)
        };
        self.free_skb(event, dropped, out);
        if dropped && let Some((_, merged)) = merged {
            // Their bytes were in this skb (merged in the socket backlog): dropped with it.
            for id in merged {
                let Some(open) = self.open.get(&id) else {
                    continue;
                };
                if matches!(open.phase, Phase::Stack | Phase::Queued) {
                    let reason = self.drop_reason(event.arg0);
                    if let Some(open) = self.open.get_mut(&id) {
                        open.journey.drop_reason = Some(reason);
                    }
                    self.end(id, Some(Ending::Dropped), out);
                }
            }
        }
    }

    /// The end of the skb at `event.addr` (freed: consumed, or dropped by the kernel).
    fn free_skb(&mut self, event: &Event, dropped: bool, out: &mut Vec<Journey>) {
        let Some(&id) = self.skbs.get(&event.addr) else {
            return;
        };
        let Some(open) = self.open.get(&id) else {
            self.skbs.remove(&event.addr);
            return;
        };
        match (open.phase, dropped) {
            (Phase::Read, _) => {}
            (Phase::Queued, false) => {} // dequeued by the read that follows
            (_, true) => {
                self.skbs.remove(&event.addr);
                let reason = self.drop_reason(event.arg0);
                if let Some(open) = self.open.get_mut(&id) {
                    open.journey.drop_reason = Some(reason);
                }
                self.end(id, Some(Ending::Dropped), out);
            }
            (Phase::Gro | Phase::Stack, false) => {
                self.skbs.remove(&event.addr);
                let ending = if open.fragment {
                    Ending::Reassembled
                } else {
                    Ending::Consumed
                };
                self.end(id, Some(ending), out);
            }
        }
    }
}
