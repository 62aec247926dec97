//! Aggregates for `tracer report`: breakdowns, log2 histograms, waterfalls of the slowest
//! journeys, NAPI arithmetic and the context switches of the readers. Pure: journeys and
//! events in, text out.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    hash::BuildHasher,
};

use rustc_hash::FxHashMap;
use tracer_common::{Event, EventKind, NAME_LEN};

use super::{
    escape,
    summary::{Histogram, human_ns},
};
use crate::journey::{Journey, Stage};

/// Counts over the raw events that journeys alone do not show.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventCounts {
    /// napi_poll calls that did work, per device, with the packets they processed.
    pub polls: BTreeMap<String, (u64, u64)>,
    /// Hard IRQs of network devices, per device.
    pub nic_irqs: BTreeMap<String, u64>,
    /// netif_receive_skb per device.
    pub packets: BTreeMap<String, u64>,
    /// Context switches of reader threads: tid -> (voluntary, involuntary).
    pub switches: BTreeMap<u32, (u64, u64)>,
}

impl EventCounts {
    /// Counts `events`; `irq_devices` maps network IRQs to devices, `readers` are the tids
    /// whose switches are counted.
    pub fn count<S: BuildHasher>(
        events: &[Event],
        irq_devices: &HashMap<u32, String>,
        readers: &HashSet<u32, S>,
    ) -> Self {
        let mut tally = EventTally::default();
        for event in events {
            tally.add(event);
        }
        tally.counts(irq_devices, readers)
    }
}

/// [`EventCounts`] kept as events stream past: device names as their raw bytes, IRQs by
/// number, every thread's switches (which threads are readers is known only when every
/// journey is); named, mapped and narrowed by [`Self::counts`].
#[derive(Clone, Debug, Default)]
pub struct EventTally {
    polls: Recent<[u8; NAME_LEN], (u64, u64)>,
    irqs: Recent<u32, u64>,
    packets: Recent<[u8; NAME_LEN], u64>,
    switches: Recent<u32, (u64, u64)>,
}

/// Keys whose counts a [`Recent`] keeps outside its map.
const RECENT: usize = 4;

/// Counts by key, those of the last few keys used in a short list before the map: a flood
/// has few keys (a device or two, a few threads), so most counts skip the hash. A key may
/// be in both (its counts are their sum).
#[derive(Clone, Debug, Default)]
struct Recent<K, V> {
    recent: Vec<(K, V)>,
    /// The slot of `recent` that a new key takes next.
    evict: usize,
    map: FxHashMap<K, V>,
}

/// A count that adds up.
trait Count: Copy + Default {
    fn add(&mut self, other: Self);
}

impl Count for u64 {
    fn add(&mut self, other: Self) {
        *self += other;
    }
}

impl Count for (u64, u64) {
    fn add(&mut self, other: Self) {
        self.0 += other.0;
        self.1 += other.1;
    }
}

impl<K: Copy + Eq + std::hash::Hash, V: Count> Recent<K, V> {
    /// The counts of `key` among the recent keys, which it joins if new (the one it
    /// replaces goes to the map).
    fn get(&mut self, key: K) -> &mut V {
        let at = match self.recent.iter().position(|(recent, _)| *recent == key) {
            Some(at) => at,
            None if self.recent.len() < RECENT => {
                self.recent.push((key, V::default()));
                self.recent.len() - 1
            }
            None => {
                let at = self.evict;
                self.evict = (at + 1) % RECENT;
                let (old, counts) = std::mem::replace(&mut self.recent[at], (key, V::default()));
                self.map.entry(old).or_default().add(counts);
                at
            }
        };
        &mut self.recent[at].1
    }

    /// Every key with its counts (a key may come twice: add them up).
    fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        let recent = self.recent.iter().map(|(key, counts)| (key, counts));
        self.map.iter().chain(recent)
    }
}

/// The kinds [`EventTally`] counts, as a bit set of their values.
const TALLIED: u64 = 1 << EventKind::NapiPoll as u8
    | 1 << EventKind::IrqHandlerEntry as u8
    | 1 << EventKind::NetifReceiveSkb as u8
    | 1 << EventKind::SchedSwitch as u8;

impl EventTally {
    /// Counts one event: inlined, so that the many of other kinds cost one bit test each.
    #[inline]
    pub fn add(&mut self, event: &Event) {
        if 1u64.checked_shl(u32::from(event.kind)).unwrap_or(0) & TALLIED != 0 {
            self.count(event);
        }
    }

    /// Counts one event of a tallied kind.
    #[inline(never)]
    fn count(&mut self, event: &Event) {
        match EventKind::from_u8(event.kind) {
            Some(EventKind::NapiPoll) if event.arg0 > 0 => {
                self.polls.get(event.name).add((1, u64::from(event.arg0)));
            }
            Some(EventKind::IrqHandlerEntry) => *self.irqs.get(event.arg0) += 1,
            Some(EventKind::NetifReceiveSkb) => *self.packets.get(event.name) += 1,
            Some(EventKind::SchedSwitch) => {
                let entry = self.switches.get(event.tid);
                // prev_state 0 (TASK_RUNNING): preempted; anything else: it blocked.
                if event.addr == 0 {
                    entry.1 += 1
                } else {
                    entry.0 += 1
                }
            }
            _ => {}
        }
    }

    /// The counts: devices by name, network IRQs by device (`irq_devices`), the switches of
    /// `readers`.
    pub fn counts<S: BuildHasher>(
        &self,
        irq_devices: &HashMap<u32, String>,
        readers: &HashSet<u32, S>,
    ) -> EventCounts {
        let name = |bytes: &[u8; NAME_LEN]| {
            crate::source::decode::name(&Event {
                name: *bytes,
                ..Event::ZERO
            })
        };
        let mut counts = EventCounts::default();
        for (dev, polls) in self.polls.iter() {
            counts.polls.entry(name(dev)).or_default().add(*polls);
        }
        for (irq, n) in self.irqs.iter() {
            if let Some(dev) = irq_devices.get(irq) {
                *counts.nic_irqs.entry(dev.clone()).or_default() += n;
            }
        }
        for (dev, n) in self.packets.iter() {
            *counts.packets.entry(name(dev)).or_default() += n;
        }
        for (tid, switches) in self.switches.iter() {
            if readers.contains(tid) {
                counts.switches.entry(*tid).or_default().add(*switches);
            }
        }
        counts
    }
}

/// The flow of a journey as `proto saddr:sport>daddr:dport` (empty when unknown), the key of
/// the report's per-flow table.
pub fn flow_key(journey: &Journey) -> String {
    super::text::flow(journey).map_or(String::new(), |flow| format!("{} {flow}", journey.proto))
}

/// Per stage (journey order, total excluded), the median of one group's journeys; `None`
/// for a stage none of them measured.
pub fn stage_medians(journeys: &[&Journey]) -> Vec<(Stage, Option<u64>)> {
    Stage::ALL
        .iter()
        .filter(|stage| **stage != Stage::Total)
        .map(|stage| {
            let mut values: Vec<u64> = journeys
                .iter()
                .filter_map(|journey| journey.stages_ns.get(*stage))
                .collect();
            values.sort_unstable();
            (*stage, values.get(values.len() / 2).copied())
        })
        .collect()
}

/// Journeys grouped by a key, with the histogram of their totals.
pub fn breakdown(
    journeys: &[Journey],
    key: impl Fn(&Journey) -> String,
) -> BTreeMap<String, Histogram> {
    let mut groups: BTreeMap<String, Histogram> = BTreeMap::new();
    for journey in journeys {
        let histogram = groups.entry(key(journey)).or_default();
        if let Some(total) = journey.stages_ns.total {
            histogram.record(total);
        }
    }
    groups
}

/// A log2 histogram of one stage, drawn like bcc's tools: `[lo, hi) count |####|`.
pub fn log2_histogram(journeys: &[Journey], stage: Stage) -> String {
    let mut histogram = Log2Histogram::default();
    for value in journeys
        .iter()
        .filter_map(|journey| journey.stages_ns.get(stage))
    {
        histogram.record(value);
    }
    histogram.text(stage)
}

/// Counts of values by power of two, for [`log2_histogram`].
#[derive(Clone, Debug)]
pub struct Log2Histogram {
    /// Bucket `bit` holds values below 2^bit (bit 0: zero).
    buckets: [u64; 65],
}

impl Default for Log2Histogram {
    fn default() -> Self {
        Self { buckets: [0; 65] }
    }
}

impl Log2Histogram {
    /// The histogram of these counts (as [`super::summary::Histogram::log2_counts`] gives
    /// them).
    pub fn from_counts(buckets: [u64; 65]) -> Self {
        Self { buckets }
    }

    /// Adds one value.
    pub fn record(&mut self, value: u64) {
        self.buckets[(64 - value.leading_zeros()) as usize] += 1;
    }

    /// Adds every value `other` recorded.
    pub fn merge(&mut self, other: &Log2Histogram) {
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
    }

    /// Whether no value was recorded.
    pub fn is_empty(&self) -> bool {
        self.buckets.iter().all(|count| *count == 0)
    }

    /// The histogram of `stage` as text.
    pub fn text(&self, stage: Stage) -> String {
        let buckets = &self.buckets;
        let used = || (0..65u32).filter(|bit| buckets[*bit as usize] > 0);
        let (Some(first), Some(last)) = (used().next(), used().next_back()) else {
            return format!("{}: no samples\n", stage.name());
        };
        let most = buckets.iter().copied().max().unwrap_or(1);
        let mut text = format!("{}:\n", stage.name());
        for bit in first..=last {
            let count = buckets[bit as usize];
            let low = if bit == 0 { 0 } else { 1u64 << (bit - 1) };
            let high = 1u64 << bit;
            let bar = "#".repeat((count * 40).div_ceil(most) as usize);
            text.push_str(&format!(
                "  {:>9} .. {:<9} {count:>7} |{bar:<40}|\n",
                human_ns(low),
                human_ns(high)
            ));
        }
        text
    }
}

/// The stages of a waterfall that this journey has: (stage, ns from the journey's first
/// stamp to the stage's start, the stage's duration), in journey order.
pub fn waterfall_rows(journey: &Journey) -> Vec<(Stage, u64, u64)> {
    let Some(start) = journey.ts.first() else {
        return Vec::new();
    };
    let ts = &journey.ts;
    [
        (Stage::Irq, ts.irq_entry),
        (Stage::SoftirqWait, ts.irq_exit.or(ts.softirq_raise)),
        (Stage::Poll, ts.softirq_entry),
        (Stage::Stack, ts.netif_receive),
        (Stage::Wakeup, ts.sk_data_ready),
        (Stage::Runqueue, ts.waking),
        (Stage::Syscall, ts.switch_in),
    ]
    .into_iter()
    .filter_map(|(stage, from)| {
        let ns = journey.stages_ns.get(stage)?;
        Some((stage, from?.saturating_sub(start), ns))
    })
    .collect()
}

/// A to-scale waterfall: one bar per stage, offset by when the stage started.
pub fn waterfall(journey: &Journey, width: usize) -> String {
    let Some(total) = journey.stages_ns.total else {
        return String::new();
    };
    let scale = |ns: u64| ((ns as f64 / total.max(1) as f64) * width as f64).round() as usize;
    let mut text = format!(
        "journey {} on {} read by {} ({}), total {}:\n",
        journey.id,
        escape::text(&journey.dev),
        escape::text(journey.comm.as_deref().unwrap_or("?")),
        journey.tid.map_or("-".to_owned(), |tid| tid.to_string()),
        human_ns(total)
    );
    for (stage, from, ns) in waterfall_rows(journey) {
        let offset = scale(from).min(width);
        let length = scale(ns).max(1).min(width + 1 - offset);
        text.push_str(&format!(
            "  {:<13} {}{}{} {}\n",
            stage.name(),
            " ".repeat(offset),
            "█".repeat(length),
            " ".repeat(width + 1 - offset - length),
            human_ns(ns)
        ));
    }
    text
}

/// The `n` journeys with the longest total, slowest first.
pub fn slowest(journeys: &[Journey], n: usize) -> Vec<&Journey> {
    let mut sorted: Vec<&Journey> = journeys
        .iter()
        .filter(|journey| journey.stages_ns.total.is_some())
        .collect();
    sorted.sort_by_key(|journey| std::cmp::Reverse(journey.stages_ns.total));
    sorted.truncate(n);
    sorted
}

/// The `n` journeys with the longest total as they stream past, slowest first; of equal
/// totals the earliest (as [`slowest`] picks them).
#[derive(Clone, Debug, Default)]
pub struct Slowest {
    n: usize,
    journeys: Vec<Journey>,
}

impl Slowest {
    /// Keeps the `n` slowest.
    pub fn new(n: usize) -> Self {
        Self {
            n,
            journeys: Vec::new(),
        }
    }

    /// Considers one journey.
    pub fn add(&mut self, journey: &Journey) {
        let Some(total) = journey.stages_ns.total else {
            return;
        };
        let full = self.journeys.len() >= self.n;
        if full
            && self
                .journeys
                .last()
                .is_none_or(|last| last.stages_ns.total >= Some(total))
        {
            return;
        }
        let at = self
            .journeys
            .partition_point(|kept| kept.stages_ns.total >= Some(total));
        self.journeys.insert(at, journey.clone());
        self.journeys.truncate(self.n);
    }

    /// How many it keeps.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The slowest, slowest first.
    pub fn journeys(&self) -> &[Journey] {
        &self.journeys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journey::{StageDurations, Stamps};

    fn journey(id: u64, dev: &str, total: u64) -> Journey {
        Journey {
            id,
            dev: dev.into(),
            comm: Some("reader".into()),
            tid: Some(9),
            ts: Stamps {
                softirq_raise: Some(1_000),
                softirq_entry: Some(1_000 + total / 4),
                netif_receive: Some(1_000 + total / 2),
                recv_return: Some(1_000 + total),
                ..Stamps::default()
            },
            stages_ns: StageDurations {
                softirq_wait: Some(total / 4),
                poll: Some(total / 4),
                total: Some(total),
                ..StageDurations::default()
            },
            ..Journey::default()
        }
    }

    #[test]
    fn breakdowns_histograms_and_waterfalls() {
        let journeys = vec![
            journey(1, "lo", 40_000),
            journey(2, "eth0", 400_000),
            journey(3, "lo", 60_000),
        ];
        let by_dev = breakdown(&journeys, |j| j.dev.to_string());
        assert_eq!(by_dev["lo"].count(), 2);
        assert_eq!(by_dev["eth0"].max(), 400_000);
        let slow = slowest(&journeys, 2);
        assert_eq!(slow.iter().map(|j| j.id).collect::<Vec<_>>(), vec![2, 3]);
        let text = log2_histogram(&journeys, Stage::Total);
        assert_eq!(
            text.lines().filter(|line| line.contains('|')).count(),
            4,
            "{text}"
        );
        assert!(
            text.contains("32.8us .. 65.5us          2 |########################################|"),
            "{text}"
        );
        let drawn = waterfall(&journeys[1], 40);
        assert!(
            drawn.starts_with("journey 2 on eth0 read by reader (9), total 400.0us"),
            "{drawn}"
        );
        let poll = drawn.lines().find(|line| line.contains("poll")).unwrap();
        assert_eq!(
            poll.matches('█').count(),
            10,
            "a quarter of 40 columns: {drawn}"
        );
        assert!(
            poll.starts_with(&format!("  poll          {}█", " ".repeat(10))),
            "{drawn}"
        );
    }

    #[test]
    fn stage_medians_take_the_middle_of_each_measured_stage() {
        let journeys: Vec<Journey> = [100u64, 300, 200]
            .iter()
            .map(|poll| {
                let mut journey = Journey::default();
                journey.stages_ns.poll = Some(*poll);
                journey
            })
            .collect();
        let refs: Vec<&Journey> = journeys.iter().collect();
        let medians = stage_medians(&refs);
        assert_eq!(
            medians.len(),
            Stage::ALL.len() - 1,
            "every stage but the total"
        );
        assert!(medians.contains(&(Stage::Poll, Some(200))));
        assert!(medians.contains(&(Stage::Stack, None)));
    }

    #[test]
    fn flows_are_keyed_by_protocol_addresses_and_ports() {
        let mut journey = journey(1, "lo", 1000);
        assert_eq!(flow_key(&journey), "", "unknown without headers");
        journey.proto = "tcp".into();
        journey.saddr = Some("127.0.0.1".parse().unwrap());
        journey.daddr = Some("::1".parse().unwrap());
        (journey.sport, journey.dport) = (Some(40000), Some(6379));
        assert_eq!(flow_key(&journey), "tcp 127.0.0.1:40000>[::1]:6379");
    }

    #[test]
    fn counts_napi_and_switches() {
        let mut events = Vec::new();
        let mut name = [0u8; 16];
        name[..4].copy_from_slice(b"eth0");
        for work in [3, 0, 5] {
            events.push(Event {
                kind: EventKind::NapiPoll as u8,
                arg0: work,
                arg1: 64,
                name,
                ..Event::ZERO
            });
        }
        events.push(Event {
            kind: EventKind::IrqHandlerEntry as u8,
            arg0: 38,
            ..Event::ZERO
        });
        for _ in 0..8 {
            events.push(Event {
                kind: EventKind::NetifReceiveSkb as u8,
                name,
                ..Event::ZERO
            });
        }
        events.push(Event {
            kind: EventKind::SchedSwitch as u8,
            tid: 9,
            addr: 1,
            ..Event::ZERO
        });
        events.push(Event {
            kind: EventKind::SchedSwitch as u8,
            tid: 9,
            addr: 0,
            ..Event::ZERO
        });
        events.push(Event {
            kind: EventKind::SchedSwitch as u8,
            tid: 10,
            addr: 1,
            ..Event::ZERO
        });
        let irqs = HashMap::from([(38, "eth0".to_owned())]);
        let counts = EventCounts::count(&events, &irqs, &HashSet::from([9]));
        assert_eq!(counts.polls["eth0"], (2, 8));
        assert_eq!(counts.nic_irqs["eth0"], 1);
        assert_eq!(counts.packets["eth0"], 8);
        assert_eq!(counts.switches, BTreeMap::from([(9, (1, 1))]));
    }
}
