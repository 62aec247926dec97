//! The text of the report, from what [`ReportData`] gathered of one recording or of several
//! (each replayed by its own engine): the totals merged (histograms bucket by bucket, never
//! quantiles averaged), and with several recordings a section per host and every breakdown
//! named by host.

use std::{collections::BTreeMap, fmt::Write as _};

use super::{FlowStats, MAX_FLOWS, ReportData, TOP_FLOWS};
use crate::{
    journey::{EndingCounts, Journey, Stage},
    recording::{Metadata, Trailer},
    sink::{
        analysis::{self, Log2Histogram},
        escape,
        summary::{CompactHistogram, StageSummary, human_ns},
    },
};

/// One recording's share of a report.
#[derive(Clone, Copy, Debug)]
pub struct ReportPart<'a> {
    /// Its name in a report of several recordings: the host, or `host (file)` when two
    /// recordings share a host name. `None` in the report of one recording.
    pub label: Option<&'a str>,
    /// Its format version.
    pub version: u8,
    /// Its metadata.
    pub meta: &'a Metadata,
    /// What was gathered from its events and journeys.
    pub data: &'a ReportData,
    /// Why its engine ended journeys incomplete.
    pub incomplete: &'a EndingCounts,
    /// Its counters (losses, recursion misses), when it has a trailer.
    pub trailer: Option<&'a Trailer>,
}

impl ReportPart<'_> {
    /// `group` as this part names it: prefixed with the host in a report of several.
    fn name(&self, group: &str) -> String {
        match self.label {
            Some(label) => format!("{label}: {group}"),
            None => group.to_owned(),
        }
    }

    fn lost(&self) -> Option<u64> {
        self.trailer
            .map(|trailer| trailer.lost_per_cpu.iter().sum::<u64>())
    }

    /// Format, kernel, host, CPUs, events, span and losses.
    fn facts(&self) -> String {
        format!(
            "format v{}, kernel {}, host {}, {} CPUs, {} events over {}, lost {}",
            self.version,
            escape::text(&self.meta.kernel),
            escape::text(&self.meta.hostname),
            self.meta.cpus,
            self.data.seen.events,
            human_ns(self.data.span_ns()),
            self.lost()
                .map_or("unknown (no trailer)".to_owned(), |lost| lost.to_string())
        )
    }
}

/// The journeys of several parts together: stage histograms and complete ones.
fn merged_summary(parts: &[ReportPart]) -> (StageSummary, u64) {
    let mut summary = StageSummary::default();
    let mut complete = 0;
    for part in parts {
        summary.merge(&part.data.summary());
        complete += part.data.complete;
    }
    (summary, complete)
}

/// Per host (part): journeys, complete, incomplete and its reasons, and its stage table
/// (count, p50, p90, p99, max), as the report of that recording alone gives them.
pub fn hosts_text(parts: &[ReportPart]) -> String {
    let mut text = String::new();
    for part in parts {
        let data = part.data;
        let summary = data.summary();
        let journeys = summary.journeys;
        let _ = writeln!(
            text,
            "  {}: {journeys} journeys, {} complete, {} incomplete",
            escape::text(part.label.unwrap_or(&part.meta.hostname)),
            data.complete,
            journeys - data.complete
        );
        for line in summary.table().lines() {
            let _ = writeln!(text, "    {line}");
        }
        for (reason, count) in part.incomplete.iter() {
            let _ = writeln!(text, "    incomplete: {count} {reason}");
        }
    }
    text
}

/// The journeys of `parts` together: `== N journeys, M complete ==`, the stage table of
/// their merged histograms, the incomplete ones by reason and, with several parts, the
/// section per host ([`hosts_text`]).
pub fn totals_text(parts: &[ReportPart]) -> String {
    let mut text = String::new();
    let (summary, complete) = merged_summary(parts);
    let _ = writeln!(
        text,
        "\n== {} journeys, {} complete ==",
        summary.journeys, complete
    );
    text.push_str(&summary.table());
    let mut incomplete = EndingCounts::default();
    for part in parts {
        incomplete.merge(part.incomplete);
    }
    for (reason, count) in incomplete.iter() {
        let _ = writeln!(text, "incomplete: {count} {reason}");
    }
    if parts.len() > 1 {
        text.push_str(
            "\n== by host: journeys, complete, incomplete; each stage's count, p50, p90, p99, max ==\n",
        );
        text.push_str(&hosts_text(parts));
    }
    text
}

/// The text report of `parts` (one, or several recordings each replayed alone).
pub fn report_text(parts: &[ReportPart]) -> String {
    let mut text = String::new();
    if let [part] = parts {
        let _ = writeln!(text, "recording: {}", part.facts());
    } else {
        let hosts: std::collections::BTreeSet<&str> = parts
            .iter()
            .map(|part| part.meta.hostname.as_str())
            .collect();
        let lost: Option<u64> = parts.iter().map(ReportPart::lost).sum();
        let _ = writeln!(
            text,
            "recordings: {} files from {} host{}, {} events, lost {}",
            parts.len(),
            hosts.len(),
            if hosts.len() == 1 { "" } else { "s" },
            parts.iter().map(|part| part.data.seen.events).sum::<u64>(),
            lost.map_or("unknown (a trailer is missing)".to_owned(), |n| n
                .to_string())
        );
        for part in parts {
            let label = part.label.unwrap_or(&part.meta.hostname);
            let _ = writeln!(text, "  {}: {}", escape::text(label), part.facts());
        }
    }
    for part in parts {
        if let Some(trailer) = part.trailer
            && !trailer.recursion_misses.is_empty()
        {
            let misses = crate::probe::stats::misses_line(&trailer.recursion_misses);
            let _ = writeln!(text, "{}", escape::text(&part.name(&misses)));
        }
    }
    text.push_str(&totals_text(parts));
    text.push_str("\n== stage histograms (log2) ==\n");
    let summaries: Vec<StageSummary> = parts.iter().map(|part| part.data.summary()).collect();
    for stage in Stage::ALL {
        let mut histogram = Log2Histogram::default();
        for summary in &summaries {
            histogram.merge(&ReportData::log2(summary, stage));
        }
        if !histogram.is_empty() {
            text.push_str(&histogram.text(stage));
        }
    }
    breakdowns(parts, &mut text);
    flows(parts, &mut text);
    slowest(parts, &mut text);
    napi_and_switches(parts, &mut text);
    text
}

/// By device, IRQ, softirq CPU and task: journeys and their totals' p50, p99 and max.
fn breakdowns(parts: &[ReportPart], text: &mut String) {
    let mut sections: Vec<(&'static str, BTreeMap<String, CompactHistogram>)> = Vec::new();
    for part in parts {
        for (at, (title, groups)) in part.data.breakdowns.sections().into_iter().enumerate() {
            if sections.len() <= at {
                sections.push((title, BTreeMap::new()));
            }
            for (group, histogram) in groups {
                sections[at]
                    .1
                    .entry(part.name(&group))
                    .or_default()
                    .merge(&histogram);
            }
        }
    }
    for (name, groups) in &sections {
        let _ = writeln!(text, "\n== by {name}: journeys, total p50 / p99 / max ==");
        let shown = busiest(groups, MAX_GROUP_ROWS);
        for (group, histogram) in groups {
            if histogram.count() == 0 || !shown.contains(group.as_str()) {
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
        let (more, journeys) = groups
            .iter()
            .filter(|(group, h)| h.count() > 0 && !shown.contains(group.as_str()))
            .fold((0, 0), |(n, j), (_, h)| (n + 1, j + h.count()));
        if more > 0 {
            let _ = writeln!(text, "  ... and {more} more with {journeys} journeys");
        }
    }
}

/// Rows a breakdown section shows at most: those with the most journeys (a recording can
/// hold thousands of tasks).
pub(super) const MAX_GROUP_ROWS: usize = 64;

/// The names of the `n` groups with the most journeys (ties: the first in name order).
fn busiest(
    groups: &BTreeMap<String, CompactHistogram>,
    n: usize,
) -> std::collections::HashSet<&str> {
    let mut by_count: Vec<(&String, u64)> = groups
        .iter()
        .map(|(name, h)| (name, h.count()))
        .filter(|(_, count)| *count > 0)
        .collect();
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    by_count
        .into_iter()
        .take(n)
        .map(|(name, _)| name.as_str())
        .collect()
}

/// The flows with the worst p99 total, and where each one's time goes.
fn flows(parts: &[ReportPart], text: &mut String) {
    let mut flows: BTreeMap<String, FlowStats> = BTreeMap::new();
    for part in parts {
        for (flow, stats) in part.data.breakdowns.flows() {
            if !flow.is_empty() {
                flows.entry(part.name(&flow)).or_default().merge(&stats);
            }
        }
    }
    let mut top: Vec<(&String, u64, &FlowStats)> = flows
        .iter()
        .filter(|(_, stats)| stats.total.count() > 0)
        .filter_map(|(flow, stats)| Some((flow, stats.total.quantile(0.99)?, stats)))
        .collect();
    let merged: u64 = parts
        .iter()
        .map(|part| part.data.breakdowns.merged_journeys())
        .sum();
    if top.is_empty() && merged == 0 {
        return;
    }
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    if top.is_empty() {
        // Only flows without a complete journey, too many to keep apart.
        let _ = writeln!(text, "\n== flows ==");
    } else {
        let _ = writeln!(
            text,
            "\n== top flows by p99 total (of {}): journeys, total p50 / p99 / max ==",
            top.len()
        );
    }
    if merged > 0 {
        let _ = writeln!(
            text,
            "  ({merged} journeys of quieter flows not kept apart: more than {MAX_FLOWS} flows; \
             the stage table counts them)"
        );
    }
    for (flow, p99, stats) in top.into_iter().take(TOP_FLOWS) {
        let total = &stats.total;
        let p50 = total.quantile(0.5).map_or("-".to_owned(), human_ns);
        let _ = writeln!(
            text,
            "  {:<52} {:>7} {:>10} {:>10} {:>10}",
            escape::text(flow),
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

/// Waterfalls of the slowest journeys of every part together.
fn slowest(parts: &[ReportPart], text: &mut String) {
    let n = parts.first().map_or(0, |part| part.data.slowest.n());
    // Stable: of equal totals, the earlier part's (and within it the earlier) first.
    let mut all: Vec<(&ReportPart, &Journey)> = parts
        .iter()
        .flat_map(|part| part.data.slowest.journeys().iter().map(move |j| (part, j)))
        .collect();
    all.sort_by_key(|(_, journey)| std::cmp::Reverse(journey.stages_ns.total));
    all.truncate(n);
    if n == 0 {
        return;
    }
    let _ = writeln!(text, "\n== the {n} slowest journeys, to scale ==");
    for (part, journey) in all {
        if let Some(label) = part.label {
            let _ = write!(text, "{}: ", escape::text(label));
        }
        text.push_str(&analysis::waterfall(journey, 60));
    }
}

/// NAPI arithmetic per device and the readers' context switches, of each part.
fn napi_and_switches(parts: &[ReportPart], text: &mut String) {
    let counts: Vec<_> = parts
        .iter()
        .map(|part| {
            let data = part.data;
            data.seen.tally.counts(&data.irq_devices, &data.readers)
        })
        .collect();
    text.push_str("\n== NAPI ==\n");
    for (part, counts) in parts.iter().zip(&counts) {
        for (dev, (polls, packets)) in &counts.polls {
            let _ = writeln!(
                text,
                "  {:<16} {polls} polls with work, {packets} packets: {:.2} packets per poll",
                escape::text(&part.name(dev)),
                *packets as f64 / (*polls).max(1) as f64
            );
        }
        for (dev, irqs) in &counts.nic_irqs {
            let polls = counts.polls.get(dev).map_or(0, |(polls, _)| *polls);
            let packets = counts.packets.get(dev).copied().unwrap_or(0);
            let _ = writeln!(
                text,
                "  {:<16} {irqs} hard IRQs (every queue, rx and tx): {:.2} polls per IRQ, {:.3} IRQs per packet ({packets} packets)",
                escape::text(&part.name(dev)),
                polls as f64 / (*irqs).max(1) as f64,
                *irqs as f64 / packets.max(1) as f64
            );
        }
    }
    if counts.iter().all(|counts| counts.nic_irqs.is_empty()) {
        text.push_str("  no NIC interrupts recorded (loopback and veth have none)\n");
    }
    text.push_str(
        "\n== context switches of the readers (seen while they waited in recv/poll) ==\n",
    );
    for (part, counts) in parts.iter().zip(&counts) {
        let host = part
            .label
            .map_or(String::new(), |label| format!("{} ", escape::text(label)));
        for (tid, (voluntary, involuntary)) in &counts.switches {
            let _ = writeln!(
                text,
                "  {host}tid {tid:<8} voluntary {voluntary:>6}  involuntary {involuntary:>6}"
            );
        }
    }
}
