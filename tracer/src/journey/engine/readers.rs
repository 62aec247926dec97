//! Readers: the wakeup a packet causes, the reader's switch onto a CPU, the read that takes
//! the packet (sock_recv_length) and the syscall exit that returns it; the reader filter.

use std::{borrow::Cow, collections::hash_map::Entry};

use tracer_common::{COPIED_SEQ_VALID, Event, EventKind, FLAG_OUTSIDE_SYSCALL};

use super::{Ending, Engine, Ids, Phase, packets::IPPROTO_TCP, sockets::Owner};
use crate::journey::{
    Journey,
    model::{Addr, Shared},
};

/// MSG_PEEK: a read that leaves the data queued.
const MSG_PEEK: u32 = 2;
const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;

impl Engine {
    #[inline(never)]
    pub(super) fn on_waking(&mut self, event: &Event) {
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
                open.journey.woken_tid = Some(woken);
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
            open.journey.woken_tid = Some(woken);
            self.woken.entry(woken).or_default().push(id);
            self.by_task.entry(woken).or_default().push_back(id);
        }
    }

    pub(super) fn on_wakeup(&mut self, event: &Event) {
        if let Some(ids) = self.woken.get(&event.arg0) {
            for id in ids {
                if let Some(open) = self.open.get_mut(id) {
                    open.journey.ts.wakeup.get_or_insert(event.ts);
                }
            }
        }
    }

    #[inline(never)]
    pub(super) fn on_switch(&mut self, event: &Event) {
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

    /// `sock:sock_recv_length`: a read of a socket returned `ret` bytes. Inside a traced
    /// syscall its packets wait for the exit; outside one (`FLAG_OUTSIDE_SYSCALL`: io_uring)
    /// they return here.
    #[inline(never)]
    pub(super) fn on_recv_length(&mut self, event: &Event, out: &mut Vec<Journey>) {
        let ret = event.arg0 as i32;
        if ret <= 0 || event.arg1 & MSG_PEEK != 0 {
            return;
        }
        let outside = event.flags & FLAG_OUTSIDE_SYSCALL != 0;
        // The read carries its task's name; remembered (allocating only when it changed).
        if event.name[0] != 0 {
            self.learn_comm(event.tid, event);
        }
        let sk = event.addr;
        let tcp_read = event.arg2 & 0xffff == IPPROTO_TCP;
        let (comm, selected, owner) = self.reader_of(event);
        // A datagram socket's queue is looked up once: its oldest datagram taken and its
        // owner set in one go (a read of each datagram, under a flood).
        let tcp_queue = match self.sockets.get_mut(&sk) {
            Some(queue) if !queue.tcp => {
                let Some(front) = queue.ids.pop_front() else {
                    self.count_read_without_packet(event, selected);
                    return;
                };
                queue.owner = owner;
                return self.read_datagram(front, event, comm, selected, ret, out);
            }
            queue => queue.map(|queue| queue.tcp),
        };
        let (taken, partial) = match tcp_queue {
            Some(_) => {
                let copied = (event.addr2 & COPIED_SEQ_VALID != 0).then_some(event.addr2 as u32);
                let taken = self.take_tcp(sk, ret as u32, copied);
                for id in taken.duplicate {
                    self.end(id, Some(Ending::Duplicate), out);
                }
                (taken.done, taken.partial)
            }
            None => (self.take_by_wakeup(event, tcp_read), Ids::new()),
        };
        if taken.is_empty() && partial.is_empty() {
            // Outside a syscall, tcp_rcv_space_adjust (before it) took a TCP read's bytes.
            if !(outside && tcp_read) {
                self.count_read_without_packet(event, selected);
            }
            return;
        }
        if let Some(queue) = self.sockets.get_mut(&sk) {
            queue.owner = owner;
        }
        if !selected {
            for id in taken {
                self.discard(id);
            }
            return;
        }
        self.assign_reader(&taken, event, comm, Some(i64::from(ret)));
        if outside {
            self.first_read_now(&partial, event);
            self.returned_now(taken, event, out);
            return;
        }
        // An empty list is as good as none (taken back with `unwrap_or_default`, swept):
        // a datagram read touches no partial packet, and then no table.
        if !taken.is_empty() {
            self.reading_add(event.tid, taken);
        }
        if !partial.is_empty() {
            self.touched.entry(event.tid).or_default().extend(partial);
        }
    }

    /// `tcp:tcp_rcv_space_adjust` outside the recv-family syscalls (the kernel program
    /// skips it inside them, where sock_recv_length reports the read): TCP bytes consumed
    /// without sock_recv_length, by splice(), sendfile() from a socket or a zero-copy
    /// receive, io_uring's recv. With the socket's read point (BTF) it takes every byte
    /// before it, and the journeys it completes end here: `recv_return` is this moment,
    /// `syscall` and `bytes` are unknown (null). Without BTF there is no read point:
    /// nothing is credited.
    #[inline(never)]
    pub(super) fn on_read_without_recv_length(&mut self, event: &Event, out: &mut Vec<Journey>) {
        // In a NET_RX run the consumer is the kernel (kTLS's or a sockmap's parser reading
        // records), not the task it interrupted: the bytes are credited to the read that
        // returns them (its copied_seq is past them).
        if event.addr2 & COPIED_SEQ_VALID == 0 || self.cpu(event.cpu).softirq.is_some() {
            return;
        }
        let sk = event.addr;
        if !self.sockets.get(&sk).is_some_and(|queue| queue.tcp) {
            return;
        }
        if event.name[0] != 0 {
            self.learn_comm(event.tid, event);
        }
        let taken = self.take_tcp(sk, 0, Some(event.addr2 as u32));
        for id in taken.duplicate {
            self.end(id, Some(Ending::Duplicate), out);
        }
        if taken.done.is_empty() && taken.partial.is_empty() {
            return;
        }
        let (comm, selected, owner) = self.reader_of(event);
        if let Some(queue) = self.sockets.get_mut(&sk) {
            queue.owner = owner;
        }
        if !selected {
            for id in taken.done {
                self.discard(id);
            }
            return;
        }
        self.first_read_now(&taken.partial, event);
        self.assign_reader(&taken.done, event, comm, None);
        self.returned_now(taken.done, event, out);
    }

    /// A read that found no packet of its socket: counted for IP sockets (a netlink or unix
    /// socket's read is no packet's; recordings from before the kernel side skipped them
    /// hold such reads) and for the readers the filter selects (another process's packets
    /// are dropped as they come once its socket is known to be its, so its reads find none).
    fn count_read_without_packet(&mut self, event: &Event, selected: bool) {
        let family = event.arg2 >> 16;
        if selected && (family == AF_INET || family == AF_INET6) {
            self.stats.reads_without_packet += 1;
        }
    }

    /// The reading task of `event`: its name, whether the reader filter selects it, and
    /// what that makes the socket's owner.
    fn reader_of(&self, event: &Event) -> (Option<Shared>, bool, Owner) {
        let comm = self.comms.get(&event.tid).cloned();
        let selected = self
            .config
            .readers
            .selects(event.tgid, comm.as_deref().unwrap_or(""));
        let owner = if selected {
            Owner::Selected
        } else {
            Owner::Other
        };
        (comm, selected, owner)
    }

    /// Packets a read returned outside any traced syscall exit: they return at `event`
    /// (`syscall` stays null) and end.
    fn returned_now(&mut self, ids: Ids, event: &Event, out: &mut Vec<Journey>) {
        for id in ids {
            if let Some(open) = self.open.get_mut(&id) {
                let journey = &mut open.journey;
                journey.ts.recv_return = Some(event.ts);
                journey.first_read.get_or_insert(event.ts);
                journey.cpu_task.get_or_insert(event.cpu);
            }
            self.end(id, None, out);
        }
    }

    /// Packets a read outside any traced syscall exit returned part of: their first byte
    /// went now.
    fn first_read_now(&mut self, ids: &[u64], event: &Event) {
        for id in ids {
            if let Some(open) = self.open.get_mut(id) {
                open.journey.first_read.get_or_insert(event.ts);
            }
        }
    }

    /// The rest of a read that took datagram `id` off its socket's queue.
    fn read_datagram(
        &mut self,
        id: u64,
        event: &Event,
        comm: Option<Shared>,
        selected: bool,
        ret: i32,
        out: &mut Vec<Journey>,
    ) {
        if !selected {
            self.discard(id);
            return;
        }
        let taken = Ids::from_buf_and_len([id, 0], 1);
        self.assign_reader(&taken, event, comm, Some(i64::from(ret)));
        if let Some(open) = self.open.get_mut(&id) {
            open.journey.reads = 1;
            if open.fragment {
                // Reassembled from fragments: the read says what the datagram carried (all
                // of it unless the buffer was short, which nothing here shows).
                open.journey.payload.get_or_insert(ret as u32);
            } else {
                let headers = if event.arg2 >> 16 == AF_INET { 28 } else { 48 };
                open.journey.partial_read = (ret as u32) < open.journey.len.saturating_sub(headers);
            }
        }
        if event.flags & FLAG_OUTSIDE_SYSCALL != 0 {
            self.returned_now(taken, event, out);
        } else {
            self.reading_add(event.tid, taken);
        }
    }

    /// Adds packets to those the current syscall of `tid` returns: moved in whole when it
    /// had none (nearly always), not copied one by one.
    fn reading_add(&mut self, tid: u32, taken: Ids) {
        match self.reading.entry(tid) {
            Entry::Occupied(mut entry) => entry.get_mut().extend(taken),
            Entry::Vacant(entry) => {
                entry.insert(taken);
            }
        }
    }

    /// Linked by wakeup alone (no sk_data_ready): the read says which socket.
    fn take_by_wakeup(&mut self, event: &Event, tcp_read: bool) -> Ids {
        let Some(queue) = self.by_task.get_mut(&event.tid) else {
            return Ids::new();
        };
        let taken: Ids = if tcp_read {
            queue.drain(..).collect()
        } else {
            queue.pop_front().into_iter().collect()
        };
        for id in &taken {
            if let Some(open) = self.open.get_mut(id) {
                open.journey.proto = Cow::Borrowed(if tcp_read { "tcp" } else { "udp" });
                open.journey.skaddr = Some(Addr(event.addr));
            }
        }
        taken
    }

    /// Marks `taken` as read by the current task of `event`. A wakeup that woke another
    /// thread is not this reader's: its stamps are dropped and the stage marked.
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
            if journey.woken_tid.is_some_and(|woken| woken != event.tid) {
                journey.ts.waking = None;
                journey.ts.wakeup = None;
                journey.ts.switch_in = None;
                journey.cpu_task = None;
                open.woke_other = true;
                self.stats.wakeups_of_other_threads += 1;
            }
            journey.pid = Some(event.tgid);
            journey.tid = Some(event.tid);
            journey.comm = comm.clone();
            journey.bytes = bytes;
            journey.read_packets = count;
            if journey.reads == 0 {
                journey.reads = 1;
            }
        }
    }

    /// Without sock_recv_length: a read that returned data takes packets from the sockets
    /// this task was woken for (oldest first), or from the packets linked to it by wakeup.
    fn take_without_recv_length(&mut self, event: &Event, kind: EventKind) -> Ids {
        let ret = event.addr as i64;
        if ret <= 0 {
            return Ids::new();
        }
        let datagrams = if kind == EventKind::SysExitRecvmmsg {
            ret as usize
        } else {
            1
        };
        let mut taken = Ids::new();
        let sockets = self
            .task_sockets
            .get(&event.tid)
            .cloned()
            .unwrap_or_default();
        while taken.len() < datagrams {
            let oldest = sockets
                .iter()
                .filter_map(|sk| {
                    let front = *self.sockets.get(sk)?.ids.front()?;
                    Some((self.open.get(&front)?.journey.ts.sk_data_ready, *sk, front))
                })
                .min();
            let Some((_, sk, _)) = oldest else { break };
            let queue = self.sockets.get_mut(&sk).expect("found above");
            if queue.tcp {
                taken.extend(queue.ids.drain(..));
                break;
            }
            taken.extend(queue.ids.pop_front());
        }
        if taken.is_empty()
            && let Some(queue) = self.by_task.get_mut(&event.tid)
        {
            taken.extend(queue.drain(..queue.len().min(datagrams)));
        }
        taken
    }

    #[inline(never)]
    pub(super) fn on_syscall_exit(
        &mut self,
        event: &Event,
        kind: EventKind,
        out: &mut Vec<Journey>,
    ) {
        let mut ids = self.reading.remove(&event.tid).unwrap_or_default();
        if ids.is_empty() && self.config.degraded.no_recv_length {
            ids = self.take_without_recv_length(event, kind);
            let comm = self.comms.get(&event.tid).cloned();
            let bytes = (kind != EventKind::SysExitRecvmmsg).then_some(event.addr as i64);
            self.assign_reader(&ids, event, comm, bytes);
        }
        // Empty but while a TCP read returned part of a packet: then no hash at all.
        if !self.touched.is_empty()
            && let Some(partial) = self.touched.remove(&event.tid)
        {
            for id in partial {
                if let Some(open) = self.open.get_mut(&id) {
                    open.journey.first_read.get_or_insert(event.ts);
                }
            }
        }
        // strip_prefix, not trim_start_matches: a string pattern's searcher cost 2.5% of a report.
        let syscall = kind.name().strip_prefix("sys_exit_").unwrap_or(kind.name());
        let (netns, cgroup) = crate::source::decode::reader(event);
        for id in ids {
            if let Some(open) = self.open.get_mut(&id) {
                let journey = &mut open.journey;
                journey.netns = netns;
                journey.cgroup = cgroup;
                journey.ts.recv_return = Some(event.ts);
                journey.first_read.get_or_insert(event.ts);
                journey.syscall = Some(syscall);
                journey.cpu_task.get_or_insert(event.cpu);
            }
            self.end(id, None, out);
        }
    }
}
