//! The text report of a recording: recording facts, stage table, histograms, breakdowns,
//! waterfalls, NAPI arithmetic, reader context switches, incomplete journeys.

use super::{
    analysis::{self, EventCounts},
    escape,
    summary::{StageSummary, human_ns},
};
use crate::{
    journey::{Journey, Stage, Tracker},
    recording::Recording,
};

/// Flows listed in the report's top-flows table at most.
const TOP_FLOWS: usize = 10;

/// A breakdown of the report: its name and the group of a journey.
type Section = (&'static str, Box<dyn Fn(&Journey) -> String>);

/// The text report: recording facts, stage table, histograms, breakdowns, waterfalls, NAPI
/// arithmetic, reader context switches, incomplete journeys.
pub fn analysis_text(
    recording: &Recording,
    journeys: &[Journey],
    counts: &EventCounts,
    tracker: &Tracker,
    slowest: usize,
    lost: Option<&[u64]>,
) -> String {
    use std::fmt::Write as _;
    let meta = &recording.meta;
    let mut text = String::new();
    let span = {
        let first = recording
            .events
            .iter()
            .map(|event| event.ts)
            .min()
            .unwrap_or(0);
        recording
            .events
            .iter()
            .map(|event| event.ts)
            .max()
            .unwrap_or(first)
            - first
    };
    let _ = writeln!(
        text,
        "recording: format v{}, kernel {}, host {}, {} CPUs, {} events over {}, lost {}",
        recording.version,
        escape::text(&meta.kernel),
        escape::text(&meta.hostname),
        meta.cpus,
        recording.events.len(),
        human_ns(span),
        lost.map_or("unknown (no trailer)".to_owned(), |lost| lost
            .iter()
            .sum::<u64>()
            .to_string())
    );
    if let Some(trailer) = &recording.trailer
        && !trailer.recursion_misses.is_empty()
    {
        let _ = writeln!(
            text,
            "{}",
            crate::probe::stats::misses_line(&trailer.recursion_misses)
        );
    }
    let mut summary = StageSummary::default();
    for journey in journeys {
        summary.add(journey);
    }
    let complete = journeys.iter().filter(|journey| journey.complete).count();
    let _ = writeln!(
        text,
        "\n== {} journeys, {complete} complete ==",
        journeys.len()
    );
    text.push_str(&summary.table());
    for (reason, count) in tracker.engine().stats().incomplete.iter() {
        let _ = writeln!(text, "incomplete: {count} {reason}");
    }
    text.push_str("\n== stage histograms (log2) ==\n");
    for stage in Stage::ALL {
        if journeys
            .iter()
            .any(|journey| journey.stages_ns.get(stage).is_some())
        {
            text.push_str(&analysis::log2_histogram(journeys, stage));
        }
    }
    let sections: [Section; 4] = [
        ("device", Box::new(|journey| journey.dev.to_string())),
        (
            "irq",
            Box::new(|journey| journey.irq_name.as_deref().unwrap_or("(none)").to_owned()),
        ),
        (
            "softirq cpu",
            Box::new(|journey| {
                journey
                    .cpu_softirq
                    .map_or("-".to_owned(), |cpu| cpu.to_string())
            }),
        ),
        (
            "task",
            Box::new(|journey| {
                format!(
                    "{}({})",
                    journey.comm.as_deref().unwrap_or("?"),
                    journey.pid.map_or("-".to_owned(), |pid| pid.to_string())
                )
            }),
        ),
    ];
    for (name, key) in sections {
        let _ = writeln!(text, "\n== by {name}: journeys, total p50 / p99 / max ==");
        for (group, histogram) in analysis::breakdown(journeys, key) {
            if histogram.count() == 0 {
                continue;
            }
            let q = |q| histogram.quantile(q).map_or("-".to_owned(), human_ns);
            let _ = writeln!(
                text,
                "  {:<28} {:>7} {:>10} {:>10} {:>10}",
                escape::text(&group),
                histogram.count(),
                q(0.5),
                q(0.99),
                human_ns(histogram.max())
            );
        }
    }
    let flows = analysis::breakdown(journeys, analysis::flow_key);
    let mut top: Vec<(&String, u64, &super::summary::Histogram)> = flows
        .iter()
        .filter(|(flow, histogram)| !flow.is_empty() && histogram.count() > 0)
        .filter_map(|(flow, histogram)| Some((flow, histogram.quantile(0.99)?, histogram)))
        .collect();
    if !top.is_empty() {
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let _ = writeln!(
            text,
            "\n== top flows by p99 total (of {}): journeys, total p50 / p99 / max ==",
            top.len()
        );
        top.truncate(TOP_FLOWS);
        // One pass gathers the journeys of the flows shown.
        let mut members: std::collections::HashMap<&str, Vec<&Journey>> = top
            .iter()
            .map(|(flow, ..)| (flow.as_str(), Vec::new()))
            .collect();
        for journey in journeys {
            if let Some(group) = members.get_mut(analysis::flow_key(journey).as_str()) {
                group.push(journey);
            }
        }
        for (flow, p99, histogram) in top {
            let p50 = histogram.quantile(0.5).map_or("-".to_owned(), human_ns);
            let _ = writeln!(
                text,
                "  {flow:<52} {:>7} {:>10} {:>10} {:>10}",
                histogram.count(),
                p50,
                human_ns(p99),
                human_ns(histogram.max())
            );
            // Where this flow's time goes: the median of each stage.
            let group = members.get(flow.as_str()).map_or(&[][..], Vec::as_slice);
            let stages: Vec<String> = analysis::stage_medians(group)
                .into_iter()
                .filter_map(|(stage, median)| {
                    Some(format!("{} {}", stage.name(), human_ns(median?)))
                })
                .collect();
            let _ = writeln!(text, "    p50 by stage: {}", stages.join(", "));
        }
    }
    if slowest > 0 {
        let _ = writeln!(text, "\n== the {slowest} slowest journeys, to scale ==");
        for journey in analysis::slowest(journeys, slowest) {
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
