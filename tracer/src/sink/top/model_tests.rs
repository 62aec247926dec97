//! The model on synthetic journeys: grouping, rates, sorting, selection, pause and reset.

use super::*;
use crate::sink::top::fixtures::{counters, journey, two_readers};

fn labels(model: &TopModel) -> Vec<String> {
    model.rows().iter().map(|row| row.label.clone()).collect()
}

#[test]
fn rows_per_process_with_rates_percentiles_and_header() {
    let model = two_readers();
    let rows = model.rows();
    assert_eq!(
        labels(&model),
        ["alpha(10)", "busy(20)"],
        "default: total p99, largest first"
    );
    let (alpha, busy) = (rows[0], rows[1]);
    assert_eq!((alpha.journeys(), busy.journeys()), (10, 40));
    assert_eq!(
        (alpha.rate, busy.rate),
        (5.0, 20.0),
        "per second over a 2 s interval"
    );
    let p50 = busy.quantile(Stage::Total, 0.5).unwrap();
    assert!((20_000..21_500).contains(&p50), "{p50}");
    assert_eq!(
        busy.quantile(Stage::Irq, 0.5),
        None,
        "loopback: no irq stage"
    );
    assert_eq!(
        busy.top_missing_of(Stage::Irq),
        Some("no hard IRQ: loopback")
    );
    assert_eq!(busy.top_missing_of(Stage::Poll), None);
    assert_eq!(
        busy.top_missing(),
        Some((Stage::Irq, "no hard IRQ: loopback", 40))
    );
    let slowest = &alpha.slowest.as_ref().unwrap().journey;
    assert_eq!(slowest.stages_ns.total, Some(99_000));
    let header = &model.header;
    assert_eq!(
        (header.journeys, header.complete, header.incomplete()),
        (50, 50, 0)
    );
    assert_eq!(header.packets_per_s, 25.0);
    assert_eq!(header.events_per_s, 500.0);
    assert_eq!(header.cpu_percent, Some(1.0));
    assert_eq!(
        header.lost_per_cpu,
        [0, 0],
        "counted from the first interval on"
    );
}

#[test]
fn every_sort_key_orders_the_rows() {
    let mut model = two_readers();
    let mut seen = Vec::new();
    for _ in 0..SortKey::CYCLE.len() {
        seen.push((model.sort.name(), labels(&model)));
        model.apply(Action::NextSort);
    }
    assert_eq!(model.sort, SortKey::CYCLE[0], "s cycles back to the start");
    let order = |name: &str| {
        seen.iter()
            .find(|(sort, _)| sort == name)
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(order("count/s"), ["busy(20)", "alpha(10)"]);
    assert_eq!(order("name"), ["alpha(10)", "busy(20)"]);
    assert_eq!(order("total p50"), ["alpha(10)", "busy(20)"]);
    assert_eq!(order("runqueue p99"), ["alpha(10)", "busy(20)"]);
    // No row has an irq stage: the names decide.
    assert_eq!(order("irq p99"), ["alpha(10)", "busy(20)"]);
    model.apply(Action::PrevSort);
    assert_eq!(model.sort, *SortKey::CYCLE.last().unwrap());
}

#[test]
fn grouping_by_flow_dev_and_cpu() {
    let mut model = two_readers();
    model.apply(Action::NextGroup);
    assert_eq!(model.by, GroupBy::Flow);
    assert_eq!(
        labels(&model),
        [
            "udp 127.0.0.1:6000>127.0.0.1:9000",
            "udp 127.0.0.1:5000>127.0.0.1:9000"
        ]
    );
    model.apply(Action::NextGroup);
    assert_eq!(labels(&model), ["lo"]);
    assert_eq!(model.rows()[0].journeys(), 50);
    model.apply(Action::NextGroup);
    assert_eq!(labels(&model), ["cpu0", "cpu1"]);
    model.apply(Action::NextGroup);
    assert_eq!(model.by, GroupBy::Process);
}

#[test]
fn selection_follows_its_row_across_sorts() {
    let mut model = two_readers();
    assert_eq!(model.selected_index(&model.rows()), 0);
    model.apply(Action::Down);
    model.apply(Action::Down);
    let rows = model.rows();
    assert_eq!(
        rows[model.selected_index(&rows)].label,
        "busy(20)",
        "clamped at the last"
    );
    model.apply(Action::NextSort); // total p50: busy is second
    model.apply(Action::NextSort); // count/s: busy is first
    let rows = model.rows();
    assert_eq!(model.selected_index(&rows), 0);
    assert_eq!(rows[0].label, "busy(20)");
    model.apply(Action::Last);
    model.apply(Action::Up);
    model.apply(Action::Up);
    assert_eq!(model.selected_index(&model.rows()), 0);
    model.apply(Action::NextGroup);
    assert_eq!(
        model.selected_index(&model.rows()),
        0,
        "a new grouping starts at the top"
    );
}

#[test]
fn pause_freezes_and_reset_forgets() {
    let mut model = two_readers();
    model.apply(Action::Pause);
    model.add(&journey(30, "late", 0, 7000, 1000, 100));
    model.close_interval(counters(4, 2000));
    assert_eq!(model.header.paused_skipped, 1);
    assert_eq!(model.header.journeys, 50);
    assert_eq!(model.rows().len(), 2);
    assert_eq!(model.header.events_per_s, 500.0, "the header stands still");
    model.apply(Action::Pause);
    model.add(&journey(30, "late", 0, 7000, 1000, 100));
    model.close_interval(counters(5, 2100));
    assert_eq!(
        model.header.events_per_s, 100.0,
        "measured from the paused close"
    );
    assert_eq!(model.rows().len(), 3);

    model.apply(Action::Reset);
    assert!(model.rows().is_empty());
    assert_eq!(model.header.journeys, 0);
    model.add(&journey(30, "late", 0, 7000, 1000, 100));
    model.close_interval(Counters {
        lost_per_cpu: vec![2, 10],
        ..counters(6, 2200)
    });
    assert_eq!(model.header.lost_per_cpu, [2, 7], "lost since the reset");
    assert_eq!(model.header.seconds, 1.0);
    assert_eq!(labels(&model), ["late(30)"]);
}

#[test]
fn rows_beyond_the_limit_fold_into_other_and_names_are_escaped() {
    let mut model = TopModel::new(GroupBy::Process, vec![]);
    for pid in 0..MAX_ROWS as u32 + 5 {
        model.add(&journey(pid + 1, "\x1b[31mred", 0, 5000, 1000, 100));
    }
    let rows = model.rows();
    assert_eq!(rows.len(), MAX_ROWS + 1);
    let other = rows.iter().find(|row| row.key == RowKey::Other).unwrap();
    assert_eq!(other.journeys(), 5);
    assert!(
        rows[0].label.starts_with("\\x1b[31mred("),
        "{}",
        rows[0].label
    );
    model.apply(Action::NextSort);
    model.apply(Action::NextSort);
    model.apply(Action::NextSort); // name
    assert_eq!(
        model.rows().last().unwrap().key,
        RowKey::Other,
        "other sorts last by name"
    );
}

#[test]
fn journeys_without_a_reader_or_headers_have_their_own_row() {
    let mut model = TopModel::new(GroupBy::Process, vec![]);
    let dropped = Journey {
        pid: None,
        saddr: None,
        cpu_task: None,
        drop_reason: Some("NO_SOCKET".into()),
        complete: false,
        ..journey(1, "x", 0, 1, 1000, 100)
    };
    model.add(&dropped);
    assert_eq!(labels(&model), ["(no reader)"]);
    assert_eq!(model.rows()[0].dropped, 1);
    assert_eq!(model.header.incomplete(), 1);
    model.apply(Action::NextGroup);
    assert_eq!(labels(&model), ["(no headers)"]);
    model.apply(Action::NextGroup);
    model.apply(Action::NextGroup);
    assert_eq!(labels(&model), ["(no reader CPU)"]);
}
