//! The report gathered as journeys stream past, against the whole list.

use super::*;
use crate::{
    journey::EngineConfig,
    sink::{analysis::EventCounts, summary::Histogram},
};

/// A fixture's journeys, and its events, through a tracker.
fn fixture(name: &str) -> (crate::recording::Recording, Vec<Journey>, Tracker) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let recording = crate::recording::Recording::read(&path).unwrap();
    let mut tracker = Tracker::new(EngineConfig::from_recording(&recording.meta, true));
    for event in &recording.events {
        tracker.push_event(*event);
    }
    let mut journeys = Vec::new();
    tracker.finish(&mut journeys);
    (recording, journeys, tracker)
}

/// What the report gathers as journeys stream past is what the whole list gives:
/// breakdowns by name, log2 histograms, the slowest journeys, the reader switches; and
/// the text does not depend on how events and journeys were batched.
#[test]
fn gathered_as_they_stream_equals_the_whole_list() {
    for name in [
        "nic-download/eth0-pip-download.trc",
        "loopback/udp-tcp-2s.trc",
    ] {
        gathered_equals_whole(name);
    }
}

fn gathered_equals_whole(name: &str) {
    let (recording, journeys, tracker) = fixture(name);
    assert!(journeys.len() > 20, "{name}");
    let mut data = ReportData::new(&recording.meta, 3);
    data.events(&recording.events);
    journeys.iter().for_each(|journey| data.journey(journey));
    let sections = data.breakdowns.sections();
    let whole = [
        analysis::breakdown(&journeys, |j| j.dev.to_string()),
        analysis::breakdown(&journeys, |j| {
            j.irq_name.as_deref().unwrap_or("(none)").to_owned()
        }),
        analysis::breakdown(&journeys, |j| {
            j.cpu_softirq.map_or("-".to_owned(), |cpu| cpu.to_string())
        }),
        analysis::breakdown(&journeys, |j| {
            format!(
                "{}({})",
                j.comm.as_deref().unwrap_or("?"),
                j.pid.map_or("-".to_owned(), |pid| pid.to_string())
            )
        }),
    ];
    let summary = |groups: &BTreeMap<String, Histogram>| -> Vec<(String, u64, u64)> {
        groups
            .iter()
            .map(|(name, h)| (name.clone(), h.count(), h.quantile(0.99).unwrap_or(0)))
            .collect()
    };
    for ((title, streamed), whole) in sections.iter().zip(&whole) {
        let streamed: Vec<(String, u64, u64)> = streamed
            .iter()
            .map(|(name, h)| (name.clone(), h.count(), h.quantile(0.99).unwrap_or(0)))
            .collect();
        assert_eq!(streamed, summary(whole), "by {title}");
    }
    // Flows: totals as the breakdown's, each stage's median as a full histogram of the
    // flow's journeys gives it.
    let flows = analysis::breakdown(&journeys, analysis::flow_key);
    let streamed = data.breakdowns.flows();
    let streamed_totals: Vec<(String, u64, u64)> = streamed
        .iter()
        .map(|(name, s)| {
            (
                name.clone(),
                s.total.count(),
                s.total.quantile(0.99).unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(streamed_totals, summary(&flows), "{name}");
    for (flow, stats) in &streamed {
        for stage in Stage::ALL.into_iter().filter(|s| *s != Stage::Total) {
            let mut whole = Histogram::default();
            journeys
                .iter()
                .filter(|j| analysis::flow_key(j) == *flow)
                .filter_map(|j| j.stages_ns.get(stage))
                .for_each(|ns| whole.record(ns));
            let median = stats.stages[stage as usize].quantile(0.5);
            assert_eq!(median, whole.quantile(0.5), "{flow} {stage:?}");
        }
    }
    for stage in Stage::ALL {
        assert_eq!(
            ReportData::log2(&data.summary(), stage).text(stage),
            analysis::log2_histogram(&journeys, stage)
        );
    }
    let slowest: Vec<u64> = analysis::slowest(&journeys, 3)
        .iter()
        .map(|j| j.id)
        .collect();
    let kept: Vec<u64> = data.slowest.journeys().iter().map(|j| j.id).collect();
    assert_eq!(kept, slowest);

    // Batched differently (an event and a journey at a time), the same text.
    let mut one_by_one = ReportData::new(&recording.meta, 3);
    for event in &recording.events {
        one_by_one.events(std::slice::from_ref(event));
    }
    journeys
        .iter()
        .for_each(|journey| one_by_one.journey(journey));
    let text = data.text(1, &recording.meta, &tracker, None);
    assert_eq!(one_by_one.text(1, &recording.meta, &tracker, None), text);
    let readers: std::collections::HashSet<u32> = journeys.iter().filter_map(|j| j.tid).collect();
    let irqs = recording
        .meta
        .irqs
        .iter()
        .map(|irq| (irq.irq, irq.dev.clone()))
        .collect();
    let counts = EventCounts::count(&recording.events, &irqs, &readers);
    assert!(
        !counts.switches.is_empty() && !counts.polls.is_empty(),
        "{name}"
    );
    for (tid, (voluntary, involuntary)) in &counts.switches {
        let line = format!("  tid {tid:<8} voluntary {voluntary:>6}  involuntary {involuntary:>6}");
        assert!(text.contains(&line), "{line}");
    }
}

/// Two recordings' parts: the totals are the sums, each host has its own section (its own
/// stage table), breakdowns and switches name the host; one part is the single report.
#[test]
fn parts_of_two_recordings_merge() {
    let gathered = |name: &str| {
        let (recording, journeys, tracker) = fixture(name);
        let mut data = ReportData::new(&recording.meta, 3);
        data.events(&recording.events);
        journeys.iter().for_each(|journey| data.journey(journey));
        (recording, data, tracker)
    };
    let (rec_a, data_a, tracker_a) = gathered("loopback/udp-tcp-2s.trc");
    let (rec_b, data_b, tracker_b) = gathered("nic-download/eth0-pip-download.trc");
    fn part<'a>(
        label: Option<&'a str>,
        recording: &'a crate::recording::Recording,
        data: &'a ReportData,
        tracker: &'a Tracker,
    ) -> ReportPart<'a> {
        ReportPart {
            label,
            version: 2,
            meta: &recording.meta,
            data,
            incomplete: &tracker.engine().stats().incomplete,
            trailer: None,
        }
    }
    let (rec_a, rec_b) = (&rec_a, &rec_b);
    let (tracker_a, tracker_b) = (&tracker_a, &tracker_b);
    let alone = report_text(&[part(None, rec_a, &data_a, tracker_a)]);
    assert_eq!(alone, data_a.text(2, &rec_a.meta, tracker_a, None));
    let parts = [
        part(Some("a"), rec_a, &data_a, tracker_a),
        part(Some("b"), rec_b, &data_b, tracker_b),
    ];
    let text = report_text(&parts);
    let (a, b) = (data_a.summary().journeys, data_b.summary().journeys);
    let (complete_a, complete_b) = (data_a.complete, data_b.complete);
    assert!(
        text.contains(&format!(
            "\n== {} journeys, {} complete ==\n",
            a + b,
            complete_a + complete_b
        )),
        "{text}"
    );
    assert!(
        text.starts_with("recordings: 2 files from 1 host, "),
        "{text}"
    );
    for (label, data) in [("a", &data_a), ("b", &data_b)] {
        let head = format!(
            "  {label}: {} journeys, {} complete, {} incomplete\n",
            data.summary().journeys,
            data.complete,
            data.summary().journeys - data.complete
        );
        let table: String = data
            .summary()
            .table()
            .lines()
            .map(|line| format!("    {line}\n"))
            .collect();
        assert!(text.contains(&(head + &table)), "{label}: {text}");
    }
    assert!(text.contains("  a: lo "), "{text}");
    assert!(text.contains("  b: eth0 "), "{text}");
    assert!(text.contains("  a tid "), "{text}");
    assert!(text.contains("incomplete: 4 dropped"), "{text}");
}

/// The loopback fixture and one of its complete journeys with ports and a process, to copy
/// into many flows or tasks.
fn model_journey() -> (crate::recording::Recording, Journey, Tracker) {
    let (recording, journeys, tracker) = fixture("loopback/udp-tcp-2s.trc");
    let model = journeys
        .iter()
        .find(|j| j.stages_ns.total.is_some() && j.sport.is_some() && j.pid.is_some())
        .expect("a complete journey with ports, of a known process")
        .clone();
    (recording, model, tracker)
}

/// More flows than the table keeps: the quieter half is merged when it is full, so it never
/// holds more than `MAX_FLOWS`; the stage table still counts every journey, and a busy flow
/// keeps all of its own.
#[test]
fn many_flows_stay_bounded_and_the_busy_one_stays_whole() {
    let (recording, model, _) = model_journey();
    let mut data = ReportData::new(&recording.meta, 3);
    let (quiet, every) = (3 * MAX_FLOWS, 50);
    let mut busy = 0u64;
    for i in 0..quiet {
        let mut journey = model.clone();
        journey.sport = Some(10_000 + i as u16);
        data.journey(&journey);
        if i % every == 0 {
            data.journey(&model);
            busy += 1;
        }
    }
    let flows = &data.breakdowns.flow;
    assert!(
        flows.kept.len() <= MAX_FLOWS,
        "{} flows kept",
        flows.kept.len()
    );
    let kept: u64 = flows.kept.values.iter().map(|stats| stats.journeys).sum();
    assert!(flows.merged_journeys > 0);
    assert_eq!(kept + flows.merged_journeys, quiet as u64 + busy);
    let summary = data.summary();
    let totals = summary.stage(Stage::Total).map(|h| h.count());
    assert_eq!(
        totals,
        Some(quiet as u64 + busy),
        "every journey in the stage table"
    );
    let named = data.breakdowns.flows();
    let own = named
        .get(&analysis::flow_key(&model))
        .expect("the busy flow is kept");
    assert_eq!(own.total.count(), busy);
}

/// A recording of many reader processes: the task section shows the busiest
/// `MAX_GROUP_ROWS` and says how many more there were, with their journeys.
#[test]
fn a_breakdown_of_many_tasks_shows_the_busiest_and_counts_the_rest() {
    let (recording, model, tracker) = model_journey();
    let mut data = ReportData::new(&recording.meta, 0);
    let extra = 10;
    for pid in 0..(text::MAX_GROUP_ROWS + extra) as u32 {
        let mut journey = model.clone();
        journey.pid = Some(100_000 + pid);
        // The first processes read twice: they are the busiest.
        for _ in 0..if pid < 3 { 2 } else { 1 } {
            data.journey(&journey);
        }
    }
    let text = data.text(2, &recording.meta, &tracker, None);
    let section = text
        .split("== by task:")
        .nth(1)
        .and_then(|rest| rest.split("\n==").next())
        .expect("a task section");
    let rows = section
        .lines()
        .filter(|line| line.contains("(1000"))
        .count();
    assert_eq!(rows, text::MAX_GROUP_ROWS, "{section}");
    for busy in 100_000..100_003 {
        assert!(section.contains(&format!("({busy})")), "{section}");
    }
    assert!(
        section.contains(&format!("... and {extra} more with {extra} journeys")),
        "{section}"
    );
}
