//! Prometheus/OpenMetrics metrics of journeys (prometheus-client), with label cardinality
//! bounded: at most [`MAX_LABEL_VALUES`] devices and task names each and [`MAX_PORTS`] local
//! ports, the rest as `other`, and at most [`MAX_STAGE_SERIES`] combinations of them.

use std::collections::{BTreeMap, HashSet};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::journey::{EngineStats, Journey, Stage};

/// Distinct values a `dev` or `comm` label takes at most.
pub const MAX_LABEL_VALUES: usize = 32;
/// Distinct values the `port` label takes at most.
pub const MAX_PORTS: usize = 64;
/// Distinct (`dev`, `comm`, `port`) combinations of the stage histograms at most; beyond
/// them a journey is observed as all `other` (each value alone is bounded, their product
/// would not be).
pub const MAX_STAGE_SERIES: usize = 1024;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: String,
    dev: String,
    comm: String,
    /// The journey's local port (the packet's destination port), `unknown` without one.
    port: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CpuLabels {
    cpu: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProgramLabels {
    program: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CompleteLabels {
    complete: String,
}

/// The metrics of one tracer run.
pub struct Metrics {
    registry: Registry,
    stages: Family<StageLabels, Histogram>,
    journeys: Family<CompleteLabels, Counter>,
    incomplete: Family<ReasonLabels, Counter>,
    drops: Family<ReasonLabels, Counter>,
    lost: Family<CpuLabels, Counter>,
    outcomes: Family<OutcomeLabels, Counter>,
    misses: Family<ProgramLabels, Counter>,
    misses_seen: BTreeMap<String, u64>,
    lost_seen: Vec<u64>,
    incomplete_seen: BTreeMap<String, u64>,
    outcomes_seen: BTreeMap<String, u64>,
    devs: HashSet<String>,
    comms: HashSet<String>,
    ports: HashSet<String>,
    series: HashSet<(String, String, String)>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tracer");
        // 1 us .. ~4 s in powers of two.
        let stages = Family::<StageLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(1e-6, 2.0, 23))
        });
        registry.register(
            "stage_seconds",
            "Duration of each journey stage",
            stages.clone(),
        );
        let journeys = Family::<CompleteLabels, Counter>::default();
        registry.register("journeys", "Packet journeys followed", journeys.clone());
        let incomplete = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "incomplete_journeys",
            "Journeys that did not reach recv() return, by reason",
            incomplete.clone(),
        );
        let drops = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "drops",
            "Packets dropped by the kernel (kfree_skb), by drop reason",
            drops.clone(),
        );
        let lost = Family::<CpuLabels, Counter>::default();
        registry.register(
            "lost_events",
            "Events lost to a full ring buffer, per CPU",
            lost.clone(),
        );
        let outcomes = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "packet_outcomes",
            "Packets that are not data journeys, or whose data was lost another way: \
             control segments by TCP flags, data left unread at socket close, packets of \
             unselected readers, wakeups that went to another thread than the reader",
            outcomes.clone(),
        );
        let misses = Family::<ProgramLabels, Counter>::default();
        registry.register(
            "recursion_misses",
            "Program runs the kernel skipped because another tracing program was running on \
             that CPU (events lost outside the ring buffer), per program",
            misses.clone(),
        );
        Self {
            registry,
            stages,
            journeys,
            incomplete,
            drops,
            lost,
            outcomes,
            misses,
            misses_seen: BTreeMap::new(),
            lost_seen: Vec::new(),
            incomplete_seen: BTreeMap::new(),
            outcomes_seen: BTreeMap::new(),
            devs: HashSet::new(),
            comms: HashSet::new(),
            ports: HashSet::new(),
            series: HashSet::new(),
        }
    }

    fn bounded(seen: &mut HashSet<String>, value: &str, max: usize) -> String {
        if seen.contains(value) || (seen.len() < max && seen.insert(value.to_owned())) {
            value.to_owned()
        } else {
            "other".to_owned()
        }
    }

    /// Counts a journey and observes its stages.
    pub fn observe(&mut self, journey: &Journey) {
        let complete = CompleteLabels {
            complete: journey.complete.to_string(),
        };
        self.journeys.get_or_create(&complete).inc();
        if let Some(reason) = &journey.drop_reason {
            self.drops
                .get_or_create(&ReasonLabels {
                    reason: reason.to_string(),
                })
                .inc();
        }
        let dev = Self::bounded(&mut self.devs, &journey.dev, MAX_LABEL_VALUES);
        let comm = Self::bounded(
            &mut self.comms,
            journey.comm.as_deref().unwrap_or("unknown"),
            MAX_LABEL_VALUES,
        );
        let port = match journey.dport {
            Some(port) => Self::bounded(&mut self.ports, &port.to_string(), MAX_PORTS),
            None => "unknown".to_owned(),
        };
        let mut series = (dev, comm, port);
        if !self.series.contains(&series) {
            if self.series.len() < MAX_STAGE_SERIES {
                self.series.insert(series.clone());
            } else {
                series = ("other".to_owned(), "other".to_owned(), "other".to_owned());
            }
        }
        let (dev, comm, port) = series;
        for stage in Stage::ALL {
            if let Some(ns) = journey.stages_ns.get(stage) {
                let labels = StageLabels {
                    stage: stage.name().to_owned(),
                    dev: dev.clone(),
                    comm: comm.clone(),
                    port: port.clone(),
                };
                self.stages.get_or_create(&labels).observe(ns as f64 / 1e9);
            }
        }
    }

    /// Brings the counters that come from elsewhere up to date (engine reasons, kernel loss).
    pub fn update(&mut self, stats: &EngineStats, lost_per_cpu: &[u64]) {
        for (reason, count) in stats.incomplete.iter() {
            let seen = self.incomplete_seen.entry(reason.to_owned()).or_default();
            if count > *seen {
                self.incomplete
                    .get_or_create(&ReasonLabels {
                        reason: reason.to_owned(),
                    })
                    .inc_by(count - *seen);
                *seen = count;
            }
        }
        let mut outcomes: Vec<(String, u64)> = stats
            .control
            .iter()
            .map(|(flags, n)| (format!("control {flags}"), *n))
            .collect();
        outcomes.extend([
            ("closed unread".to_owned(), stats.closed_unread),
            ("not selected".to_owned(), stats.not_selected),
            (
                "woke another thread".to_owned(),
                stats.wakeups_of_other_threads,
            ),
            (
                "dropped, not known to be data".to_owned(),
                stats.dropped_unknown,
            ),
        ]);
        for (outcome, count) in outcomes {
            let seen = self.outcomes_seen.entry(outcome.clone()).or_default();
            if count > *seen {
                self.outcomes
                    .get_or_create(&OutcomeLabels { outcome })
                    .inc_by(count - *seen);
                *seen = count;
            }
        }
        self.lost_seen.resize(lost_per_cpu.len(), 0);
        for (cpu, (&now, seen)) in lost_per_cpu
            .iter()
            .zip(self.lost_seen.iter_mut())
            .enumerate()
        {
            let counter = self.lost.get_or_create(&CpuLabels {
                cpu: cpu.to_string(),
            });
            if now > *seen {
                counter.inc_by(now - *seen);
                *seen = now;
            }
        }
    }

    /// Brings the recursion-miss counters up to the kernel's per-program totals (programs are
    /// a fixed set: the label is bounded).
    pub fn update_misses(&mut self, misses: &BTreeMap<String, u64>) {
        for (program, &now) in misses {
            let counter = self.misses.get_or_create(&ProgramLabels {
                program: program.clone(),
            });
            let seen = self.misses_seen.entry(program.clone()).or_default();
            if now > *seen {
                counter.inc_by(now - *seen);
                *seen = now;
            }
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journey::StageDurations;

    #[test]
    fn observes_stages_with_bounded_labels() {
        let mut metrics = Metrics::new();
        for n in 0..40 {
            let journey = Journey {
                dev: "lo".into(),
                comm: Some(format!("task{n}").into()),
                complete: true,
                stages_ns: StageDurations {
                    total: Some(50_000),
                    ..StageDurations::default()
                },
                ..Journey::default()
            };
            metrics.observe(&journey);
        }
        let mut stats = EngineStats::default();
        stats.incomplete.add(crate::journey::Ending::Dropped);
        stats.incomplete.add(crate::journey::Ending::Dropped);
        stats.control.insert("FIN|ACK".to_owned(), 3);
        stats.wakeups_of_other_threads = 4;
        metrics.update(&stats, &[0, 5]);
        stats.wakeups_of_other_threads = 6;
        metrics.update(&stats, &[0, 7]);
        let text = metrics.encode();
        assert!(
            text.contains("tracer_journeys_total{complete=\"true\"} 40"),
            "{text}"
        );
        assert!(
            text.contains(
                "tracer_stage_seconds_count{stage=\"total\",dev=\"lo\",comm=\"other\",port=\"unknown\"} 8"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "tracer_stage_seconds_count{stage=\"total\",dev=\"lo\",comm=\"task0\",port=\"unknown\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("tracer_incomplete_journeys_total{reason=\"dropped\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("tracer_lost_events_total{cpu=\"1\"} 7"),
            "{text}"
        );
        assert!(
            text.contains("tracer_packet_outcomes_total{outcome=\"control FIN|ACK\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("tracer_packet_outcomes_total{outcome=\"woke another thread\"} 6"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    /// A journey of `comm` to local port `port` whose total took 10 us.
    fn to_port(comm: &str, port: Option<u16>) -> Journey {
        Journey {
            dev: "veth0".into(),
            comm: Some(comm.into()),
            dport: port,
            sport: Some(40000),
            complete: true,
            stages_ns: StageDurations {
                total: Some(10_000),
                ..StageDurations::default()
            },
            ..Journey::default()
        }
    }

    fn total_count(text: &str, comm: &str, port: &str) -> Option<u64> {
        let key = format!(
            "tracer_stage_seconds_count{{stage=\"total\",dev=\"veth0\",comm=\"{comm}\",port=\"{port}\"}} "
        );
        text.lines()
            .find_map(|line| line.strip_prefix(&key))
            .and_then(|count| count.parse().ok())
    }

    #[test]
    fn recursion_misses_follow_the_kernel_totals_per_program() {
        let mut metrics = Metrics::new();
        let mut misses =
            BTreeMap::from([("sched_switch".to_owned(), 3), ("napi_poll".to_owned(), 0)]);
        metrics.update_misses(&misses);
        misses.insert("sched_switch".to_owned(), 5);
        metrics.update_misses(&misses);
        let text = metrics.encode();
        assert!(
            text.contains("tracer_recursion_misses_total{program=\"sched_switch\"} 5"),
            "{text}"
        );
        assert!(
            text.contains("tracer_recursion_misses_total{program=\"napi_poll\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn the_local_port_is_a_bounded_label() {
        let mut metrics = Metrics::new();
        for port in 0..100u16 {
            metrics.observe(&to_port("server", Some(7000 + port)));
        }
        metrics.observe(&to_port("server", Some(7000)));
        metrics.observe(&to_port("server", None));
        let text = metrics.encode();
        assert_eq!(total_count(&text, "server", "7000"), Some(2), "{text}");
        assert_eq!(
            total_count(&text, "server", "7063"),
            Some(1),
            "the 64th port"
        );
        assert_eq!(
            total_count(&text, "server", "7064"),
            None,
            "beyond the bound"
        );
        assert_eq!(total_count(&text, "server", "other"), Some(36), "{text}");
        assert_eq!(total_count(&text, "server", "unknown"), Some(1), "{text}");
        assert!(!text.contains("40000"), "the remote port is no label");
    }

    #[test]
    fn label_combinations_are_bounded_too() {
        let mut metrics = Metrics::new();
        // 32 comms x 64 ports: each label within its bound, their product beyond the cap.
        for comm in 0..MAX_LABEL_VALUES {
            for port in 0..MAX_PORTS as u16 {
                metrics.observe(&to_port(&format!("task{comm}"), Some(port)));
            }
        }
        let text = metrics.encode();
        let series = text
            .lines()
            .filter(|line| line.starts_with("tracer_stage_seconds_count{stage=\"total\""))
            .count();
        assert_eq!(
            series,
            MAX_STAGE_SERIES + 1,
            "the cap, then one all-other series"
        );
        let spilled = (MAX_LABEL_VALUES * MAX_PORTS - MAX_STAGE_SERIES) as u64;
        assert!(
            text.contains(&format!(
                "tracer_stage_seconds_count{{stage=\"total\",dev=\"other\",comm=\"other\",port=\"other\"}} {spilled}"
            )),
            "{text}"
        );
    }
}
