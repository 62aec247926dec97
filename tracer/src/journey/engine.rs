//! The journey engine: time-ordered events in, journeys out. Pure: no kernel, no files.
//!
//! How a packet is followed (see DESIGN.md, "Honesty rules of the data"):
//! - per CPU, the hard IRQ in progress, the first NET_RX raise since the last NET_RX entry
//!   (and the NIC IRQ it was raised in), the NET_RX softirq in progress and the packets
//!   received since the last napi_poll (napi_poll fires after each poll with its work);
//! - a packet is its skb address from napi_gro_receive_entry/netif_receive_skb until it is
//!   enqueued on a socket, freed, or the address shows up again;
//! - sk_data_ready on a CPU belongs to the packet that CPU received last (the enqueue runs
//!   inside netif_receive_skb); the first sched_waking after it is the reader's wakeup;
//! - a socket is a FIFO of packets: a UDP read (sock_recv_length) takes the oldest datagram,
//!   a TCP read takes every segment queued before it; the reader's next recv-family syscall
//!   exit is the recv return.

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap, VecDeque},
};

use rustc_hash::FxHashMap;

use tracer_common::{Event, EventKind, FLAG_LOST_BEFORE, NAME_LEN, NET_RX_SOFTIRQ};

pub use crate::host::irqmap::IrqDevice;

use super::model::{Addr, Journey, Missing, Shared, Stage, StageDurations};

/// MSG_PEEK: a read that leaves the datagram queued.
const MSG_PEEK: u32 = 2;
const IPPROTO_TCP: u32 = 6;
const IPPROTO_UDP: u32 = 17;
const AF_INET: u32 = 2;

/// Links this kernel (or the user, with `--without`) does not provide: the engine then
/// falls back to the next best evidence and marks the stages it cannot measure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Degraded {
    /// No sock:sk_data_ready: a packet links to the reader its softirq wakes.
    pub no_data_ready: bool,
    /// No sock:sock_recv_length: a read links through the socket's known reader and the
    /// syscall exit.
    pub no_recv_length: bool,
}

impl Degraded {
    /// The fallbacks needed when these kinds are not traced.
    pub fn from_missing(kinds: impl IntoIterator<Item = EventKind>) -> Self {
        let mut degraded = Degraded::default();
        for kind in kinds {
            match kind {
                EventKind::SkDataReady => degraded.no_data_ready = true,
                EventKind::SockRecvLength => degraded.no_recv_length = true,
                _ => {}
            }
        }
        degraded
    }
}

/// What the engine knows about the host besides the events.
#[derive(Clone, Debug, Default)]
pub struct EngineConfig {
    /// Interrupts of network devices, by IRQ number.
    pub irq_devices: HashMap<u32, IrqDevice>,
    /// skb_drop_reason names of this kernel, by value.
    pub drop_reasons: BTreeMap<u64, String>,
    /// Task names known before the trace (e.g. ksoftirqd threads), by tid.
    pub comms: HashMap<u32, String>,
    /// Also emit packets that never reached a socket (ACKs, ARP, ...): off by default.
    pub keep_unsocketed: bool,
    /// Missing links and their fallbacks.
    pub degraded: Degraded,
    /// Open journeys at most (0: the default, [`DEFAULT_MAX_OPEN`]); beyond it the oldest is
    /// ended as "evicted", so memory stays bounded however the traffic behaves.
    pub max_open: usize,
}

/// Default bound on open journeys.
pub const DEFAULT_MAX_OPEN: usize = 65_536;
/// Task names remembered at most before the table is cleared.
const MAX_COMMS: usize = 65_536;
/// Events between two sweeps of the link tables.
const SWEEP_EVERY: u64 = 1 << 16;

/// Counters of what the engine saw, for the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub events: u64,
    pub journeys_emitted: u64,
    pub complete: u64,
    /// Incomplete journeys emitted, by reason.
    pub incomplete: BTreeMap<String, u64>,
    /// Packets that ended without reaching a socket and were not emitted, by reason.
    pub unsocketed: BTreeMap<String, u64>,
    pub dropped: u64,
    /// Events flagged FLAG_LOST_BEFORE, per CPU.
    pub loss_marks: BTreeMap<u16, u64>,
    /// sched_waking of a ksoftirqd thread (NET_RX work deferred to a thread).
    pub ksoftirqd_wakeups: u64,
    /// Reads whose data was enqueued before the trace (or not linked to a packet).
    pub reads_without_packet: u64,
    /// sk_data_ready with no packet received just before on that CPU.
    pub unlinked_data_ready: u64,
    /// Journeys ended early because too many were open (`EngineConfig::max_open`).
    pub evicted: u64,
    /// State table entries dropped by the periodic sweep (stale links, forgotten names).
    pub swept: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Seen by GRO, not yet by netif_receive_skb.
    Gro,
    /// netif_receive_skb seen, not yet enqueued on a socket.
    Stack,
    /// On a socket's receive queue.
    Queued,
    /// Taken by a read; waiting for the syscall to return.
    Read,
}

#[derive(Clone, Debug)]
struct Open {
    journey: Journey,
    phase: Phase,
    skb: u64,
    sk: u64,
    gro_ts: Option<u64>,
    gro_cpu: Option<u16>,
    /// The softirq context could not be known (started before the trace, lost events).
    softirq_unknown: bool,
    /// NET_RX was raised outside any NIC interrupt.
    raised_without_irq: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct IrqSpan {
    irq: u32,
    entry: u64,
    exit: Option<u64>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Raise {
    ts: u64,
    irq: Option<IrqSpan>,
}

#[derive(Clone, Copy, Debug)]
struct SoftirqRun {
    entry: u64,
    cause: Option<Raise>,
    in_ksoftirqd: bool,
}

#[derive(Clone, Debug, Default)]
struct CpuState {
    in_irq: Option<IrqSpan>,
    raise: Option<Raise>,
    softirq: Option<SoftirqRun>,
    /// A NET_RX entry or exit has been seen: the softirq context is known.
    softirq_known: bool,
    /// Packets since the last napi_poll on this CPU, in order.
    batch: Vec<u64>,
    /// GRO entries not yet received, in order (journey ids).
    gro_pending: Vec<u64>,
    /// The packet received last, until its sk_data_ready.
    last_received: Option<u64>,
    /// The packet enqueued last, until the first sched_waking after it.
    last_ready: Option<u64>,
}

/// Rebuilds journeys from a time-ordered event stream.
#[derive(Debug, Default)]
pub struct Engine {
    config: EngineConfig,
    cpus: Vec<CpuState>,
    open: FxHashMap<u64, Open>,
    skbs: FxHashMap<u64, u64>,
    sockets: FxHashMap<u64, VecDeque<u64>>,
    woken: FxHashMap<u32, Vec<u64>>,
    reading: FxHashMap<u32, Vec<u64>>,
    comms: FxHashMap<u32, Shared>,
    /// Device names seen in events, interned: a journey's `dev` is then a shared count.
    devs: FxHashMap<[u8; NAME_LEN], Shared>,
    /// `config.irq_devices` names, shared.
    irq_names: FxHashMap<u32, Shared>,
    /// Fallbacks: the reader each socket woke last, the sockets of each reader, and packets
    /// linked to a reader by its wakeup alone (no sk_data_ready).
    owners: FxHashMap<u64, u32>,
    task_sockets: FxHashMap<u32, Vec<u64>>,
    by_task: FxHashMap<u32, VecDeque<u64>>,
    next_id: u64,
    stats: EngineStats,
}

impl Engine {
    /// A new engine.
    pub fn new(config: EngineConfig) -> Self {
        let comms = config
            .comms
            .iter()
            .map(|(tid, comm)| (*tid, Shared::from(comm.as_str())))
            .collect();
        let irq_names = config
            .irq_devices
            .iter()
            .map(|(irq, device)| (*irq, Shared::from(device.name.as_str())))
            .collect();
        Self {
            config,
            comms,
            irq_names,
            next_id: 1,
            ..Self::default()
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Packets followed right now (not yet emitted).
    pub fn open_journeys(&self) -> usize {
        self.open.len()
    }

    /// Feeds one event (in time order); finished journeys are appended to `out`.
    pub fn push(&mut self, event: &Event, out: &mut Vec<Journey>) {
        let Some(kind) = EventKind::from_u8(event.kind) else {
            return;
        };
        self.stats.events += 1;
        if self.stats.events.is_multiple_of(SWEEP_EVERY) {
            self.sweep();
        }
        let cpu = event.cpu;
        if self.cpus.len() <= cpu as usize {
            self.cpus.resize_with(cpu as usize + 1, CpuState::default);
        }
        if event.flags & FLAG_LOST_BEFORE != 0 {
            self.on_loss(cpu);
        }
        use EventKind as K;
        match kind {
            K::IrqHandlerEntry => {
                self.cpu(cpu).in_irq = Some(IrqSpan {
                    irq: event.arg0,
                    entry: event.ts,
                    exit: None,
                });
            }
            K::IrqHandlerExit => {
                let state = self.cpu(cpu);
                state.in_irq = None;
                if let Some(Raise {
                    irq: Some(span), ..
                }) = &mut state.raise
                    && span.irq == event.arg0
                    && span.exit.is_none()
                {
                    span.exit = Some(event.ts);
                }
            }
            K::SoftirqRaise if event.arg0 == NET_RX_SOFTIRQ => {
                let nic_irq = self
                    .cpu(cpu)
                    .in_irq
                    .filter(|span| self.config.irq_devices.contains_key(&span.irq));
                let state = self.cpu(cpu);
                if state.raise.is_none() {
                    state.raise = Some(Raise {
                        ts: event.ts,
                        irq: nic_irq,
                    });
                } else if let Some(raise) = &mut state.raise
                    && raise.irq.is_none()
                    && nic_irq.is_some()
                {
                    raise.irq = nic_irq;
                }
            }
            K::SoftirqEntry if event.arg0 == NET_RX_SOFTIRQ => {
                let in_ksoftirqd = self.comm(event.tid).starts_with("ksoftirqd/");
                let state = self.cpu(cpu);
                state.softirq = Some(SoftirqRun {
                    entry: event.ts,
                    cause: state.raise.take(),
                    in_ksoftirqd,
                });
                state.softirq_known = true;
                state.batch.clear();
            }
            K::SoftirqExit if event.arg0 == NET_RX_SOFTIRQ => {
                let state = self.cpu(cpu);
                state.softirq = None;
                state.softirq_known = true;
                state.batch.clear();
                state.last_received = None;
                state.last_ready = None;
            }
            K::SoftirqRaise | K::SoftirqEntry | K::SoftirqExit => {}
            K::NapiPoll => self.on_napi_poll(event),
            K::NapiGroReceiveEntry => self.on_gro_entry(event, out),
            K::NetifRx => {}
            K::NetifReceiveSkb => self.on_receive(event, out),
            K::SkDataReady => self.on_data_ready(event),
            K::SchedWaking => self.on_waking(event),
            K::SchedWakeup => {
                if let Some(ids) = self.woken.get(&event.arg0) {
                    for id in ids {
                        if let Some(open) = self.open.get_mut(id) {
                            open.journey.ts.wakeup.get_or_insert(event.ts);
                        }
                    }
                }
            }
            K::SchedSwitch => self.on_switch(event),
            K::SkbCopyDatagramIovec => {}
            K::KfreeSkb => self.on_free(event, true, out),
            K::ConsumeSkb => self.on_free(event, false, out),
            K::SockRecvLength => self.on_recv_length(event),
            K::SysExitRecvfrom
            | K::SysExitRecvmsg
            | K::SysExitRecvmmsg
            | K::SysExitRead
            | K::SysExitReadv => {
                self.on_syscall_exit(event, kind, out);
            }
            K::SysEnterRecvfrom
            | K::SysEnterRecvmsg
            | K::SysEnterRecvmmsg
            | K::SysEnterRead
            | K::SysEnterReadv => {}
        }
    }

    /// Ends the trace: packets still queued or in a read are emitted as incomplete.
    pub fn finish(&mut self, out: &mut Vec<Journey>) {
        let mut ids: Vec<u64> = self.open.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(open) = self.open.get(&id) else {
                continue;
            };
            match open.phase {
                Phase::Queued => self.end(id, Some("never read before the trace ended"), out),
                Phase::Read => {
                    self.end(id, Some("recv had not returned when the trace ended"), out)
                }
                Phase::Gro | Phase::Stack => self.end(
                    id,
                    Some("had not reached a socket when the trace ended"),
                    out,
                ),
            }
        }
    }

    /// Drops links to journeys that are gone, and forgets task names when there are too many.
    fn sweep(&mut self) {
        let open = &self.open;
        let before = self.table_entries();
        self.skbs.retain(|_, id| open.contains_key(id));
        for queue in self.sockets.values_mut() {
            queue.retain(|id| open.contains_key(id));
        }
        self.sockets.retain(|_, queue| !queue.is_empty());
        for ids in self.woken.values_mut().chain(self.reading.values_mut()) {
            ids.retain(|id| open.contains_key(id));
        }
        self.woken.retain(|_, ids| !ids.is_empty());
        self.reading.retain(|_, ids| !ids.is_empty());
        for queue in self.by_task.values_mut() {
            queue.retain(|id| open.contains_key(id));
        }
        self.by_task.retain(|_, queue| !queue.is_empty());
        if self.comms.len() > MAX_COMMS {
            self.comms.clear();
            self.comms.extend(
                self.config
                    .comms
                    .iter()
                    .map(|(tid, comm)| (*tid, Shared::from(comm.as_str()))),
            );
        }
        if self.owners.len() > MAX_COMMS {
            self.owners.clear();
            self.task_sockets.clear();
        }
        self.stats.swept += before.saturating_sub(self.table_entries()) as u64;
    }

    fn table_entries(&self) -> usize {
        self.skbs.len()
            + self.sockets.values().map(VecDeque::len).sum::<usize>()
            + self.woken.values().map(Vec::len).sum::<usize>()
            + self.reading.values().map(Vec::len).sum::<usize>()
            + self.by_task.values().map(VecDeque::len).sum::<usize>()
            + self.comms.len()
            + self.owners.len()
    }

    /// Ends the oldest open journeys while more than `max_open` are open.
    fn evict(&mut self, out: &mut Vec<Journey>) {
        let max = if self.config.max_open == 0 {
            DEFAULT_MAX_OPEN
        } else {
            self.config.max_open
        };
        if self.open.len() <= max {
            return;
        }
        let mut ids: Vec<u64> = self.open.keys().copied().collect();
        ids.sort_unstable();
        let excess = self.open.len() - max + max / 16; // make room for a while
        for id in ids.into_iter().take(excess) {
            self.stats.evicted += 1;
            self.end(
                id,
                Some("evicted: too many packets open at once (memory bound)"),
                out,
            );
        }
    }

    fn cpu(&mut self, cpu: u16) -> &mut CpuState {
        &mut self.cpus[cpu as usize]
    }

    /// Remembers the comm an event carries for `tid`, allocating only when it changed.
    fn learn_comm(&mut self, tid: u32, event: &Event) {
        let end = event
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(event.name.len());
        let name = &event.name[..end];
        if self
            .comms
            .get(&tid)
            .is_none_or(|known| known.as_bytes() != name)
        {
            self.comms
                .insert(tid, Shared::from(String::from_utf8_lossy(name).as_ref()));
        }
    }

    /// The device name an event carries, interned.
    fn dev(&mut self, event: &Event) -> Shared {
        if let Some(dev) = self.devs.get(&event.name) {
            return dev.clone();
        }
        let dev = Shared::from(crate::source::decode::name(event).as_str());
        // Names come from a handful of devices; a flood of distinct ones would be corrupt input.
        if self.devs.len() < MAX_COMMS {
            self.devs.insert(event.name, dev.clone());
        }
        dev
    }

    fn comm(&self, tid: u32) -> &str {
        self.comms.get(&tid).map_or("", |comm| comm)
    }

    /// Events were lost on `cpu` just before this one: every open journey may have a gap,
    /// and this CPU's context is unknown until its next softirq boundary.
    fn on_loss(&mut self, cpu: u16) {
        *self.stats.loss_marks.entry(cpu).or_default() += 1;
        for open in self.open.values_mut() {
            open.journey.lost_events = true;
        }
        self.cpus[cpu as usize] = CpuState::default();
    }

    fn new_journey(&mut self, event: &Event, phase: Phase, out: &mut Vec<Journey>) -> u64 {
        self.evict(out);
        let id = self.next_id;
        self.next_id += 1;
        let journey = Journey {
            id,
            dev: self.dev(event),
            len: event.arg0,
            skbaddr: Addr(event.addr),
            proto: Cow::Borrowed("other"),
            ..Journey::default()
        };
        self.open.insert(
            id,
            Open {
                journey,
                phase,
                skb: event.addr,
                sk: 0,
                gro_ts: None,
                gro_cpu: None,
                softirq_unknown: false,
                raised_without_irq: false,
            },
        );
        id
    }

    /// Stamps the NET_RX context of `cpu` onto a journey.
    fn stamp_softirq(&mut self, id: u64, cpu: u16) {
        let state = &self.cpus[cpu as usize];
        let (run, known) = (state.softirq, state.softirq_known);
        let Some(open) = self.open.get_mut(&id) else {
            return;
        };
        let journey = &mut open.journey;
        journey.cpu_softirq = Some(cpu);
        match run {
            Some(run) => {
                journey.ts.softirq_entry = Some(run.entry);
                journey.softirq_in_ksoftirqd = run.in_ksoftirqd;
                if let Some(cause) = run.cause {
                    journey.ts.softirq_raise = Some(cause.ts);
                    match cause.irq {
                        Some(span) => {
                            journey.irq = Some(span.irq);
                            journey.ts.irq_entry = Some(span.entry);
                            journey.ts.irq_exit = span.exit;
                            journey.cpu_irq = Some(cpu);
                            journey.irq_name = self.irq_names.get(&span.irq).cloned();
                        }
                        None => open.raised_without_irq = true,
                    }
                } else {
                    open.softirq_unknown = true;
                }
            }
            None => open.softirq_unknown = !known,
        }
    }

    fn on_gro_entry(&mut self, event: &Event, out: &mut Vec<Journey>) {
        self.retire_skb(event.addr, out);
        let id = self.new_journey(event, Phase::Gro, out);
        self.skbs.insert(event.addr, id);
        self.stamp_softirq(id, event.cpu);
        if let Some(open) = self.open.get_mut(&id) {
            open.gro_ts = Some(event.ts);
            open.gro_cpu = Some(event.cpu);
        }
        let state = self.cpu(event.cpu);
        state.gro_pending.push(id);
        state.batch.push(id);
    }

    fn on_receive(&mut self, event: &Event, out: &mut Vec<Journey>) {
        let cpu = event.cpu;
        let continued = self.skbs.get(&event.addr).copied().filter(|id| {
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
                self.retire_skb(event.addr, out);
                let id = self.new_journey(event, Phase::Stack, out);
                self.skbs.insert(event.addr, id);
                self.stamp_softirq(id, cpu);
                self.cpu(cpu).batch.push(id);
                id
            }
        };
        if let Some(open) = self.open.get_mut(&id) {
            open.journey.ts.netif_receive = Some(event.ts);
        }
        self.cpu(cpu).last_received = Some(id);
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
                self.count_unsocketed("merged into another packet by GRO");
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
        if matches!(open.phase, Phase::Gro | Phase::Stack) {
            self.end(old, Some("skb address reused before the packet reached a socket (its free was not traced)"), out);
        }
    }

    fn on_napi_poll(&mut self, event: &Event) {
        let batch = std::mem::take(&mut self.cpu(event.cpu).batch);
        for (index, id) in batch.iter().enumerate() {
            if let Some(open) = self.open.get_mut(id) {
                let journey = &mut open.journey;
                journey.napi_batch_pos = Some(index as u32 + 1);
                journey.napi_work = Some(event.arg0);
                journey.napi_budget = Some(event.arg1);
            }
        }
    }

    fn on_data_ready(&mut self, event: &Event) {
        let Some(id) = self.cpu(event.cpu).last_received.take() else {
            self.stats.unlinked_data_ready += 1;
            return;
        };
        let Some(open) = self.open.get_mut(&id) else {
            return;
        };
        if open.phase != Phase::Stack {
            self.stats.unlinked_data_ready += 1;
            return;
        }
        open.phase = Phase::Queued;
        open.sk = event.addr;
        let journey = &mut open.journey;
        journey.ts.sk_data_ready = Some(event.ts);
        journey.skaddr = Some(Addr(event.addr));
        journey.proto = match event.arg1 {
            IPPROTO_UDP => Cow::Borrowed("udp"),
            IPPROTO_TCP => Cow::Borrowed("tcp"),
            other => Cow::Owned(other.to_string()),
        };
        self.sockets.entry(event.addr).or_default().push_back(id);
        self.cpu(event.cpu).last_ready = Some(id);
    }

    fn on_waking(&mut self, event: &Event) {
        let woken = event.arg0;
        if event.name.starts_with(b"ksoftirqd/") {
            self.stats.ksoftirqd_wakeups += 1;
        }
        self.learn_comm(woken, event);
        let fallback = self.config.degraded.no_data_ready;
        let state = self.cpu(event.cpu);
        let ready = state.last_ready.take();
        let received = if fallback {
            state.last_received.take()
        } else {
            None
        };
        if let Some(id) = ready {
            let Some(open) = self.open.get_mut(&id) else {
                return;
            };
            if open.journey.ts.waking.is_none() {
                open.journey.ts.waking = Some(event.ts);
                self.woken.entry(woken).or_default().push(id);
            }
            if self.config.degraded.no_recv_length && open.sk != 0 {
                self.owners.insert(open.sk, woken);
                let sockets = self.task_sockets.entry(woken).or_default();
                if !sockets.contains(&open.sk) {
                    sockets.push(open.sk);
                }
            }
        } else if let Some(id) = received
            && let Some(open) = self.open.get_mut(&id)
            && open.phase == Phase::Stack
        {
            // No sk_data_ready on this kernel: the wakeup in the packet's softirq is the link.
            open.phase = Phase::Queued;
            open.journey.ts.waking = Some(event.ts);
            self.woken.entry(woken).or_default().push(id);
            self.by_task.entry(woken).or_default().push_back(id);
        }
    }

    fn on_switch(&mut self, event: &Event) {
        let next = event.arg1;
        self.learn_comm(next, event);
        if let Some(ids) = self.woken.remove(&next) {
            for id in ids {
                if let Some(open) = self.open.get_mut(&id) {
                    open.journey.ts.switch_in = Some(event.ts);
                    open.journey.cpu_task = Some(event.cpu);
                }
            }
        }
    }

    fn on_recv_length(&mut self, event: &Event) {
        let ret = event.arg0 as i32;
        if ret <= 0 || event.arg1 & MSG_PEEK != 0 {
            return;
        }
        let tcp_read = event.arg2 & 0xffff == IPPROTO_TCP;
        let taken = match self.sockets.get_mut(&event.addr) {
            Some(queue) if !queue.is_empty() => {
                let tcp = self
                    .open
                    .get(queue.front().expect("non-empty"))
                    .is_some_and(|open| open.journey.proto == "tcp");
                let taken: Vec<u64> = if tcp {
                    queue.drain(..).collect()
                } else {
                    queue.pop_front().into_iter().collect()
                };
                if queue.is_empty() {
                    self.sockets.remove(&event.addr);
                }
                taken
            }
            _ => match self.by_task.get_mut(&event.tid) {
                // Linked by wakeup alone (no sk_data_ready): the read says which socket.
                Some(queue) if !queue.is_empty() => {
                    let taken: Vec<u64> = if tcp_read {
                        queue.drain(..).collect()
                    } else {
                        queue.pop_front().into_iter().collect()
                    };
                    for id in &taken {
                        if let Some(open) = self.open.get_mut(id) {
                            open.journey.proto =
                                Cow::Borrowed(if tcp_read { "tcp" } else { "udp" });
                            open.journey.skaddr = Some(Addr(event.addr));
                        }
                    }
                    taken
                }
                _ => {
                    self.stats.reads_without_packet += 1;
                    return;
                }
            },
        };
        // The read carries its task's name; remembered (allocating only when it changed).
        if event.name[0] != 0 {
            self.learn_comm(event.tid, event);
        }
        let comm = self.comms.get(&event.tid).cloned();
        let is_udp = |engine: &Self, id: &u64| {
            engine
                .open
                .get(id)
                .is_some_and(|open| open.journey.proto != "tcp")
        };
        let partial_check = taken.iter().all(|id| is_udp(self, id));
        self.assign_reader(&taken, event, comm, Some(i64::from(ret)));
        if partial_check {
            let headers = if event.arg2 >> 16 == AF_INET { 28 } else { 48 };
            for id in &taken {
                if let Some(open) = self.open.get_mut(id) {
                    open.journey.partial_read =
                        (ret as u32) < open.journey.len.saturating_sub(headers);
                }
            }
        }
        self.reading.entry(event.tid).or_default().extend(taken);
    }

    /// Marks `taken` as read by the current task of `event`.
    fn assign_reader(
        &mut self,
        taken: &[u64],
        event: &Event,
        comm: Option<Shared>,
        bytes: Option<i64>,
    ) {
        let count = taken.len() as u32;
        for id in taken {
            let Some(open) = self.open.get_mut(id) else {
                continue;
            };
            open.phase = Phase::Read;
            let journey = &mut open.journey;
            journey.pid = Some(event.tgid);
            journey.tid = Some(event.tid);
            journey.comm = comm.clone();
            journey.bytes = bytes;
            journey.read_packets = count;
        }
    }

    /// Without sock_recv_length: a read that returned data takes packets from the sockets
    /// this task was woken for (oldest first), or from the packets linked to it by wakeup.
    fn take_without_recv_length(&mut self, event: &Event, kind: EventKind) -> Vec<u64> {
        let ret = event.addr as i64;
        if ret <= 0 {
            return Vec::new();
        }
        let datagrams = if kind == EventKind::SysExitRecvmmsg {
            ret as usize
        } else {
            1
        };
        let mut taken = Vec::new();
        let sockets = self
            .task_sockets
            .get(&event.tid)
            .cloned()
            .unwrap_or_default();
        while taken.len() < datagrams {
            let oldest = sockets
                .iter()
                .filter_map(|sk| {
                    let front = *self.sockets.get(sk)?.front()?;
                    Some((self.open.get(&front)?.journey.ts.sk_data_ready, *sk, front))
                })
                .min();
            let Some((_, sk, front)) = oldest else { break };
            let tcp = self
                .open
                .get(&front)
                .is_some_and(|open| open.journey.proto == "tcp");
            let queue = self.sockets.get_mut(&sk).expect("found above");
            if tcp {
                taken.extend(queue.drain(..));
                break;
            }
            taken.extend(queue.pop_front());
        }
        if taken.is_empty()
            && let Some(queue) = self.by_task.get_mut(&event.tid)
        {
            taken.extend(queue.drain(..queue.len().min(datagrams)));
        }
        taken
    }

    fn on_syscall_exit(&mut self, event: &Event, kind: EventKind, out: &mut Vec<Journey>) {
        let mut ids = self.reading.remove(&event.tid).unwrap_or_default();
        if ids.is_empty() && self.config.degraded.no_recv_length {
            ids = self.take_without_recv_length(event, kind);
            let comm = self.comms.get(&event.tid).cloned();
            let bytes = (kind != EventKind::SysExitRecvmmsg).then_some(event.addr as i64);
            self.assign_reader(&ids, event, comm, bytes);
        }
        let syscall = kind.name().trim_start_matches("sys_exit_");
        for id in ids {
            if let Some(open) = self.open.get_mut(&id) {
                let journey = &mut open.journey;
                journey.ts.recv_return = Some(event.ts);
                journey.syscall = Some(syscall);
                journey.cpu_task.get_or_insert(event.cpu);
            }
            self.end(id, None, out);
        }
    }

    fn on_free(&mut self, event: &Event, dropped: bool, out: &mut Vec<Journey>) {
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
                let reason = self
                    .config
                    .drop_reasons
                    .get(&u64::from(event.arg0))
                    .cloned();
                let reason = reason.unwrap_or_else(|| event.arg0.to_string());
                if let Some(open) = self.open.get_mut(&id) {
                    open.journey.drop_reason = Some(reason);
                }
                self.stats.dropped += 1;
                self.end(id, Some("dropped"), out);
            }
            (Phase::Gro | Phase::Stack, false) => {
                self.skbs.remove(&event.addr);
                self.end(
                    id,
                    Some("consumed by the stack without reaching a socket"),
                    out,
                );
            }
        }
    }

    fn count_unsocketed(&mut self, reason: &str) {
        *self.stats.unsocketed.entry(reason.to_owned()).or_default() += 1;
    }

    /// Finishes a journey: computes stages and missing reasons, and emits it unless it never
    /// reached a socket (counted instead, unless `keep_unsocketed`).
    fn end(&mut self, id: u64, incomplete: Option<&'static str>, out: &mut Vec<Journey>) {
        let Some(open) = self.open.remove(&id) else {
            return;
        };
        if self.skbs.get(&open.skb) == Some(&id) && open.phase != Phase::Queued {
            self.skbs.remove(&open.skb);
        }
        if open.phase == Phase::Queued {
            if let Some(queue) = self.sockets.get_mut(&open.sk) {
                queue.retain(|other| *other != id);
            }
            if open.sk == 0 {
                for queue in self.by_task.values_mut() {
                    queue.retain(|other| *other != id);
                }
            }
        }
        let reached_socket = open.journey.ts.sk_data_ready.is_some()
            || open.journey.pid.is_some()
            || (open.phase == Phase::Queued && open.sk == 0);
        let dropped = open.journey.drop_reason.is_some();
        if !reached_socket && !dropped && !self.config.keep_unsocketed {
            self.count_unsocketed(incomplete.unwrap_or("no socket"));
            return;
        }
        let journey = finalize(open, incomplete, self.config.degraded);
        self.stats.journeys_emitted += 1;
        if journey.complete {
            self.stats.complete += 1;
        } else {
            let reason = if journey.lost_events {
                "events lost"
            } else {
                incomplete.unwrap_or("incomplete")
            };
            *self.stats.incomplete.entry(reason.to_owned()).or_default() += 1;
        }
        out.push(journey);
    }
}

fn span(from: Option<u64>, to: Option<u64>) -> Option<u64> {
    to?.checked_sub(from?)
}

/// A wakeup that found the reader still on its CPU: it had announced it would sleep but not
/// yet switched out, so try_to_wake_up just set it running again (no run queue wait).
const STILL_RUNNING: &str =
    "woken while still on its CPU (before it had switched out): no run queue wait, no switch in";

/// Stage durations and missing-stage reasons of a finished journey.
fn finalize(open: Open, incomplete: Option<&'static str>, degraded: Degraded) -> Journey {
    let Open {
        mut journey,
        softirq_unknown,
        raised_without_irq,
        ..
    } = open;
    let ts = journey.ts.clone();
    let mut stages = StageDurations {
        irq: span(ts.irq_entry, ts.irq_exit),
        softirq_wait: span(ts.irq_exit.or(ts.softirq_raise), ts.softirq_entry),
        poll: span(ts.softirq_entry, ts.netif_receive),
        stack: span(ts.netif_receive, ts.sk_data_ready),
        wakeup: span(ts.sk_data_ready, ts.waking),
        runqueue: span(ts.waking, ts.switch_in),
        syscall: span(ts.switch_in, ts.recv_return),
        total: None,
    };
    stages.total = span(ts.first(), ts.recv_return);
    let virtual_dev = &*journey.dev == "lo" || journey.dev.starts_with("veth");
    let mut missing = Vec::new();
    let mut note = |stage: Stage, reason: &'static str| {
        missing.push(Missing {
            stage,
            reason: Cow::Borrowed(reason),
        })
    };
    let lost = journey.lost_events;
    if stages.irq.is_none() {
        let reason = if lost {
            "events lost"
        } else if virtual_dev {
            "loopback and veth have no hard IRQ: the journey starts at the softirq raise"
        } else if softirq_unknown {
            "the softirq began before the trace"
        } else if raised_without_irq {
            "NET_RX was raised without a NIC interrupt (NAPI repoll or process context)"
        } else if ts.irq_entry.is_some() {
            "the interrupt had not returned when NET_RX ran"
        } else {
            "no NIC interrupt raised this softirq"
        };
        note(Stage::Irq, reason);
    }
    if stages.softirq_wait.is_none() {
        note(
            Stage::SoftirqWait,
            if lost {
                "events lost"
            } else if softirq_unknown {
                "the softirq began before the trace"
            } else if ts.softirq_entry.is_none() {
                "processed outside a NET_RX softirq (threaded NAPI or process context)"
            } else {
                "no NET_RX raise seen for this softirq run"
            },
        );
    }
    if stages.poll.is_none() {
        note(
            Stage::Poll,
            if lost {
                "events lost"
            } else {
                "no NET_RX softirq entry for this packet"
            },
        );
    }
    const NO_DATA_READY: &str = "sock:sk_data_ready is not traced: the socket enqueue is unknown";
    if stages.stack.is_none() {
        let reason = if degraded.no_data_ready && journey.drop_reason.is_none() {
            NO_DATA_READY
        } else if journey.drop_reason.is_some() {
            "dropped before the socket"
        } else if lost {
            "events lost"
        } else {
            "not enqueued on a socket"
        };
        note(Stage::Stack, reason);
    }
    let reader_path =
        (ts.sk_data_ready.is_some() || journey.pid.is_some()) && journey.drop_reason.is_none();
    if reader_path && stages.wakeup.is_none() {
        let reason = if degraded.no_data_ready {
            NO_DATA_READY
        } else if lost {
            "events lost"
        } else {
            "no wakeup: the reader was not blocked (already running, woken by an earlier packet, or polling)"
        };
        note(Stage::Wakeup, reason);
    }
    if reader_path && ts.waking.is_some() && stages.runqueue.is_none() {
        note(
            Stage::Runqueue,
            if lost {
                "events lost"
            } else if ts.recv_return.is_some() {
                STILL_RUNNING
            } else {
                "the reader was not switched in before the trace ended"
            },
        );
    }
    if reader_path && stages.syscall.is_none() {
        let reason = if ts.recv_return.is_none() {
            incomplete.unwrap_or("recv did not return")
        } else if ts.waking.is_none() {
            "no switch in: the reader was not blocked"
        } else {
            STILL_RUNNING
        };
        note(Stage::Syscall, reason);
    }
    if stages.total.is_none() {
        note(Stage::Total, incomplete.unwrap_or("recv did not return"));
    }
    journey.complete = incomplete.is_none() && ts.recv_return.is_some() && !journey.lost_events;
    journey.stages_ns = stages;
    journey.missing = missing;
    journey
}
