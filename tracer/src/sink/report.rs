//! The text report of a recording: recording facts, stage table, histograms, breakdowns,
//! waterfalls, NAPI arithmetic, reader context switches, incomplete journeys.

use std::{
    collections::{BTreeMap, HashMap},
    hash::Hash,
    net::IpAddr,
};

use rustc_hash::{FxHashMap, FxHashSet};
use tracer_common::Event;

use super::{
    analysis::{self, EventTally, Log2Histogram, Slowest},
    summary::{Bucketed, CompactHistogram, StageSummary},
};
use crate::{
    journey::{Journey, Stage, Tracker, model::Shared},
    recording::{Metadata, Trailer},
};

/// Flows listed in the report's top-flows table at most.
const TOP_FLOWS: usize = 10;

/// Flows whose stats are kept apart at most (each a few hundred bytes, up to 72 KiB once
/// its histograms are dense). A recording of many flows (a scan, random source ports) made
/// the table grow without bound: 300,000 one-packet flows took the report to 530 MB.
pub const MAX_FLOWS: usize = 4096;

/// Values by a key: each key's place in a vector, and the last key used, which consecutive
/// journeys mostly share (a flood's device, IRQ, CPU, reader and flow): then a comparison,
/// not a hash.
#[derive(Debug)]
struct Keyed<K, V> {
    at: FxHashMap<K, usize>,
    values: Vec<V>,
    last: Option<(K, usize)>,
}

impl<K, V> Default for Keyed<K, V> {
    fn default() -> Self {
        Self {
            at: FxHashMap::default(),
            values: Vec::new(),
            last: None,
        }
    }
}

impl<K: Hash + Eq, V: Default> Keyed<K, V> {
    /// The value of the key that `is_key` recognises, added as its default if new; `key`
    /// makes the key only when it is not the last one used (a key of names is counts to
    /// add and drop).
    fn get(&mut self, is_key: impl FnOnce(&K) -> bool, key: impl FnOnce() -> K) -> &mut V
    where
        K: Clone,
    {
        let at = match &self.last {
            Some((last, at)) if is_key(last) => *at,
            _ => {
                let key = key();
                let values = &mut self.values;
                let at = *self.at.entry(key.clone()).or_insert_with(|| {
                    values.push(V::default());
                    values.len() - 1
                });
                self.last = Some((key, at));
                at
            }
        };
        &mut self.values[at]
    }

    /// Every key with its value (in no particular order).
    fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.at.iter().map(|(key, at)| (key, &self.values[*at]))
    }

    /// How many keys.
    fn len(&self) -> usize {
        self.values.len()
    }

    /// Keeps the values `keep` says yes to (called in value order); hands the others to
    /// `gone`.
    fn retain(&mut self, mut keep: impl FnMut(&V) -> bool, mut gone: impl FnMut(V)) {
        let kept: Vec<bool> = self.values.iter().map(&mut keep).collect();
        let mut moved = vec![usize::MAX; self.values.len()];
        let mut values = Vec::with_capacity(self.values.len());
        for (at, value) in std::mem::take(&mut self.values).into_iter().enumerate() {
            if kept[at] {
                moved[at] = values.len();
                values.push(value);
            } else {
                gone(value);
            }
        }
        self.values = values;
        self.at.retain(|_, at| {
            *at = moved[*at];
            *at != usize::MAX
        });
        self.last = None;
    }
}

/// Journeys' totals by a key, named only when the report is written (a name is text to
/// format; a key is a few fields to hash). Compact histograms: a recording can hold many
/// tasks (a process per DNS lookup or per request), and a full histogram takes 8 KiB.
#[derive(Debug)]
struct Groups<K> {
    by: Keyed<K, CompactHistogram>,
}

impl<K> Default for Groups<K> {
    fn default() -> Self {
        Self {
            by: Keyed::default(),
        }
    }
}

impl<K: Hash + Eq + Clone> Groups<K> {
    /// Counts a journey of this `total` in the group of the key `is_key` recognises (`key`
    /// makes it).
    fn add(
        &mut self,
        is_key: impl FnOnce(&K) -> bool,
        key: impl FnOnce() -> K,
        total: Option<Bucketed>,
    ) {
        let histogram = self.by.get(is_key, key);
        if let Some(total) = total {
            histogram.record_bucketed(total);
        }
    }

    /// The groups by name, in name order (keys that read the same are one group).
    fn named(&self, name: impl Fn(&K) -> String) -> BTreeMap<String, CompactHistogram> {
        let mut named: BTreeMap<String, CompactHistogram> = BTreeMap::new();
        for (key, histogram) in self.by.iter() {
            named.entry(name(key)).or_default().merge(histogram);
        }
        named
    }
}

/// A flow: protocol, source and destination.
type FlowKey = (
    std::borrow::Cow<'static, str>,
    Option<IpAddr>,
    Option<u16>,
    Option<IpAddr>,
    Option<u16>,
);

/// The report's breakdowns of journeys: by device, IRQ, softirq CPU, task, and flow.
#[derive(Debug, Default)]
struct Breakdowns {
    dev: Groups<Shared>,
    irq: Groups<Option<Shared>>,
    cpu: Groups<Option<u16>>,
    task: Groups<(Option<Shared>, Option<u32>)>,
    flow: Flows,
}

/// Each flow's stats, at most [`MAX_FLOWS`] of them kept apart. When the table is full, the
/// half of its flows with the fewest journeys are merged into `others` (so the stage table,
/// the sum of every flow's, stays exact) and their room is reused: the busy flows stay, and a
/// flow merged and seen again starts over.
#[derive(Debug, Default)]
struct Flows {
    kept: Keyed<FlowKey, FlowStats>,
    others: FlowStats,
    /// Journeys in `others`.
    merged_journeys: u64,
}

impl Flows {
    /// The stats of the flow `is_key` recognises (`key` makes its key).
    fn get(
        &mut self,
        is_key: impl Fn(&FlowKey) -> bool,
        key: impl FnOnce() -> FlowKey,
    ) -> &mut FlowStats {
        if self.kept.len() >= MAX_FLOWS
            && !self
                .kept
                .last
                .as_ref()
                .is_some_and(|(last, _)| is_key(last))
        {
            return self.get_crowded(key());
        }
        self.kept.get(is_key, key)
    }

    /// [`Self::get`] with the table full: a kept flow's stats, else room made first.
    #[inline(never)]
    fn get_crowded(&mut self, key: FlowKey) -> &mut FlowStats {
        if !self.kept.at.contains_key(&key) {
            self.merge_quiet_half();
        }
        self.kept.get(|last| *last == key, || key.clone())
    }

    /// Merges the half of the kept flows with the fewest journeys into `others`.
    fn merge_quiet_half(&mut self) {
        let journeys = |stats: &FlowStats| stats.journeys;
        let mut counts: Vec<u64> = self.kept.values.iter().map(journeys).collect();
        let middle = counts.len() / 2;
        let (_, &mut median, _) = counts.select_nth_unstable(middle);
        // Flows below the median go, then flows at it (in table order) until half are gone.
        let mut gone = self
            .kept
            .values
            .iter()
            .filter(|stats| journeys(stats) < median)
            .count();
        let (others, merged) = (&mut self.others, &mut self.merged_journeys);
        self.kept.retain(
            |stats| {
                let n = journeys(stats);
                if n < median {
                    return false;
                }
                if n == median && gone < middle {
                    gone += 1;
                    return false;
                }
                true
            },
            |stats| {
                *merged += stats.journeys;
                others.merge(&stats);
            },
        );
    }
}

impl Breakdowns {
    /// Counts `journey`, of this `total`, in its device, IRQ, CPU and task groups.
    fn add(&mut self, journey: &Journey, total: Option<Bucketed>) {
        let (dev, irq, comm) = (&journey.dev, &journey.irq_name, &journey.comm);
        self.dev.add(|key| same(key, dev), || dev.clone(), total);
        self.irq
            .add(|key| same_name(key, irq), || irq.clone(), total);
        let cpu = journey.cpu_softirq;
        self.cpu.add(|key| *key == cpu, || cpu, total);
        self.task.add(
            |(key, pid)| same_name(key, comm) && *pid == journey.pid,
            || (comm.clone(), journey.pid),
            total,
        );
    }

    /// The stats of `journey`'s flow (its stages are recorded by the caller).
    fn flow(&mut self, journey: &Journey) -> &mut FlowStats {
        self.flow.get(
            |(proto, saddr, sport, daddr, dport)| {
                *sport == journey.sport
                    && *dport == journey.dport
                    && *saddr == journey.saddr
                    && *daddr == journey.daddr
                    && *proto == journey.proto
            },
            || {
                (
                    journey.proto.clone(),
                    journey.saddr,
                    journey.sport,
                    journey.daddr,
                    journey.dport,
                )
            },
        )
    }

    /// The sections of the report, titled, each group named.
    fn sections(&self) -> [(&'static str, BTreeMap<String, CompactHistogram>); 4] {
        [
            ("device", self.dev.named(|dev| dev.to_string())),
            (
                "irq",
                self.irq
                    .named(|irq| irq.as_deref().unwrap_or("(none)").to_owned()),
            ),
            (
                "softirq cpu",
                self.cpu
                    .named(|cpu| cpu.map_or("-".to_owned(), |cpu| cpu.to_string())),
            ),
            (
                "task",
                self.task.named(|(comm, pid)| {
                    format!(
                        "{}({})",
                        comm.as_deref().unwrap_or("?"),
                        pid.map_or("-".to_owned(), |pid| pid.to_string())
                    )
                }),
            ),
        ]
    }

    /// Journeys of flows merged for want of room ([`Flows`]), in no flow's row.
    pub(super) fn merged_journeys(&self) -> u64 {
        self.flow.merged_journeys
    }

    /// Flows by `proto saddr:sport>daddr:dport` (empty when unknown; keys that read the same
    /// are one flow).
    fn flows(&self) -> BTreeMap<String, FlowStats> {
        let mut named: BTreeMap<String, FlowStats> = BTreeMap::new();
        for ((proto, saddr, sport, daddr, dport), stats) in self.flow.kept.iter() {
            let name = analysis::flow_key(&Journey {
                proto: proto.clone(),
                saddr: *saddr,
                sport: *sport,
                daddr: *daddr,
                dport: *dport,
                ..Journey::default()
            });
            named.entry(name).or_default().merge(stats);
        }
        named
    }
}

/// Whether two shared names are the same: the same string first (interned names mostly
/// are), else equal text.
fn same(a: &Shared, b: &Shared) -> bool {
    std::sync::Arc::ptr_eq(a, b) || a == b
}

/// [`same`] for names that may be absent.
fn same_name(a: &Option<Shared>, b: &Option<Shared>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => same(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// A flow's journeys: their totals and each stage. Compact: a host has few devices, CPUs
/// and readers, but flows can be many.
#[derive(Clone, Debug, Default)]
struct FlowStats {
    /// Journeys of the flow (with a total or not).
    journeys: u64,
    total: CompactHistogram,
    /// Indexed by `Stage as usize` (the total's is unused).
    stages: [CompactHistogram; Stage::ALL.len()],
}

impl FlowStats {
    /// Adds one stage duration of a journey of this flow.
    fn record(&mut self, stage: Stage, value: Bucketed) {
        match stage {
            Stage::Total => self.total.record_bucketed(value),
            _ => self.stages[stage as usize].record_bucketed(value),
        }
    }

    fn merge(&mut self, other: &FlowStats) {
        self.journeys += other.journeys;
        self.total.merge(&other.total);
        for (mine, theirs) in self.stages.iter_mut().zip(&other.stages) {
            mine.merge(theirs);
        }
    }
}

/// A recording's events as the report counts them: how many, the first and last stamps
/// and the tally. None of it depends on their order, so it is counted in file order, on the
/// thread that decodes them (`session::replay`), apart from the journeys.
#[derive(Clone, Debug)]
pub struct EventsSeen {
    events: u64,
    first_ts: u64,
    last_ts: u64,
    /// Whether to tally the events (the text report's NAPI and switch counts) or only count
    /// them and their span.
    tallied: bool,
    tally: EventTally,
}

impl EventsSeen {
    /// Nothing seen yet; `tallied`: also tally what the text report counts per event.
    pub fn new(tallied: bool) -> Self {
        Self {
            events: 0,
            first_ts: u64::MAX,
            last_ts: 0,
            tallied,
            tally: EventTally::default(),
        }
    }

    /// Counts events of the recording (in file order).
    pub fn add(&mut self, events: &[Event]) {
        self.events += events.len() as u64;
        // One walk for the span and the tally.
        let (mut first, mut last) = (self.first_ts, self.last_ts);
        if self.tallied {
            for event in events {
                first = first.min(event.ts);
                last = last.max(event.ts);
                self.tally.add(event);
            }
        } else {
            for event in events {
                first = first.min(event.ts);
                last = last.max(event.ts);
            }
        }
        (self.first_ts, self.last_ts) = (first, last);
    }

    /// The first and last stamps seen, or (0, 0) without events.
    pub fn span(&self) -> (u64, u64) {
        if self.first_ts > self.last_ts {
            (0, 0)
        } else {
            (self.first_ts, self.last_ts)
        }
    }
}

/// What the text report needs, gathered as a recording's events and journeys stream past:
/// counts, histograms and breakdowns, never the journeys themselves (but the few slowest),
/// so a report of any size holds as much as one of a second.
#[derive(Debug)]
pub struct ReportData {
    seen: EventsSeen,
    irq_devices: HashMap<u32, String>,
    /// Journeys counted. Their stages are recorded only in their flow's stats: the stage
    /// table and histograms are those of every flow together ([`Self::summary`]), each
    /// duration recorded once instead of three times.
    journeys: u64,
    complete: u64,
    breakdowns: Breakdowns,
    slowest: Slowest,
    /// Tids of the readers (one insert per journey: a fast hash).
    readers: FxHashSet<u32>,
    /// The last reader inserted: consecutive journeys mostly share it (no hash then).
    last_reader: Option<u32>,
}

impl ReportData {
    /// Nothing seen yet of a recording with this metadata; `slowest`: waterfalls to draw.
    pub fn new(meta: &Metadata, slowest: usize) -> Self {
        Self {
            seen: EventsSeen::new(true),
            irq_devices: meta
                .irqs
                .iter()
                .map(|irq| (irq.irq, irq.dev.clone()))
                .collect(),
            journeys: 0,
            complete: 0,
            breakdowns: Breakdowns::default(),
            slowest: Slowest::new(slowest),
            readers: FxHashSet::default(),
            last_reader: None,
        }
    }

    /// Counts events of the recording (in file order).
    pub fn events(&mut self, events: &[Event]) {
        self.seen.add(events);
    }

    /// Takes the recording's events as counted elsewhere (tallied: [`EventsSeen::new`]),
    /// in place of any counted here.
    pub fn set_events(&mut self, seen: EventsSeen) {
        self.seen = seen;
    }

    /// Adds a journey the report covers (one the filter keeps).
    pub fn journey(&mut self, journey: &Journey) {
        self.journeys += 1;
        self.complete += u64::from(journey.complete);
        // One pass over the stages: each duration's bucket found once for the flow's table
        // (and so the stage table) and (the total) every breakdown.
        let flow = self.breakdowns.flow(journey);
        flow.journeys += 1;
        let mut total = None;
        for stage in Stage::ALL {
            if let Some(ns) = journey.stages_ns.get(stage) {
                let value = Bucketed::new(ns);
                flow.record(stage, value);
                if stage == Stage::Total {
                    total = Some(value);
                }
            }
        }
        self.breakdowns.add(journey, total);
        self.slowest.add(journey);
        if let Some(tid) = journey.tid
            && self.last_reader != Some(tid)
        {
            self.readers.insert(tid);
            self.last_reader = Some(tid);
        }
    }

    /// The stage histograms of every journey: those of every flow together (the same
    /// buckets, so the same quantiles as recording each journey in them).
    pub fn summary(&self) -> StageSummary {
        let mut summary = StageSummary::default();
        let flows = &self.breakdowns.flow;
        for stats in flows.kept.values.iter().chain([&flows.others]) {
            for stage in Stage::ALL {
                let stats = match stage {
                    Stage::Total => &stats.total,
                    _ => &stats.stages[stage as usize],
                };
                summary.merge_compact(stage, stats);
            }
        }
        summary.journeys = self.journeys;
        summary
    }

    /// The log2 histogram of `stage` over every journey, from a [`Self::summary`].
    pub fn log2(summary: &StageSummary, stage: Stage) -> Log2Histogram {
        summary
            .stage(stage)
            .map_or_else(Log2Histogram::default, |histogram| {
                Log2Histogram::from_counts(histogram.log2_counts())
            })
    }

    /// The span of the events' stamps, first to last (0 without events).
    pub fn span_ns(&self) -> u64 {
        self.seen.last_ts.saturating_sub(self.seen.first_ts)
    }

    /// The text report: recording facts (format `version`), stage table, histograms,
    /// breakdowns, waterfalls, NAPI arithmetic, reader context switches, incomplete
    /// journeys. `trailer`: the recording's counters (losses, recursion misses), when it has
    /// them.
    pub fn text(
        &self,
        version: u8,
        meta: &Metadata,
        tracker: &Tracker,
        trailer: Option<&Trailer>,
    ) -> String {
        text::report_text(&[ReportPart {
            label: None,
            version,
            meta,
            data: self,
            incomplete: &tracker.engine().stats().incomplete,
            trailer,
        }])
    }
}

mod text;

pub use text::{ReportPart, hosts_text, report_text, totals_text};

#[cfg(test)]
mod tests;
