//! Raw records -> decode -> reorder window -> engine -> cgroup paths: the one path from events
//! to journeys, for live tracing and for recordings alike.

use tracer_common::Event;

use std::collections::HashMap;

use super::{
    Degraded, Engine, EngineConfig, IrqDevice, Journey, Reorder, reorder::DEFAULT_WINDOW_NS,
};
use crate::{
    host::cgroup::{CgroupPaths, CgroupSource},
    recording::Metadata,
    source::decode,
};

/// Follows journeys through a stream of raw event records.
#[derive(Debug)]
pub struct Tracker {
    reorder: Reorder,
    engine: Engine,
    undecodable: u64,
    /// Late events counted by a reorder window outside this tracker ([`Self::push_ordered`]).
    late_elsewhere: u64,
    cgroups: CgroupPaths,
}

impl Tracker {
    /// A tracker with the default reorder window.
    pub fn new(config: EngineConfig) -> Self {
        let cgroups = CgroupPaths::new(config.cgroups.clone());
        Self {
            reorder: Reorder::new(DEFAULT_WINDOW_NS),
            engine: Engine::new(config),
            undecodable: 0,
            late_elsewhere: 0,
            cgroups,
        }
    }

    /// Names the reader's cgroup of the journeys the engine added to `out` after `from`.
    fn name_cgroups(&mut self, out: &mut [Journey], from: usize) {
        for journey in out.iter_mut().skip(from) {
            if let Some(id) = journey.cgroup {
                journey.cgroup_path = self.cgroups.path(id, journey.pid);
            }
        }
    }

    /// Takes one raw record (as the eBPF side wrote it); returns the event it decoded to.
    pub fn push_record(&mut self, bytes: &[u8]) -> Option<Event> {
        match decode::decode(bytes) {
            Ok((event, _)) => {
                self.reorder.push(event);
                Some(event)
            }
            Err(_) => {
                self.undecodable += 1;
                None
            }
        }
    }

    /// Takes one decoded event.
    pub fn push_event(&mut self, event: Event) {
        self.reorder.push(event);
    }

    /// Runs the events that left the reorder window through the engine. `now` (CLOCK_MONOTONIC
    /// ns), when given, also releases what is older than now minus the window, so a quiet
    /// trace still makes progress.
    pub fn advance(&mut self, now: Option<u64>, out: &mut Vec<Journey>) {
        let from = out.len();
        let engine = &mut self.engine;
        self.reorder.release(|event| engine.push(event, out));
        if let Some(now) = now {
            let horizon = now.saturating_sub(DEFAULT_WINDOW_NS);
            self.reorder
                .release_until(horizon, |event| engine.push(event, out));
        }
        self.name_cgroups(out, from);
    }

    /// Runs events already in time order through the engine, skipping this tracker's window:
    /// a reorder window elsewhere (another thread's) released them. `feed` hands them over
    /// one by one; the journeys that ended go to `out`.
    pub fn push_ordered<T>(
        &mut self,
        out: &mut Vec<Journey>,
        feed: impl FnOnce(&mut dyn FnMut(&Event)) -> T,
    ) -> T {
        let from = out.len();
        let engine = &mut self.engine;
        let fed = feed(&mut |event| engine.push(event, out));
        self.name_cgroups(out, from);
        fed
    }

    /// Counts events that arrived late at a reorder window elsewhere (see
    /// [`Self::push_ordered`]).
    pub fn add_late(&mut self, late: u64) {
        self.late_elsewhere += late;
    }

    /// Ends the stream: every held event, then every open journey.
    pub fn finish(&mut self, out: &mut Vec<Journey>) {
        let from = out.len();
        let engine = &mut self.engine;
        self.reorder.drain(|event| engine.push(event, out));
        self.engine.finish(out);
        self.name_cgroups(out, from);
    }

    /// The engine (for its counters).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Events that arrived later than the reorder window.
    pub fn late_events(&self) -> u64 {
        self.reorder.late() + self.late_elsewhere
    }

    /// Records that did not decode.
    pub fn undecodable(&self) -> u64 {
        self.undecodable
    }
}

impl EngineConfig {
    /// The engine's view of the host a recording was made on.
    pub fn from_recording(meta: &Metadata, keep_unsocketed: bool) -> Self {
        Self {
            irq_devices: irq_devices(meta),
            drop_reasons: meta.drop_reasons.clone(),
            comms: meta
                .comms
                .iter()
                .map(|(tid, comm)| (*tid, comm.clone()))
                .collect(),
            keep_unsocketed,
            degraded: Degraded::from_missing(meta.skipped_kinds()),
            max_open: 0,
            readers: super::ReaderFilter::default(),
            cgroups: CgroupSource::Recorded(meta.cgroups.clone()),
        }
    }
}

/// A recording's network IRQs as the engine wants them.
pub fn irq_devices(meta: &Metadata) -> HashMap<u32, IrqDevice> {
    meta.irqs
        .iter()
        .map(|irq| {
            (
                irq.irq,
                IrqDevice {
                    dev: irq.dev.clone(),
                    name: irq.name.clone(),
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tracer_common::{Event, EventKind, NET_RX_SOFTIRQ};

    use super::*;

    const READER: u32 = 500;

    /// One loopback datagram to `READER`, whose read returns at `us + 40` with the reader
    /// fields `netns` and `cgroup` (0: unknown) on the syscall exit.
    fn datagram(us: u64, skb: u64, netns: u32, cgroup: u64) -> Vec<Event> {
        let at = |delta: u64, cpu: u16, tid: u32, kind: EventKind, fill: &dyn Fn(&mut Event)| {
            let mut event = Event {
                ts: (us + delta) * 1000,
                cpu,
                tgid: tid,
                tid,
                kind: kind as u8,
                ..Event::ZERO
            };
            fill(&mut event);
            event
        };
        let sk = 0x5000;
        vec![
            at(0, 0, 9, EventKind::SoftirqRaise, &|e| {
                e.arg0 = NET_RX_SOFTIRQ
            }),
            at(1, 0, 9, EventKind::SoftirqEntry, &|e| {
                e.arg0 = NET_RX_SOFTIRQ
            }),
            at(2, 0, 9, EventKind::NetifReceiveSkb, &|e| {
                e.addr = skb;
                e.arg0 = 30;
                e.name[..2].copy_from_slice(b"lo");
            }),
            at(3, 0, 9, EventKind::SkDataReady, &|e| {
                e.addr = sk;
                e.arg0 = 2;
                e.arg1 = 17;
            }),
            at(4, 0, 9, EventKind::SchedWaking, &|e| e.arg0 = READER),
            at(5, 0, 9, EventKind::SoftirqExit, &|e| {
                e.arg0 = NET_RX_SOFTIRQ
            }),
            at(10, 1, 0, EventKind::SchedSwitch, &|e| e.arg1 = READER),
            at(30, 1, READER, EventKind::SockRecvLength, &|e| {
                e.addr = sk;
                e.arg0 = 2;
                e.arg2 = 2 << 16 | 17;
            }),
            at(40, 1, READER, EventKind::SysExitRecvfrom, &|e| {
                e.addr = 2;
                e.addr2 = cgroup;
                e.arg0 = netns;
            }),
        ]
    }

    #[test]
    fn journeys_carry_the_reader_namespace_cgroup_and_recorded_path() {
        let config = EngineConfig {
            cgroups: CgroupSource::Recorded(BTreeMap::from([(
                77,
                "/machine.slice/c1.scope".to_owned(),
            )])),
            ..EngineConfig::default()
        };
        let mut tracker = Tracker::new(config);
        let mut events = datagram(100, 0x1000, 4_026_532_000, 77);
        events.extend(datagram(200, 0x2000, 0, 0)); // an old recording: unknown
        events.extend(datagram(300, 0x3000, 4_026_532_000, 78)); // not in the table
        for event in events {
            tracker.push_event(event);
        }
        let mut journeys = Vec::new();
        tracker.finish(&mut journeys);
        let reader: Vec<_> = journeys
            .iter()
            .map(|j| (j.complete, j.netns, j.cgroup, j.cgroup_path.as_deref()))
            .collect();
        assert_eq!(
            reader,
            [
                (
                    true,
                    Some(4_026_532_000),
                    Some(77),
                    Some("/machine.slice/c1.scope")
                ),
                (true, None, None, None),
                (true, Some(4_026_532_000), Some(78), None),
            ]
        );
    }
}
