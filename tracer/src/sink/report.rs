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
    analysis::{self, EventCounts, EventTally, Log2Histogram, Slowest},
    escape,
    summary::{CompactHistogram, Histogram, StageSummary, human_ns},
};
use crate::{
    journey::{Journey, Stage, Tracker, model::Shared},
    recording::{Metadata, Trailer},
};

/// Flows listed in the report's top-flows table at most.
const TOP_FLOWS: usize = 10;

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

impl<K: Hash + Eq + Clone, V: Default> Keyed<K, V> {
    /// The value of `key`, added as its default if new.
    fn get(&mut self, key: K) -> &mut V {
        let at = match &self.last {
            Some((last, at)) if *last == key => *at,
            _ => {
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
}

/// Journeys' totals by a key, named only when the report is written (a name is text to
/// format; a key is a few fields to hash).
#[derive(Debug)]
struct Groups<K> {
    by: Keyed<K, Histogram>,
}

impl<K> Default for Groups<K> {
    fn default() -> Self {
        Self {
            by: Keyed::default(),
        }
    }
}

impl<K: Hash + Eq + Clone> Groups<K> {
    fn add(&mut self, key: K, journey: &Journey) {
        let histogram = self.by.get(key);
        if let Some(total) = journey.stages_ns.total {
            histogram.record(total);
        }
    }

    /// The groups by name, in name order (keys that read the same are one group).
    fn named(&self, name: impl Fn(&K) -> String) -> BTreeMap<String, Histogram> {
        let mut named: BTreeMap<String, Histogram> = BTreeMap::new();
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
    flow: Keyed<FlowKey, FlowStats>,
}

impl Breakdowns {
    fn add(&mut self, journey: &Journey) {
        self.dev.add(journey.dev.clone(), journey);
        self.irq.add(journey.irq_name.clone(), journey);
        self.cpu.add(journey.cpu_softirq, journey);
        self.task.add((journey.comm.clone(), journey.pid), journey);
        let flow = (
            journey.proto.clone(),
            journey.saddr,
            journey.sport,
            journey.daddr,
            journey.dport,
        );
        self.flow.get(flow).add(journey);
    }

    /// The sections of the report, titled, each group named.
    fn sections(&self) -> [(&'static str, BTreeMap<String, Histogram>); 4] {
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

    /// Flows by `proto saddr:sport>daddr:dport` (empty when unknown; keys that read the same
    /// are one flow).
    fn flows(&self) -> BTreeMap<String, FlowStats> {
        let mut named: BTreeMap<String, FlowStats> = BTreeMap::new();
        for ((proto, saddr, sport, daddr, dport), stats) in self.flow.iter() {
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

/// A flow's journeys: their totals and each stage. Compact: a host has few devices, CPUs
/// and readers, but flows can be many.
#[derive(Clone, Debug, Default)]
struct FlowStats {
    total: CompactHistogram,
    /// Indexed by `Stage as usize` (the total's is unused).
    stages: [CompactHistogram; Stage::ALL.len()],
}

impl FlowStats {
    fn add(&mut self, journey: &Journey) {
        for stage in Stage::ALL {
            if let Some(ns) = journey.stages_ns.get(stage) {
                match stage {
                    Stage::Total => self.total.record(ns),
                    _ => self.stages[stage as usize].record(ns),
                }
            }
        }
    }

    fn merge(&mut self, other: &FlowStats) {
        self.total.merge(&other.total);
        for (mine, theirs) in self.stages.iter_mut().zip(&other.stages) {
            mine.merge(theirs);
        }
    }
}

/// What the text report needs, gathered as a recording's events and journeys stream past:
/// counts, histograms and breakdowns, never the journeys themselves (but the few slowest),
/// so a report of any size holds as much as one of a second.
#[derive(Debug)]
pub struct ReportData {
    events: u64,
    first_ts: u64,
    last_ts: u64,
    irq_devices: HashMap<u32, String>,
    tally: EventTally,
    summary: StageSummary,
    complete: u64,
    log2: [Log2Histogram; Stage::ALL.len()],
    breakdowns: Breakdowns,
    slowest: Slowest,
    /// Tids of the readers (one insert per journey: a fast hash).
    readers: FxHashSet<u32>,
}

impl ReportData {
    /// Nothing seen yet of a recording with this metadata; `slowest`: waterfalls to draw.
    pub fn new(meta: &Metadata, slowest: usize) -> Self {
        Self {
            events: 0,
            first_ts: u64::MAX,
            last_ts: 0,
            irq_devices: meta
                .irqs
                .iter()
                .map(|irq| (irq.irq, irq.dev.clone()))
                .collect(),
            tally: EventTally::default(),
            summary: StageSummary::default(),
            complete: 0,
            log2: Default::default(),
            breakdowns: Breakdowns::default(),
            slowest: Slowest::new(slowest),
            readers: FxHashSet::default(),
        }
    }

    /// Counts events of the recording (in file order).
    pub fn events(&mut self, events: &[Event]) {
        self.events += events.len() as u64;
        for event in events {
            self.first_ts = self.first_ts.min(event.ts);
            self.last_ts = self.last_ts.max(event.ts);
            self.tally.add(event);
        }
    }

    /// Adds a journey the report covers (one the filter keeps).
    pub fn journey(&mut self, journey: &Journey) {
        self.summary.add(journey);
        self.complete += u64::from(journey.complete);
        for stage in Stage::ALL {
            if let Some(ns) = journey.stages_ns.get(stage) {
                self.log2[stage as usize].record(ns);
            }
        }
        self.breakdowns.add(journey);
        self.slowest.add(journey);
        if let Some(tid) = journey.tid {
            self.readers.insert(tid);
        }
    }

    /// The span of the events' stamps, first to last (0 without events).
    pub fn span_ns(&self) -> u64 {
        self.last_ts.saturating_sub(self.first_ts)
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
        let counts = self.tally.counts(&self.irq_devices, &self.readers);
        analysis_text(self, version, meta, &counts, tracker, trailer)
    }
}

/// The text report from what [`ReportData`] gathered.
fn analysis_text(
    data: &ReportData,
    version: u8,
    meta: &Metadata,
    counts: &EventCounts,
    tracker: &Tracker,
    trailer: Option<&Trailer>,
) -> String {
    let lost = trailer.map(|trailer| trailer.lost_per_cpu.as_slice());
    use std::fmt::Write as _;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "recording: format v{version}, kernel {}, host {}, {} CPUs, {} events over {}, lost {}",
        escape::text(&meta.kernel),
        escape::text(&meta.hostname),
        meta.cpus,
        data.events,
        human_ns(data.span_ns()),
        lost.map_or("unknown (no trailer)".to_owned(), |lost| lost
            .iter()
            .sum::<u64>()
            .to_string())
    );
    if let Some(trailer) = trailer
        && !trailer.recursion_misses.is_empty()
    {
        let _ = writeln!(
            text,
            "{}",
            crate::probe::stats::misses_line(&trailer.recursion_misses)
        );
    }
    let summary = &data.summary;
    let _ = writeln!(
        text,
        "\n== {} journeys, {} complete ==",
        summary.journeys, data.complete
    );
    text.push_str(&summary.table());
    for (reason, count) in tracker.engine().stats().incomplete.iter() {
        let _ = writeln!(text, "incomplete: {count} {reason}");
    }
    text.push_str("\n== stage histograms (log2) ==\n");
    for stage in Stage::ALL {
        let histogram = &data.log2[stage as usize];
        if !histogram.is_empty() {
            text.push_str(&histogram.text(stage));
        }
    }
    for (name, groups) in data.breakdowns.sections() {
        let _ = writeln!(text, "\n== by {name}: journeys, total p50 / p99 / max ==");
        for (group, histogram) in &groups {
            if histogram.count() == 0 {
                continue;
            }
            let q = |q| histogram.quantile(q).map_or("-".to_owned(), human_ns);
            let _ = writeln!(
                text,
                "  {:<28} {:>7} {:>10} {:>10} {:>10}",
                escape::text(group),
                histogram.count(),
                q(0.5),
                q(0.99),
                human_ns(histogram.max())
            );
        }
    }
    let flows = data.breakdowns.flows();
    let mut top: Vec<(&String, u64, &FlowStats)> = flows
        .iter()
        .filter(|(flow, stats)| !flow.is_empty() && stats.total.count() > 0)
        .filter_map(|(flow, stats)| Some((flow, stats.total.quantile(0.99)?, stats)))
        .collect();
    if !top.is_empty() {
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let _ = writeln!(
            text,
            "\n== top flows by p99 total (of {}): journeys, total p50 / p99 / max ==",
            top.len()
        );
        for (flow, p99, stats) in top.into_iter().take(TOP_FLOWS) {
            let total = &stats.total;
            let p50 = total.quantile(0.5).map_or("-".to_owned(), human_ns);
            let _ = writeln!(
                text,
                "  {flow:<52} {:>7} {:>10} {:>10} {:>10}",
                total.count(),
                p50,
                human_ns(p99),
                human_ns(total.max())
            );
            // Where this flow's time goes: the median of each stage.
            let stages: Vec<String> = Stage::ALL
                .iter()
                .filter(|stage| **stage != Stage::Total)
                .filter_map(|stage| {
                    let median = stats.stages[*stage as usize].quantile(0.5)?;
                    Some(format!("{} {}", stage.name(), human_ns(median)))
                })
                .collect();
            let _ = writeln!(text, "    p50 by stage: {}", stages.join(", "));
        }
    }
    let slowest = data.slowest.n();
    if slowest > 0 {
        let _ = writeln!(text, "\n== the {slowest} slowest journeys, to scale ==");
        for journey in data.slowest.journeys() {
            text.push_str(&analysis::waterfall(journey, 60));
        }
    }
    text.push_str("\n== NAPI ==\n");
    for (dev, (polls, packets)) in &counts.polls {
        let _ = writeln!(
            text,
            "  {:<16} {polls} polls with work, {packets} packets: {:.2} packets per poll",
            escape::text(dev),
            *packets as f64 / (*polls).max(1) as f64
        );
    }
    for (dev, irqs) in &counts.nic_irqs {
        let polls = counts.polls.get(dev).map_or(0, |(polls, _)| *polls);
        let packets = counts.packets.get(dev).copied().unwrap_or(0);
        let _ = writeln!(
            text,
            "  {:<16} {irqs} hard IRQs (every queue, rx and tx): {:.2} polls per IRQ, {:.3} IRQs per packet ({packets} packets)",
            escape::text(dev),
            polls as f64 / (*irqs).max(1) as f64,
            *irqs as f64 / packets.max(1) as f64
        );
    }
    if counts.nic_irqs.is_empty() {
        text.push_str("  no NIC interrupts recorded (loopback and veth have none)\n");
    }
    text.push_str(
        "\n== context switches of the readers (seen while they waited in recv/poll) ==\n",
    );
    for (tid, (voluntary, involuntary)) in &counts.switches {
        let _ = writeln!(
            text,
            "  tid {tid:<8} voluntary {voluntary:>6}  involuntary {involuntary:>6}"
        );
    }
    text
}

#[cfg(test)]
mod tests;
