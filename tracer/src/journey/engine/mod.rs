//! The journey engine: time-ordered events in, journeys out. Pure: no kernel, no files.
//!
//! How a packet is followed (docs/DESIGN.md, "Honesty rules of the data"; docs/tcp.md):
//! - [`cpu`]: per CPU, the hard IRQ in progress, the first NET_RX raise since the last
//!   NET_RX entry (and the NIC IRQ it was raised in) and the NET_RX softirq in progress;
//! - [`packets`]: a packet is its skb address from napi_gro_receive_entry/netif_receive_skb
//!   until it is enqueued on a socket, freed, or the address shows up again; a TCP segment
//!   without payload is a control segment and ends there;
//! - [`sockets`]: a packet reaches its socket at tcp_probe (TCP, any context) or at the
//!   sk_data_ready that follows its receive on the same CPU; a socket is a byte stream (TCP)
//!   or a queue of datagrams (UDP), and its destruction ends what it still holds;
//! - [`readers`]: the first sched_waking after sk_data_ready is the wakeup (kept only if the
//!   woken thread is the reader); a UDP read takes the oldest datagram, a TCP read takes the
//!   bytes up to the socket's copied_seq (or as many bytes as it returned), and the packet
//!   whose last byte it returned ends at the reader's syscall exit;
//! - [`finalize`]: stage durations and the reasons of what is missing.

mod cpu;
mod finalize;
mod open_table;
mod packets;
mod readers;
mod sockets;
mod stats;
mod sweep;

use std::{
    borrow::Cow,
    collections::{VecDeque, hash_map::Entry},
};

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use tracer_common::{Event, EventKind, FLAG_ADDRS, FLAG_LOST_BEFORE, NAME_LEN};

pub use stats::{
    DEFAULT_MAX_OPEN, Degraded, Ending, EndingCounts, EngineConfig, EngineStats, IrqDevice,
    ReaderFilter,
};

use super::model::{Addr, Journey, Shared};
use cpu::CpuState;
use open_table::OpenTable;
use sockets::SocketQueue;

/// Task names remembered at most before the table is cleared.
const MAX_COMMS: usize = 65_536;
/// Emptied journey boxes kept for reuse at most (more are open only under a burst).
const MAX_SPARE: usize = 4096;
/// Events between two sweeps of the link tables.
const SWEEP_EVERY: u64 = 1 << 16;

/// Journey ids of one link (a thread's wakeup, its read): nearly always one or two, held
/// inline so that following a packet allocates nothing for them.
type Ids = SmallVec<[u64; 2]>;

/// Where a followed packet is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Seen by GRO, not yet by netif_receive_skb.
    Gro,
    /// netif_receive_skb seen, not yet enqueued on a socket.
    Stack,
    /// On a socket's receive queue (a TCP segment may be partly read already).
    Queued,
    /// Its last byte was taken by a read; waiting for the syscall to return.
    Read,
}

#[derive(Clone, Debug)]
struct Open {
    /// Boxed: a journey is hundreds of bytes, and the table moves its values in and out
    /// (inserted, removed, finished); a box is moved as a pointer, and the journey itself
    /// once, into the output.
    journey: Box<Journey>,
    phase: Phase,
    skb: u64,
    sk: u64,
    gro_ts: Option<u64>,
    gro_cpu: Option<u16>,
    /// The softirq context could not be known (started before the trace, lost events).
    softirq_unknown: bool,
    /// NET_RX was raised outside any NIC interrupt.
    raised_without_irq: bool,
    /// TCP sequence number of the first payload byte (from the packet's header).
    seq: Option<u32>,
    /// Source and destination ports (from the packet's header), TCP and UDP.
    ports: Option<(u16, u16)>,
    /// Payload bytes already returned by reads (TCP).
    taken: u32,
    /// tcp_probe saw it enter an established socket.
    probed: bool,
    /// Its wakeup woke another thread than its reader.
    woke_other: bool,
    /// An IP fragment (the one that completed its datagram, if it reaches a socket): its
    /// own length says nothing of the datagram's payload, which its read gives.
    fragment: bool,
}

/// Rebuilds journeys from a time-ordered event stream.
#[derive(Debug, Default)]
pub struct Engine {
    config: EngineConfig,
    cpus: Vec<CpuState>,
    open: OpenTable,
    skbs: FxHashMap<u64, u64>,
    sockets: FxHashMap<u64, SocketQueue>,
    /// TCP segments that reached their socket (tcp_probe) and wait for its sk_data_ready.
    awaiting_ready: FxHashMap<u64, Vec<u64>>,
    /// TCP data segments received but not yet linked to a socket: the candidates when the
    /// kernel coalesced one into another in the socket backlog (then only the surviving skb
    /// passes tcp_probe, carrying both payloads).
    unlinked_tcp: Vec<u64>,
    /// Segments the kernel merged into another skb in the socket backlog (its tcp_probe
    /// carried their bytes), by that skb's address, with its journey: they share its fate, so
    /// its drop (kfree_skb) drops them. Forgotten when their bytes reach the socket
    /// (sk_data_ready), when the skb is freed, or when its address is received again.
    backlog_merged: FxHashMap<u64, (u64, Ids)>,
    woken: FxHashMap<u32, Ids>,
    /// Packets whose last byte the current syscall of a thread returned.
    reading: FxHashMap<u32, Ids>,
    /// Packets the current syscall of a thread returned only part of.
    touched: FxHashMap<u32, Ids>,
    comms: FxHashMap<u32, Shared>,
    /// The thread and name `learn_comm` saw last, while `comms` holds that name for it:
    /// a thread's events come in runs, and then one compare stands for the lookup.
    last_comm: Option<(u32, [u8; NAME_LEN])>,
    /// Device names seen in events, interned: a journey's `dev` is then a shared count.
    devs: FxHashMap<[u8; NAME_LEN], Shared>,
    /// The device named last: packets come in runs from one device (no hash, no memcmp).
    last_dev: Option<([u8; NAME_LEN], Shared)>,
    /// Drop reasons' names by code, shared.
    drop_names: FxHashMap<u32, Shared>,
    /// `config.irq_devices` names, shared.
    irq_names: FxHashMap<u32, Shared>,
    /// Fallbacks: the reader each socket woke last, the sockets of each reader, and packets
    /// linked to a reader by its wakeup alone (no sk_data_ready).
    owners: FxHashMap<u64, u32>,
    task_sockets: FxHashMap<u32, Vec<u64>>,
    by_task: FxHashMap<u32, VecDeque<u64>>,
    next_id: u64,
    stats: EngineStats,
    /// Boxes of journeys already emitted, emptied (default): the next packets' journeys go
    /// in them, so following a packet allocates no journey.
    #[expect(
        clippy::vec_box,
        reason = "the boxes themselves are kept, to be handed to `Open` again without allocating"
    )]
    spare: Vec<Box<Journey>>,
}

impl Open {
    /// A journey in `phase` for the packet at `skb`, nothing else known yet.
    fn new(journey: Box<Journey>, phase: Phase, skb: u64) -> Self {
        Self {
            journey,
            phase,
            skb,
            sk: 0,
            gro_ts: None,
            gro_cpu: None,
            softirq_unknown: false,
            raised_without_irq: false,
            seq: None,
            ports: None,
            taken: 0,
            probed: false,
            woke_other: false,
            fragment: false,
        }
    }
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
    ///
    /// The larger handlers (a packet's socket, its reader, frees) are kept out of line
    /// (`#[inline(never)]`): inlined, they made this function's frame, which every event
    /// pays for, the interrupt and syscall-entry events that do almost nothing included,
    /// larger. The small per-CPU ones stay inline (out of line too, they cost more).
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
            K::IrqHandlerEntry => self.on_irq_entry(event),
            K::IrqHandlerExit => self.on_irq_exit(event),
            K::SoftirqRaise => self.on_softirq_raise(event),
            K::SoftirqEntry => self.on_softirq_entry(event),
            K::SoftirqExit => self.on_softirq_exit(event),
            K::NapiPoll => self.on_napi_poll(event),
            K::NapiGroReceiveEntry => self.on_gro_entry(event, out),
            K::NetifRx => {}
            K::NetifReceiveSkb if event.flags & FLAG_ADDRS != 0 => self.on_addrs(event),
            K::NetifReceiveSkb => self.on_receive(event, out),
            K::TcpProbe => self.on_tcp_probe(event, out),
            K::SkDataReady => self.on_data_ready(event, out),
            K::TcpDestroySock => self.on_destroy(event, out),
            K::TcpRcvSpaceAdjust => self.on_read_without_recv_length(event, out),
            K::SchedWaking => self.on_waking(event),
            K::SchedWakeup => self.on_wakeup(event),
            K::SchedSwitch => self.on_switch(event),
            K::SkbCopyDatagramIovec => {}
            K::KfreeSkb => self.on_free(event, true, out),
            K::ConsumeSkb => self.on_free(event, false, out),
            K::SockRecvLength => self.on_recv_length(event, out),
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
        for id in self.open.ids() {
            let Some(open) = self.open.get(&id) else {
                continue;
            };
            let reason = match open.phase {
                Phase::Queued if open.taken > 0 => Ending::PartlyRead,
                Phase::Queued => Ending::NeverRead,
                Phase::Read => Ending::RecvPending,
                Phase::Gro | Phase::Stack => Ending::BeforeSocket,
            };
            self.end(id, Some(reason), out);
        }
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
        let ids = self.open.ids();
        let excess = self.open.len() - max + max / 16; // make room for a while
        for id in ids.into_iter().take(excess) {
            self.stats.evicted += 1;
            self.end(id, Some(Ending::Evicted), out);
        }
    }

    fn cpu(&mut self, cpu: u16) -> &mut CpuState {
        &mut self.cpus[cpu as usize]
    }

    /// Remembers the comm an event carries for `tid`, allocating only when it changed.
    #[inline]
    fn learn_comm(&mut self, tid: u32, event: &Event) {
        if self.last_comm != Some((tid, event.name)) {
            self.learn_new_comm(tid, event);
        }
    }

    /// `learn_comm` when the thread or its name is not the one seen last.
    #[inline(never)]
    fn learn_new_comm(&mut self, tid: u32, event: &Event) {
        self.last_comm = Some((tid, event.name));
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
        if let Some((name, dev)) = &self.last_dev
            && *name == event.name
        {
            return dev.clone();
        }
        if let Some(dev) = self.devs.get(&event.name) {
            self.last_dev = Some((event.name, dev.clone()));
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
    #[inline(never)]
    fn on_loss(&mut self, cpu: u16) {
        *self.stats.loss_marks.entry(cpu).or_default() += 1;
        for open in self.open.values_mut() {
            open.journey.lost_events = true;
        }
        self.cpus[cpu as usize] = CpuState::default();
    }

    /// Opens a journey for the packet of `event`, stamped with its CPU's NET_RX context
    /// (and, seen by GRO, its GRO time and CPU) before it goes in the table: one insert,
    /// no lookup.
    fn new_journey(&mut self, event: &Event, phase: Phase, out: &mut Vec<Journey>) -> u64 {
        self.evict(out);
        let id = self.next_id;
        self.next_id += 1;
        let mut journey = self.spare.pop().unwrap_or_default();
        journey.id = id;
        journey.dev = self.dev(event);
        journey.len = event.arg0;
        journey.skbaddr = Addr(event.addr);
        journey.proto = Cow::Borrowed("other");
        let gro = phase == Phase::Gro;
        let mut open = Open {
            gro_ts: gro.then_some(event.ts),
            gro_cpu: gro.then_some(event.cpu),
            ..Open::new(journey, phase, event.addr)
        };
        let cpu = event.cpu;
        cpu::stamp_softirq(&mut open, &self.cpus[cpu as usize], &self.irq_names, cpu);
        self.open.insert(id, open);
        id
    }

    /// Appends the journey to `out`, its box emptied and kept for a next packet. Taken
    /// straight into `out` (not through a local): a journey is most of a kilobyte and each
    /// move of it is a copy.
    fn emit(&mut self, mut journey: Box<Journey>, out: &mut Vec<Journey>) {
        out.reserve(1);
        let len = out.len();
        let from: *mut Journey = &mut *journey;
        // SAFETY: `reserve` made room for one more journey at `len`; the journey is copied
        // there bitwise (one copy, where `push(mem::take(..))` made three) and `from` is
        // overwritten at once with a default without dropping the moved value, so every
        // journey (the one now in `out`, the default in the box) is owned exactly once.
        // Nothing in between can unwind: `Journey::default()` panics on nothing (an
        // allocation failure aborts), so no unwind sees the journey owned twice.
        unsafe {
            std::ptr::copy_nonoverlapping(from, out.as_mut_ptr().add(len), 1);
            out.set_len(len + 1);
            from.write(Journey::default());
        }
        if self.spare.len() < MAX_SPARE {
            self.spare.push(journey);
        }
    }

    /// Forgets a journey without emitting it: another reader's packet under a reader filter.
    fn discard(&mut self, id: u64) {
        if let Some(open) = self.open.remove(&id) {
            if self.skbs.get(&open.skb) == Some(&id) {
                self.skbs.remove(&open.skb);
            }
            if let Some(queue) = self.sockets.get_mut(&open.sk) {
                queue.ids.retain(|other| *other != id);
            }
            self.stats.not_selected += 1;
        }
    }

    fn count_unsocketed(&mut self, reason: Ending) {
        self.stats.unsocketed.add(reason);
    }

    /// Finishes a journey: computes stages and missing reasons, and emits it unless it never
    /// reached a socket (counted instead, unless `keep_unsocketed`) or, under a reader
    /// filter, it was not read by a selected reader nor queued on a selected one's socket.
    fn end(&mut self, id: u64, incomplete: Option<Ending>, out: &mut Vec<Journey>) {
        // The lookup for the reader filter only under one: a journey is looked up once here.
        if self.config.readers.is_active()
            && let Some(open) = self.open.get(&id)
            && open.journey.pid.is_none()
            && !open.journey.control
            && !self
                .sockets
                .get(&open.sk)
                .is_some_and(|queue| queue.owner == sockets::Owner::Selected)
        {
            self.discard(id);
            return;
        }
        let Some(mut open) = self.open.remove(&id) else {
            return;
        };
        // One hash of the address: the entry is removed only if it is still this journey's.
        if let Entry::Occupied(entry) = self.skbs.entry(open.skb)
            && *entry.get() == id
        {
            entry.remove();
        }
        // Empty but between a TCP segment's tcp_probe and its sk_data_ready: no hash then.
        if !self.awaiting_ready.is_empty()
            && let Some(ids) = self.awaiting_ready.get_mut(&open.sk)
        {
            ids.retain(|other| *other != id);
        }
        if open.phase == Phase::Queued {
            if let Some(queue) = self.sockets.get_mut(&open.sk) {
                queue.ids.retain(|other| *other != id);
            }
            if open.sk == 0 {
                for queue in self.by_task.values_mut() {
                    queue.retain(|other| *other != id);
                }
            }
        }
        if open.journey.control {
            let flags = open
                .journey
                .tcp_flags
                .map_or_else(|| "no payload".to_owned(), |flags| flags.to_string());
            *self.stats.control.entry(flags).or_default() += 1;
            if self.config.keep_unsocketed {
                finalize::finalize(&mut open, incomplete, self.config.degraded);
                self.emit(open.journey, out);
            }
            return;
        }
        let reached_socket = open.journey.ts.sk_data_ready.is_some()
            || open.journey.pid.is_some()
            || open.phase == Phase::Queued;
        let dropped = open.journey.drop_reason.is_some();
        // A drop is of data when the packet is known to carry some. Without headers (no
        // BTF) one that never reached a socket and was purged with its socket's queues is
        // most likely the connection's last bare ACK: not counted as data.
        let purged_unknown = !reached_socket
            && open.journey.payload.is_none()
            && open.journey.drop_reason.as_deref() == Some("QUEUE_PURGE");
        let data_drop = dropped
            && !purged_unknown
            && open
                .journey
                .payload
                .is_none_or(|payload| payload > 0 || reached_socket);
        if dropped && !data_drop {
            self.stats.dropped_unknown += 1;
            if self.config.keep_unsocketed {
                finalize::finalize(&mut open, incomplete, self.config.degraded);
                self.emit(open.journey, out);
            }
            return;
        }
        if !reached_socket && !dropped && !self.config.keep_unsocketed {
            self.count_unsocketed(incomplete.unwrap_or(Ending::NoSocket));
            return;
        }
        finalize::finalize(&mut open, incomplete, self.config.degraded);
        self.stats.journeys_emitted += 1;
        if data_drop {
            self.stats.dropped += 1;
        }
        if open.journey.complete {
            self.stats.complete += 1;
        } else {
            let reason = if open.journey.lost_events {
                Ending::EventsLost
            } else {
                incomplete.unwrap_or(Ending::RecvPending)
            };
            self.stats.incomplete.add(reason);
        }
        self.emit(open.journey, out);
    }
}
